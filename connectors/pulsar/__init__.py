"""``pulsar_consumer``: Apache Pulsar topics read through a durable subscription, with the official client
(:mod:`.client`, extra ``flow-beam[pulsar]``).

``{"connector": "pulsar_consumer", "config": {"serviceUrl": "pulsar://127.0.0.1:6650", "topics": "orders",
"format": "json"}}`` (``subscription`` defaults to ``flow-beam-<pipeline id>-<node id>``; a new subscription
starts at ``initialPosition``).

Drained runs (direct runner): one reader per partition topic, an exclusive consumer of the subscription, reads the
backlog up to the newest message at its start; nothing is acknowledged until the loads committed, then the driver
acknowledges each partition cumulatively up to the last message read. A failed run acknowledges nothing: closing
the consumers hands the messages back, and the next run reads them again. Streaming runs (prism, flink): an
unbounded reader per partition (the shared :mod:`connectors.streams`) acknowledges as the targets' frontiers pass the
messages. Formats: :mod:`connectors.codecs`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from connectors.base import Capabilities, ConnectorConfig, Finished, Prepared, RunInfo, Source


class PulsarConsumerConfig(ConnectorConfig):
    serviceUrl: str
    topics: str | list[str]
    subscription: str | None = Field(default=None, min_length=1, description=(
        "the durable subscription (default 'flow-beam-<pipeline id>-<node id>')"))
    initialPosition: Literal["earliest", "latest"] = Field(default="earliest", description=(
        "where a new subscription starts"))
    format: Literal["json", "avro", "csv", "raw"] = "json"
    receiveTimeoutMs: int = Field(default=2000, ge=10, le=600000, description=(
        "drain: how long a partition with nothing to deliver is waited on before its reader ends"))
    avroSchema: dict[str, Any] | str | None = None
    schemaRegistryUrl: str | None = None


@dataclass
class PreparedPartitions(Prepared):
    subscription: str = ""
    ranges: list | None = None  # drain: connectors.pulsar.reader.PartitionRange per partition topic
    parts: list | None = None  # streaming: connectors.streams.Partition per partition topic


def subscription_name(node, pipeline_id: str) -> str:
    if node.config.subscription:
        return node.config.subscription
    return re.sub(r"[^A-Za-z0-9_.=:-]", "_", f"flow-beam-{pipeline_id}-{node.id}")


def _topics(cfg) -> list[str]:
    return [cfg.topics] if isinstance(cfg.topics, str) else list(cfg.topics)


class PulsarConsumerSource(Source):
    name = "pulsar_consumer"
    config = PulsarConsumerConfig
    capabilities = Capabilities(bounded=False, prepares=True, finishes=True, on_dataflow=False, streams=True)
    doc = "Apache Pulsar topics through a durable subscription (drained on the direct runner, streaming on " \
          "prism/flink); acknowledged after the loads"

    def available(self):
        try:
            import pulsar  # noqa: F401
        except ImportError:
            return "the pulsar_consumer connector needs the pulsar-client package: pip install 'flow-beam[pulsar]'"
        return None

    def describe(self, node, unbounded=False):
        if unbounded:
            return ["Create(partition topics)",
                    "splittable ParDo(exclusive consumer per partition, manual watermark, defer_remainder) → "
                    "Arrow tables; errors tagged; cumulative acks as the frontier passes"]
        return ["Create(partition topics)",
                "ParDo(read the subscription's backlog per partition) → Arrow tables; errors tagged; acks after "
                "the loads"]

    def prepare(self, node, run: RunInfo):
        from connectors.streams import BIG_STOP, Partition
        from connectors.pulsar.client import PulsarClient
        from connectors.pulsar.reader import PartitionRange, partition_index
        from ir_compiler.errors import ConnectorError

        cfg = node.config
        out = PreparedPartitions(subscription=subscription_name(node, run.pipeline_id))
        ranges = []
        with PulsarClient(cfg.serviceUrl) as client:
            for ti, topic in enumerate(_topics(cfg)):
                for part in client.partitions(topic):
                    ranges.append(PartitionRange(part, ti, partition_index(part)))
        if any(r.index > 0xFFF for r in ranges) or len(_topics(cfg)) > 2047:
            raise ConnectorError(f"node '{node.id}': at most 2047 topics of 4096 partitions each")
        if run.streaming:
            out.parts = [Partition(r.topic, r.topic_index, r.index, stop=BIG_STOP) for r in ranges]
        else:
            out.ranges = ranges
        return out

    def stream_readers(self, node, prepared):
        return len(prepared.parts or []) if prepared is not None else 0

    def read(self, p, node, ctx, prepared, schema):
        from connectors.runtime import schemas_of

        declared, _ = schemas_of(node, schema)
        subscription = prepared.subscription if prepared else subscription_name(node, ctx.pipeline_id)
        if ctx.streaming:
            from connectors.streams import stream_read
            from connectors.pulsar.reader import PulsarLog
            return stream_read(p, node, ctx, PulsarLog(node.config, subscription),
                               (prepared.parts if prepared else None) or [], declared, "ReadPulsarStream")
        from connectors.pulsar.reader import read_ranges
        return read_ranges(p, node, ctx, (prepared.ranges if prepared else None) or [], subscription, declared)

    def finish(self, node, prepared, ok, run: RunInfo) -> Finished:
        """Acknowledged only now, after the loads committed (at-least-once end to end); a failed run leaves every
        message in the subscription."""
        done = Finished()
        if prepared is None:
            return done
        if prepared.parts is not None:
            from connectors.streams import forget
            forget(run.run_id, node.id)  # consumers of a job that ended without reaching its idle stop
            return done
        if not ok or prepared.ranges is None:
            return done
        from connectors.pulsar.reader import acknowledge, drained_positions
        try:
            acknowledge(node.config, prepared.subscription, drained_positions(run.run_dir, node.id))
        except Exception as exc:  # noqa: BLE001 - the rows are loaded; the next run reads them again
            done.warnings.append(f"node '{node.id}': could not acknowledge Pulsar messages ({exc}); the next run "
                                 f"reads them again")
        return done
