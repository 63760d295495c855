"""Dates, timestamps and intervals with PostgreSQL's rules: arithmetic (``ts + INTERVAL '1 day'``, ``date + 3``,
``ts - ts``), INTERVAL literals, date_trunc, extract/date_part, age, make_date, to_char, to_date, to_timestamp.

Timestamps are UTC wall-clock values (``timestamp`` and ``timestamptz`` alike: a time zone in the input is converted
to UTC, output carries none). Intervals are PostgreSQL's (months, days, microseconds) triple, carried as Arrow
month_day_nano values.
"""
from __future__ import annotations

import calendar
import datetime as dt
import decimal
import re

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ir_compiler.expressions import pgvalues as pv
from ir_compiler.expressions.nodes import Node, arrow_of, cast_arrow, coerce, const, elementwise, row_of, strict
from ir_compiler.types import DATE, FLOAT, INT, INTERVAL, STRING, TIMESTAMP, decimal as decimal_type, to_arrow

US_DAY = 86_400_000_000


def interval(months: int, days: int, micros: int):
    return pa.MonthDayNano([months, days, micros * 1000])


def _iv(v):
    return v.months, v.days, v.nanoseconds // 1000


class TemporalError(ValueError):
    pass


# ---- interval text ---------------------------------------------------------------------------------
_UNITS = {
    "microsecond": ("us", 1), "microseconds": ("us", 1), "us": ("us", 1), "usec": ("us", 1), "usecs": ("us", 1),
    "millisecond": ("us", 1000), "milliseconds": ("us", 1000), "ms": ("us", 1000), "msec": ("us", 1000),
    "msecs": ("us", 1000),
    "second": ("us", 10 ** 6), "seconds": ("us", 10 ** 6), "sec": ("us", 10 ** 6), "secs": ("us", 10 ** 6),
    "s": ("us", 10 ** 6),
    "minute": ("us", 6 * 10 ** 7), "minutes": ("us", 6 * 10 ** 7), "min": ("us", 6 * 10 ** 7),
    "mins": ("us", 6 * 10 ** 7), "m": ("us", 6 * 10 ** 7),
    "hour": ("us", 36 * 10 ** 8), "hours": ("us", 36 * 10 ** 8), "hr": ("us", 36 * 10 ** 8),
    "hrs": ("us", 36 * 10 ** 8), "h": ("us", 36 * 10 ** 8),
    "day": ("d", 1), "days": ("d", 1), "d": ("d", 1), "week": ("d", 7), "weeks": ("d", 7), "w": ("d", 7),
    "month": ("mon", 1), "months": ("mon", 1), "mon": ("mon", 1), "mons": ("mon", 1),
    "year": ("mon", 12), "years": ("mon", 12), "y": ("mon", 12), "yr": ("mon", 12), "yrs": ("mon", 12),
    "decade": ("mon", 120), "decades": ("mon", 120), "century": ("mon", 1200), "centuries": ("mon", 1200),
}
_IV_PART = re.compile(r"\s*(?:([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*([a-z]+)|([+-]?)(\d+):(\d{1,2})(?::(\d{1,2})(?:\.(\d*))?)?)",
                      re.IGNORECASE)


def parse_interval(text: str):
    """PostgreSQL interval input: ``'1 year 2 mons -3 days 04:05:06'``, ``'90 minutes'``, ``'1.5 days'``."""
    t = text.strip()
    ago = False
    if t.lower().endswith(" ago"):
        ago, t = True, t[:-4].strip()
    if not t:
        raise TemporalError(f"invalid input syntax for type interval: {text!r}")
    months, days, micros, pos = 0, 0, 0, 0
    while pos < len(t):
        m = _IV_PART.match(t, pos)
        if not m or m.end() == pos:
            raise TemporalError(f"invalid input syntax for type interval: {text!r}")
        pos = m.end()
        if m.group(2):
            unit = _UNITS.get(m.group(2).lower())
            if unit is None:
                raise TemporalError(f"invalid interval unit {m.group(2)!r} in {text!r}")
            value = decimal.Decimal(m.group(1))
            kind, scale = unit
            whole = int(value)
            frac = value - whole
            if kind == "us":
                micros += int((value * scale).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
            elif kind == "d":
                days += whole * scale
                micros += int((frac * scale * US_DAY).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
            else:
                months += whole * scale
                if frac:
                    if scale >= 12:
                        months += int((frac * scale).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
                    else:
                        fd = frac * 30 * scale
                        days += int(fd)
                        micros += int(((fd - int(fd)) * US_DAY).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
        else:
            sign = -1 if m.group(3) == "-" else 1
            h, mi, s = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
            frac = m.group(7) or ""
            if mi > 59 or s > 59:
                raise TemporalError(f"interval field value out of range: {text!r}")
            us = (h * 3600 + mi * 60 + s) * 10 ** 6 + (round(float("0." + frac) * 10 ** 6) if frac else 0)
            micros += sign * us
    if ago:
        months, days, micros = -months, -days, -micros
    return interval(months, days, micros)


# ---- arithmetic ------------------------------------------------------------------------------------
def add_months(v: dt.datetime, months: int) -> dt.datetime:
    total = v.year * 12 + (v.month - 1) + months
    year, month = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise TemporalError("timestamp out of range")
    day = min(v.day, calendar.monthrange(year, month + 1)[1])
    return v.replace(year=year, month=month + 1, day=day)


def ts_plus_interval(v: dt.datetime, iv, sign: int = 1) -> dt.datetime:
    months, days, micros = _iv(iv)
    try:
        if months:
            v = add_months(v, sign * months)
        if days:
            v = v + dt.timedelta(days=sign * days)
        if micros:
            v = v + dt.timedelta(microseconds=sign * micros)
    except OverflowError:
        raise TemporalError("timestamp out of range") from None
    return v


def _as_ts(v):
    return v if isinstance(v, dt.datetime) else dt.datetime(v.year, v.month, v.day)


def ts_minus_ts(a: dt.datetime, b: dt.datetime):
    """timestamp - timestamp: days and time (justify_hours), no months."""
    d = a - b
    total = (d.days * 86400 + d.seconds) * 10 ** 6 + d.microseconds
    days = abs(total) // US_DAY * (1 if total >= 0 else -1)  # truncation toward zero, like C; in integers
    # (a float quotient rounds up to the next day past 2^53 µs, ~285 years)
    return interval(0, days, total - days * US_DAY)


def _date_plus(v: dt.date, n: int) -> dt.date:
    try:
        return v + dt.timedelta(days=n)
    except OverflowError:
        raise TemporalError("date out of range") from None


def temporal_arith(c, op: str, left: Node, right: Node, src) -> Node:
    lt, rt = left.type.name, right.type.name
    what = f"{left.type} {'+' if op == 'add' else '-' if op == 'sub' else '*'} {right.type}"
    if op == "add" and lt in ("int", "interval") and rt in ("date", "timestamp"):
        left, right, lt, rt = right, left, rt, lt
    if op == "add":
        if lt == "date" and rt == "int":
            return elementwise(_date_plus, DATE, left, right)
        if lt in ("date", "timestamp") and rt == "interval":
            return elementwise(lambda a, b: ts_plus_interval(_as_ts(a), b), TIMESTAMP, left, right)
        if lt == rt == "interval":
            return elementwise(lambda a, b: interval(*(x + y for x, y in zip(_iv(a), _iv(b)))), INTERVAL, left,
                               right)
    if op == "sub":
        if lt == "date" and rt == "int":
            return elementwise(lambda a, b: _date_plus(a, -b), DATE, left, right)
        if lt == rt == "date":
            return Node(INT, row_of(strict(lambda a, b: (a - b).days), left, right),
                        arrow_of(lambda a, b: pc.cast(pc.days_between(b, a), pa.int64()), left, right))
        if lt in ("date", "timestamp") and rt in ("date", "timestamp"):
            return elementwise(lambda a, b: ts_minus_ts(_as_ts(a), _as_ts(b)), INTERVAL, left, right)
        if lt in ("date", "timestamp") and rt == "interval":
            return elementwise(lambda a, b: ts_plus_interval(_as_ts(a), b, -1), TIMESTAMP, left, right)
        if lt == rt == "interval":
            return elementwise(lambda a, b: interval(*(x - y for x, y in zip(_iv(a), _iv(b)))), INTERVAL, left,
                               right)
    c.fail(f"operator {what} is not supported (date ± integer, date/timestamp ± interval, date - date, "
           f"timestamp - timestamp, interval ± interval)", src)


# ---- INTERVAL literal, date_trunc, extract --------------------------------------------------------
def interval_literal(c, node) -> Node:
    this = node.this
    if not isinstance(this, exp.Literal):
        c.fail("INTERVAL takes a constant text, e.g. INTERVAL '1 day'", node)
    text = str(this.this)
    unit = node.args.get("unit")
    if unit is not None:
        text = f"{text} {unit.name if hasattr(unit, 'name') else unit}"
    try:
        return const(parse_interval(text), INTERVAL)
    except TemporalError as exc:
        c.fail(str(exc), node)


_TRUNC = {"microseconds": "microsecond", "milliseconds": "millisecond", "second": "second", "minute": "minute",
          "hour": "hour", "day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year",
          "decade": None, "century": None, "millennium": None}
_TRUNC_ALIASES = {"microsecond": "microseconds", "us": "microseconds", "millisecond": "milliseconds",
                  "ms": "milliseconds", "seconds": "second", "sec": "second", "secs": "second",
                  "minutes": "minute", "min": "minute", "mins": "minute", "hours": "hour", "days": "day",
                  "weeks": "week", "months": "month", "mon": "month", "quarters": "quarter", "years": "year",
                  "decades": "decade", "centuries": "century", "millennia": "millennium", "millenniums": "millennium"}


def _py_trunc(v, unit):
    v = _as_ts(v)
    if unit == "microseconds":
        return v
    if unit == "milliseconds":
        return v.replace(microsecond=v.microsecond // 1000 * 1000)
    if unit == "second":
        return v.replace(microsecond=0)
    if unit == "minute":
        return v.replace(second=0, microsecond=0)
    if unit == "hour":
        return v.replace(minute=0, second=0, microsecond=0)
    day = v.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - dt.timedelta(days=v.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(month=(v.month - 1) // 3 * 3 + 1, day=1)
    year = {"year": v.year, "decade": v.year // 10 * 10, "century": (v.year - 1) // 100 * 100 + 1,
            "millennium": (v.year - 1) // 1000 * 1000 + 1}[unit]
    return dt.datetime(year, 1, 1)


def _unit_text(c, src) -> str:
    if isinstance(src, (exp.Var, exp.Identifier)):
        return src.name.lower()
    n = c.compile(src)
    if not n.constant or n.type != STRING:
        c.fail("the unit must be a constant text such as 'month'", src)
    return str(n.row({})).lower()


def date_trunc(c, unit_src, value_src) -> Node:
    unit = _unit_text(c, unit_src)
    unit = _TRUNC_ALIASES.get(unit, unit)
    if unit not in _TRUNC:
        c.fail(f"date_trunc unit must be one of {', '.join(_TRUNC)}", unit_src)
    a = c.compile(value_src)
    if a.type.name == "null":
        return const(None, TIMESTAMP)
    if not a.type.is_temporal:
        c.fail(f"date_trunc needs a date or timestamp; `{value_src.sql()}` is {a.type}", value_src)
    kernel = _TRUNC[unit]
    if kernel is None:
        return elementwise(lambda v: _py_trunc(v, unit), TIMESTAMP, a)

    def arrow(x):
        x = cast_arrow(x, TIMESTAMP)
        return pc.floor_temporal(x, unit=kernel, week_starts_monday=True)
    return Node(TIMESTAMP, row_of(strict(lambda v: _py_trunc(v, unit)), a), arrow_of(arrow, a))


_SEC = decimal_type(8, 6)
_EXTRACT_TYPES = {"second": _SEC, "milliseconds": decimal_type(11, 3), "epoch": decimal_type(38, 6)}
_FIELD_ALIASES = {"years": "year", "months": "month", "mon": "month", "days": "day", "hours": "hour",
                  "minutes": "minute", "min": "minute", "seconds": "second", "sec": "second",
                  "millisecond": "milliseconds", "microsecond": "microseconds", "dayofweek": "dow",
                  "dayofyear": "doy", "weeks": "week", "quarters": "quarter"}
_DATE_FIELDS = ("year", "month", "day", "quarter", "doy", "dow", "isodow", "week", "isoyear", "decade", "century",
                "millennium", "epoch", "julian")
_TIME_FIELDS = ("hour", "minute", "second", "milliseconds", "microseconds")
_INTERVAL_FIELDS = ("year", "month", "day", "hour", "minute", "second", "milliseconds", "microseconds", "epoch")
_ARROW_FIELDS = {"year": pc.year, "month": pc.month, "day": pc.day, "hour": pc.hour, "minute": pc.minute,
                 "quarter": pc.quarter, "doy": pc.day_of_year, "isoyear": pc.iso_year, "week": pc.iso_week,
                 "dow": lambda x: pc.day_of_week(x, count_from_zero=True, week_start=7),
                 "isodow": lambda x: pc.day_of_week(x, count_from_zero=False, week_start=1)}


def _ts_field(v, unit):
    if unit == "year":
        return v.year
    if unit == "month":
        return v.month
    if unit == "day":
        return v.day
    if unit == "quarter":
        return (v.month - 1) // 3 + 1
    if unit == "doy":
        return v.timetuple().tm_yday
    if unit == "dow":
        return v.isoweekday() % 7
    if unit == "isodow":
        return v.isoweekday()
    if unit == "week":
        return v.isocalendar()[1]
    if unit == "isoyear":
        return v.isocalendar()[0]
    if unit == "decade":
        return v.year // 10
    if unit == "century":
        return (v.year + 99) // 100
    if unit == "millennium":
        return (v.year + 999) // 1000
    if unit == "julian":
        day = v.toordinal() + 1721425
        if not isinstance(v, dt.datetime):
            return day
        us = ((v.hour * 60 + v.minute) * 60 + v.second) * 10 ** 6 + v.microsecond
        return _WIDE.add(decimal.Decimal(day), _pg_numeric_div(us, US_DAY))  # + the day's fraction, as PostgreSQL
    is_ts = isinstance(v, dt.datetime)
    if unit == "epoch":
        base = (_as_ts(v) - dt.datetime(1970, 1, 1))
        return decimal.Decimal((base.days * 86400 + base.seconds) * 10 ** 6 + base.microseconds).scaleb(-6) \
            if is_ts else (v - dt.date(1970, 1, 1)).days * 86400
    if unit == "hour":
        return v.hour
    if unit == "minute":
        return v.minute
    micro = v.second * 10 ** 6 + v.microsecond
    if unit == "second":
        return decimal.Decimal(micro).scaleb(-6)
    if unit == "milliseconds":
        return decimal.Decimal(micro).scaleb(-3)
    return micro  # microseconds


_WIDE = decimal.Context(prec=80)


def _pg_numeric_div(n: int, d: int) -> decimal.Decimal:
    """n / d (non-negative integers, d > 0) as PostgreSQL's numeric division rounds it: to the scale
    select_div_scale picks (16 significant digits from the quotient's base-10000 weight), half away from zero."""
    def weight(x):
        digits = []
        while x:
            digits.append(x % 10000)
            x //= 10000
        return (len(digits) - 1, digits[-1]) if digits else (0, 0)
    (w1, f1), (w2, f2) = weight(n), weight(d)
    qweight = w1 - w2 - (1 if f1 <= f2 else 0)
    scale = max(16 - qweight * 4, 0)
    q, r = divmod(n * 10 ** scale, d)
    if 2 * r >= d:
        q += 1
    return decimal.Decimal(q).scaleb(-scale)


def _tdiv(a: int, b: int) -> int:
    """a / b truncated toward zero in integers (a float quotient is inexact past 2^53)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _interval_field(v, unit):
    months, days, micros = _iv(v)
    if unit == "epoch":
        years = _tdiv(months, 12)
        secs = decimal.Decimal(years * 36525 * 864) + (months - years * 12) * 30 * 86400 + days * 86400
        return secs + decimal.Decimal(micros).scaleb(-6)
    if unit == "year":
        return _tdiv(months, 12)
    if unit == "month":
        return months - _tdiv(months, 12) * 12
    if unit == "day":
        return days
    hours = _tdiv(micros, 3_600_000_000)
    if unit == "hour":
        return hours
    rest = micros - hours * 3_600_000_000
    minutes = _tdiv(rest, 60_000_000)
    if unit == "minute":
        return minutes
    us = rest - minutes * 60_000_000
    if unit == "second":
        return decimal.Decimal(us).scaleb(-6)
    if unit == "milliseconds":
        return decimal.Decimal(us).scaleb(-3)
    return us


_INTEGRAL = decimal_type(20, 0)
_JULIAN = decimal_type(36, 28)


def extract(c, unit: str, value_src, src, as_float: bool = False) -> Node:
    """extract(field FROM x) is numeric (PostgreSQL 14+); date_part(field, x) is double precision and reads a date
    as a timestamp at midnight."""
    unit = _FIELD_ALIASES.get(unit.lower(), unit.lower())
    a = c.compile(value_src)
    if a.type.name == "null":
        return const(None, FLOAT if as_float else _INTEGRAL)
    if as_float and a.type == DATE:
        a = coerce(a, TIMESTAMP)
    if a.type == INTERVAL:
        if unit not in _INTERVAL_FIELDS:
            c.fail(f"extract from an interval takes one of {', '.join(_INTERVAL_FIELDS)}", src)
        out = FLOAT if as_float else _EXTRACT_TYPES.get(unit, _INTEGRAL)
        conv = float if as_float else decimal.Decimal
        return elementwise(lambda v: conv(_interval_field(v, unit)), out, a)
    if not a.type.is_temporal:
        c.fail(f"extract needs a date, timestamp or interval; `{value_src.sql()}` is {a.type}", value_src)
    allowed = _DATE_FIELDS + (_TIME_FIELDS if a.type == TIMESTAMP else ())
    if unit not in allowed:
        c.fail(f"extract field '{unit}' is not supported for {a.type} (use one of {', '.join(allowed)})", src)
    if as_float:
        out, conv = FLOAT, float
        if unit in ("second", "milliseconds"):  # PostgreSQL: tm_sec + fsec / 1000000.0 in double precision
            scale = 1.0 if unit == "second" else 1000.0
            return elementwise(lambda v: v.second * scale + v.microsecond / (1_000_000.0 / scale), FLOAT, a)
    else:
        out, conv = _EXTRACT_TYPES.get(unit, _INTEGRAL), decimal.Decimal
        if unit == "epoch" and a.type == DATE:
            out = _INTEGRAL
        if unit == "julian" and a.type == TIMESTAMP:  # a day's fraction: at most 28 digits (1 µs / 1 day)
            out = _JULIAN
    kernel = _ARROW_FIELDS.get(unit)
    if kernel is None:
        return elementwise(lambda v: conv(_ts_field(v, unit)), out, a)
    atype = to_arrow(out)
    return Node(out, row_of(strict(lambda v: conv(_ts_field(v, unit))), a),
                arrow_of(lambda x: pc.cast(kernel(x), atype), a))


def _extract_node(c, node) -> Node:
    part = node.this
    unit = part.name if isinstance(part, (exp.Var, exp.Identifier, exp.Column)) else str(part.this if isinstance(
        part, exp.Literal) else part)
    return extract(c, unit, node.expression, node)


# ---- age, make_date --------------------------------------------------------------------------------
def age(a: dt.datetime, b: dt.datetime):
    """PostgreSQL's age(): symbolic years, months and days, then time."""
    a, b = _as_ts(a), _as_ts(b)
    flip = a < b
    f = [a.microsecond - b.microsecond, a.second - b.second, a.minute - b.minute, a.hour - b.hour, a.day - b.day,
         a.month - b.month, a.year - b.year]
    if flip:
        f = [-x for x in f]
    fsec, sec, mi, hour, mday, mon, year = f
    while fsec < 0:
        fsec += 10 ** 6
        sec -= 1
    while sec < 0:
        sec += 60
        mi -= 1
    while mi < 0:
        mi += 60
        hour -= 1
    while hour < 0:
        hour += 24
        mday -= 1
    while mday < 0:
        ref = a if flip else b
        mday += calendar.monthrange(ref.year, ref.month)[1]
        mon -= 1
    while mon < 0:
        mon += 12
        year -= 1
    if flip:
        fsec, sec, mi, hour, mday, mon, year = (-x for x in (fsec, sec, mi, hour, mday, mon, year))
    return interval(year * 12 + mon, mday, ((hour * 60 + mi) * 60 + sec) * 10 ** 6 + fsec)


def make_date(y: int, m: int, d: int) -> dt.date:
    try:
        return dt.date(y, m, d)
    except (ValueError, OverflowError):
        raise TemporalError(f"date field value out of range: {y}-{m:02d}-{d:02d}") from None


# ---- to_char / to_date / to_timestamp --------------------------------------------------------------
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
# keyword → canonical (matched longest first; case-insensitive unless the case carries meaning)
_KEYWORDS = ["FF1", "FF2", "FF3", "FF4", "FF5", "FF6", "HH24", "HH12", "HH", "MI", "SSSSS", "SSSS", "SS", "MS", "US", "A.M.", "P.M.", "AM", "PM", "Y,YYY",
             "YYYY", "YYY", "YY", "Y", "IYYY", "IYY", "IY", "I", "MONTH", "MON", "MM", "DAY", "DY", "DDD", "DD",
             "D", "IDDD", "ID", "IW", "WW", "W", "CC", "J", "Q", "RM"]
_KEYWORDS.sort(key=len, reverse=True)
_CASED = {"MONTH", "MON", "DAY", "DY", "RM", "AM", "PM", "A.M.", "P.M."}


def _tokenize(fmt: str, *, parsing: bool):
    """Format → list of (kind, value, fill_mode, suffix) with kind 'kw' or 'lit'."""
    out, i = [], 0
    while i < len(fmt):
        if fmt.startswith('"', i):
            j = i + 1
            buf = []
            while j < len(fmt) and fmt[j] != '"':
                if fmt[j] == "\\" and j + 1 < len(fmt):
                    j += 1
                buf.append(fmt[j])
                j += 1
            out.append(("lit", "".join(buf), False, ""))
            i = j + 1
            continue
        if fmt[i] == "\\" and i + 1 < len(fmt):
            out.append(("lit", fmt[i + 1], False, ""))
            i += 2
            continue
        fill = tm = False  # PostgreSQL reads one prefix (FM or TM, upper or lower case) before a keyword
        if fmt[i:i + 2] in ("FM", "fm", "TM", "tm"):
            fill, tm = fmt[i:i + 2].upper() == "FM", fmt[i:i + 2].upper() == "TM"
            i += 2  # TM: translated names are never blank-padded; numbers unaffected
        if fmt[i:i + 2] in ("FX", "fx"):  # a keyword (fixed-format parsing): prints nothing
            if parsing:
                raise TemporalError("FX is not supported in to_date/to_timestamp formats")
            i += 2
            continue
        for kw in _KEYWORDS:
            raw = fmt[i:i + len(kw)]
            if raw.upper() == kw and (raw.isupper() or raw.islower() or raw.isdigit() or
                                      (kw in ("MONTH", "MON", "DAY", "DY") and raw == raw.capitalize())):
                i += len(kw)
                suffix = ""
                if fmt[i:i + 2] in ("TH", "th"):
                    suffix = fmt[i:i + 2]
                    i += 2
                out.append(("kw", (kw, raw), fill or (tm and kw in ("MONTH", "DAY")), suffix))
                break
        else:  # no keyword here: a literal character (a prefix before it is dropped, as PostgreSQL does)
            if re.match(r"TZH|TZM|TZ|OF|BC|AD|B\.C\.|A\.D\.", fmt[i:], re.IGNORECASE):
                raise TemporalError(f"format pattern {fmt[i:i + 3]!r} is not supported")
            out.append(("lit", fmt[i], False, ""))
            i += 1
    return out


def _cased(raw: str, text: str) -> str:
    if raw.isupper() or (len(raw) > 1 and raw[:2].isupper()):
        return text.upper()
    if raw[0].isupper():
        return text.capitalize()
    return text.lower()


def _ordinal(n: int, suffix: str) -> str:
    if 10 <= n % 100 <= 20:
        s = "th"
    else:
        s = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return s.upper() if suffix == "TH" else s


def to_char(v, fmt: str) -> str:
    v = _as_ts(v)
    out = []
    for kind, val, fill, suffix in _tokenize(fmt, parsing=False):
        if kind == "lit":
            out.append(val)
            continue
        kw, raw = val
        hour12 = v.hour % 12 or 12
        num = {"HH24": (v.hour, 2), "HH12": (hour12, 2), "HH": (hour12, 2), "MI": (v.minute, 2),
               "SS": (v.second, 2), "MS": (v.microsecond // 1000, 3), "US": (v.microsecond, 6),
               "FF1": (v.microsecond // 100000, 1), "FF2": (v.microsecond // 10000, 2),
               "FF3": (v.microsecond // 1000, 3), "FF4": (v.microsecond // 100, 4),
               "FF5": (v.microsecond // 10, 5), "FF6": (v.microsecond, 6),
               "SSSS": (v.hour * 3600 + v.minute * 60 + v.second, 0),
               "SSSSS": (v.hour * 3600 + v.minute * 60 + v.second, 0),
               "YYYY": (v.year, 4), "MM": (v.month, 2), "DD": (v.day, 2),
               "DDD": (v.timetuple().tm_yday, 3), "D": (v.isoweekday() % 7 + 1, 0), "ID": (v.isoweekday(), 0),
               "IW": (v.isocalendar()[1], 2), "IYYY": (v.isocalendar()[0], 4),
               "IDDD": ((v.date() - dt.date.fromisocalendar(v.isocalendar()[0], 1, 1)).days + 1, 3),
               "WW": ((v.timetuple().tm_yday - 1) // 7 + 1, 2), "W": ((v.day - 1) // 7 + 1, 0),
               "CC": ((v.year + 99) // 100, 2), "J": (v.toordinal() + 1721425, 0), "Q": ((v.month - 1) // 3 + 1, 0)
               }.get(kw)
        if num is not None:
            n, width = num
            fixed = kw in ("MS", "US") or kw.startswith("FF")  # fractions keep their width under FM (PostgreSQL)
            text = str(n) if (fill and not fixed) or not width else str(n).zfill(width)
            out.append(text + (_ordinal(n, suffix) if suffix else ""))
            continue
        if kw in ("YYY", "YY", "Y", "IYY", "IY", "I"):
            year = v.isocalendar()[0] if kw.startswith("I") else v.year
            width = len(kw)
            text = str(year)[-width:] if len(str(year)) >= width else str(year).zfill(width)
            if fill:
                text = str(int(text))
            out.append(text + (_ordinal(int(text), suffix) if suffix else ""))
        elif kw == "Y,YYY":
            out.append(f"{v.year // 1000},{v.year % 1000:03d}")
        elif kw in ("MONTH", "DAY"):
            name = _MONTHS[v.month - 1] if kw == "MONTH" else _DAYS[v.isoweekday() % 7]
            text = _cased(raw, name)
            out.append(text if fill else text.ljust(9))
        elif kw in ("MON", "DY"):
            name = _MONTHS[v.month - 1] if kw == "MON" else _DAYS[v.isoweekday() % 7]
            out.append(_cased(raw, name[:3]))
        elif kw in ("AM", "PM", "A.M.", "P.M."):
            pm = v.hour >= 12
            text = ("P.M." if pm else "A.M.") if "." in kw else ("PM" if pm else "AM")
            out.append(text if raw[0].isupper() else text.lower())
        elif kw == "RM":
            text = _ROMAN[v.month - 1]
            text = text if raw[0].isupper() else text.lower()
            out.append(text if fill else text.ljust(4))
    return "".join(out)


_NUM_WIDTH = {"YYYY": 4, "MM": 2, "DD": 2, "HH24": 2, "HH12": 2, "HH": 2, "MI": 2, "SS": 2, "MS": 3, "US": 6,
              "DDD": 3, "YY": 2, "Y": 1, "YYY": 3}


_STRICT = "(flow-beam reads only text that matches the format)"


def parse_datetime(text: str, fmt: str, what: str) -> dt.datetime:
    """to_date / to_timestamp: read ``text`` with a PostgreSQL format (not FX mode: spaces and separators are
    flexible, numbers may be shorter than their field)."""
    toks = _tokenize(fmt, parsing=True)
    if not text.strip():  # PostgreSQL: year 0, i.e. 1 BC
        raise TemporalError(f"empty text gives a date before year 1 in {what} (flow-beam: dates before year 1 "
                            f"are not supported)")
    f = {"year": None, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0, "micro": 0, "pm": None,
         "doy": None}
    i, n = 0, len(text)
    for ti, (kind, val, _fill, suffix) in enumerate(toks):
        if kind == "lit":
            if val.isspace():
                while i < n and text[i].isspace():
                    i += 1
            elif i < n and not text[i].isalnum():
                i += 1
            continue
        while i < n and text[i].isspace():
            i += 1
        if i >= n:  # the input ran out: the remaining fields keep their defaults (PostgreSQL)
            break
        kw = val[0]
        if kw in ("MONTH", "MON", "DAY", "DY"):
            names = _MONTHS if kw in ("MONTH", "MON") else _DAYS
            for idx, name in enumerate(names):
                cand = name if kw in ("MONTH", "DAY") else name[:3]
                if text[i:i + len(cand)].lower() == cand.lower():
                    i += len(cand)
                    if kw in ("MONTH", "MON"):
                        f["month"] = idx + 1
                    break
            else:
                raise TemporalError(f"invalid value {text[i:i + 9]!r} for {kw} in {what} {_STRICT}")
            continue
        if kw in ("AM", "PM", "A.M.", "P.M."):
            word = text[i:i + len(kw)].upper()
            if word not in ("AM", "PM", "A.M.", "P.M."):
                raise TemporalError(f"invalid value {text[i:i + len(kw)]!r} for {kw} in {what} {_STRICT}")
            f["pm"] = word.startswith("P")
            i += len(kw)
            continue
        width = _NUM_WIDTH.get(kw)
        if width is None:
            raise TemporalError(f"format pattern {kw!r} is not supported in {what}")
        next_is_digit = ti + 1 < len(toks) and toks[ti + 1][0] == "kw" and toks[ti + 1][1][0] in _NUM_WIDTH
        if kw == "YYYY" and i < n and text[i] == "-":
            raise TemporalError(f"negative years are not supported in {what} (flow-beam: dates before year 1 are "
                                f"not supported)")
        j = i
        limit = width if (next_is_digit or kw not in ("YYYY",)) else 10
        while j < n and j - i < limit and text[j].isdigit():
            j += 1
        if j == i:
            raise TemporalError(f"invalid value {text[i:i + width]!r} for {kw} in {what} {_STRICT}")
        digits = text[i:j]
        i = j
        if suffix:
            i += 2
        value = int(digits)
        if kw == "MS":  # a fraction of the second: '12.3' with SS.MS is 300 ms (PostgreSQL)
            f["micro"] += int(digits.ljust(3, "0")[:3]) * 1000
            continue
        if kw == "US":
            f["micro"] += int(digits.ljust(6, "0")[:6])
            continue
        key = {"YYYY": "year", "YYY": "year", "YY": "year", "Y": "year", "MM": "month", "DD": "day",
               "HH24": "hour", "HH12": "hour12", "HH": "hour12", "MI": "minute", "SS": "second", "DDD": "doy"}[kw]
        if kw in ("YY", "YYY", "Y"):
            value = _century_adjust(value, len(digits))
        f[key] = value
    if "hour12" in f:
        h = f.pop("hour12")
        if not 1 <= h <= 12:
            raise TemporalError(f"hour \"{h}\" is invalid for the 12-hour clock in {what}")
        f["hour"] = h % 12
    if f["pm"]:
        f["hour"] = f["hour"] % 12 + 12
    elif f["pm"] is False:
        f["hour"] = f["hour"] % 12
    if f["year"] is None:  # PostgreSQL: year 0, i.e. 1 BC
        raise TemporalError(f"no year in {text!r} gives a date before year 1 in {what} (flow-beam: dates before "
                            f"year 1 are not supported)")
    year = f["year"]
    if f["hour"] > 23 or f["minute"] > 59 or f["second"] > 59:  # PostgreSQL refuses 24:00 and :60 here
        raise TemporalError(f"date/time field value out of range in {what}")
    try:
        if f["doy"] is not None:
            base = dt.datetime(year, 1, 1) + dt.timedelta(days=f["doy"] - 1)
        else:
            base = dt.datetime(year, f["month"], f["day"])
        return base + dt.timedelta(hours=f["hour"], minutes=f["minute"], seconds=f["second"],
                                   microseconds=f["micro"])
    except (ValueError, OverflowError):
        raise TemporalError(f"date/time field value out of range: {text!r} {_STRICT}") from None


def _century_adjust(v: int, digits: int) -> int:
    if digits == 2:
        return v + 2000 if v < 70 else v + 1900
    if digits == 3:
        return v + 2000 if v < 100 else v + 1000
    if digits == 1:
        return v + 2000
    return v


def _fmt_arg(c, src) -> str:
    n = c.compile(src)
    if not n.constant or n.type != STRING or n.row({}) is None:
        c.fail("the format must be a constant text such as 'YYYY-MM-DD'", src)
    fmt = n.row({})
    try:
        _tokenize(fmt, parsing=False)
    except TemporalError as exc:
        c.fail(str(exc), src)
    return fmt


def to_char_node(c, args, src) -> Node:
    if len(args) != 2:
        c.fail("to_char takes (timestamp or date, format)", src)
    a = c.compile(args[0])
    if a.type.name == "null":
        return const(None, STRING)
    if not a.type.is_temporal:
        c.fail(f"to_char formats dates and timestamps; `{args[0].sql()}` is {a.type} (for numbers use CAST or "
               f"round)", args[0])
    fmt = _fmt_arg(c, args[1])
    if fmt == "":  # PostgreSQL: an empty format gives NULL
        return const(None, STRING)
    return elementwise(lambda v: to_char(v, fmt), STRING, a)


def to_date_node(c, args, src, timestamp: bool) -> Node:
    name = "to_timestamp" if timestamp else "to_date"
    if timestamp and len(args) == 1:
        a = c.compile(args[0])
        c.numeric(a, args[0], "to_timestamp(epoch seconds)")

        def from_epoch(v):
            try:
                us = decimal.Decimal(v) * 10 ** 6
                return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us.to_integral_value(
                    rounding=decimal.ROUND_HALF_EVEN)))
            except (OverflowError, decimal.InvalidOperation):
                raise TemporalError("timestamp out of range") from None
        return elementwise(from_epoch, TIMESTAMP, a)
    if len(args) != 2:
        c.fail(f"{name} takes (text, format)", src)
    a = c.compile(args[0])
    if a.type.name == "null":
        return const(None, TIMESTAMP if timestamp else DATE)
    if a.type != STRING:
        c.fail(f"{name} reads text; `{args[0].sql()}` is {a.type}", args[0])
    fmt = _fmt_arg(c, args[1])
    try:
        _tokenize(fmt, parsing=True)
    except TemporalError as exc:
        c.fail(str(exc), args[1])
    if timestamp:
        return elementwise(lambda v: parse_datetime(v, fmt, name), TIMESTAMP, a)
    return elementwise(lambda v: parse_datetime(v, fmt, name).date(), DATE, a)


def _timestamp_arg(c, src):
    n = c.compile(src)
    if n.type.name == "null":
        return const(None, TIMESTAMP)
    if not n.type.is_temporal:
        c.fail(f"`{src.sql()}` is {n.type}, but a date or timestamp is needed", src)
    return n


def age_node(c, args, src, today) -> Node:
    if len(args) == 2:
        a, b = _timestamp_arg(c, args[0]), _timestamp_arg(c, args[1])
        return elementwise(age, INTERVAL, a, b)
    if len(args) == 1:
        b = _timestamp_arg(c, args[0])
        midnight = dt.datetime(today.year, today.month, today.day)
        return elementwise(lambda v: age(midnight, v), INTERVAL, b)
    c.fail("age takes one or two timestamps", src)


def make_date_node(c, args, src) -> Node:
    if len(args) != 3:
        c.fail("make_date takes (year, month, day)", src)
    nodes = [c.compile(a) for a in args]
    for n, a in zip(nodes, args):
        if n.type.name not in ("int", "null"):
            c.fail(f"make_date takes integers; `{a.sql()}` is {n.type}", a)
    return elementwise(make_date, DATE, *[n if n.type == INT else const(None, INT) for n in nodes])


HANDLERS = {exp.Interval: interval_literal, exp.Extract: _extract_node}
