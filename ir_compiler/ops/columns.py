"""Column ops: rename, drop, add_field, hash, mask_pii, map_values, split, merge (schema + Arrow apply)."""
from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.ops.common import INTERNAL_PREFIX, OpResult, OpTypeError, require
from ir_compiler.types import STRING, Field, Schema, array_of, from_arrow, parse_type, to_arrow


def _new_name(schema: Schema | None, name: str, field_name: str, *, replace_ok: bool = True):
    if name.startswith(INTERNAL_PREFIX):
        raise OpTypeError(f"column names starting with {INTERNAL_PREFIX} are reserved", field_name)
    if not replace_ok and schema is not None and name in schema:
        raise OpTypeError(f"column '{name}' already exists; drop or rename it first", field_name)


# ---- rename / drop ---------------------------------------------------------------------------------
def rename_schema(op, schema):
    require(schema, op.from_, "from")
    _new_name(schema, op.to, "to", replace_ok=False)
    return schema.rename(op.from_, op.to) if schema is not None else None


def rename_apply(op, table):
    return OpResult(table.rename_columns([op.to if c == op.from_ else c for c in table.column_names]))


def drop_schema(op, schema):
    for i, f in enumerate(op.fields):
        require(schema, f, f"fields[{i}]")
    return schema.without(op.fields) if schema is not None else None


def drop_apply(op, table):
    return OpResult(table.drop_columns([f for f in op.fields if f in table.column_names]))


# ---- add_field -------------------------------------------------------------------------------------
def _constant_type(op):
    if op.type:
        return parse_type(op.type)
    v = op.value
    return from_arrow(pa.scalar(v).type) if v is not None and not isinstance(v, (dict, list)) else STRING


def _constant(op):
    """The value, a JSON number bound for a decimal column taken from its digits as written (PostgreSQL's
    text-to-numeric rounding), never through the float it was parsed into."""
    v = op.value
    text = getattr(v, "text", None) if isinstance(v, float) else str(v) if isinstance(v, int) and \
        not isinstance(v, bool) else v if isinstance(v, str) else None
    if op.type and text is not None and parse_type(op.type).name == "decimal":
        from ir_compiler.ops.cast import convert_value
        try:
            return convert_value(text, parse_type(op.type))
        except ValueError as exc:
            raise OpTypeError(f"value {text} is not a {op.type}: {exc}", "value") from None
    return v


def add_field_schema(op, schema):
    _new_name(schema, op.field, "field")
    if op.type and op.value is not None:
        try:
            pa.array([_constant(op)]).cast(to_arrow(parse_type(op.type)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise OpTypeError(f"value {op.value!r} is not a {op.type}", "value") from None
    return schema.with_field(Field(op.field, _constant_type(op))) if schema is not None else None


def add_field_apply(op, table):
    atype = to_arrow(_constant_type(op))
    value = json.dumps(op.value) if isinstance(op.value, (dict, list)) else _constant(op)
    col = pa.array([value] * table.num_rows).cast(atype) if value is not None else pa.nulls(table.num_rows, atype)
    return OpResult(_set(table, op.field, col))


def _set(table: pa.Table, name: str, col) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, col)
    return table.append_column(name, col)


# ---- hash / mask_pii -------------------------------------------------------------------------------
def hash_schema(op, schema):
    for i, f in enumerate(op.fields):
        require(schema, f, f"fields[{i}]")
    _new_name(schema, op.output, "output")
    return schema.with_field(Field(op.output, STRING)) if schema is not None else None


def _digest(algorithm: str, data: bytes) -> str:
    if algorithm == "xxhash64":
        import xxhash
        return xxhash.xxh64_hexdigest(data)
    return hashlib.new(algorithm, data).hexdigest()


def hash_apply(op, table):
    cols = [table.column(f).cast(pa.string()).to_pylist() for f in op.fields]
    salt = (op.salt or "").encode()
    out = [_digest(op.algorithm, salt + "\x1f".join("\x00" if v is None else v for v in vals).encode())
           for vals in zip(*cols)] if cols else []
    return OpResult(_set(table, op.output, pa.array(out, pa.string())))


def mask_schema(op, schema):
    f = require(schema, op.field)
    if f is not None and f.type.name not in ("string", "json") and op.strategy not in ("null", "hash", "redact"):
        raise OpTypeError(f"mask_pii '{op.strategy}' needs a string column; '{op.field}' is {f.type}; add a cast")
    return schema.with_field(Field(op.field, STRING)) if schema is not None else None


def _mask_one(strategy: str, value: str, keep_last: int) -> str | None:
    if strategy == "redact":
        return "[REDACTED]"
    if strategy == "hash":
        return hashlib.sha256(value.encode()).hexdigest()
    if strategy == "partial":  # a value no longer than keepLast is masked whole: never the clear value
        keep = value[-keep_last:] if keep_last and len(value) > keep_last else ""
        return "*" * (len(value) - len(keep)) + keep
    local, at, domain = value.partition("@")  # email
    return (local[:1] + "***" + at + domain) if at else "*" * len(value)


def mask_apply(op, table):
    keep_last = 4 if op.keepLast is None else op.keepLast
    col = table.column(op.field).cast(pa.string())
    if op.strategy == "null":
        out = pa.nulls(table.num_rows, pa.string())
    else:
        out = pa.array([None if v is None else _mask_one(op.strategy, v, keep_last) for v in col.to_pylist()],
                       pa.string())
    return OpResult(_set(table, op.field, out))


# ---- map_values ------------------------------------------------------------------------------------
def _value_type(v):
    from ir_compiler.types import BOOL, FLOAT, INT
    return BOOL if isinstance(v, bool) else INT if isinstance(v, int) else FLOAT if isinstance(v, float) else STRING


def _mapping_type(op, source_type):
    """The output column's type, for the schema and the run alike: the mapping values' (and default's) one type;
    int and float mixed → float; anything else mixed → string. Without a default, unmapped values are kept, so a
    type other than the column's becomes string (every value as PostgreSQL prints it)."""
    from ir_compiler.types import FLOAT, INT
    values = [v for v in list(op.mapping.values()) + [op.default] if v is not None]
    types = {_value_type(v) for v in values}
    if not types:
        out = source_type
    elif len(types) == 1:
        out = types.pop()
    else:
        out = FLOAT if types == {INT, FLOAT} else STRING
    if op.default is None and source_type is not None and out != source_type:
        out = STRING
    return out


def map_values_schema(op, schema):
    f = require(schema, op.field)
    if op.output:
        _new_name(schema, op.output, "output")
    if schema is None:
        return None
    return schema.with_field(Field(op.output or op.field, _mapping_type(op, f.type)))


def _values_array(values: list, out_type) -> pa.Array:
    """Mapping values as a column of ``out_type`` (text as PostgreSQL prints each value)."""
    from ir_compiler.ops.cast import cast_array
    if out_type != STRING:
        return pa.array(values, to_arrow(out_type))
    texts = []
    for v in values:
        if v is None or isinstance(v, str):
            texts.append(v)
        else:
            texts.append(cast_array(pa.array([v], to_arrow(_value_type(v))), STRING)[0][0].as_py())
    return pa.array(texts, pa.string())


def map_values_apply(op, table):
    """Keys match the column's values as PostgreSQL prints them (``2024-01-05 10:00:00``, ``1e-05``, ``true``)."""
    from ir_compiler.ops.cast import cast_array
    src = table.column(op.field)
    source_type = from_arrow(src.type)
    out_type = _mapping_type(op, source_type)
    as_str = cast_array(src, STRING)[0] if src.type != pa.string() else src
    keys = pa.array(list(op.mapping.keys()), pa.string())
    idx = pc.index_in(as_str, value_set=keys)
    mapped = _values_array(list(op.mapping.values()), out_type)
    taken = pc.take(mapped, idx)
    if op.default is not None:
        fallback = pa.repeat(_values_array([op.default], out_type)[0], table.num_rows)
    else:
        fallback = as_str if out_type == STRING else src
    out = pc.if_else(pc.is_null(idx), fallback, taken)
    return OpResult(_set(table, op.output or op.field, out))


# ---- split / merge ---------------------------------------------------------------------------------
def split_schema(op, schema):
    f = require(schema, op.field)
    if f is not None and f.type.name != "string":
        raise OpTypeError(f"split needs a string column; '{op.field}' is {f.type}; add a cast")
    for i, name in enumerate(op.into or []):
        _new_name(schema, name, f"into[{i}]")
        if name in (op.into or [])[:i]:
            raise OpTypeError(f"'{name}' is named twice in into (the first part would be lost)", f"into[{i}]")
    if schema is None:
        return None
    if op.output:
        return schema.with_field(Field(op.output, array_of(STRING)))
    for name in op.into:
        schema = schema.with_field(Field(name, STRING))
    return schema


def split_apply(op, table):
    parts = pc.split_pattern(table.column(op.field), pattern=op.delimiter)
    if op.output:
        return OpResult(_set(table, op.output, parts))
    rows, last = parts.to_pylist(), len(op.into) - 1
    for i, name in enumerate(op.into):
        if i < last:
            values = [p[i] if p is not None and len(p) > i else None for p in rows]
        else:  # the last column keeps the rest of the string
            values = [op.delimiter.join(p[i:]) if p is not None and len(p) > i else None for p in rows]
        table = _set(table, name, pa.array(values, pa.string()))
    return OpResult(table)


def merge_schema(op, schema):
    for i, f in enumerate(op.fields):
        require(schema, f, f"fields[{i}]")
    _new_name(schema, op.into, "into")
    return schema.with_field(Field(op.into, STRING)) if schema is not None else None


def merge_apply(op, table):
    """PostgreSQL ``concat_ws(separator, fields...)``: NULL fields are skipped; a row whose fields are all NULL
    gives the empty string. Values are written as PostgreSQL prints them (``true``, ``1.5``, ``2024-01-31``)."""
    from ir_compiler.ops.cast import cast_array
    from ir_compiler.types import STRING as _STRING
    acc = None
    for f in op.fields:
        col, _ = cast_array(table.column(f), _STRING)
        if acc is None:
            acc = col
            continue
        joined = pc.binary_join_element_wise(acc, col, op.separator, null_handling="emit_null")
        acc = pc.if_else(pc.is_null(acc), col, pc.if_else(pc.is_null(col), acc, joined))
    out = pc.fill_null(acc, "") if table.num_rows else pa.array([], pa.string())
    return OpResult(_set(table, op.into, out))
