"""Streaming lowering, the targets' side: Beam windowing/triggers for windowed set ops, per-pane commits into the
warehouse and the frontier that lets a stream source's reader commit its positions only for rows that are durably
written. The readers themselves (restrictions, the source-wide watermark, positions and commits) are the
connectors' (:mod:`connectors.streams`); they learn about the targets only through the
:class:`~connectors.streams.StreamPlan` the compiler hands them (``TargetProgress`` below).

Time model (the readers' half: :mod:`connectors.streams`)
- Every table a reader emits is stamped at the largest event time in it, and its source's watermark never runs
  ahead of an unread partition's earlier events.
- Late rows: a part whose window end + allowedLateness is at or before the source's watermark when it is
  windowed would be dropped by Beam; it is taken out first, counted as ``rows_late`` (``rowsLate`` in the run
  result) and, when the pipeline has a DLQ, written there with the reason. Every other row is on time by
  construction (its stamp is never behind the watermark), so Beam drops nothing.
- A windowed aggregate/deduplicate splits each table by window (``window_start``/``window_end`` columns, as in
  batch), stamps every part at its window start and lets Beam window it: fixed → FixedWindows, sliding →
  ``_StartWindows`` (the window is [stamp, stamp + size)), global → GlobalWindows (a trigger is required),
  session → per-row elements keyed by the group key in Sessions(gap). Panes are aggregated per window in one
  step (partials are combined per input table first).
- Without a ``trigger``: one pane when the watermark passes the window end, one more per late row within
  ``allowedLateness``, ACCUMULATING, so every pane carries the whole window so far and upserts converge.

Exactly-once into tables
- Each pane is loaded in one transaction with its commit key (pipeline, node, window, shard, pane index) in
  ``_flow_commits``; a replayed pane (index not above the recorded one) is skipped.
- After a target, ``_FrontierFn`` (event-time timers in the global window) records in ``_flow_frontier`` the
  event time F such that every window with end + allowedLateness <= F has had its last pane written.
- The reader commits, per partition, the position up to which every message's windows are final (event time +
  window size + allowed lateness <= F). A restarted pipeline re-reads from there: windows that were not final are
  recomputed from all their rows (upsert replaces them), panes of windows that were final are skipped.
"""
from __future__ import annotations

import json
import threading

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.transforms import trigger as tr
from apache_beam.transforms import window as bw
from apache_beam.utils.timestamp import Duration, Timestamp

from connectors.streams import (EVENT_US, NEVER_FINAL, UNWINDOWED, US, WindowShape, event_cap, forget,  # noqa: F401
                                last_reader_call, readers_done, run_watermark)
from ir_compiler.lower.context import counter
from ir_compiler.models import duration_seconds
from ir_compiler.ops.common import ORD

ERRORS = "errors"
SHARD = "__fb_shard"


# ---- what the targets tell a stream source's reader (connectors.streams.StreamPlan) ------------------------
class TargetProgress:
    """The targets downstream of one stream source, as its reader may ask about them at run time (handed to the
    reader in its StreamPlan; connectors never import the compiler): the frontier of the windowed ones and the
    order counters the unwindowed ones recorded."""

    def __init__(self, pipeline_id: str, warehouse_url: str, windowed, plain):
        self.pipeline_id, self.warehouse_url = pipeline_id, warehouse_url
        self.windowed, self.plain = list(windowed), list(plain)

    def frontier(self) -> int | None:
        """µs: every window final by then is written by every windowed target (None: not known yet)."""
        from connectors.warehouse import open_warehouse
        from connectors.warehouse.streaming import read_frontier
        return read_frontier(open_warehouse(self.warehouse_url), self.pipeline_id, self.windowed)

    def written(self) -> dict[tuple[int, int], int]:
        """{(topic index, partition): next counter} every unwindowed target recorded."""
        from connectors.warehouse import open_warehouse
        from connectors.warehouse.streaming import read_written_offsets
        return read_written_offsets(open_warehouse(self.warehouse_url), self.pipeline_id, self.plain)

    def highest_written(self, topic_index: int, partition: int) -> int | None:
        """The largest next counter any target of the pipeline recorded for a partition."""
        from connectors.warehouse import open_warehouse
        from connectors.warehouse.streaming import highest_written_offset
        return highest_written_offset(open_warehouse(self.warehouse_url), self.pipeline_id, topic_index, partition)


def window_shape(window) -> WindowShape:
    """An IR window as the reader sees it (µs)."""
    size = int(duration_seconds(window.size) * US) if getattr(window, "size", None) else 0
    period = int(duration_seconds(window.period) * US) if getattr(window, "period", None) else 0
    return WindowShape(window.type, size, period)


def window_ends(micros: np.ndarray, window) -> np.ndarray | None:
    """Per event time, the end of the (proto-)window a per-row element is assigned to (None: never closes)."""
    if window.type == "session":
        return micros + int(duration_seconds(window.gap) * US)
    if window.type == "fixed":
        size = int(duration_seconds(window.size) * US)
        return micros - np.mod(micros, size) + size
    return None


def forget_run(run_id: str) -> None:
    """Drop a finished run's process-wide state (its readers' and its targets')."""
    forget(run_id)
    with _LOCK:
        _DRAINED.pop(run_id, None)


_LOCK = threading.Lock()


# ---- windows -----------------------------------------------------------------------------------------
class StartWindows(bw.NonMergingWindowFn):
    """An element stamped at its window's start belongs to [stamp, stamp + size) (sliding windows, whose rows
    were already copied once per window they fall in)."""

    def __init__(self, size_s: float):
        self.size = Duration.of(size_s)

    def assign(self, context):
        return [bw.IntervalWindow(context.timestamp, context.timestamp + self.size)]

    def get_window_coder(self):
        from apache_beam.coders.coders import IntervalWindowCoder
        return IntervalWindowCoder()


def window_fn(window):
    if window.type == "fixed":
        return bw.FixedWindows(duration_seconds(window.size))
    if window.type == "sliding":
        return StartWindows(duration_seconds(window.size))
    if window.type == "session":
        return bw.Sessions(duration_seconds(window.gap))
    return bw.GlobalWindows()


def trigger_of(window):
    """(trigger, accumulation mode) of a window (module doc: the default is accumulating with late panes)."""
    t = window.trigger
    acc = tr.AccumulationMode.ACCUMULATING
    if t is None and window.type == "session":  # Beam's default trigger (a pane per late row); Prism runs
        return tr.DefaultTrigger(), acc         # no other trigger on merging windows (apache/beam#31438)
    if t is None:
        late = tr.AfterCount(1) if window.allowedLateness else None
        return tr.AfterWatermark(late=late), acc
    if t.accumulation == "discarding":
        acc = tr.AccumulationMode.DISCARDING
    if t.type == "after_watermark":
        early = tr.AfterProcessingTime(duration_seconds(t.earlyFirings)) if t.earlyFirings else None
        late = None
        if t.lateFirings:
            late = tr.AfterCount(1 if t.lateFirings is True else int(t.lateFirings))
        elif window.allowedLateness:
            late = tr.AfterCount(1)
        return tr.AfterWatermark(early=early, late=late), acc
    if t.type in ("after_count", "repeatedly_after_count"):
        return tr.Repeatedly(tr.AfterCount(t.count or 1)), acc
    return tr.Repeatedly(tr.AfterProcessingTime(duration_seconds(t.delay) if t.delay else 1)), acc


def retention_us(window) -> int:
    """How far past a row's event time its last window can end, plus allowed lateness."""
    lateness = int(duration_seconds(window.allowedLateness) * US) if window.allowedLateness else 0
    if window.type in ("fixed", "sliding"):
        return int(duration_seconds(window.size) * US) + lateness
    return NEVER_FINAL  # session (grows while rows arrive) or global: never final while streaming  # global: never final while streaming


def final_shape(window) -> tuple[int, int, int] | None:
    """(size, period, allowed lateness) in µs of a fixed (period = size) or sliding window; None for a window that
    is never final while streaming (session, global)."""
    if window.type not in ("fixed", "sliding"):
        return None
    size = int(duration_seconds(window.size) * US)
    period = int(duration_seconds(window.period) * US) if window.type == "sliding" and window.period else size
    lateness = int(duration_seconds(window.allowedLateness) * US) if window.allowedLateness else 0
    return size, period, lateness


def lateness_s(window) -> float:
    return duration_seconds(window.allowedLateness) if window.allowedLateness else 0.0


def _per_row(window) -> bool:
    return window.type == "session" or (window.trigger is not None and window.trigger.type in (
        "after_count", "repeatedly_after_count"))


def _event_field(table, event_time):
    """(column, format) holding each row's event time: the reader's column when present."""
    if EVENT_US in table.column_names:
        return EVENT_US, "epoch_us"
    if event_time is None:
        raise ValueError("a window needs event times: set eventTime {field, format} on the source")
    return event_time.field, event_time.format


class _Late:
    """Rows whose window closed before they arrived (module doc, *Time model*): counted as ``rows_late`` and,
    when the pipeline has a DLQ, sent to the errors output with the reason."""

    def __init__(self, node_id, window, run_id, to_errors):
        self.node_id, self.run_id, self.to_errors = node_id, run_id, to_errors
        self.lateness_us = int(lateness_s(window) * US)

    def split(self, table: pa.Table, ends_us: np.ndarray):
        """(on-time rows, error table of late rows or None); ``ends_us``: each row's window end."""
        if not self.run_id or not table.num_rows:
            return table, None
        mark = run_watermark(self.run_id)
        if mark is None:
            return table, None
        late = ends_us + self.lateness_us <= mark
        if not late.any():
            return table, None
        counter(self.node_id, "rows_late").inc(int(late.sum()))
        keep = table.filter(pa.array(~late))
        if not self.to_errors:
            return keep, None
        from ir_compiler.lower.context import to_error_table
        from ir_compiler.ops.common import ERROR
        bad = table.filter(pa.array(late)).drop_columns([c for c in ("window_start", "window_end")
                                                         if c in table.column_names])
        when = Timestamp(micros=mark).to_rfc3339()
        reason = f"late: its window closed (window end + allowedLateness <= watermark {when})"
        bad = bad.append_column(ERROR, pa.array([reason] * bad.num_rows, pa.string()))
        return keep, to_error_table(self.node_id, bad)


class _SplitByWindowFn(beam.DoFn):
    """Table → one part per window (window_start/window_end columns), stamped at the window start; rows
    without an event time leave through errors, late rows through ``_Late``."""

    def __init__(self, node_id, window, event_time, late=None):
        self.node_id, self.window, self.event_time, self.late = node_id, window, event_time, late

    def process(self, table):
        from ir_compiler.windows import assign_windows
        if self.window.type == "global":
            yield table
            return
        out = assign_windows(table, self.window, *_event_field(table, self.event_time))
        missing = pc.is_null(out.column("window_start"))
        if pc.any(missing).as_py():
            from ir_compiler.lower.context import to_error_table
            from ir_compiler.ops.common import ERROR
            bad = out.filter(missing).drop_columns(["window_start", "window_end"])
            bad = bad.append_column(ERROR, pa.array(["no event time"] * bad.num_rows, pa.string()))
            counter(self.node_id, "rows_errored").inc(bad.num_rows)
            yield beam.pvalue.TaggedOutput(ERRORS, to_error_table(self.node_id, bad))
            out = out.filter(pc.invert(missing))
        if self.late is not None:
            ends = out.column("window_end").cast(pa.int64()).to_numpy(zero_copy_only=False)
            out, late = self.late.split(out, ends)
            if late is not None:
                yield beam.pvalue.TaggedOutput(ERRORS, late)
        starts = out.column("window_start").cast(pa.int64())
        for start in pc.unique(starts).to_pylist():
            part = out.filter(pc.equal(starts, start))
            yield bw.TimestampedValue(part, Timestamp(micros=start))


class _RowsFn(beam.DoFn):
    """Table → one element per row, keyed by the group key and stamped at its event time (session windows
    and count triggers, where Beam must see rows)."""

    def __init__(self, node_id, keys, event_time, window=None, late=None):
        self.node_id, self.keys, self.event_time, self.window, self.late = node_id, keys, event_time, window, late

    def process(self, table):
        from ir_compiler.windows import to_timestamps
        name, fmt = _event_field(table, self.event_time)
        micros = to_timestamps(table.column(name), fmt).cast(pa.int64())
        if self.late is not None and self.window is not None:
            valid = pc.is_valid(micros)
            known = micros.fill_null(0).to_numpy(zero_copy_only=False)
            ends = window_ends(known, self.window)
            if ends is not None:
                ends = np.where(valid.to_numpy(zero_copy_only=False), ends, np.iinfo(np.int64).max // 2)
                table, late = self.late.split(table, ends)
                if late is not None:
                    yield beam.pvalue.TaggedOutput(ERRORS, late)
                micros = to_timestamps(table.column(name), fmt).cast(pa.int64())
        micros = micros.to_pylist()
        keys = table.select(self.keys).to_pylist() if self.keys else [{}] * table.num_rows
        for i, row in enumerate(table.to_pylist()):
            if micros[i] is None:
                continue
            yield bw.TimestampedValue((json.dumps(keys[i], default=str, sort_keys=True), row),
                                      Timestamp(micros=micros[i]))


class _PaneFn(beam.DoFn):
    """(key, [tables or rows]) of one pane → the finished table with window columns and the shard column."""

    def __init__(self, node_id, op, finish, window_columns):
        self.node_id, self.op, self.finish, self.window_columns = node_id, op, finish, window_columns

    def process(self, item, w=beam.DoFn.WindowParam):
        key, parts = item
        parts = list(parts)
        if parts and isinstance(parts[0], dict):
            table = pa.Table.from_pylist(parts)
        else:
            parts = [p for p in parts if p.num_rows]
            if not parts:
                return
            table = pa.concat_tables(parts, promote_options="permissive")
        out = self.finish(self.op, table)
        if out.num_rows == 0:
            return
        if self.window_columns and isinstance(w, bw.IntervalWindow):
            rest = [c for c in out.column_names if c not in ("window_start", "window_end")]
            cols = {name: pa.array([v.micros] * out.num_rows, pa.int64()).cast(pa.timestamp("us"))
                    for name, v in (("window_start", w.start), ("window_end", w.end))}
            out = pa.table({**cols, **{c: out.column(c) for c in rest}})
        yield out.append_column(SHARD, pa.array([str(key)] * out.num_rows, pa.string()))


def _whole(partial, final):
    return lambda op, table: final(op, partial(op, table))


def lower_windowed(pcoll, node_id, op, window, event_time, label, partial, final, window_columns=True, ctx=None):
    """A windowed set op on an unbounded input → (panes, errors). ``partial(op, table)`` pre-combines one
    input table, ``final(op, table)`` finishes a pane from the concatenated partials."""
    errors = []
    finish = final
    trig, acc = trigger_of(window)
    lateness = lateness_s(window)
    late = _Late(node_id, window, ctx.run_id, getattr(ctx, "dlq_enabled", False)) if ctx is not None else None
    if _per_row(window):
        keys = list(getattr(op, "groupBy", None) or getattr(op, "keys", None) or [])
        rows = pcoll | f"{label}/Rows" >> beam.ParDo(_RowsFn(node_id, keys, event_time, window, late)).with_outputs(
            ERRORS, main="main")
        errors.append(rows[ERRORS])
        elems = rows.main
        finish = _whole(partial, final)
    else:
        split = pcoll | f"{label}/SplitByWindow" >> beam.ParDo(
            _SplitByWindowFn(node_id, window, event_time, late)).with_outputs(ERRORS, main="main")
        errors.append(split[ERRORS])
        elems = split.main
        elems = elems | f"{label}/Partial" >> beam.Map(lambda t: partial(op, t))
        elems = elems | f"{label}/Key" >> beam.Map(lambda t: ("0", t))
    windowed = elems | f"{label}/Window" >> beam.WindowInto(window_fn(window), trigger=trig, accumulation_mode=acc,
                                                            allowed_lateness=Duration.of(lateness))
    panes = (windowed | f"{label}/GroupPane" >> beam.GroupByKey()
             | f"{label}/FinishPane" >> beam.ParDo(_PaneFn(node_id, op, finish, window_columns)))
    if ctx is not None and not ctx.streaming:  # a bounded run (session windows): the batch loads are global
        panes = (panes | f"{label}/DropShard" >> beam.Map(lambda t: t.drop_columns([SHARD]))
                 | f"{label}/Unwindow" >> beam.WindowInto(bw.GlobalWindows()))
    return panes, errors


# ---- targets: per-pane commit and the frontier ---------------------------------------------------------
class PaneCommitFn(beam.DoFn):
    """Loads window panes with their commit keys, the panes of a bundle in one transaction (per-pane transactions
    dominated streaming time: one commit each), and each table of an unwindowed stream in its own transaction at
    once (its source may ack/commit right after handing it over); yields ('frontier', finalization µs)."""

    def __init__(self, node, info, lateness_us, accumulating=True):
        self.node, self.info, self.lateness_us, self.accumulating = node, info, lateness_us, accumulating

    def setup(self):
        from connectors.warehouse import open_warehouse
        self.wh = open_warehouse(self.info["warehouse_url"])
        if hasattr(self.wh, "pin"):
            self.wh.pin()
        self.loaded = counter(self.node.id, "rows_loaded")
        self.skipped = counter(self.node.id, "rows_replay_skipped")
        self.reported = False

    def start_bundle(self):
        self.pending = []  # (pane arguments, window, timestamp, final µs): committed together in finish_bundle

    def process(self, table, w=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam, ts=beam.DoFn.TimestampParam):
        from connectors.warehouse.base import LoadRequest, mark_json
        from ir_compiler.ops.common import strip_internal

        node, info = self.node, self.info
        shard = "0"
        if SHARD in table.column_names and table.num_rows:
            shard = table.column(SHARD)[0].as_py()
        shard = f"{info['run_id']}/{shard}"  # pane indexes restart per run; finality across runs is the frontier
        rows = table.drop_columns([SHARD]) if SHARD in table.column_names else table
        if ORD in rows.column_names:
            rows = rows.sort_by([(ORD, "ascending")])
        interval = isinstance(w, bw.IntervalWindow)
        windowed = interval or pane.timing != 3  # 3 = UNKNOWN: no trigger fired it (an unwindowed stream)
        window_key = f"{w.start.micros}:{w.end.micros}" if interval else "global"
        final_us = w.end.micros + self.lateness_us if interval else None  # global panes are never final
        lineage = {"runId": info["run_id"], "pipelineId": info["pipeline_id"],
                   "sourceNodeId": info["lineage_source"]} if node.lineage else None
        req = LoadRequest(table=node.schema_, mode=node.loadMode, files=[], schema=rows.schema,
                          keys=node.upsert_keys, pipeline_id=info["pipeline_id"], node_id=node.id, lineage=lineage)
        body = strip_internal(rows) if node.loadMode != "cdc_mirror" else rows
        body = mark_json(body, info.get("json"))  # `json` columns: JSON / JSONB when the table is created
        if windowed:
            args = (req, body, window_key, shard, pane.index, final_us, None, self.accumulating)
        else:  # an unwindowed stream: each table in one transaction with the Kafka offsets it carried
            args = (req, body, None, shard, 0, None, written_offsets(rows), True)
        self.pending.append((args, w, ts, final_us))
        if not windowed or len(self.pending) >= PANES_PER_COMMIT:
            yield from self._commit()

    def finish_bundle(self):
        yield from self._commit()

    def _commit(self):
        """The bundle's panes in one transaction (each with its commit key); then their frontier elements."""
        from apache_beam.utils.windowed_value import WindowedValue

        from connectors.warehouse.streaming import load_panes
        from ir_compiler.lower.context import write_report
        pending, self.pending = self.pending, []
        if not pending:
            return
        for report in load_panes(self.wh, [p[0] for p in pending]):
            self.loaded.inc(report.rows_loaded)
            if report.rows_skipped:
                self.skipped.inc(report.rows_skipped)
        if not self.reported:  # rows loaded come from the metrics; the report only marks the target loaded
            node = self.node
            write_report(self.info["run_dir"], "targets", node.id, {"status": "loaded", "rowsLoaded": 0,
                                                                    "warnings": [], "table": node.schema_,
                                                                    "streaming": True})
            self.reported = True
        for _, w, ts, final_us in pending:
            if final_us is not None:  # unwindowed rows are settled by their offsets (no event-time timers)
                yield WindowedValue(("frontier", min(final_us, _END_US)), ts, [w])


PANES_PER_COMMIT = 256  # a bundle's panes are committed together, at most this many per transaction


_END_US = bw.GlobalWindow().max_timestamp().micros  # timers past the global window's end never fire


def written_offsets(rows: pa.Table) -> dict[tuple[int, int], int]:
    """{(topic index, partition): next offset} of the Kafka rows in a table (from ORD)."""
    if ORD not in rows.column_names or not rows.num_rows:
        return {}
    ords = rows.column(ORD).to_numpy()
    keys = ords >> 40
    out = {}
    for k in np.unique(keys):
        top = int(ords[keys == k].max() & ((1 << 40) - 1))
        out[(int(k) >> 12, int(k) & 0xFFF)] = top + 1
    return out


class FrontierFn(beam.DoFn):
    """Keyed ('frontier', finalization µs) in the global window: an event-time timer per pending finalization
    time; when it fires at T every window final by T is written, so T is recorded as the frontier."""

    from apache_beam.coders import VarIntCoder as _VarInt
    from apache_beam.transforms.userstate import BagStateSpec, TimerSpec, on_timer
    PENDING = BagStateSpec("pending", _VarInt())
    TIMER = TimerSpec("final", beam.TimeDomain.WATERMARK)

    def __init__(self, pipeline_id, node_id, warehouse_url, run_id=""):
        self.pipeline_id, self.node_id, self.warehouse_url, self.run_id = pipeline_id, node_id, warehouse_url, run_id

    def process(self, item, pending=beam.DoFn.StateParam(PENDING), timer=beam.DoFn.TimerParam(TIMER)):
        key, final_us = item
        if key != "frontier":  # the end marker's element
            return
        times = set(pending.read())
        if final_us not in times:
            pending.add(final_us)
            times.add(final_us)
        timer.set(Timestamp(micros=min(times)))

    @on_timer(TIMER)
    def fire(self, ts=beam.DoFn.TimestampParam, pending=beam.DoFn.StateParam(PENDING),
             timer=beam.DoFn.TimerParam(TIMER)):
        from connectors.warehouse import open_warehouse
        from connectors.warehouse.streaming import advance_frontier

        now = ts.micros
        left = sorted({t for t in pending.read() if t > now})
        pending.clear()
        for t in left:
            pending.add(t)
        cap = event_cap(self.run_id)
        advance_frontier(open_warehouse(self.warehouse_url), self.pipeline_id, self.node_id,
                         now if cap is None else min(now, cap))
        if left:
            timer.set(Timestamp(micros=left[0]))


class SinkEachFn(beam.DoFn):
    """Streaming sinks: each pane/table becomes its own file (a file sink) or its messages (a message sink)."""

    def __init__(self, node, info, lateness_us):
        self.node, self.info, self.lateness_us = node, info, lateness_us

    def process(self, table, w=beam.DoFn.WindowParam):
        import os
        import uuid

        from ir_compiler.lower.targets import write_sink

        cfg = dict(self.node.config)
        if self.info.get("sink_root"):  # embedded tests: a file sink (remote too) writes under the sink root
            cfg["path"] = os.path.join(self.info["sink_root"], self.node.id)
            cfg["_local"] = True  # never to a real bucket or server
        prefix = f"{cfg.get('prefix') or self.info['pipeline_id'] + '-' + self.node.id}-{uuid.uuid4().hex[:12]}"
        from connectors.warehouse.base import mark_json
        n, _ = write_sink(self.node, cfg, mark_json(table, self.info.get("json")), prefix)
        counter(self.node.id, "rows_loaded").inc(n)
        from ir_compiler.lower.context import write_report
        write_report(self.info["run_dir"], "targets", self.node.id, {"status": "loaded", "rowsLoaded": 0,
                                                                     "warnings": [], "streaming": True})
        if isinstance(w, bw.IntervalWindow):
            yield "frontier", min(w.end.micros + self.lateness_us, _END_US)
        elif self.info.get("warehouse_url"):
            from connectors.warehouse import open_warehouse
            from connectors.warehouse.streaming import record_offsets
            record_offsets(open_warehouse(self.info["warehouse_url"]), self.info["pipeline_id"], self.node.id,
                           written_offsets(table))


def lower_stream_target(pcoll, node, ctx, label, lineage_source, lateness_us, accumulating=True, json_columns=()):
    from ir_compiler.lower.targets import sink_of
    sink = sink_of(node)
    info = {"run_dir": ctx.run_dir, "run_id": ctx.run_id, "pipeline_id": ctx.pipeline_id,
            "warehouse_url": ctx.warehouse_url, "lineage_source": lineage_source,
            "sink_root": ctx.sink_root if sink is not None and sink.capabilities.writes_files else None,
            "json": list(json_columns)}
    if sink is not None and ctx.on_dataflow and sink.capabilities.beam_write_on_dataflow:
        return sink.beam_write(pcoll, node, ctx, label)  # the sink's own Beam IO on Dataflow
    fn = SinkEachFn(node, info, lateness_us) if node.connector else PaneCommitFn(node, info, lateness_us,
                                                                                  accumulating)
    acks = pcoll | f"{label}/CommitPanes" >> beam.ParDo(fn)
    start = pcoll.pipeline | f"{label}/EndStart" >> beam.Create([("end", 0)])  # one element for the end timer
    acks = ((acks | f"{label}/GlobalWindow" >> beam.WindowInto(bw.GlobalWindows()), start)
            | f"{label}/WithEnd" >> beam.Flatten())
    _ = acks | f"{label}/EndMarker" >> beam.ParDo(EndMarkerFn(ctx.run_id, node.id))
    return acks | f"{label}/Frontier" >> beam.ParDo(FrontierFn(ctx.pipeline_id, node.id, ctx.warehouse_url,
                                                                 ctx.run_id))


_DRAINED: dict[str, set] = {}  # run id -> targets whose input watermark reached the end of time (this process)


def reader_stalled_for(run_id: str) -> float:
    """Seconds since a reader of the run (in this process) was last invoked; 0 before the first call."""
    import time
    last = last_reader_call(run_id)
    return 0.0 if last is None else time.monotonic() - last


def drained(run_id: str) -> tuple[set, int]:
    """(targets drained, readers ended) of a run in this process: once every reader has ended (idle stop) and
    every target's commit step has passed the end-of-time watermark, every row is loaded (the commit step
    finishes its bundle before it forwards that watermark) and the job may be stopped."""
    with _LOCK:
        done = set(_DRAINED.get(run_id, ()))
    return done, readers_done(run_id)


class EndMarkerFn(beam.DoFn):
    """After a target's commit step: an event-time timer at the end of time marks the target drained
    (``drained``); an idle-stopped run on Flink, whose Impulse sources never finish with checkpointing on,
    then stops the job instead of letting sources shut down early (see flow_beam/runners.py)."""

    from apache_beam.transforms.userstate import TimerSpec, on_timer
    END = TimerSpec("end", beam.TimeDomain.WATERMARK)

    def __init__(self, run_id, node_id):
        self.run_id, self.node_id = run_id, node_id

    def process(self, item, timer=beam.DoFn.TimerParam(END)):
        if item[0] == "end":
            timer.set(bw.GlobalWindow().max_timestamp())

    @on_timer(END)
    def at_end(self):
        with _LOCK:
            _DRAINED.setdefault(self.run_id, set()).add(self.node_id)


class AppendEachFn(beam.DoFn):
    """Streaming quarantine/DLQ: each table appended in its own transaction as it arrives."""

    def __init__(self, table_name, kind, node_id, info):
        self.table_name, self.kind, self.node_id, self.info = table_name, kind, node_id, info

    def setup(self):
        from ir_compiler.lower.targets import _AppendFn
        self.append = _AppendFn(self.table_name, self.kind, self.node_id, self.info)

    def process(self, table):
        self.append.process([table])
        return []
