"""Windowed aggregates over Kafka in drain mode (bounded runs of a stream source) stay whole across runs.

A drain reads what the topics hold now; a later run (drain or streaming) reads from the offsets this one
committed. If a drain committed every offset it read, a window that spans two runs would be recomputed by the
second run from its new events only, and its upsert would replace the complete row with that partial (issue 12:
`kafka-to-warehouse`, views 2 → 1). So a drain of a stream source feeding windowed targets works like streaming:

- the reader records (offset, event time) of every message it read (connectors.kafka.drain ``record``, with
  ``event_micros`` from here);
- after the loads committed, the frontier F = max(the targets' stored frontier, the latest event read) is stored
  in ``_flow_frontier`` (every window whose end + allowedLateness <= F is final: all its events were read), and
  per partition only the offsets before the first message whose window is not final at F are committed
  (connectors.kafka.drain ``settle``, from the connector's ``finish``): the next run re-reads the still-open windows from their first event and replaces their rows with
  the aggregate of every event (any function: count_distinct and avg too — no merge needed);
- rows of a later run whose window is already final at the stored frontier are late: counted in ``rowsLate``,
  written to the DLQ when there is one, never aggregated into a partial that would replace the final row
  (``DropClosedWindowsFn``; streaming runs do the same against their own watermark).
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa

from ir_compiler.lower.context import counter

def event_micros(event_time, table) -> list:
    """Each row's event time in µs (None where it has none): the drained Kafka reader records them
    (connectors.kafka.drain; a function from here, so the connector imports nothing of the compiler)."""
    if event_time is None or event_time.field not in table.column_names:
        return [None] * table.num_rows
    from ir_compiler.windows import to_timestamps
    return to_timestamps(table.column(event_time.field), event_time.format).cast(pa.int64()).to_pylist()


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
