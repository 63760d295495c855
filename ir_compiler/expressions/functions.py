"""Scalar SQL functions: text, numbers, NULL handling, CAST, dates (both back-ends). Every name a user can call is
in ``_BY_CLASS`` or ``_BY_NAME``; anything else is a validation error naming the function."""
from __future__ import annotations

import datetime as dt
import decimal
import functools
import hashlib
import math

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ir_compiler.expressions import patterns, pgvalues as pv, temporal
from ir_compiler.expressions.nodes import (Node, arrow_of, broadcast, cast_arrow, coerce, const, elementwise,
                                           null_of, row_of, strict)
from ir_compiler.types import (BOOL, DATE, FLOAT, INT, NULL, STRING, TIMESTAMP, ColumnType, common_type, decimal as
                               decimal_type, to_arrow)

INTERVAL = temporal.INTERVAL
_T = exp.DataType.Type
_DT_NAMES = {
    _T.INT: INT, _T.BIGINT: INT, _T.SMALLINT: INT, _T.DOUBLE: FLOAT, _T.VARCHAR: STRING, _T.TEXT: STRING,
    _T.NVARCHAR: STRING, _T.BOOLEAN: BOOL, _T.DATE: DATE, _T.TIMESTAMP: TIMESTAMP, _T.TIMESTAMPTZ: TIMESTAMP,
    _T.DATETIME: TIMESTAMP, _T.INTERVAL: INTERVAL, _T.JSON: STRING, _T.JSONB: STRING,
}


def _args(node) -> list:
    out = [node.this] if node.this is not None and isinstance(node.this, exp.Expression) else []
    for key in ("expression", "expressions", "decimals", "start", "length"):
        v = node.args.get(key)
        if isinstance(v, list):
            out += v
        elif isinstance(v, exp.Expression):
            out.append(v)
    return out


def _text(c, src):
    n = c.compile(src)
    if n.type not in (STRING, NULL):
        c.fail(f"`{src.sql(dialect='postgres')}` is {n.type}, but this function needs text; add a cast", src)
    return n if n.type == STRING else const(None, STRING)


def _num(c, src):
    n = c.compile(src)
    c.numeric(n, src, "this function")
    return n if n.type != NULL else const(None, INT)


def _int(c, src, what):
    n = c.compile(src)
    if n.type.name not in ("int", "null"):
        c.fail(f"{what} must be a whole number; `{src.sql(dialect='postgres')}` is {n.type}", src)
    return n if n.type == INT else const(None, INT)


def _int_const(c, src, what):
    n = c.compile(src)
    if not n.constant or n.type != INT:
        c.fail(f"{what} must be a whole-number constant", src)
    return n.row({})


def _count(c, node, args, lo, hi=None):
    hi = lo if hi is None else hi
    if not lo <= len(args) <= hi:
        name = node.sql(dialect="postgres").split("(")[0]
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        c.fail(f"{name}() takes {want} argument(s), got {len(args)}", node)


# ---- text ------------------------------------------------------------------------------------------
def _upper_lower(upper: bool):
    def build(c, node):
        a = _text(c, node.this)
        py = patterns.simple_upper if upper else patterns.simple_lower

        def arrow(x):
            if upper and not isinstance(x, pa.Scalar) and pc.any(pc.match_substring(x, "ß")).as_py():
                return pa.array([None if v is None else py(v) for v in x.to_pylist()], pa.string())  # Arrow: ẞ
            return (pc.utf8_upper if upper else pc.utf8_lower)(x)
        return Node(STRING, row_of(strict(py), a), arrow_of(arrow, a))
    return build


def _length(c, node):
    a = _text(c, node.this)
    return Node(INT, row_of(strict(len), a), arrow_of(lambda x: pc.cast(pc.utf8_length(x), pa.int64()), a))


def _octet_length(c, args, node):
    _count(c, node, args, 1)
    a = _text(c, args[0])
    return Node(INT, row_of(strict(lambda v: len(v.encode())), a),
                arrow_of(lambda x: pc.cast(pc.binary_length(x), pa.int64()), a))


def _substring_py(v, start, length=None):
    if length is not None and length < 0:
        raise ValueError("negative substring length not allowed")
    s = start - 1
    lo = max(s, 0)
    if length is None:
        return v[lo:]
    return v[lo:max(s + length, 0)]


def _substring(c, node):
    a = _text(c, node.this)
    start = _int(c, node.args["start"], "substring start") if node.args.get("start") else const(1, INT)
    length = _int(c, node.args["length"], "substring length") if node.args.get("length") else None
    n_const = length.row({}) if length is not None and length.constant else None
    if start.constant and (length is None or length.constant) and not (n_const is not None and n_const < 0):
        s0 = start.row({})
        n0 = length.row({}) if length is not None else None
        if s0 is None or (length is not None and n0 is None):
            return const(None, STRING)
        lo = max(s0 - 1, 0)
        hi = None if n0 is None else max(s0 - 1 + n0, 0)
        return Node(STRING, row_of(strict(lambda v: v[lo:hi]), a),
                    arrow_of(lambda x: pc.utf8_slice_codeunits(x, lo, hi if hi is not None else 2 ** 31 - 1), a))
    if length is None:
        return elementwise(_substring_py, STRING, a, start)
    return elementwise(_substring_py, STRING, a, start, length)


def _concat(c, node):
    parts = [c.compile(e) for e in node.expressions]

    def py(row):
        return "".join(pv.value_out(v) for v in (p.row(row) for p in parts) if v is not None)

    def arrow(t):
        n = t.num_rows
        cols = [pc.fill_null(broadcast(_out_text_arrow(p.arrow(t), p.type), n), "") for p in parts]
        if len(cols) == 1:
            return cols[0]
        return pc.binary_join_element_wise(*cols, "")
    return Node(STRING, py, arrow)


def _concat_ws(c, node):
    args = node.expressions
    if len(args) < 2:
        c.fail("concat_ws takes a separator and at least one value", node)
    sep = _text(c, args[0])
    parts = [c.compile(e) for e in args[1:]]

    def py(row):
        s = sep.row(row)
        if s is None:
            return None
        return s.join(pv.value_out(v) for v in (p.row(row) for p in parts) if v is not None)

    def arrow(t):
        rows = [sep.arrow(t)] + [_out_text_arrow(p.arrow(t), p.type) for p in parts]
        cols = [broadcast(r, t.num_rows).to_pylist() for r in rows]
        return pa.array([None if r[0] is None else r[0].join(v for v in r[1:] if v is not None)
                         for r in zip(*cols)], pa.string())
    return Node(STRING, py, arrow)


def _out_text_arrow(x, ctype):
    """As :func:`_to_text_arrow`, booleans as their output function prints them (``t``/``f``: concat)."""
    if ctype == BOOL:
        if isinstance(x, pa.Scalar):
            return pa.scalar(pv.value_out(x.as_py()), pa.string())
        return pc.if_else(x, pa.scalar("t"), pa.scalar("f"))
    return _to_text_arrow(x, ctype)


def _to_text_arrow(x, ctype):
    if ctype.name == "null":
        return pa.scalar(None, pa.string())
    if ctype == STRING:
        return x
    if isinstance(x, pa.Scalar):
        return pa.scalar(pv.value_text(x.as_py()), pa.string())
    from ir_compiler.ops.cast import cast_array
    return cast_array(x, STRING)[0]


def _dpipe(c, node):
    a, b = c.compile(node.left), c.compile(node.right)
    if a.type != STRING and b.type != STRING and NULL not in (a.type, b.type):
        c.fail("|| joins text: one side must be text (add a cast)", node)

    def text(n):
        if n.type == NULL:
            return const(None, STRING)
        if n.type == STRING:
            return n
        return Node(STRING, row_of(strict(pv.value_text), n), arrow_of(lambda x: _to_text_arrow(x, n.type), n),
                    n.constant)
    a, b = text(a), text(b)
    return Node(STRING, row_of(strict(lambda x, y: x + y), a, b),
                arrow_of(lambda x, y: pc.binary_join_element_wise(x, y, "", null_handling="emit_null"), a, b))


def _replace(c, args, node=None):
    a, frm, to = (_text(c, x) for x in args)

    def py(v, f, t):
        return v if f == "" else v.replace(f, t)
    if frm.constant and to.constant and frm.row({}):
        f, t_ = frm.row({}), to.row({})
        if t_ is None:
            return const(None, STRING)
        return Node(STRING, row_of(strict(lambda v: v.replace(f, t_)), a),
                    arrow_of(lambda x: pc.replace_substring(x, pattern=f, replacement=t_), a))
    return elementwise(py, STRING, a, frm, to)


def _strpos_py(v, s):
    return v.find(s) + 1


def _strpos(c, a_src, sub_src):
    """Position in characters (PostgreSQL), not bytes: Arrow's find_substring counts bytes, so the Arrow back-end
    splits at the first match and counts the characters before it."""
    a, sub = _text(c, a_src), _text(c, sub_src)
    if not sub.constant:
        return elementwise(_strpos_py, INT, a, sub)
    s = sub.row({})
    if s is None:
        return const(None, INT)
    if s == "":
        return Node(INT, row_of(strict(lambda v: 1), a),
                    arrow_of(lambda x: pc.if_else(pc.is_null(x), null_of(INT), pa.scalar(1)), a))

    def arrow(x):
        parts = pc.split_pattern(x, pattern=s, max_splits=1)
        found = pc.greater(pc.list_value_length(parts), 1)
        before = pc.cast(pc.utf8_length(pc.list_element(parts, 0)), pa.int64())
        return pc.if_else(found, pc.add(before, 1), pa.scalar(0, pa.int64()))
    return Node(INT, row_of(strict(lambda v: _strpos_py(v, s)), a), arrow_of(arrow, a))


def _left_right_py(v, n, left):
    if left:
        return v[:n] if n >= 0 else v[:max(len(v) + n, 0)]
    if n == 0:
        return ""
    return v[-n:] if n > 0 else v[min(-n, len(v)):]


def _left_right(c, args, left: bool):
    a = _text(c, args[0])
    nn = _int(c, args[1], "the length")
    if not nn.constant:
        return elementwise(lambda v, k: _left_right_py(v, k, left), STRING, a, nn)
    n = nn.row({})
    if n is None:
        return const(None, STRING)

    def arrow(x):
        if left:
            return pc.utf8_slice_codeunits(x, 0, n)
        if n == 0:
            return pc.utf8_slice_codeunits(x, 0, 0)
        return pc.utf8_slice_codeunits(x, -n, 2 ** 31 - 1)
    return Node(STRING, row_of(strict(lambda v: _left_right_py(v, n, left)), a), arrow_of(arrow, a))


def _trim(c, node):
    """trim([BOTH|LEADING|TRAILING] [chars] FROM s), btrim/ltrim/rtrim(s [, chars]): any of ``chars`` (default a
    space) is removed from the chosen end(s)."""
    a = _text(c, node.this)
    pos = (node.args.get("position") or "BOTH").upper()
    chars = _text(c, node.expression) if node.expression is not None else const(" ", STRING)
    py = {"LEADING": str.lstrip, "TRAILING": str.rstrip}.get(pos, str.strip)
    kernel = {"LEADING": pc.utf8_ltrim, "TRAILING": pc.utf8_rtrim}.get(pos, pc.utf8_trim)
    if chars.constant:
        ch = chars.row({})
        if ch is None:
            return const(None, STRING)
        if ch == "":
            return a
        return Node(STRING, row_of(strict(lambda v: py(v, ch)), a), arrow_of(lambda x: kernel(x, characters=ch), a))
    return elementwise(lambda v, ch: py(v, ch), STRING, a, chars)


def _trim_call(c, args, node, position):
    _count(c, node, args, 1, 2)
    return _trim(c, exp.Trim(this=args[0], expression=args[1] if len(args) > 1 else None, position=position))


def _pad_py(v, n, fill, left):
    if n <= 0:
        return ""
    if len(v) >= n:
        return v[:n]
    if not fill:
        return v
    need = n - len(v)
    pad = (fill * (need // len(fill) + 1))[:need]
    return pad + v if left else v + pad


def _pad(c, node):
    a = _text(c, node.this)
    n = _int(c, node.expression, "the length")
    fill = _text(c, node.args["fill_pattern"]) if node.args.get("fill_pattern") is not None else const(" ", STRING)
    left = bool(node.args.get("is_left"))
    return elementwise(lambda v, k, f: _pad_py(v, k, f, left), STRING, a, n, fill)


def _split_part_py(v, delim, n):
    if n == 0:
        raise ValueError("field position must not be zero")
    parts = v.split(delim) if delim else [v]
    if v == "":
        return ""
    idx = n - 1 if n > 0 else len(parts) + n
    return parts[idx] if 0 <= idx < len(parts) else ""


def _split_part(c, node):
    a = _text(c, node.this)
    d = _text(c, node.args["delimiter"])
    n = _int(c, node.args["part_index"], "the field number")
    return elementwise(_split_part_py, STRING, a, d, n)


def _initcap_py(v):
    out, prev = [], False
    for ch in v:
        if ch.isalnum():
            out.append(patterns.simple_lower(ch) if prev else patterns.simple_upper(ch))
            prev = True
        else:
            out.append(ch)
            prev = False
    return "".join(out)


def _repeat_py(v, n):
    if n <= 0:
        return ""
    if len(v) * n > 100_000_000:
        raise ValueError("requested length too large")
    return v * n


def _translate_py(v, frm, to):
    table = {}
    for i, ch in enumerate(frm):
        if ch not in table:
            table[ch] = to[i] if i < len(to) else None
    return "".join(table.get(ch, ch) or "" for ch in v if table.get(ch, ch) is not None)


def _md5(c, node):
    a = _text(c, node.this)
    return elementwise(lambda v: hashlib.md5(v.encode()).hexdigest(), STRING, a)


def _ascii_py(v):
    return ord(v[0]) if v else 0


def _chr_py(n):
    if n <= 0 or n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
        raise ValueError(f"requested character {'too large' if n > 0 else 'not valid'} for encoding: {n}")
    return chr(n)


def _starts_with(c, node):
    a, p = _text(c, node.this), _text(c, node.expression)
    if not p.constant:
        return elementwise(lambda v, q: v.startswith(q), BOOL, a, p)
    prefix = p.row({})
    if prefix is None:
        return const(None, BOOL)
    return Node(BOOL, row_of(strict(lambda v: v.startswith(prefix)), a),
                arrow_of(lambda x: pc.starts_with(x, pattern=prefix), a))


# ---- NULL handling, comparison functions -----------------------------------------------------------
def _common(c, nodes, src):
    from ir_compiler.expressions.compile import unify
    t = unify(c, nodes, src, "arguments")
    if t.name == "null":
        return [const(None, NULL) for _ in nodes], NULL
    return [coerce(n, t) if n.type.name != "null" else const(None, t) for n in nodes], t


def _coalesce(c, node):
    nodes, t = _common(c, [c.compile(e) for e in _args(node)], node)
    for k, n in enumerate(nodes):  # the first non-NULL constant ends the list (PostgreSQL's planner)
        if n.constant and not n.stable and n.row({}) is not None:
            nodes = nodes[:k + 1]
            if k == 0:
                return n
            break

    def py(row):
        for n in nodes:
            v = n.row(row)
            if v is not None:
                return v
        return None

    def arrow(tab):
        vals = [cast_arrow(n.arrow(tab), t) for n in nodes]
        return pc.coalesce(*[broadcast(v, tab.num_rows) for v in vals])
    return Node(t, py, arrow)


def _nullif(c, node):
    a, b = c.compile(node.this), c.compile(node.expression)
    from ir_compiler.expressions.compile import comparable
    a2, b2 = comparable(c, a, b, node.this, node.expression)
    out_t = a2.type if a.type.name != "null" else NULL  # the common type of both (PostgreSQL)

    def py(row):
        x, y = a2.row(row), b2.row(row)
        return None if x is not None and y is not None and x == y else x

    def arrow(tab):
        x = broadcast(a2.arrow(tab), tab.num_rows)
        eq = pc.fill_null(pc.equal(x, b2.arrow(tab)), False)
        return pc.if_else(eq, null_of(out_t), x)
    return Node(out_t, py, arrow)


def _extreme(c, node, greatest: bool):
    nodes, t = _common(c, [c.compile(e) for e in _args(node)], node)
    if t.name in ("array", "interval"):
        c.fail(f"greatest/least cannot compare {t}", node)
    pick = max if greatest else min
    kernel = pc.max_element_wise if greatest else pc.min_element_wise

    def order(v):  # PostgreSQL sorts NaN above every number (greatest(NaN, 1) is NaN, least(NaN, 1) is 1)
        return (1, 0.0) if isinstance(v, float) and v != v else (0, v)

    def py(row):
        vals = [v for v in (n.row(row) for n in nodes) if v is not None]
        return pick(vals, key=order) if vals else None

    def arrow(tab):
        vals = [broadcast(cast_arrow(n.arrow(tab), t), tab.num_rows) for n in nodes]
        out = kernel(*vals, skip_nulls=True)
        if t == FLOAT:  # Arrow's kernels skip NaN: the greatest of anything with a NaN is NaN, the least
            nan = [pc.fill_null(pc.is_nan(v), False) for v in vals]  # is NaN only when every value is
            hit = functools.reduce(pc.or_ if greatest else pc.and_, nan)
            if not greatest:
                hit = pc.and_(hit, pc.is_valid(out))
            out = pc.if_else(hit, pa.scalar(float("nan")), out)
        return out
    return Node(t, py, arrow)


# ---- numbers ---------------------------------------------------------------------------------------
def _abs(c, node):
    a = _num(c, node.this)
    py = (lambda v: pv.check_int(abs(v))) if a.type == INT else pv.DEC.abs if a.type.name == "decimal" else abs
    return Node(a.type, row_of(strict(py), a), arrow_of(pc.abs_checked, a))


def _signed_zero(out: float, v: float) -> float:
    """ceil(-0.5) is -0 in C (and PostgreSQL prints it): keep the sign of a zero result."""
    return math.copysign(0.0, v) if out == 0 else out


def _int_as_float(a: Node) -> Node:
    """round/trunc/floor/ceil/sign of an integer are double precision in PostgreSQL (float8 is the preferred
    numeric type)."""
    return coerce(a, FLOAT) if a.type.name == "int" else a


def _dec_digits(c, node, what):
    nd = _int_const(c, node.args["decimals"], what) if node.args.get("decimals") else None
    return nd


def _round_dec(a: Node, nd: int, rounding) -> Node:
    """numeric rounding to ``nd`` places: the result has scale max(nd, 0), as PostgreSQL's round/trunc."""
    scale = min(max(nd, 0), 37)
    q, q0 = decimal.Decimal(1).scaleb(-nd), decimal.Decimal(1).scaleb(-scale)

    def py(v):
        r = v.quantize(q, rounding=rounding, context=pv.DEC)
        return pv.fit_decimal(r.quantize(q0, context=pv.DEC), 38, scale)
    return elementwise(py, decimal_type(38, scale), a)


def _round(c, node):
    a = _num(c, node.this)
    nd = _dec_digits(c, node, "round() digits")
    if nd is not None and a.type.name == "float":  # an extension (PostgreSQL has no round(float8, int))
        return Node(FLOAT, row_of(strict(lambda v: pc.round(pa.scalar(v, pa.float64()), nd,
                                                            round_mode="half_to_even").as_py()), a),
                    arrow_of(lambda x: pc.round(x, nd, round_mode="half_to_even"), a))
    if nd is not None:  # round(numeric, n): half away from zero
        if a.type.name == "int":
            a = coerce(a, decimal_type(38, 0))
        return _round_dec(a, nd, decimal.ROUND_HALF_UP)
    if a.type.name == "decimal":
        return _round_dec(a, 0, decimal.ROUND_HALF_UP)
    a = _int_as_float(a)  # double precision: rint(), half to even
    return Node(FLOAT, row_of(strict(lambda v: v if math.isinf(v) or math.isnan(v) else _signed_zero(float(round(v)), v)), a),
                arrow_of(lambda x: pc.round(x, round_mode="half_to_even"), a))


def _floor_ceil(c, node, up: bool):
    a = _int_as_float(_num(c, node.this))
    fn = math.ceil if up else math.floor
    if a.type.name == "decimal":
        return elementwise(lambda v: decimal.Decimal(fn(v)), decimal_type(a.type.precision, 0), a)
    return Node(a.type, row_of(strict(lambda v: v if math.isinf(v) or math.isnan(v) else _signed_zero(float(fn(v)), v)), a),
                arrow_of(pc.ceil if up else pc.floor, a))


def _trunc(c, node):
    a = _num(c, node.this)
    nd = _dec_digits(c, node, "trunc() digits")
    if nd is not None:
        if a.type.name == "float":
            c.fail("trunc(double precision, n) does not exist in PostgreSQL; cast to numeric first", node)
        if a.type.name == "int":
            a = coerce(a, decimal_type(38, 0))
        return _round_dec(a, nd, decimal.ROUND_DOWN)
    if a.type.name == "decimal":
        return _round_dec(a, 0, decimal.ROUND_DOWN)
    a = _int_as_float(a)
    return Node(FLOAT, row_of(strict(lambda v: v if math.isinf(v) or math.isnan(v) else _signed_zero(float(math.trunc(v)), v)), a),
                arrow_of(pc.trunc, a))


def _sign(c, node):
    a = _int_as_float(_num(c, node.this))
    if a.type.name == "decimal":
        return elementwise(lambda v: decimal.Decimal((v > 0) - (v < 0)), decimal_type(1, 0), a)
    return elementwise(lambda v: float((v > 0) - (v < 0)), FLOAT, a)  # NaN: 0, as PostgreSQL's float8 sign


def _float_fn(fn, name, check=None):
    """A double-precision function with PostgreSQL's errors (negative sqrt, log of zero, overflow)."""
    def py(*vals):
        vals = [float(v) for v in vals]
        if check:
            check(*vals)
        try:
            out = fn(*vals)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{name}: argument out of range") from None
        except OverflowError:
            raise ValueError("value out of range: overflow") from None
        if math.isinf(out) and not any(math.isinf(v) for v in vals):
            raise ValueError("value out of range: overflow")
        return out
    return py


def _check_log(*vals):
    for v in vals:
        if v == 0:
            raise ValueError("cannot take logarithm of zero")
        if v < 0:
            raise ValueError("cannot take logarithm of a negative number")


def _check_sqrt(v):
    if v < 0:
        raise ValueError("cannot take square root of a negative number")


def _pow(a, b):
    if math.isnan(a):  # PostgreSQL's dpow: NaN ^ 0 = 1, 1 ^ NaN = 1, any other NaN operand gives NaN
        return math.nan if math.isnan(b) or b != 0 else 1.0
    if math.isnan(b):
        return math.nan if a != 1 else 1.0
    if a == 0 and b < 0:
        raise ValueError("zero raised to a negative power is undefined")
    if a < 0 and not float(b).is_integer():
        raise ValueError("a negative number raised to a non-integer power yields a complex result")
    out = math.pow(a, b)
    if out == 0 and a != 0 and not math.isinf(a) and not math.isinf(b):
        raise ValueError("value out of range: underflow")
    return out


def _exp(v):
    out = math.exp(v)
    if out == 0 and not math.isinf(v):
        raise ValueError("value out of range: underflow")
    return out


def _math(fn, name, nargs=1, check=None):
    def build(c, node, args=None):
        args = args if args is not None else _args(node)
        if len(args) != nargs:
            c.fail(f"{name}() takes {nargs} argument(s)", node)
        nodes = [_num(c, a) for a in args]
        return elementwise(_float_fn(fn, name, check), FLOAT, *nodes)
    return build


def _log(c, args, node):
    if len(args) == 1:
        return _math(math.log10, "log", 1, _check_log)(c, node, args)
    if len(args) == 2:
        c.fail("log(b, x) is not supported (PostgreSQL computes it in numeric); use ln(x) / ln(b)", node)
    c.fail("log() takes 1 argument", node)


def _mod_fn(c, node):
    from ir_compiler.expressions.compile import mod_node
    return mod_node(c, c.compile(node.this), c.compile(node.expression), node.this, node.expression)


# ---- CAST ------------------------------------------------------------------------------------------
def cast_target(c, dtype: exp.DataType) -> ColumnType:
    if dtype.this == _T.DECIMAL:
        params = [int(p.this.this if hasattr(p.this, "this") else p.name) for p in dtype.expressions]
        if params and not (1 <= params[0] <= 38 and 0 <= (params[1] if len(params) > 1 else 0) <= params[0]):
            c.fail(f"decimal{tuple(params)} is out of range: precision 1..38, scale 0..precision")
        return decimal_type(*(params + [38, 9][len(params):])) if params else decimal_type(38, 9)
    if dtype.this in (_T.FLOAT,):
        c.fail("real/float4 is not supported (flow-beam computes in double precision); use double precision")
    if dtype.this in (_T.CHAR, _T.NCHAR) or (dtype.this in (_T.VARCHAR, _T.NVARCHAR) and dtype.expressions):
        c.fail(f"{dtype.sql(dialect='postgres')} is not supported; cast to text (and use left(x, n) to cut)")
    t = _DT_NAMES.get(dtype.this)
    if t is None:
        c.fail(f"cannot cast to {dtype.sql(dialect='postgres')}; use bigint, double precision, numeric(p,s), text, "
               f"boolean, date, timestamp, timestamptz, interval or jsonb")
    return t


def _cast(c, node):
    from ir_compiler.expressions.compile import CastError
    from ir_compiler.ops.cast import cast_array, convert_value

    if isinstance(node, exp.TryCast):
        c.fail("TRY_CAST is not supported; use the cast op with onError: null", node)
    a = c.compile(node.this)
    target = cast_target(c, node.to)
    kind = node.to.this
    if kind in (_T.JSON, _T.JSONB):
        if a.type not in (STRING, NULL):
            c.fail("only text can be cast to json", node)
        jsonb = kind == _T.JSONB
        return elementwise(lambda v: (patterns.json_text(patterns.json_load(v)) if jsonb
                                      else (patterns.json_load(v), v)[1]), STRING, a)
    if target == INTERVAL:
        if a.type not in (STRING, NULL, INTERVAL):
            c.fail(f"cannot cast {a.type} to interval", node)
        return a if a.type == INTERVAL else elementwise(temporal.parse_interval, INTERVAL, a)
    if a.type == INTERVAL and target != STRING:
        c.fail(f"cannot cast interval to {target}", node)
    if a.type.name == "array" and target != STRING:
        c.fail(f"cannot cast {a.type} to {target}", node)
    bounds = {_T.INT: (-2 ** 31, 2 ** 31 - 1), _T.SMALLINT: (-2 ** 15, 2 ** 15 - 1)}.get(kind)
    if a.type == target and kind != _T.TIMESTAMPTZ and bounds is None:
        return a
    if a.type.name == "null":
        return const(None, target)
    _check_castable(c, a.type, target, node)
    if a.type == BOOL and target == INT and kind != _T.INT:
        c.fail("boolean casts only to integer (PostgreSQL has no boolean → bigint cast)", node)
    if a.type == INT and target == BOOL:
        c.fail("cannot cast an integer to boolean (flow-beam: compare with <> 0 instead)", node)
    to_utc = kind == _T.TIMESTAMPTZ
    if to_utc or (target == STRING and (a.type.is_temporal or a.type == INTERVAL)):
        c.stable.add(id(node))  # output/input depends on TimeZone, DateStyle or IntervalStyle: STABLE

    def py(v):
        try:
            out = convert_value(v, target, zone_to_utc=to_utc)
        except (ValueError, ArithmeticError) as exc:
            raise CastError(f"cannot cast {v!r} to {target}: {exc}") from None
        if bounds and not bounds[0] <= out <= bounds[1]:
            raise CastError(f"{'integer' if kind == _T.INT else 'smallint'} out of range: {v!r}")
        return out

    def arrow(x):
        if isinstance(x, pa.Scalar):
            return pa.scalar(py(x.as_py()), to_arrow(target))
        out, failed = cast_array(x, target, None, zone_to_utc=to_utc)
        if failed is not None and pc.any(failed).as_py():
            bad = x.filter(failed)[0]
            py(bad.as_py())  # raises with the reason
            raise CastError(f"cannot cast {bad.as_py()!r} to {target}")
        if bounds and len(out) and out.null_count < len(out):
            lo_hi = pc.min_max(out)
            if lo_hi["min"].as_py() < bounds[0] or lo_hi["max"].as_py() > bounds[1]:
                raise CastError(f"{'integer' if kind == _T.INT else 'smallint'} out of range")
        return out
    return Node(target, row_of(strict(py), a), arrow_of(arrow, a))


_NO_CAST = {("float", "bool"), ("decimal", "bool"), ("bool", "float"), ("bool", "decimal"), ("date", "int"),
            ("date", "float"), ("date", "decimal"), ("date", "bool"), ("timestamp", "int"), ("timestamp", "float"),
            ("timestamp", "decimal"), ("timestamp", "bool"), ("int", "date"), ("int", "timestamp"),
            ("float", "date"), ("float", "timestamp"), ("decimal", "date"), ("decimal", "timestamp"),
            ("bool", "date"), ("bool", "timestamp")}


def _check_castable(c, src: ColumnType, target: ColumnType, node):
    if (src.name, target.name) in _NO_CAST:
        c.fail(f"cannot cast {src} to {target} (PostgreSQL has no such cast)", node)


# ---- dispatch ------------------------------------------------------------------------------------------
# ---- arrays (1-based, as PostgreSQL) ------------------------------------------------------------------------
def _array(c, src) -> Node:
    n = c.compile(src)
    if n.type.name != "array":
        c.fail(f"`{src.sql(dialect='postgres')}` is {n.type}, but this needs an array", src)
    return n


def _element_check(c, arr: Node, value: Node, src):
    if value.type != NULL and common_type(arr.type.item, value.type) is None:
        c.fail(f"cannot compare {value.type} with the elements of {arr.type}; add a cast", src)


def _cardinality(c, args, node):
    _count(c, node, args, 1)
    return elementwise(len, INT, _array(c, args[0]))


def _array_length(c, node):
    if node.expression is None:
        c.fail("array_length() takes (array, dimension)", node)
    a, d = _array(c, node.this), _int(c, node.expression, "array_length's dimension")
    return elementwise(lambda v, k: len(v) if k == 1 and v else None, INT, a, d)  # empty: NULL, as PostgreSQL


def _array_to_string(c, node):
    a, sep = _array(c, node.this), _text(c, node.expression)
    null = node.args.get("null")
    if null is None:
        return elementwise(lambda v, s: s.join(pv.value_out(x) for x in v if x is not None), STRING, a, sep)
    n = _text(c, null)

    def fn(v, s, null_text):
        if v is None or s is None:
            return None
        parts = [pv.value_out(x) if x is not None else null_text for x in v]
        return s.join(p for p in parts if p is not None)
    return elementwise(fn, STRING, a, sep, n, sees_nulls=True)


def _array_position(c, node):
    a, v = _array(c, node.this), c.compile(node.expression)
    _element_check(c, a, v, node.expression)

    def fn(arr, x):  # IS NOT DISTINCT FROM: a NULL value finds the first NULL element
        if arr is None:
            return None
        for i, e in enumerate(arr, 1):
            if (e is None and x is None) or (e is not None and x is not None and e == x):
                return i
        return None
    return elementwise(fn, INT, a, v, sees_nulls=True)


def _bracket(c, node):
    if len(node.expressions) != 1 or isinstance(node.expressions[0], exp.Slice):
        c.fail("only a single subscript a[i] is supported (no slices)", node)
    a = _array(c, node.this)
    src = node.expressions[0]
    i = _int(c, src, "an array subscript")
    shift = 0 if isinstance(src, exp.Literal) else 1  # sqlglot already made a literal subscript 0-based

    def fn(v, k):
        j = k - shift
        return v[j] if 0 <= j < len(v) else None
    return elementwise(fn, a.type.item, a, i)


def any_of_array(c, node):
    """``v = ANY(array)``: TRUE when an element equals v; else NULL when v or an element is NULL; FALSE for an
    empty array (whatever v is), NULL for a NULL array — PostgreSQL's three-valued rule."""
    if not isinstance(node, exp.EQ):
        c.fail("only `= ANY(array)` is supported", node)
    target = node.right.this
    target = target.this if isinstance(target, exp.Paren) else target
    a, v = _array(c, target), c.compile(node.left)
    _element_check(c, a, v, node.left)

    def fn(x, arr):
        if arr is None:
            return None
        if not arr:
            return False
        if x is None:
            return None
        if any(e is not None and e == x for e in arr):
            return True
        return None if any(e is None for e in arr) else False
    return elementwise(fn, BOOL, v, a, sees_nulls=True)


def compile_function(c, node):
    if isinstance(node, exp.Anonymous):
        return _anonymous(c, node)
    if isinstance(node, exp.Cast):  # also TryCast
        return _cast(c, node)
    handler = _BY_CLASS.get(type(node))
    if handler is None:
        name = node.sql(dialect="postgres").split("(")[0]
        c.fail(f"function {name}() is not supported (see the README's expression reference)", node)
    return handler(c, node)


_NOW = None


def now():
    global _NOW
    if _NOW is None:
        _NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    return _NOW


def _unary(fn, out, arg=_text):
    def build(c, args, node):
        _count(c, node, args, 1)
        return elementwise(fn, out, arg(c, args[0]))
    return build


_BY_NAME = {
    "replace": lambda c, a, n: (_count(c, n, a, 3), _replace(c, a))[1],
    "strpos": lambda c, a, n: (_count(c, n, a, 2), _strpos(c, a[0], a[1]))[1],
    "left": lambda c, a, n: (_count(c, n, a, 2), _left_right(c, a, True))[1],
    "right": lambda c, a, n: (_count(c, n, a, 2), _left_right(c, a, False))[1],
    "now": lambda c, a, n: (_count(c, n, a, 0), const(now(), TIMESTAMP))[1],
    "date_part": lambda c, a, n: (_count(c, n, a, 2),
                                  temporal.extract(c, temporal._unit_text(c, a[0]), a[1], n, as_float=True))[1],
    "ltrim": lambda c, a, n: _trim_call(c, a, n, "LEADING"),
    "rtrim": lambda c, a, n: _trim_call(c, a, n, "TRAILING"),
    "btrim": lambda c, a, n: _trim_call(c, a, n, "BOTH"),
    "octet_length": _octet_length,
    "regexp_replace": lambda c, a, n: patterns.regexp_replace(c, a, n),
    "regexp_match": lambda c, a, n: patterns.regexp_match(c, a, n),
    "regexp_like": lambda c, a, n: patterns.regexp_like(c, a, n),
    "to_char": lambda c, a, n: temporal.to_char_node(c, a, n),
    "to_date": lambda c, a, n: temporal.to_date_node(c, a, n, False),
    "to_timestamp": lambda c, a, n: temporal.to_date_node(c, a, n, True),
    "age": lambda c, a, n: temporal.age_node(c, a, n, now().date()),
    "make_date": lambda c, a, n: temporal.make_date_node(c, a, n),
    "log": lambda c, a, n: _log(c, a, n),
    "log10": lambda c, a, n: _math(math.log10, "log10", 1, _check_log)(c, n, a),
    "initcap": _unary(_initcap_py, STRING),
    "cardinality": _cardinality,
}


def _anonymous(c, node):
    name = node.name.lower()
    handler = _BY_NAME.get(name)
    if handler is None:
        c.fail(f"function {name}() is not supported (see the README's expression reference)", node)
    return handler(c, node.expressions, node)


def _date_trunc(c, n):
    return temporal.date_trunc(c, n.args["unit"], n.this)


_BY_CLASS = {
    exp.ArraySize: _array_length, exp.ArrayToString: _array_to_string, exp.ArrayPosition: _array_position,
    exp.Bracket: _bracket,
    exp.Upper: _upper_lower(True), exp.Lower: _upper_lower(False), exp.Length: _length,
    exp.Trim: _trim, exp.Substring: _substring, exp.Concat: _concat, exp.ConcatWs: _concat_ws, exp.DPipe: _dpipe,
    exp.Coalesce: _coalesce, exp.Nullif: _nullif,
    exp.Greatest: lambda c, n: _extreme(c, n, True), exp.Least: lambda c, n: _extreme(c, n, False),
    exp.Abs: _abs, exp.Round: _round, exp.Floor: lambda c, n: _floor_ceil(c, n, False),
    exp.Ceil: lambda c, n: _floor_ceil(c, n, True), exp.Trunc: _trunc, exp.Sign: _sign,
    exp.Sqrt: _math(math.sqrt, "sqrt", 1, _check_sqrt), exp.Ln: _math(math.log, "ln", 1, _check_log),
    exp.Exp: _math(_exp, "exp"), exp.Pow: _math(_pow, "power", 2),
    exp.Cbrt: _math(math.cbrt, "cbrt"),
    exp.Pi: lambda c, n: const(math.pi, FLOAT),
    exp.StrPosition: lambda c, n: _strpos(c, n.this, n.args.get("substr")),
    exp.Left: lambda c, n: _left_right(c, [n.this, n.expression], True),
    exp.Right: lambda c, n: _left_right(c, [n.this, n.expression], False),
    exp.StartsWith: _starts_with,
    exp.Replace: lambda c, n: _replace(c, [n.this, n.expression, n.args["replacement"]]),
    exp.Pad: _pad, exp.SplitPart: _split_part,
    exp.Initcap: lambda c, n: elementwise(_initcap_py, STRING, _text(c, n.this)),
    exp.Repeat: lambda c, n: elementwise(_repeat_py, STRING, _text(c, n.this), _int(c, n.args["times"], "the count")),
    exp.Reverse: lambda c, n: elementwise(lambda v: v[::-1], STRING, _text(c, n.this)),
    exp.Translate: lambda c, n: elementwise(_translate_py, STRING, _text(c, n.this), _text(c, n.args["from_"]),
                                            _text(c, n.args["to"])),
    exp.MD5: _md5,
    exp.Ascii: lambda c, n: elementwise(_ascii_py, INT, _text(c, n.this)),
    exp.Chr: lambda c, n: elementwise(_chr_py, STRING, _int(c, n.expressions[0], "chr() code")),
    exp.Mod: _mod_fn,
    exp.CurrentDate: lambda c, n: const(now().date(), DATE),
    exp.CurrentTimestamp: lambda c, n: const(now(), TIMESTAMP),
    exp.TimestampTrunc: _date_trunc, exp.DateTrunc: _date_trunc,
}
