"""PostgreSQL's value semantics, shared by SQL CAST, the ``cast`` op and text output.

Text is parsed into int, float, numeric, bool, date and timestamp the way PostgreSQL 15's input functions do (the
forms it accepts, an error where it errors; the few forms flow-beam does not accept are listed in the README), and
values are printed as PostgreSQL prints them (``float8out``, ``numeric_out``, ISO DateStyle, IntervalStyle
``postgres``). Pure Python, one value at a time: the vectorised paths check against these.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
import re

# Decimal arithmetic: exact for anything decimal128 holds; ROUND_HALF_UP is half away from zero (PostgreSQL numeric).
DEC = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_UP, Emin=-999999, Emax=999999,
                      traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
_WS = " \t\n\r\f\v"  # C isspace(): what PostgreSQL's input functions skip


NOT_READ = "(flow-beam reads ISO dates YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD and MM/DD/YYYY, years 1 to 9999)"


class ConversionError(ValueError):
    """A value PostgreSQL would reject (the message is PostgreSQL's, shortened)."""


# ---- text → value ----------------------------------------------------------------------------------
_INT = re.compile(r"[+-]?[0-9]+")
_NUM = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_FLOAT_SPECIAL = {"nan": math.nan, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf,
                  "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


def text_to_int(s: str) -> int:
    t = s.strip(_WS)
    if not _INT.fullmatch(t):
        raise ConversionError(f"invalid input syntax for type bigint: {s!r}")
    return check_int(int(t))


def check_int(v: int) -> int:
    if not INT64_MIN <= v <= INT64_MAX:
        raise ConversionError(f"value {v} is out of range for type bigint")
    return v


def text_to_float(s: str) -> float:
    t = s.strip(_WS)
    special = _FLOAT_SPECIAL.get(t.lower())
    if special is not None:
        return special
    if _HEX.fullmatch(t):  # strtod() reads C99 hex floats, so PostgreSQL does
        sign = -1.0 if t.startswith("-") else 1.0
        try:
            v = sign * float.fromhex(t.lstrip("+-"))
        except OverflowError:
            raise ConversionError(f"{t!r} is out of range for type double precision") from None
        return v
    if not _NUM.fullmatch(t):
        raise ConversionError(f"invalid input syntax for type double precision: {s!r}")
    v = float(t)
    mantissa = t.lower().split("e")[0]
    if math.isinf(v) or (v == 0.0 and any(ch in "123456789" for ch in mantissa)):
        raise ConversionError(f"{t!r} is out of range for type double precision")
    return v


def text_to_decimal(s: str, precision: int, scale: int) -> decimal.Decimal:
    t = s.strip(_WS)
    if t.lower() in ("nan", "infinity", "+infinity", "-infinity", "inf", "+inf", "-inf"):
        raise ConversionError(f"{t!r} cannot be stored in decimal({precision},{scale}) (no NaN or infinity)")
    if not _NUM.fullmatch(t):
        raise ConversionError(f"invalid input syntax for type numeric: {s!r}")
    try:
        return fit_decimal(decimal.Decimal(t), precision, scale)
    except decimal.DecimalException:
        raise ConversionError(f"numeric field overflow: {t!r} does not fit decimal({precision},{scale})") from None


def fit_decimal(d: decimal.Decimal, precision: int, scale: int) -> decimal.Decimal:
    """PostgreSQL's numeric typmod: round half away from zero to ``scale``, error if the integer part is too wide."""
    if not d.is_finite():
        raise ConversionError(f"{d} cannot be stored in decimal({precision},{scale})")
    q = d.quantize(decimal.Decimal(1).scaleb(-scale), context=DEC)
    if q.is_zero():
        return abs(q)
    if q.adjusted() + 1 > precision - scale:
        raise ConversionError(f"numeric field overflow: {d} does not fit decimal({precision},{scale})")
    return q


def float_to_decimal(v: float, precision: int, scale: int) -> decimal.Decimal:
    """float8 → numeric goes through 15 significant digits (PostgreSQL's float8_numeric)."""
    if math.isnan(v) or math.isinf(v):
        raise ConversionError(f"{v} cannot be stored in decimal({precision},{scale})")
    return fit_decimal(decimal.Decimal(format(v, ".15g")), precision, scale)


def float_to_int(v: float) -> int:
    if math.isnan(v) or math.isinf(v):
        raise ConversionError(f"{v} is out of range for type bigint")
    r = round(v)  # half to even, like rint()
    if not INT64_MIN <= r <= INT64_MAX:
        raise ConversionError(f"{v} is out of range for type bigint")
    return r


def decimal_to_int(d: decimal.Decimal) -> int:
    if not d.is_finite():
        raise ConversionError(f"{d} is out of range for type bigint")
    return check_int(int(d.quantize(decimal.Decimal(1), context=DEC)))


def text_to_bool(s: str) -> bool:
    """boolin: unique prefixes of true/false/yes/no, on/off (two letters at least), 1/0; case-insensitive."""
    t = s.strip(_WS).lower()
    if t:
        for word, value, least in (("true", True, 1), ("false", False, 1), ("yes", True, 1), ("no", False, 1),
                                   ("on", True, 2), ("off", False, 2)):
            if least <= len(t) <= len(word) and word.startswith(t):
                return value
        if t in ("1", "0"):
            return t == "1"
    raise ConversionError(f"invalid input syntax for type boolean: {s!r}")


_DATE_ISO = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_DATE_SLASH_YMD = re.compile(r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})")
_DATE_MDY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_DATE_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]*))?)?")
_ZONE = re.compile(r"(?:z|utc|gmt|([+-])([0-9]{1,2})(?::?([0-9]{2}))?)", re.IGNORECASE)


def _split_datetime(s: str, what: str):
    t = s.strip(_WS)
    if t.lower() == "epoch":
        return dt.date(1970, 1, 1), None, None
    m = re.match(r"([0-9/-]+)(?:([Tt ]+)(.*))?$", t)
    if not m:
        raise ConversionError(f"invalid input syntax for type {what}: {s!r} {NOT_READ}")
    dpart, sep, rest = m.group(1), m.group(2) or "", m.group(3)
    tees = sep.count("T") + sep.count("t")
    if tees and not (rest or "").strip(_WS):  # '2024-01-05T': PostgreSQL wants the time a T announces
        raise ConversionError(f"invalid input syntax for type {what}: {s!r}")
    if tees > 1:  # '2024-01-05TT10:00': PostgreSQL reads midnight, dropping the time; flow-beam refuses
        raise ConversionError(f"invalid input syntax for type {what}: {s!r} {NOT_READ}")
    for rx, order in ((_DATE_ISO, "ymd"), (_DATE_SLASH_YMD, "ymd"), (_DATE_MDY, "mdy"), (_DATE_COMPACT, "ymd")):
        dm = rx.fullmatch(dpart)
        if dm:
            parts = dict(zip(order, (int(g) for g in dm.groups())))
            try:
                day = dt.date(parts["y"], parts["m"], parts["d"])
            except ValueError:
                raise ConversionError(f"date/time field value out of range: {s!r}") from None
            break
    else:
        raise ConversionError(f"invalid input syntax for type {what}: {s!r} {NOT_READ}")
    if rest is None or not rest.strip(_WS):
        return day, None, None
    rest = rest.strip(_WS)
    tm = _TIME.match(rest)
    if not tm:
        raise ConversionError(f"invalid input syntax for type {what}: {s!r} {NOT_READ}")
    zone_text = rest[tm.end():].strip(_WS)
    offset = None
    if zone_text:
        zm = _ZONE.fullmatch(zone_text)
        if not zm:
            raise ConversionError(f"invalid input syntax for type {what}: {s!r} {NOT_READ}")
        if zm.group(1):
            hours, minutes = int(zm.group(2)), int(zm.group(3) or 0)
            if hours > 15 or minutes > 59:
                raise ConversionError(f"time zone displacement out of range: {s!r}")
            offset = (1 if zm.group(1) == "+" else -1) * (hours * 60 + minutes)
        else:
            offset = 0
    return day, tm, offset


def _time_of(tm, s: str) -> dt.timedelta:
    hour, minute, sec = int(tm.group(1)), int(tm.group(2)), int(tm.group(3) or 0)
    frac = tm.group(4) or ""
    micros = round(float("0." + frac) * 1_000_000) if frac else 0  # rint(), as PostgreSQL
    if minute > 59 or sec > 60 or hour > 24 or (hour == 24 and (minute or sec or micros)):
        raise ConversionError(f"date/time field value out of range: {s!r}")
    return dt.timedelta(hours=hour, minutes=minute, seconds=sec, microseconds=micros)


def text_to_date(s: str) -> dt.date:
    day, tm, _ = _split_datetime(s, "date")
    if tm is not None:
        _time_of(tm, s)  # validated, then dropped (PostgreSQL's date_in)
    return day


def text_to_timestamp(s: str, with_zone: bool = False) -> dt.datetime:
    """``timestamp`` ignores a zone offset in the text (PostgreSQL); ``timestamptz`` converts it to UTC."""
    day, tm, offset = _split_datetime(s, "timestamp")
    value = dt.datetime(day.year, day.month, day.day)
    try:
        if tm is not None:
            value = value + _time_of(tm, s)
        if with_zone and offset:
            value = value - dt.timedelta(minutes=offset)
    except OverflowError:
        raise ConversionError(f"timestamp out of range: {s!r} {NOT_READ}") from None
    return value


# ---- value → text ----------------------------------------------------------------------------------
def float_text(v: float) -> str:
    """float8out: shortest round-trip digits; exponent form below 1e-4 and from 1e15."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exp = _shortest(v).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + exp  # position of the decimal point relative to the digit string
    e10 = point - 1
    neg = "-" if sign else ""
    if e10 < -4 or e10 >= 15:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if e10 < 0 else '+'}{abs(e10):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{ds}"
    if point >= len(ds):
        return f"{neg}{ds}{'0' * (point - len(ds))}"
    return f"{neg}{ds[:point]}.{ds[point:]}"


def _shortest(v: float) -> decimal.Decimal:
    """The shortest decimal that reads back as ``v``. Python's repr may give one that lies exactly halfway to the
    next double (it reads back by ties-to-even); PostgreSQL's (Ryu) never does, so such values take the shortest
    decimal strictly inside the rounding interval, the closest to ``v``."""
    r = decimal.Decimal(repr(v))
    exact = decimal.Decimal(v)
    if r == exact:
        return r
    ctx = decimal.Context(prec=60)
    up, down = math.nextafter(v, math.inf), math.nextafter(v, -math.inf)
    hi = ctx.divide(ctx.add(exact, decimal.Decimal(up)), 2) if not math.isinf(up) else None
    lo = ctx.divide(ctx.add(exact, decimal.Decimal(down)), 2) if not math.isinf(down) else None
    if r != hi and r != lo:
        return r
    for p in range(len(r.as_tuple().digits), 18):
        near = decimal.Context(prec=p, rounding=decimal.ROUND_HALF_EVEN).plus(exact)
        unit = decimal.Decimal(1).scaleb(near.adjusted() - p + 1)
        inside = [x for x in (near, near - unit, near + unit)
                  if (lo is None or x > lo) and (hi is None or x < hi)]
        if inside:
            return min(inside, key=lambda x: abs(x - exact))
    return exact


def decimal_text(d: decimal.Decimal) -> str:
    if d.is_zero():
        d = abs(d)
    return format(d, "f")


def date_text(d: dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def time_text(hour: int, minute: int, second: int, micro: int) -> str:
    out = f"{hour:02d}:{minute:02d}:{second:02d}"
    return out + (f".{micro:06d}".rstrip("0") if micro else "")


def timestamp_text(v: dt.datetime) -> str:
    return f"{date_text(v)} {time_text(v.hour, v.minute, v.second, v.microsecond)}"


def interval_text(months: int, days: int, micros: int) -> str:
    """IntervalStyle ``postgres``: ``1 year 2 mons -3 days +04:05:06.5``."""
    years = int(months / 12)
    mons = months - years * 12
    parts, before = [], False
    for value, unit in ((years, "year"), (mons, "mon"), (days, "day")):
        if value:
            parts.append(f"{'+' if before and value > 0 else ''}{value} {unit}{'' if value == 1 else 's'}")
            before = value < 0  # each nonzero field sets the sign flag for the next one only (PostgreSQL)
    if micros or not parts:
        a = abs(micros)
        hours, rem = divmod(a, 3_600_000_000)
        minutes, rem = divmod(rem, 60_000_000)
        secs, frac = divmod(rem, 1_000_000)
        sign = "-" if micros < 0 else ("+" if before else "")
        parts.append(sign + time_text(hours, minutes, secs, frac))
    return " ".join(parts)


def value_text(v) -> str | None:
    """Any engine value as PostgreSQL's text output (what ``CAST(v AS text)`` and ``||`` give)."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return float_text(v)
    if isinstance(v, decimal.Decimal):
        return decimal_text(v)
    if isinstance(v, dt.datetime):
        return timestamp_text(v)
    if isinstance(v, dt.date):
        return date_text(v)
    if hasattr(v, "months") and hasattr(v, "nanoseconds"):
        return interval_text(v.months, v.days, v.nanoseconds // 1000)
    if isinstance(v, list):
        return "{" + ",".join("NULL" if x is None else _array_item(value_out(x)) for x in v) + "}"
    raise ConversionError(f"cannot convert {type(v).__name__} to text")


def value_out(v) -> str | None:
    """A value as its type's output function prints it — what concat(), concat_ws(), format() and an array's
    items show: as :func:`value_text` except a boolean, which is ``t``/``f`` (only ``CAST(b AS text)`` and ``||``
    spell it ``true``/``false``)."""
    if isinstance(v, bool):
        return "t" if v else "f"
    return value_text(v)


def _array_item(text: str) -> str:
    if text == "" or any(ch in text for ch in '{},"\\ ') or text.upper() == "NULL":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text
