"""Pub/Sub → Beam. On Dataflow: Beam's own ReadFromPubSub / WriteToPubSub (the service acks on checkpoints).
On local runners (direct, prism, flink) a reader over the synchronous Pull API (connectors.pubsub), which works
against Pub/Sub or a local stand-in (scripts/pubsub.sh):

- streaming: an unbounded splittable DoFn that pulls in bounded rounds, keeps the ack deadlines of the
  messages it holds extended, and acks a message only once every window it falls in is final and written (the
  frontier of ir_compiler.lower.streaming) — unacked messages are redelivered after a crash, so windows that
  were not final are recomputed from all their rows.
- drain (direct runner): pulls until the subscription is empty; the driver acks after the run's loads
  committed, or hands the messages back (deadline 0) when the run failed.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.transforms import window as bw
from apache_beam.utils.timestamp import Duration, Timestamp

from ir_compiler.lower.context import counter, write_report
from ir_compiler.lower.streaming import (UNWINDOWED, HoldingWatermarks, StreamRestrictions, earliest_stamps,
                                         source_clock)
from ir_compiler.ops.common import ORD

ERRORS = "errors"
EXTEND_EVERY_S = 20
DEADLINE_S = 60


@dataclass
class _Msg:  # the shape connectors.kafka.decode reads
    value: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: int


def decode_batch(node_id, cfg, schema, event_time, sub, received, seq0):
    """Pulled messages → (table with ORD and event-time columns | None, event µs per message, error table | None)."""
    from connectors.formats import _columns_table, _conform
    from connectors.kafka import decode
    from ir_compiler.lower.streaming import EVENT_US
    from ir_compiler.windows import to_timestamps

    rows, keep, bad = [], [], []
    for i, r in enumerate(received):
        msg = _Msg(r.data, None, sub, 0, seq0 + i, r.publish_time_us // 1000)
        try:
            row = decode(cfg, msg)
            if cfg.format == "raw":
                row.update(attributes=json.dumps(r.attributes), message_id=r.message_id)
            rows.append(row)
            keep.append(i)
        except (ValueError, UnicodeDecodeError) as exc:
            bad.append((f"{sub}#{r.message_id}: {exc}", json.dumps({"message_id": r.message_id,
                                                                     "raw": r.data.decode("utf-8", "replace")[:2000]})))
    micros = np.full(len(received), -1, dtype=np.int64)
    table = None
    if rows:
        table, bad_rows = _conform(_columns_table(rows), schema, sub, lambda j: keep[j] if j < len(keep) else None)
        rejected = {b.line for b in bad_rows}
        bad += [(f"{sub}: {b.reason}", b.raw) for b in bad_rows]
        keep = [i for i in keep if i not in rejected]
        stamps = np.array([_attr_time(cfg, received[i]) for i in keep], dtype=np.int64)
        if event_time is not None and event_time.field in table.column_names and table.num_rows:
            et = to_timestamps(table.column(event_time.field), event_time.format).cast(pa.int64())
            stamps = np.where(et.is_valid().to_numpy(zero_copy_only=False),
                              et.fill_null(-1).to_numpy(zero_copy_only=False), stamps)
        micros[keep] = stamps
        table = table.append_column(ORD, pa.array(np.array(keep, dtype=np.int64) + seq0))
        table = table.append_column(EVENT_US, pa.array(np.maximum(stamps, 0)))
        if not table.num_rows:
            table = None
    errors = None
    if bad:
        errors = pa.table({"node_id": [node_id] * len(bad), "error": [b[0] for b in bad], "row": [b[1] for b in bad]})
    return table, micros, errors


def _attr_time(cfg, r) -> int:
    """Event time of a message without eventTime: ``timestampAttribute`` (epoch ms or RFC 3339), else publish time."""
    name = getattr(cfg, "timestampAttribute", None)
    value = r.attributes.get(name) if name else None
    if value:
        try:
            return int(value) * 1000
        except ValueError:
            import datetime as dt
            try:
                t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                return int(t.timestamp() * 1_000_000)
            except ValueError:
                pass
    return r.publish_time_us


_HELD: dict[tuple, dict] = {}  # (run id, node id) -> {ack id: event µs} pulled, not yet acked
_HELD_LOCK = threading.Lock()
_LAST: dict[tuple, float] = {}


class StreamPubsubFn(beam.DoFn):
    def __init__(self, node_id, cfg, schema, event_time, batch_rows, pipeline_id, warehouse_url, frontier_nodes,
                 retention_us, idle_stop_s=None, run_id="", commit_every_s=5.0, windows=()):
        self.node_id, self.cfg, self.schema, self.event_time = node_id, cfg, schema, event_time
        self.windows = list(windows)  # downstream windows: the watermark holds at their earliest stamp
        self.batch_rows, self.pipeline_id, self.warehouse_url = batch_rows, pipeline_id, warehouse_url
        self.frontier_nodes, self.retention_us, self.idle_stop_s = list(frontier_nodes), retention_us, idle_stop_s
        self.key, self.commit_every_s = (run_id, node_id), commit_every_s

    def setup(self):
        self.last_ack = self.last_extend = 0.0

    @beam.DoFn.unbounded_per_element()
    def process(self, sub, tracker=beam.DoFn.RestrictionParam(StreamRestrictions()),
                wm=beam.DoFn.WatermarkEstimatorParam(HoldingWatermarks())):
        from connectors import pubsub

        position = tracker.current_restriction().start
        if not tracker.try_claim(position):
            return
        _LAST.setdefault(self.key, time.monotonic())
        received = pubsub.pull(sub, max_messages=min(self.batch_rows, 1000), timeout_s=1.0)
        if received:
            try:  # held until final: never let the subscription's (possibly 10 s) deadline lapse first
                pubsub.modify_ack_deadline(sub, [r.ack_id for r in received], DEADLINE_S)
            except Exception:  # noqa: BLE001 - redelivery only means at-least-once
                pass
            _LAST[self.key] = time.monotonic()
            counter(self.node_id, "rows_in").inc(len(received))
            table, micros, errors = decode_batch(self.node_id, self.cfg, self.schema, self.event_time, sub, received,
                                                 position << 20)
            with _HELD_LOCK:
                held = _HELD.setdefault(self.key, {})
                held.update({r.ack_id: int(t) for r, t in zip(received, micros)})
            if errors is not None:
                counter(self.node_id, "rows_errored").inc(errors.num_rows)
                yield beam.pvalue.TaggedOutput(ERRORS, errors)
            if table is not None:
                top = int(micros.max())
                yield bw.TimestampedValue(table, Timestamp(micros=max(top, 0)))
                clock = source_clock(self.key, [sub])  # one reader: the source's watermark is its own
                stamps = earliest_stamps(micros, self.windows)
                before = clock.progress_of(sub)
                on_time = stamps if before is None else stamps[stamps >= before]
                clock.update(sub, state="reading", progress=int(on_time.min()) if len(on_time) else None,
                             latest=top)
                clock.follow(wm)
            if self.retention_us == UNWINDOWED:  # no windows: the fused sinks wrote the rows during the yield
                self._ack(sub, [r.ack_id for r in received])
        elif self.retention_us != UNWINDOWED:
            with _HELD_LOCK:
                latest = max(_HELD.get(self.key, {}).values(), default=None)
            if latest is not None:  # caught up: everything pulled so far is in
                clock = source_clock(self.key, [sub])
                clock.update(sub, state="caught_up", latest=latest)
                clock.follow(wm)
        self._settle(sub, force=False)
        if self.idle_stop_s is not None and time.monotonic() - _LAST[self.key] >= self.idle_stop_s:
            self._settle(sub, force=True)
            tracker.try_claim(sys.maxsize)
            from ir_compiler.lower.streaming import reader_done
            reader_done(self.key[0], (self.node_id, str(sub)))
            return
        tracker.defer_remainder(Duration.of(0 if received else 0.2))

    def _ack(self, sub, ack_ids) -> bool:
        from connectors import pubsub
        try:
            pubsub.ack(sub, ack_ids)
        except Exception:  # noqa: BLE001 - unacked messages are redelivered: at-least-once
            return False
        with _HELD_LOCK:
            for a in ack_ids:
                _HELD.get(self.key, {}).pop(a, None)
        return True

    def _settle(self, sub, force: bool):
        """Ack what is final and written; keep extending the deadline of the rest."""
        from connectors import pubsub

        now = time.monotonic()
        with _HELD_LOCK:
            held = dict(_HELD.get(self.key, {}))
        if not held:
            return
        if self.frontier_nodes and (force or now - self.last_ack >= self.commit_every_s):
            self.last_ack = now
            from connectors.warehouse import open_warehouse
            from connectors.warehouse.streaming import read_frontier
            try:
                frontier = read_frontier(open_warehouse(self.warehouse_url), self.pipeline_id, self.frontier_nodes)
            except Exception:  # noqa: BLE001 - try again later; unacked messages are only redelivered
                frontier = None
            if frontier is not None:
                done = [a for a, t in held.items() if t + self.retention_us <= frontier]
                if done and self._ack(sub, done):
                    for a in done:
                        held.pop(a, None)
        if held and now - self.last_extend >= EXTEND_EVERY_S:
            self.last_extend = now
            try:
                pubsub.modify_ack_deadline(sub, list(held), DEADLINE_S)
            except Exception:  # noqa: BLE001 - an expired message is redelivered: at-least-once still holds
                pass


class DrainPubsubFn(beam.DoFn):
    """Direct runner: pull until the subscription is empty; ack ids go to a report the driver acks later."""

    def __init__(self, node_id, cfg, schema, event_time, batch_rows, run_dir):
        self.node_id, self.cfg, self.schema, self.event_time = node_id, cfg, schema, event_time
        self.batch_rows, self.run_dir = batch_rows, run_dir

    def process(self, sub):
        from connectors import pubsub

        acks, seq, empty = [], 0, 0
        while empty < 2:
            received = pubsub.pull(sub, max_messages=min(self.batch_rows, 1000), timeout_s=1.0)
            if not received:
                empty += 1
                continue
            empty = 0
            pubsub.modify_ack_deadline(sub, [r.ack_id for r in received], 600)  # ours until the run ends
            acks += [r.ack_id for r in received]
            counter(self.node_id, "rows_in").inc(len(received))
            table, _, errors = decode_batch(self.node_id, self.cfg, self.schema, self.event_time, sub, received, seq)
            seq += len(received)
            if errors is not None:
                counter(self.node_id, "rows_errored").inc(errors.num_rows)
                yield beam.pvalue.TaggedOutput(ERRORS, errors)
            if table is not None:
                yield table
        write_report(self.run_dir, "pubsub", self.node_id, {"subscription": sub, "ackIds": acks})


def lower_pubsub_source(p, node, ctx, streaming_args: dict | None, on_dataflow: bool):
    """{main, errors} of a pubsub_subscription source."""
    from connectors import pubsub
    from ir_compiler.loader import connector_config
    from ir_compiler.propagate import declared_schema

    cfg = connector_config(node)
    if on_dataflow:
        kw = {"subscription": cfg.subscription} if cfg.subscription else {"topic": cfg.topic}
        if cfg.subscription and not cfg.subscription.startswith("projects/"):
            kw = {"subscription": pubsub.subscription_path(cfg)}
        if cfg.topic and not cfg.topic.startswith("projects/"):
            kw = {"topic": pubsub.topic_path(cfg.topic)}
        msgs = p | f"{node.id}/ReadFromPubSub" >> beam.io.ReadFromPubSub(
            with_attributes=True, timestamp_attribute=cfg.timestampAttribute, id_label=cfg.idAttribute, **kw)
        read = msgs | f"{node.id}/Decode" >> beam.ParDo(_DecodeMessagesFn(node.id, cfg, declared_schema(node),
                                                                          node.eventTime)).with_outputs(
            ERRORS, main="main")
        return {"main": read.main, "errors": read[ERRORS]}
    sub = pubsub.subscription_path(cfg, ctx.run_id)
    start = p | f"{node.id}/Subscription" >> beam.Create([sub])
    if streaming_args is None:
        fn = DrainPubsubFn(node.id, cfg, declared_schema(node), node.eventTime, ctx.batch_rows, ctx.run_dir)
    else:
        fn = StreamPubsubFn(node.id, cfg, declared_schema(node), node.eventTime, ctx.batch_rows, ctx.pipeline_id,
                            ctx.warehouse_url, run_id=ctx.run_id, idle_stop_s=ctx.idle_stop_s, **streaming_args)
    read = start | f"{node.id}/ReadPubsub" >> beam.ParDo(fn).with_outputs(ERRORS, main="main")
    return {"main": read.main, "errors": read[ERRORS]}


class _DecodeMessagesFn(beam.DoFn):
    """Dataflow: Beam's PubsubMessage → a one-row table (Dataflow batches elements into bundles anyway)."""

    def __init__(self, node_id, cfg, schema, event_time):
        self.node_id, self.cfg, self.schema, self.event_time = node_id, cfg, schema, event_time

    def process(self, message, ts=beam.DoFn.TimestampParam):
        from connectors.pubsub import Received
        r = Received("", message.data, dict(message.attributes or {}), ts.micros,
                     getattr(message, "message_id", "") or "")
        table, _, errors = decode_batch(self.node_id, self.cfg, self.schema, self.event_time, "pubsub", [r], 0)
        if errors is not None:
            yield beam.pvalue.TaggedOutput(ERRORS, errors)
        if table is not None:
            yield table


def ack_drained(run_dir: str, ok: bool) -> list[str]:
    """After a drain run: ack its messages (loads committed) or hand them back at once (the run failed)."""
    from connectors import pubsub
    from ir_compiler.lower.context import read_reports

    warnings = []
    for node_id, rep in read_reports(run_dir, "pubsub").items():
        try:
            if ok:
                pubsub.ack(rep["subscription"], rep["ackIds"])
            else:
                pubsub.modify_ack_deadline(rep["subscription"], rep["ackIds"], 0)
        except Exception as exc:  # noqa: BLE001 - unacked messages are redelivered: at-least-once
            warnings.append(f"node '{node_id}': could not {'ack' if ok else 'release'} Pub/Sub messages ({exc}); "
                            f"they will be delivered again")
    return warnings


def _payloads(cfg, table: pa.Table) -> list[tuple[bytes, dict]]:
    """Rows → (data, attributes): the ``attributes`` columns become message attributes."""
    from connectors.kafka import encode
    from ir_compiler.ops.common import strip_internal

    if ORD in table.column_names:
        table = table.sort_by([(ORD, "ascending")])
    attrs = list(cfg.attributes or [])
    return [(encode(cfg, {k: v for k, v in r.items() if k not in attrs}),
             {a: "" if r.get(a) is None else str(r.get(a)) for a in attrs}) for r in strip_internal(table).to_pylist()]


def publish_table(node, table: pa.Table) -> int:
    from connectors import pubsub
    from ir_compiler.loader import connector_config

    cfg = connector_config(node)
    payloads = _payloads(cfg, table)
    return pubsub.publish(cfg.topic, payloads) if payloads else 0


def messages_of(table: pa.Table, cfg):
    """Dataflow: rows as Beam PubsubMessages for WriteToPubSub."""
    from apache_beam.io.gcp.pubsub import PubsubMessage
    for data, attrs in _payloads(cfg, table):
        yield PubsubMessage(data, attrs)
