"""PostgreSQL as the oracle for flow-beam expressions and casts (used by tests/test_expr_pg_differential.py and
bench/expr_differential.py).

- ``Gen`` builds typed random rows (NULLs, unicode, negative and huge numbers, decimals, dates, timestamps,
  timestamptz, JSON) and random well-typed expressions over the whole supported grammar. Its randomness comes from
  ``rnd`` (``random.Random`` for the benchmark, a Hypothesis adapter in the test suite, which then shrinks).
- Each expression is a pair (flow-beam SQL, PostgreSQL SQL). They are the same text except where flow-beam differs
  on purpose (documented in the README): division/modulo by zero is NULL (PostgreSQL: ``NULLIF(divisor, 0)``),
  decimal division is double precision (PostgreSQL: operands cast to ``float8``).
- ``Oracle`` loads the rows into a temp table of a fresh database (session TimeZone UTC) and runs
  ``SELECT expr FROM t ORDER BY rowid``; ``evaluate`` runs both flow-beam back-ends; ``compare`` says whether the
  three agree: the same values, NULLs included, or an error in all.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import random

import pyarrow as pa

from ir_compiler.errors import ExpressionError
from ir_compiler.expressions import compile_expression
from ir_compiler.expressions.pgvalues import value_text
from ir_compiler.ops.exprs import evaluate
from ir_compiler.types import BOOL, DATE, FLOAT, INT, JSON, STRING, TIMESTAMP, Field, Schema, decimal as dec

SCHEMA = Schema([Field("i", INT), Field("j", INT), Field("f", FLOAT), Field("m", dec(12, 3)), Field("s", STRING),
                 Field("t", STRING), Field("b", BOOL), Field("d", DATE), Field("ts", TIMESTAMP),
                 Field("tz", TIMESTAMP), Field("js", JSON)])
PG_COLUMNS = ("rowid int, i bigint, j bigint, f float8, m numeric(12,3), s text, t text, b boolean, d date, "
              "ts timestamp, tz timestamptz, js jsonb")
COLS = [f.name for f in SCHEMA]

# ---- values ------------------------------------------------------------------------------------------
ALPHABET = "abcxyzABCXYZ 019-_%.,:/é🍓ßÅω"
SPECIAL_TEXT = ["", " ", "a", "abc", "ABC", "Hello World", "o'neil mc-DONALD", "12", " 42 ", "-7", "+8", "1e3",
                "3.14", "-0.005", "1.005", "NaN", "Infinity", "-inf", "1e999", "1e-400", "99999999999999999999",
                "t", "yes", "off", "on", "o", "TRUE ", "2024-02-29", "2024-13-01", "2023-02-29", "01/02/2024",
                "20240105", "2024-01-05 10:11:12.123456", "2024-01-05T10:11:12+02", "2024-01-05 24:00:00",
                "Jan 5 2024", "a,b,,c", "x%y_z", "🍓ab", "é🍓é", "  padded  ", "##x#", "1 day", "2 hours 30 minutes",
                "a\nb", "AbC aBc"]
JSON_DOCS = ['{"a": 1, "b": "x", "k": [1, 2.50, null], "n": null}', '{"a": {"b": [true, false]}, "k": "é🍓"}',
             '[1, "two", 3.0, {"a": 1e2}]', '{"b": 1, "a": 2, "aa": -0.5}', '"just text"', '42', 'null',
             '{"a": "line\\nbreak", "k": {}}', '[]']
INTS = [0, 1, -1, 2, 7, -13, 100, 365, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 + 1, 2 ** 62, -(2 ** 62), 9999]
FLOATS = [0.0, -0.0, 1.5, -2.25, 0.1, 1e-5, 123456.789, 1e15, 1e16, 2.5, -3.5, 1e300, -1e-300, 1 / 3, 12.0,
          0.125, 7.0]
TEXT_LITERALS = ["'abc'", "''", "'é🍓'", "'x'", "'a,b,,c'", "' pad '", "'12'", "'2024-03-01'", "'ABC'",
                 "'%'", "'#'"]
LIKE_PATTERNS = ["'%a%'", "'a%'", "'%c'", "'_b%'", "'%'", "'_'", "''", "'%\\%%'", "'%🍓%'", "'A%'", "'%é_'",
                 "'%a%b%'", "'1%'", "'%\\_%'"]
REGEXES = ["'^a'", "'c$'", "'[0-9]+'", "'(a|ab)(c|bcd)'", "'[[:alpha:]]+'", "'\\d{2}'", "'x*'", "'(é|🍓)'",
           "'^$'", "'.'", "'[^a-z ]+'", "'(\\w+) (\\w+)'", "'b+'", "'(a)|(b)'", "'[[:upper:]][[:lower:]]*'",
           "'\\s+'", "'^(\\d+)-(\\d+)'", "'a.c'", "'\\.'", "'[%_]'"]
TO_CHAR_FORMATS = ["'YYYY-MM-DD'", "'YYYY-MM-DD HH24:MI:SS'", "'DD Mon YYYY'", "'FMMonth DD, YYYY'",
                   "'Day, DD Month YYYY'", "'Dy HH12:MI AM'", "'YYYY-MM-DD\"T\"HH24:MI:SS.US'", "'Q WW IW DDD D ID'",
                   "'FMDDth \"of\" FMMonth'", "'MS US SSSS'", "'YY-MM-DD HH:MI:SS pm'", "'MON mon Mon DY dy'",
                   "'IYYY-IW-ID'", "'CC J'", "'YYYYMMDD'", "'DD/MM/YYYY HH24:MI'"]
PARSE_FORMATS = ["'YYYY-MM-DD'", "'YYYY-MM-DD HH24:MI:SS'", "'DD Mon YYYY'", "'YYYYMMDD'", "'DD/MM/YYYY HH24:MI'",
                 "'YYYY-MM-DD HH24:MI:SS.US'", "'Month DD, YYYY'", "'YYYY-MM-DD HH12:MI:SS AM'"]
INTERVALS = ["'1 day'", "'2 hours'", "'1 month'", "'1 year 2 months'", "'-3 days'", "'90 minutes'",
             "'1 day 02:03:04'", "'1.5 days'", "'1 week'", "'00:00:00.5'", "'-1 month 3 days'", "'36 hours'"]
TRUNC_UNITS = ["'year'", "'quarter'", "'month'", "'week'", "'day'", "'hour'", "'minute'", "'second'",
               "'decade'", "'century'", "'millennium'", "'milliseconds'"]
EXTRACT_DATE = ["year", "month", "day", "quarter", "doy", "dow", "isodow", "week", "isoyear", "decade", "century",
                "millennium", "epoch", "julian"]
EXTRACT_TS = EXTRACT_DATE[:-1] + ["hour", "minute", "second", "milliseconds", "microseconds"]


class Gen:
    """Random rows and expressions; ``rnd`` provides choice(seq), randint(a, b) and random()."""

    def __init__(self, rnd, max_depth: int = 3):
        self.r, self.max_depth = rnd, max_depth

    def pick(self, seq):
        return self.r.choice(list(seq))

    def chance(self, p_in_8: int) -> bool:
        return self.r.randint(1, 8) <= p_in_8

    # ---- rows --------------------------------------------------------------------------------------
    def text_value(self):
        if self.chance(4):
            return self.pick(SPECIAL_TEXT)
        return "".join(self.pick(ALPHABET) for _ in range(self.r.randint(0, 8)))

    def timestamp_value(self):
        day = dt.date(1950, 1, 1) + dt.timedelta(days=self.r.randint(0, 36500))
        return dt.datetime(day.year, day.month, day.day, self.r.randint(0, 23), self.r.randint(0, 59),
                           self.r.randint(0, 59), self.pick([0, 0, 500000, 123456, 999999, self.r.randint(0, 999999)]))

    def row(self):
        def maybe(fn):
            return None if self.chance(1) else fn()
        return {
            "i": maybe(lambda: self.pick(INTS) if self.chance(4) else self.r.randint(-1000, 1000)),
            "j": maybe(lambda: self.pick(INTS) if self.chance(3) else self.r.randint(-20, 20)),
            "f": maybe(lambda: self.pick(FLOATS) if self.chance(5) else round(self.r.randint(-10 ** 6, 10 ** 6) /
                                                                             self.pick([1, 7, 100, 1024]), 6)),
            "m": maybe(lambda: decimal.Decimal(self.r.randint(-10 ** 12 + 1, 10 ** 12 - 1) //
                                               self.pick([1, 1000, 10 ** 6])).scaleb(-3)),
            "s": maybe(self.text_value), "t": maybe(self.text_value),
            "b": maybe(lambda: self.pick([True, False])),
            "d": maybe(lambda: dt.date(2024, 2, 29) if self.chance(1) else self.timestamp_value().date()),
            "ts": maybe(self.timestamp_value), "tz": maybe(self.timestamp_value),
            "js": maybe(lambda: self.pick(JSON_DOCS)),
        }

    def rows(self, n):
        return [self.row() for _ in range(n)]

    # ---- expressions: each returns (flow-beam SQL, PostgreSQL SQL) --------------------------------
    def expr(self, kind: str, depth: int = 0):
        leaf = depth >= self.max_depth or self.chance(2)
        table = LEAVES if leaf else PRODUCTIONS
        options = table[kind]
        return self.pick(options)(self, depth + 1)

    def any_expr(self):
        kind = self.pick(["int", "int", "float", "dec", "text", "text", "bool", "bool", "date", "ts", "interval"])
        ours, pg = self.expr(kind)
        if kind == "interval":
            return kind, ours, f"({pg})::text"
        return kind, ours, pg


def _same(a, b):
    return a, b


def _lit(text):
    return lambda g, d: (text, text)


def _col(name):
    return lambda g, d: (name, name)


def _op(fmt_ours, *kinds, fmt_pg=None):
    """A production: format strings with {0}, {1}… filled by sub-expressions of the given kinds; pools given as
    lists are sampled as literals."""
    def build(g, d):
        subs = [g.pick(k) if isinstance(k, list) else g.expr(k, d) for k in kinds]
        o = [s if isinstance(s, str) else s[0] for s in subs]
        p = [s if isinstance(s, str) else s[1] for s in subs]
        return fmt_ours.format(*o), (fmt_pg or fmt_ours).format(*p)
    return build


def _int_lit(g, d):
    v = g.pick(INTS) if g.chance(2) else g.r.randint(-20, 20)
    text = str(v) if v >= 0 else f"({v})"
    return text, text


def _dec_lit(g, d):
    v = decimal.Decimal(g.r.randint(-99999, 99999)).scaleb(-g.r.randint(0, 4))
    text = format(v, "f")
    if "." not in text:
        text += ".0"
    text = text if v >= 0 else f"({text})"
    return text, text


def _float_lit(g, d):
    text = f"CAST('{g.pick(FLOATS)!r}' AS double precision)"
    return text, text


def _text_lit(g, d):
    v = g.pick(TEXT_LITERALS)
    return v, v


def _date_lit(g, d):
    text = f"DATE '{g.timestamp_value().date().isoformat()}'"
    return text, text


def _ts_lit(g, d):
    text = f"TIMESTAMP '{g.timestamp_value().isoformat(sep=' ')}'"
    return text, text


def _interval_lit(g, d):
    text = f"INTERVAL {g.pick(INTERVALS)}"
    return text, text


def _div(kind):
    def build(g, d):
        (a, pa_), (b, pb) = g.expr(kind, d), g.expr(kind, d)
        return f"({a} / {b})", f"({pa_} / NULLIF({pb}, 0))"
    return build


def _dec_div(g, d):
    (a, pa_), (b, pb) = g.expr("dec", d), g.expr(g.pick(["dec", "int"]), d)
    return f"({a} / {b})", f"(({pa_})::float8 / NULLIF(({pb})::float8, 0))"


def _mod(kind, fn=False):
    def build(g, d):
        (a, pa_), (b, pb) = g.expr(kind, d), g.expr(kind, d)
        if fn:
            return f"mod({a}, {b})", f"mod({pa_}, NULLIF({pb}, 0))"
        return f"({a} % {b})", f"({pa_} % NULLIF({pb}, 0))"
    return build


def _case(kind):
    def build(g, d):
        (c, pc_), (a, pa_), (b, pb) = g.expr("bool", d), g.expr(kind, d), g.expr(kind, d)
        return f"CASE WHEN {c} THEN {a} ELSE {b} END", f"CASE WHEN {pc_} THEN {pa_} ELSE {pb} END"
    return build


def _cmp(kind):
    def build(g, d):
        op = g.pick(["=", "<>", "<", "<=", ">", ">="])
        (a, pa_), (b, pb) = g.expr(kind, d), g.expr(kind, d)
        return f"({a} {op} {b})", f"({pa_} {op} {pb})"
    return build


LEAVES = {
    "int": [_col("i"), _col("j"), _int_lit],
    "float": [_col("f"), _float_lit],
    "dec": [_col("m"), _dec_lit],
    "text": [_col("s"), _col("t"), _text_lit],
    "bool": [_col("b"), _lit("true"), _lit("false"), _op("({0} IS NULL)", "int"), _op("({0} > {1})", "int", "int")],
    "date": [_col("d"), _date_lit],
    "ts": [_col("ts"), _col("tz"), _ts_lit],
    "interval": [_interval_lit],
    "int4": [_op("CAST({0} AS int)", "int")],
    "decplain": [_col("m"), _dec_lit],
}

PRODUCTIONS = {
    "int4": [_op("CAST({0} AS int)", "int")],
    "decplain": [  # decimals whose PostgreSQL scale is the scale of their type (text output agrees)
        _op("({0} + {1})", "decplain", "decplain"), _op("({0} * {1})", "decplain", "int"),
        _op("round({0}, {1})", "decplain", ["0", "1", "4"]), _op("(-{0})", "decplain"), _op("abs({0})", "decplain"),
        _op("trunc({0}, 2)", "decplain"), _op("({0} * {1})", "decplain", "decplain"),
    ],
    "int": [
        _op("({0} + {1})", "int", "int"), _op("({0} - {1})", "int", "int"), _op("({0} * {1})", "int", "int"),
        _div("int"), _mod("int"), _mod("int", fn=True), _op("(-{0})", "int"), _op("abs({0})", "int"),
        _op("length({0})", "text"), _op("char_length({0})", "text"), _op("octet_length({0})", "text"),
        _op("strpos({0}, {1})", "text", TEXT_LITERALS), _op("position({1} IN {0})", "text", ["'b'", "'🍓'", "'a'"]),
        _op("({0} - {1})", "date", "date"), _op("coalesce({0}, {1})", "int", "int"),
        _op("greatest({0}, {1}, {2})", "int", "int", "int"), _op("least({0}, {1})", "int", "int"),
        _op("nullif({0}, {1})", "int", "int"), _case("int"),
        _op("CAST({0} AS bigint)", "text"), _op("CAST({0} AS bigint)", "float"), _op("CAST({0} AS bigint)", "dec"),
        _op("CAST({0} AS int)", "bool"), _op("CAST({0} AS int)", "int"), _op("CAST({0} AS smallint)", "int"),
        _op("ascii({0})", "text"),
        _op("({0})::bigint", "text"), _op("abs({0})", "int"),
    ],
    "float": [
        _op("({0} + {1})", "float", "float"), _op("({0} - {1})", "float", "int"),
        _op("({0} * {1})", "float", "float"), _div("float"), _dec_div, _op("CAST({0} AS double precision)", "int"),
        _op("CAST({0} AS double precision)", "dec"), _op("CAST({0} AS double precision)", "text"),
        _op("sqrt({0})", "float"), _op("ln({0})", "float"), _op("exp({0})", "float"), _op("log({0})", "float"),
_op("power({0}, {1})", "float", "int"),
        _op("({0} ^ {1})", "float", "float"), _op("cbrt({0})", "float"), _op("round({0})", "float"),
        _op("floor({0})", "float"), _op("ceil({0})", "float"), _op("trunc({0})", "float"), _op("abs({0})", "float"),
        _op("sign({0})", "float"), _op("sign({0})", "int"), _op("(-{0})", "float"),
        _op("date_part('{1}', {0})", "ts", ["year", "month", "hour", "dow", "epoch", "second"]),
        _op("date_part('{1}', {0})", "date", ["year", "hour", "doy"]), _op("coalesce({0}, {1})", "float", "int"),
        _op("greatest({0}, {1})", "float", "float"), _case("float"), _op("({0} + {1})", "float", "dec"),
    ],
    "dec": [
        _op("({0} + {1})", "dec", "dec"), _op("({0} - {1})", "dec", "int"), _op("({0} * {1})", "dec", "int"),
        _op("({0} * {1})", "dec", "dec"), _mod("dec"), _op("(-{0})", "dec"), _op("abs({0})", "dec"),
        _op("round({0}, {1})", "dec", ["0", "1", "2", "(-1)"]), _op("round({0})", "dec"),
        _op("trunc({0}, {1})", "dec", ["0", "1", "2"]), _op("floor({0})", "dec"), _op("ceil({0})", "dec"),
        _op("sign({0})", "dec"),
        _op("CAST({0} AS numeric(10,2))", "text"), _op("CAST({0} AS numeric(12,3))", "float"),
        _op("CAST({0} AS numeric(6,1))", "dec"), _op("CAST({0} AS numeric(20,0))", "int"),
        _op("extract(second from {0})", "ts"), _op("extract(epoch from {0})", "ts"),
        _op("extract({1} from {0})", "date", EXTRACT_DATE), _op("extract({1} from {0})", "ts", EXTRACT_TS),
        _op("extract({1} from {0})", "interval", ["epoch", "day", "hour", "minute", "second", "year", "month"]),
        _op("coalesce({0}, {1})", "dec", "int"), _op("greatest({0}, {1})", "dec", "dec"), _case("dec"),
        _op("nullif({0}, {1})", "dec", "dec"),
    ],
    "text": [
        _op("upper({0})", "text"), _op("lower({0})", "text"), _op("initcap({0})", "text"),
        _op("trim({0})", "text"), _op("trim(BOTH {1} FROM {0})", "text", ["'#'", "'a '", "'🍓'"]),
        _op("trim(LEADING {1} FROM {0})", "text", ["'a'", "' '"]), _op("btrim({0}, {1})", "text", ["'# '", "'ab'"]),
        _op("ltrim({0}, {1})", "text", ["'a'", "'0'"]), _op("rtrim({0})", "text"),
        _op("substring({0}, {1}, {2})", "text", "int4", ["0", "1", "2", "5"]),
        _op("substring({0} FROM {1})", "text", ["1", "2", "(-1)"]), _op("substr({0}, {1}, {2})", "text", "int4", "int4"),
        _op("left({0}, {1})", "text", ["2", "(-1)", "0", "10"]), _op("right({0}, {1})", "text", ["2", "(-2)", "0"]),
        _op("left({0}, {1})", "text", "int4"),
        _op("lpad({0}, {1}, {2})", "text", ["0", "3", "6"], ["'*'", "'ab'", "'🍓'", "''"]),
        _op("rpad({0}, {1})", "text", ["2", "5"]), _op("replace({0}, {1}, {2})", "text", TEXT_LITERALS, "text"),
        _op("reverse({0})", "text"), _op("repeat({0}, {1})", "text", ["0", "2", "(-1)"]),
        _op("translate({0}, {1}, {2})", "text", ["'abc'", "'é'", "'a'"], ["'xy'", "''", "'🍓ZZ'"]),
        _op("md5({0})", "text"), _op("split_part({0}, {1}, {2})", "text", ["','", "' '", "''", "'ab'"],
                                    ["1", "2", "(-1)", "3"]),
        _op("concat({0}, {1}, {2})", "text", "int", "date"), _op("concat_ws({0}, {1}, {2})", ["'-'", "''"], "text",
                                                                "float"),
        _op("({0} || {1})", "text", "text"), _op("({0} || {1})", "text", "int"), _op("({0} || {1})", "decplain", "text"),
        _op("regexp_replace({0}, {1}, {2})", "text", REGEXES, ["'X'", "'<\\1>'", "'\\&\\&'", "''"]),
        _op("regexp_replace({0}, {1}, {2}, {3})", "text", REGEXES, ["'-'", "'[\\1]'"], ["'g'", "'i'", "'gi'"]),
        _op("CAST({0} AS text)", "int"), _op("CAST({0} AS text)", "float"), _op("CAST({0} AS text)", "decplain"),
        _op("CAST({0} AS text)", "bool"), _op("CAST({0} AS text)", "date"), _op("ts::text", "int"),
        _op("to_char({0}, {1})", "ts", TO_CHAR_FORMATS), _op("to_char({0}, {1})", "date", TO_CHAR_FORMATS[:6]),
        _case("text"), _op("coalesce({0}, {1})", "text", "text"), _op("nullif({0}, {1})", "text", "text"),
        _op("greatest({0}, {1})", "text", "text"),
        _op("(js ->> {0})", ["'a'", "'b'", "'k'", "'n'", "0", "1", "(-1)"]),
        _op("(js -> {0})", ["'a'", "'k'", "0", "(-1)"], fmt_pg="(js -> {0})::text"),
        _op("((js -> 'a') ->> {0})", ["'b'", "0"]),
        _op("chr({0})", ["65", "233", "127827", "0"]),
        _op("CAST(age({0}, {1}) AS text)", "ts", "ts"),
        _op("CAST(({0} - {1}) AS text)", "ts", "ts"),
    ],
    "bool": [
        _cmp("int"), _cmp("float"), _cmp("dec"), _cmp("text"), _cmp("date"), _cmp("ts"), _op("({0} = {1})", "dec",
                                                                                           "float"),
        _op("({0} < {1})", "ts", "date"), _op("({0} >= {1})", "date", "ts"), _op("({0} > {1})", "int", "dec"),
        _op("({0} AND {1})", "bool", "bool"), _op("({0} OR {1})", "bool", "bool"), _op("(NOT {0})", "bool"),
        _op("({0} IS NULL)", "text"), _op("({0} IS NOT NULL)", "dec"), _op("({0} IS DISTINCT FROM {1})", "int", "int"),
        _op("({0} IS NOT DISTINCT FROM {1})", "text", "text"), _op("({0} IS TRUE)", "bool"),
        _op("({0} IS NOT FALSE)", "bool"),
        _op("({0} IN (1, 2, {1}))", "int", "int") if False else _op("({0} IN (1, 2, -13))", "int"),
        _op("({0} IN ('a', 'abc', NULL))", "text"), _op("({0} NOT IN (0, 7))", "int"),
        _op("({0} BETWEEN {1} AND {2})", "int", "int", "int"), _op("({0} NOT BETWEEN 1.5 AND 100)", "dec"),
        _op("({0} LIKE {1})", "text", LIKE_PATTERNS), _op("({0} NOT LIKE {1})", "text", LIKE_PATTERNS),
        _op("({0} ILIKE {1})", "text", LIKE_PATTERNS), _op("({0} ~ {1})", "text", REGEXES),
        _op("({0} ~* {1})", "text", REGEXES), _op("({0} !~ {1})", "text", REGEXES),
        _op("({0} !~* {1})", "text", REGEXES), _op("regexp_like({0}, {1})", "text", REGEXES),
        _op("regexp_like({0}, {1}, 'i')", "text", REGEXES), _op("starts_with({0}, {1})", "text", TEXT_LITERALS),
        _op("CAST({0} AS boolean)", "text"), _op("CAST({0} AS boolean)", "int"), _case("bool"),
        _op("({0} = DATE '2024-02-29')", "ts"), _op("({0} >= CAST('2000-01-01' AS date))", "ts"),
        _op("({0} > '2024-01-01')", "date"),
    ],
    "date": [
        _op("({0} + {1})", "date", ["1", "(-1)", "365", "0"]), _op("({0} - {1})", "date", ["1", "30"]),
        _op("({0} + {1})", "date", "int4"), _op("CAST({0} AS date)", "ts"), _op("CAST({0} AS date)", "text"),
        _op("make_date({0}, {1}, {2})", ["2024", "2023", "1999"], ["1", "2", "12", "13"], ["1", "28", "29", "31"]),
        _op("to_date({0}, {1})", "text", PARSE_FORMATS[:3]),
        _op("to_date(to_char({0}, {1}), {1})", "ts", PARSE_FORMATS),
        _op("coalesce({0}, {1})", "date", "date"), _case("date"), _op("greatest({0}, {1})", "date", "date"),
    ],
    "ts": [
        _op("date_trunc({1}, {0})", "ts", TRUNC_UNITS), _op("date_trunc({1}, {0})", "date", TRUNC_UNITS[:5]),
        _op("({0} + {1})", "ts", "interval"), _op("({0} - {1})", "ts", "interval"),
        _op("({0} + {1})", "date", "interval"), _op("({1} + {0})", "ts", "interval"),
        _op("CAST({0} AS timestamp)", "date"), _op("CAST({0} AS timestamp)", "text"),
        _op("CAST({0} AS timestamptz)", "text"),
        _op("to_timestamp(to_char({0}, {1}), {1})", "ts", PARSE_FORMATS), _op("to_timestamp({0})", "int"),
        _op("coalesce({0}, {1})", "ts", "date"), _op("greatest({0}, {1})", "ts", "ts"), _case("ts"),
    ],
    "interval": [
        _op("({0} - {1})", "ts", "ts"), _op("({0} - {1})", "date", "ts"), _op("age({0}, {1})", "ts", "ts"),
        _op("age({0}, {1})", "date", "ts"), _op("({0} + {1})", "interval", "interval"), _op("(-{0})", "interval"),
        _op("({0} - {1})", "interval", "interval"), _op("CAST({0} AS interval)", ["'1 day'", "'3 hours ago'"]),
    ],
}


# ---- PostgreSQL ----------------------------------------------------------------------------------
class Oracle:
    """A connection to a fresh database, session in UTC with ISO dates; ``load`` replaces the temp table."""

    def __init__(self, url: str):
        import psycopg
        self.psycopg = psycopg
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SET TimeZone = 'UTC'")
        self.conn.execute("SET DateStyle = 'ISO, MDY'")
        self.conn.execute("SET IntervalStyle = 'postgres'")
        self.conn.execute("SET extra_float_digits = 1")

    def close(self):
        self.conn.close()

    def load(self, rows: list[dict]):
        self.conn.execute("DROP TABLE IF EXISTS t")
        self.conn.execute(f"CREATE TEMP TABLE t ({PG_COLUMNS})")
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
                [(k, r["i"], r["j"], r["f"], r["m"], r["s"], r["t"], r["b"], r["d"], r["ts"],
                  None if r["tz"] is None else r["tz"].replace(tzinfo=dt.timezone.utc), r["js"])
                 for k, r in enumerate(rows)])

    def run(self, sql: str):
        """('ok', [values]) or ('error', message)."""
        try:
            return "ok", [r[0] for r in self.conn.execute(f"SELECT {sql} FROM t ORDER BY rowid").fetchall()]
        except self.psycopg.Error as exc:
            return "error", str(exc).splitlines()[0]

    def scalar(self, sql: str, value, pg_type: str = "text"):
        try:
            return "ok", self.conn.execute(f"SELECT {sql.format(v='%s::' + pg_type)}", (value,)).fetchone()[0]
        except self.psycopg.Error as exc:
            return "error", str(exc).splitlines()[0]


# ---- flow-beam -----------------------------------------------------------------------------------
def arrow_table(rows):
    return pa.Table.from_pylist([{k: r[k] for k in COLS} for r in rows], schema=SCHEMA.to_arrow())


def evaluate_ours(sql: str, rows, table=None):
    """('rejected', message) | ('error', message) | ('ok', values); checks the two back-ends against each other
    (the Arrow back-end as the engine runs it: a batch that fails is re-run row by row)."""
    try:
        compiled = compile_expression(sql, SCHEMA)
    except ExpressionError as exc:
        return "rejected", exc.message
    by_row, first_error = [], None
    for r in rows:
        try:
            by_row.append(compiled.eval_row(r))
        except Exception as exc:  # noqa: BLE001 - a row error, as the engine routes it
            by_row.append(_ERR)
            first_error = first_error or f"{type(exc).__name__}: {exc}"
    table = table if table is not None else arrow_table(rows)
    values, failed, _ = evaluate(compiled, table)
    by_arrow = values.to_pylist()
    if failed is not None:
        by_arrow = [_ERR if f else v for v, f in zip(by_arrow, failed.to_pylist())]
    if not all(_equal(a, b) if a is not _ERR and b is not _ERR else a is b for a, b in zip(by_row, by_arrow)):
        return "backends", f"row back-end {by_row!r} != Arrow back-end {by_arrow!r}"
    if first_error:
        return "error", first_error
    return "ok", by_row


_ERR = object()


def normal(v):
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if hasattr(v, "months") and hasattr(v, "nanoseconds"):
        return value_text(v)
    return v


def _equal(a, b) -> bool:
    a, b = normal(a), normal(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, decimal.Decimal)) and isinstance(b, (int, decimal.Decimal)):
        return decimal.Decimal(a) == decimal.Decimal(b)
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float, decimal.Decimal)) or not isinstance(b, (int, float, decimal.Decimal)):
            return False
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return fa == fb
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    return a == b


def compare(pg, ours) -> str | None:
    """None when PostgreSQL and flow-beam agree, else a one-line reason."""
    pk, pv_ = pg
    ok, ov = ours
    if ok == "backends":
        return ov
    if pk == "ok" and ok in ("error", "rejected") and any(m in str(ov) for m in DOCUMENTED_REJECTIONS):
        return "documented"
    if ok == "rejected" and pk == "error":
        return None  # PostgreSQL fails too (flow-beam says so at validation)
    if ok == "rejected":
        return f"flow-beam rejects it ({ov}); PostgreSQL gives {pk} {_short(pv_)}"
    if pk == "error" or ok == "error":
        return None if pk == ok else f"PostgreSQL: {pk} {_short(pv_)}; flow-beam: {ok} {_short(ov)}"
    if len(pv_) != len(ov) or not all(_equal(a, b) for a, b in zip(pv_, ov)):
        return f"PostgreSQL {_short(pv_)} != flow-beam {_short(ov)}"
    return None


def _short(v, n=400):
    text = repr(v)
    return text if len(text) <= n else text[:n] + "…"


def check_expression(oracle: Oracle, rows, table, ours_sql: str, pg_sql: str) -> str | None:
    return compare(oracle.run(pg_sql), evaluate_ours(ours_sql, rows, table))


# ---- casts from text -----------------------------------------------------------------------------
CAST_TARGETS = [("bigint", "bigint"), ("double precision", "float8"), ("numeric(10,2)", "numeric(10,2)"),
                ("numeric(5,0)", "numeric(5,0)"), ("boolean", "boolean"), ("date", "date"),
                ("timestamp", "timestamp"), ("timestamptz", "timestamptz"), ("text", "text")]


def cast_inputs(rnd) -> list[str]:
    """Text inputs for casts: whitespace, signs, exponents, NaN/infinity, out of range, boolean words, dates."""
    pieces = ["0", "1", "-1", "+5", "007", "1.5", "-2.25", ".5", "5.", "1e3", "1E-2", "-1.005", "1.005", "2.5",
              "-2.5", "123456789.125", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
              "1e308", "1e309", "1e-320", "NaN", "nan", "Infinity", "-Infinity", "inf", "+inf", "t", "f", "tr",
              "yes", "ye", "no", "n", "on", "of", "off", "o", "TRUE", "False", "y", "2024-02-29", "2023-02-29",
              "2024-1-5", "2024/01/05", "01/02/2024", "20240105", "1999-12-31 23:59:59", "2024-01-05T10:11:12",
              "2024-01-05 10:11:12.1234565", "2024-01-05 10:11:12+02", "2024-01-05 10:11:12-05:30",
              "2024-01-05 10:11:12Z", "2024-01-05 24:00:00", "2024-01-05 25:00:00", "2024-01-05 10:60:00",
              "Jan 5 2024", "epoch", "0000-01-01", "0000-12-31 23:59:59", "2024-01-05T", "2024-01-05 T10:00", "abc", "", "1 2", "0x10", "١٢", "1_000", "99999.995", "99999.994",
              "-0.001", "12345678901234567890", "3.14159e2"]
    ws = ["", " ", "  ", "\t", "\n"]
    out = []
    for p in pieces:
        out.append(p)
        out.append(rnd.choice(ws) + p + rnd.choice(ws))
    return out


def cast_ours(target_sql: str, value: str):
    compiled = compile_expression(f"CAST(s AS {target_sql})", Schema([Field("s", STRING)]))
    row = {"s": value}
    try:
        by_row = compiled.eval_row(row)
        row_kind = "ok"
    except Exception as exc:  # noqa: BLE001
        by_row, row_kind = f"{exc}", "error"
    values, failed, _ = evaluate(compiled, pa.table({"s": pa.array([value], pa.string())}))
    arrow_kind = "error" if failed is not None and failed.to_pylist()[0] else "ok"
    if arrow_kind != row_kind or (row_kind == "ok" and not _equal(by_row, values.to_pylist()[0])):
        return "backends", f"row {row_kind} {by_row!r} != arrow {arrow_kind} {values.to_pylist()!r}"
    return row_kind, by_row


# flow-beam errors where PostgreSQL gives a value, on purpose (README): these markers are in its messages
DOCUMENTED_REJECTIONS = ("(flow-beam reads", "(no NaN or infinity)", "(flow-beam: compare with <> 0",
                         "(flow-beam: dates before year 1", "(flow-beam: decimals hold at most 38 digits)",
                         "(flow-beam reads only text that matches the format)")


def check_cast(oracle: Oracle, target_sql: str, pg_type: str, value: str) -> str | None:
    """None when they agree, 'documented' for a deliberate rejection, else the disagreement."""
    pk, pv_ = oracle.scalar("CAST({v} AS " + pg_type + ")", value)
    ok, ov = cast_ours(target_sql, value)
    if ok == "backends":
        return ov
    if pk == "ok" and ok == "error" and any(m in str(ov) for m in DOCUMENTED_REJECTIONS):
        return "documented"
    if pk != ok:
        return f"CAST({value!r} AS {target_sql}): PostgreSQL {pk} {pv_!r}; flow-beam {ok} {ov!r}"
    if pk == "ok" and not _equal(pv_, ov):
        return f"CAST({value!r} AS {target_sql}): PostgreSQL {pv_!r} != flow-beam {ov!r}"
    return None


class HypothesisRandom:
    """``rnd`` for Gen backed by Hypothesis draws (so failures shrink)."""

    def __init__(self, data):
        from hypothesis import strategies as st
        self.data, self.st = data, st

    def choice(self, seq):
        return self.data.draw(self.st.sampled_from(seq))

    def randint(self, a, b):
        return self.data.draw(self.st.integers(a, b))


def json_safe(v):
    return json.dumps(v, default=str)


def new_random(seed: int) -> random.Random:
    return random.Random(seed)
