"""The ``cast`` op: vectorised Arrow casts; values that cannot convert are routed by ``onError``."""
from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.ops.common import OpResult, OpTypeError, error_rows, require
from ir_compiler.types import Field, Schema, parse_type, to_arrow

_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def cast_schema(op, schema: Schema | None) -> Schema | None:
    f = require(schema, op.field)
    if schema is None:
        return None
    target = parse_type(op.to)
    if f.type.name == "array":
        raise OpTypeError(f"cannot cast array column '{op.field}' to {target}", "to")
    return schema.with_field(Field(op.field, target, True))


def convert_value(value, target, fmt: str | None):
    """Python conversion of one value (the slow path, used only to find which rows fail)."""
    if value is None:
        return None
    name = target.name
    if isinstance(value, str):
        value = value.strip()
    if name == "string":
        return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)
    if name == "int":
        if isinstance(value, float):
            return int(round(value))
        return int(value) if not isinstance(value, str) else int(value, 10)
    if name == "float":
        return float(value)
    if name == "decimal":
        return decimal.Decimal(str(value)).quantize(decimal.Decimal(1).scaleb(-target.scale))
    if name == "bool":
        if isinstance(value, str):
            low = value.lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            raise ValueError(value)
        return bool(value)
    if name in ("date", "timestamp"):
        if isinstance(value, str):
            parsed = dt.datetime.strptime(value, fmt) if fmt else dt.datetime.fromisoformat(value)
            return parsed.date() if name == "date" else parsed.replace(tzinfo=None)
        if isinstance(value, dt.datetime):
            return value.date() if name == "date" else value
        if isinstance(value, dt.date):
            return value if name == "date" else dt.datetime(value.year, value.month, value.day)
    raise ValueError(f"cannot convert {type(value).__name__} to {name}")


def _fast_cast(arr: pa.ChunkedArray, target, fmt: str | None) -> pa.ChunkedArray:
    atype = to_arrow(target)
    if pa.types.is_string(arr.type):
        arr = pc.utf8_trim_whitespace(arr)
        if fmt and target.name in ("date", "timestamp"):
            parsed = pc.strptime(arr, format=fmt, unit="us")
            return pc.cast(parsed, atype)
        if target.name == "bool":
            low = pc.utf8_lower(arr)
            ok = pc.or_(pc.is_in(low, pa.array(sorted(_TRUE))), pc.is_in(low, pa.array(sorted(_FALSE))))
            if not pc.all(pc.or_(ok, pc.is_null(arr))).as_py():
                raise pa.ArrowInvalid("bad bool")
            return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.bool_()),
                              pc.is_in(low, pa.array(sorted(_TRUE))))
    if target.name == "int" and pa.types.is_floating(arr.type):
        arr = pc.round(arr, round_mode="half_to_even")
    return pc.cast(arr, atype, safe=True)


def cast_array(arr, target, fmt: str | None):
    """Cast an array; returns (result, failed_mask or None)."""
    arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    try:
        return _fast_cast(arr, target, fmt), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    out, failed = [], []
    for v in arr.to_pylist():
        try:
            out.append(convert_value(v, target, fmt))
            failed.append(False)
        except (ValueError, TypeError, ArithmeticError, decimal.InvalidOperation):
            out.append(None)
            failed.append(True)
    return pa.chunked_array([pa.array(out, to_arrow(target))]), pa.array(failed)


def apply_cast(op, table: pa.Table, node_id: str = "") -> OpResult:
    target = parse_type(op.to)
    idx = table.column_names.index(op.field)
    result, failed = cast_array(table.column(idx), target, op.format)
    errors = []
    if failed is not None and pc.any(failed).as_py():
        if op.onError == "fail":
            bad = table.column(idx).filter(failed)[0].as_py()
            raise CastFailure(f"cannot cast {bad!r} in column '{op.field}' to {target}; set onError to "
                              f"'null' or 'quarantine' to route such rows", table.filter(failed))
        if op.onError == "quarantine":
            reason = f"cast: cannot convert column '{op.field}' to {target}"
            errors.append(error_rows(table, failed, reason))
            keep = pc.invert(failed)
            table, result = table.filter(keep), result.filter(keep)
    return OpResult(table.set_column(idx, op.field, result), errors)


class CastFailure(Exception):
    """A cast with onError=fail met a value it cannot convert; ``rows`` are the failing rows."""

    def __init__(self, message: str, rows: pa.Table):
        super().__init__(message)
        self.rows = rows
