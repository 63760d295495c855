"""Exactly once per file: the ``_flow_files`` ledger, and loads into one table that serialize.

``_flow_files`` has one row per (table, input file) loaded: the file's identity (SHA-256 of its bytes and its
size), where it came from (path, mtime), and which pipeline, target node, source node and run loaded it. The
row is inserted in the SAME transaction as the file's rows, so after a crash either both exist or neither: a
later run that finds a file in the ledger of a table does not load it into that table again.

Identity is the content, not the path: staging and success folders rename files (``a.csv`` → ``a.1.csv``),
and a crash can leave a file under any of those names. A new file with exactly the same bytes as one already
loaded into a table is therefore treated as that file (skipped, with a warning).

A load request carries ``ledger = {"files": [entry, ...], "by_file": source id | None, "run_id"}`` (entries:
``{source, index, hash, size, path, mtime}``; index -1 = a file not read because it is already loaded). With ``by_file`` the rows carry that source's file index in the
hidden ordinal (``index << 36``), so rows of files the table already holds are dropped one file at a time;
without it (aggregations or joins mix files) the load is all or nothing: skipped when the table holds every
file, refused when it holds only some.

Serialization: :func:`lock_table` takes a transaction-scoped advisory lock keyed by the table name on
PostgreSQL before the table is created or read, so two overlapping loads into one table run one after the
other (the result of some serial order). DuckDB has one writer per file (see ``duckdb.py``).
"""
from __future__ import annotations

import hashlib
import struct

import numpy as np
import pyarrow as pa

from ir_compiler.errors import LoadError

FILES = "_flow_files"
ORD = "__fb_ord"
FILE_SHIFT = 36  # ORD = file index << 36 | row number (ir_compiler/lower/sources.py)
_DDL_KEY = "flow-beam:ddl"


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (the same in every process)."""
    return struct.unpack(">q", hashlib.sha256(f"flow-beam:table:{name}".encode()).digest()[:8])[0]


def lock_table(wh, con, name: str) -> None:
    """Serialize writers of ``name`` (PostgreSQL; held until the transaction ends). No-op on DuckDB."""
    if wh.dialect == "postgres":
        wh.execute(con, f"SELECT pg_advisory_xact_lock({wh.ph})", [_lock_key(name)])


def create_if_missing(wh, con, name: str, ddl: str, schema: str | None = None) -> None:
    """Run ``ddl`` (a CREATE ... IF NOT EXISTS of ``name``) without racing another transaction doing the same:
    on PostgreSQL concurrent ``CREATE ... IF NOT EXISTS`` can fail with a duplicate key, so the creators take
    turns on an advisory lock keyed by the name (taken only when the object is missing)."""
    if wh.dialect == "postgres":
        if schema is None and wh.schema_in(con, name) is not None:
            return
        if schema is not None and wh.execute(con, "SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                             [schema]).fetchone():
            return
        wh.execute(con, f"SELECT pg_advisory_xact_lock({wh.ph})", [_lock_key(f"ddl:{name}")])
    wh.execute(con, ddl)


def ensure_ledger(wh, con) -> None:
    create_if_missing(wh, con, FILES, f"CREATE TABLE IF NOT EXISTS {wh.ident(FILES)} (table_name TEXT, "
                      f"file_hash TEXT, file_size BIGINT, path TEXT, mtime DOUBLE PRECISION, pipeline_id TEXT, "
                      f"node_id TEXT, source_id TEXT, run_id TEXT, rows_loaded BIGINT, loaded_at TIMESTAMP)")


def key(entry: dict) -> tuple[str, int]:
    return entry["hash"], int(entry["size"])


def held_in(wh, con, table: str, entries: list[dict]) -> dict[tuple[str, int], str]:
    """{(hash, size): run id} of the ``entries`` that ``table``'s ledger already holds."""
    if not entries or wh.schema_in(con, FILES) is None:
        return {}
    wanted = {key(e) for e in entries}
    hashes = sorted({h for h, _ in wanted})
    out = {}
    for i in range(0, len(hashes), 500):
        part = hashes[i:i + 500]
        rows = wh.execute(con, f"SELECT file_hash, file_size, run_id FROM {wh.ident(FILES)} WHERE table_name = "
                               f"{wh.ph} AND file_hash IN ({', '.join([wh.ph] * len(part))})", [table, *part]).fetchall()
        for h, size, run_id in rows:
            if (h, int(size)) in wanted:
                out[(h, int(size))] = run_id
    return out


def held(wh, tables: list[str], entries: list[dict]) -> dict[str, dict[tuple[str, int], str]]:
    """{table: {(hash, size): run id}} — which of ``entries`` each table holds (a read on its own)."""
    if not tables or not entries or wh.table_schema(FILES) is None:
        return {t: {} for t in tables}
    with wh.session() as con:
        return {t: held_in(wh, con, t, entries) for t in tables}


def file_indices(rows: pa.Table) -> np.ndarray:
    return rows.column(ORD).to_numpy() >> FILE_SHIFT


def apply(wh, con, req, rows: pa.Table, mode_fn):
    """Inside the load transaction: take the table's lock, drop the rows of files the table already holds, run
    the load mode, record the files loaded (same transaction)."""
    from connectors.warehouse.base import LoadReport

    lock_table(wh, con, req.table)
    led = getattr(req, "ledger", None)
    entries = list((led or {}).get("files") or [])
    if not entries:
        return mode_fn(wh, con, req, rows)
    ensure_ledger(wh, con)
    have = held_in(wh, con, req.table, entries)
    fresh = [e for e in entries if key(e) not in have and e["index"] >= 0]
    done = [e for e in entries if key(e) in have]
    names = ", ".join(sorted({e["path"].rsplit("/", 1)[-1] for e in done}))
    runs = ", ".join(sorted({have[key(e)][:8] for e in done}))
    if not fresh:
        return LoadReport(0, rows_skipped=rows.num_rows, warnings=[
            f"every input file ({names}) was already loaded into {req.table} by run {runs}; nothing loaded again"])
    skipped, per_file = 0, {}
    done = [e for e in done if e["index"] >= 0]  # index -1: not read in this run (already loaded), no rows
    if done:
        if not led.get("by_file") or ORD not in rows.column_names:
            raise LoadError(f"file(s) {names} were already loaded into {req.table} by run {runs}, but this target's "
                            f"rows combine several files (aggregation or join), so they cannot be left out one "
                            f"file at a time; nothing was written. Move those files out of the staging folder (they "
                            f"are loaded) and run again")
        drop = np.array(sorted({e["index"] for e in done}), dtype=np.int64)
        keep = ~np.isin(file_indices(rows), drop)
        skipped = rows.num_rows - int(keep.sum())
        rows = rows.filter(pa.array(keep))
    if led.get("by_file") and ORD in rows.column_names and rows.num_rows:
        idx, counts = np.unique(file_indices(rows), return_counts=True)
        per_file = dict(zip(idx.tolist(), counts.tolist()))
    report = mode_fn(wh, con, req, rows)
    _record(wh, con, req, fresh, per_file)
    from ir_compiler.faults import fault
    fault("before_commit")
    if done:
        report.rows_skipped += skipped
        report.warnings.append(f"{skipped} row(s) of file(s) {names} were left out: already loaded into "
                               f"{req.table} by run {runs}")
    return report


def _record(wh, con, req, entries: list[dict], per_file: dict) -> None:
    run_id = (req.ledger or {}).get("run_id") or (req.lineage or {}).get("runId") or ""
    for e in entries:
        rows = per_file.get(e["index"], 0) if per_file else None
        wh.execute(con, f"INSERT INTO {wh.ident(FILES)} VALUES ({', '.join([wh.ph] * 10)}, CURRENT_TIMESTAMP)",
                   [req.table, e["hash"], int(e["size"]), e["path"], float(e.get("mtime") or 0), req.pipeline_id,
                    req.node_id, e["source"], run_id, rows])

