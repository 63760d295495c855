"""Schema inference for remote files without downloading whole big files: a bounded prefix becomes a small local
file that :func:`connectors.formats.infer_schema` samples exactly as it samples a local one.

- a file no bigger than the sample budget (4 MB): downloaded whole;
- csv, tsv, jsonl (gzip too: decompressed as it streams): the first 4 MB of text, cut at the last line break;
- json: the first 4 MB + 1 byte (the JSON sampler stops at the cut);
- parquet: the footer and the first rows through a seekable remote file (range reads: s3, gcs, azure_blob, sftp;
  a store without them is downloaded whole), rewritten as a small Parquet file with the same Arrow types;
- avro: the header and the first blocks, streamed (the first 10,000 records, rewritten with the writer schema).
"""
from __future__ import annotations

import gzip
import os
import posixpath
import tempfile

from connectors.formats import SAMPLE_BYTES, SAMPLE_ROWS
from ir_compiler.errors import ConnectorError


def _gz(name: str, options: dict) -> bool:
    comp = (options.get("compression") or "auto").lower()
    return comp in ("gzip", "gz") or (comp == "auto" and name.endswith(".gz"))


def sample_copy(fs, info, fmt: str, options: dict, tmpdir: str) -> str:
    """A local file holding a bounded sample of the remote file ``info`` (text formats: uncompressed, so read it
    with ``compression`` none)."""
    name = posixpath.basename(info.path.rstrip("/")) or "file"
    local = os.path.join(tempfile.mkdtemp(prefix="sample-", dir=tmpdir), name.removesuffix(".gz"))
    if fmt in ("csv", "tsv", "jsonl", "json"):
        with fs.open_read(info.path) as raw:
            src = gzip.GzipFile(fileobj=raw) if _gz(name, options) else raw
            try:
                data = src.read(SAMPLE_BYTES + 1)
            except (OSError, EOFError) as exc:
                raise ConnectorError(f"cannot sample {fs.url(info.path)}: {exc}") from None
        if fmt != "json" and len(data) > SAMPLE_BYTES:
            data = data[:data.rfind(b"\n") + 1]
        with open(local, "wb") as out:
            out.write(data)
        return local
    if 0 <= info.size <= SAMPLE_BYTES:
        return fs.fetch_local(info.path, tmpdir, expect=info)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        with fs.open_read(info.path) as fh:
            if not fh.seekable():
                return fs.fetch_local(info.path, tmpdir, expect=info)
            pf = pq.ParquetFile(fh)
            batch = next(pf.iter_batches(batch_size=SAMPLE_ROWS), None)
            table = pa.Table.from_batches([batch]) if batch is not None else pf.schema_arrow.empty_table()
        pq.write_table(table, local)
        return local
    import fastavro
    with fs.open_read(info.path) as fh:
        reader = fastavro.reader(fh)
        records = []
        for rec in reader:
            records.append(rec)
            if len(records) >= SAMPLE_ROWS:
                break
        schema = reader.writer_schema
    with open(local, "wb") as out:
        fastavro.writer(out, schema, records)
    return local


def infer_remote_schema(fs, infos: list, fmt: str, options: dict):
    """The schema sampled from up to three of the listed files (None when none has a row)."""
    from connectors.formats import infer_schema
    with tempfile.TemporaryDirectory(prefix="fb-sample-") as tmp:
        paths = [sample_copy(fs, info, fmt, options, tmp) for info in infos[:3]]
        opts = {**options, "compression": "none"} if fmt in ("csv", "tsv", "jsonl", "json") else options
        return infer_schema(paths, fmt, opts) if paths else None
