"""AST → typed Node (both back-ends). One handler per sqlglot expression class, in a dispatch table."""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ir_compiler.errors import ExpressionError
from ir_compiler.expressions.nodes import (Node, arrow_of, broadcast, cast_arrow, coerce, const, null_of, row_of,
                                           strict)
from ir_compiler.expressions.parse import parse_expression, position_of
from ir_compiler.types import BOOL, FLOAT, INT, NULL, STRING, ColumnType, Schema, common_type, parse_type


class CastError(ValueError):
    """A value could not be converted by CAST at run time (the caller routes the row)."""


@dataclass
class CompiledExpression:
    text: str
    type: ColumnType
    columns: set
    _node: Node

    def eval_row(self, row: dict):
        return self._node.row(row)

    def eval_arrow(self, batch):
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        out = self._node.arrow(table)
        return broadcast(out, table.num_rows)


class _Compiler:
    def __init__(self, text: str, schema: Schema):
        self.text, self.schema = text, schema
        self.columns: set[str] = set()

    def fail(self, message: str, node=None):
        raise ExpressionError(message, expr=self.text, position=position_of(self.text, node) if node else None)

    def compile(self, node: exp.Expression) -> Node:
        for cls in type(node).__mro__:
            handler = HANDLERS.get(cls)
            if handler is not None:
                return handler(self, node)
        from ir_compiler.expressions.functions import compile_function
        if isinstance(node, (exp.Func, exp.DPipe)):
            return compile_function(self, node)
        self.fail(f"{type(node).__name__} is not supported in expressions", node)

    def numeric(self, node: Node, src, what: str) -> None:
        if not (node.type.is_numeric or node.type.name == "null"):
            self.fail(f"{what} needs numbers but `{src.sql(dialect='postgres')}` is {node.type}; add a cast", src)


def compile_expression(text: str, schema: Schema, *, boolean: bool = False) -> CompiledExpression:
    tree = parse_expression(text)
    comp = _Compiler(text, schema)
    node = comp.compile(tree)
    if boolean and node.type not in (BOOL, NULL):
        raise ExpressionError(f"a condition must be true/false but this expression is {node.type}", expr=text)
    return CompiledExpression(text, node.type, comp.columns, node)


def referenced_columns(text: str) -> set[str]:
    return {c.name for c in parse_expression(text).find_all(exp.Column)}


# ---- leaves --------------------------------------------------------------------------------------------
def _column(c: _Compiler, node: exp.Column) -> Node:
    if node.table:
        c.fail(f"qualified column `{node.sql()}` is not supported; use the bare column name", node)
    name = node.name
    f = c.schema.get(name)
    if f is None:
        c.fail(f"unknown column '{name}'; available: {', '.join(c.schema.names) or 'none'}", node)
    c.columns.add(name)
    ctype = STRING if f.type.name == "json" else f.type
    return Node(ctype, lambda row: row.get(name), lambda t: t.column(name))


def _literal(c: _Compiler, node: exp.Literal) -> Node:
    if node.is_string:
        return const(node.this, STRING)
    text = node.this
    if re.fullmatch(r"\d+", text):
        if len(text) > 18 and int(text) > 2 ** 63 - 1:
            c.fail(f"integer {text[:40]} is out of the int range (at most {2 ** 63 - 1}); use a decimal literal "
                   f"like CAST('…' AS decimal(38,0))", node)
        return const(int(text), INT)
    return const(float(text), FLOAT)


def _boolean(c, node: exp.Boolean) -> Node:
    return const(bool(node.this), BOOL)


def _null(c, node) -> Node:
    return const(None, NULL)


def _paren(c, node) -> Node:
    return c.compile(node.this)


# ---- arithmetic ----------------------------------------------------------------------------------------
def _both(c, node, what):
    left, right = c.compile(node.left), c.compile(node.right)
    c.numeric(left, node.left, what)
    c.numeric(right, node.right, what)
    t = common_type(left.type, right.type) or FLOAT
    if t.name == "null":
        t = INT
    if t.name == "decimal":  # keep each side's own precision so Arrow's result precision stays <= 38
        return _narrow_decimal(left), _narrow_decimal(right), t
    return _typed(left, t), _typed(right, t), t


def _narrow_decimal(node: Node) -> Node:
    if node.type.name == "decimal":
        return node
    return const(None, parse_type("decimal(19,0)")) if node.type.name == "null" else coerce(
        node, parse_type("decimal(19,0)"))


def _typed(node: Node, t: ColumnType) -> Node:
    """A NULL literal takes the type it is used as; other nodes are widened to ``t``."""
    return const(None, t) if node.type.name == "null" else coerce(node, t)


_ARROW_ARITH = {exp.Add: pc.add, exp.Sub: pc.subtract, exp.Mul: pc.multiply}
_PY_ARITH = {exp.Add: lambda a, b: a + b, exp.Sub: lambda a, b: a - b, exp.Mul: lambda a, b: a * b}


def _arith(c, node) -> Node:
    left, right, t = _both(c, node, type(node).__name__.lower())
    kernel, py = _ARROW_ARITH[type(node)], strict(_PY_ARITH[type(node)])
    if t.name == "decimal":
        return Node(_decimal_result(t, node), row_of(py, left, right), arrow_of(kernel, left, right))
    return Node(t, row_of(py, left, right), arrow_of(lambda a, b: _cast_to(kernel(a, b), t), left, right))


def _decimal_result(t, node):
    return t if isinstance(node, (exp.Add, exp.Sub)) else parse_type("decimal(38,%d)" % min(38, t.scale * 2))


def _cast_to(x, t):
    return cast_arrow(x, t) if t.name in ("int", "float") else x


def _py_div(a, b, integer):
    if b == 0:
        return None
    if integer:
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return a / b


def _zero_safe(b):
    """(divisor is zero, divisor with zeros replaced by 1): division by zero gives NULL, not an error."""
    zero = pc.equal(b, pa.scalar(0, b.type))
    return zero, pc.if_else(zero, pa.scalar(1, b.type), b)


def _arrow_div(a, b, t):
    zero, safe = _zero_safe(b)
    return pc.if_else(zero, null_of(t), _cast_to(pc.divide(a, safe), t))


def _div(c, node) -> Node:
    left, right, t = _both(c, node, "division")
    if t.name == "decimal":
        left, right, t = coerce(left, FLOAT), coerce(right, FLOAT), FLOAT
    integer = t.name == "int"
    py = strict(lambda a, b: _py_div(a, b, integer))
    return Node(t, row_of(py, left, right), arrow_of(lambda a, b: _arrow_div(a, b, t), left, right))


def _py_mod(a, b, integer):
    if b == 0:
        return None
    if integer:
        return a - _py_div(a, b, True) * b
    return a - math.trunc(a / b) * b


def _arrow_mod(a, b, t):
    zero, safe = _zero_safe(b)
    q = pc.divide(a, safe)
    if t.name != "int":
        q = pc.trunc(q)
    r = pc.subtract(a, pc.multiply(q, safe))
    return pc.if_else(zero, null_of(t), _cast_to(r, t))


def _mod(c, node) -> Node:
    left, right, t = _both(c, node, "modulo")
    if t.name == "decimal":
        left, right, t = coerce(left, FLOAT), coerce(right, FLOAT), FLOAT
    integer = t.name == "int"
    return Node(t, row_of(strict(lambda a, b: _py_mod(a, b, integer)), left, right),
                arrow_of(lambda a, b: _arrow_mod(a, b, t), left, right))


def _neg(c, node) -> Node:
    inner = c.compile(node.this)
    c.numeric(inner, node.this, "unary minus")
    return Node(inner.type, row_of(strict(lambda a: -a), inner), arrow_of(pc.negate, inner), inner.constant)


# ---- comparison ----------------------------------------------------------------------------------------
_ARROW_CMP = {exp.EQ: pc.equal, exp.NEQ: pc.not_equal, exp.GT: pc.greater, exp.GTE: pc.greater_equal,
              exp.LT: pc.less, exp.LTE: pc.less_equal}
_PY_CMP = {exp.EQ: lambda a, b: a == b, exp.NEQ: lambda a, b: a != b, exp.GT: lambda a, b: a > b,
           exp.GTE: lambda a, b: a >= b, exp.LT: lambda a, b: a < b, exp.LTE: lambda a, b: a <= b}


def _temporal_literal(c, lit: Node, src, ctype: ColumnType) -> Node:
    text = lit.row({})
    try:
        value = dt.date.fromisoformat(text) if ctype.name == "date" else dt.datetime.fromisoformat(text)
    except ValueError:
        c.fail(f"'{text}' is not a valid {ctype} literal (use ISO format, e.g. 2024-01-31)", src)
    if ctype.name == "timestamp" and value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return const(value, ctype)


def comparable(c, left: Node, right: Node, lsrc, rsrc):
    """Both sides converted to the type they are compared in (or an error saying what to cast)."""
    if left.type.is_temporal and right.type == STRING and right.constant:
        right = _temporal_literal(c, right, rsrc, left.type)
    elif right.type.is_temporal and left.type == STRING and left.constant:
        left = _temporal_literal(c, left, lsrc, right.type)
    t = common_type(left.type, right.type)
    if t is None:
        c.fail(f"cannot compare {left.type} `{lsrc.sql(dialect='postgres')}` with {right.type} "
               f"`{rsrc.sql(dialect='postgres')}`; add a cast", lsrc)
    if t.name == "null":
        return const(None, BOOL), const(None, BOOL)
    return _typed(left, t), _typed(right, t)


def _compare(c, node) -> Node:
    left, right = comparable(c, c.compile(node.left), c.compile(node.right), node.left, node.right)
    kernel, py = _ARROW_CMP[type(node)], strict(_PY_CMP[type(node)])
    return Node(BOOL, row_of(py, left, right), arrow_of(kernel, left, right))


# ---- boolean logic -------------------------------------------------------------------------------------
def _bool_operand(c, src) -> Node:
    n = c.compile(src)
    if n.type not in (BOOL, NULL):
        c.fail(f"`{src.sql(dialect='postgres')}` is {n.type}, not true/false", src)
    return n if n.type == BOOL else const(None, BOOL)


def py_and(a, b):
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def py_or(a, b):
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _and(c, node) -> Node:
    a, b = _bool_operand(c, node.left), _bool_operand(c, node.right)
    return Node(BOOL, row_of(py_and, a, b), arrow_of(pc.and_kleene, a, b))


def _or(c, node) -> Node:
    a, b = _bool_operand(c, node.left), _bool_operand(c, node.right)
    return Node(BOOL, row_of(py_or, a, b), arrow_of(pc.or_kleene, a, b))


def _not(c, node) -> Node:
    a = _bool_operand(c, node.this)
    return Node(BOOL, row_of(strict(lambda v: not v), a), arrow_of(pc.invert, a))


def _is(c, node) -> Node:
    if not isinstance(node.expression, exp.Null):
        c.fail("only IS NULL / IS NOT NULL are supported", node)
    a = c.compile(node.this)
    if node.args.get("negate"):
        return Node(BOOL, row_of(lambda v: v is not None, a), arrow_of(lambda x: pc.is_valid(x), a))
    return Node(BOOL, row_of(lambda v: v is None, a), arrow_of(lambda x: pc.is_null(x), a))


def _in(c, node) -> Node:
    if node.args.get("query") or node.args.get("unnest"):
        c.fail("IN needs a list of values, not a subquery", node)
    value = c.compile(node.this)
    items = [c.compile(e) for e in node.expressions]
    if not all(i.constant for i in items):
        c.fail("IN (...) takes constant values", node)
    pairs = [comparable(c, value, i, node.this, e) for i, e in zip(items, node.expressions)]
    value = pairs[0][0] if pairs else value
    consts = [p[1].row({}) for p in pairs]
    has_null = any(v is None for v in consts)
    values = [v for v in consts if v is not None]
    vset = pa.array(values, type=None if not values else cast_arrow(pa.scalar(values[0]), value.type).type
                    if value.type.name != "null" else None)

    def py(v):
        if v is None:
            return None
        if v in values:
            return True
        return None if has_null else False

    def arrow(x):
        hit = pc.is_in(x, value_set=vset) if len(vset) else pc.equal(x, x)
        if not len(vset):
            hit = pc.if_else(pc.is_null(x), null_of(BOOL), pa.scalar(False))
        out = pc.if_else(pc.is_null(x), null_of(BOOL), hit)
        return pc.if_else(out, pa.scalar(True), null_of(BOOL)) if has_null else out

    return Node(BOOL, row_of(py, value), arrow_of(arrow, value))


def _between(c, node) -> Node:
    lo = exp.GTE(this=node.this, expression=node.args["low"])
    hi = exp.LTE(this=node.this, expression=node.args["high"])
    return _and(c, exp.And(this=lo, expression=hi))


def like_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return "".join(out)


def _like(c, node) -> Node:
    value, pat = c.compile(node.this), c.compile(node.expression)
    if value.type != STRING or not pat.constant or pat.type != STRING:
        c.fail("LIKE compares a text column with a constant text pattern", node)
    pattern = pat.row({})
    ignore = isinstance(node, exp.ILike)
    rx = re.compile(like_regex(pattern), re.DOTALL | (re.IGNORECASE if ignore else 0))
    return Node(BOOL, row_of(strict(lambda v: rx.fullmatch(v) is not None), value),
                arrow_of(lambda x: pc.match_like(x, pattern=pattern, ignore_case=ignore), value))


# ---- CASE ----------------------------------------------------------------------------------------------
def _case(c, node) -> Node:
    subject = node.this
    conds, values = [], []
    for branch in node.args.get("ifs") or []:
        cond_src = branch.this if subject is None else exp.EQ(this=subject, expression=branch.this)
        conds.append(_bool_operand(c, cond_src))
        values.append(c.compile(branch.args["true"]))
    default = c.compile(node.args["default"]) if node.args.get("default") is not None else const(None, NULL)
    t = NULL
    for v in values + [default]:
        nt = common_type(t, v.type)
        if nt is None:
            c.fail(f"CASE branches mix {t} and {v.type}; cast them to one type", node)
        t = nt
    if t.name == "null":
        t = STRING
    values = [coerce(v, t) if v.type.name != "null" else const(None, t) for v in values]
    default = coerce(default, t) if default.type.name != "null" else const(None, t)

    def py(row):
        for cond, val in zip(conds, values):
            if cond.row(row) is True:
                return val.row(row)
        return default.row(row)

    def arrow(table):
        n = table.num_rows
        cs = [pc.fill_null(broadcast(cond.arrow(table), n), False) for cond in conds]
        vs = [broadcast(cast_arrow(v.arrow(table), t), n) for v in values]
        struct = pc.make_struct(*cs, field_names=[f"c{i}" for i in range(len(cs))])
        return pc.case_when(struct, *vs, broadcast(cast_arrow(default.arrow(table), t), n))

    return Node(t, py, arrow)


HANDLERS = {
    exp.Column: _column, exp.Literal: _literal, exp.Boolean: _boolean, exp.Null: _null, exp.Paren: _paren,
    exp.Add: _arith, exp.Sub: _arith, exp.Mul: _arith, exp.Div: _div, exp.Mod: _mod, exp.Neg: _neg,
    exp.EQ: _compare, exp.NEQ: _compare, exp.GT: _compare, exp.GTE: _compare, exp.LT: _compare, exp.LTE: _compare,
    exp.And: _and, exp.Or: _or, exp.Not: _not, exp.Is: _is, exp.In: _in, exp.Between: _between,
    exp.Like: _like, exp.ILike: _like, exp.Case: _case,
}
