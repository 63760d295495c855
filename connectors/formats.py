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
import dataclasses
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
from ir_compiler.types import ColumnType, Schema, common_type, round_decimal, to_arrow

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "avro")
WRITE_FORMATS = ("csv", "jsonl", "parquet", "avro")
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, TypeError, OverflowError)


@dataclass
class BadRow:
    file: str
    line: int | None
    raw: str
    reason: str
    unit: str = "line"  # what ``line`` counts: a text file's line, a columnar file's row (1 = the first row)


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
    whole = t.precision - t.scale  # parse wide (room for every integer digit, extra fraction digits and one more
    scale = max(t.scale, min(18, 37 - whole))  # for the rounding), round half away from zero, then fit
    wide = pa.decimal128(min(38, whole + scale + 1), scale)
    rounded = (lambda x: round_decimal(x.cast(wide), t.scale).cast(t))
    out = _bisect_cast(_keep(pc.replace_substring_regex(a, r"^\+", ""), _NUM), rounded, t)
    missed = pc.fill_null(pc.and_(pc.is_valid(a), pc.is_null(out)), False)
    if pc.any(missed).as_py():  # more digits than the wide parse holds (1.2349999999999999999): one by one,
        from ir_compiler.ops.cast import cast_array  # exactly as PostgreSQL's numeric input rounds them
        from ir_compiler.types import decimal as decimal_type
        idx = pc.indices_nonzero(missed)
        exact, _ = cast_array(pc.take(a, idx), decimal_type(t.precision, t.scale))
        values = out.to_pylist()
        for i, v in zip(idx.to_pylist(), exact.to_pylist()):
            values[i] = v
        out = pa.array(values, t)
    return out


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


def _text_float(a, t):
    """Numbers as float64; a finite number too large for it (``1e999``) fails instead of becoming Infinity."""
    out = _bisect_cast(_keep(a, r"(?i)^([+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?|[+-]?(nan|inf|infinity))$"),
                       _cast_to(t), t)
    overflow = pc.and_(pc.is_inf(out), pc.invert(pc.match_substring_regex(a, r"(?i)inf")))
    return pc.if_else(pc.fill_null(overflow, False), pa.scalar(None, t), out)


_TEXT = {
    "int": lambda a, t: _bisect_cast(_keep(pc.replace_substring_regex(
        pc.replace_substring_regex(a, r"^\+", ""), r"\.0*$", ""), r"^-?\d+$"), _cast_to(t), t),
    "float": _text_float,
    "array": lambda a, t: _bisect_cast(
        a, lambda x: pa.array([None if v is None else json.loads(v) for v in x.to_pylist()], t), t),
    "decimal": _text_decimal, "bool": _text_bool, "date": _text_date, "timestamp": _text_timestamp}


def convert_column(col, ctype: ColumnType) -> tuple[pa.Array, pa.Array | None]:
    """Convert ``col`` to ``to_arrow(ctype)``; returns (values, mask of values that failed or None)."""
    target = to_arrow(ctype)
    if isinstance(col, pa.ChunkedArray):  # one chunk (a reader's batch) is used as is: combining copies it
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    else:
        arr = col
    if arr.type == target:
        return arr, None
    if pa.types.is_large_string(arr.type) or pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    if ctype.name in ("string", "json") and arr.type != pa.string():
        out = _to_json_text(arr) if ctype.name == "json" or not _castable_to_text(arr.type) else arr.cast(target)
    elif arr.type == pa.string() and ctype.name in _TEXT:
        if ctype.name != "array":  # fast path: Arrow's strict cast accepts only text the rules below accept too
            try:
                fast = arr.cast(target)
                if not (ctype.name == "float" and pc.any(pc.is_inf(fast)).as_py()):  # 1e999 is no Infinity
                    return fast, None
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
    if pa.types.is_decimal(x.type) and pa.types.is_decimal(target) and x.type.scale > target.scale:
        x = round_decimal(x, target.scale)  # as PostgreSQL rounds numeric
    if pa.types.is_timestamp(x.type) and pa.types.is_date(target):
        return x.cast(target, safe=False)
    if pa.types.is_timestamp(x.type) and pa.types.is_timestamp(target):
        return x.cast(pa.timestamp(x.type.unit)).cast(target, safe=False)
    return x.cast(target)


def _conform(table: pa.Table, schema: Schema | None, path: str,
             line_of: Callable[[int], int | None], *, strict: bool = True) -> tuple[pa.Table, list[BadRow]]:
    """Convert ``table`` to ``schema``; rows whose values do not convert become BadRows.

    ``strict`` (a declared schema): exactly the declared columns, in order; a declared column missing from the
    data is an error. Not strict (a schema inferred from a sample): the known columns get their types, a column
    missing from this data is null, and columns the schema does not know are kept with their own types.
    """
    if schema is None:
        return normalise(table), []
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing and strict:
        raise ConnectorError(f"{path}: declared column(s) {', '.join(map(repr, missing))} not found in the "
                             f"file (it has {table.column_names}); fix the declared schema or the file")
    cols, failures = [], []
    hint = "" if strict else " (the type was inferred from a sample of the data: declare the column's type in " \
                             "the source's schema to choose another)"
    for f in schema:
        if f.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, to_arrow(f.type)))
            continue
        out, failed = convert_column(table.column(f.name), f.type)
        cols.append(out)
        if failed is not None:
            failures.append((f, failed, "cannot convert {value!r} to " + str(f.type) + hint))
        if not f.nullable and out.null_count:
            failures.append((f, pc.is_null(out), "missing value (declared not null)"))
    fields = list(schema.to_arrow())
    if not strict:
        extra = table.drop_columns([n for n in table.column_names if n in schema])
        extra = _infer_extra(extra)
        cols += extra.columns
        fields += list(extra.schema)
    result = pa.Table.from_arrays(cols, schema=pa.schema(fields))
    if not failures:
        return result, []
    return _split_bad(table, result, failures, path, line_of)


def messages_table(table: pa.Table, schema: Schema | None) -> pa.Table:
    """A batch of messages with every declared column: a field that no message of the batch carries is null in
    each (like a field one message lacks; a column declared not null then fails per row), never a failed run."""
    for f in schema or ():
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows))
    return table


def _infer_extra(table: pa.Table) -> pa.Table:
    """Columns a sampled schema did not know: text is typed by the text rules, anything else normalised."""
    from connectors.infer import infer_text_schema

    texts = [n for n, t in zip(table.column_names, table.schema.types) if pa.types.is_string(t)]
    typed = infer_text_schema(table.select(texts))
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        cols[name] = convert_column(col, typed[name].type)[0] if name in typed else _normalise_column(col)
    return pa.table(cols) if cols else table


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
    bad = [BadRow(path, line_of(i), _dumps(r), reasons[i]) for i, r in zip(idx, rows)]
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
    read = pacsv.ReadOptions(use_threads=threads, block_size=options.get("_block_size", 1 << 22), encoding=options.get("encoding") or "utf8",
                             column_names=None if header else names, autogenerate_column_names=not header and not names)
    parse = pacsv.ParseOptions(delimiter=options.get("delimiter") or ("\t" if fmt == "tsv" else ","),
                               quote_char=options.get("quote") or '"', invalid_row_handler=on_invalid)
    conv = pacsv.ConvertOptions(null_values=options.get("nullValues") or [""], strings_can_be_null=True,
                                column_types=types, include_columns=list(types) if types else None)
    return {"read_options": read, "parse_options": parse, "convert_options": conv}


def _csv_source(path, options):
    return pa.input_stream(path, compression="gzip" if _compressed(path, options) else None)


def _csv_names(path, fmt, options) -> list[str]:
    """The column names (the header line, or ``f0, f1…``): the reader opens on a small first block (opening
    parses and types the first block: 4 MiB cost ~0.06 s, once per range), a larger one when the first
    record does not fit in it."""
    import pyarrow.csv as pacsv
    for block in (1 << 16, 1 << 20, None):
        opts = dict(options, _block_size=block) if block else options
        try:
            with pacsv.open_csv(_csv_source(path, options), **_csv_options(path, fmt, opts, [],
                                                                           threads=False)) as reader:
                return reader.schema.names
        except pa.ArrowInvalid:  # a first record longer than the block, or an empty file: the full block decides
            if block is None:
                raise
    raise AssertionError("unreachable")


def _csv_parts(path, fmt, options, schema, batch_rows, strict=True, part=None):
    """Every CSV value is read as text (streamed, in file order); typing is ``_conform``'s job, so a schema
    inferred from a sample and a declared one convert the same way, and nothing is guessed twice.
    ``part``: a byte range (see :func:`read_file`); a range after the first has no header line (the names come
    from the file's first line) and numbers its records from 1 (read_file adds the records before it)."""
    import pyarrow.csv as pacsv
    header = options.get("header", True)
    later = bool(part) and part["start"] > 0
    try:
        if later:
            names = _csv_names(path, fmt, options) if header else (
                schema.names if schema is not None else _csv_names(path, fmt, options))
            options, header = {**options, "header": False}, False
        else:
            names = schema.names if not header and schema is not None else _csv_names(path, fmt, options)
    except pa.ArrowInvalid as exc:
        if "empty csv" in str(exc).lower():
            return
        raise
    lines = _Lines(2 if header else 1)
    bad: list[BadRow] = []
    strict = schema is not None and strict
    wanted = [n for n in names if n in schema] if strict else names
    types = {n: pa.string() for n in wanted}
    if strict and len(types) < len(schema):
        yield pa.table({n: pa.array([], pa.string()) for n in names}), [], lines.line  # _conform names them
        return
    opts = _csv_options(path, fmt, options, bad, names=names, types=types or None, threads=False)
    source = pa.BufferReader(_range_buffer(path, part)) if part else _csv_source(path, options)
    done = 0
    with pacsv.open_csv(source, **opts) as reader:
        batches = _with_bad(reader, bad)
        if options.get("_read_ahead"):  # parsed in a thread of its own, ahead of the conversion (read_file)
            batches = _read_ahead(batches)
        try:
            for batch, new in batches:
                lines.skipped.extend(sorted(b.line for b in new if b.line))
                yield pa.Table.from_batches([batch]), new, (lambda i, base=done: lines.line(base + i))
                done += batch.num_rows
        finally:
            batches.close()
    if bad:
        yield pa.table({n: pa.array([], pa.string()) for n in types}), list(bad), lines.line


def _with_bad(reader, bad: list) -> Iterator[tuple[pa.RecordBatch, list]]:
    """Each batch of a streaming CSV reader with the malformed rows reported so far (``bad``, which the reader's
    invalid-row handler fills, is emptied after each batch). pyarrow calls the handler from its own thread and
    may already be parsing the next block, so a malformed row can come with the batch before its own (every row
    is reported once; line numbers do not depend on the batch). The rows are taken with one slice deletion: a
    row the handler appends meanwhile stays for the next batch instead of being cleared unseen."""
    for batch in reader:
        n = len(bad)
        new = bad[:n]
        del bad[:n]
        yield batch, new


def _read_ahead(items: Iterator, depth: int = 2) -> Iterator:
    """The items of ``items``, produced up to ``depth`` items ahead in a background thread, in the same order.
    pyarrow parses and casts without the GIL, so the next batch of a file is read and converted on another core
    while the consuming thread (the reader's Beam step and the transforms fused after it) works on the current
    one. Nothing changes but the timing: the producer is the same serial generator (same batches, rows,
    row errors, record numbers); an error it raises is raised here, after the items before it. Closing this
    iterator stops and closes the producer."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread, raised there
            put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="flow-beam-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _align(fh, pos: int, size: int) -> int:
    """The first record boundary at or after ``pos``: 0, or just after the first line break at or after
    ``pos - 1`` (the end of the file when there is none). A record belongs to the range its first byte is in."""
    if pos <= 0:
        return 0
    if pos >= size:
        return size
    fh.seek(pos - 1)
    at = pos - 1
    while True:
        block = fh.read(1 << 16)
        if not block:
            return size
        i = block.find(b"\n")
        if i >= 0:
            return at + i + 1
        at += len(block)


def _range_bytes(path: str, part: dict) -> bytes:
    """The bytes of a byte-range part, aligned to record boundaries at both ends."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        a, b = _align(fh, part["start"], size), _align(fh, part["end"], size)
        fh.seek(a)
        return fh.read(max(0, b - a))


def _range_buffer(path: str, part: dict) -> pa.Buffer:
    """The bytes of a byte-range part as a zero-copy view of the memory-mapped file (pages are read as the
    parser reaches them)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        a, b = _align(fh, part["start"], size), _align(fh, part["end"], size)
    mm = pa.memory_map(path)
    mm.seek(a)
    return mm.read_buffer(max(0, b - a))


def records_before(path: str, pos: int, fmt: str) -> int:
    """Lines (jsonl: physical lines; csv/tsv: non-empty lines = records, as pyarrow counts them, for a file
    without quoted values) before byte ``pos`` of ``path`` (``pos`` just after a line break). Used only when a
    range reports a bad row: line numbers stay exact without counting lines up front."""
    import numpy as np

    count, prev2, at = 0, b"\n\n", 0  # as if the file were preceded by empty lines
    with open(path, "rb") as fh:
        while at < pos:
            block = fh.read(min(1 << 24, pos - at))
            if not block:
                break
            at += len(block)
            if fmt == "jsonl":
                count += block.count(b"\n")
                continue
            arr = np.frombuffer(prev2 + block, dtype=np.uint8)
            nl = np.flatnonzero(arr[2:] == 10) + 2
            before = arr[nl - 1]
            empty = (before == 10) | ((before == 13) & (arr[nl - 2] == 10))
            count += int(len(nl) - np.count_nonzero(empty))
            prev2 = (prev2 + block)[-2:]
    return count


def _columns_table(rows: list[dict], types: dict | None = None) -> pa.Table:
    """Rows → table column by column. Without ``types`` every value is kept exact (connectors.infer); with
    them, a column whose values do not fit its type becomes JSON text."""
    if types is None:
        from connectors.infer import rows_table
        return rows_table(rows)
    cols = {}
    for name in types:
        values = [r.get(name) for r in rows]
        try:
            cols[name] = pa.array(values, types.get(name))
        except _CAST_ERRORS:
            cols[name] = _to_json_text(pa.array([json.dumps(v, default=_json_default) if v is not None and
                                                 not isinstance(v, str) else v for v in values], pa.string()))
    return pa.table(cols) if cols else pa.table({"__empty": pa.nulls(len(rows))}).drop(["__empty"])


_AS_TEXT = ("string", "date", "timestamp", "json")  # read as JSON text, then converted by the text rules


def _has_timestamp(t: pa.DataType) -> bool:
    if pa.types.is_timestamp(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_timestamp(f.type) for f in t)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        return _has_timestamp(t.value_type if not pa.types.is_map(t) else t.item_type)
    return False


def _inexact_floats(col) -> bool:
    """Whether Arrow's JSON parser may have changed a number: Infinity from ``1e999``, or an integer beyond 2^53
    parsed as a double."""
    if not pa.types.is_floating(col.type) or not len(col):
        return False
    finite = pc.is_finite(col)
    if not pc.all(pc.fill_null(finite, True)).as_py():
        return True
    big = pc.greater_equal(pc.abs(col), 2.0 ** 53)
    return bool(pc.any(pc.fill_null(big, False)).as_py())


def _fast_json(data: bytes, schema: Schema | None) -> pa.Table | None:
    """Arrow's JSON reader, when its result is exact: strings it would turn into timestamps are read again as
    text, declared text/date/timestamp/decimal columns are read as text or wide decimals; None when a value could
    have changed (the caller then parses exactly)."""
    import pyarrow.json as pajson
    if any(f.type.name == "json" for f in schema or ()):
        return None  # a declared json column holds JSON values of any kind: encoded exactly by _json_fields
    forced = {}
    for f in schema or ():
        if f.type.name in _AS_TEXT:
            forced[f.name] = pa.string()
        elif f.type.name == "decimal":
            forced[f.name] = pa.decimal128(38, max(f.type.scale, 18))
    for _ in range(2):
        opts = pajson.ParseOptions(explicit_schema=pa.schema(forced) if forced else None,
                                   unexpected_field_behavior="infer")
        try:
            table = pajson.read_json(io.BytesIO(data), parse_options=opts)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        stamps = {n: pa.string() for n, t in zip(table.column_names, table.schema.types)
                  if pa.types.is_timestamp(t) and n not in forced}
        if not stamps:
            break
        forced.update(stamps)
    else:
        return None
    if any(_has_timestamp(t) for t in table.schema.types):  # nested: not re-readable as text
        return None
    if any(_inexact_floats(table.column(n)) for n in table.column_names):
        return None
    return table


def _json_fields(rows: list[dict], schema: Schema | None) -> list[dict]:
    """A declared ``json`` column of a JSON/JSONL file holds JSON values: each becomes its JSON text (a string
    value too: ``"text"`` with its quotes, as PostgreSQL's ``doc->'field'`` gives it), numbers exact."""
    names = [f.name for f in schema or () if f.type.name == "json"]
    for r in rows if names else ():
        for n in names:
            if r.get(n) is not None:
                r[n] = _dumps(r[n])
    return rows


def _jsonl_parts(path, fmt, options, schema, batch_rows, strict=True, part=None):
    data = _range_bytes(path, part) if part else _read_text_bytes(path, options)
    texts = None

    def line_of(i):  # good rows are the non-blank lines in order
        nonlocal texts
        texts = texts or [n for n, t in enumerate(data.split(b"\n"), 1) if t.strip()]
        return texts[i] if i < len(texts) else None
    table = _fast_json(data, schema)
    if table is not None:
        yield table, [], line_of
        return
    from connectors.infer import loads_exact, rows_table
    rows, good, bad = [], [], []
    for n, raw in enumerate(data.decode("utf-8").split("\n"), 1):
        if raw.strip():
            try:
                value = loads_exact(raw)
                if not isinstance(value, dict):
                    raise ValueError("a JSON line must hold an object")
                rows.append(value)
                good.append(n)
            except ValueError as exc:
                bad.append(BadRow(path, n, raw[:10000], f"invalid JSON line: {exc}"))
    yield rows_table(_json_fields(rows, schema)), bad, (lambda i: good[i] if i < len(good) else None)


def _json_parts(path, fmt, options, schema, batch_rows, strict=True, part=None):
    from connectors.infer import loads_exact, rows_table
    try:
        value = loads_exact(_read_text_bytes(path, options).decode("utf-8"))
    except ValueError as exc:
        raise ConnectorError(f"cannot read {path} as JSON: {exc}") from None
    items = value if isinstance(value, list) else [value]
    rows = [r for r in items if isinstance(r, dict)]
    index = [n for n, r in enumerate(items, 1) if isinstance(r, dict)]
    bad = [BadRow(path, n, _dumps(r)[:10000], "array item is not a JSON object")
           for n, r in enumerate(items, 1) if not isinstance(r, dict)]
    yield rows_table(_json_fields(rows, schema)), bad, (lambda i: index[i] if i < len(index) else None)


def _parquet_parts(path, fmt, options, schema, batch_rows, strict=True, part=None):
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    columns = [n for n in schema.names if n in names] if schema is not None else None
    if columns is not None and len(columns) < len(schema):
        yield pa.table({n: pa.array([], pa.string()) for n in names}), [], lambda i: None
        return
    groups = part["groups"] if part else None
    done = part.get("row0", 0) if part else 0  # rows of the file before this batch: a bad row's row number
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns, row_groups=groups):
        yield pa.Table.from_batches([batch]), [], (lambda i, base=done: base + i + 1)
        done += batch.num_rows


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


def _avro_parts(path, fmt, options, schema, batch_rows, strict=True, part=None):
    import fastavro
    try:
        with open(path, "rb") as fh:
            reader = fastavro.reader(fh)
            types = {f["name"]: _arrow_of_avro(f["type"]) for f in reader.writer_schema.get("fields", [])}
            rows, done = [], part.get("row0", 0) if part else 0
            left = part["count"] if part else -1
            if part:
                fh.seek(part["offset"])  # the range's first block (the reader read the header already)
            for rec in reader:
                if left == 0:
                    break
                left -= 1
                rows.append(rec)
                if len(rows) >= batch_rows:
                    yield _columns_table(rows, types), [], (lambda i, base=done: base + i + 1)
                    done += len(rows)
                    rows = []
    except (ConnectorError, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding problem means the file is unreadable
        raise ConnectorError(f"cannot read {path} as Avro: {exc}") from None
    if rows:
        yield _columns_table(rows, types), [], (lambda i, base=done: base + i + 1)


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


TEXT_FORMATS = ("csv", "tsv")


def read_file(path: str, fmt: str, options: dict | None = None, schema: Schema | None = None, *,
              hint: Schema | None = None, batch_rows: int = 65536, verify: bool = False,
              part: dict | None = None, read_ahead: bool = False) -> Iterator[ReadChunk]:
    """Read one file as chunks of at most ``batch_rows`` rows plus the file's bad rows (see module doc).

    ``schema`` is a declared schema (exactly its columns); ``hint`` a schema inferred from a sample (its columns
    get its types, other columns are kept). With neither, CSV/TSV text is typed by the text rules over the
    file's first chunk (connectors.infer) and other formats keep their own types.
    Always yields at least one chunk (an empty batch for an empty file).
    ``verify``: check the file is whole (:func:`verify_file`) BEFORE the first chunk; without it a cut-off plain
    text file is detected (:func:`check_complete`) after the last chunk.
    ``part``: read one range of the file (planned by :func:`connectors.splits.plan_file`): ``{"kind": "bytes",
    "start", "end"}`` (csv/tsv/jsonl: the records whose first byte is in [start, end); line numbers stay exact),
    ``{"kind": "row_groups", "groups"}`` (parquet), ``{"kind": "blocks", "offset", "count"}`` (avro: ``count``
    records from the block at byte ``offset``). With ``verify`` the file is still checked whole first (an avro
    range skips it: its planner walked every block).
    ``read_ahead``: parse and convert the next chunks in a background thread (:func:`_read_ahead`) while the
    caller works on this one — for a reader that consumes the whole file, not for a sample.
    """
    options = options or {}
    if fmt not in _READERS:
        raise ConnectorError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise ConnectorError(f"file {path} does not exist (moved or deleted while the run was starting?)")
    if verify and not (part and part.get("kind") == "blocks"):
        verify_file(path, fmt, options)
    strict = schema is not None
    typed = [schema if strict else hint]  # the producer may infer it from the first chunk
    yielded = False
    part = part if part and part.get("kind") else None

    def chunks() -> Iterator[ReadChunk]:
        target = typed[0]
        parts = _READERS[fmt](path, fmt, options, target, batch_rows, strict, part)
        if part and part["kind"] == "bytes" and part["start"] > 0:
            parts = _shift_lines(parts, path, fmt, part)
        for table, bad, line_of in _guarded(parts, path, fmt):
            if target is None and fmt in TEXT_FORMATS:
                from connectors.infer import infer_text_schema
                target = typed[0] = infer_text_schema(table)
            table, conv_bad = _conform(table, target, path, line_of, strict=strict)
            if fmt in ("parquet", "avro"):
                conv_bad = [dataclasses.replace(b, unit="row") for b in conv_bad]
            bad = bad + conv_bad
            batches = table.to_batches(max_chunksize=batch_rows)
            if not batches and bad:
                batches = [_empty_batch(table.schema)]
            for i, batch in enumerate(batches):
                yield ReadChunk(batch, bad if i == 0 else [], path)
    if read_ahead:
        options = {**options, "_read_ahead": True}
    produced = chunks()
    if read_ahead:
        produced = _read_ahead(produced)
    try:
        for chunk in produced:
            yielded = True
            yield chunk
    finally:
        produced.close()
    if not yielded:
        target = typed[0]
        empty = target.to_arrow() if target is not None else pa.schema([])
        yield ReadChunk(_empty_batch(empty), [], path)
    if not verify:
        check_complete(path, fmt, options)


# ---- whole-file checks before any row is emitted ------------------------------------------------------------
def verify_file(path: str, fmt: str, options: dict | None = None) -> None:
    """Raise ConnectorError when the file is visibly not whole, cheaply and without keeping rows in memory, so a
    reader can check a file BEFORE it emits a row of it (a file is loaded whole or not at all):

    - plain csv/tsv/jsonl: :func:`check_complete` (a cut-off last record; O(1): the file's last 64 KiB);
    - gzip (any text format): one streaming decompression pass that checks every member's CRC-32 and length
      trailer (CPU only, constant memory: about 1 s per 1-2 GB of decompressed text);
    - parquet: the footer (a truncated file has none) and every column chunk inside the file;
    - avro: the header and every block's framing (record count, byte size, 16-byte sync marker), by seeking
      from block to block without decoding;
    - json: nothing (a json file is parsed whole before its rows are emitted).

    What this cannot see (a damaged page inside a parquet column chunk, bytes changed inside an avro block,
    invalid UTF-8 in the middle of a text file) makes the read fail part-way; the reader reports that file and
    the target's commit step leaves its rows out (see connectors.local_fs.reader).
    """
    import zlib

    options = options or {}
    try:
        if fmt in ("csv", "tsv", "jsonl", "json"):
            if _compressed(path, options):
                verify_gzip(path)
            elif fmt != "json":
                check_complete(path, fmt, options)
        elif fmt == "parquet":
            _verify_parquet(path)
        elif fmt == "avro":
            avro_blocks(path)
    except ConnectorError:
        raise
    except zlib.error as exc:
        raise ConnectorError(f"cannot read {path} as gzip: {exc} (the file is damaged)") from None
    except (OSError, EOFError, ValueError, pa.ArrowException) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConnectorError(f"cannot read {path} as {fmt}: {first}") from None


def verify_gzip(path: str, block: int = 1 << 20) -> int:
    """Decompress a gzip file once, discarding the output, so zlib checks every member's CRC-32 and length;
    returns the decompressed size. A cut-off or corrupted stream raises ConnectorError (zlib.error when the
    data itself is bad)."""
    import zlib

    total, d = 0, None
    with open(path, "rb") as fh:
        while True:
            data = fh.read(block)
            if not data:
                break
            while data:
                if d is None or d.eof:
                    if d is not None and not data.strip(b"\x00"):  # zero padding after the last member
                        break
                    d = zlib.decompressobj(31)  # the first member, or another one
                total += len(d.decompress(data, 1 << 22))
                while d.unconsumed_tail and not d.eof:  # bounded output: constant memory
                    total += len(d.decompress(d.unconsumed_tail, 1 << 22))
                data = d.unused_data if d.eof else b""
    if d is not None and not d.eof:
        raise ConnectorError(f"cannot read {path} as gzip: the compressed stream is cut off (no end-of-stream "
                             f"trailer): the file looks truncated")
    return total


def _verify_parquet(path: str) -> None:
    import pyarrow.parquet as pq

    size = os.path.getsize(path)
    md = pq.ParquetFile(path).metadata  # a truncated file has no footer: this raises
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        for c in range(group.num_columns):
            col = group.column(c)
            start = col.dictionary_page_offset if col.has_dictionary_page and col.dictionary_page_offset \
                else col.data_page_offset
            if start is None or start < 0 or start + col.total_compressed_size > size:
                raise ConnectorError(f"cannot read {path} as parquet: row group {g} column {col.path_in_schema} "
                                     f"lies outside the file ({size} bytes): the file is damaged")


def _read_long(fh) -> int | None:
    """One Avro zig-zag varint long; None at the end of the file (before its first byte)."""
    shift, acc = 0, 0
    while True:
        b = fh.read(1)
        if not b:
            if shift == 0:
                return None
            raise EOFError("the file ends inside a number")
        acc |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return (acc >> 1) ^ -(acc & 1)
        shift += 7
        if shift > 63:
            raise ValueError("a malformed number")


@dataclass
class AvroBlock:
    offset: int  # where the block's record count starts
    count: int  # records in the block
    end: int  # offset just after its sync marker


def avro_blocks(path: str) -> list[AvroBlock]:
    """Every data block of an Avro container file, found by seeking from block to block (no decoding): the
    header must be whole and every block must end with the file's sync marker, else ConnectorError."""
    size = os.path.getsize(path)

    def bad(what: str):
        return ConnectorError(f"cannot read {path} as Avro: {what}; the file looks truncated or damaged")
    with open(path, "rb") as fh:
        if fh.read(4) != b"Obj\x01":
            raise bad("no Avro container header")
        while True:  # the metadata map: blocks of (count, [byte size], key/value pairs), ended by count 0
            n = _read_long(fh)
            if n is None:
                raise bad("the header is cut off")
            if n == 0:
                break
            if n < 0:
                n = -n
                _read_long(fh)
            for _ in range(2 * n):
                length = _read_long(fh)
                if length is None or length < 0 or fh.tell() + length > size:
                    raise bad("the header is cut off")
                fh.seek(length, 1)
        sync = fh.read(16)
        if len(sync) != 16:
            raise bad("the header is cut off")
        blocks = []
        while True:
            start = fh.tell()
            count = _read_long(fh)
            if count is None:
                return blocks
            length = _read_long(fh)
            if count < 0 or length is None or length < 0 or fh.tell() + length + 16 > size:
                raise bad(f"block {len(blocks) + 1} at byte {start} is cut off")
            fh.seek(length, 1)
            if fh.read(16) != sync:
                raise bad(f"block {len(blocks) + 1} at byte {start} does not end with the sync marker")
            blocks.append(AvroBlock(start, count, fh.tell()))


def _shift_lines(parts, path, fmt, part):
    """The (table, bad rows, line_of) of a byte range after the first, with line numbers counted from the start
    of the file: the lines before the range are counted only when a line number is asked for (a bad row)."""
    import dataclasses

    base = []

    def before() -> int:
        if not base:
            with open(path, "rb") as fh:
                start = _align(fh, part["start"], os.path.getsize(path))
            base.append(records_before(path, start, fmt))
        return base[0]
    for table, bad, line_of in parts:
        bad = [dataclasses.replace(b, line=b.line + before()) if b.line else b for b in bad]
        yield table, bad, (lambda i, f=line_of: None if f(i) is None else f(i) + before())


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
    if fmt != "jsonl" and _odd_quotes(path, options):
        raise ConnectorError(f"{path} ends inside a quoted value (an opening quote is never closed): the file looks "
                             f"cut off (still being written, or a failed copy); it is not loaded")
    if _whole_last_line(tail.rsplit(b"\n", 1)[-1], head, head == tail, fmt, options):
        return
    raise ConnectorError(f"{path} ends in the middle of a record (no line break after its last line, which is "
                         f"not a whole {fmt} record): the file looks cut off (still being written, or a failed "
                         f"copy); it is not loaded")


def _odd_quotes(path: str, options: dict) -> bool:
    """Whether the file holds an odd number of quote characters: a CSV file cut inside a quoted value (whole
    files pair every opening quote with a closing one, and an escaped quote is doubled)."""
    quote = (options.get("quote") or '"').encode(options.get("encoding") or "utf-8")
    if len(quote) != 1:
        return False
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            n += block.count(quote)
    return n % 2 == 1


def _whole_last_line(last: bytes, head: bytes, single: bool, fmt: str, options: dict) -> bool:
    import csv

    enc = options.get("encoding") or "utf-8"
    try:
        text = last.decode(enc)
        if fmt == "jsonl":
            json.loads(text) if text.strip() else None
            return True
        quote = options.get("quote") or '"'
        if single or text.count(quote) % 2:  # the last record began on an earlier line (a quoted line break;
            return True  # the file's quotes are paired: check_complete): no width to compare
        delim = options.get("delimiter") or ("\t" if fmt == "tsv" else ",")
        width = lambda line: len(next(csv.reader([line], delimiter=delim, quotechar=quote), []))  # noqa: E731
        return width(text) == width(head.decode(enc).rstrip("\r\n"))
    except (ValueError, UnicodeError, LookupError, csv.Error):
        return False


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


SAMPLE_ROWS = 10_000
SAMPLE_BYTES = 4 << 20


def _head_text(path: str, options: dict, limit: int) -> tuple[str, bool]:
    """The first ``limit`` bytes of the (decompressed) file as text, and whether that is the whole file."""
    opener = gzip.open if _compressed(path, options) else open
    with opener(path, "rb") as fh:
        data = fh.read(limit + 1)
    whole = len(data) <= limit
    data = data[:limit]
    enc = (options.get("encoding") or "utf-8").lower().replace("_", "-")
    return data.decode(enc, errors="strict" if whole else "ignore"), whole


def _json_sample(path: str, fmt: str, options: dict, rows: int, limit: int) -> pa.Table:
    """The first ``rows`` objects of a JSON/JSONL file, reading at most ``limit`` bytes."""
    from connectors.infer import loads_exact, rows_table
    text, whole = _head_text(path, options, limit)
    out = []
    if fmt == "jsonl":
        lines = text.split("\n")
        for raw in lines if whole else lines[:-1]:  # the last line of a cut sample may be cut too
            if raw.strip() and len(out) < rows:
                try:
                    value = loads_exact(raw)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    out.append(value)
        return rows_table(out)
    from connectors.infer import JsonNumber
    decoder, i = json.JSONDecoder(parse_float=JsonNumber), 0
    text = text.lstrip()
    if not text.startswith("["):
        value = loads_exact(text)
        return rows_table([value] if isinstance(value, dict) else [])
    i = 1
    while len(out) < rows:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            break
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            if whole:
                raise
            break
        if isinstance(value, dict):
            out.append(value)
    return rows_table(out)


def sample_file(path: str, fmt: str, options: dict | None = None, rows: int = SAMPLE_ROWS,
                limit: int = SAMPLE_BYTES) -> pa.Table:
    """A bounded sample of one file — its first ``rows`` rows, reading a few MB at most — typed as a reader
    without a schema types it (never the whole file)."""
    options = options or {}
    if fmt in ("json", "jsonl"):
        try:
            return _json_sample(path, fmt, options, rows, limit)
        except (OSError, EOFError, UnicodeError, ValueError) as exc:
            raise ConnectorError(f"cannot read {path} as {fmt}: {exc}") from None
    if fmt in TEXT_FORMATS:
        options = {**options, "_block_size": min(limit, 1 << 22)}
    chunk = next(read_file(path, fmt, options, None, batch_rows=rows))
    return pa.Table.from_batches([chunk.batch])


def infer_schema(paths: list[str], fmt: str, options: dict | None = None, sample_rows: int = SAMPLE_ROWS) -> Schema:
    """The engine schema of the files: columns in order of first appearance, types unified across files.

    Each readable, non-empty file contributes a bounded sample (:func:`sample_file`: its first ``sample_rows``
    rows within a few MB); a column gets a type only if it holds every sampled value exactly. Unreadable files
    are skipped; ConnectorError if none is readable.
    """
    errors, fields = [], {}
    for path in paths:
        try:
            sample = sample_file(path, fmt, options, sample_rows)
        except ConnectorError as exc:
            errors.append(str(exc))
            continue
        for name, ctype in Schema.from_arrow(sample.schema).types().items():
            old = fields.get(name)
            declared = fmt in ("parquet", "avro") and ctype.name != "null"  # the file states its types
            if not declared and sample.column(name).null_count == sample.num_rows:  # no value: no type said
                fields.setdefault(name, None)
                continue
            fields[name] = ctype if old is None else (common_type(old, ctype) or ColumnType("string"))
    if not fields and errors:
        raise ConnectorError("; ".join(errors))
    from ir_compiler.types import Field
    return Schema([Field(n, t or ColumnType("string")) for n, t in fields.items()])


# ---- writers -------------------------------------------------------------------------------------------
_DEC = re.compile(r'"\\u0000D([-+0-9.Ee]+)\\u0000"')


def _json_default(v):
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return f"\x00D{v:f}\x00"  # placeholder, turned back into a bare JSON number by _dumps; positional
        # notation (0.0000000001, not 1E-10), every digit of the scale kept, as PostgreSQL prints numeric
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _dumps(row: dict, separators=None) -> str:
    text = json.dumps(row, default=_json_default, ensure_ascii=False, separators=separators)
    return _DEC.sub(r"\1", text) if "\\u0000D" in text else text


def json_rows(table: pa.Table) -> list[dict]:
    """The rows as dicts for JSON output (JSONL files, JSON messages): a text column declared `json` (marked by
    connectors.warehouse.base.mark_json) is embedded as the JSON value it holds (numbers exact), not as a
    string; text that is not JSON stays a string."""
    from connectors.warehouse.base import is_json_field

    rows = table.to_pylist()
    names = [f.name for f in table.schema if is_json_field(f)]
    if names:
        for r in rows:
            for n in names:
                v = r.get(n)
                if isinstance(v, str):
                    try:
                        r[n] = json.loads(v, parse_float=decimal.Decimal)
                    except ValueError:
                        pass
    return rows


def _finite(col):
    """Floats with NaN/inf replaced by null (JSON and Avro consumers cannot take them reliably)."""
    if pa.types.is_floating(col.type):
        return pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
    return col


def _decimal_text(col):
    """Decimals as positional text with every digit of the scale where Arrow would print an exponent (1E-10 for
    small values); a column without such values stays decimal (the csv writer then leaves it unquoted)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    text = col.cast(pa.string())
    exp = pc.fill_null(pc.match_substring(text, "E"), False)
    if not pc.any(exp).as_py():
        return col
    fixed = [None if v is None else f"{v:f}" for v in col.to_pylist()]
    return pc.if_else(exp, pa.array(fixed, pa.string()), text)


def _plain(table: pa.Table, keep_lists: bool) -> pa.Table:
    """Nested columns as JSON text (lists kept when ``keep_lists``); timestamps as ISO text for CSV."""
    cols = {}
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if (pa.types.is_list(t) and not keep_lists) or pa.types.is_struct(t) or pa.types.is_map(t):
            col = _to_json_text(col)
        elif pa.types.is_timestamp(t) and not keep_lists:  # as the JSONL sink (isoformat): no fraction when 0
            text = pc.strftime(col.cast(pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%S")
            col = pc.replace_substring_regex(text, r"\.000000$", "")
        elif pa.types.is_decimal(t) and not keep_lists:
            col = _decimal_text(col)
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
        table = _plain(table, True)  # Avro doubles hold NaN and ±Infinity: kept (JSON sinks write them as null)
        table = table.rename_columns([_avro_name(n) for n in table.column_names])
        with open(tmp, "wb") as fh:
            fastavro.writer(fh, fastavro.parse_schema(avro_schema(table.schema)), table.to_pylist(),
                            codec="deflate" if gz else "null")
    elif fmt == "csv":
        import pyarrow.csv as pacsv
        with (gzip.open(tmp, "wb") if gz else open(tmp, "wb")) as fh:
            pacsv.write_csv(_plain(table, False), fh)
    else:
        table = pa.table({n: _finite(c) for n, c in zip(table.column_names, table.columns)}, schema=pa.schema(
            [f.with_type(_finite(c).type) for f, c in zip(table.schema, table.columns)]))
        with (gzip.open(tmp, "wt", encoding="utf-8") if gz else open(tmp, "w", encoding="utf-8")) as fh:
            for batch in table.to_batches(max_chunksize=65536):
                fh.writelines(_dumps(r) + "\n" for r in json_rows(pa.Table.from_batches([batch])))


def write_table(table: pa.Table, folder: str, fmt: str, *, prefix: str = "part", compression: str | None = None,
                shard: int = 0) -> str:
    """Write ``table`` to ONE new file in ``folder`` (created); returns its path.

    Name ``{prefix}-{shard:05d}.{ext}`` (no ``-`` added after a prefix that already ends in ``-``, ``_`` or
    ``.``; ``.gz`` added for gzip csv/jsonl); if that exists, ``….1.{ext}``
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
        from connectors.local_fs.files import _place
        sep = "" if prefix.endswith(("-", "_", ".")) else "-"
        return _place(tmp, folder, f"{prefix}{sep}{shard:05d}.{ext}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

