"""``kinesis_consumer``: an Amazon Kinesis data stream, read natively with boto3 (extra ``flow-beam[kinesis]``).

``{"connector": "kinesis_consumer", "config": {"streamName": "orders", "region": "eu-west-1",
"startingPosition": "TRIM_HORIZON", "format": "json"}}`` (``endpoint``: another Kinesis API, e.g. kinesalite from
``scripts/kinesis.sh``; credentials: boto3's usual chain — AWS_* variables, ~/.aws, an instance role).

Drained runs (direct runner): the driver lists the shards and plans each one's start (its checkpoint, else
``startingPosition``) and a cutoff (the server's clock at the start); one reader per shard reads through shard
iterators up to the records that arrived after the cutoff (or until the shard is caught up), and the last sequence
number read per shard is checkpointed only after the loads committed (:mod:`.checkpoints`, table
``_flow_checkpoints`` in the warehouse). A failed run checkpoints nothing: the next run reads those records again.
Streaming runs (prism, flink): an unbounded reader per shard (the shared :mod:`connectors.streams`) checkpoints as the
targets' frontiers pass the records. Formats: :mod:`connectors.codecs`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from connectors.base import Capabilities, ConnectorConfig, Finished, Prepared, RunInfo, Source


class KinesisConsumerConfig(ConnectorConfig):
    streamName: str = Field(min_length=1)
    region: str | None = None
    format: Literal["json", "avro", "csv", "raw"] = "json"
    startingPosition: Literal["LATEST", "TRIM_HORIZON"] = Field(default="LATEST", description=(
        "where a shard without a checkpoint starts: TRIM_HORIZON (the oldest record kept) or LATEST (records "
        "arriving after the reader starts; a drained run reads nothing from such a shard)"))
    endpoint: str | None = Field(default=None, description="another Kinesis API endpoint (kinesalite, LocalStack)")
    applicationName: str | None = Field(default=None, min_length=1, description=(
        "names this consumer's checkpoints (default '<pipeline id>/<node id>')"))
    commitCheckpoints: bool = True
    maxRecordsPerRead: int = Field(default=1000, ge=1, le=10000, description="GetRecords Limit")
    avroSchema: dict[str, Any] | str | None = None
    schemaRegistryUrl: str | None = None


@dataclass
class PreparedShards(Prepared):
    consumer: str = ""
    ranges: list | None = None  # drain: connectors.kinesis.reader.ShardRange per shard to read
    parts: list | None = None  # streaming: connectors.streams.Partition per shard


def consumer_name(node, pipeline_id: str) -> str:
    return node.config.applicationName or f"{pipeline_id}/{node.id}"


class KinesisConsumerSource(Source):
    name = "kinesis_consumer"
    config = KinesisConsumerConfig
    capabilities = Capabilities(bounded=False, prepares=True, finishes=True, on_dataflow=False, streams=True)
    doc = "an Amazon Kinesis stream (drained on the direct runner, streaming on prism/flink); checkpoints " \
          "committed after the loads"

    def available(self):
        try:
            import boto3  # noqa: F401
        except ImportError:
            return "the kinesis_consumer connector needs boto3: pip install 'flow-beam[kinesis]'"
        return None

    def describe(self, node, unbounded=False):
        if unbounded:
            return ["Create(shard, checkpoint)",
                    "splittable ParDo(read shard: sequence numbers [checkpoint, ∞), manual watermark, "
                    "defer_remainder) → Arrow tables; errors tagged; checkpoints as the frontier passes"]
        return ["Create(shard ranges: checkpoint → cutoff)",
                "ParDo(read shard through shard iterators) → Arrow tables; errors tagged; checkpoints after the "
                "loads"]

    def prepare(self, node, run: RunInfo):
        from connectors.kinesis import checkpoints, client
        from connectors.kinesis.reader import ShardRange
        from connectors.streams import BIG_STOP, Partition
        from ir_compiler.errors import ConnectorError

        cfg = node.config
        consumer = consumer_name(node, run.pipeline_id)
        kinesis = client.client(cfg)
        shards = client.list_shards(cfg, kinesis)
        done = checkpoints.read(run.warehouse_url, consumer, cfg.streamName)
        out = PreparedShards(consumer=consumer)
        latest_skipped = []
        todo = []
        for shard in shards:
            seq = done.get(shard.shard_id)
            if seq is not None and shard.ending_sequence is not None and int(seq) >= int(shard.ending_sequence):
                continue  # a closed shard read to its end
            todo.append((shard, seq))
        if run.streaming:
            parts = []
            for shard, seq in todo:
                if shard.index > 0xFFF:
                    raise ConnectorError(f"Kinesis stream {cfg.streamName!r}: shard {shard.shard_id} — streaming "
                                         f"reads shard numbers up to 4095")
                parts.append(Partition(shard.shard_id, 0, shard.index, int(seq) + 1 if seq is not None else 0,
                                       (cfg.startingPosition,), BIG_STOP))
            out.parts = parts
            return out
        cutoff = client.server_time_ms(cfg, kinesis)
        ranges = []
        for shard, seq in todo:
            if seq is not None:
                start = client.Start("AFTER_SEQUENCE_NUMBER", seq)
            elif cfg.startingPosition == "TRIM_HORIZON":
                start = client.Start("TRIM_HORIZON")
            else:
                latest_skipped.append(shard.shard_id)
                continue
            ranges.append(ShardRange(shard.shard_id, shard.index, start, cutoff))
        if latest_skipped:
            out.warnings.append(f"node '{node.id}': {len(latest_skipped)} shard(s) of {cfg.streamName!r} have no "
                                f"checkpoint and startingPosition is LATEST, so this drained run reads nothing from "
                                f"them; use TRIM_HORIZON to load what the stream holds")
        out.ranges = ranges
        return out

    def stream_readers(self, node, prepared):
        return len(prepared.parts or []) if prepared is not None else 0

    def read(self, p, node, ctx, prepared, schema):
        from connectors.runtime import schemas_of

        declared, _ = schemas_of(node, schema)
        if ctx.streaming:
            from connectors.kinesis.reader import KinesisLog
            from connectors.streams import stream_read
            spec = KinesisLog(node.config, prepared.consumer if prepared else consumer_name(node, ctx.pipeline_id),
                              ctx.warehouse_url)
            return stream_read(p, node, ctx, spec, (prepared.parts if prepared else None) or [], declared,
                               "ReadKinesisStream")
        from connectors.kinesis.reader import read_ranges
        return read_ranges(p, node, ctx, (prepared.ranges if prepared else None) or [], declared)

    def finish(self, node, prepared, ok, run: RunInfo) -> Finished:
        """Checkpoints are committed only now, after the loads committed (at-least-once end to end)."""
        done = Finished()
        if prepared is not None and prepared.parts is not None:
            from connectors.streams import forget
            forget(run.run_id, node.id)
            return done
        if not ok or prepared is None or prepared.ranges is None or not node.config.commitCheckpoints:
            return done
        from connectors.kinesis import checkpoints
        from connectors.kinesis.reader import drained_positions
        try:
            checkpoints.commit(run.warehouse_url, prepared.consumer, node.config.streamName,
                               drained_positions(run.run_dir, node.id))
        except Exception as exc:  # noqa: BLE001 - the rows are loaded; the next run reads them again
            done.warnings.append(f"node '{node.id}': could not commit Kinesis checkpoints ({exc}); the next run "
                                 f"re-reads those records")
        return done
