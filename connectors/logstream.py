"""Readers over a *partitioned log* (Kinesis shards, Pulsar partitions): records → Arrow tables and error rows,
and the unbounded splittable reader of streaming runs.

A connector supplies a :class:`LogSpec` (picklable: its config and what it planned) that opens one
:class:`PartitionLog` per partition in a worker. A partition log reads batches of :class:`Record` whose
``position`` is an integer that grows along the partition (Kinesis: the sequence number; Pulsar: ledger, entry and
batch index packed), and the spec commits positions (Kinesis: checkpoints in the warehouse; Pulsar: cumulative
acknowledgements). The streaming reader below is the same machine as the Kafka reader of
``ir_compiler.lower.streaming`` (which connectors may not import), written against that interface so it moves
into the shared ``connectors/streams.py`` unchanged:

- one element per partition; restriction = positions [start, ∞), never split by the runner, checkpointed with
  ``defer_remainder`` after each bounded read (a resumed restriction starts after the last position claimed, so a
  log that can seek — Kinesis — re-opens there; a subscription — Pulsar — skips redelivered positions below it);
- a manual watermark per partition, held at the earliest on-time event of the batch just read, moved to the latest
  event read once the partition has caught up; an idle partition follows the other partitions of the source;
- commits gated like Kafka's offsets: with windowed targets, a position is committed once every window of every
  record up to it is final at the targets' frontier (``_flow_frontier``); with unwindowed targets, once every
  target recorded (``_flow_offsets``, through the hidden order column) that it wrote the record.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms import window as bw
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from connectors.runtime import ERRORS, ORD, counter
from ir_compiler.errors import FlowError

EVENT_US = "__fb_event_us"  # the event time the reader used (as in ir_compiler.lower.streaming)
US = 1_000_000
UNWINDOWED = -1
NEVER_FINAL = sys.maxsize // 4
STOP = 1 << 200  # past every position (Kinesis sequence numbers have up to 56 digits)
COUNTER_BITS = 40  # ORD = topic index << 52 | partition index << 40 | a per-partition record counter


@dataclass
class Record:
    """One message of a partitioned log."""

    position: int  # grows along the partition
    value: bytes | None
    key: str | None
    timestamp_ms: int | None  # the log's own time (arrival/publish); the event time unless eventTime says otherwise
    where: dict = field(default_factory=dict)  # where it came from, for the DLQ (shard + sequence, topic + id)
    label: str = ""  # the same, as text: "orders/shardId-000000000000@4959..."
    raw: dict = field(default_factory=dict)  # the row of format "raw"


@dataclass(frozen=True)
class Partition:
    """A streaming reader's element: one partition and where it starts."""

    name: str  # shard id / partition topic
    topic_index: int  # for the order column (< 2048)
    index: int  # partition number (< 4096)
    start: int = 0  # the restriction's first position (0: the log's configured start)
    info: tuple = ()  # what the connector needs to open it (a start mode, a checkpoint ...)


class PartitionLog:
    """One partition being read (a worker-side object)."""

    def read(self, start: int, limit: int) -> tuple[list[Record], bool]:
        """Records from position ``start`` on (at most ``limit``) and whether the partition has nothing newer."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class LogSpec:
    """What a connector gives the readers: opens partitions and commits positions (picklable)."""

    def open(self, part: Partition) -> PartitionLog:
        raise NotImplementedError

    def commit(self, logs: dict[str, PartitionLog], positions: dict[str, int]) -> None:
        """Commit, per partition name, everything up to and including ``positions[name]``."""
        raise NotImplementedError


# ---- records → tables ----------------------------------------------------------------------------------
def decode_records(node_id, cfg, schema, records: list[Record], ords: np.ndarray, event_time=None):
    """(table with ORD and EVENT_US | None, kept record indexes, event µs per kept row, error table | None).
    Undecodable messages and values that do not convert become error rows saying where they came from."""
    from connectors.codecs import decode
    from connectors.formats import _columns_table, _conform

    rows, keep, bad = [], [], []
    for i, r in enumerate(records):
        try:
            row = dict(r.raw) if cfg.format == "raw" else decode(cfg, _Msg(r.value, r.key))
            rows.append(row)
            keep.append(i)
        except FlowError:
            raise  # not the message's fault (a schema registry that does not answer): the run fails
        except Exception as exc:  # noqa: BLE001 - any decoder failure (fastavro raises several kinds) is a bad message
            raw = r.value.decode("utf-8", "replace")[:2000] if r.value else None
            bad.append((f"{r.label}: {exc}", json.dumps({**r.where, "raw": raw}, default=str)))
    table, micros = None, np.zeros(0, dtype=np.int64)
    if rows:
        table, bad_rows = _conform(_columns_table(rows), schema, records[0].label.split("@")[0],
                                   lambda j: keep[j] if j < len(keep) else None)
        rejected = {b.line for b in bad_rows}
        for b in bad_rows:
            r = records[b.line] if isinstance(b.line, int) and b.line < len(records) else None
            bad.append((f"{r.label if r else b.file}: {b.reason}",
                        json.dumps({**(r.where if r else {}), "raw": b.raw}, default=str)))
        keep = [i for i in keep if i not in rejected]
        stamps = np.array([records[i].timestamp_ms * 1000 if records[i].timestamp_ms is not None else -1
                           for i in keep], dtype=np.int64)
        if event_time is not None and event_time.field in table.column_names and table.num_rows:
            et = event_micros(table.column(event_time.field), event_time.format)
            stamps = np.where(pc.is_valid(et).to_numpy(zero_copy_only=False),
                              et.fill_null(-1).to_numpy(zero_copy_only=False), stamps)
        micros = stamps
        table = table.append_column(ORD, pa.array(ords[keep] if len(keep) else np.zeros(0, np.int64), pa.int64()))
        table = table.append_column(EVENT_US, pa.array(np.maximum(micros, 0), pa.int64()))
        if not table.num_rows:
            table = None
    errors = None
    if bad:
        errors = pa.table({"node_id": pa.array([node_id] * len(bad), pa.string()),
                           "error": pa.array([b[0] for b in bad], pa.string()),
                           "row": pa.array([b[1] for b in bad], pa.string())})
    return table, keep, micros, errors


@dataclass
class _Msg:  # the shape connectors.codecs.decode reads
    value: bytes | None
    key_text: str | None

    @property
    def key(self):
        return self.key_text.encode() if self.key_text is not None else None


def event_micros(col, fmt: str | None) -> pa.Array:
    """Event times as int64 µs, nulls where a value does not parse (the rules of ir_compiler.windows)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    if pa.types.is_timestamp(t):
        out = col.cast(pa.timestamp("us", tz=t.tz)) if t.tz else col.cast(pa.timestamp("us"))
        return out.cast(pa.int64())
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us")).cast(pa.int64())
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        factor = {"epoch_ms": 1000, "epoch_us": 1}.get(fmt, 1_000_000)
        return pc.cast(pc.multiply(pc.cast(col, pa.float64()), float(factor)), pa.int64())
    text = col.cast(pa.string())
    if fmt and fmt not in ("epoch_s", "epoch_ms", "iso"):
        return pc.strptime(text, format=fmt, unit="us", error_is_null=True).cast(pa.int64())
    try:
        return pc.cast(text, pa.timestamp("us")).cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.nulls(len(text), pa.int64())


def ord_base(topic_index: int, index: int) -> int:
    return (topic_index << 52) | ((index & 0xFFF) << COUNTER_BITS)


# ---- streaming: the unbounded reader ---------------------------------------------------------------------
_LOCK = threading.Lock()
_LOGS: dict[tuple, PartitionLog] = {}  # (run, node, partition) -> the open partition (shared by DoFn instances)
_PENDING: dict[tuple, dict] = {}  # (run, node) -> {partition: [(positions, counters, event µs)]} not committed
_COUNTERS: dict[tuple, int] = {}  # (run, node, partition) -> next record counter
_LATEST: dict[tuple, int] = {}  # (run, node, partition) -> latest event read (µs)
_WATERMARKS: dict[tuple, int] = {}  # (run, node) -> the largest caught-up partition watermark (µs)
_LAST_DATA: dict[tuple, float] = {}
_COMMITTED: dict[tuple, int] = {}  # (run, node, partition) -> last committed position


def _note_latest(run_id: str, node_id: str, name: str, micros: int) -> None:
    """The latest event read from a partition in this run. The targets' frontier never passes the smallest of
    these (when a reader stops, its watermark jumps to the end of time, but later windows are not final): the
    Kafka machinery in ir_compiler.lower.streaming keeps that cap, so it is told when it is loaded here."""
    key = (run_id, node_id, name)
    with _LOCK:
        _LATEST[key] = max(_LATEST.get(key, -(1 << 62)), micros)
        value = _LATEST[key]
    machinery = sys.modules.get("ir_compiler.lower.streaming")
    if machinery is not None and hasattr(machinery, "_MAX_SEEN"):
        with machinery._LOCK:
            machinery._MAX_SEEN[(run_id, node_id, name, 0)] = value


def forget(run_id: str, node_id: str) -> None:
    """After a streaming run (the driver, or a worker of this process): close its partitions that are still
    open (a cancelled or failed job) and drop its state."""
    with _LOCK:
        logs = [log for key, log in _LOGS.items() if key[:2] == (run_id, node_id)]
        for table in (_LOGS, _PENDING, _COUNTERS, _LATEST, _WATERMARKS, _LAST_DATA, _COMMITTED):
            for key in [k for k in table if k[:2] == (run_id, node_id)]:
                table.pop(key, None)
    for log in logs:
        try:
            log.close()
        except Exception:  # noqa: BLE001 - closing a partition of a finished run
            pass


def stream_read(p, node, ctx, spec: LogSpec, parts: list[Partition], schema, plan, label: str):
    """{main, errors} of a streaming read: one unbounded splittable reader per partition."""
    import os

    windowed, plain, retention = plan if plan is not None else ([], [], UNWINDOWED)
    fn = StreamLogFn(node.id, node.config, spec, schema, node.eventTime, ctx.batch_rows, ctx.pipeline_id,
                     ctx.warehouse_url, list(windowed), list(plain), retention, ctx.idle_stop_s,
                     float(os.environ.get("FLOW_BEAM_COMMIT_EVERY_S", "5")), ctx.run_id)
    read = (p | f"{node.id}/Partitions" >> beam.Create(parts)
            | f"{node.id}/{label}" >> beam.ParDo(fn).with_outputs(ERRORS, main="main"))
    return {"main": read.main, ERRORS: read[ERRORS]}


class Unsplittable(OffsetRestrictionTracker):
    """Positions [start, ∞) of one partition: checkpointed (defer_remainder), never split in two."""

    def try_split(self, fraction_of_remainder):
        return None if fraction_of_remainder > 0 else super().try_split(fraction_of_remainder)


class Positions(RestrictionProvider):
    def initial_restriction(self, part):
        return OffsetRange(part.start, STOP)

    def create_tracker(self, restriction):
        return Unsplittable(restriction)

    def restriction_size(self, part, restriction):
        return 1

    def split(self, part, restriction):
        yield restriction


def hold_at_earliest(wm, micros):
    current = wm.current_watermark()
    floor = current.micros if current is not None else -(1 << 62)
    on_time = micros[micros >= floor]
    if len(on_time) and int(on_time.min()) > floor:
        wm.set_watermark(Timestamp(micros=int(on_time.min())))


class StreamLogFn(beam.DoFn):
    """Reads one partition forever (or until idle_stop_s without records once caught up): bounded reads, then
    defer_remainder. Emits Arrow tables (main) and error rows; commits positions (module doc)."""

    def __init__(self, node_id, cfg, spec, schema, event_time, batch_rows, pipeline_id, warehouse_url,
                 frontier_nodes, offset_nodes, retention_us, idle_stop_s, commit_every_s, run_id):
        self.node_id, self.cfg, self.spec, self.schema, self.event_time = node_id, cfg, spec, schema, event_time
        self.batch_rows, self.pipeline_id, self.warehouse_url = min(batch_rows, 10000), pipeline_id, warehouse_url
        self.frontier_nodes, self.offset_nodes = frontier_nodes, offset_nodes
        self.retention_us, self.idle_stop_s, self.commit_every_s = retention_us, idle_stop_s, commit_every_s
        self.run_key = (run_id, node_id)

    def setup(self):
        self.last_commit = 0.0
        self.rows_in = counter(self.node_id, "rows_in")
        self.bad = counter(self.node_id, "rows_errored")

    def _log(self, part: Partition) -> PartitionLog:
        key = (*self.run_key, part.name)
        with _LOCK:
            log = _LOGS.get(key)
        if log is None:
            log = self.spec.open(part)
            log.part = part
            with _LOCK:
                _LOGS[key] = log
                if key not in _COUNTERS:
                    _COUNTERS[key] = self._counter_start(part)
        return log

    def _counter_start(self, part) -> int:
        """Unwindowed targets record the counters they wrote (``_flow_offsets``, never moving back): a
        partition's counter continues above the highest one any target of this pipeline recorded."""
        if not self.offset_nodes:
            return 0
        from connectors.warehouse import open_warehouse
        from connectors.warehouse.streaming import OFFSETS, _LOCK as WH_LOCK
        wh = open_warehouse(self.warehouse_url)
        with WH_LOCK, wh.session() as con:
            if wh.schema_in(con, OFFSETS) is None:
                return 0
            row = wh.execute(con, f"SELECT max(next_offset) FROM {wh.ident(OFFSETS)} WHERE pipeline_id = "
                                  f"{wh.ph} AND topic_index = {wh.ph} AND kafka_partition = {wh.ph}",
                             [self.pipeline_id, part.topic_index, part.index & 0xFFF]).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    @beam.DoFn.unbounded_per_element()
    def process(self, part, tracker=beam.DoFn.RestrictionParam(Positions()),
                wm=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        key = (*self.run_key, part.name)
        with _LOCK:
            _LAST_DATA.setdefault(key, time.monotonic())
        log = self._log(part)
        start = tracker.current_restriction().start
        records, caught_up = log.read(start, self.batch_rows)
        claimed, split = [], False
        for r in records:
            if r.position < start:
                continue  # redelivered after a reconnect: already read in this job
            if not tracker.try_claim(r.position):
                split = True
                break
            claimed.append(r)
        if claimed:
            with _LOCK:
                _LAST_DATA[key] = time.monotonic()
            yield from self._emit(part, claimed, wm)
        elif caught_up:
            self._caught_up(wm, part)
        else:
            self._follow(wm)
        if split:
            return
        self._maybe_commit(force=False)
        with _LOCK:
            idle = time.monotonic() - _LAST_DATA[key]
        if self.idle_stop_s is not None and idle >= self.idle_stop_s and caught_up and not claimed:
            self._maybe_commit(force=True)
            tracker.try_claim(STOP)  # this partition's stream ends here
            with _LOCK:
                log = _LOGS.pop(key, None)
            if log is not None:
                log.close()  # what is not committed stays with the log (redelivered / re-read next run)
            return
        tracker.defer_remainder(Duration.of(0 if claimed else 0.2))

    def _emit(self, part, records, wm):
        key = (*self.run_key, part.name)
        with _LOCK:
            first = _COUNTERS[key]
            _COUNTERS[key] = first + len(records)
        counters = np.arange(first, first + len(records), dtype=np.int64)
        ords = counters + ord_base(part.topic_index, part.index)
        self.rows_in.inc(len(records))
        table, keep, micros, errors = decode_records(self.node_id, self.cfg, self.schema, records, ords,
                                                     self.event_time)
        if errors is not None:
            self.bad.inc(errors.num_rows)
            yield beam.pvalue.TaggedOutput(ERRORS, errors)
        done_at = np.full(len(records), -1, dtype=np.int64)  # messages that went to errors are done
        if table is not None:
            done_at[keep] = micros
            yield bw.TimestampedValue(table, Timestamp(micros=max(int(micros.max()), 0)))
        if self.frontier_nodes or self.offset_nodes:
            with _LOCK:
                _PENDING.setdefault(self.run_key, {}).setdefault(part.name, []).append(
                    ([r.position for r in records], counters, done_at))
        if table is not None:
            _note_latest(*self.run_key, part.name, int(micros.max()))
            hold_at_earliest(wm, micros)

    def _caught_up(self, wm, part):
        """Nothing more to read now: every event read is in, so the watermark moves to the latest."""
        with _LOCK:
            latest = _LATEST.get((*self.run_key, part.name))
            if latest is not None:
                _WATERMARKS[self.run_key] = max(_WATERMARKS.get(self.run_key, latest), latest)
        current = wm.current_watermark()
        if latest is not None and (current is None or current.micros < latest):
            wm.set_watermark(Timestamp(micros=latest))
            return
        self._follow(wm)

    def _follow(self, wm):
        """An idle partition follows the watermark of this source's other partitions."""
        with _LOCK:
            best = _WATERMARKS.get(self.run_key)
        current = wm.current_watermark()
        if best is not None and (current is None or current.micros < best):
            wm.set_watermark(Timestamp(micros=best))

    def _maybe_commit(self, force: bool):
        if not (self.frontier_nodes or self.offset_nodes):
            return
        now = time.monotonic()
        if not force and now - self.last_commit < self.commit_every_s:
            return
        self.last_commit = now
        try:
            positions = self._final_positions()
        except Exception:  # noqa: BLE001 - the warehouse is busy or down: commit later (at-least-once)
            return
        with _LOCK:
            positions = {n: pos for n, pos in positions.items()
                         if pos > _COMMITTED.get((*self.run_key, n), -1)}
            logs = {n: _LOGS.get((*self.run_key, n)) for n in positions}
        if not positions:
            return
        try:
            self.spec.commit(logs, positions)
        except Exception:  # noqa: BLE001 - a failed commit only means re-reading; never lose rows
            return
        with _LOCK:
            pending = _PENDING.get(self.run_key, {})
            for n, pos in positions.items():
                _COMMITTED[(*self.run_key, n)] = pos
                kept = []
                for positions_, counters, times in pending.get(n, []):
                    left = [i for i, q in enumerate(positions_) if q > pos]
                    if left:
                        kept.append(([positions_[i] for i in left], counters[left], times[left]))
                pending[n] = kept

    def _final_positions(self) -> dict[str, int]:
        """{partition: position} up to which every record is durably written (module doc)."""
        from connectors.warehouse import open_warehouse
        from connectors.warehouse.streaming import read_frontier, read_written_offsets

        with _LOCK:
            snapshot = {n: list(b) for n, b in _PENDING.get(self.run_key, {}).items() if b}
        if not snapshot:
            return {}
        wh = open_warehouse(self.warehouse_url)
        limits = []
        if self.frontier_nodes:
            frontier = read_frontier(wh, self.pipeline_id, self.frontier_nodes)
            if frontier is None or self.retention_us >= NEVER_FINAL:
                return {}
            limits.append(("time", frontier))
        if self.offset_nodes:
            limits.append(("counter", read_written_offsets(wh, self.pipeline_id, self.offset_nodes)))
        out = {}
        for name, batches in snapshot.items():
            positions = [q for b in batches for q in b[0]]
            counters = np.concatenate([b[1] for b in batches])
            times = np.concatenate([b[2] for b in batches])
            k = len(positions)
            for kind, limit in limits:
                if kind == "time":
                    open_ = np.nonzero(times + self.retention_us > limit)[0]
                else:
                    written = limit.get(self._part_key(name))
                    open_ = np.nonzero(counters >= written)[0] if written is not None else np.arange(len(counters))
                if len(open_):
                    k = min(k, int(open_[0]))
            if k:
                out[name] = positions[k - 1]
        return out

    def _part_key(self, name):
        with _LOCK:
            log = _LOGS.get((*self.run_key, name))
        part = getattr(log, "part", None)
        return None if part is None else (part.topic_index, part.index & 0xFFF)
