"""The ``cast`` op and every value conversion (SQL CAST too): PostgreSQL's conversion rules, vectorised where Arrow
gives the same answer, one value at a time otherwise; values that cannot convert are routed by ``onError``."""
from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.expressions import pgvalues as pv
from ir_compiler.ops.common import ERROR, OpResult, OpTypeError, error_rows, require
from ir_compiler.types import Field, Schema, parse_type, round_decimal, to_arrow

_BOOL_WORDS = {"t": True, "tr": True, "tru": True, "true": True, "y": True, "ye": True, "yes": True, "on": True,
               "1": True, "f": False, "fa": False, "fal": False, "fals": False, "false": False, "n": False,
               "no": False, "of": False, "off": False, "0": False}


def pg_format(fmt: str | None) -> bool:
    """A cast ``format`` is a strptime pattern when it holds ``%`` (``%m/%d/%Y``), else a PostgreSQL
    to_date/to_timestamp pattern (``MM/DD/YYYY HH24:MI``)."""
    return bool(fmt) and "%" not in fmt


def parse_formatted(value: str, target_name: str, fmt: str):
    """Text with a cast ``format`` → date or timestamp (ValueError when it does not match)."""
    if pg_format(fmt):
        from ir_compiler.expressions.temporal import parse_datetime
        parsed = parse_datetime(value, fmt, "cast")
    else:
        parsed = dt.datetime.strptime(value.strip(), fmt)
    return parsed.date() if target_name == "date" else parsed.replace(tzinfo=None)


def cast_schema(op, schema: Schema | None) -> Schema | None:
    if op.format and pg_format(op.format):
        from ir_compiler.expressions.temporal import TemporalError, _tokenize
        try:
            _tokenize(op.format, parsing=True)
        except TemporalError as exc:
            raise OpTypeError(f"format {op.format!r}: {exc}", "format") from None
    f = require(schema, op.field)
    if schema is None:
        return None
    target = parse_type(op.to)
    if f.type.name == "array":
        raise OpTypeError(f"cannot cast array column '{op.field}' to {target}", "to")
    if (f.type.name, target.name) in _NO_CAST:
        raise OpTypeError(f"cannot cast {f.type} column '{op.field}' to {target}: no value of one is a value of the "
                          f"other (PostgreSQL has no such cast either); {_NO_CAST[(f.type.name, target.name)]}",
                          "to")
    return schema.with_field(Field(op.field, target, True))


_EPOCH = "use an expression op, e.g. extract(epoch FROM ts), or cast to string first"
_NO_CAST = {  # (from, to) pairs no value converts between: a validation error, not a DLQ row per value
    **{(n, t): "use an expression op (e.g. to_timestamp(x), make_date(...)) or cast to string first"
       for n in ("int", "float", "decimal") for t in ("date", "timestamp")},
    **{(n, "bool"): "compare it instead (expression op: x <> 0)" for n in ("float", "decimal")},
    **{("bool", t): "cast to int first (true → 1)" for t in ("float", "decimal", "date", "timestamp")},
    **{(n, t): _EPOCH for n in ("date", "timestamp") for t in ("int", "float", "decimal", "bool")},
}


def convert_value(value, target, fmt: str | None = None, *, zone_to_utc: bool = True):
    """One value converted as PostgreSQL's CAST does; raises ValueError (pgvalues.ConversionError) if it cannot.

    ``zone_to_utc``: a zone offset in timestamp text is applied (timestamptz, and the cast op) or ignored (SQL
    ``CAST(... AS timestamp)``, as PostgreSQL does).
    """
    if value is None:
        return None
    name = target.name
    if name == "string":
        return pv.value_text(value)
    if isinstance(value, str):
        if fmt and name in ("date", "timestamp"):
            return parse_formatted(value, name, fmt)
        if name == "int":
            return pv.text_to_int(value)
        if name == "float":
            return pv.text_to_float(value)
        if name == "decimal":
            return pv.text_to_decimal(value, target.precision, target.scale)
        if name == "bool":
            return pv.text_to_bool(value)
        if name == "date":
            return pv.text_to_date(value)
        if name == "timestamp":
            return pv.text_to_timestamp(value, zone_to_utc)
    elif isinstance(value, bool):
        if name == "int":
            return int(value)
        if name == "bool":
            return value
    elif isinstance(value, (int, float, decimal.Decimal)):
        if name == "int":
            return (pv.check_int(value) if isinstance(value, int) else pv.float_to_int(value)
                    if isinstance(value, float) else pv.decimal_to_int(value))
        if name == "float":
            return float(value)
        if name == "decimal":
            if isinstance(value, float):
                return pv.float_to_decimal(value, target.precision, target.scale)
            return pv.fit_decimal(decimal.Decimal(value), target.precision, target.scale)
        if name == "bool" and isinstance(value, int):
            return value != 0
    elif isinstance(value, dt.datetime):
        if name == "timestamp":
            return value.replace(tzinfo=None) if value.tzinfo is None else \
                value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        if name == "date":
            return value.date()
    elif isinstance(value, dt.date):
        if name == "date":
            return value
        if name == "timestamp":
            return dt.datetime(value.year, value.month, value.day)
    raise pv.ConversionError(f"cannot convert {type(value).__name__} to {target}")


# ---- the vectorised path: only where Arrow gives exactly PostgreSQL's answer -------------------------
def _guard(target) -> str | None:
    """An RE2 pattern: text matching it converts in Arrow exactly as PostgreSQL converts it."""
    name = target.name
    if name == "int":
        return r"^-?[0-9]{1,18}$"
    if name == "float":
        return r"^-?[0-9]{1,20}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?$"
    if name == "decimal":
        whole = target.precision - target.scale
        frac = rf"(\.[0-9]{{1,{target.scale}}})?" if target.scale else ""
        return rf"^-?[0-9]{{1,{whole}}}{frac}$" if whole > 0 else None
    if name == "date":
        return r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    if name == "timestamp":
        return r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?)?$"
    return None


# strptime patterns the fast path reads: only directives whose Arrow parse and print agree with Python's strptime
# once a value prints back as its own text (%I without %p, %j, %U, %z, %f ... go one value at a time)
_STRPTIME_SAFE = __import__("re").compile(r"(?:[^%]|%[YmdHMSybB%])*")
_YEARS = pa.array(range(1, 10000), pa.int64())


def _fast_cast(arr: pa.ChunkedArray, target, fmt: str | None):
    """The converted array, or None when the values need the per-value path (which also finds the failures).
    A pair (array, suspect mask): the values where the mask is true are converted again one at a time."""
    atype, src = to_arrow(target), arr.type
    if src == atype:
        return arr
    if pa.types.is_string(src) or pa.types.is_large_string(src):
        if target.name == "string":
            return arr
        trimmed = pc.utf8_trim(arr, characters=pv._WS)
        if fmt and target.name in ("date", "timestamp"):
            if pg_format(fmt) or not _STRPTIME_SAFE.fullmatch(fmt):
                return None  # PostgreSQL patterns, and directives Arrow may read otherwise: one value at a time
            parsed = pc.strptime(trimmed, format=fmt, unit="us")
            # Arrow rolls impossible fields forward (30/02 → 01/03, :60 → the next minute) where Python's strptime
            # refuses them: a value counts only if it prints back as its text (in seconds: Arrow prints %S of a µs
            # timestamp with a fraction) and has a year Python reads (1-9999); the others are left to the per-value
            # path (``cast_array``), so no value's result depends on the rest of its batch.
            suspect = pc.or_kleene(pc.not_equal(pc.strftime(parsed.cast(pa.timestamp("s")), format=fmt), trimmed),
                                   pc.not_equal(pc.is_in(pc.year(parsed), _YEARS), True))
            return pc.cast(parsed, atype), pc.fill_null(suspect, False)
        if target.name == "bool":
            low = pc.utf8_lower(trimmed)
            words = pa.array(list(_BOOL_WORDS))
            if not pc.all(pc.or_(pc.is_in(low, words), pc.is_null(low))).as_py():
                return None
            return pc.is_in(low, pa.array([k for k, v in _BOOL_WORDS.items() if v])).cast(pa.bool_()) \
                if arr.null_count == 0 else pc.if_else(pc.is_null(low), pa.scalar(None, pa.bool_()),
                                                       pc.is_in(low, pa.array([k for k, v in _BOOL_WORDS.items()
                                                                               if v])))
        guard = _guard(target)
        if guard is None or not pc.all(pc.or_(pc.match_substring_regex(trimmed, guard),
                                              pc.is_null(trimmed))).as_py():
            return None
        out = pc.cast(trimmed, atype)
        if target.name in ("date", "timestamp") and pc.any(pc.equal(pc.year(out), 0)).as_py():
            return None  # Arrow reads year 0000; PostgreSQL and the per-value path refuse it
        return out
    if pa.types.is_null(src):
        return pa.chunked_array([pa.nulls(len(arr), atype)])
    if target.name == "float" and pa.types.is_integer(src):
        return pc.cast(arr, atype)
    if target.name == "float" and pa.types.is_decimal(src):
        return pc.cast(pc.cast(arr, pa.string()), atype)  # correctly rounded, as PostgreSQL's numeric → float8
    if target.name == "int":
        if pa.types.is_floating(src):
            return pc.cast(pc.round(arr, round_mode="half_to_even"), atype)
        if pa.types.is_decimal(src):
            return pc.cast(round_decimal(arr.combine_chunks()), atype)
        if pa.types.is_integer(src) or pa.types.is_boolean(src):
            return pc.cast(arr, atype)
    if target.name == "decimal":
        if pa.types.is_integer(src):
            return pc.cast(arr, atype)
        if pa.types.is_decimal(src):
            return pc.cast(round_decimal(arr.combine_chunks(), target.scale), atype)
    if target.name == "bool" and pa.types.is_integer(src):
        return pc.cast(arr, atype)
    if target.name == "timestamp" and pa.types.is_date(src):
        return pc.cast(arr, atype)
    if target.name == "string" and (pa.types.is_integer(src) or pa.types.is_boolean(src)):
        return pc.cast(arr, atype)
    return None


def cast_array(arr, target, fmt: str | None = None, *, zone_to_utc: bool = True):
    """Cast an array; returns (result, failed_mask or None). Failures are values PostgreSQL would reject."""
    arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    try:
        fast = _fast_cast(arr, target, fmt)
        if isinstance(fast, tuple):
            fast, suspect = fast
            if not pc.any(suspect).as_py():
                return fast, None
            slow, slow_failed = _per_value(arr.filter(suspect), target, fmt, zone_to_utc)
            merged = pc.replace_with_mask(fast.combine_chunks(), suspect.combine_chunks()
                                          if isinstance(suspect, pa.ChunkedArray) else suspect, slow)
            failed = pc.replace_with_mask(pa.array([False] * len(arr)), suspect.combine_chunks()
                                          if isinstance(suspect, pa.ChunkedArray) else suspect,
                                          pa.array(slow_failed, pa.bool_()))
            return pa.chunked_array([merged]), (failed if any(slow_failed) else None)
        if fast is not None:
            return fast, None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    out, failed = _per_value(arr, target, fmt, zone_to_utc)
    return pa.chunked_array([out]), (pa.array(failed) if any(failed) else None)


def _per_value(arr, target, fmt, zone_to_utc):
    """Each value converted by ``convert_value``: (array of the target type, [failed?] per value)."""
    out, failed = [], []
    for v in arr.to_pylist():
        try:
            out.append(convert_value(v, target, fmt, zone_to_utc=zone_to_utc))
            failed.append(False)
        except (ValueError, TypeError, ArithmeticError, decimal.InvalidOperation, OverflowError):
            out.append(None)
            failed.append(True)
    return pa.array(out, to_arrow(target)), failed


NULLED_NOTE = "cast {field} → {to}: value(s) set to NULL (onError null)"


def apply_cast(op, table: pa.Table, node_id: str = "") -> OpResult:
    target = parse_type(op.to)
    idx = table.column_names.index(op.field)
    result, failed = cast_array(table.column(idx), target, op.format)
    errors, notes = [], {}
    if failed is not None and pc.any(failed).as_py():
        if op.onError in ("fail", "quarantine"):
            # Both are row errors (SPEC §2): the failing rows leave through the errors port, the others go on.
            # Where nothing receives them (no `errors` reader, no DLQ) they fail the run, which names the first;
            # the other rows of the batch are never dropped with them.
            if op.onError == "fail":
                bad = table.column(idx).filter(failed).to_pylist()
                reason = pa.array([f"cannot cast {v!r} in column '{op.field}' to {target}; set onError to "
                                   f"'null' or 'quarantine' to route such rows" for v in bad], pa.string())
                errors.append(table.filter(failed).append_column(ERROR, reason))
            else:
                errors.append(error_rows(table, failed, f"cast: cannot convert column '{op.field}' to {target}"))
            keep = pc.invert(failed)
            table, result = table.filter(keep), result.filter(keep)
        else:
            notes[NULLED_NOTE.format(field=op.field, to=target)] = pc.sum(failed.cast(pa.int64())).as_py()
    return OpResult(table.set_column(idx, op.field, result), errors, notes=notes)


class CastFailure(Exception):
    """Kept for callers that import it; ``apply_cast`` no longer raises it (onError=fail routes the failing rows
    as row errors, so the rest of the batch is never lost with them)."""

    def __init__(self, message: str, rows: pa.Table):
        super().__init__(message)
        self.rows = rows
