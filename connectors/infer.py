"""Type inference that never changes a value: a column gets a type only if that type holds every sampled value
exactly; otherwise it stays text.

Text columns (CSV/TSV, or rows given as text) — :func:`text_type`, in this order:

- ``bool``: every value is ``true``/``false`` (any case);
- ``int``: every value is an integer without leading zeros (``02134`` stays text: ZIP codes, ids) that fits
  int64; integers beyond int64 (up to 38 digits) are ``decimal(38,0)``;
- ``float``: every value is a plain number (or ``NaN``/``Infinity``) with at most 15 significant digits and a
  finite value, so the float64 holds it exactly as written (``1e999`` is not: text); numbers with more digits and
  no exponent are ``decimal(38,s)`` when they fit, else text;
- ``date``: every value is ``YYYY-MM-DD``; ``timestamp``: ISO dates with a time (a zone offset is converted to
  UTC), dates mixed in;
- anything else, or a column with no values: ``string``.

JSON values (:func:`json_column`): strings always stay strings (``"2023-05-01"`` is text; declare ``date`` to get a
date); integers are int64, or ``decimal(38,0)`` beyond it, or text beyond 38 digits; a column mixing integers and
fractions is float64 only when every value survives the round trip (≤ 15 significant digits, integers within
2^53), else ``decimal`` or text; objects are JSON text; a column mixing kinds is JSON text.
"""
from __future__ import annotations

import decimal
import json

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.types import (BOOL, DATE, FLOAT, INT, STRING, TIMESTAMP, ColumnType, Field, Schema, decimal as
                               decimal_type)

_BOOL = r"(?i)^(true|false)$"
_INT = r"^-?(0|[1-9]\d*)$"
_NUMBER = r"^-?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_SPECIAL = r"(?i)^[+-]?(nan|inf|infinity)$"
_PLAIN_DECIMAL = r"^-?(0|[1-9]\d*)(\.\d+)?$"
_DATE = r"^\d{4}-\d\d-\d\d$"
_ZONED = r"\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)$"
_TIMESTAMP = r"^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)?)?$"
FLOAT_DIGITS = 15  # every decimal number of up to 15 significant digits round-trips through float64
_INT64_MAX = 2**63 - 1
_EXACT_FLOAT_INT = 2**53


def _all(values: pa.Array, regex: str) -> bool:
    return bool(pc.all(pc.match_substring_regex(values, regex)).as_py())


def _max_len(values: pa.Array) -> int:
    return int(pc.max(pc.utf8_length(values)).as_py() or 0)


def _significant(values: pa.Array) -> pa.Array:
    """The significant digits of plain numbers (sign, exponent, point and leading zeros removed)."""
    mantissa = pc.replace_substring_regex(values, r"[eE].*$", "")
    digits = pc.replace_substring_regex(mantissa, r"[-+.]", "")
    return pc.replace_substring_regex(digits, r"^0+", "")


def _numeric_type(values: pa.Array) -> ColumnType:
    if _all(values, _INT):
        if _max_len(pc.replace_substring_regex(values, "^-", "")) <= 18 or _fits_int64(values):
            return INT
        return decimal_type(38, 0) if _max_len(values) <= 39 else STRING
    numbers = pc.filter(values, pc.invert(pc.match_substring_regex(values, _SPECIAL)))
    if len(numbers) and not _all(numbers, _NUMBER):
        return STRING
    if not len(numbers) or (_max_len(_significant(numbers)) <= FLOAT_DIGITS
                            and bool(pc.all(pc.is_finite(numbers.cast(pa.float64()))).as_py())):
        return FLOAT
    if len(numbers) == len(values) and _all(numbers, _PLAIN_DECIMAL):
        fraction = pc.replace_substring_regex(numbers, r"^[^.]*\.?", "")
        whole = pc.replace_substring_regex(pc.replace_substring_regex(numbers, r"\..*$", ""), "^-?0*", "")
        scale, width = _max_len(fraction), _max_len(whole)
        if scale + width <= 38:
            return decimal_type(38, scale) if width <= 38 - scale else STRING
    return STRING


def _fits_int64(values: pa.Array) -> bool:
    try:
        values.cast(pa.int64())
        return True
    except (pa.ArrowInvalid, OverflowError):
        return False


def text_type(arr: pa.Array) -> ColumnType:
    """The narrowest type that holds every (non-null, non-empty) text value of ``arr`` exactly."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        from ir_compiler.types import from_arrow
        return from_arrow(arr.type)
    values = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    values = pc.filter(values, pc.and_(pc.is_valid(values), pc.not_equal(values, "")))
    if not len(values):
        return STRING
    if _all(values, _BOOL):
        return BOOL
    if _all(values, f"({_NUMBER})|({_SPECIAL})"):
        return _numeric_type(values)
    if _all(values, _DATE) and _casts(values, pa.date32()):
        return DATE
    if _all(values, _TIMESTAMP):
        zoned = pc.match_substring_regex(values, _ZONED)
        if pc.any(zoned).as_py() and not pc.all(zoned).as_py():  # local and zoned times mixed: ambiguous
            return STRING
        from connectors.formats import convert_column
        _, failed = convert_column(values, TIMESTAMP)
        return TIMESTAMP if failed is None else STRING
    return STRING


def _casts(values: pa.Array, target: pa.DataType) -> bool:
    try:
        values.cast(target)
        return True
    except (pa.ArrowInvalid, ValueError):
        return False


def infer_text_schema(table: pa.Table) -> Schema:
    """A schema for a table of text columns (see :func:`text_type`)."""
    return Schema([Field(name, text_type(table.column(name))) for name in table.column_names])


# ---- JSON values -----------------------------------------------------------------------------------------
def _digits(d: decimal.Decimal) -> tuple[int, int]:
    """(digits before the point, digits after it) of a finite decimal, without leading/trailing padding."""
    sign, digits, exp = d.as_tuple()
    n = len(digits)
    return max(n + exp, 0), max(-exp, 0)


def _float_exact(v) -> bool:
    """Whether float64 holds ``v`` exactly as written (read back, it prints the same number)."""
    if isinstance(v, int):
        return abs(v) <= _EXACT_FLOAT_INT
    if not v.is_finite():
        return False
    n = v.normalize()
    return len(n.as_tuple().digits) <= FLOAT_DIGITS and -300 < n.adjusted() < 300


def _number_column(values: list) -> pa.Array:
    present = [v for v in values if v is not None]
    if all(isinstance(v, int) for v in present):
        if all(-_INT64_MAX - 1 <= v <= _INT64_MAX for v in present):
            return pa.array(values, pa.int64())
        if all(len(str(abs(v))) <= 38 for v in present):
            return pa.array([None if v is None else decimal.Decimal(v) for v in values], pa.decimal128(38, 0))
        return pa.array([None if v is None else str(v) for v in values], pa.string())  # an int's own text
    if all(_float_exact(v) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    decs = [decimal.Decimal(v) if isinstance(v, int) else v for v in present]
    if all(d.is_finite() for d in decs):
        whole = max(_digits(d)[0] for d in decs)
        scale = max(_digits(d)[1] for d in decs)
        if whole + scale <= 38:
            t = pa.decimal128(38, scale)
            return pa.array([None if v is None else decimal.Decimal(v) for v in values], t)
    return pa.array([None if v is None else getattr(v, "text", str(v)) for v in values], pa.string())


def _kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, decimal.Decimal)):
        return "number"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return "object"


def json_text(v) -> str | None:
    """A JSON value as text: strings as they are, anything else as JSON (decimals as bare numbers)."""
    if v is None or isinstance(v, str):
        return v
    from connectors.formats import _dumps
    return _dumps(v)


def json_column(values: list) -> pa.Array:
    """An Arrow column for parsed JSON values (numbers parsed as int / Decimal), keeping every value exact."""
    kinds = {_kind(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(len(values), pa.string())
    if kinds == {"bool"}:
        return pa.array(values, pa.bool_())
    if kinds == {"str"}:
        return pa.array(values, pa.string())
    if kinds <= {"number"}:
        return _number_column(values)
    if kinds <= {"number", "float"}:  # parsed without Decimal: floats are what the parser gave
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kinds == {"list"}:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    return pa.array([json_text(v) for v in values], pa.string())


def rows_table(rows: list[dict]) -> pa.Table:
    """Parsed JSON objects → a table, columns in order of first appearance (a key missing from a row is null)."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({name: json_column([r.get(name) for r in rows]) for name in names}) if names else \
        pa.table({"__empty": pa.nulls(len(rows))}).drop(["__empty"])


class JsonNumber(decimal.Decimal):
    """A JSON fraction or exponent number, exact, remembering how it was written (``1e999`` stays ``1e999``)."""

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def loads_exact(text: str | bytes):
    """``json.loads`` keeping numbers exact: integers as int, fractions and exponents as :class:`JsonNumber`."""
    return json.loads(text, parse_float=JsonNumber)
