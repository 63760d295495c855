"""Streaming lowering: the unbounded Kafka reader, Beam windowing/triggers for windowed set ops, per-pane commits
into the warehouse and the frontier that lets the reader commit offsets only for rows that are durably written.

Time model
- The reader stamps each Arrow table at the largest event time in it (``eventTime.field``, else the Kafka
  message timestamp). Its watermark is the SOURCE's, the same for every partition: the minimum over the
  partitions still reading of each one's progress, where a partition's progress is the earliest window start
  (the stamp its rows get downstream, ``earliest_stamps``) of the batch it emitted last, a partition that has
  not emitted yet holds it at the start of time (also one not started/assigned yet in this process, for up to
  ``UNSTARTED_HOLD_S``), and a partition that has caught up (read to its end offset) stops holding it (when all
  have caught up the source's watermark is the latest event read). Each partition's watermark estimator reports
  that one value (``SourceClock``): runners that combine SDF restrictions by keeping the last reported
  estimate (Prism: ``stage.estimatedOutput``) instead of the minimum can then never run ahead of a partition's
  unread earlier events, and runners that take the minimum (Flink, Dataflow) get the same answer.
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
- The reader commits to the consumer group, per partition, the offset up to which every message's windows are
  final (event time + window size + allowed lateness <= F). A restarted pipeline re-reads from there: windows
  that were not final are recomputed from all their rows (upsert replaces them), panes of windows that were
  final are skipped.
"""
from __future__ import annotations

import json
import sys
import threading
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import WatermarkEstimatorProvider
from apache_beam.transforms import trigger as tr
from apache_beam.transforms import window as bw
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from ir_compiler.lower.context import counter
from ir_compiler.models import duration_seconds
from ir_compiler.ops.common import ORD

ERRORS = "errors"
UNWINDOWED = -1  # retention of a stream with no window downstream: its sinks record the offsets they wrote
NEVER_FINAL = sys.maxsize // 4  # retention of session/global windows: never final while streaming
SHARD = "__fb_shard"
EVENT_US = "__fb_event_us"  # the event time the reader used (eventTime.field, else the message timestamp)
US = 1_000_000


# ---- Kafka: unbounded splittable DoFn ------------------------------------------------------------------
class UnsplittableTracker(OffsetRestrictionTracker):
    """Offsets [start, ∞) of one stream: the runner may checkpoint it (defer_remainder) but not split it — a
    split at half of ∞ would hand an unreadable offset range to a second reader."""

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder > 0:
            return None
        return super().try_split(fraction_of_remainder)


EARLIEST = Timestamp(seconds=-62135596800)  # 0001-01-01: the earliest time a protobuf Timestamp can carry


class HoldingWatermarks(WatermarkEstimatorProvider):
    """Manual watermark estimators that start at EARLIEST instead of "no watermark": a restriction that has not
    read yet HOLDS its source's watermark. A residual reported without a watermark holds nothing: Flink then
    let the reader stage's watermark reach the end of time while restrictions were still pending and ended the
    stage (after Beam's Impulse source shut down), dropping the rest of the topic (measured: 73,000 of 200,000
    events read, none loaded, job FINISHED)."""

    def initial_estimator_state(self, element, restriction):
        return EARLIEST

    def create_watermark_estimator(self, estimator_state):
        return ManualWatermarkEstimator(estimator_state)


class StreamRestrictions(RestrictionProvider):
    """An element → positions [start, ∞): a Kafka (topic, partition, start offset) starts at its offset, anything
    else (a Pub/Sub subscription: positions count pull rounds) at 0."""

    def initial_restriction(self, element):
        return OffsetRange(element[2] if isinstance(element, tuple) else 0, sys.maxsize)

    def create_tracker(self, restriction):
        return UnsplittableTracker(restriction)

    def restriction_size(self, element, restriction):
        return 1

    def split(self, element, restriction):
        yield restriction


_PENDING: dict[tuple, dict] = {}  # (run id, node id) -> {(topic, partition): [(offsets, event times µs)]}
_MAX_SEEN: dict[tuple, int] = {}  # (run id, node id, topic, partition) -> latest event time read (µs)
_LAST_DATA: dict[tuple, float] = {}
_COMMITTED: dict[tuple, int] = {}  # (run id, node id, topic, partition) -> last committed offset
_COMMIT_LOCK = threading.Lock()


UNSTARTED_HOLD_S = 120.0  # a partition never seen in this process holds the source this long (multi-process
# runners read it elsewhere and combine the restrictions' watermarks themselves)
_MIN_US = -(1 << 62)


class SourceClock:
    """Process-wide watermark of one stream source in one run (module doc, *Time model*)."""

    def __init__(self, parts=(), hold_unstarted=True):
        self.lock = threading.Lock()
        self.started = time.monotonic()
        # part -> [state, progress µs or None, latest event µs or None]; state: unstarted|reading|caught_up|absent
        self.parts = {tp: ["unstarted" if hold_unstarted else "absent", None, None] for tp in parts}
        self.value: int | None = None

    def update(self, tp, state=None, progress=None, latest=None) -> None:
        with self.lock:
            entry = self.parts.setdefault(tp, ["unstarted", None, None])
            if state is not None:
                entry[0] = state
            if progress is not None:
                entry[1] = progress if entry[1] is None else max(entry[1], progress)
            if latest is not None:
                entry[2] = latest if entry[2] is None else max(entry[2], latest)

    def progress_of(self, tp) -> int | None:
        with self.lock:
            entry = self.parts.get(tp)
            return entry[1] if entry else None

    def watermark(self) -> int | None:
        """The source's watermark now (monotone; None while nothing is known)."""
        holding, latest = [], []
        fresh = time.monotonic() - self.started < UNSTARTED_HOLD_S
        with self.lock:
            parts = [list(v) for v in self.parts.values()]
        for state, progress, last in parts:
            if state == "reading":
                holding.append(_MIN_US if progress is None else progress)
            elif state == "unstarted" and fresh:
                holding.append(_MIN_US)
            if last is not None:
                latest.append(last)
        now = min(holding) if holding else (max(latest) if latest else None)
        with self.lock:
            if now is not None and now > _MIN_US and (self.value is None or now > self.value):
                self.value = now
            return self.value

    def follow(self, wm) -> None:
        """Move a restriction's watermark estimator up to the source's watermark."""
        value = self.watermark()
        current = wm.current_watermark()
        if value is not None and (current is None or current.micros < value):
            wm.set_watermark(Timestamp(micros=value))


_CLOCKS: dict[tuple, SourceClock] = {}  # (run id, source node id) -> its clock in this process


def source_clock(run_key, parts=(), hold_unstarted=True) -> SourceClock:
    with _LOCK:
        clock = _CLOCKS.get(run_key)
        if clock is None:
            clock = _CLOCKS[run_key] = SourceClock(parts, hold_unstarted)
        return clock


def run_watermark(run_id: str) -> int | None:
    """An upper bound of every stream's watermark downstream in this run (the largest source watermark), or None
    when no source of the run reads in this process."""
    with _LOCK:
        clocks = [c for k, c in _CLOCKS.items() if k[0] == run_id]
    values = [v for v in (c.watermark() for c in clocks) if v is not None]
    return max(values) if values else None


def earliest_stamps(micros: np.ndarray, windows) -> np.ndarray:
    """Per event time (µs), the earliest timestamp its rows get downstream: the start of the first window it falls
    in (fixed: its window; sliding: the oldest window still containing it), itself for session windows or when
    no window is downstream."""
    if not windows:
        return micros
    out = micros.copy()
    for w in windows:
        if w.type == "fixed":
            size = int(duration_seconds(w.size) * US)
            out = np.minimum(out, micros - np.mod(micros, size))
        elif w.type == "sliding":
            size, period = int(duration_seconds(w.size) * US), int(duration_seconds(w.period) * US)
            last = micros - np.mod(micros, period)
            copies = max(1, -(-size // period))
            for k in range(copies):
                start = last - k * period
                out = np.where(start + size > micros, np.minimum(out, start), out)
    return out


def window_ends(micros: np.ndarray, window) -> np.ndarray | None:
    """Per event time, the end of the (proto-)window a per-row element is assigned to (None: never closes)."""
    if window.type == "session":
        return micros + int(duration_seconds(window.gap) * US)
    if window.type == "fixed":
        size = int(duration_seconds(window.size) * US)
        return micros - np.mod(micros, size) + size
    return None


def event_cap(run_id: str) -> int | None:
    """The smallest, over the partitions read in this run, of the latest event read: a frontier never passes it
    (when a reader stops, its watermark jumps to the end of time, but windows after its data are not final)."""
    with _LOCK:
        seen = [v for k, v in _MAX_SEEN.items() if k[0] == run_id]
    return min(seen) if seen else None


def forget_run(run_id: str) -> None:
    """Drop a finished run's process-wide reader state."""
    with _LOCK, _COMMIT_LOCK:
        for table in (_CLOCKS, _PENDING, _MAX_SEEN, _LAST_DATA, _COMMITTED):
            if table is _CLOCKS:
                _DRAINED.pop(run_id, None)
                _READERS_DONE.pop(run_id, None)
            for key in [k for k in table if k[0] == run_id]:
                del table[key]  # (run id, node id, topic, partition) -> when this worker last read a message
_LOCK = threading.Lock()


class StreamKafkaFn(beam.DoFn):
    """Reads one partition forever (or until ``idle_stop_s`` without messages): bounded polls, then
    defer_remainder. Emits Arrow tables (main) and undecodable rows (errors); commits offsets (see module doc)."""

    def __init__(self, node_id, cfg, schema, event_time, batch_rows, pipeline_id, warehouse_url, frontier_nodes,
                 retention_us, idle_stop_s=None, commit_every_s=5.0, run_id="", offset_nodes=(), windows=(),
                 parts=(), hold_unstarted=True):
        self.node_id, self.cfg, self.schema, self.event_time = node_id, cfg, schema, event_time
        self.windows = list(windows)  # every window downstream: where rows get re-stamped (earliest_stamps)
        self.parts, self.hold_unstarted = [tuple(p) for p in parts], hold_unstarted  # partitions existing at launch
        self.batch_rows, self.pipeline_id, self.warehouse_url = batch_rows, pipeline_id, warehouse_url
        self.frontier_nodes, self.retention_us = list(frontier_nodes), retention_us
        self.offset_nodes = list(offset_nodes)  # unwindowed targets: they record the offsets they wrote
        self.idle_stop_s, self.commit_every_s = idle_stop_s, commit_every_s
        self.run_key = (run_id, node_id)  # process-wide state is per run and source

    def setup(self):
        self.consumers, self.positions, self.known, self.checked = {}, {}, set(), {}
        self.last_commit = 0.0
        self.rows_in = counter(self.node_id, "rows_in")
        self.bad = counter(self.node_id, "rows_errored")
        self.clock = source_clock(self.run_key, self.parts, self.hold_unstarted)

    def teardown(self):
        for c in getattr(self, "consumers", {}).values():
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a consumer of a finished partition
                pass

    def _consumer(self, tp):
        from connectors.kafka import _consumer
        c = self.consumers.get(tp)
        if c is None:
            from kafka import TopicPartition
            c = self.consumers[tp] = _consumer(self.cfg)
            c.assign([TopicPartition(*tp)])
            self.positions[tp] = None
        return c

    def _exists(self, tp) -> bool:
        """Dynamic partition discovery: a slot for a partition that does not exist yet checks the topic's
        metadata every 10 s; once the partition is created it is read from its first offset."""
        if tp in self.known:
            return True
        now = time.monotonic()
        if now - self.checked.get(tp[0], -1e9) >= 10:
            self.checked[tp[0]] = now
            from connectors.kafka import _consumer
            try:
                c = _consumer(self.cfg)
                try:
                    self.known |= {(tp[0], p) for p in (c.partitions_for_topic(tp[0]) or ())}
                finally:
                    c.close()
            except Exception:  # noqa: BLE001 - metadata unavailable now: look again in 10 s
                pass
        return tp in self.known

    @beam.DoFn.unbounded_per_element()
    def process(self, element, tracker=beam.DoFn.RestrictionParam(StreamRestrictions()),
                wm=beam.DoFn.WatermarkEstimatorParam(HoldingWatermarks())):
        from kafka import TopicPartition

        topic, partition, _ = element
        tp, ktp = (topic, partition), TopicPartition(topic, partition)
        idle_key = (*self.run_key, *tp)
        _LAST_DATA.setdefault(idle_key, time.monotonic())
        messages, claimed_all, exists = [], True, self._exists(tp)
        if exists:
            consumer = self._consumer(tp)
            position = tracker.current_restriction().start
            if self.positions.get(tp) != position:  # a resumed or moved restriction: seek; else keep fetching
                consumer.seek(ktp, position)
            deadline = time.monotonic() + 1.0
            while claimed_all and time.monotonic() < deadline and len(messages) < self.batch_rows:
                got = consumer.poll(timeout_ms=200, max_records=self.batch_rows).get(ktp, [])
                if not got:
                    break
                for msg in got:
                    if not tracker.try_claim(msg.offset):  # the runner split the restriction: stop here
                        claimed_all = False
                        break
                    messages.append(msg)
            self.positions[tp] = messages[-1].offset + 1 if messages else self.positions.get(tp, position)
            if not messages:
                self.positions[tp] = None  # nothing read: seek again next time (the restriction is unchanged)
        if messages:
            _LAST_DATA[idle_key] = time.monotonic()
            yield from self._emit(tp, messages, wm)
        elif exists and self._at_end(tp, tracker.current_restriction().start):
            self.clock.update(tp, state="caught_up")  # an empty poll of a partition with a backlog is not
        elif exists:                                  # "caught up": it keeps holding the source
            self.clock.update(tp, state="reading")
        else:
            self.clock.update(tp, state="absent")  # a discovery slot: no partition yet
        self.clock.follow(wm)
        if not claimed_all:
            self.positions[tp] = None
            return
        self._maybe_commit(force=False)
        if self.idle_stop_s is not None and time.monotonic() - _LAST_DATA[idle_key] >= self.idle_stop_s \
                and self._at_end(tp, messages[-1].offset + 1 if messages else tracker.current_restriction().start):
            self._maybe_commit(force=True)
            tracker.try_claim(sys.maxsize)  # the restriction is done: this partition's stream ends here
            reader_done(self.run_key[0], (self.node_id, *tp))
            return
        tracker.defer_remainder(Duration.of(0 if messages else (0.2 if exists else 2.0)))

    def _at_end(self, tp, next_offset: int) -> bool:
        """Idle stop only once the partition is read to its end offset (a slow poll is not an idle topic)."""
        if tp not in self.known:
            return True
        from kafka import TopicPartition
        ktp = TopicPartition(*tp)
        consumer = self._consumer(tp)
        try:
            end = consumer.end_offsets([ktp]).get(ktp)
            if end is not None and next_offset < end and self.positions.get(tp) is not None:
                next_offset = max(next_offset, consumer.position(ktp))  # past transaction markers
        except Exception:  # noqa: BLE001 - the broker did not answer: not at the end (try again later)
            return False
        return end is None or next_offset >= end

    def _emit(self, tp, messages, wm):
        from connectors.kafka import decode
        from connectors.formats import _columns_table, _conform
        from ir_compiler.windows import to_timestamps

        rows, offsets, stamps, bad = [], [], [], []
        for msg in messages:
            try:
                rows.append(decode(self.cfg, msg))
                offsets.append(msg.offset)
                stamps.append(msg.timestamp * 1000 if msg.timestamp is not None and msg.timestamp >= 0 else None)
            except (ValueError, UnicodeDecodeError) as exc:
                raw = msg.value.decode("utf-8", "replace")[:2000] if msg.value else None
                bad.append((f"{msg.topic}[{msg.partition}]@{msg.offset}: {exc}",
                            json.dumps({"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                                        "raw": raw})))
        self.rows_in.inc(len(messages))
        table = _columns_table(rows) if rows else None
        if table is not None:
            table, bad_rows = _conform(table, self.schema, f"{tp[0]}[{tp[1]}]",
                                       lambda i: offsets[i] if i < len(offsets) else None)
            rejected = {b.line for b in bad_rows}
            for b in bad_rows:
                bad.append((f"{b.file}@{b.line}: {b.reason}", b.raw))
            keep = [i for i, o in enumerate(offsets) if o not in rejected]
            offsets = [offsets[i] for i in keep]
            stamps = [stamps[i] for i in keep]
        max_us = None
        if table is not None and table.num_rows:
            micros = np.array([s if s is not None else -1 for s in stamps], dtype=np.int64)
            if self.event_time is not None and self.event_time.field in table.column_names:
                et = to_timestamps(table.column(self.event_time.field), self.event_time.format).cast(pa.int64())
                micros = np.where(pc.is_valid(et).to_numpy(zero_copy_only=False),
                                  et.fill_null(-1).to_numpy(zero_copy_only=False), micros)
            max_us = int(micros.max())
            table = table.append_column(ORD, pa.array(np.array(offsets, dtype=np.int64) + self._ord_base(tp)))
            table = table.append_column(EVENT_US, pa.array(np.maximum(micros, 0)))
            yield bw.TimestampedValue(table, Timestamp(micros=max(max_us, 0)))
        if bad:
            self.bad.inc(len(bad))
            yield beam.pvalue.TaggedOutput(ERRORS, pa.table({
                "node_id": [self.node_id] * len(bad), "error": [b[0] for b in bad], "row": [b[1] for b in bad]}))
        done_at = {o: int(t) for o, t in zip(offsets, micros)} if max_us is not None else {}
        entry = (np.array([m.offset for m in messages], dtype=np.int64),  # undecodable messages count as done
                 np.array([done_at.get(m.offset, -1) for m in messages], dtype=np.int64))  # (they went to errors)
        if self.frontier_nodes and self.retention_us < NEVER_FINAL:  # only the frontier needs them
            with _LOCK:
                _PENDING.setdefault(self.run_key, {}).setdefault(tp, []).append(entry)
        if max_us is not None:
            self._advance(wm, tp, micros)

    def _ord_base(self, tp) -> int:
        """ORD = offset | partition << 40 | topic index << 52 (sinks of unwindowed streams decode it)."""
        from connectors.kafka import _topics
        return (tp[1] << 40) | (_topics(self.cfg).index(tp[0]) << 52)

    def _advance(self, wm, tp, micros):
        """This partition's progress: the earliest stamp of this batch's rows downstream (earlier ones than its
        progress so far are out of order: late if their windows have closed); remember the latest event."""
        with _LOCK:
            key = (*self.run_key, *tp)
            _MAX_SEEN[key] = max(_MAX_SEEN.get(key, -(1 << 62)), int(micros.max()))
        stamps = earliest_stamps(micros, self.windows)
        before = self.clock.progress_of(tp)
        on_time = stamps if before is None else stamps[stamps >= before]
        self.clock.update(tp, state="reading", progress=int(on_time.min()) if len(on_time) else None,
                          latest=int(micros.max()))

    def _maybe_commit(self, force: bool):
        """Commit, per partition, the offset below which every message is durably written: for windowed targets,
        every window it falls in is final at the frontier; for unwindowed ones, the target recorded it."""
        if not self.cfg.commitOffsets or not (self.frontier_nodes or self.offset_nodes):
            return
        now = time.monotonic()
        if not force and now - self.last_commit < self.commit_every_s:
            return
        self.last_commit = now
        from connectors.kafka import _topics
        from connectors.warehouse import open_warehouse
        from connectors.warehouse.streaming import read_frontier, read_written_offsets
        wh = open_warehouse(self.warehouse_url)
        limits = []
        try:
            if self.frontier_nodes:
                frontier = read_frontier(wh, self.pipeline_id, self.frontier_nodes)
                if frontier is None or self.retention_us >= NEVER_FINAL:
                    return
                limits.append(self._final_offsets(frontier))
            if self.offset_nodes:
                names = _topics(self.cfg)
                written = read_written_offsets(wh, self.pipeline_id, self.offset_nodes)
                limits.append({(names[t], p): o for (t, p), o in written.items() if t < len(names)})
        except Exception:  # noqa: BLE001 - the warehouse is busy or down: commit later (at-least-once holds)
            return
        keys = set.intersection(*(set(lim) for lim in limits)) if limits else set()
        offsets = {tp: min(lim[tp] for lim in limits) for tp in keys}
        if not offsets:
            return
        with _LOCK:  # forget what is committed
            pending = _PENDING.get(self.run_key, {})
            for tp, o in offsets.items():
                pending[tp] = [(a[a >= o], b[a >= o]) for a, b in pending.get(tp, []) if (a >= o).any()]
        from connectors.kafka import commit_offsets
        with _COMMIT_LOCK:
            offsets = {tp: o for tp, o in offsets.items() if o > _COMMITTED.get((*self.run_key, *tp), -1)}
            try:
                if offsets:
                    commit_offsets(self.cfg, offsets)
                    for tp, o in offsets.items():
                        _COMMITTED[(*self.run_key, *tp)] = o
            except Exception:  # noqa: BLE001 - a failed commit only means re-reading; never lose rows
                pass

    def _final_offsets(self, frontier) -> dict:
        """{(topic, partition): next offset} such that every message before it has all its windows final."""
        with _LOCK:
            snapshot = {tp: list(b) for tp, b in _PENDING.get(self.run_key, {}).items() if b}
        out = {}
        for tp, batches in snapshot.items():
            offs = np.concatenate([b[0] for b in batches])
            times = np.concatenate([b[1] for b in batches])
            open_ = np.nonzero(times + self.retention_us > frontier)[0]
            k = int(open_[0]) if len(open_) else len(offs)
            if k:
                out[tp] = int(offs[k - 1]) + 1
        return out


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
        from connectors.warehouse.base import LoadRequest
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
    """Streaming sinks: each pane/table becomes its own file (local_fs) or its messages (kafka_producer)."""

    def __init__(self, node, info, lateness_us):
        self.node, self.info, self.lateness_us = node, info, lateness_us

    def process(self, table, w=beam.DoFn.WindowParam):
        import os
        import uuid

        from ir_compiler.lower.targets import write_sink

        cfg = dict(self.node.config)
        if self.info.get("sink_root") and self.node.connector == "local_fs":
            cfg["path"] = os.path.join(self.info["sink_root"], self.node.id)
        prefix = f"{cfg.get('prefix') or self.info['pipeline_id'] + '-' + self.node.id}-{uuid.uuid4().hex[:12]}"
        n, _ = write_sink(self.node, cfg, table, prefix)
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


def lower_stream_target(pcoll, node, ctx, label, lineage_source, lateness_us, accumulating=True):
    info = {"run_dir": ctx.run_dir, "run_id": ctx.run_id, "pipeline_id": ctx.pipeline_id,
            "warehouse_url": ctx.warehouse_url, "lineage_source": lineage_source, "sink_root": ctx.sink_root}
    if node.connector == "pubsub_topic" and ctx.on_dataflow:  # Beam's own Pub/Sub sink on Dataflow
        from ir_compiler.loader import connector_config
        from ir_compiler.lower.pubsub import messages_of
        from connectors.pubsub import topic_path
        cfg = connector_config(node)
        return (pcoll | f"{label}/Messages" >> beam.FlatMap(messages_of, cfg)
                | f"{label}/WriteToPubSub" >> beam.io.WriteToPubSub(topic_path(cfg.topic), with_attributes=True))
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
_READERS_DONE: dict[str, set] = {}  # run id -> (source id, topic, partition) / (source id, subscription) ended


def reader_done(run_id: str, key: tuple) -> None:
    with _LOCK:
        _READERS_DONE.setdefault(run_id, set()).add(key)


def drained(run_id: str) -> tuple[set, int]:
    """(targets drained, readers ended) of a run in this process: once every reader has ended (idle stop) and
    every target's commit step has passed the end-of-time watermark, every row is loaded (the commit step
    finishes its bundle before it forwards that watermark) and the job may be stopped."""
    with _LOCK:
        return set(_DRAINED.get(run_id, ())), len(_READERS_DONE.get(run_id, ()))


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
