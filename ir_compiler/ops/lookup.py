"""The ``lookup_join`` op: a small lookup table broadcast to every batch and joined with pyarrow."""
from __future__ import annotations

import pyarrow as pa

from ir_compiler.ops.common import OpResult, OpTypeError, require
from ir_compiler.types import Field, Schema


def key_pairs(op) -> list[tuple[str, str]]:
    if isinstance(op.on, dict):
        return list(op.on.items())
    return [(k, k) for k in op.on]


def lookup_schema(op, schema: Schema | None, lookup: Schema | None) -> Schema | None:
    for i, (left, right) in enumerate(key_pairs(op)):
        require(schema, left, "on")
        if lookup is not None and right not in lookup:
            raise OpTypeError(f"lookup has no column '{right}'; it has {', '.join(lookup.names)}", "on")
    if lookup is not None:
        for i, f in enumerate(op.fields):
            if f not in lookup:
                raise OpTypeError(f"lookup has no column '{f}'; it has {', '.join(lookup.names)}", f"fields[{i}]")
    if schema is None or lookup is None:
        return None
    for i, f in enumerate(op.fields):
        if f in schema and f not in [k for k, _ in key_pairs(op)]:
            raise OpTypeError(f"column '{f}' already exists in the input; rename it first", f"fields[{i}]")
        schema = schema.with_field(Field(f, lookup[f].type, True))
    return schema


def prepare_lookup(op, table: pa.Table) -> pa.Table:
    """Key + wanted columns, one row per key (the first one wins)."""
    rights = [r for _, r in key_pairs(op)]
    cols = rights + [f for f in op.fields if f not in rights]
    from connectors.lookups import first_per_key
    return first_per_key(table.select(cols), rights)


def lookup_apply(op, table: pa.Table, lookup: pa.Table) -> OpResult:
    pairs = key_pairs(op)
    lefts, rights = [l for l, _ in pairs], [r for _, r in pairs]
    right = lookup.rename_columns([f"__fb_k{rights.index(c)}" if c in rights and c not in op.fields else c
                                   for c in lookup.column_names])
    rkeys = [f"__fb_k{i}" if r not in op.fields else r for i, r in enumerate(rights)]
    for lk, rk in zip(lefts, rkeys):
        if right.schema.field(rk).type != table.schema.field(lk).type:
            right = right.set_column(right.column_names.index(rk), rk,
                                     right.column(rk).cast(table.schema.field(lk).type))
    joined = table.join(right, keys=lefts, right_keys=rkeys,
                        join_type="left outer" if op.type == "left" else "inner", use_threads=False)
    joined = joined.drop_columns([c for c in joined.column_names if c.startswith("__fb_k")])
    return OpResult(joined, filtered=table.num_rows - joined.num_rows if op.type == "inner" else 0)
