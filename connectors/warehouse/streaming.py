"""Streaming loads: one transaction per window pane, made idempotent by a commit key, plus the frontier.

- ``_flow_commits``: one row per (pipeline, node, window, shard, pane index) written, in the pane's own
  transaction (a crash keeps both or neither). Accumulating panes: a pane whose index is not above the highest
  written one is stale or a replay and is skipped. Discarding panes (deltas): each index is applied once.
- ``_flow_frontier``: per (pipeline, node) the event time F up to which every window is final (its end plus the
  allowed lateness is at or before F, and its last pane is written). A replayed pane of a window that is already
  final is skipped, and the Kafka reader commits the offsets of messages whose windows are final.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import pyarrow as pa

from connectors.warehouse.base import LoadReport, LoadRequest
from ir_compiler.errors import LoadError

COMMITS = "_flow_commits"
FRONTIER = "_flow_frontier"
OFFSETS = "_flow_offsets"
_LOCK = threading.Lock()  # one streaming commit at a time per process (DuckDB allows one writer anyway)


def _serialize(wh, con) -> None:
    """Pane commits of every worker take turns (PostgreSQL: a transaction-scoped advisory lock), so the
    commit-key check and the write cannot interleave and first-time DDL does not race."""
    if wh.dialect == "postgres":
        wh.execute(con, "SELECT pg_advisory_xact_lock(7391827361)")


@contextmanager
def _transaction(wh, failure: str):
    """One streaming bookkeeping transaction (serialized, tables ensured); rolled back on any error, which
    becomes a LoadError starting with ``failure``."""
    with _LOCK, wh.session() as con:
        wh.begin(con)
        try:
            _serialize(wh, con)
            _ensure(wh, con)
            yield con
            wh.commit(con)
        except LoadError:
            wh.rollback(con)
            raise
        except wh.db_errors as exc:
            wh.rollback(con)
            raise LoadError(f"{failure}: {str(exc).strip().splitlines()[0]}") from None


def _ensure(wh, con) -> None:
    wh.execute(con, f"CREATE TABLE IF NOT EXISTS {wh.ident(COMMITS)} (pipeline_id TEXT, node_id TEXT, "
                    f"window_key TEXT, shard TEXT, pane_index BIGINT, rows_written BIGINT, updated_at TIMESTAMP)")
    wh.execute(con, f"CREATE TABLE IF NOT EXISTS {wh.ident(FRONTIER)} (pipeline_id TEXT, node_id TEXT, "
                    f"frontier_us BIGINT, updated_at TIMESTAMP)")
    wh.execute(con, f"CREATE TABLE IF NOT EXISTS {wh.ident(OFFSETS)} (pipeline_id TEXT, node_id TEXT, "
                    f"topic_index BIGINT, kafka_partition BIGINT, next_offset BIGINT)")


def load_pane(wh, req: LoadRequest, rows: pa.Table, window_key: str | None, shard: str, pane_index: int,
              window_final_us: int | None, offsets: dict | None = None, accumulating: bool = True) -> LoadReport:
    """Apply ``req.mode`` to ``rows`` once per (window, shard, pane), in one transaction with its commit key.

    ``window_final_us``: the event time at which this pane's window becomes final (end + allowed lateness);
    None for unwindowed rows. Returns rows_loaded 0 and rows_skipped n for a replayed pane."""
    return load_panes(wh, [(req, rows, window_key, shard, pane_index, window_final_us, offsets, accumulating)])[0]


def load_panes(wh, panes: list) -> list[LoadReport]:
    """Several panes (the arguments of ``load_pane`` each, applied in order) in ONE transaction: every pane with
    its commit key, all or none (a bundle's panes: one commit instead of one per pane; a replayed bundle is
    skipped pane by pane by the commit keys)."""
    if not panes:
        return []
    table = panes[0][0].table
    with _transaction(wh, f"pane load into {table} failed and was rolled back (the table is unchanged)") as con:
        return [_load_one(wh, con, *pane) for pane in panes]


def _load_one(wh, con, req, rows, window_key, shard, pane_index, window_final_us, offsets, accumulating):
    from connectors.warehouse.modes import MODES
    if True:
        if window_key is None:
            report = MODES[req.mode](wh, con, req, rows)
            _record_offsets(wh, con, req.pipeline_id, req.node_id, offsets or {})
            return report
        key = [req.pipeline_id, req.node_id, window_key, shard]
        where = f"pipeline_id = {wh.ph} AND node_id = {wh.ph} AND window_key = {wh.ph} AND shard = {wh.ph}"
        if accumulating:  # each pane holds the whole window: an older pane than one written is stale
            seen = wh.execute(con, f"SELECT max(pane_index) FROM {wh.ident(COMMITS)} WHERE {where}", key).fetchone()
            replay = seen is not None and seen[0] is not None and seen[0] >= pane_index
        else:  # discarding: every pane is a delta, applied exactly once whatever order they arrive in
            seen = wh.execute(con, f"SELECT 1 FROM {wh.ident(COMMITS)} WHERE {where} AND pane_index = {wh.ph}",
                              key + [pane_index]).fetchone()
            replay = seen is not None
        frontier = _frontier(wh, con, req.pipeline_id, req.node_id)
        final = window_final_us is not None and frontier is not None and window_final_us <= frontier
        if replay or final:  # nothing written: the transaction commits no change
            return LoadReport(0, rows_skipped=rows.num_rows)
        report = MODES[req.mode](wh, con, req, rows)
        wh.execute(con, f"INSERT INTO {wh.ident(COMMITS)} VALUES ({', '.join([wh.ph] * 6)}, CURRENT_TIMESTAMP)",
                   key + [pane_index, report.rows_loaded])
        return report


def _record_offsets(wh, con, pipeline_id, node_id, offsets: dict) -> None:
    """The next Kafka offset per (topic index, partition) of an unwindowed stream, in the rows' transaction."""
    for (topic, partition), nxt in offsets.items():
        key = [pipeline_id, node_id, topic, partition]
        where = f"pipeline_id = {wh.ph} AND node_id = {wh.ph} AND topic_index = {wh.ph} AND kafka_partition = {wh.ph}"
        row = wh.execute(con, f"SELECT next_offset FROM {wh.ident(OFFSETS)} WHERE {where}", key).fetchone()
        if row is not None and row[0] >= nxt:
            continue
        wh.execute(con, f"DELETE FROM {wh.ident(OFFSETS)} WHERE {where}", key)
        wh.execute(con, f"INSERT INTO {wh.ident(OFFSETS)} VALUES ({', '.join([wh.ph] * 5)})", key + [nxt])


def record_offsets(wh, pipeline_id: str, node_id: str, offsets: dict) -> None:
    """After a sink (file, Kafka, Pub/Sub) wrote an unwindowed table: remember its offsets (at-least-once)."""
    if not offsets:
        return
    with _transaction(wh, f"cannot record the offsets written by {node_id}") as con:
        _record_offsets(wh, con, pipeline_id, node_id, offsets)


def read_written_offsets(wh, pipeline_id: str, node_ids: list[str]) -> dict[tuple[int, int], int]:
    """{(topic index, partition): next offset} written by every one of ``node_ids`` (the smallest)."""
    per_node = []
    with _LOCK, wh.session() as con:
        if wh.schema_in(con, OFFSETS) is None:
            return {}
        for node_id in node_ids:
            rows = wh.execute(con, f"SELECT topic_index, kafka_partition, next_offset FROM {wh.ident(OFFSETS)} "
                                   f"WHERE pipeline_id = {wh.ph} AND node_id = {wh.ph}", [pipeline_id, node_id]
                              ).fetchall()
            per_node.append({(t, p): o for t, p, o in rows})
    if not per_node:
        return {}
    keys = set.intersection(*(set(d) for d in per_node))
    return {k: min(d[k] for d in per_node) for k in keys}


def highest_written_offset(wh, pipeline_id: str, topic_index: int, partition: int) -> int | None:
    """The largest next offset any target of the pipeline recorded for one partition (None: none yet)."""
    with _LOCK, wh.session() as con:
        if wh.schema_in(con, OFFSETS) is None:
            return None
        row = wh.execute(con, f"SELECT max(next_offset) FROM {wh.ident(OFFSETS)} WHERE pipeline_id = {wh.ph} AND "
                              f"topic_index = {wh.ph} AND kafka_partition = {wh.ph}",
                         [pipeline_id, topic_index, partition]).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _frontier(wh, con, pipeline_id: str, node_id: str) -> int | None:
    row = wh.execute(con, f"SELECT frontier_us FROM {wh.ident(FRONTIER)} WHERE pipeline_id = {wh.ph} AND "
                          f"node_id = {wh.ph}", [pipeline_id, node_id]).fetchone()
    return None if row is None else row[0]


def advance_frontier(wh, pipeline_id: str, node_id: str, frontier_us: int) -> None:
    """Record that every window final at or before ``frontier_us`` is written (never moves backwards)."""
    with _transaction(wh, "cannot record the streaming frontier") as con:
        old = _frontier(wh, con, pipeline_id, node_id)
        if old is not None and old >= frontier_us:
            return
        wh.execute(con, f"DELETE FROM {wh.ident(FRONTIER)} WHERE pipeline_id = {wh.ph} AND node_id = {wh.ph}",
                   [pipeline_id, node_id])
        wh.execute(con, f"INSERT INTO {wh.ident(FRONTIER)} VALUES ({wh.ph}, {wh.ph}, {wh.ph}, CURRENT_TIMESTAMP)",
                   [pipeline_id, node_id, frontier_us])


def read_frontier(wh, pipeline_id: str, node_ids: list[str]) -> int | None:
    """The smallest frontier over ``node_ids`` (None until every one of them has one)."""
    out = None
    with _LOCK, wh.session() as con:
        if wh.schema_in(con, FRONTIER) is None:
            return None
        for node_id in node_ids:
            f = _frontier(wh, con, pipeline_id, node_id)
            if f is None:
                return None
            out = f if out is None else min(out, f)
    return out
