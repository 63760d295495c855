"""A compiled AST node: its type and its two back-ends, plus the NULL-aware helpers both share."""
from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.types import ColumnType, to_arrow


@dataclass(frozen=True)
class Node:
    type: ColumnType
    row: Callable[[dict], Any]
    arrow: Callable[[pa.Table], Any]  # → pa.Array / pa.ChunkedArray / pa.Scalar
    constant: bool = False
    stable: bool = False  # a constant from a STABLE function (to_char…): PostgreSQL's planner does not fold it


def const(value, ctype: ColumnType) -> Node:
    atype = to_arrow(ctype)
    scalar = pa.scalar(value, atype) if value is not None or ctype.name != "null" else pa.scalar(None)
    return Node(ctype, lambda row: value, lambda t: scalar, constant=True)


def broadcast(x, n: int):
    if isinstance(x, pa.Scalar):
        return pa.repeat(x, n)
    return x


def null_of(ctype: ColumnType) -> pa.Scalar:
    return pa.scalar(None, to_arrow(ctype))


def strict(fn: Callable) -> Callable:
    """Python function of N values → None if any value is None (SQL strictness)."""
    def wrapped(*values):
        if any(v is None for v in values):
            return None
        return fn(*values)
    return wrapped


def row_of(fn: Callable, *children: Node) -> Callable[[dict], Any]:
    getters = [c.row for c in children]
    if len(getters) == 1:
        g0 = getters[0]
        return lambda row: fn(g0(row))
    if len(getters) == 2:
        g0, g1 = getters
        return lambda row: fn(g0(row), g1(row))
    return lambda row: fn(*[g(row) for g in getters])


def arrow_of(fn: Callable, *children: Node) -> Callable[[pa.Table], Any]:
    getters = [c.arrow for c in children]
    return lambda t: fn(*[g(t) for g in getters])


def to_float(v):
    return float(v) if isinstance(v, decimal.Decimal) else v


def cast_arrow(x, ctype: ColumnType):
    atype = to_arrow(ctype)
    if x.type == atype:
        return x
    if isinstance(x, pa.Scalar):
        if not x.is_valid:
            return pa.scalar(None, atype)
        if pa.types.is_decimal(x.type) and pa.types.is_floating(atype):
            return pa.scalar(float(x.as_py()), atype)  # correctly rounded (Arrow's cast is not)
        return pa.scalar(x.as_py(), x.type).cast(atype)
    if pa.types.is_null(x.type):
        return pa.nulls(len(x), atype)
    if pa.types.is_decimal(x.type) and pa.types.is_floating(atype):
        return pc.cast(pc.cast(x, pa.string()), atype)  # correctly rounded (Arrow's direct cast is not)
    return pc.cast(x, atype)


def elementwise(fn: Callable, out: ColumnType, *children: Node, sees_nulls: bool = False) -> Node:
    """A node computed by one Python function of its children's values, NULL in → NULL out, in both back-ends
    (the Arrow back-end maps the same function over the batch: used where no Arrow kernel gives PostgreSQL's
    answer). ``sees_nulls``: ``fn`` is called with NULL arguments too (array_position, ``= ANY``)."""
    if sees_nulls:
        f = fn
    elif any(c.constant and not c.stable and c.row({}) is None for c in children):
        return const(None, out)  # strict: PostgreSQL folds it to NULL without evaluating the other arguments
    else:
        f = strict(fn)
    atype = to_arrow(out)

    def arrow(t):
        vals = [c.arrow(t) for c in children]
        if all(isinstance(v, pa.Scalar) for v in vals):
            return pa.scalar(f(*[v.as_py() for v in vals]), atype)
        cols = [broadcast(v, t.num_rows).to_pylist() for v in vals]
        return pa.array([f(*xs) for xs in zip(*cols)], atype)
    return Node(out, row_of(f, *children), arrow)


def coerce(node: Node, ctype: ColumnType) -> Node:
    """The node converted to ``ctype`` (numeric widening, date → timestamp at midnight)."""
    if node.type == ctype:
        return node
    if ctype.name == "timestamp" and node.type.name == "date":
        row = node.row
        return Node(ctype, lambda r: (None if (v := row(r)) is None else dt.datetime(v.year, v.month, v.day)),
                    lambda t: cast_arrow(node.arrow(t), ctype), node.constant)
    if ctype.name == "float":
        row = node.row
        return Node(ctype, lambda r: (None if (v := row(r)) is None else float(v)),
                    lambda t: cast_arrow(node.arrow(t), ctype), node.constant)
    if ctype.name == "decimal":
        row = node.row
        return Node(ctype, lambda r: (None if (v := row(r)) is None else decimal.Decimal(v)),
                    lambda t: cast_arrow(node.arrow(t), ctype), node.constant)
    return Node(ctype, node.row, lambda t: cast_arrow(node.arrow(t), ctype), node.constant)
