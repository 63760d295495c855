"""The Beam steps of ``kinesis_consumer``: drained runs read each shard from its start to the run's cutoff
(:class:`ReadShardFn`); streaming runs read each shard forever through the shared unbounded reader of
:mod:`connectors.streams` (:class:`KinesisLog`)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from connectors.kinesis.client import Start
from connectors.codecs import EVENT_US, Record, decode_records
from connectors.streams import LogSpec, PartitionLog, ord_base
from connectors.runtime import ERRORS, counter, write_report

REPORTS = "kinesis"  # the run folder's reports: the last sequence number read per shard (committed by finish)


@dataclass(frozen=True)
class ShardRange:
    """A drained run's work on one shard: from ``start`` up to the records that arrived before ``cutoff_ms``."""

    shard_id: str
    index: int
    start: Start
    cutoff_ms: int


def record_of(cfg, shard_id: str, r: dict) -> Record:
    from connectors.kinesis.client import arrival_ms

    seq, ms = r["SequenceNumber"], arrival_ms(r)
    data = r.get("Data")
    where = {"stream": cfg.streamName, "shard": shard_id, "sequence_number": seq}
    raw = {"key": r.get("PartitionKey"), "value": data.decode("utf-8", "replace") if data is not None else None,
           "stream": cfg.streamName, "shard": shard_id, "sequence_number": seq, "timestamp": ms}
    return Record(int(seq), data, r.get("PartitionKey"), ms * 1000 if ms is not None else None, where,
                  f"{cfg.streamName}/{shard_id}@{seq}", raw)


def read_ranges(p, node, ctx, ranges: list[ShardRange], schema):
    """{main, errors} of a drained Kinesis source."""
    read = (p | f"{node.id}/Shards" >> beam.Create(ranges)
            | f"{node.id}/ReadKinesis" >> beam.ParDo(ReadShardFn(node.id, node.config, schema, ctx.batch_rows,
                                                                 ctx.run_dir)).with_outputs(ERRORS, main="main"))
    return {"main": read.main, ERRORS: read[ERRORS]}


class ReadShardFn(beam.DoFn):
    """One shard from its start to the cutoff (or until it is caught up) → Arrow tables; undecodable records
    and values that do not convert leave through ``errors`` with stream, shard and sequence number. Reports the
    last sequence number read, which the driver commits after the loads."""

    def __init__(self, node_id, cfg, schema, batch_rows, run_dir):
        self.node_id, self.cfg, self.schema = node_id, cfg, schema
        self.batch_rows, self.run_dir = min(batch_rows, 50000), run_dir

    def process(self, rng: ShardRange):
        from connectors.kinesis.client import ShardReader

        reader = ShardReader(self.cfg, rng.shard_id, rng.start)
        batch, last, n, done = [], None, 0, False
        while not done:
            records, caught_up = reader.read(self.cfg.maxRecordsPerRead)
            for r in records:
                rec = record_of(self.cfg, rng.shard_id, r)
                if rec.time_us is not None and rec.time_us >= rng.cutoff_ms * 1000:
                    done = True  # arrived after the run started: the next run reads it
                    break
                batch.append(rec)
                last = r["SequenceNumber"]
            if len(batch) >= self.batch_rows or (batch and (done or caught_up)):
                yield from self._emit(rng, batch, n)
                n += len(batch)
                batch = []
            if caught_up:
                done = True
            elif not records:
                time.sleep(0.2)  # an empty page of a shard that is behind: keep going
        write_report(self.run_dir, REPORTS, f"{self.node_id}--{rng.shard_id}",
                     {"node": self.node_id, "shard": rng.shard_id, "last": last, "read": n})

    def _emit(self, rng, records, first):
        ords = np.arange(first, first + len(records), dtype=np.int64) + ord_base(0, rng.index)
        counter(self.node_id, "rows_in").inc(len(records))
        table, _, _, errors = decode_records(self.node_id, self.cfg, self.schema, records, ords)
        if errors is not None:
            counter(self.node_id, "rows_errored").inc(errors.num_rows)
            yield beam.pvalue.TaggedOutput(ERRORS, errors)
        if table is not None:
            yield table.drop_columns([EVENT_US])


def drained_positions(run_dir: str, node_id: str) -> dict[str, str]:
    """{shard: last sequence number read} reported by a drained run's readers."""
    from connectors.runtime import read_reports

    return {rep["shard"]: rep["last"] for rep in read_reports(run_dir, REPORTS).values()
            if rep.get("node") == node_id and rep.get("last") is not None}


# ---- streaming ----------------------------------------------------------------------------------------
class KinesisLog(LogSpec):
    """Shards for the streaming reader; positions are sequence numbers, committed as checkpoints."""

    def __init__(self, cfg, consumer: str, warehouse_url: str):
        self.cfg, self.consumer, self.warehouse_url = cfg, consumer, warehouse_url

    def open(self, part):
        return _ShardLog(self.cfg, part)

    def commits(self):
        return self.cfg.commitCheckpoints

    def commit(self, batch):
        from connectors.kinesis import checkpoints
        checkpoints.commit(self.warehouse_url, self.consumer, self.cfg.streamName,
                           {name: str(pos) for name, (_, _, pos) in batch.items()})


class _ShardLog(PartitionLog):
    """A shard followed by the streaming reader: re-opened after the position its restriction resumes at."""

    def __init__(self, cfg, part):
        from connectors.kinesis.client import client
        self.cfg, self.part = cfg, part
        self.kinesis = client(cfg)
        self.reader = None
        self.next_start: int | None = None

    def read(self, start, limit):
        from connectors.kinesis.client import ShardReader

        if self.reader is None or start != self.next_start:
            begin = Start("AFTER_SEQUENCE_NUMBER", str(start - 1)) if start > 0 else Start(self.part.info[0])
            self.reader = ShardReader(self.cfg, self.part.name, begin, self.kinesis)
            self.next_start = start
        records, caught_up = self.reader.read(min(limit, self.cfg.maxRecordsPerRead))
        if records:
            self.next_start = int(records[-1]["SequenceNumber"]) + 1
        return [record_of(self.cfg, self.part.name, r) for r in records], caught_up
