"""The unbounded reader every stream source shares (Kafka, Pub/Sub, Kinesis, Pulsar): one splittable DoFn over a
small *partitioned log* interface, the source-wide watermark, and the per-run reader state.

A connector supplies a :class:`LogSpec` (picklable: its config and what it planned) that opens one
:class:`PartitionLog` per :class:`Partition` on a worker. A log reads batches of
:class:`~connectors.codecs.Record` whose ``position`` grows along the partition (Kafka: the offset; Kinesis: the
sequence number; Pulsar: ledger, entry and batch index packed; Pub/Sub: a pull counter) and the spec commits
positions (Kafka: group offsets; Kinesis: checkpoints; Pulsar: cumulative acknowledgements; Pub/Sub: acks of
single messages). What the targets downstream know (their frontier, the offsets they wrote) reaches the reader
through the :class:`StreamPlan` the compiler hands to ``Source.read`` (``ctx.stream_plans``); this module never
imports the compiler.

Time model
- The reader stamps each Arrow table at the largest event time in it (``eventTime.field``, else the log's own
  time). Its watermark is the SOURCE's, the same for every partition: the minimum over the partitions still
  reading of each one's progress, where a partition's progress is the earliest window start (the stamp its rows
  get downstream, ``earliest_stamps``) of the batch it emitted last; a partition that has not emitted yet holds it
  at the start of time (also one not started in this process, for up to ``UNSTARTED_HOLD_S``), and a partition
  that has caught up stops holding it (when all have caught up the source's watermark is the latest event read).
  Each partition's watermark estimator reports that one value (``SourceClock``): runners that combine SDF
  restrictions by keeping the last reported estimate (Prism) instead of the minimum can then never run ahead of a
  partition's unread earlier events, and runners that take the minimum (Flink, Dataflow) get the same answer.
- Restrictions are positions [start, stop) of one partition, checkpointed with ``defer_remainder`` after each
  bounded read and never split in two (a split at half of ∞ would hand an unreadable range to a second reader).

Commits (at-least-once end to end)
- With windowed targets, a record is durable once every window it falls in is final at the targets' frontier
  (event time + retention <= frontier); with unwindowed targets, once every target recorded (through the hidden
  order column) that it wrote the record. A cumulative log commits, per partition, up to the record before the
  first one not durable yet; a log of single acknowledgements (Pub/Sub) acks exactly the durable ones. A log that
  ``settle_on_emit`` (Pub/Sub without windows) acks what it handed downstream right after the hand-over.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms import window as bw
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from connectors.codecs import EVENT_US, Record, decode_records  # noqa: F401 (EVENT_US, Record: re-exported)
from connectors.runtime import ERRORS, counter

US = 1_000_000
UNWINDOWED = -1  # retention of a stream with no window downstream: its targets record the offsets they wrote
NEVER_FINAL = sys.maxsize // 4  # retention of session/global windows: never final while streaming
COUNTER_BITS = 40  # ORD = topic index << 52 | partition index << 40 | offset (or a per-partition record counter)
BIG_STOP = 1 << 200  # past every position of logs whose positions exceed int64 (Kinesis, Pulsar)
EARLIEST = Timestamp(seconds=-62135596800)  # 0001-01-01: the earliest time a protobuf Timestamp can carry
UNSTARTED_HOLD_S = 120.0  # a partition never seen in this process holds the source this long (multi-process
# runners read it elsewhere and combine the restrictions' watermarks themselves)
_MIN_US = -(1 << 62)


# ---- what the compiler hands a reader ------------------------------------------------------------------
@dataclass(frozen=True)
class WindowShape:
    """A window downstream of the source, in µs (``type``: fixed, sliding, session or global)."""

    type: str
    size_us: int = 0
    period_us: int = 0


def final_at(times, shapes):
    """Per event time (µs, numpy int64), when its LAST window becomes final: that window's end plus its allowed
    lateness, the latest over ``shapes`` (final_shape). A read position may be committed once this is at or before
    the frontier — exactly when a re-read row of it would be late, so a re-read never finds a falsely late row
    (event time + size, which this replaced, held fixed-window rows back past their window's end)."""
    out = np.full(len(times), np.iinfo(np.int64).min, dtype=np.int64)
    for size, period, lateness in shapes:
        out = np.maximum(out, (times // period) * period + size + lateness)
    return out


@dataclass(frozen=True)
class StreamPlan:
    """What the targets downstream of a stream source tell its reader (built by the compiler).

    ``targets`` answers, at run time, ``frontier()`` (µs: every window final by then is written, or None),
    ``written()`` ({(topic index, partition): next order counter} every unwindowed target recorded) and
    ``highest_written(topic_index, partition)`` (the largest counter any target of the pipeline recorded)."""

    windowed: tuple[str, ...] = ()  # targets whose frontier gates the commits
    plain: tuple[str, ...] = ()  # unwindowed targets: they record the order counters they wrote
    retention_us: int = UNWINDOWED  # how long after a row's event time its last window can become final
    windows: tuple[WindowShape, ...] = ()  # every window downstream: where rows get re-stamped
    targets: Any = None
    commit_every_s: float = 5.0
    final_shapes: tuple = ()  # (size, period, lateness) µs of the fixed/sliding windows: when a row is final


@dataclass(frozen=True)
class Partition:
    """A streaming reader's element: one partition and where it starts."""

    name: str  # unique within the source: "orders[3]", a shard id, a partition topic, a subscription
    topic_index: int  # for the order column (< 2048)
    index: int  # partition number (< 4096)
    start: int = 0  # the restriction's first position (0: the log's configured start)
    info: tuple = ()  # what the connector needs to open it (topic and partition, a start mode ...)
    stop: int = sys.maxsize  # past every position (BIG_STOP for logs with larger positions)


class PartitionLog:
    """One partition being read (a worker-side object, shared by the DoFn instances of a process)."""

    def read(self, start: int, limit: int) -> tuple[list[Record], bool | None]:
        """Records from position ``start`` on (at most ``limit``) and whether the partition is caught up now
        (None: it does not exist yet, e.g. a slot for a partition added later)."""
        raise NotImplementedError

    def rewind(self, records: list[Record]) -> bool:
        """The runner split the restriction: ``records`` were read but not claimed. True when the log gave them
        back itself; False: the reader closes the log and opens it again at the restriction's next start."""
        return False

    def close(self) -> None:
        pass


class LogSpec:
    """What a connector gives the reader: opens partitions and commits positions (picklable)."""

    cumulative = True  # commit() gets the last durable position; False: the list of durable positions
    ord_by_position = False  # the order column counts positions (Kafka offsets) instead of records read
    settle_on_emit = False  # without windowed targets: commit what was handed downstream right away

    def open(self, part: Partition) -> PartitionLog:
        raise NotImplementedError

    def commits(self) -> bool:
        """Whether positions are committed at all (a config may turn it off)."""
        return True

    def commit(self, batch: dict[str, tuple[Partition, PartitionLog | None, Any]]):
        """Commit ``{name: (partition, its open log or None, last position | [positions])}``; returns the names
        committed when not all of them were (None: all)."""
        raise NotImplementedError


def ord_base(topic_index: int, index: int) -> int:
    return (topic_index << 52) | ((index & 0xFFF) << COUNTER_BITS)


def earliest_stamps(micros: np.ndarray, windows) -> np.ndarray:
    """Per event time (µs), the earliest timestamp its rows get downstream: the start of the first window it falls
    in (fixed: its window; sliding: the oldest window still containing it), itself for session windows or when
    no window is downstream. ``windows``: :class:`WindowShape`."""
    if not windows:
        return micros
    out = micros.copy()
    for w in windows:
        if w.type == "fixed":
            out = np.minimum(out, micros - np.mod(micros, w.size_us))
        elif w.type == "sliding":
            last = micros - np.mod(micros, w.period_us)
            for k in range(max(1, -(-w.size_us // w.period_us))):
                start = last - k * w.period_us
                out = np.where(start + w.size_us > micros, np.minimum(out, start), out)
    return out


# ---- restrictions and watermarks -----------------------------------------------------------------------
class Unsplittable(OffsetRestrictionTracker):
    """Positions [start, stop) of one partition: the runner may checkpoint it (defer_remainder) but not split it."""

    def try_split(self, fraction_of_remainder):
        return None if fraction_of_remainder > 0 else super().try_split(fraction_of_remainder)


class Positions(RestrictionProvider):
    def initial_restriction(self, part):
        return OffsetRange(part.start, part.stop)

    def create_tracker(self, restriction):
        return Unsplittable(restriction)

    def restriction_size(self, part, restriction):
        return 1

    def split(self, part, restriction):
        yield restriction


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


class SourceClock:
    """Process-wide watermark of one stream source in one run (module doc, *Time model*)."""

    def __init__(self, parts=(), hold_unstarted=True):
        self.lock = threading.Lock()
        self.started = time.monotonic()
        # part -> [state, progress µs or None, latest event µs or None]; state: unstarted|reading|caught_up|absent
        self.parts = {p: ["unstarted" if hold_unstarted else "absent", None, None] for p in parts}
        self.value: int | None = None

    def update(self, part, state=None, progress=None, latest=None) -> None:
        with self.lock:
            entry = self.parts.setdefault(part, ["unstarted", None, None])
            if state is not None:
                entry[0] = state
            if progress is not None:
                entry[1] = progress if entry[1] is None else max(entry[1], progress)
            if latest is not None:
                entry[2] = latest if entry[2] is None else max(entry[2], latest)

    def progress_of(self, part) -> int | None:
        with self.lock:
            entry = self.parts.get(part)
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


# ---- per-run reader state (process-wide) ---------------------------------------------------------------
_LOCK = threading.Lock()
_CLOCKS: dict[tuple, SourceClock] = {}  # (run id, source node id) -> its clock in this process
_LOGS: dict[tuple, PartitionLog] = {}  # (run, node, partition) -> the open partition (shared by DoFn instances)
_PARTS: dict[tuple, Partition] = {}  # (run, node, partition) -> the partition (its log may be closed)
_PENDING: dict[tuple, dict] = {}  # (run, node) -> {partition: [(positions, counters, event µs)]} not committed
_COUNTERS: dict[tuple, int] = {}  # (run, node, partition) -> next record counter (logs not ordered by position)
_MAX_SEEN: dict[tuple, int] = {}  # (run, node, partition) -> latest event time read (µs)
_LAST_DATA: dict[tuple, float] = {}  # (run, node, partition) -> when this process last read a record of it
_COMMITTED: dict[tuple, int] = {}  # (run, node, partition) -> last committed position
_READERS_DONE: dict[str, set] = {}  # run id -> (source id, partition) whose reader ended (idle stop)
_LAST_CALL: dict[str, float] = {}  # run id -> when a reader of the run was last invoked in this process


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


def event_cap(run_id: str) -> int | None:
    """The smallest, over the partitions read in this run, of the latest event read: a frontier never passes it
    (when a reader stops, its watermark jumps to the end of time, but windows after its data are not final)."""
    with _LOCK:
        seen = [v for k, v in _MAX_SEEN.items() if k[0] == run_id]
    return min(seen) if seen else None


def reader_done(run_id: str, key: tuple) -> None:
    with _LOCK:
        _READERS_DONE.setdefault(run_id, set()).add(key)


def last_reader_call(run_id: str) -> float | None:
    """time.monotonic() of the last call of any reader of a run in this process (None: none yet)."""
    with _LOCK:
        return _LAST_CALL.get(run_id)


def readers_done(run_id: str) -> int:
    """How many readers of a run ended in this process (idle stop)."""
    with _LOCK:
        return len(_READERS_DONE.get(run_id, ()))


def forget(run_id: str, node_id: str | None = None) -> None:
    """After a run (the driver, or a worker of this process): close the partitions of one source (every source
    when ``node_id`` is None) that are still open (a cancelled or failed job) and drop their state."""
    def mine(key):
        return key[0] == run_id and (node_id is None or key[1] == node_id)

    with _LOCK:
        logs = [log for key, log in _LOGS.items() if mine(key)]
        for table in (_CLOCKS, _LOGS, _PARTS, _PENDING, _COUNTERS, _MAX_SEEN, _LAST_DATA, _COMMITTED):
            for key in [k for k in table if mine(k)]:
                del table[key]
        if node_id is None:
            _READERS_DONE.pop(run_id, None)
            _LAST_CALL.pop(run_id, None)
    for log in logs:
        try:
            log.close()
        except Exception:  # noqa: BLE001 - closing a partition of a finished run
            pass


# ---- the reader ----------------------------------------------------------------------------------------
def stream_read(p, node, ctx, spec: LogSpec, parts: list[Partition], schema, label: str,
                create_label: str = "Partitions", launch: list[str] | None = None):
    """{main, errors} of a streaming read: one unbounded splittable reader per partition. ``launch``: the
    partitions that exist now (default: all of ``parts``; the others are slots for partitions added later)."""
    plan = getattr(ctx, "stream_plans", {}).get(node.id) or StreamPlan()
    fn = StreamReadFn(node.id, node.config, spec, schema, node.eventTime, ctx.batch_rows, plan, ctx.idle_stop_s,
                      ctx.run_id, [q.name for q in parts] if launch is None else launch, not ctx.on_dataflow)
    read = (p | f"{node.id}/{create_label}" >> beam.Create(parts)
            | f"{node.id}/{label}" >> beam.ParDo(fn).with_outputs(ERRORS, main="main"))
    return {"main": read.main, ERRORS: read[ERRORS]}


class StreamReadFn(beam.DoFn):
    """Reads one partition forever (or until ``idle_stop_s`` without records once caught up): bounded reads, then
    defer_remainder. Emits Arrow tables (main) and error rows (errors); commits positions (module doc)."""

    def __init__(self, node_id, cfg, spec, schema, event_time, batch_rows, plan: StreamPlan, idle_stop_s, run_id,
                 launch=(), hold_unstarted=True):
        self.node_id, self.cfg, self.spec, self.schema, self.event_time = node_id, cfg, spec, schema, event_time
        self.batch_rows, self.plan, self.idle_stop_s = batch_rows, plan, idle_stop_s
        self.launch, self.hold_unstarted = list(launch), hold_unstarted
        self.run_key = (run_id, node_id)  # process-wide state is per run and source

    def setup(self):
        self.last_commit = 0.0
        self.opened: dict = {}  # (run, node, partition) -> the log this instance opened
        self.rows_in = counter(self.node_id, "rows_in")
        self.bad = counter(self.node_id, "rows_errored")
        self.clock = source_clock(self.run_key, self.launch, self.hold_unstarted)

    def teardown(self):
        for key, log in getattr(self, "opened", {}).items():
            self._close(key, log)

    def _gated(self) -> bool:
        """Whether read positions wait for the targets before they are committed."""
        plan = self.plan
        if not self.spec.commits() or not (plan.windowed or plan.plain):
            return False
        if self.spec.settle_on_emit and not plan.windowed:
            return False  # committed at the hand-over
        return not (plan.windowed and plan.retention_us >= NEVER_FINAL)

    def _log(self, part: Partition) -> PartitionLog:
        key = (*self.run_key, part.name)
        with _LOCK:
            log = _LOGS.get(key)
        if log is None:
            log = self.spec.open(part)
            start = 0 if self.spec.ord_by_position else self._counter_start(part)
            with _LOCK:
                _LOGS[key], _PARTS[key] = log, part
                _COUNTERS.setdefault(key, start)
            self.opened[key] = log
        return log

    def _close(self, key, only=None) -> None:
        """Close a partition's log (``only``: if it is still that one)."""
        with _LOCK:
            log = _LOGS.get(key)
            if log is None or (only is not None and log is not only):
                return
            del _LOGS[key]
        if log is not None:
            try:
                log.close()  # what is not committed stays with the log (redelivered / re-read next run)
            except Exception:  # noqa: BLE001 - closing a finished partition
                pass

    def _counter_start(self, part) -> int:
        """Unwindowed targets record the counters they wrote (never moving back): a partition's counter continues
        above the highest one any target of this pipeline recorded."""
        if not self.plan.plain or self.plan.targets is None:
            return 0
        top = self.plan.targets.highest_written(part.topic_index, part.index & 0xFFF)
        return int(top) if top is not None else 0

    @beam.DoFn.unbounded_per_element()
    def process(self, part, tracker=beam.DoFn.RestrictionParam(Positions()),
                wm=beam.DoFn.WatermarkEstimatorParam(HoldingWatermarks())):
        key = (*self.run_key, part.name)
        now = time.monotonic()
        with _LOCK:
            _LAST_DATA.setdefault(key, now)
            _LAST_CALL[self.run_key[0]] = now  # the runner still resumes this run's readers (a stall watchdog)
        log = self._log(part)
        start = tracker.current_restriction().start
        records, caught_up = log.read(start, self.batch_rows)
        claimed, rest = [], []
        for i, r in enumerate(records):
            if r.position < start:
                continue  # redelivered after a reconnect: already read in this job
            if not tracker.try_claim(r.position):  # the runner split the restriction: stop here
                rest = records[i:]
                break
            claimed.append(r)
        if claimed:
            with _LOCK:
                _LAST_DATA[key] = time.monotonic()
            yield from self._emit(part, log, claimed)
        else:  # an empty read of a partition with a backlog is not "caught up": it keeps holding the source
            self.clock.update(part.name, state="absent" if caught_up is None else
                              "caught_up" if caught_up else "reading")
        self.clock.follow(wm)
        if rest:
            if not log.rewind(rest):
                self._close(key)
            return
        self._maybe_commit(force=False)
        with _LOCK:
            idle = time.monotonic() - _LAST_DATA[key]
        if self.idle_stop_s is not None and idle >= self.idle_stop_s and not claimed and caught_up is not False:
            self._maybe_commit(force=True)
            tracker.try_claim(part.stop)  # the restriction is done: this partition's stream ends here
            reader_done(self.run_key[0], (self.node_id, part.name))
            self._close(key)
            return
        tracker.defer_remainder(Duration.of(0 if claimed else (2.0 if caught_up is None else 0.2)))

    def _emit(self, part, log, records):
        key = (*self.run_key, part.name)
        if self.spec.ord_by_position:
            counters = np.array([r.position for r in records], dtype=np.int64)
        else:
            with _LOCK:
                first = _COUNTERS[key]
                _COUNTERS[key] = first + len(records)
            counters = np.arange(first, first + len(records), dtype=np.int64)
        self.rows_in.inc(len(records))
        table, keep, micros, errors = decode_records(self.node_id, self.cfg, self.schema, records,
                                                     counters + ord_base(part.topic_index, part.index),
                                                     self.event_time)
        done_at = np.full(len(records), -1, dtype=np.int64)  # messages that went to errors are done
        if table is not None:
            done_at[keep] = micros
            yield bw.TimestampedValue(table, Timestamp(micros=max(int(micros.max()), 0)))
        if errors is not None:
            self.bad.inc(errors.num_rows)
            yield beam.pvalue.TaggedOutput(ERRORS, errors)
        if self._gated():
            with _LOCK:
                _PENDING.setdefault(self.run_key, {}).setdefault(part.name, []).append(
                    ([r.position for r in records], counters, done_at))
        if table is not None:
            self._advance(part, micros)
        if self.spec.settle_on_emit and self.spec.commits() and not self.plan.windowed:
            try:  # no windows: the fused targets wrote the rows during the yield
                self.spec.commit({part.name: (part, log, [r.position for r in records])})
            except Exception:  # noqa: BLE001 - uncommitted messages are delivered again: at-least-once
                pass

    def _advance(self, part, micros):
        """This partition's progress: the earliest stamp of this batch's rows downstream (earlier ones than its
        progress so far are out of order: late if their windows have closed); remember the latest event."""
        with _LOCK:
            key = (*self.run_key, part.name)
            _MAX_SEEN[key] = max(_MAX_SEEN.get(key, _MIN_US), int(micros.max()))
        stamps = earliest_stamps(micros, self.plan.windows)
        before = self.clock.progress_of(part.name)
        on_time = stamps if before is None else stamps[stamps >= before]
        self.clock.update(part.name, state="reading", progress=int(on_time.min()) if len(on_time) else None,
                          latest=int(micros.max()))

    def _maybe_commit(self, force: bool):
        if not self._gated():
            return
        now = time.monotonic()
        if not force and now - self.last_commit < self.plan.commit_every_s:
            return
        self.last_commit = now
        try:
            durable = self._durable()
        except Exception:  # noqa: BLE001 - the warehouse is busy or down: commit later (at-least-once holds)
            return
        with _LOCK:
            if self.spec.cumulative:
                durable = {n: q for n, q in durable.items() if q > _COMMITTED.get((*self.run_key, n), -1)}
            batch = {}
            for n, q in durable.items():
                key = (*self.run_key, n)
                batch[n] = (_PARTS.get(key), _LOGS.get(key), q)
        batch = {n: b for n, b in batch.items() if b[0] is not None and b[2] != []}
        if not batch:
            return
        try:
            done = self.spec.commit(batch)
        except Exception:  # noqa: BLE001 - a failed commit only means re-reading; never lose rows
            return
        self._forget_committed({n: durable[n] for n in (batch if done is None else done)})

    def _forget_committed(self, durable: dict) -> None:
        with _LOCK:
            pending = _PENDING.get(self.run_key, {})
            for n, q in durable.items():
                if self.spec.cumulative:
                    _COMMITTED[(*self.run_key, n)] = q
                    gone = lambda pos, q=q: pos <= q  # noqa: E731
                else:
                    done = set(q)
                    gone = done.__contains__
                kept = []
                for positions, counters, times in pending.get(n, []):
                    left = [i for i, pos in enumerate(positions) if not gone(pos)]
                    if left:
                        kept.append(([positions[i] for i in left], counters[left], times[left]))
                pending[n] = kept

    def _durable(self) -> dict:
        """{partition: last durable position (cumulative logs) | [durable positions]} (module doc, *Commits*)."""
        plan = self.plan
        with _LOCK:
            snapshot = {n: list(b) for n, b in _PENDING.get(self.run_key, {}).items() if b}
        if not snapshot or plan.targets is None:
            return {}
        frontier = written = None
        if plan.windowed:
            frontier = plan.targets.frontier()
            if frontier is None or plan.retention_us >= NEVER_FINAL:
                return {}
        if plan.plain:
            written = plan.targets.written()
        out = {}
        for name, batches in snapshot.items():
            positions = [q for b in batches for q in b[0]]
            counters = np.concatenate([b[1] for b in batches])
            times = np.concatenate([b[2] for b in batches])
            final = np.ones(len(positions), dtype=bool)
            if frontier is not None:
                final &= (final_at(times, plan.final_shapes) if plan.final_shapes else
                          times + plan.retention_us) <= frontier
            if written is not None:
                top = written.get(self._part_key(name))
                final &= (counters < top) if top is not None else False
            if not self.spec.cumulative:
                out[name] = [positions[i] for i in np.nonzero(final)[0]]
                continue
            open_ = np.nonzero(~final)[0]
            k = int(open_[0]) if len(open_) else len(positions)
            if k:
                out[name] = positions[k - 1]
        return out

    def _part_key(self, name):
        with _LOCK:
            part = _PARTS.get((*self.run_key, name))
        return None if part is None else (part.topic_index, part.index & 0xFFF)
