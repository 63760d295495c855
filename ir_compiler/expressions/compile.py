"""AST → typed Node (both back-ends). One handler per sqlglot expression class, in a dispatch table."""
from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ir_compiler.errors import ExpressionError
from ir_compiler.expressions import pgvalues as pv
from ir_compiler.expressions.nodes import (Node, arrow_of, broadcast, cast_arrow, coerce, const, elementwise,
                                           null_of, row_of, strict)
from ir_compiler.expressions.parse import UnaryPlus, parse_expression, position_of
from ir_compiler.types import (BOOL, DATE, FLOAT, INT, INTERVAL, NULL, STRING, TIMESTAMP, ColumnType, Schema, common_type,
                               decimal as decimal_type, to_arrow)



class CastError(ValueError):
    """A value could not be converted (or computed) at run time (the caller routes the row)."""


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
        self.constants: dict[int, object] = {}  # id(AST node) → its folded value
        self.failed: list = []  # (AST node, message) of constant subtrees that fail
        self.stable: set[int] = set()  # id(AST node) of calls PostgreSQL's planner does not fold (STABLE)

    def fail(self, message: str, node=None):
        raise ExpressionError(message, expr=self.text, position=position_of(self.text, node) if node else None)

    def compile(self, node: exp.Expression) -> Node:
        out = self._dispatch(node)
        if not out.constant and node.find(exp.Column) is None:
            out = _fold(self, out, node)
        if out.constant:
            self.constants[id(node)] = out.row({})
        return out

    def check_failed_constants(self):
        """PostgreSQL folds constant subexpressions when it plans a query, so one that fails is an error for
        the whole query, unless coalesce or CASE makes it unreachable; flow-beam says so at validation."""
        for src, message in self.failed:
            inner = src.this.unnest() if isinstance(src, exp.Cast) else None
            literal = isinstance(inner, exp.Literal) and inner.is_string
            if literal or not (self._pruned(src) or _stable(src, self.stable)):
                self.fail(f"{message} (a constant part of the expression always fails)", src)

    def _pruned(self, node) -> bool:
        while node.parent is not None:
            parent = node.parent
            if isinstance(parent, exp.Coalesce):
                args = [parent.this, *parent.expressions]
                idx = next((k for k, a in enumerate(args) if a is node), 0)
                if any(self.constants.get(id(a), None) is not None and not _stable(a, self.stable)
                       for a in args[:idx]):
                    return True
            if isinstance(parent, exp.If) and node is parent.args.get("true"):
                if id(parent.this) in self.constants and self.constants[id(parent.this)] is not True:
                    return True
            if isinstance(parent, exp.Case) and parent.this is None:
                ifs = parent.args.get("ifs") or []
                idx = next((k for k, a in enumerate(ifs) if a is node), len(ifs))
                if any(self.constants.get(id(a.this)) is True for a in ifs[:idx]):
                    return True
            node = parent
        return False

    def _dispatch(self, node: exp.Expression) -> Node:
        for cls in type(node).__mro__:
            handler = HANDLERS.get(cls)
            if handler is not None:
                return handler(self, node)
        from ir_compiler.expressions.functions import compile_function
        if isinstance(node, (exp.Func, exp.DPipe, exp.Bracket)):
            return compile_function(self, node)
        self.fail(f"{type(node).__name__} is not supported in expressions", node)

    def numeric(self, node: Node, src, what: str) -> None:
        if not (node.type.is_numeric or node.type.name == "null"):
            self.fail(f"{what} needs numbers but `{src.sql(dialect='postgres')}` is {node.type}; add a cast", src)


_STABLE = {"to_char", "to_date", "to_timestamp", "age", "now"}


def _stable(src, marked=frozenset()) -> bool:
    """PostgreSQL does not fold STABLE functions (to_char, to_date, age, now…) when it plans: a failing call is
    only an error for the rows that reach it."""
    return any(id(n) in marked or isinstance(n, exp.Anonymous) and n.name.lower() in _STABLE
               or isinstance(n, (exp.CurrentDate, exp.CurrentTimestamp))
               or isinstance(n, exp.Cast) and n.to.this == exp.DataType.Type.TIMESTAMPTZ  # reads TimeZone
               for n in src.walk())


def _fold(c: "_Compiler", node: Node, src) -> Node:
    """A subtree without columns is computed once, at compile time (a constant in both back-ends, broadcast to the
    batch). If it fails (``CAST('x' AS int)``) the expression is rejected (see check_failed_constants) unless it is
    unreachable (``coalesce(DATE '2020-01-01', CAST('x' AS date))``); rows that reach it anyway fail with the
    reason."""
    try:
        value = node.row({})
    except (ValueError, ArithmeticError, TypeError, OverflowError) as exc:
        message = f"`{src.sql(dialect='postgres')}` fails: {exc}"
        c.failed.append((src, message))

        def fail(*_):
            raise CastError(message)
        return Node(node.type, fail, fail)
    out = const(value, node.type)
    if _stable(src, c.stable):
        out = Node(out.type, out.row, out.arrow, True, stable=True)
    return out


def compile_expression(text: str, schema: Schema, *, boolean: bool = False) -> CompiledExpression:
    tree = parse_expression(text)
    comp = _Compiler(text, schema)
    node = comp.compile(tree)
    comp.check_failed_constants()
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
    if re.fullmatch(r"\d+", text) and int(text) <= pv.INT64_MAX:
        return const(int(text), INT)
    d = decimal.Decimal(text)  # PostgreSQL: 1.5 and 1e3 are numeric, not double precision
    if d.as_tuple().exponent > 0:
        if len(d.as_tuple().digits) + d.as_tuple().exponent > 38:
            c.fail(f"number {text} has more than 38 digits", node)
        d = d.quantize(decimal.Decimal(1), context=pv.DEC)  # 1e3 → 1000
    scale = max(0, -d.as_tuple().exponent)
    precision = max(len(d.as_tuple().digits), scale, 1)
    if precision > 38:
        c.fail(f"number {text} has more than 38 digits", node)
    return const(d, decimal_type(precision, scale))


def _boolean(c, node: exp.Boolean) -> Node:
    return const(bool(node.this), BOOL)


def _null(c, node) -> Node:
    return const(None, NULL)


def _paren(c, node) -> Node:
    return c.compile(node.this)


# ---- arithmetic ----------------------------------------------------------------------------------------
def _typed(node: Node, t: ColumnType) -> Node:
    """A NULL literal takes the type it is used as; other nodes are widened to ``t``."""
    return const(None, t) if node.type.name == "null" else coerce(node, t)


def _decimal_result(op, a: ColumnType, b: ColumnType) -> ColumnType:
    if op in ("add", "sub"):
        scale = max(a.scale, b.scale)
        return decimal_type(min(38, max(a.precision - a.scale, b.precision - b.scale) + scale + 1), scale)
    if op == "mul":
        scale = min(a.scale + b.scale, 37)
        return decimal_type(min(38, max(a.precision + b.precision + 1, scale + 1)), scale)
    scale = max(a.scale, b.scale)  # mod
    return decimal_type(min(38, max(a.precision, b.precision, scale + 1)), scale)


def _as_decimal(node: Node) -> Node:
    if node.type.name == "decimal":
        return node
    t = decimal_type(19, 0)
    return const(None, t) if node.type.name == "null" else coerce(node, t)


_PY_OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}
_DEC_OPS = {"add": pv.DEC.add, "sub": pv.DEC.subtract, "mul": pv.DEC.multiply, "mod": pv.DEC.remainder}
_ARROW_OPS = {"add": pc.add_checked, "sub": pc.subtract_checked, "mul": pc.multiply_checked}


def _numeric_pair(c, node, what):
    left, right = c.compile(node.left), c.compile(node.right)
    c.numeric(left, node.left, what)
    c.numeric(right, node.right, what)
    t = common_type(left.type, right.type) or FLOAT
    if t.name == "null":
        t = INT
    return left, right, t


def _int_result(v):
    return pv.check_int(v)


def _arith(c, node) -> Node:
    from ir_compiler.expressions.temporal import temporal_arith
    op = {exp.Add: "add", exp.Sub: "sub", exp.Mul: "mul"}[type(node)]
    left, right = c.compile(node.left), c.compile(node.right)
    if any(n.type.is_temporal or n.type == INTERVAL for n in (left, right)):
        return temporal_arith(c, op, left, right, node)
    left, right, t = _numeric_pair(c, node, op)
    null_const = any(n.constant and not n.stable and n.row({}) is None for n in (left, right))
    if t.name == "decimal":
        a, b = _as_decimal(left), _as_decimal(right)
        if null_const:
            return const(None, _decimal_result(op, a.type, b.type))
        out = _decimal_result(op, a.type, b.type)
        fn, atype = _DEC_OPS[op], to_arrow(out)

        def py_dec(x, y):
            try:
                return pv.fit_decimal(fn(x, y), out.precision, out.scale)
            except pv.ConversionError as exc:
                raise pv.ConversionError(f"{exc} (flow-beam: decimals hold at most 38 digits)") from None

        def arrow_dec(x, y):
            try:
                return cast_arrow(_ARROW_OPS[op](x, y), out)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return _map2(py_dec, x, y, atype)
        return Node(out, row_of(strict(py_dec), a, b), arrow_of(arrow_dec, a, b))
    if null_const:
        return const(None, t)
    a, b = _typed(left, t), _typed(right, t)
    py = _PY_OPS[op]
    if t.name == "int":
        return Node(t, row_of(strict(lambda x, y: _int_result(py(x, y))), a, b), arrow_of(_ARROW_OPS[op], a, b))
    return Node(t, row_of(strict(lambda x, y: _float_result(py(x, y), x, y, op=op)), a, b),
                arrow_of(lambda x, y: _checked_float(_ARROW_OPS[op](x, y), x, y, op=op), a, b))


def _float_result(v, x, y, op="add"):
    """PostgreSQL raises when a float result overflows to infinity (inputs finite) or, for * and /, underflows
    to zero (inputs non-zero)."""
    if math.isinf(v) and not (math.isinf(x) or math.isinf(y)):
        raise CastError("value out of range: overflow")
    if v == 0 and op in ("mul", "div") and x != 0 and (op == "div" or y != 0) and not math.isinf(y):
        raise CastError("value out of range: underflow")
    return v


def _checked_float(out, x, y, op="add"):
    bad = pc.and_(pc.is_inf(out), pc.and_(pc.invert(pc.is_inf(x)), pc.invert(pc.is_inf(y))))
    if op in ("mul", "div"):
        under = pc.and_(pc.equal(out, 0.0), pc.and_(pc.not_equal(x, 0.0), pc.invert(pc.is_inf(y))))
        if op == "mul":
            under = pc.and_(under, pc.not_equal(y, 0.0))
        bad = pc.or_(bad, under)
    if pc.any(bad).as_py() if not isinstance(bad, pa.Scalar) else bad.as_py():
        raise CastError("value out of range: overflow or underflow")
    return out


def _map2(fn, x, y, atype):
    n = max(len(v) for v in (x, y) if not isinstance(v, pa.Scalar)) if not (
        isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar)) else 1
    f = strict(fn)
    if isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar):
        return pa.scalar(f(x.as_py(), y.as_py()), atype)
    xs, ys = broadcast(x, n).to_pylist(), broadcast(y, n).to_pylist()
    return pa.array([f(a, b) for a, b in zip(xs, ys)], atype)


def _py_div(a, b, integer):
    if b == 0:
        return None
    if integer:
        q = abs(a) // abs(b)
        return pv.check_int(q if (a >= 0) == (b >= 0) else -q)
    return _float_result(a / b, a, b, op="div")


def _zero_safe(b):
    """(divisor is zero, divisor with zeros replaced by 1): division by zero gives NULL, not an error."""
    zero = pc.equal(b, pa.scalar(0, b.type))
    return zero, pc.if_else(zero, pa.scalar(1, b.type), b)


def _arrow_div(a, b, t):
    zero, safe = _zero_safe(b)
    q = pc.divide_checked(a, safe)
    if t.name == "float":
        q = _checked_float(q, a, b, op="div")
    return pc.if_else(zero, null_of(t), q)


def _null_or_zero(n: Node) -> bool:
    return n.constant and not n.stable and (n.row({}) is None or n.row({}) == 0)


def _div(c, node) -> Node:
    left, right, t = _numeric_pair(c, node, "division")
    if _null_or_zero(right) or _null_or_zero(left) and left.row({}) is None:
        return const(None, FLOAT if t.name == "decimal" else t)
    if t.name == "decimal":  # documented: decimal division is computed in double precision
        t = FLOAT
    left, right = _typed(left, t), _typed(right, t)
    integer = t.name == "int"
    py = strict(lambda a, b: _py_div(a, b, integer))
    return Node(t, row_of(py, left, right), arrow_of(lambda a, b: _arrow_div(a, b, t), left, right))


def _py_mod(a, b, integer):
    if b == 0:
        return None
    if integer:  # x % -1 is 0, also for the smallest bigint (PostgreSQL's int8mod special case)
        return 0 if b == -1 else a - _py_div(a, b, True) * b
    return math.fmod(a, b)


def _arrow_mod(a, b, t):
    zero, safe = _zero_safe(b)
    if t.name != "int":
        return _map2(lambda x, y: _py_mod(x, y, False), a, b, to_arrow(t))
    safe = pc.if_else(pc.equal(safe, pa.scalar(-1, b.type)), pa.scalar(1, b.type), safe)
    q = pc.divide(a, safe)  # x % -1 = x % 1 = 0: never the wrapping min / -1
    r = pc.subtract(a, pc.multiply(q, safe))
    return pc.if_else(zero, null_of(t), r)


def mod_node(c, left: Node, right: Node, lsrc, rsrc) -> Node:
    c.numeric(left, lsrc, "modulo")
    c.numeric(right, rsrc, "modulo")
    t = common_type(left.type, right.type) or FLOAT
    if t.name == "null":
        t = INT
    if _null_or_zero(right) or _null_or_zero(left) and left.row({}) is None:
        return const(None, _decimal_result("mod", _as_decimal(left).type, _as_decimal(right).type)
                     if t.name == "decimal" else t)
    if t.name == "decimal":
        a, b = _as_decimal(left), _as_decimal(right)
        out = _decimal_result("mod", a.type, b.type)
        return elementwise(lambda x, y: None if y == 0 else pv.fit_decimal(pv.DEC.remainder(x, y), out.precision,
                                                                            out.scale), out, a, b)
    left, right = _typed(left, t), _typed(right, t)
    integer = t.name == "int"
    return Node(t, row_of(strict(lambda a, b: _py_mod(a, b, integer)), left, right),
                arrow_of(lambda a, b: _arrow_mod(a, b, t), left, right))


def _mod(c, node) -> Node:
    return mod_node(c, c.compile(node.left), c.compile(node.right), node.left, node.right)


def _neg(c, node) -> Node:
    inner = c.compile(node.this)
    if inner.type == INTERVAL:
        return elementwise(lambda v: pa.MonthDayNano([-v.months, -v.days, -v.nanoseconds]), INTERVAL, inner)
    c.numeric(inner, node.this, "unary minus")
    if inner.type.name == "null":
        return inner
    py = (lambda a: pv.check_int(-a)) if inner.type.name == "int" else pv.DEC.minus if \
        inner.type.name == "decimal" else (lambda a: -a)
    return Node(inner.type, row_of(strict(py), inner), arrow_of(pc.negate_checked, inner), inner.constant)


def _plus(c, node) -> Node:
    """Unary ``+``: the operand itself, once it is a number (PostgreSQL has no ``+`` for text, bool, dates or
    intervals)."""
    inner = c.compile(node.this)
    c.numeric(inner, node.this, "unary plus")
    return inner


# ---- comparison ----------------------------------------------------------------------------------------
_ARROW_CMP = {exp.EQ: pc.equal, exp.NEQ: pc.not_equal, exp.GT: pc.greater, exp.GTE: pc.greater_equal,
              exp.LT: pc.less, exp.LTE: pc.less_equal}
_PY_CMP = {exp.EQ: lambda a, b: a == b, exp.NEQ: lambda a, b: a != b, exp.GT: lambda a, b: a > b,
           exp.GTE: lambda a, b: a >= b, exp.LT: lambda a, b: a < b, exp.LTE: lambda a, b: a <= b}


def _temporal_literal(c, lit: Node, src, ctype: ColumnType) -> Node:
    text = lit.row({})
    try:
        value = pv.text_to_date(text) if ctype.name == "date" else pv.text_to_timestamp(text)
    except ValueError as exc:
        c.fail(f"'{text}' is not a valid {ctype} literal ({exc})", src)
    return const(value, ctype)


_NUMERIC_TEXT = re.compile(r"(?i)\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*")


def _quoted_literal(c, lit: Node, src, ctype: ColumnType) -> Node:
    """A quoted literal compared with a number or a boolean is read as that type, as PostgreSQL reads an
    unknown-typed literal (``i = '5'``, ``flag = 't'``); text that type does not read is an error here."""
    text = lit.row({})
    try:
        if ctype.name == "int":
            return const(pv.text_to_int(text), INT)
        if ctype.name == "float":
            return const(pv.text_to_float(text), FLOAT)
        if ctype.name == "bool":
            return const(pv.text_to_bool(text), BOOL)
        if not _NUMERIC_TEXT.fullmatch(text):  # numeric: the literal keeps its own digits (no typmod)
            raise ValueError("not a number")
        return _literal(c, exp.Literal.number(text.strip().lstrip("+")))
    except ValueError:
        c.fail(f"invalid input syntax for type {ctype.name if ctype.name != 'decimal' else 'numeric'}: "
               f"'{text}' (a quoted literal compared with a {ctype} value is read as {ctype}, as in PostgreSQL)", src)


def _is_quoted(src) -> bool:
    return isinstance(src, exp.Literal) and src.is_string


def comparable(c, left: Node, right: Node, lsrc, rsrc):
    """Both sides converted to the type they are compared in (or an error saying what to cast)."""
    if left.type.is_temporal and right.type == STRING and right.constant:
        right = _temporal_literal(c, right, rsrc, left.type)
    elif right.type.is_temporal and left.type == STRING and left.constant:
        left = _temporal_literal(c, left, lsrc, right.type)
    elif (left.type.is_numeric or left.type == BOOL) and right.type == STRING and _is_quoted(rsrc):
        right = _quoted_literal(c, right, rsrc, left.type)
    elif (right.type.is_numeric or right.type == BOOL) and left.type == STRING and _is_quoted(lsrc):
        left = _quoted_literal(c, left, lsrc, right.type)
    t = common_type(left.type, right.type)
    if t is None or t.name in ("array", "interval"):
        c.fail(f"cannot compare {left.type} `{lsrc.sql(dialect='postgres')}` with {right.type} "
               f"`{rsrc.sql(dialect='postgres')}`; add a cast", lsrc)
    if t.name == "null":
        return const(None, BOOL), const(None, BOOL)
    return _typed(left, t), _typed(right, t)


def _compare(c, node) -> Node:
    if isinstance(node.right, exp.Any):  # v = ANY(array)
        from ir_compiler.expressions.functions import any_of_array
        return any_of_array(c, node)
    left, right = comparable(c, c.compile(node.left), c.compile(node.right), node.left, node.right)
    if any(n.constant and not n.stable and n.row({}) is None for n in (left, right)):
        return const(None, BOOL)
    kernel, py = _ARROW_CMP[type(node)], strict(_PY_CMP[type(node)])
    return Node(BOOL, row_of(py, left, right), arrow_of(kernel, left, right))


def _distinct(c, node) -> Node:
    """IS [NOT] DISTINCT FROM: NULL-safe (in)equality."""
    left, right = comparable(c, c.compile(node.left), c.compile(node.right), node.left, node.right)
    same = isinstance(node, exp.NullSafeEQ)

    def py(a, b):
        eq = (a is None and b is None) or (a is not None and b is not None and a == b)
        return eq if same else not eq

    def arrow(a, b):
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        eq = pc.or_(both_null, pc.fill_null(pc.equal(a, b), False))
        return eq if same else pc.invert(eq)
    return Node(BOOL, row_of(py, left, right), arrow_of(arrow, left, right))


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
    """The row back-end stops at a false left side (as PostgreSQL does): ``x <> 0 AND 10 / x > 1`` never
    evaluates the right side where it is not needed (the Arrow back-end falls back to rows if it fails)."""
    a, b = _bool_operand(c, node.left), _bool_operand(c, node.right)
    for x, y in ((a, b), (b, a)):
        if x.constant and not x.stable and x.row({}) is False:
            return const(False, BOOL)
        if x.constant and not x.stable and x.row({}) is True:
            return y
    ga, gb = a.row, b.row

    def py(row):
        x = ga(row)
        return False if x is False else py_and(x, gb(row))
    return Node(BOOL, py, arrow_of(pc.and_kleene, a, b))


def _or(c, node) -> Node:
    a, b = _bool_operand(c, node.left), _bool_operand(c, node.right)
    for x, y in ((a, b), (b, a)):
        if x.constant and not x.stable and x.row({}) is True:
            return const(True, BOOL)
        if x.constant and not x.stable and x.row({}) is False:
            return y
    ga, gb = a.row, b.row

    def py(row):
        x = ga(row)
        return True if x is True else py_or(x, gb(row))
    return Node(BOOL, py, arrow_of(pc.or_kleene, a, b))


def negate(n: Node) -> Node:
    return Node(BOOL, row_of(strict(lambda v: not v), n), arrow_of(pc.invert, n), n.constant)


def _not(c, node) -> Node:
    return negate(_bool_operand(c, node.this))


def _is(c, node) -> Node:
    neg = bool(node.args.get("negate"))
    if isinstance(node.expression, exp.Boolean):  # IS [NOT] TRUE / FALSE: never NULL
        a = _bool_operand(c, node.this)
        want = bool(node.expression.this)
        return Node(BOOL, row_of(lambda v: (v is want) != neg, a),
                    arrow_of(lambda x: pc.fill_null(pc.equal(x, pa.scalar(want)), False) if not neg else
                             pc.invert(pc.fill_null(pc.equal(x, pa.scalar(want)), False)), a))
    if not isinstance(node.expression, exp.Null):
        c.fail("only IS [NOT] NULL, IS [NOT] TRUE/FALSE and IS [NOT] DISTINCT FROM are supported", node)
    a = c.compile(node.this)
    if neg:
        return Node(BOOL, row_of(lambda v: v is not None, a), arrow_of(lambda x: pc.is_valid(x), a))
    return Node(BOOL, row_of(lambda v: v is None, a), arrow_of(lambda x: pc.is_null(x), a))


def _in(c, node) -> Node:
    if node.args.get("query") or node.args.get("unnest"):
        c.fail("IN needs a list of values, not a subquery", node)
    if not node.expressions:  # `x IN` / `x IN ()`: a syntax error in PostgreSQL, never an always-false test
        c.fail("IN needs a list of values: x IN (1, 2)", node)
    value = c.compile(node.this)
    items = [c.compile(e) for e in node.expressions]
    if not all(i.constant for i in items):
        c.fail("IN (...) takes constant values", node)
    pairs = [comparable(c, value, i, node.this, e) for i, e in zip(items, node.expressions)]
    wide = pairs[0][0].type  # the value and every item in one type, the widest of all the pairs' types
    for p in pairs[1:]:      # (`i IN (1.5, 2)` compares in numeric: 1 is not 1.5, as in PostgreSQL)
        t = common_type(wide, p[0].type)
        if t is None:
            c.fail(f"IN mixes {wide} and {p[0].type}; cast the values to one type", node)
        wide = t
    value = next((p[0] for p in pairs if p[0].type == wide), None) or _typed(value, wide)
    consts = [coerce(p[1], value.type).row({}) if p[1].type.name != "null" else None for p in pairs]
    has_null = any(v is None for v in consts)
    values = [v for v in consts if v is not None]
    floats = value.type.name == "float"  # -0.0 is 0.0 and NaN is NaN here, as in PostgreSQL (a hash set: neither)
    if floats:
        values = [v + 0.0 for v in values]
    vset = pa.array(values, type=to_arrow(value.type)) if values else None
    nan_listed = floats and any(v != v for v in values)

    def py(v):
        if v is None:
            return None
        if v in values or (nan_listed and v != v):
            return True
        return None if has_null else False

    def arrow(x):
        if floats:
            x = pc.add(x, pa.scalar(0.0, x.type))
        if vset is None:
            hit = pc.if_else(pc.is_null(x), null_of(BOOL), pa.scalar(False))
        else:
            hit = pc.if_else(pc.is_null(x), null_of(BOOL), pc.is_in(x, value_set=vset))
        return pc.if_else(hit, pa.scalar(True), null_of(BOOL)) if has_null else hit

    out = Node(BOOL, row_of(py, value), arrow_of(arrow, value))
    return negate(out) if node.args.get("negate") else out


def _between(c, node) -> Node:
    lo = exp.GTE(this=node.this, expression=node.args["low"])
    hi = exp.LTE(this=node.this, expression=node.args["high"])
    inside = exp.And(this=lo, expression=hi)
    if node.args.get("symmetric"):  # BETWEEN SYMMETRIC: either bound may be the lower one (PostgreSQL)
        lo2 = exp.GTE(this=node.this, expression=node.args["high"])
        hi2 = exp.LTE(this=node.this, expression=node.args["low"])
        inside = exp.Or(this=exp.Paren(this=inside), expression=exp.Paren(this=exp.And(this=lo2, expression=hi2)))
        return c.compile(inside)
    return _and(c, inside)


# ---- CASE ----------------------------------------------------------------------------------------------
def unify(c, nodes: list[Node], src, what: str):
    t = NULL
    for v in nodes:
        nt = common_type(t, v.type)
        if nt is None:
            c.fail(f"{what} mix {t} and {v.type}; cast them to one type", src)
        t = nt
    return t


def _case(c, node) -> Node:
    subject = node.this
    conds, values = [], []
    for branch in node.args.get("ifs") or []:
        cond_src = branch.this if subject is None else exp.EQ(this=subject, expression=branch.this)
        conds.append(_bool_operand(c, cond_src))
        values.append(c.compile(branch.args["true"]))
    default = c.compile(node.args["default"]) if node.args.get("default") is not None else const(None, NULL)
    t = unify(c, values + [default], node, "CASE branches")
    kept = []  # arms with a constant condition are resolved now (as PostgreSQL's planner does)
    for cond, val in zip(conds, values):
        if cond.constant and not cond.stable:
            if cond.row({}) is True:
                default = val
                break
            continue
        kept.append((cond, val))
    conds, values = [k[0] for k in kept], [k[1] for k in kept]
    if t.name == "null":
        t = STRING
    values = [_typed(v, t) for v in values]
    default = _typed(default, t)
    if not conds:
        return default

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


def _typed_literal(c, node) -> Node:
    """``DATE '2020-01-01'``, ``TIMESTAMP '…'``, ``INTERVAL '1 day'`` parse as casts of a literal."""
    from ir_compiler.expressions.functions import compile_function
    return compile_function(c, node)


HANDLERS = {
    exp.Column: _column, exp.Literal: _literal, exp.Boolean: _boolean, exp.Null: _null, exp.Paren: _paren,
    exp.Add: _arith, exp.Sub: _arith, exp.Mul: _arith, exp.Div: _div, exp.Mod: _mod, exp.Neg: _neg, UnaryPlus: _plus,
    exp.EQ: _compare, exp.NEQ: _compare, exp.GT: _compare, exp.GTE: _compare, exp.LT: _compare, exp.LTE: _compare,
    exp.NullSafeEQ: _distinct, exp.NullSafeNEQ: _distinct,
    exp.And: _and, exp.Or: _or, exp.Not: _not, exp.Is: _is, exp.In: _in, exp.Between: _between,
    exp.Case: _case,
}


def _register_patterns():
    from ir_compiler.expressions import patterns
    HANDLERS.update(patterns.HANDLERS)
    from ir_compiler.expressions import temporal
    HANDLERS.update(temporal.HANDLERS)


_register_patterns()
