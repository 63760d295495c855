"""File formats → Arrow (csv, tsv, json, jsonl, parquet, avro) and Arrow → files (csv, jsonl, parquet, avro).

Reading (:func:`read_file`) yields :class:`ReadChunk` s of at most ``batch_rows`` rows. Rules:

- Malformed rows never fail a file. A CSV row with the wrong number of fields, a JSON line that does not parse
  (or is not an object), a ``json`` array item that is not an object, or a value that does not convert to its
  declared type becomes a :class:`BadRow` (file, line, raw text, reason); the rest of the file is read.
  ``line`` is the 1-based line in the (decompressed) file; for CSV it counts records (header included), so it is
  the physical line unless the file has blank lines or quoted values spanning lines. ``raw`` is the line text
  for malformed rows and the row's values as JSON for conversion failures. Formats without lines (json,
  parquet, avro) report ``line=None`` for conversion failures, except ``json`` (the item index + 1).
- A file that cannot be read at all (not gzip, not parquet, not avro, not JSON, bad encoding) raises
  ConnectorError naming it. Parquet, avro and CSV-with-schema are streamed; if such a file breaks half-way,
  the chunks before the break were already yielded.
- With a declared ``schema`` the declared columns are converted to ``to_arrow(type)`` and returned in declared
  order; columns of the file that are not declared are DROPPED; a declared column missing from the file raises
  ConnectorError. Text is trimmed; ``"5.0"`` is a valid int; bool accepts true/false/t/f/yes/no/y/n/1/0;
  decimals are rounded half away from zero to the declared scale (too many digits → BadRow); timestamps with a
  zone offset (``Z``, ``+02:00``) are converted to UTC; timestamps are naive (UTC) ``timestamp[us]``. A null in a
  field declared ``nullable=False`` is a BadRow. Conversion is vectorised (regex pre-filter + Arrow casts;
  only a rare value that passes the pre-filter but fails the cast is located by bisection).
- Without a schema types are inferred (pyarrow) and normalised to engine types: int64, float64, string, bool,
  date32, timestamp[us] (UTC, naive), decimal128, list<…>; structs/maps become JSON text; other types text.
  (pyarrow infers ISO date strings in JSON as timestamps: declare ``date`` columns to get dates.)
- Options: ``delimiter``, ``header`` (default true; false → columns are the declared names in order, else
  ``f0, f1, …``), ``encoding`` (utf-8), ``compression`` (gzip | none | auto = ``.gz`` or gzip magic bytes),
  ``quote`` (``"``), ``nullValues`` (``[""]``). CSV without schema and json/jsonl are read whole into memory.

Writing (:func:`write_table`): csv, jsonl (optionally gzip), parquet, avro. See its docstring.
"""
from __future__ import annotations

import bisect
import datetime as dt
import decimal
import gzip
import io
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.errors import ConnectorError
from ir_compiler.types import ColumnType, Schema, common_type, to_arrow

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "avro")
WRITE_FORMATS = ("csv", "jsonl", "parquet", "avro")
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, TypeError, OverflowError)


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


# ---- normalisation (no declared schema) ----------------------------------------------------------------
def _to_json_text(col) -> pa.Array:
    """Any column as JSON text (strings stay as they are, bytes are decoded as UTF-8)."""
    def text(v):
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        return v if isinstance(v, str) or v is None else json.dumps(v, default=_json_default)
    return pa.array([text(v) for v in col.to_pylist()], pa.string())


def _engine_type(t: pa.DataType) -> pa.DataType | None:
    """The engine type an inferred Arrow type is cast to; None = JSON text."""
    if pa.types.is_dictionary(t):
        return _engine_type(t.value_type)
    if pa.types.is_boolean(t) or pa.types.is_date32(t) or pa.types.is_decimal128(t):
        return t
    simple = [(pa.types.is_integer, pa.int64()), (pa.types.is_floating, pa.float64()),
              (pa.types.is_timestamp, pa.timestamp("us")), (pa.types.is_date, pa.date32()),
              (pa.types.is_decimal, pa.float64())]
    for test, target in simple:
        if test(t):
            return target
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        item = _engine_type(t.value_type)
        return pa.list_(item) if item is not None else None
    if pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return None
    return pa.string()


def _normalise_column(col):
    target = _engine_type(col.type)
    if target is None:
        return _to_json_text(col)
    if col.type == target:
        return col
    if pa.types.is_timestamp(col.type) and col.type.tz is not None:
        col = col.cast(pa.timestamp(col.type.unit))  # the UTC wall time
    try:
        return col.cast(target, safe=False)
    except _CAST_ERRORS:
        return pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())


def normalise(table: pa.Table) -> pa.Table:
    """Engine types: int64, float64, string, bool, date32, timestamp[us], decimal, list, JSON text."""
    return pa.table({name: _normalise_column(table.column(name)) for name in table.column_names})


# ---- conversion to declared types ----------------------------------------------------------------------
def _bisect_cast(arr: pa.Array, fn, target: pa.DataType) -> pa.Array:
    """``fn(arr)``, with null wherever a single value makes the cast fail (found by bisection)."""
    try:
        return fn(arr)
    except _CAST_ERRORS:
        if len(arr) <= 1:
            return pa.nulls(len(arr), target)
    mid = len(arr) // 2
    return pa.concat_arrays([_bisect_cast(arr.slice(0, mid), fn, target),
                             _bisect_cast(arr.slice(mid), fn, target)])


def _keep(arr, regex: str):
    """Null out the values that do not match ``regex`` (a cheap vectorised pre-filter)."""
    return pc.if_else(pc.match_substring_regex(arr, regex), arr, pa.scalar(None, arr.type))


_NUM = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_OFFSET = r"\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)$"


def _cast_to(t):
    return lambda x: x.cast(t)


def _text_decimal(a, t):
    wide = pa.decimal128(38, max(t.scale, 18))  # parse wide, round half away from zero, then fit
    rounded = (lambda x: pc.round(x.cast(wide), ndigits=t.scale, round_mode="half_towards_infinity").cast(t))
    return _bisect_cast(_keep(pc.replace_substring_regex(a, r"^\+", ""), _NUM), rounded, t)


def _text_bool(a, t):
    low, null = pc.utf8_lower(a), pa.scalar(None, pa.bool_())
    no = pc.if_else(pc.is_in(low, pa.array(["false", "f", "no", "n", "0"])), False, null)
    return pc.if_else(pc.is_in(low, pa.array(["true", "t", "yes", "y", "1"])), True, no)


def _text_date(a, t):
    a = pc.if_else(pc.match_substring_regex(a, r"^\d{4}-\d\d-\d\d[T ]"), pc.utf8_slice_codeunits(a, 0, 10), a)
    return _bisect_cast(_keep(a, r"^\d{4}-\d\d-\d\d$"), _cast_to(t), t)


def _text_timestamp(a, t):
    """ISO timestamps; those with a zone offset are converted to UTC."""
    a = _keep(a, r"^\d{4}-\d\d-\d\d([T ]\d\d(:\d\d(:\d\d(\.\d+)?)?)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)?$")
    zoned, null = pc.fill_null(pc.match_substring_regex(a, _OFFSET), False), pa.scalar(None, pa.string())
    utc = _bisect_cast(pc.if_else(zoned, pc.utf8_upper(a), null),
                       lambda x: x.cast(pa.timestamp("us", "UTC")).cast(t), t)
    return pc.if_else(zoned, utc, _bisect_cast(pc.if_else(zoned, null, a), _cast_to(t), t))


_TEXT = {
    "int": lambda a, t: _bisect_cast(_keep(pc.replace_substring_regex(
        pc.replace_substring_regex(a, r"^\+", ""), r"\.0*$", ""), r"^-?\d+$"), _cast_to(t), t),
    "float": lambda a, t: _bisect_cast(_keep(
        a, r"(?i)^([+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?|[+-]?(nan|inf|infinity))$"), _cast_to(t), t),
    "array": lambda a, t: _bisect_cast(
        a, lambda x: pa.array([None if v is None else json.loads(v) for v in x.to_pylist()], t), t),
    "decimal": _text_decimal, "bool": _text_bool, "date": _text_date, "timestamp": _text_timestamp}


def convert_column(col, ctype: ColumnType) -> tuple[pa.Array, pa.Array | None]:
    """Convert ``col`` to ``to_arrow(ctype)``; returns (values, mask of values that failed or None)."""
    target = to_arrow(ctype)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.type == target:
        return arr, None
    if pa.types.is_large_string(arr.type) or pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    if ctype.name in ("string", "json") and arr.type != pa.string():
        out = _to_json_text(arr) if ctype.name == "json" or not _castable_to_text(arr.type) else arr.cast(target)
    elif arr.type == pa.string() and ctype.name in _TEXT:
        if ctype.name != "array":  # fast path: Arrow's strict cast accepts only text the rules below accept too
            try:
                return arr.cast(target), None
            except _CAST_ERRORS:
                pass
        arr = pc.utf8_trim_whitespace(arr)
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
        out = _TEXT[ctype.name](arr, target)
    else:
        out = _bisect_cast(arr, lambda x: _cast_value(x, target), target)
    failed = pc.and_(pc.is_valid(arr), pc.is_null(out))
    return out, (failed if pc.any(failed).as_py() else None)


def _castable_to_text(t: pa.DataType) -> bool:
    return not (pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t))


def _cast_value(x: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(x.type) and pa.types.is_date(target):
        return x.cast(target, safe=False)
    if pa.types.is_timestamp(x.type) and pa.types.is_timestamp(target):
        return x.cast(pa.timestamp(x.type.unit)).cast(target, safe=False)
    return x.cast(target)


def _conform(table: pa.Table, schema: Schema | None, path: str,
             line_of: Callable[[int], int | None]) -> tuple[pa.Table, list[BadRow]]:
    """Convert ``table`` to the declared schema; rows whose values do not convert become BadRows."""
    if schema is None:
        return normalise(table), []
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ConnectorError(f"{path}: declared column(s) {', '.join(map(repr, missing))} not found in the "
                             f"file (it has {table.column_names}); fix the declared schema or the file")
    cols, failures = [], []
    for f in schema:
        out, failed = convert_column(table.column(f.name), f.type)
        cols.append(out)
        if failed is not None:
            failures.append((f, failed, "cannot convert {value!r} to " + str(f.type)))
        if not f.nullable and out.null_count:
            failures.append((f, pc.is_null(out), "missing value (declared not null)"))
    result = pa.Table.from_arrays(cols, schema=schema.to_arrow())
    if not failures:
        return result, []
    return _split_bad(table, result, failures, path, line_of)


def _split_bad(source, result, failures, path, line_of):
    """Good rows of ``result`` and one BadRow per failing row (the first failing column gives the reason)."""
    reasons: dict[int, str] = {}
    mask = failures[0][1]
    for f, failed, template in failures:
        mask = pc.or_(mask, failed)
        for i in pc.indices_nonzero(failed).to_pylist():
            if i not in reasons:
                value = source.column(f.name)[i].as_py()
                reasons[i] = f"column '{f.name}': " + template.format(value=value)
    idx = sorted(reasons)
    rows = source.take(pa.array(idx, pa.int64())).to_pylist()
    bad = [BadRow(path, line_of(i), json.dumps(r, default=_json_default), reasons[i]) for i, r in zip(idx, rows)]
    return result.filter(pc.invert(mask)), bad


# ---- readers: each yields (table, malformed rows, line_of(row index in that table)) --------------------
def _compressed(path: str, options: dict) -> bool:
    comp = (options.get("compression") or "auto").lower()
    if comp in ("gzip", "gz"):
        return True
    if comp != "auto":
        return False
    with open(path, "rb") as fh:
        return path.endswith(".gz") or fh.read(2) == b"\x1f\x8b"


def _read_text_bytes(path: str, options: dict) -> bytes:
    """The whole file, decompressed and transcoded to UTF-8."""
    if _compressed(path, options):
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    else:
        with open(path, "rb") as fh:
            data = fh.read()
    enc = (options.get("encoding") or "utf-8").lower().replace("_", "-")
    return data.decode(enc).encode("utf-8") if enc not in ("utf-8", "utf8") else data


class _Lines:
    """Maps the k-th good CSV row to its record number, skipping the malformed records before it."""

    def __init__(self, first: int):
        self.first, self.skipped = first, []

    def line(self, k: int) -> int:
        line, seen = k + self.first, 0
        while True:
            n = bisect.bisect_right(self.skipped, line)
            if n == seen:
                return line
            line, seen = line + n - seen, n


def _csv_options(path, fmt, options, bad, names=None, types=None, threads=True):
    import pyarrow.csv as pacsv

    def on_invalid(row):
        bad.append(BadRow(path, row.number, row.text,
                          f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"
    header = options.get("header", True)
    read = pacsv.ReadOptions(use_threads=threads, block_size=1 << 22, encoding=options.get("encoding") or "utf8",
                             column_names=None if header else names, autogenerate_column_names=not header and not names)
    parse = pacsv.ParseOptions(delimiter=options.get("delimiter") or ("\t" if fmt == "tsv" else ","),
                               quote_char=options.get("quote") or '"', invalid_row_handler=on_invalid)
    conv = pacsv.ConvertOptions(null_values=options.get("nullValues") or [""], strings_can_be_null=True,
                                column_types=types, include_columns=list(types) if types else None)
    return {"read_options": read, "parse_options": parse, "convert_options": conv}


def _csv_source(path, options):
    return pa.input_stream(path, compression="gzip" if _compressed(path, options) else None)


def _csv_names(path, fmt, options) -> list[str]:
    import pyarrow.csv as pacsv
    with pacsv.open_csv(_csv_source(path, options), **_csv_options(path, fmt, options, [])) as reader:
        return reader.schema.names


def _csv_parts(path, fmt, options, schema, batch_rows):
    import pyarrow.csv as pacsv
    lines = _Lines(2 if options.get("header", True) else 1)
    bad: list[BadRow] = []
    try:
        if schema is None:  # whole file, parallel parse and inference; ordered re-parse only for line numbers
            table = pacsv.read_csv(_csv_source(path, options), **_csv_options(path, fmt, options, bad))
            if bad:
                bad.clear()
                table = pacsv.read_csv(_csv_source(path, options),
                                       **_csv_options(path, fmt, options, bad, threads=False))
        else:
            names = schema.names if not options.get("header", True) else _csv_names(path, fmt, options)
    except pa.ArrowInvalid as exc:
        if "empty csv" in str(exc).lower():
            return
        raise
    if schema is None:
        if any(pa.types.is_binary(t) for t in table.schema.types):  # pyarrow's sign of text that is not UTF-8
            raise UnicodeError(f"text is not {options.get('encoding') or 'utf-8'}; set the encoding option")
        lines.skipped = sorted(b.line for b in bad if b.line)
        yield table, bad, lines.line
        return
    types = {n: pa.string() for n in names if n in schema} or None
    if types is None or len(types) < len(schema):  # let _conform name every missing column
        yield pa.table({n: pa.array([], pa.string()) for n in names}), [], lines.line
        return
    opts = _csv_options(path, fmt, options, bad, names=names, types=types, threads=False)
    done = 0
    with pacsv.open_csv(_csv_source(path, options), **opts) as reader:
        for batch in reader:
            new, bad[:] = list(bad), []
            lines.skipped.extend(sorted(b.line for b in new if b.line))
            yield pa.Table.from_batches([batch]), new, (lambda i, base=done: lines.line(base + i))
            done += batch.num_rows
    if bad:
        yield pa.table({n: pa.array([], pa.string()) for n in types}), list(bad), lines.line


def _columns_table(rows: list[dict], types: dict | None = None) -> pa.Table:
    """Rows → table column by column; a column whose values do not share a type becomes JSON text."""
    names = list(types or {}) or list(dict.fromkeys(k for r in rows for k in r))
    cols = {}
    for name in names:
        values = [r.get(name) for r in rows]
        try:
            cols[name] = pa.array(values, (types or {}).get(name))
        except _CAST_ERRORS:
            cols[name] = _to_json_text(pa.array([json.dumps(v, default=_json_default) if v is not None and
                                                 not isinstance(v, str) else v for v in values], pa.string()))
    return pa.table(cols) if cols else pa.table({"__empty": pa.nulls(len(rows))}).drop(["__empty"])


def _jsonl_parts(path, fmt, options, schema, batch_rows):
    import pyarrow.json as pajson
    data = _read_text_bytes(path, options)
    texts = None

    def line_of(i):  # good rows are the non-blank lines in order
        nonlocal texts
        texts = texts or [n for n, t in enumerate(data.split(b"\n"), 1) if t.strip()]
        return texts[i] if i < len(texts) else None
    try:
        yield pajson.read_json(io.BytesIO(data)), [], line_of
        return
    except pa.ArrowInvalid:
        pass
    rows, good, bad = [], [], []
    for n, raw in enumerate(data.decode("utf-8").split("\n"), 1):
        if raw.strip():
            try:
                value = json.loads(raw)
                if not isinstance(value, dict):
                    raise ValueError("a JSON line must hold an object")
                rows.append(value)
                good.append(n)
            except ValueError as exc:
                bad.append(BadRow(path, n, raw[:10000], f"invalid JSON line: {exc}"))
    try:
        table = pajson.read_json(io.BytesIO("\n".join(map(json.dumps, rows)).encode())) if rows else pa.table({})
    except pa.ArrowInvalid:
        table = _columns_table(rows)
    yield table, bad, (lambda i: good[i] if i < len(good) else None)


def _json_parts(path, fmt, options, schema, batch_rows):
    try:
        value = json.loads(_read_text_bytes(path, options).decode("utf-8"))
    except ValueError as exc:
        raise ConnectorError(f"cannot read {path} as JSON: {exc}") from None
    items = value if isinstance(value, list) else [value]
    rows = [r for r in items if isinstance(r, dict)]
    index = [n for n, r in enumerate(items, 1) if isinstance(r, dict)]
    bad = [BadRow(path, n, json.dumps(r)[:10000], "array item is not a JSON object")
           for n, r in enumerate(items, 1) if not isinstance(r, dict)]
    yield _columns_table(rows), bad, (lambda i: index[i] if i < len(index) else None)


def _parquet_parts(path, fmt, options, schema, batch_rows):
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    columns = [n for n in schema.names if n in names] if schema is not None else None
    if columns is not None and len(columns) < len(schema):
        yield pa.table({n: pa.array([], pa.string()) for n in names}), [], lambda i: None
        return
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        yield pa.Table.from_batches([batch]), [], lambda i: None


_AVRO_TYPES = {"long": pa.int64(), "int": pa.int64(), "double": pa.float64(), "float": pa.float64(),
               "boolean": pa.bool_(), "string": pa.string(), "date": pa.date32(),
               "timestamp-millis": pa.timestamp("us"), "timestamp-micros": pa.timestamp("us")}


def _arrow_of_avro(t) -> pa.DataType | None:
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        return _arrow_of_avro(non_null[0]) if len(non_null) == 1 else None
    if isinstance(t, dict):
        if t.get("logicalType") == "decimal":
            return pa.decimal128(t["precision"], t.get("scale", 0))
        return _AVRO_TYPES.get(t.get("logicalType")) or (_arrow_of_avro(t["type"]) if "logicalType" not in t
                                                        and isinstance(t.get("type"), str) else None)
    return _AVRO_TYPES.get(t)


def _avro_parts(path, fmt, options, schema, batch_rows):
    import fastavro
    try:
        with open(path, "rb") as fh:
            reader = fastavro.reader(fh)
            types = {f["name"]: _arrow_of_avro(f["type"]) for f in reader.writer_schema.get("fields", [])}
            rows = []
            for rec in reader:
                rows.append(rec)
                if len(rows) >= batch_rows:
                    yield _columns_table(rows, types), [], lambda i: None
                    rows = []
    except (ConnectorError, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding problem means the file is unreadable
        raise ConnectorError(f"cannot read {path} as Avro: {exc}") from None
    if rows:
        yield _columns_table(rows, types), [], lambda i: None


_READERS = {"csv": _csv_parts, "tsv": _csv_parts, "jsonl": _jsonl_parts, "json": _json_parts,
            "parquet": _parquet_parts, "avro": _avro_parts}


def _guarded(parts: Iterator, path: str, fmt: str) -> Iterator:
    """Re-raise any low-level read error of ``parts`` as ConnectorError naming the file."""
    while True:
        try:
            item = next(parts)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, EOFError, UnicodeError, LookupError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ConnectorError(f"cannot read {path} as {fmt}: {first}") from None
        yield item


def read_file(path: str, fmt: str, options: dict | None = None, schema: Schema | None = None, *,
              batch_rows: int = 65536) -> Iterator[ReadChunk]:
    """Read one file as chunks of at most ``batch_rows`` rows plus the file's bad rows (see module doc).

    Always yields at least one chunk (an empty batch for an empty file).
    """
    options = options or {}
    if fmt not in _READERS:
        raise ConnectorError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise ConnectorError(f"file {path} does not exist (moved or deleted while the run was starting?)")
    yielded = False
    for table, bad, line_of in _guarded(_READERS[fmt](path, fmt, options, schema, batch_rows), path, fmt):
        table, conv_bad = _conform(table, schema, path, line_of)
        bad = bad + conv_bad
        batches = table.to_batches(max_chunksize=batch_rows)
        if not batches and bad:
            batches = [_empty_batch(table.schema)]
        for i, batch in enumerate(batches):
            yielded = True
            yield ReadChunk(batch, bad if i == 0 else [], path)
    if not yielded:
        yield ReadChunk(_empty_batch(schema.to_arrow() if schema is not None else pa.schema([])), [], path)
    check_complete(path, fmt, options)


def check_complete(path: str, fmt: str, options: dict | None = None) -> None:
    """Raise ConnectorError if a text file looks cut off: it does not end with a line break and its last line is
    not a whole record (jsonl: not valid JSON; csv/tsv: another number of fields than its first line).

    Called after a file was read, so the rows already emitted are dropped with the file (whole file or
    nothing). Gzip files need no such guess: a cut-off gzip stream fails when read (its trailer is missing).
    Parquet and Avro fail on their own framing. Limit: a plain text file cut exactly at a line break, or whose
    cut-off last line still parses (``1,abc,12`` from ``1,abc,125``), cannot be told from a whole one.
    """
    options = options or {}
    if fmt not in ("jsonl", "csv", "tsv") or _compressed(path, options):
        return
    size = os.path.getsize(path)
    if size == 0:
        return
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 65536))
        tail = fh.read()
        fh.seek(0)
        head = fh.readline(1 << 20)
    if tail.endswith((b"\n", b"\r")) or (b"\n" not in tail and size > len(tail)):  # (a huge last line: no guess)
        return
    if _whole_last_line(tail.rsplit(b"\n", 1)[-1], head, head == tail, fmt, options):
        return
    raise ConnectorError(f"{path} ends in the middle of a record (no line break after its last line, which is "
                         f"not a whole {fmt} record): the file looks cut off (still being written, or a failed "
                         f"copy); it is not loaded")


def _whole_last_line(last: bytes, head: bytes, single: bool, fmt: str, options: dict) -> bool:
    import csv

    enc = options.get("encoding") or "utf-8"
    try:
        text = last.decode(enc)
        if fmt == "jsonl":
            json.loads(text) if text.strip() else None
            return True
        quote = options.get("quote") or '"'
        if single or quote in text:  # a quoted value may span lines: no guess
            return True
        delim = options.get("delimiter") or ("\t" if fmt == "tsv" else ",")
        width = lambda line: len(next(csv.reader([line], delimiter=delim, quotechar=quote), []))  # noqa: E731
        return width(text) == width(head.decode(enc).rstrip("\r\n"))
    except (ValueError, UnicodeError, LookupError, csv.Error):
        return False


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def infer_schema(paths: list[str], fmt: str, options: dict | None = None, sample_rows: int = 1000) -> Schema:
    """The engine schema of the files: columns in order of first appearance, types unified across files.

    Each readable, non-empty file contributes its first ``sample_rows`` rows' inferred schema (CSV inference
    itself looks at the whole file). Unreadable files are skipped; ConnectorError if none is readable.
    """
    errors, fields = [], {}
    for path in paths:
        try:
            batch = next(read_file(path, fmt, options, None, batch_rows=sample_rows)).batch
        except ConnectorError as exc:
            errors.append(str(exc))
            continue
        for name, ctype in Schema.from_arrow(batch.schema).types().items():
            old = fields.get(name)
            fields[name] = ctype if old is None else (common_type(old, ctype) or ColumnType("string"))
    if not fields and errors:
        raise ConnectorError("; ".join(errors))
    from ir_compiler.types import Field
    return Schema([Field(n, t) for n, t in fields.items()])


# ---- writers -------------------------------------------------------------------------------------------
_DEC = re.compile(r'"\\u0000D([-+0-9.Ee]+)\\u0000"')


def _json_default(v):
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return f"\x00D{v}\x00"  # placeholder, turned back into a bare JSON number by _dumps
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _dumps(row: dict) -> str:
    text = json.dumps(row, default=_json_default, ensure_ascii=False)
    return _DEC.sub(r"\1", text) if "\\u0000D" in text else text


def _finite(col):
    """Floats with NaN/inf replaced by null (JSON and Avro consumers cannot take them reliably)."""
    if pa.types.is_floating(col.type):
        return pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
    return col


def _plain(table: pa.Table, keep_lists: bool) -> pa.Table:
    """Nested columns as JSON text (lists kept when ``keep_lists``); timestamps as ISO text for CSV."""
    cols = {}
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if (pa.types.is_list(t) and not keep_lists) or pa.types.is_struct(t) or pa.types.is_map(t):
            col = _to_json_text(col)
        elif pa.types.is_timestamp(t) and not keep_lists:
            col = pc.strftime(col.cast(pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%S")
        cols[name] = col
    return pa.table(cols)


_TO_AVRO = [(pa.types.is_boolean, "boolean"), (pa.types.is_integer, "long"), (pa.types.is_floating, "double"),
            (pa.types.is_date, {"type": "int", "logicalType": "date"}),
            (pa.types.is_timestamp, {"type": "long", "logicalType": "timestamp-micros"})]


def _avro_type(t: pa.DataType):
    if pa.types.is_decimal(t):
        return {"type": "bytes", "logicalType": "decimal", "precision": t.precision, "scale": t.scale}
    if pa.types.is_list(t):
        return {"type": "array", "items": ["null", _avro_type(t.value_type)]}
    return next((avro for test, avro in _TO_AVRO if test(t)), "string")


def _avro_name(name: str) -> str:
    """A valid Avro field name: other characters become ``_``; a leading digit gets a ``_`` prefix."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    return "_" + name if name[0].isdigit() else name


def avro_schema(schema: pa.Schema, name: str = "Row") -> dict:
    """Avro record schema for an Arrow schema: nullable fields, logical types for date/timestamp/decimal."""
    return {"type": "record", "name": name, "fields": [
        {"name": _avro_name(f.name), "type": ["null", _avro_type(f.type)], "default": None} for f in schema]}


def _write_payload(table: pa.Table, tmp: str, fmt: str, compression: str | None) -> None:
    gz = compression == "gzip"
    if fmt == "parquet":
        import pyarrow.parquet as pq
        pq.write_table(table, tmp, compression=compression if compression not in (None, "none") else "snappy")
    elif fmt == "avro":
        import fastavro
        table = _plain(pa.table({n: _finite(c) for n, c in zip(table.column_names, table.columns)}), True)
        table = table.rename_columns([_avro_name(n) for n in table.column_names])
        with open(tmp, "wb") as fh:
            fastavro.writer(fh, fastavro.parse_schema(avro_schema(table.schema)), table.to_pylist(),
                            codec="deflate" if gz else "null")
    elif fmt == "csv":
        import pyarrow.csv as pacsv
        with (gzip.open(tmp, "wb") if gz else open(tmp, "wb")) as fh:
            pacsv.write_csv(_plain(table, False), fh)
    else:
        table = pa.table({n: _finite(c) for n, c in zip(table.column_names, table.columns)})
        with (gzip.open(tmp, "wt", encoding="utf-8") if gz else open(tmp, "w", encoding="utf-8")) as fh:
            for batch in table.to_batches(max_chunksize=65536):
                fh.writelines(_dumps(r) + "\n" for r in batch.to_pylist())


def write_table(table: pa.Table, folder: str, fmt: str, *, prefix: str = "part", compression: str | None = None,
                shard: int = 0) -> str:
    """Write ``table`` to ONE new file in ``folder`` (created); returns its path.

    Name ``{prefix}-{shard:05d}.{ext}`` (``.gz`` added for gzip csv/jsonl); if that exists, ``….1.{ext}``
    (``.2``…): an existing file is never overwritten. Written under a hidden temp name, then linked into place.
    csv: header row, ISO dates/timestamps, nested values as JSON text. jsonl: numbers stay numbers (decimals
    exact), dates/timestamps ISO strings, NaN/inf → null. parquet: Arrow types (compression: snappy by default,
    or gzip/zstd/none). avro: schema derived from the Arrow schema, all fields nullable, logical types
    date/timestamp-micros/decimal; names made Avro-safe; ``compression=gzip`` → deflate codec.
    """
    if fmt not in WRITE_FORMATS:
        raise ConnectorError(f"cannot write format {fmt!r}; use one of {', '.join(WRITE_FORMATS)}")
    compression = (compression or "none").lower()
    os.makedirs(folder, exist_ok=True)
    ext = fmt + (".gz" if compression == "gzip" and fmt in ("csv", "jsonl") else "")
    tmp = os.path.join(folder, f".{prefix}-{uuid.uuid4().hex}.tmp")
    try:
        _write_payload(table, tmp, fmt, compression)
        from connectors.files import _place
        return _place(tmp, folder, f"{prefix}-{shard:05d}.{ext}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

