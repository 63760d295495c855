"""Event-time windows for aggregations on bounded inputs: every row gets the window(s) its event time falls in
(fixed: one, sliding: size/period), as ``window_start`` / ``window_end`` columns the aggregation groups by.

The event time is the ``eventTime.field`` of the nearest upstream source (``format``: ISO text by default, a
strptime pattern, ``epoch_s`` or ``epoch_ms``); it must still be a column where the window is applied."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.models import duration_seconds

WINDOW_COLUMNS = ("window_start", "window_end")


def event_time_of(graph, node_id: str):
    """The EventTime of the nearest upstream source that declares one (None if none does)."""
    best = None
    for up in sorted(graph.upstream(node_id)):
        node = graph.nodes[up]
        if node.kind == "source" and node.eventTime is not None and best is None:
            best = node.eventTime
    return best


def to_timestamps(col, fmt: str | None) -> pa.Array:
    """Event times as timestamp[us] (nulls where a value does not parse)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    if pa.types.is_timestamp(t):
        return col.cast(pa.timestamp("us", tz=t.tz)).cast(pa.timestamp("us")) if t.tz else col.cast(
            pa.timestamp("us"))
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us"))
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        factor = {"epoch_ms": 1000, "epoch_us": 1}.get(fmt, 1_000_000)  # → microseconds
        micros = pc.cast(pc.multiply(pc.cast(col, pa.float64()), float(factor)), pa.int64())
        return micros.cast(pa.timestamp("us"))
    text = col.cast(pa.string())
    if fmt and fmt not in ("epoch_s", "epoch_ms", "iso"):
        return pc.strptime(text, format=fmt, unit="us", error_is_null=True)
    try:
        return pc.cast(text, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None] * len(text), pa.timestamp("us"))


def assign_windows(table: pa.Table, window, field: str, fmt: str | None) -> pa.Table:
    """Rows with ``window_start``/``window_end``; sliding windows repeat a row once per window it is in.
    Rows without an event time get no window (null window columns)."""
    ts = to_timestamps(table.column(field), fmt)
    micros = ts.cast(pa.int64()).to_numpy(zero_copy_only=False).astype("float64")
    size = int(duration_seconds(window.size) * 1_000_000)
    period = int(duration_seconds(window.period) * 1_000_000) if window.type == "sliding" else size
    valid = ~np.isnan(micros)
    base = np.where(valid, micros, 0).astype(np.int64)
    last = base - np.mod(base, period)  # the latest window start at or before the event
    copies = max(1, -(-size // period))
    starts, rows = [], []
    for k in range(copies):
        start = last - k * period
        inside = valid & (base < start + size)
        rows.append(np.nonzero(inside)[0])
        starts.append(start[inside])
    missing = np.nonzero(~valid)[0]
    idx = np.concatenate(rows + [missing])
    start_us = np.concatenate(starts + [np.zeros(len(missing), dtype=np.int64)])
    out = table.take(pa.array(idx))
    mask = pa.array(np.concatenate([np.ones(len(idx) - len(missing), bool), np.zeros(len(missing), bool)]))
    start_col = pc.if_else(mask, pa.array(start_us).cast(pa.timestamp("us")), pa.scalar(None, pa.timestamp("us")))
    end_col = pc.if_else(mask, pa.array(start_us + size).cast(pa.timestamp("us")),
                         pa.scalar(None, pa.timestamp("us")))
    return out.append_column("window_start", start_col).append_column("window_end", end_col)
