"""Ops built on SQL expressions: ``expression`` (derived column) and ``filter``."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.errors import ExpressionError
from ir_compiler.ops.common import ERROR, OpResult, OpTypeError, user_columns
from ir_compiler.types import Field, Schema, to_arrow


def _compile(text: str, schema: Schema, field_name: str, boolean: bool = False):
    try:
        from ir_compiler.expressions import compile_expression

        return compile_expression(text, schema, boolean=boolean)
    except ExpressionError as exc:
        raise OpTypeError(exc.message, field_name) from None


def _storable(compiled):
    if compiled.type.name == "interval":
        raise OpTypeError("an interval cannot be stored in a column; use extract(epoch from …) for seconds or "
                          "CAST(… AS text)", "expr")
    return compiled


def expression_schema(op, schema):
    if schema is None:
        return None
    compiled = _storable(_compile(op.expr, schema, "expr"))
    return schema.with_field(Field(op.field, compiled.type))


def filter_schema(op, schema):
    if schema is not None:
        _compile(op.condition, schema, "condition", boolean=True)
    return schema


def table_schema(table: pa.Table) -> Schema:
    return Schema.from_arrow(table.select(user_columns(table)).schema)


_COMPILED: dict = {}  # (text, boolean, the batch's Arrow fields) → CompiledExpression


def _compiled_for(text: str, table: pa.Table, field_name: str, boolean: bool = False):
    """The expression compiled for this batch's columns, once per process and column layout rather than once
    per batch (compiling parses the SQL: ~0.4 ms, a tenth of the 10M-row aggregate's transform time). A
    compiled expression holds no per-batch state (``now()`` is one value per process)."""
    key = (text, boolean, tuple((f.name, f.type, f.nullable) for f in table.schema))
    hit = _COMPILED.get(key)
    if hit is None:
        hit = _compile(text, table_schema(table), field_name, boolean)
        if len(_COMPILED) >= 512:
            _COMPILED.clear()
        _COMPILED[key] = hit
    return hit


def evaluate(compiled, table: pa.Table):
    """Vectorised evaluation; if a row fails (e.g. a bad cast inside), fall back to rows and report them.

    Returns (values, failed_mask or None, reasons or None).
    """
    try:
        values = compiled.eval_arrow(table)
        if isinstance(values, pa.Scalar):
            values = pa.array([values.as_py()] * table.num_rows, values.type)
        return values, None, None
    except Exception:  # noqa: BLE001 - any kernel failure: find the failing rows one by one
        pass
    out, failed, reasons = [], [], []
    for row in table.to_pylist():
        try:
            out.append(compiled.eval_row(row))
            failed.append(False)
            reasons.append(None)
        except Exception as exc:  # noqa: BLE001 - routed to the errors port with the reason
            out.append(None)
            failed.append(True)
            reasons.append(f"expression {compiled.text!r}: {exc}")
    return pa.array(out, to_arrow(compiled.type)), pa.array(failed), pa.array(reasons, pa.string())


def _route_failures(table, values, failed, reasons):
    if failed is None or not pc.any(failed).as_py():
        return table, values, []
    bad = table.filter(failed).append_column(ERROR, reasons.filter(failed))
    keep = pc.invert(failed)
    return table.filter(keep), values.filter(keep), [bad]


def expression_apply(op, table):
    compiled = _storable(_compiled_for(op.expr, table, "expr"))
    values, failed, reasons = evaluate(compiled, table)
    table, values, errors = _route_failures(table, values, failed, reasons)
    if op.field in table.column_names:
        table = table.set_column(table.column_names.index(op.field), op.field, values)
    else:
        table = table.append_column(op.field, values)
    return OpResult(table, errors)


def filter_apply(op, table):
    compiled = _compiled_for(op.condition, table, "condition", boolean=True)
    values, failed, reasons = evaluate(compiled, table)
    table, values, errors = _route_failures(table, values, failed, reasons)
    mask = pc.fill_null(values, False)
    kept = table.filter(mask)
    return OpResult(kept, errors, filtered=table.num_rows - kept.num_rows)
