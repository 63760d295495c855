"""The Beam steps of ``pulsar_consumer``: drained runs read each partition's backlog through the durable
subscription (:class:`ReadPartitionFn`) and the driver acknowledges after the loads; streaming runs follow each
partition forever through the shared unbounded reader of :mod:`connectors.streams` (:class:`PulsarLog`), acknowledging as the targets' frontiers
pass the messages.

Each partition topic is read through the subscription as an *exclusive* consumer (one reader per partition, and a
second run of the same pipeline cannot read the same messages at the same time). Nothing is acknowledged by the
readers of a drained run: closing the consumer hands every message back to the subscription.
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from connectors.codecs import EVENT_US, Record, decode_records
from connectors.streams import LogSpec, PartitionLog, ord_base
from connectors.runtime import ERRORS, counter, write_report

REPORTS = "pulsar"  # the run folder's reports: the last message id read per partition (acknowledged by finish)


@dataclass(frozen=True)
class PartitionRange:
    """A drained run's work on one partition topic: its backlog on the subscription, up to the newest message
    when the reader starts."""

    topic: str  # the partition topic (persistent://t/ns/name-partition-N, or the topic itself)
    topic_index: int
    index: int


def position(order: tuple[int, int, int]) -> int:
    """(ledger, entry, batch index) packed into one growing integer."""
    ledger, entry, batch = order
    return (ledger << 88) | (entry << 24) | (batch + 1)


def partition_index(topic: str) -> int:
    head, sep, tail = topic.rpartition("-partition-")
    return int(tail) if sep and tail.isdigit() else 0


def record_of(cfg, r) -> Record:
    import json

    where = {"topic": r.topic, "message_id": r.message_id}
    ms = r.event_time_ms if r.event_time_ms else r.publish_time_ms
    raw = {"key": r.partition_key, "value": r.data.decode("utf-8", "replace") if r.data is not None else None,
           "topic": r.topic, "message_id": r.message_id, "publish_time": r.publish_time_ms,
           "event_time": r.event_time_ms, "properties": json.dumps(r.properties) if r.properties else None}
    return Record(position(r.order), r.data, r.partition_key, ms * 1000 if ms is not None else None, where,
                  f"{r.topic}#{r.message_id}", raw)


def subscribe(cfg, client, topic: str, subscription: str):
    return client.subscribe(topic, subscription, subscription_type="exclusive",
                            initial_position=cfg.initialPosition, receiver_queue_size=1000)


def read_ranges(p, node, ctx, ranges: list[PartitionRange], subscription: str, schema):
    read = (p | f"{node.id}/Partitions" >> beam.Create(ranges)
            | f"{node.id}/ReadPulsar" >> beam.ParDo(ReadPartitionFn(node.id, node.config, subscription, schema,
                                                                    ctx.batch_rows, ctx.run_dir))
            .with_outputs(ERRORS, main="main"))
    return {"main": read.main, ERRORS: read[ERRORS]}


class ReadPartitionFn(beam.DoFn):
    """One partition's backlog → Arrow tables; undecodable messages and values that do not convert leave
    through ``errors`` with topic and message id. Reports the last message read (acknowledged by the driver once
    the loads committed) and closes without acknowledging anything."""

    def __init__(self, node_id, cfg, subscription, schema, batch_rows, run_dir):
        self.node_id, self.cfg, self.subscription, self.schema = node_id, cfg, subscription, schema
        self.batch_rows, self.run_dir = min(batch_rows, 50000), run_dir

    def process(self, rng: PartitionRange):
        from connectors.pulsar.client import PulsarClient

        with PulsarClient(self.cfg.serviceUrl) as client:
            consumer = subscribe(self.cfg, client, rng.topic, self.subscription)
            end = consumer.last_message_id()
            batch, last, n, done = [], None, 0, end is None
            while not done:
                got = consumer.receive_batch(max_messages=1000, timeout_s=self.cfg.receiveTimeoutMs / 1000)
                if not got:
                    break  # the subscription has nothing more for us
                for r in got:
                    if r.order > end:
                        done = True  # published after the run started: the next run reads it
                        break
                    batch.append(record_of(self.cfg, r))
                    last = r
                    if r.order >= end:
                        done = True
                        break
                if len(batch) >= self.batch_rows or (batch and done):
                    yield from self._emit(rng, batch, n)
                    n += len(batch)
                    batch = []
            if batch:
                yield from self._emit(rng, batch, n)
                n += len(batch)
            consumer.close()  # nothing acknowledged: every message stays in the subscription until finish
        write_report(self.run_dir, REPORTS, f"{self.node_id}--{rng.topic_index}-{rng.index}",
                     {"node": self.node_id, "topic": rng.topic, "read": n,
                      "last": last.serialized_id.hex() if last is not None else None,
                      "lastId": last.message_id if last is not None else None})

    def _emit(self, rng, records, first):
        ords = np.arange(first, first + len(records), dtype=np.int64) + ord_base(rng.topic_index, rng.index)
        counter(self.node_id, "rows_in").inc(len(records))
        table, _, _, errors = decode_records(self.node_id, self.cfg, self.schema, records, ords)
        if errors is not None:
            counter(self.node_id, "rows_errored").inc(errors.num_rows)
            yield beam.pvalue.TaggedOutput(ERRORS, errors)
        if table is not None:
            yield table.drop_columns([EVENT_US])


def drained_positions(run_dir: str, node_id: str) -> dict[str, bytes]:
    """{partition topic: serialized id of the last message read} reported by a drained run's readers."""
    from connectors.runtime import read_reports

    return {rep["topic"]: bytes.fromhex(rep["last"]) for rep in read_reports(run_dir, REPORTS).values()
            if rep.get("node") == node_id and rep.get("last")}


def acknowledge(cfg, subscription: str, positions: dict[str, bytes]) -> None:
    """After the loads committed: acknowledge, per partition, everything up to the last message read."""
    from connectors.pulsar.client import PulsarClient

    if not positions:
        return
    with PulsarClient(cfg.serviceUrl) as client:
        for topic, serialized in sorted(positions.items()):
            consumer = subscribe(cfg, client, topic, subscription)
            try:
                consumer.ack_cumulative_id(serialized)
            finally:
                consumer.close()  # flushes the acknowledgement


# ---- streaming ----------------------------------------------------------------------------------------
class PulsarLog(LogSpec):
    """Partitions for the streaming reader: each an exclusive consumer of the subscription; positions are
    committed as cumulative acknowledgements of the received messages."""

    def __init__(self, cfg, subscription: str):
        self.cfg, self.subscription = cfg, subscription

    def open(self, part):
        return _PartitionLog(self.cfg, self.subscription, part)

    def commit(self, batch):
        done = []
        for name, (_, log, pos) in batch.items():
            if log is not None:  # (a closed consumer handed its messages back: they are delivered again)
                log.ack_upto(pos)
                done.append(name)
        return done


class _PartitionLog(PartitionLog):
    def __init__(self, cfg, subscription, part):
        from connectors.pulsar.client import PulsarClient
        self.cfg, self.part = cfg, part
        self.client = PulsarClient(cfg.serviceUrl)
        self.consumer = subscribe(cfg, self.client, part.name, subscription)
        self.held: dict[int, object] = {}  # position -> received message, until acknowledged

    def read(self, start, limit):
        got = self.consumer.receive_batch(max_messages=min(limit, 1000), timeout_s=0.5)
        out = []
        for r in got:
            rec = record_of(self.cfg, r)
            self.held[rec.position] = r
            out.append(rec)
        return out, not got

    def ack_upto(self, pos: int) -> None:
        message = self.held.get(pos)
        if message is None:
            return
        self.consumer.ack_cumulative([message])
        for p in [p for p in self.held if p <= pos]:
            del self.held[p]

    def close(self):
        self.client.close()  # unacknowledged messages go back to the subscription
