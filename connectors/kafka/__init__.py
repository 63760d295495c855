"""``kafka_consumer`` (source) and ``kafka_producer`` (sink), read natively with kafka-python.

Source ``{"connector": "kafka_consumer", "config": {"bootstrapServers": "127.0.0.1:19092", "topics": "orders",
"groupId": "flow-beam", "format": "json"}}``. Drained runs (direct runner): the driver plans one offset range per
partition (what the topics hold now), workers read them (:mod:`.drain`), and the end offsets are committed to the
group after the loads committed. Streaming runs (prism, flink, dataflow): the driver plans each partition's start
position, the shared unbounded reader of :mod:`connectors.streams` follows it (:mod:`.stream`), and offsets are
committed as the targets' frontiers pass them. The client is :mod:`.client`; message formats are
:mod:`connectors.codecs`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from connectors.base import Capabilities, ConnectorConfig, Finished, Prepared, RunInfo, Sink, Source


class KafkaConsumerConfig(ConnectorConfig):
    bootstrapServers: str | list[str]
    topics: str | list[str]
    groupId: str = Field(min_length=1)
    startingOffsets: Literal["earliest", "latest", "committed"] = "committed"
    format: Literal["json", "avro", "csv", "raw"] = "json"
    commitOffsets: bool = True
    avroSchema: dict[str, Any] | str | None = None
    schemaRegistryUrl: str | None = None
    securityProtocol: str | None = None
    pollTimeoutMs: int = Field(default=1000, ge=10)
    discoverPartitions: int = Field(default=4, ge=0, le=64, description=(
        "streaming: how many partitions added to each topic while the job runs are picked up"))


class KafkaProducerConfig(ConnectorConfig):
    bootstrapServers: str | list[str]
    topic: str
    key: str | list[str] | None = Field(default=None, description="column(s) that form the message key")
    format: Literal["json", "avro", "csv", "raw"] = "json"
    avroSchema: dict[str, Any] | str | None = None


@dataclass
class PreparedOffsets(Prepared):
    ranges: list | None = None  # drain: connectors.kafka.client.OffsetRange per partition with messages
    starts: list | None = None  # streaming: (topic, partition, start offset), plus discovery slots


class KafkaConsumerSource(Source):
    name = "kafka_consumer"
    config = KafkaConsumerConfig
    capabilities = Capabilities(bounded=False, prepares=True, finishes=True, streams=True,
                                windows_across_drains=True)
    doc = "Kafka topics (drained on the direct runner, streaming on prism/flink/dataflow); offsets committed " \
          "after the loads"

    def describe(self, node, unbounded=False):
        return ["Create(topic, partition, start offset) + discovery slots",
                "splittable ParDo(read partition: offsets [start, ∞), manual watermark, defer_remainder) → "
                "Arrow tables; errors tagged (drain: Create(offset ranges) → ParDo(read range))"]

    def prepare(self, node, run: RunInfo):
        from connectors.kafka import client
        if run.streaming:
            return PreparedOffsets(starts=client.start_positions(node.config))
        if run.runner == "dataflow":
            return None
        return PreparedOffsets(ranges=client.plan_ranges(node.config))

    def read(self, p, node, ctx, prepared, schema):
        if ctx.streaming:
            from connectors.kafka.stream import read_stream
            from connectors.runtime import schemas_of
            return read_stream(p, node, ctx, (prepared.starts if prepared else None) or [],
                               schemas_of(node, schema)[0])
        from connectors.kafka.drain import read_ranges
        return read_ranges(p, node, ctx, (prepared.ranges if prepared else None) or [], schema)

    def stream_readers(self, node, prepared):
        return len(prepared.starts or []) if prepared is not None else 0

    def finish(self, node, prepared, ok, run: RunInfo) -> Finished:
        """Offsets are committed only now, after the loads committed (at-least-once end to end)."""
        done = Finished()
        if not ok or prepared is None or prepared.ranges is None or not node.config.commitOffsets:
            return done
        from connectors.kafka import client
        from connectors.kafka.drain import settle
        try:  # windowed targets downstream: commit only the offsets whose windows are final (drain.py)
            client.commit_ranges(node.config, settle(run.run_dir, run.warehouse_url, run.pipeline_id, node.id,
                                                     prepared.ranges))
        except Exception as exc:  # noqa: BLE001 - the rows are loaded; the next run reads them again
            done.warnings.append(f"node '{node.id}': could not commit Kafka offsets ({exc}); the next run "
                                 f"re-reads those messages")
        return done


class KafkaProducerSink(Sink):
    name = "kafka_producer"
    config = KafkaProducerConfig
    doc = "rows as messages of one topic (key from columns), acknowledged (acks=all) before the commit ends"

    def write(self, node, config, table, prefix):
        from connectors.kafka.client import produce
        from connectors.runtime import strip_internal
        from connectors.formats import json_rows
        return produce(config, json_rows(strip_internal(table))), []

