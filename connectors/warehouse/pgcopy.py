"""PostgreSQL binary COPY payloads built straight from Arrow batches, with no Python loop over rows.

Each column becomes one Arrow binary value per row holding its field (a 4-byte big-endian length, then the value in
PostgreSQL's binary format, or length -1 for NULL); ``binary_join_element_wise`` then lays the fields out row by
row after the 2-byte field count, so the joined array's data buffer IS the COPY payload. The server skips text
parsing (measured on 1M orders rows: COPY 0.52-0.57 s instead of 0.64-0.80 s for CSV).

Only exact matches are encoded: a column whose Arrow type and PostgreSQL column type are not a pair below returns
``None`` and the caller falls back to CSV for the whole COPY, so the stored values are the same either way."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, no extension
TRAILER = b"\xff\xff"
_NULL = pa.scalar(b"\xff\xff\xff\xff", pa.binary())
_PG_EPOCH_DAYS = 10957  # 2000-01-01 in days since 1970-01-01
_PG_EPOCH_US = 946_684_800_000_000
_TIME_UNITS = ("s", "ms", "us")  # exact in microseconds (ns would round: left to the CSV path)

# Our CREATE TABLE types (Warehouse.sql_type / PostgresWarehouse._col_type) → information_schema data_type.
DDL_TYPES = {"TEXT": "text", "BIGINT": "bigint", "DOUBLE PRECISION": "double precision", "BOOLEAN": "boolean",
             "DATE": "date", "TIMESTAMP": "timestamp without time zone", "JSONB": "jsonb", "JSON": "json"}


def _fixed(values: np.ndarray, width: int, valid) -> pa.Array:
    """Big-endian values of ``width`` bytes → one binary field (length + value) per row."""
    n = len(values)
    buf = np.empty((n, 4 + width), dtype=np.uint8)
    buf[:, :4] = np.frombuffer(np.array([width], ">i4").tobytes(), np.uint8)
    buf[:, 4:] = values.view(np.uint8).reshape(n, width)
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 + width), n, [None, pa.py_buffer(buf)]).cast(pa.binary())
    return arr if valid is None else pc.if_else(valid, arr, _NULL)


def _text(col: pa.Array, version: bytes = b"") -> pa.Array:
    """UTF-8 text (jsonb: a version byte first) → one binary field per row."""
    data = col.cast(pa.string()).cast(pa.binary())
    n = len(data)
    offsets = np.frombuffer(data.buffers()[1], dtype=np.int32, count=n + 1, offset=data.offset * 4)
    lengths = (np.diff(offsets) + len(version)).astype(">i4")
    prefix = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), n, [None, pa.py_buffer(lengths)]).cast(pa.binary())
    parts = [prefix, pa.scalar(version, pa.binary()), data] if version else [prefix, data]
    out = pc.binary_join_element_wise(*parts, b"")
    return pc.if_else(data.is_valid(), out, _NULL) if data.null_count else out


def encode_column(col: pa.Array, pg_type: str | None) -> pa.Array | None:
    """The binary fields of one column for a PostgreSQL column of ``pg_type``, or None when not an exact pair."""
    t = col.type
    valid = col.is_valid() if col.null_count else None
    if pg_type == "bigint" and pa.types.is_integer(t) and t != pa.uint64():
        return _fixed(pc.fill_null(col.cast(pa.int64()), 0).to_numpy().astype(">i8"), 8, valid)
    if pg_type == "double precision" and t == pa.float64():
        return _fixed(pc.fill_null(col, 0.0).to_numpy().astype(">f8"), 8, valid)
    if pg_type == "boolean" and pa.types.is_boolean(t):
        return _fixed(pc.fill_null(col, False).to_numpy(zero_copy_only=False).astype(np.uint8), 1, valid)
    if pg_type == "date" and pa.types.is_date32(t):
        days = pc.fill_null(col.cast(pa.int32()), 0).to_numpy() - np.int32(_PG_EPOCH_DAYS)
        return _fixed(days.astype(">i4"), 4, valid)
    if pa.types.is_timestamp(t) and t.unit in _TIME_UNITS and pg_type == (
            "timestamp without time zone" if t.tz is None else "timestamp with time zone"):
        micros = pc.fill_null(col.cast(pa.timestamp("us", t.tz)).cast(pa.int64()), 0).to_numpy()
        return _fixed((micros - np.int64(_PG_EPOCH_US)).astype(">i8"), 8, valid)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if pg_type in ("text", "character varying", "json"):
            return _text(col)
        if pg_type == "jsonb":
            return _text(col, b"\x01")
    return None


def binary_rows(batch: pa.RecordBatch, pg_types: list[str | None]):
    """The COPY rows of ``batch`` (without header and trailer) as one buffer, or None to use CSV instead."""
    fields = []
    for i, pg_type in enumerate(pg_types):
        enc = encode_column(batch.column(i), pg_type)
        if enc is None:
            return None
        fields.append(enc)
    if not fields or batch.num_rows == 0:
        return None
    count = pa.scalar(np.array([len(fields)], ">i2").tobytes(), pa.binary())
    rows = pc.binary_join_element_wise(count, *fields, b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=len(rows) + 1, offset=rows.offset * 4)
    return rows.buffers()[2][int(offsets[0]):int(offsets[-1])]
