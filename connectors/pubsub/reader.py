"""The Beam steps of ``pubsub_subscription``. On Dataflow: Beam's own ReadFromPubSub (the service acks on
checkpoints) and a decode step. On local runners (direct, prism, flink) readers over the synchronous Pull API
(:mod:`.client`), which works against Pub/Sub or its emulator (scripts/pubsub.sh):

- streaming: the subscription is one partition of the shared unbounded reader (:mod:`connectors.streams`,
  :class:`PubsubLog`): it pulls in bounded rounds, keeps the ack deadlines of the messages it holds extended, and
  acks a message once every window it falls in is final and written (the targets' frontier); without windows,
  right after the targets downstream took it. Unacked messages are redelivered after a crash, so windows that
  were not final are recomputed from all their rows.
- drain (direct runner): pulls until the subscription is empty; the driver acks after the run's loads
  committed, or hands the messages back (deadline 0) when the run failed (``PubsubSubscriptionSource.finish``).
"""
from __future__ import annotations

import json
import threading
import time

import apache_beam as beam
import numpy as np

from connectors.codecs import Record, decode, decode_records
from connectors.runtime import ERRORS, counter, schemas_of, write_report
from connectors.streams import LogSpec, Partition, PartitionLog, stream_read

EXTEND_EVERY_S = 20
DEADLINE_S = 60


def read(p, node, ctx, schema):
    """{main, errors} of a pubsub_subscription source."""
    from connectors.pubsub import client

    cfg = node.config
    declared, _ = schemas_of(node, schema)
    if ctx.on_dataflow:
        return _read_on_dataflow(p, node, cfg, declared)
    sub = client.subscription_path(cfg, ctx.run_id)
    if ctx.streaming:
        return stream_read(p, node, ctx, PubsubLog(cfg), [Partition(sub, 0, 0)], declared,
                           "ReadPubsub", create_label="Subscription")
    fn = DrainPubsubFn(node.id, cfg, declared, node.eventTime, ctx.batch_rows, ctx.run_dir)
    read_ = (p | f"{node.id}/Subscription" >> beam.Create([sub])
             | f"{node.id}/ReadPubsub" >> beam.ParDo(fn).with_outputs(ERRORS, main="main"))
    return {"main": read_.main, ERRORS: read_[ERRORS]}


def records_of(cfg, sub: str, received: list, first: int) -> list[Record]:
    """Pulled messages → records at positions ``first``, ``first + 1``, ..."""
    out = []
    for i, r in enumerate(received):
        pos = first + i
        raw = None
        if cfg.format == "raw":
            raw = decode(cfg, _RawMsg(r.data, sub, pos, r.publish_time_us // 1000))
            raw.update(attributes=json.dumps(r.attributes), message_id=r.message_id)
        out.append(Record(pos, r.data, None, _attr_time(cfg, r), {"message_id": r.message_id},
                          f"{sub}#{r.message_id}", raw or {}, sub))
    return out


class _RawMsg:  # the shape connectors.codecs.decode reads for format raw
    def __init__(self, value, topic, offset, timestamp):
        self.value, self.key, self.topic, self.partition = value, None, topic, 0
        self.offset, self.timestamp = offset, timestamp


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
                return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1_000_000)
            except ValueError:
                pass
    return r.publish_time_us


# ---- streaming ----------------------------------------------------------------------------------------
class PubsubLog(LogSpec):
    """The subscription as one partition; positions count the messages pulled, acks are per message."""

    cumulative = False
    settle_on_emit = True

    def __init__(self, cfg):
        self.cfg = cfg

    def open(self, part):
        return _SubscriptionLog(self.cfg, part.name)

    def commit(self, batch):
        done = []
        for name, (_, log, positions) in batch.items():
            if log is not None:  # (a closed reader's messages are delivered again)
                log.ack(positions)
                done.append(name)
        return done


class _SubscriptionLog(PartitionLog):
    def __init__(self, cfg, sub):
        self.cfg, self.sub = cfg, sub
        self.held: dict[int, str] = {}  # position -> ack id, pulled and not acked yet
        self.lock = threading.Lock()
        self.last_extend = 0.0

    def read(self, start, limit):
        from connectors.pubsub import client

        received = client.pull(self.sub, max_messages=min(limit, 1000), timeout_s=1.0)
        if received:
            try:  # held until final: never let the subscription's (possibly 10 s) deadline lapse first
                client.modify_ack_deadline(self.sub, [r.ack_id for r in received], DEADLINE_S)
            except Exception:  # noqa: BLE001 - redelivery only means at-least-once
                pass
        records = records_of(self.cfg, self.sub, received, start)
        with self.lock:
            self.held.update({rec.position: r.ack_id for rec, r in zip(records, received)})
        self._extend()
        return records, not received

    def _extend(self):
        """Keep extending the deadline of what is held (acks wait for the targets)."""
        from connectors.pubsub import client

        now = time.monotonic()
        with self.lock:
            held = list(self.held.values())
        if held and now - self.last_extend >= EXTEND_EVERY_S:
            self.last_extend = now
            try:
                client.modify_ack_deadline(self.sub, held, DEADLINE_S)
            except Exception:  # noqa: BLE001 - an expired message is redelivered: at-least-once still holds
                pass

    def ack(self, positions) -> None:
        from connectors.pubsub import client

        with self.lock:
            ids = [self.held[q] for q in positions if q in self.held]
        if ids:
            client.ack(self.sub, ids)
        with self.lock:
            for q in positions:
                self.held.pop(q, None)

    def rewind(self, records):
        from connectors.pubsub import client

        with self.lock:
            ids = [self.held.pop(r.position) for r in records if r.position in self.held]
        try:  # not taken: back to the subscription at once
            client.modify_ack_deadline(self.sub, ids, 0)
        except Exception:  # noqa: BLE001 - they are redelivered when their deadline passes anyway
            pass
        return True


# ---- drain and Dataflow --------------------------------------------------------------------------------
def _tables(node_id, cfg, schema, event_time, records, ords):
    table, _, _, errors = decode_records(node_id, cfg, schema, records, ords, event_time)
    if errors is not None:
        counter(node_id, "rows_errored").inc(errors.num_rows)
        yield beam.pvalue.TaggedOutput(ERRORS, errors)
    if table is not None:
        yield table


class DrainPubsubFn(beam.DoFn):
    """Direct runner: pull until the subscription is empty; ack ids go to a report the driver acks later."""

    def __init__(self, node_id, cfg, schema, event_time, batch_rows, run_dir):
        self.node_id, self.cfg, self.schema, self.event_time = node_id, cfg, schema, event_time
        self.batch_rows, self.run_dir = batch_rows, run_dir

    def process(self, sub):
        from connectors.pubsub import client

        acks, seq, empty = [], 0, 0
        while empty < 2:
            received = client.pull(sub, max_messages=min(self.batch_rows, 1000), timeout_s=1.0)
            if not received:
                empty += 1
                continue
            empty = 0
            client.modify_ack_deadline(sub, [r.ack_id for r in received], 600)  # ours until the run ends
            acks += [r.ack_id for r in received]
            counter(self.node_id, "rows_in").inc(len(received))
            ords = np.arange(seq, seq + len(received), dtype=np.int64)
            yield from _tables(self.node_id, self.cfg, self.schema, self.event_time,
                               records_of(self.cfg, sub, received, seq), ords)
            seq += len(received)
        from connectors.pubsub import REPORTS
        write_report(self.run_dir, REPORTS, self.node_id, {"subscription": sub, "ackIds": acks})


def _read_on_dataflow(p, node, cfg, schema):
    from connectors.pubsub import client

    kw = {"subscription": cfg.subscription} if cfg.subscription else {"topic": cfg.topic}
    if cfg.subscription and not cfg.subscription.startswith("projects/"):
        kw = {"subscription": client.subscription_path(cfg)}
    if cfg.topic and not cfg.topic.startswith("projects/"):
        kw = {"topic": client.topic_path(cfg.topic)}
    msgs = p | f"{node.id}/ReadFromPubSub" >> beam.io.ReadFromPubSub(
        with_attributes=True, timestamp_attribute=cfg.timestampAttribute, id_label=cfg.idAttribute, **kw)
    read_ = msgs | f"{node.id}/Decode" >> beam.ParDo(_DecodeMessagesFn(node.id, cfg, schema, node.eventTime)) \
        .with_outputs(ERRORS, main="main")
    return {"main": read_.main, ERRORS: read_[ERRORS]}


class _DecodeMessagesFn(beam.DoFn):
    """Dataflow: Beam's PubsubMessage → a one-row table (Dataflow batches elements into bundles anyway)."""

    def __init__(self, node_id, cfg, schema, event_time):
        self.node_id, self.cfg, self.schema, self.event_time = node_id, cfg, schema, event_time

    def process(self, message, ts=beam.DoFn.TimestampParam):
        from connectors.pubsub.client import Received
        r = Received("", message.data, dict(message.attributes or {}), ts.micros,
                     getattr(message, "message_id", "") or "")
        table, _, _, errors = decode_records(self.node_id, self.cfg, self.schema,
                                             records_of(self.cfg, "pubsub", [r], 0), np.zeros(1, np.int64),
                                             self.event_time)
        if errors is not None:
            yield beam.pvalue.TaggedOutput(ERRORS, errors)
        if table is not None:
            yield table


def messages_of(table, cfg):
    """Dataflow: rows as Beam PubsubMessages for WriteToPubSub."""
    from apache_beam.io.gcp.pubsub import PubsubMessage

    from connectors.pubsub import payloads_of
    for data, attrs in payloads_of(cfg, table):
        yield PubsubMessage(data, attrs)
