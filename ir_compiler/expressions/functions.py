"""Scalar SQL functions: string, numeric, null-handling, CAST and date functions (both back-ends)."""
from __future__ import annotations

import datetime as dt
import decimal
import math

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ir_compiler.expressions.nodes import Node, arrow_of, broadcast, cast_arrow, coerce, const, null_of, row_of, \
    strict
from ir_compiler.types import (BOOL, DATE, FLOAT, INT, NULL, STRING, TIMESTAMP, ColumnType, common_type, decimal as
                               decimal_type)

_DT_NAMES = {
    exp.DataType.Type.INT: INT, exp.DataType.Type.BIGINT: INT, exp.DataType.Type.SMALLINT: INT,
    exp.DataType.Type.TINYINT: INT, exp.DataType.Type.FLOAT: FLOAT, exp.DataType.Type.DOUBLE: FLOAT,
    exp.DataType.Type.VARCHAR: STRING, exp.DataType.Type.TEXT: STRING, exp.DataType.Type.CHAR: STRING,
    exp.DataType.Type.NVARCHAR: STRING, exp.DataType.Type.BOOLEAN: BOOL, exp.DataType.Type.DATE: DATE,
    exp.DataType.Type.TIMESTAMP: TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ: TIMESTAMP,
    exp.DataType.Type.DATETIME: TIMESTAMP,
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


def _int_const(c, src, what):
    n = c.compile(src)
    if not n.constant or n.type != INT:
        c.fail(f"{what} must be a whole-number constant", src)
    return n.row({})


# ---- string functions ------------------------------------------------------------------------------
def _unary_text(py, kernel, out=STRING):
    def build(c, node):
        a = _text(c, node.this)
        return Node(out, row_of(strict(py), a), arrow_of(kernel, a))
    return build


def _substring(c, node):
    a = _text(c, node.this)
    start = _int_const(c, node.args["start"], "substring start") if node.args.get("start") else 1
    length = _int_const(c, node.args["length"], "substring length") if node.args.get("length") else None
    s = start - 1
    e = None if length is None else s + length
    lo, hi = max(s, 0), (None if e is None else max(e, 0))

    def py(v):
        return v[lo:hi]

    def arrow(x):
        return pc.utf8_slice_codeunits(x, lo, hi if hi is not None else 2 ** 31 - 1)
    return Node(STRING, row_of(strict(py), a), arrow_of(arrow, a))


def _to_text_py(v):
    if isinstance(v, str):
        return v
    return pa.scalar(v).cast(pa.string()).as_py()


def _concat(c, node):
    parts = [c.compile(e) for e in node.expressions]

    def py(row):
        vals = [p.row(row) for p in parts]
        return "".join(_to_text_py(v) for v in vals if v is not None)

    def arrow(t):
        n = t.num_rows
        cols = [broadcast(cast_arrow(p.arrow(t), STRING), n) if p.type.name != "null" else pa.nulls(n, pa.string())
                for p in parts]
        return pc.binary_join_element_wise(*cols, "", null_handling="skip")
    return Node(STRING, py, arrow)


def _dpipe(c, node):
    a, b = c.compile(node.left), c.compile(node.right)

    def py(x, y):
        return _to_text_py(x) + _to_text_py(y)

    def arrow(x, y):
        return pc.binary_join_element_wise(cast_arrow(x, STRING) if x.type != pa.string() else x,
                                           cast_arrow(y, STRING) if y.type != pa.string() else y, "",
                                           null_handling="emit_null")
    a = a if a.type.name != "null" else const(None, STRING)
    b = b if b.type.name != "null" else const(None, STRING)
    return Node(STRING, row_of(strict(py), a, b), arrow_of(arrow, a, b))


def _replace(c, args):
    a, frm, to = (_text(c, x) for x in args)
    if not (frm.constant and to.constant):
        c.fail("replace() takes constant search and replacement strings")
    f, t_ = frm.row({}), to.row({})
    return Node(STRING, row_of(strict(lambda v: v.replace(f, t_)), a),
                arrow_of(lambda x: pc.replace_substring(x, pattern=f, replacement=t_), a))


def _strpos(c, a_src, sub_src):
    a, sub = _text(c, a_src), _text(c, sub_src)
    if not sub.constant:
        c.fail("strpos()/position() take a constant substring")
    s = sub.row({})
    return Node(INT, row_of(strict(lambda v: v.find(s) + 1), a),
                arrow_of(lambda x: pc.cast(pc.add(pc.find_substring(x, pattern=s), 1), pa.int64()), a))


def _left_right(c, args, left: bool):
    a = _text(c, args[0])
    n = _int_const(c, args[1], "the length")

    def py(v):
        return (v[:n] if n >= 0 else v[:n]) if left else (v[-n:] if n > 0 else "" if n == 0 else v[-n:])

    def arrow(x):
        if left:
            return pc.utf8_slice_codeunits(x, 0, n) if n >= 0 else pc.utf8_slice_codeunits(x, 0, n)
        return pc.utf8_slice_codeunits(x, -n, 2 ** 31 - 1) if n > 0 else pc.utf8_slice_codeunits(x, 0, 0)
    return Node(STRING, row_of(strict(py), a), arrow_of(arrow, a))


# ---- null handling, numeric ----------------------------------------------------------------------------
def _common(c, nodes, src):
    t = NULL
    for n in nodes:
        nt = common_type(t, n.type)
        if nt is None:
            c.fail(f"arguments mix {t} and {n.type}; cast them to one type", src)
        t = nt
    if t.name == "null":
        return [const(None, NULL) for _ in nodes], NULL
    return [coerce(n, t) if n.type.name != "null" else const(None, t) for n in nodes], t


def _coalesce(c, node):
    nodes, t = _common(c, [c.compile(e) for e in _args(node)], node)

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

    def py(row):
        x, y = a.row(row), b2.row(row)
        return None if x is not None and y is not None and a2.row(row) == y else x

    def arrow(tab):
        eq = pc.fill_null(pc.equal(a2.arrow(tab), b2.arrow(tab)), False)
        return pc.if_else(eq, null_of(a.type), a.arrow(tab))
    return Node(a.type, py, arrow)


def _extreme(c, node, greatest: bool):
    nodes, t = _common(c, [c.compile(e) for e in _args(node)], node)
    pick = max if greatest else min
    kernel = pc.max_element_wise if greatest else pc.min_element_wise

    def py(row):
        vals = [v for v in (n.row(row) for n in nodes) if v is not None]
        return pick(vals) if vals else None

    return Node(t, py, lambda tab: kernel(*[cast_arrow(n.arrow(tab), t) for n in nodes], skip_nulls=True))


def _abs(c, node):
    a = _num(c, node.this)
    return Node(a.type, row_of(strict(abs), a), arrow_of(pc.abs, a))


def _round(c, node):
    a = _num(c, node.this)
    nd = _int_const(c, node.args["decimals"], "round() digits") if node.args.get("decimals") else 0
    if a.type.name == "int":
        return a
    mode = "half_to_even" if a.type.name == "float" else "half_towards_infinity"  # i.e. away from zero

    def py(v):
        if isinstance(v, decimal.Decimal):
            return v.quantize(decimal.Decimal(1).scaleb(-nd), rounding=decimal.ROUND_HALF_UP)
        return pc.round(pa.scalar(v, pa.float64()), nd, round_mode=mode).as_py()
    return Node(a.type, row_of(strict(py), a), arrow_of(lambda x: pc.round(x, nd, round_mode=mode), a))


def _floor_ceil(c, node, up: bool):
    a = _num(c, node.this)
    if a.type.name == "int":
        return a
    kernel = pc.ceil if up else pc.floor
    fn = math.ceil if up else math.floor

    def py(v):
        return float(fn(v)) if isinstance(v, float) else decimal.Decimal(fn(v))
    return Node(a.type, row_of(strict(py), a), arrow_of(kernel, a))


# ---- CAST ----------------------------------------------------------------------------------------------
def cast_target(c, dtype: exp.DataType) -> ColumnType:
    if dtype.this in (exp.DataType.Type.DECIMAL,):
        params = [int(p.this.this if hasattr(p.this, "this") else p.name) for p in dtype.expressions]
        return decimal_type(*(params + [38, 9][len(params):])) if params else decimal_type(38, 9)
    t = _DT_NAMES.get(dtype.this)
    if t is None:
        c.fail(f"cannot cast to {dtype.sql(dialect='postgres')}; use int, float, decimal(p,s), text, boolean, "
               f"date or timestamp")
    return t


def _cast(c, node):
    from ir_compiler.expressions.compile import CastError
    from ir_compiler.ops.cast import cast_array

    a = c.compile(node.this)
    target = cast_target(c, node.to)
    if a.type == target:
        return a

    def py(v):
        if v is None:
            return None
        out, failed = cast_array(pa.array([v]), target, None)
        if failed is not None and failed[0].as_py():
            raise CastError(f"cannot cast {v!r} to {target}")
        return out[0].as_py()

    def arrow(x):
        if isinstance(x, pa.Scalar):
            x = pa.array([x.as_py()], x.type if x.type != pa.null() else pa.string())
        out, failed = cast_array(x, target, None)
        if failed is not None and pc.any(failed).as_py():
            bad = x.filter(failed)[0] if isinstance(x, pa.Array) else x.filter(failed)[0]
            raise CastError(f"cannot cast {bad.as_py()!r} to {target}")
        return out
    return Node(target, row_of(py, a), arrow_of(arrow, a))


# ---- dates ---------------------------------------------------------------------------------------------
_TRUNC = ("year", "quarter", "month", "week", "day", "hour", "minute", "second")
_EXTRACT = {"year": pc.year, "month": pc.month, "day": pc.day, "hour": pc.hour, "minute": pc.minute,
            "second": pc.second, "quarter": pc.quarter, "doy": pc.day_of_year}


def _py_trunc(v, unit):
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        v = dt.datetime(v.year, v.month, v.day)
    if unit == "year":
        return v.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "quarter":
        return v.replace(month=(v.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "month":
        return v.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        d = v - dt.timedelta(days=v.weekday())
        return d.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return v.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "hour":
        return v.replace(minute=0, second=0, microsecond=0)
    if unit == "minute":
        return v.replace(second=0, microsecond=0)
    return v.replace(microsecond=0)


def _date_trunc(c, unit_src, value_src):
    unit_node = c.compile(unit_src) if not isinstance(unit_src, exp.Var) else const(unit_src.name, STRING)
    unit = str(unit_node.row({})).lower() if unit_node.constant else None
    if unit not in _TRUNC:
        c.fail(f"date_trunc unit must be one of {', '.join(_TRUNC)}", unit_src)
    a = c.compile(value_src)
    if not a.type.is_temporal:
        c.fail(f"date_trunc needs a date or timestamp; `{value_src.sql()}` is {a.type}", value_src)

    def arrow(x):
        x = cast_arrow(x, TIMESTAMP)
        return pc.floor_temporal(x, unit=unit, week_starts_monday=True)
    return Node(TIMESTAMP, row_of(strict(lambda v: _py_trunc(v, unit)), a), arrow_of(arrow, a))


def _py_extract(v, unit):
    if unit == "dow":
        return v.isoweekday() % 7
    if unit == "quarter":
        return (v.month - 1) // 3 + 1
    if unit == "doy":
        return v.timetuple().tm_yday
    return getattr(v, unit, 0) if not (isinstance(v, dt.date) and not isinstance(v, dt.datetime) and unit in (
        "hour", "minute", "second")) else 0


def _extract(c, unit: str, value_src, src):
    unit = unit.lower()
    if unit not in _EXTRACT and unit != "dow":
        c.fail(f"extract field must be one of {', '.join(list(_EXTRACT) + ['dow'])}", src)
    a = c.compile(value_src)
    if not a.type.is_temporal:
        c.fail(f"extract needs a date or timestamp; `{value_src.sql()}` is {a.type}", value_src)

    def arrow(x):
        if unit == "dow":
            return pc.day_of_week(x, count_from_zero=True, week_start=7)
        if unit in ("hour", "minute", "second") and pa.types.is_date(x.type):
            x = cast_arrow(x, TIMESTAMP)
        return pc.cast(_EXTRACT[unit](x), pa.int64())
    return Node(INT, row_of(strict(lambda v: _py_extract(v, unit)), a), arrow_of(arrow, a))


_NOW = None


def _now():
    global _NOW
    if _NOW is None:
        _NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    return _NOW


# ---- dispatch ------------------------------------------------------------------------------------------
def compile_function(c, node):
    if isinstance(node, exp.Anonymous):
        return _anonymous(c, node)
    if isinstance(node, exp.Cast):  # also TryCast
        return _cast(c, node)
    handler = _BY_CLASS.get(type(node))
    if handler is None:
        c.fail(f"function {node.sql(dialect='postgres').split('(')[0]}() is not supported", node)
    return handler(c, node)


def _anonymous(c, node):
    name = node.name.lower()
    args = node.expressions
    if name == "replace" and len(args) == 3:
        return _replace(c, args)
    if name in ("strpos",) and len(args) == 2:
        return _strpos(c, args[0], args[1])
    if name in ("left", "right") and len(args) == 2:
        return _left_right(c, args, name == "left")
    if name == "now" and not args:
        return const(_now(), TIMESTAMP)
    if name == "date_part" and len(args) == 2:
        unit = c.compile(args[0])
        return _extract(c, str(unit.row({})), args[1], node)
    if name in ("ltrim", "rtrim", "btrim") and len(args) == 1:
        side = {"ltrim": (str.lstrip, pc.utf8_ltrim), "rtrim": (str.rstrip, pc.utf8_rtrim),
                "btrim": (str.strip, pc.utf8_trim)}[name]
        a = _text(c, args[0])
        return Node(STRING, row_of(strict(lambda v: side[0](v, " ")), a),
                    arrow_of(lambda x: side[1](x, characters=" "), a))
    c.fail(f"function {name}() is not supported", node)


def _trim(c, node):
    a = _text(c, node.this)
    pos = (node.args.get("position") or "BOTH").upper()
    py = {"LEADING": lambda v: v.lstrip(" "), "TRAILING": lambda v: v.rstrip(" ")}.get(pos, lambda v: v.strip(" "))
    kernel = {"LEADING": pc.utf8_ltrim, "TRAILING": pc.utf8_rtrim}.get(pos, pc.utf8_trim)
    return Node(STRING, row_of(strict(py), a), arrow_of(lambda x: kernel(x, characters=" "), a))


def _var_name(node_part):
    return node_part.name if isinstance(node_part, (exp.Var, exp.Identifier, exp.Column)) else str(node_part)


_BY_CLASS = {
    exp.Upper: _unary_text(str.upper, pc.utf8_upper), exp.Lower: _unary_text(str.lower, pc.utf8_lower),
    exp.Length: _unary_text(len, lambda x: pc.cast(pc.utf8_length(x), pa.int64()), INT),
    exp.Trim: _trim, exp.Substring: _substring, exp.Concat: _concat, exp.DPipe: _dpipe,
    exp.Coalesce: _coalesce, exp.Nullif: _nullif,
    exp.Greatest: lambda c, n: _extreme(c, n, True), exp.Least: lambda c, n: _extreme(c, n, False),
    exp.Abs: _abs, exp.Round: _round, exp.Floor: lambda c, n: _floor_ceil(c, n, False),
    exp.Ceil: lambda c, n: _floor_ceil(c, n, True),
    exp.StrPosition: lambda c, n: _strpos(c, n.this, n.args.get("substr")),
    exp.Left: lambda c, n: _left_right(c, [n.this, n.expression], True),
    exp.Right: lambda c, n: _left_right(c, [n.this, n.expression], False),
    exp.StartsWith: lambda c, n: _starts_with(c, n),
    exp.Replace: lambda c, n: _replace(c, [n.this, n.expression, n.args["replacement"]]),
    exp.CurrentDate: lambda c, n: const(_now().date(), DATE),
    exp.CurrentTimestamp: lambda c, n: const(_now(), TIMESTAMP),
    exp.TimestampTrunc: lambda c, n: _date_trunc(c, n.args["unit"], n.this),
    exp.DateTrunc: lambda c, n: _date_trunc(c, n.args["unit"], n.this),
    exp.Extract: lambda c, n: _extract(c, _var_name(n.this), n.expression, n),
}


def _starts_with(c, node):
    a, p = _text(c, node.this), _text(c, node.expression)
    if not p.constant:
        c.fail("starts_with() takes a constant prefix", node)
    prefix = p.row({})
    return Node(BOOL, row_of(strict(lambda v: v.startswith(prefix)), a),
                arrow_of(lambda x: pc.starts_with(x, pattern=prefix), a))


