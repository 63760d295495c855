"""Windowed aggregates over Kafka in drain mode (bounded runs of a stream source) stay whole across runs.

A drain reads what the topics hold now; a later run (drain or streaming) reads from the offsets this one
committed. If a drain committed every offset it read, a window that spans two runs would be recomputed by the
second run from its new events only, and its upsert would replace the complete row with that partial (issue 12:
`kafka-to-warehouse`, views 2 → 1). So a drain of a stream source feeding windowed targets works like streaming:

- the reader records (offset, event time) of every message it read (``record``);
- after the loads committed, the frontier F = max(the targets' stored frontier, the latest event read) is stored
  in ``_flow_frontier`` (every window whose end + allowedLateness <= F is final: all its events were read), and
  per partition only the offsets before the first message whose window is not final at F are committed
  (``settle``): the next run re-reads the still-open windows from their first event and replaces their rows with
  the aggregate of every event (any function: count_distinct and avg too — no merge needed);
- rows of a later run whose window is already final at the stored frontier are late: counted in ``rowsLate``,
  written to the DLQ when there is one, never aggregated into a partial that would replace the final row
  (``DropClosedWindowsFn``; streaming runs do the same against their own watermark).
"""
from __future__ import annotations

import io
import json

import apache_beam as beam
import numpy as np
import pyarrow as pa

from ir_compiler.lower.context import counter

FOLDER = "kafka_events"


def record(run_dir: str, node_id: str, rng, offsets: list[int], events_us: list[int], meta: dict) -> None:
    """The (offset, event µs) of one offset range's messages (-1 µs: no event time / undecodable: final)."""
    from ir_compiler.lower import runfs
    buf = io.BytesIO()
    np.savez(buf, offsets=np.array(offsets, dtype=np.int64), events=np.array(events_us, dtype=np.int64))
    name = f"{node_id}~{rng.topic}~{rng.partition}~{rng.start}"
    runfs.write_bytes(runfs.join(run_dir, FOLDER, name + ".npz"), buf.getvalue())
    runfs.write_bytes(runfs.join(run_dir, FOLDER, node_id + ".json"), json.dumps(meta).encode())


def settle(run_dir: str, warehouse_url: str, pipeline_id: str, node_id: str, ranges: list) -> list:
    """After the loads committed: store the frontier and return the ranges to commit (module doc)."""
    from connectors.kafka import OffsetRange
    from connectors.warehouse import open_warehouse
    from connectors.warehouse.streaming import advance_frontier, read_frontier
    from ir_compiler.lower import runfs

    folder = runfs.join(run_dir, FOLDER)
    names = runfs.list_names(folder)
    if f"{node_id}.json" not in names:
        return ranges  # no windowed target downstream: commit everything read
    meta = json.loads(runfs.read_bytes(runfs.join(folder, f"{node_id}.json")))
    retention, targets = int(meta["retention_us"]), list(meta["targets"])
    read = {}
    for name in names:
        parts = name[:-4].split("~") if name.endswith(".npz") else []
        if len(parts) == 4 and parts[0] == node_id:
            data = np.load(io.BytesIO(runfs.read_bytes(runfs.join(folder, name))))
            read[(parts[1], int(parts[2]), int(parts[3]))] = (data["offsets"], data["events"])
    latest = max((int(e.max()) for _, e in read.values() if len(e)), default=None)
    wh = open_warehouse(warehouse_url)
    stored = read_frontier(wh, pipeline_id, targets)
    frontier = max(x for x in (stored, latest) if x is not None) if (stored, latest) != (None, None) else None
    if frontier is None:
        return []  # nothing with an event time was read: commit nothing new
    out = []
    for r in ranges:
        offsets, events = read.get((r.topic, r.partition, r.start), (np.array([], np.int64), np.array([], np.int64)))
        open_ = np.nonzero(events + retention > frontier)[0]
        end = int(offsets[open_[0]]) if len(open_) else r.end
        if end > r.start:
            out.append(OffsetRange(r.topic, r.partition, r.start, end))
    for target in targets:
        advance_frontier(wh, pipeline_id, target, frontier)
    return out


def stored_frontier(warehouse_url: str, pipeline_id: str, targets: list[str]) -> int | None:
    """The frontier the targets recorded (None when any has none yet, or the warehouse cannot say)."""
    from connectors.warehouse import open_warehouse
    from connectors.warehouse.streaming import read_frontier
    try:
        return read_frontier(open_warehouse(warehouse_url), pipeline_id, targets)
    except Exception:  # noqa: BLE001 - no bookkeeping tables yet
        return None


class DropClosedWindowsFn(beam.DoFn):
    """Rows (with window_start/window_end) whose window is final at the stored frontier: late (module doc)."""

    def __init__(self, node_id, window, frontier_us, to_errors):
        from ir_compiler.lower.streaming import US, lateness_s
        self.node_id, self.frontier_us, self.to_errors = node_id, frontier_us, to_errors
        self.lateness_us = int(lateness_s(window) * US)

    def process(self, table):
        from ir_compiler.lower.streaming import ERRORS
        ends = table.column("window_end").cast(pa.int64()).fill_null(np.iinfo(np.int64).max // 2)
        late = ends.to_numpy(zero_copy_only=False) + self.lateness_us <= self.frontier_us
        if not late.any():
            yield table
            return
        counter(self.node_id, "rows_late").inc(int(late.sum()))
        yield table.filter(pa.array(~late))
        if self.to_errors:
            from ir_compiler.lower.context import to_error_table
            from ir_compiler.ops.common import ERROR
            bad = table.filter(pa.array(late)).drop_columns(["window_start", "window_end"])
            reason = "late: its window is already final in the table (a run before this one closed it)"
            bad = bad.append_column(ERROR, pa.array([reason] * bad.num_rows, pa.string()))
            yield beam.pvalue.TaggedOutput(ERRORS, to_error_table(self.node_id, bad))
