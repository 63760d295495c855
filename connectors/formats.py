"""File formats → Arrow (csv, tsv, json, jsonl, parquet, avro) and Arrow → files (csv, jsonl, parquet, avro).

Malformed rows never fail a file: a CSV row with the wrong number of fields, a JSON line that does not parse,
or a value that does not convert to its declared type becomes a ``BadRow`` (file, line, raw text, reason),
and the rest of the file is read. A file that cannot be read at all raises ConnectorError naming it.
With a declared schema, columns are converted to the declared types and extra columns are dropped.
"""
from __future__ import annotations

import datetime as dt
import decimal
import gzip
import io
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.errors import ConnectorError
from ir_compiler.types import Schema, to_arrow


@dataclass
class BadRow:
    file: str
    line: int | None
    raw: str
    reason: str


@dataclass
class ReadChunk:
    batch: pa.RecordBatch
    bad_rows: list[BadRow] = field(default_factory=list)
    file: str = ""


# ---- type normalisation ----------------------------------------------------------------------------
def _normalise_column(col):
    t = col.type
    if pa.types.is_integer(t) and t != pa.int64():
        return col.cast(pa.int64())
    if pa.types.is_floating(t) and t != pa.float64():
        return col.cast(pa.float64())
    if pa.types.is_timestamp(t) and (t.unit != "us" or t.tz is not None):
        return col.cast(pa.timestamp("us", tz=t.tz)).cast(pa.timestamp("us")) if t.tz else col.cast(
            pa.timestamp("us"))
    if pa.types.is_date64(t):
        return col.cast(pa.date32())
    if pa.types.is_large_string(t) or pa.types.is_null(t):
        return col.cast(pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return col.cast(pa.string())
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in col.to_pylist()], pa.string())
    return col


def normalise(table: pa.Table) -> pa.Table:
    """Engine types: int64, float64, string, bool, date32, timestamp[us], decimal, list, JSON text."""
    return pa.table({name: _normalise_column(table.column(name)) for name in table.column_names})


def _conform(table: pa.Table, schema: Schema | None, path: str, line_of) -> tuple[pa.Table, list[BadRow]]:
    """Convert to the declared schema; rows whose values do not convert become BadRows."""
    if schema is None:
        return normalise(table), []
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ConnectorError(f"{path}: declared column(s) {missing} are not in the file; it has "
                             f"{table.column_names}")
    from ir_compiler.ops.cast import cast_array

    cols, bad_mask, reasons = {}, None, [None] * table.num_rows
    for f in schema:
        src = table.column(f.name)
        if src.type == to_arrow(f.type):
            cols[f.name] = src
            continue
        out, failed = cast_array(src, f.type, None)
        cols[f.name] = out
        if failed is not None and pc.any(failed).as_py():
            for i in [i for i, x in enumerate(failed.to_pylist()) if x]:
                reasons[i] = reasons[i] or f"column '{f.name}': cannot convert {src[i].as_py()!r} to {f.type}"
            bad_mask = failed if bad_mask is None else pc.or_(bad_mask, failed)
    result = pa.table(cols)
    if bad_mask is None:
        return result, []
    bad_idx = [i for i, x in enumerate(bad_mask.to_pylist()) if x]
    rows = table.take(bad_idx).to_pylist()
    bad = [BadRow(path, line_of(i), json.dumps(r, default=str), reasons[i]) for i, r in zip(bad_idx, rows)]
    return result.filter(pc.invert(bad_mask)), bad


# ---- readers ---------------------------------------------------------------------------------------
def _open_bytes(path: str, options: dict) -> bytes:
    comp = (options or {}).get("compression")
    with open(path, "rb") as fh:
        data = fh.read()
    if comp == "gzip" or (comp in (None, "auto") and (path.endswith(".gz") or data[:2] == b"\x1f\x8b")):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ConnectorError(f"{path}: not valid gzip ({exc})") from None
    enc = (options or {}).get("encoding", "utf-8")
    if enc.lower().replace("-", "") not in ("utf8",):
        data = data.decode(enc).encode("utf-8")
    return data


def _read_csv(path, options, schema, delimiter):
    import pyarrow.csv as pacsv

    options = options or {}
    bad: list[BadRow] = []

    def on_invalid(row):
        bad.append(BadRow(path, row.number, row.text,
                          f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"

    nulls = options.get("nullValues") or [""]
    data = _open_bytes(path, options)

    def attempt(threads: bool, typed: bool = False):
        bad.clear()
        read = pacsv.ReadOptions(autogenerate_column_names=not options.get("header", True), use_threads=threads,
                                 block_size=1 << 22)
        parse = pacsv.ParseOptions(delimiter=options.get("delimiter") or delimiter,
                                   quote_char=options.get("quote") or '"', invalid_row_handler=on_invalid)
        types = {f.name: (to_arrow(f.type) if typed else pa.string()) for f in schema} if schema else None
        conv = pacsv.ConvertOptions(null_values=nulls, strings_can_be_null=True, column_types=types)
        try:
            return pacsv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse, convert_options=conv)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if typed and "conversion error" in str(exc).lower():
                return None
            raise ConnectorError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from None

    # fast path: parallel parse straight into the declared types (numbers, dates) when every value fits
    table = attempt(True, typed=bool(schema) and all(f.type.name in ("int", "float", "string") for f in schema))
    if table is None:  # some value does not convert: read text, then convert column by column (bad rows routed)
        table = attempt(True)
    if bad:  # malformed rows: parse again in order so their line numbers are exact
        table = attempt(False)
    first = 2 if options.get("header", True) else 1

    def line_of(i):  # the file line of good row i (lines of skipped malformed rows shift it)
        line = i + first
        for skipped in sorted(b.line for b in bad if b.line):
            if skipped <= line:
                line += 1
        return line
    return table, bad, line_of


def _read_jsonl(path, options):
    data = _open_bytes(path, options)
    import pyarrow.json as pajson
    try:
        return pajson.read_json(io.BytesIO(data)), [], (lambda i: i + 1)
    except pa.ArrowInvalid:
        pass
    rows, bad, lines = [], [], []
    for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("a JSON line must be an object")
            rows.append(value)
            lines.append(n)
        except ValueError as exc:
            bad.append(BadRow(path, n, raw[:2000], f"invalid JSON: {exc}"))
    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    return table, bad, (lambda i: lines[i] if i < len(lines) else None)


def _read_json(path, options):
    try:
        value = json.loads(_open_bytes(path, options).decode("utf-8"))
    except ValueError as exc:
        raise ConnectorError(f"cannot read {path} as JSON: {exc}") from None
    rows = value if isinstance(value, list) else [value]
    if not all(isinstance(r, dict) for r in rows):
        raise ConnectorError(f"{path}: a json file holds an object or an array of objects")
    return (pa.Table.from_pylist(rows) if rows else pa.table({})), [], (lambda i: None)


def _read_avro(path):
    import fastavro
    try:
        with open(path, "rb") as fh:
            rows = list(fastavro.reader(fh))
    except Exception as exc:  # noqa: BLE001 - any decoding problem means the file is unreadable
        raise ConnectorError(f"cannot read {path} as Avro: {exc}") from None
    return (pa.Table.from_pylist(rows) if rows else pa.table({})), [], (lambda i: None)


def _read_parquet(path):
    import pyarrow.parquet as pq
    try:
        return pq.read_table(path), [], (lambda i: None)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConnectorError(f"cannot read {path} as Parquet: {str(exc).splitlines()[0]}") from None


def read_file(path: str, fmt: str, options: dict | None = None, schema: Schema | None = None, *,
              batch_rows: int = 65536) -> Iterator[ReadChunk]:
    """Read one file as Arrow record batches of at most ``batch_rows`` rows, plus its malformed rows."""
    options = options or {}
    if not os.path.isfile(path):
        raise ConnectorError(f"file {path} does not exist (moved or deleted while the run was starting?)")
    if fmt in ("csv", "tsv"):
        table, bad, line_of = _read_csv(path, options, schema, "\t" if fmt == "tsv" else ",")
    elif fmt == "jsonl":
        table, bad, line_of = _read_jsonl(path, options)
    elif fmt == "json":
        table, bad, line_of = _read_json(path, options)
    elif fmt == "parquet":
        table, bad, line_of = _read_parquet(path)
    elif fmt == "avro":
        table, bad, line_of = _read_avro(path)
    else:
        raise ConnectorError(f"unknown format {fmt!r}; use csv, tsv, json, jsonl, parquet or avro")
    table, conv_bad = _conform(table, schema, path, line_of)
    bad = bad + conv_bad
    batches = table.to_batches(max_chunksize=batch_rows) or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    for i, batch in enumerate(batches):
        yield ReadChunk(batch, bad if i == 0 else [], path)


def infer_schema(paths: list[str], fmt: str, options: dict | None = None, sample_rows: int = 1000) -> Schema:
    """The schema of the first readable file (engine types)."""
    errors = []
    for path in paths:
        try:
            chunk = next(read_file(path, fmt, options, None, batch_rows=sample_rows))
            return Schema.from_arrow(chunk.batch.schema)
        except ConnectorError as exc:
            errors.append(str(exc))
    raise ConnectorError("; ".join(errors) or "no file to sample")


# ---- writers ---------------------------------------------------------------------------------------
def _json_default(v):
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _avro_type(t: pa.DataType):
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "long"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_decimal(t):
        return {"type": "bytes", "logicalType": "decimal", "precision": t.precision, "scale": t.scale}
    if pa.types.is_date(t):
        return {"type": "int", "logicalType": "date"}
    if pa.types.is_timestamp(t):
        return {"type": "long", "logicalType": "timestamp-micros"}
    if pa.types.is_list(t):
        return {"type": "array", "items": ["null", _avro_type(t.value_type)]}
    return "string"


def avro_schema(schema: pa.Schema, name: str = "Row") -> dict:
    return {"type": "record", "name": name,
            "fields": [{"name": f.name, "type": ["null", _avro_type(f.type)], "default": None} for f in schema]}


def write_table(table: pa.Table, folder: str, fmt: str, *, prefix: str = "part", compression: str | None = None,
                shard: int = 0) -> str:
    """Write ``table`` to one new file in ``folder`` (written under a temp name, then renamed)."""
    os.makedirs(folder, exist_ok=True)
    ext = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet", "avro": "avro"}[fmt]
    gz = compression == "gzip" and fmt in ("csv", "jsonl")
    name = f"{prefix}-{shard:05d}.{ext}{'.gz' if gz else ''}"
    final = os.path.join(folder, name)
    if os.path.exists(final):
        final = os.path.join(folder, f"{prefix}-{shard:05d}-{uuid.uuid4().hex[:8]}.{ext}{'.gz' if gz else ''}")
    tmp = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")
    if fmt == "parquet":
        import pyarrow.parquet as pq
        pq.write_table(table, tmp, compression=compression if compression not in (None, "none") else "snappy")
    elif fmt == "avro":
        import fastavro
        with open(tmp, "wb") as fh:
            fastavro.writer(fh, fastavro.parse_schema(avro_schema(table.schema)), table.to_pylist(),
                            codec="deflate" if compression == "gzip" else "null")
    else:
        payload = _csv_bytes(table) if fmt == "csv" else "".join(
            json.dumps(r, default=_json_default) + "\n" for r in table.to_pylist()).encode("utf-8")
        with (gzip.open(tmp, "wb") if gz else open(tmp, "wb")) as fh:
            fh.write(payload)
    os.replace(tmp, final)
    return final


def _csv_bytes(table: pa.Table) -> bytes:
    import pyarrow.csv as pacsv
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()
