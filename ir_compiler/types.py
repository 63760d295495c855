"""Column types and schemas (leaf module: imports nothing else from the project).

Type names in the IR: ``string``, ``int``, ``float``, ``decimal(p,s)``, ``bool``, ``date``, ``timestamp``,
``json`` (any nested value), ``array<T>``. Aliases (``integer``, ``bigint``, ``double``, ``boolean``,
``text``, ``varchar``, ``datetime``, ``number``) are accepted and normalised.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

_ALIASES = {
    "string": "string", "str": "string", "text": "string", "varchar": "string", "char": "string",
    "int": "int", "integer": "int", "bigint": "int", "int64": "int", "long": "int", "smallint": "int",
    "float": "float", "double": "float", "float64": "float", "real": "float", "number": "float",
    "numeric": "decimal(38,9)",
    "bool": "bool", "boolean": "bool",
    "date": "date",
    "timestamp": "timestamp", "datetime": "timestamp", "timestamptz": "timestamp",
    "json": "json", "object": "json", "any": "json",
    "null": "null",
}
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_ARRAY = re.compile(r"^array\s*<\s*(.+)\s*>$")


@dataclass(frozen=True)
class ColumnType:
    """A column type. ``name`` is one of string/int/float/decimal/bool/date/timestamp/json/array/null."""

    name: str
    precision: int | None = None
    scale: int | None = None
    item: "ColumnType | None" = None

    def __str__(self) -> str:
        if self.name == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.name == "array":
            return f"array<{self.item}>"
        return self.name

    @property
    def is_numeric(self) -> bool:
        return self.name in ("int", "float", "decimal")

    @property
    def is_temporal(self) -> bool:
        return self.name in ("date", "timestamp")


STRING = ColumnType("string")
INT = ColumnType("int")
FLOAT = ColumnType("float")
BOOL = ColumnType("bool")
DATE = ColumnType("date")
TIMESTAMP = ColumnType("timestamp")
JSON = ColumnType("json")
NULL = ColumnType("null")
INTERVAL = ColumnType("interval")  # only inside expressions (ts - ts, INTERVAL '1 day'); not a column type


def decimal(precision: int, scale: int) -> ColumnType:
    return ColumnType("decimal", precision, scale)


def array_of(item: ColumnType) -> ColumnType:
    return ColumnType("array", item=item)


def parse_type(text: str) -> ColumnType:
    """Parse an IR type name. Raises ``ValueError`` with the accepted names on an unknown type."""
    raw = str(text).strip().lower()
    raw = _ALIASES.get(raw, raw)
    if raw in ("string", "int", "float", "bool", "date", "timestamp", "json", "null"):
        return ColumnType(raw)
    m = _DECIMAL.match(raw)
    if m:
        p, s = int(m.group(1)), int(m.group(2))
        if not (1 <= p <= 38 and 0 <= s <= p):
            raise ValueError(f"decimal({p},{s}) is out of range: precision 1..38, scale 0..precision")
        return decimal(p, s)
    if raw == "decimal":
        return decimal(38, 9)
    m = _ARRAY.match(raw)
    if m:
        return array_of(parse_type(m.group(1)))
    raise ValueError(
        f"unknown type {text!r}; use one of string, int, float, decimal(p,s), bool, date, timestamp, json, array<T>")


def is_valid_type(text: str) -> bool:
    try:
        parse_type(text)
        return True
    except ValueError:
        return False


def to_arrow(t: ColumnType) -> pa.DataType:
    """The Arrow type used to carry a column of this type through the engine."""
    return {
        "string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
        "date": pa.date32(), "timestamp": pa.timestamp("us"), "json": pa.string(), "null": pa.null(),
        "interval": pa.month_day_nano_interval(),
    }.get(t.name) or (pa.decimal128(t.precision, t.scale) if t.name == "decimal"
                      else pa.list_(to_arrow(t.item)))


def from_arrow(dt: pa.DataType) -> ColumnType:
    """The IR type for an Arrow type (used when a schema is inferred from data)."""
    if pa.types.is_boolean(dt):
        return BOOL
    if pa.types.is_integer(dt):
        return INT
    if pa.types.is_floating(dt):
        return FLOAT
    if pa.types.is_decimal(dt):
        return decimal(dt.precision, dt.scale)
    if pa.types.is_string(dt) or pa.types.is_large_string(dt) or pa.types.is_binary(dt):
        return STRING
    if pa.types.is_date(dt):
        return DATE
    if pa.types.is_timestamp(dt):
        return TIMESTAMP
    if pa.types.is_null(dt):
        return NULL
    if pa.types.is_interval(dt):
        return INTERVAL
    if pa.types.is_list(dt) or pa.types.is_large_list(dt):
        return array_of(from_arrow(dt.value_type))
    return JSON


@dataclass(frozen=True)
class Field:
    name: str
    type: ColumnType
    nullable: bool = True

    def __str__(self) -> str:
        return f"{self.name}: {self.type}{'' if self.nullable else ' not null'}"


class Schema:
    """An ordered list of fields; ``None`` in place of a Schema means *unknown* (checked at run time)."""

    def __init__(self, fields: list[Field] | tuple[Field, ...] = ()):
        self.fields: tuple[Field, ...] = tuple(fields)
        self._index = {f.name: f for f in self.fields}

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Field:
        return self._index[name]

    def get(self, name: str) -> Field | None:
        return self._index.get(name)

    def __iter__(self):
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __eq__(self, other) -> bool:
        return isinstance(other, Schema) and self.fields == other.fields

    def __repr__(self) -> str:
        return f"Schema({', '.join(str(f) for f in self.fields)})"

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def types(self) -> dict[str, ColumnType]:
        return {f.name: f.type for f in self.fields}

    def with_field(self, f: Field) -> "Schema":
        """Replace the field of the same name in place, or append it."""
        if f.name in self._index:
            return Schema([f if x.name == f.name else x for x in self.fields])
        return Schema([*self.fields, f])

    def without(self, names) -> "Schema":
        drop = set(names)
        return Schema([f for f in self.fields if f.name not in drop])

    def rename(self, old: str, new: str) -> "Schema":
        return Schema([Field(new, f.type, f.nullable) if f.name == old else f for f in self.fields])

    def to_arrow(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, to_arrow(f.type), f.nullable) for f in self.fields])

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> "Schema":
        return cls([Field(f.name, from_arrow(f.type), f.nullable) for f in schema])

    def to_json(self) -> list[dict]:
        return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in self.fields]


def common_type(a: ColumnType, b: ColumnType) -> ColumnType | None:
    """The type two values are compared/combined in, or None if they are incompatible."""
    if a == b:
        return a
    if a.name == "null":
        return b
    if b.name == "null":
        return a
    if a.is_numeric and b.is_numeric:
        if "float" in (a.name, b.name):
            return FLOAT
        if a.name == "decimal" and b.name == "decimal":
            scale = max(a.scale, b.scale)
            return decimal(min(38, max(a.precision - a.scale, b.precision - b.scale) + scale), scale)
        d = a if a.name == "decimal" else b  # decimal with int: wide enough for any int64
        return decimal(38, d.scale)
    if a.is_temporal and b.is_temporal:
        return TIMESTAMP
    if a.name == "decimal" and b.name == "decimal":
        return a
    return None


def round_decimal(arr, scale: int = 0):
    """Decimals rounded half away from zero (PostgreSQL's numeric rounding) to ``scale`` digits.

    Arrow's ``round`` keeps the input precision, and a value that rounds up past it (999.5 in decimal(4,1))
    comes back as garbage when the array holds a null: the precision is widened by one digit first, so the
    rounded value always fits; at precision 38 the values are rounded one by one (Python's Decimal).
    """
    import decimal as _decimal

    import pyarrow.compute as pc

    t = arr.type
    if t.precision < 38:
        return pc.round(arr.cast(pa.decimal128(t.precision + 1, t.scale)), scale, round_mode="half_towards_infinity")
    q = _decimal.Decimal(1).scaleb(-scale)
    ctx = _decimal.Context(prec=80)
    values = arr.to_pylist()
    out = [None if v is None else v.quantize(q, rounding=_decimal.ROUND_HALF_UP, context=ctx) for v in values]
    return pa.array(out, pa.decimal128(38, t.scale)) if all(
        v is None or len(v.as_tuple().digits) <= 38 for v in out) else pa.array(
        [None if v is None else str(v) for v in out], pa.string())


# ---- keys as SQL compares them (grouping, hashing, matching, distinct) -------------------------------------
def normal_key(arr):
    """A float column with -0.0 turned into 0.0 (x + 0.0) and every NaN made the one canonical NaN (a NaN's sign
    and payload bits differ between sources, and Arrow groups and matches floats by their bits; NULL stays NULL),
    so values equal in SQL (DuckDB, PostgreSQL: NaN = NaN) are one key wherever keys are grouped, hashed, matched
    or counted distinct; other types as given."""
    if arr.type in (pa.float32(), pa.float64()):
        arr = _pc().add(arr, pa.scalar(0.0, arr.type))
        if _pc().any(_pc().is_nan(arr)).as_py():
            arr = _pc().if_else(_pc().is_nan(arr), pa.scalar(float("nan"), arr.type), arr)
        return arr
    return arr


def normal_keys(table: pa.Table, keys) -> pa.Table:
    """``table`` with its float ``keys`` columns through :func:`normal_key`."""
    for k in keys:
        i = table.column_names.index(k)
        col = table.column(i)
        if col.type in (pa.float32(), pa.float64()):
            table = table.set_column(i, table.field(i), normal_key(col))
    return table


def _pc():
    import pyarrow.compute as pc
    return pc
