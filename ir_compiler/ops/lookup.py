"""The ``lookup_join`` op: a small lookup table broadcast to every batch and joined with pyarrow."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.errors import FlowError
from ir_compiler.ops.common import OpResult, OpTypeError, require
from ir_compiler.types import Field, Schema, common_type, from_arrow, to_arrow


def key_pairs(op) -> list[tuple[str, str]]:
    if isinstance(op.on, dict):
        return list(op.on.items())
    return [(k, k) for k in op.on]


def _key_path(op, i: int, left: str) -> str:
    return f"on.{left}" if isinstance(op.on, dict) else f"on[{i}]"


def lookup_schema(op, schema: Schema | None, lookup: Schema | None) -> Schema | None:
    for i, (left, right) in enumerate(key_pairs(op)):
        require(schema, left, _key_path(op, i, left))
        if lookup is not None and right not in lookup:
            raise OpTypeError(f"lookup has no column '{right}'; it has {', '.join(lookup.names)}",
                              _key_path(op, i, left))
        if schema is not None and lookup is not None and common_type(schema[left].type, lookup[right].type) is None:
            # the join node's rule (joins.output_schema): keys are matched in their common type
            raise OpTypeError(f"key '{left}' ({schema[left].type}) and lookup column '{right}' ({lookup[right].type}) "
                              f"have incompatible types; add a cast", _key_path(op, i, left))
    if lookup is not None:
        for i, f in enumerate(op.fields):
            if f not in lookup:
                raise OpTypeError(f"lookup has no column '{f}'; it has {', '.join(lookup.names)}", f"fields[{i}]")
    if schema is None or lookup is None:
        return None
    for i, f in enumerate(op.fields):
        if f in schema:
            if f not in [k for k, _ in key_pairs(op)]:
                raise OpTypeError(f"column '{f}' already exists in the input; rename it first", f"fields[{i}]")
            continue  # an input key named in fields keeps the input's column (and type)
        schema = schema.with_field(Field(f, lookup[f].type, True))
    return schema


def prepare_lookup(op, table: pa.Table) -> pa.Table:
    """Key + wanted columns, one row per key (the first one wins)."""
    rights = [r for _, r in key_pairs(op)]
    cols = rights + [f for f in op.fields if f not in rights]
    from connectors.lookups import first_per_key
    return first_per_key(table.select(cols), rights)


def _key_type(left: pa.DataType, right: pa.DataType, lk: str, rk: str) -> pa.DataType:
    """The Arrow type both key columns are matched in: the join node's common type (int with float: float, int with
    decimal(p,s): decimal(38,s), two decimals: wide enough for both; never a lossy cast of one side to the other)."""
    if left == right:
        return left
    lt, rt = from_arrow(left), from_arrow(right)
    ct = common_type(lt, rt)
    if ct is None:
        raise FlowError(f"lookup_join key '{lk}' ({lt}) and lookup column '{rk}' ({rt}) have incompatible types; "
                        f"add a cast")
    return to_arrow(ct)


def _as(col, t: pa.DataType):
    if col.type == t:
        return col
    return pc.cast(col, t, safe=not pa.types.is_floating(t))  # int → float rounds, as SQL compares them


def lookup_apply(op, table: pa.Table, lookup: pa.Table) -> OpResult:
    """Left/inner join of ``table`` with the (one row per key) ``lookup``, as the join node matches: on copies of the
    keys in their common type with -0.0 made 0.0 (equal in SQL; NaN matches NaN as in DuckDB), so the key columns
    keep their values; list/struct/map columns ride through (``joins.arrow_join``)."""
    from ir_compiler.joins import arrow_join
    from ir_compiler.ops.sets import normal_key

    pairs = key_pairs(op)
    tmp_left = [f"__fb_lk{j}" for j in range(len(pairs))]
    tmp_right = [f"__fb_rk{j}" for j in range(len(pairs))]
    left, cols, names = table, [], []
    for j, (lk, rk) in enumerate(pairs):
        lcol, rcol = table.column(lk), lookup.column(rk)
        t = _key_type(lcol.type, rcol.type, lk, rk)
        left = left.append_column(tmp_left[j], normal_key(_as(lcol, t)))
        cols.append(normal_key(_as(rcol, t)))
        names.append(tmp_right[j])
    for f in op.fields:
        if f not in table.column_names:  # an input key named in fields keeps the input's column
            cols.append(lookup.column(f))
            names.append(f)
    right = pa.table(cols, names=names)
    joined = arrow_join(left, right, tmp_left, tmp_right, "left outer" if op.type == "left" else "inner", False)
    joined = joined.drop_columns(tmp_left + tmp_right)
    return OpResult(joined, filtered=table.num_rows - joined.num_rows if op.type == "inner" else 0)
