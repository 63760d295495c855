"""Splittable reads: one large file → several ranges that different workers read
(:func:`connectors.formats.read_file` with ``part``).

Planned on the driver from cheap facts only (the file size, a scan for the quote character, the Parquet footer,
the Avro block headers); the reader verifies and reads each range on a worker. A file is split when it is
larger than ``1.5 ×`` the split size (``FLOW_BEAM_SPLIT_BYTES``, default 64 MiB), into ranges of about that
size (not on a one-worker direct run, see :func:`splits_pay`):

- csv/tsv/jsonl (plain, UTF-8 or a single-byte encoding): byte ranges; each range reads the records whose first
  byte lies in it (a range starts just after a line break). A csv/tsv file that holds the quote character
  anywhere (a memchr scan on the driver, ~0.07 s per 300 MB) is NOT split (a quoted value may span lines, and a range cannot tell from its own bytes whether it
  starts inside one): one range. Neither is a file with bare ``\\r`` line ends, nor a text file without a known
  schema (each range would infer its own types);
- parquet: groups of whole row groups (a file with one row group is one range);
- avro: runs of whole blocks (from one sync marker to another);
- gzip and json: never split (one range).

Line numbers in row errors stay exact: a range counts the lines before it only when it reports a bad row. The
rows of a range carry ORD = file index << 36 | (rows before the range for parquet/avro; the range's first byte
offset + row for text — in file order, unique), so a file's ranges are one file for the ledger and for the
whole-file guarantee (any range that breaks drops the whole file, see connectors.local_fs.reader).
"""
from __future__ import annotations

import os

SPLIT_BYTES = 64 << 20
_MAX_TEXT = 1 << 36  # byte offsets of a text file's ranges fit under the file index in ORD
_SINGLE_BYTE = ("utf-8", "utf8", "ascii", "us-ascii", "latin-1", "latin1", "iso-8859-1", "cp1252", "windows-1252")


def splits_pay(runner: str, beam_args=()) -> bool:
    """Whether splitting files can pay on this run: ranges are spread over workers, and the in-process direct
    runner with one worker (its default) has one — there a split file only costs (a reshuffle, a reader per range:
    ~0.25 s per 10M-row CSV, measured). Setting ``FLOW_BEAM_SPLIT_BYTES`` splits on every runner."""
    if runner != "direct" or os.environ.get("FLOW_BEAM_SPLIT_BYTES"):
        return True
    workers = 1
    args = list(beam_args)
    for i, arg in enumerate(args):
        value = None
        if arg.startswith("--direct_num_workers="):
            value = arg.split("=", 1)[1]
        elif arg == "--direct_num_workers" and i + 1 < len(args):
            value = args[i + 1]
        if value is not None:
            try:
                workers = int(value)
            except ValueError:
                workers = 1
    return workers != 1  # 0: as many workers as cores


def split_bytes() -> int:
    try:
        return max(1 << 20, int(os.environ.get("FLOW_BEAM_SPLIT_BYTES", SPLIT_BYTES)))
    except ValueError:
        return SPLIT_BYTES


def plan_file(path: str, fmt: str, options: dict | None = None, typed: bool = True,
              size_limit: int | None = None) -> list[dict | None]:
    """The ranges of one file (``[None]``: read it whole). Never raises: a file that cannot be planned (damaged,
    vanished) is one range, and its reader reports it."""
    options = options or {}
    limit = size_limit or split_bytes()
    try:
        size = os.path.getsize(path)
        if size <= limit * 3 // 2:
            return [None]
        if fmt in ("csv", "tsv", "jsonl"):
            return _text_ranges(path, fmt, options, typed, size, limit)
        if fmt == "parquet":
            return _parquet_ranges(path, limit)
        if fmt == "avro":
            return _avro_ranges(path, limit)
    except Exception:  # noqa: BLE001 - planning is an optimisation: the reader reports what is wrong
        return [None]
    return [None]


def _text_ranges(path, fmt, options, typed, size, limit):
    from connectors.formats import _compressed

    enc = (options.get("encoding") or "utf-8").lower().replace("_", "-")
    if not typed or _compressed(path, options) or size >= _MAX_TEXT or enc not in _SINGLE_BYTE:
        return [None]
    if fmt == "jsonl" and enc not in ("utf-8", "utf8", "ascii", "us-ascii"):
        return [None]
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        if b"\r" in head and b"\r\n" not in head:  # bare CR line ends: pyarrow's records, not ours
            return [None]
        if fmt != "jsonl" and _holds(fh, (options.get("quote") or '"').encode("latin-1"), size):
            return [None]
    n = -(-size // limit)
    cuts = [size * i // n for i in range(n + 1)]
    return [{"kind": "bytes", "start": a, "end": b, "n": i, "of": n} for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]


def _holds(fh, needle: bytes, size: int, window: int = 1 << 24) -> bool:
    """Whether the file holds ``needle`` (one byte): memchr over 16 MiB memory-mapped windows (no copy, and
    at most one window resident at a time; ~0.07 s per 300 MB from the page cache)."""
    import mmap

    for at in range(0, size, window):
        with mmap.mmap(fh.fileno(), min(window, size - at), access=mmap.ACCESS_READ, offset=at) as m:
            if m.find(needle) >= 0:
                return True
    return False


def _parquet_ranges(path, limit):
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    if md.num_row_groups <= 1:
        return [None]
    parts, groups, row0, rows, size = [], [], 0, 0, 0
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        groups.append(g)
        rows += group.num_rows
        size += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        if size >= limit:
            parts.append({"kind": "row_groups", "groups": groups, "row0": row0})
            row0, groups, rows, size = row0 + rows, [], 0, 0
    if groups:
        parts.append({"kind": "row_groups", "groups": groups, "row0": row0})
    return _numbered(parts) if len(parts) > 1 else [None]


def _avro_ranges(path, limit):
    from connectors.formats import avro_blocks

    blocks = avro_blocks(path)
    parts, first, row0, count = [], None, 0, 0
    for b in blocks:
        if first is None:
            first, count = b, 0
        count += b.count
        if b.end - first.offset >= limit:
            parts.append({"kind": "blocks", "offset": first.offset, "count": count, "row0": row0})
            row0, first = row0 + count, None
    if first is not None:
        parts.append({"kind": "blocks", "offset": first.offset, "count": count, "row0": row0})
    return _numbered(parts) if len(parts) > 1 else [None]


def _numbered(parts: list[dict]) -> list[dict]:
    return [{**p, "n": i, "of": len(parts)} for i, p in enumerate(parts)]


def first_row(part: dict | None) -> int:
    """The ORD row number of a range's first row (0 for a whole file)."""
    if not part:
        return 0
    return part["row0"] if "row0" in part else part["start"]
