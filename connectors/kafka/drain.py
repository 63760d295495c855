"""The Beam step of a drained kafka_consumer: the offset ranges the driver planned → one read per partition range
(:func:`connectors.kafka.client.read_range`) → Arrow tables; bad messages leave through ``errors``."""
from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pyarrow as pa

from connectors.runtime import ERRORS, ORD, counter, schemas_of


def read_ranges(p, node, ctx, ranges: list, schema):
    """{main, errors} of a drained Kafka source reading ``ranges``."""
    declared, _ = schemas_of(node, schema)
    read = (p | f"{node.id}/OffsetRanges" >> beam.Create(ranges)
            | f"{node.id}/ReadKafka" >> beam.ParDo(ReadKafkaFn(node.id, node.config, declared, ctx.batch_rows))
            .with_outputs(ERRORS, main="main"))
    return {"main": read.main, ERRORS: read[ERRORS]}


class ReadKafkaFn(beam.DoFn):
    """One partition's offset range → Arrow tables (typed by the declared schema); undecodable messages and
    values that do not convert leave through ``errors`` with topic, partition and offset."""

    def __init__(self, node_id, cfg, schema, batch_rows):
        self.node_id, self.cfg, self.schema, self.batch_rows = node_id, cfg, schema, batch_rows

    def process(self, rng):
        from connectors.codecs import decode
        from connectors.kafka.client import read_range

        rows, bad = [], []
        for msg in read_range(self.cfg, rng, self.cfg.pollTimeoutMs):
            where = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
            try:
                rows.append((msg.offset, decode(self.cfg, msg)))
            except (ValueError, UnicodeDecodeError) as exc:
                raw = msg.value.decode("utf-8", "replace")[:2000] if msg.value else None
                bad.append((f"{msg.topic}[{msg.partition}]@{msg.offset}: {exc}", json.dumps({**where, "raw": raw})))
            if len(rows) >= self.batch_rows:
                yield from self._emit(rng, rows)
                rows = []
        if rows:
            yield from self._emit(rng, rows)
        counter(self.node_id, "rows_in").inc(len(bad))
        counter(self.node_id, "rows_errored").inc(len(bad))
        if bad:
            yield beam.pvalue.TaggedOutput(ERRORS, pa.table({
                "node_id": [self.node_id] * len(bad), "error": [b[0] for b in bad], "row": [b[1] for b in bad]}))

    def _emit(self, rng, rows):
        from connectors.formats import _columns_table, _conform

        offsets = [o for o, _ in rows]
        table = _columns_table([r for _, r in rows])
        table, bad_rows = _conform(table, self.schema, f"{rng.topic}[{rng.partition}]",
                                   lambda i: offsets[i] if i < len(offsets) else None)
        counter(self.node_id, "rows_in").inc(len(rows))
        if bad_rows:
            counter(self.node_id, "rows_errored").inc(len(bad_rows))
            yield beam.pvalue.TaggedOutput(ERRORS, pa.table({
                "node_id": [self.node_id] * len(bad_rows),
                "error": [f"{b.file}@{b.line}: {b.reason}" for b in bad_rows],
                "row": [b.raw for b in bad_rows]}))
        if table.num_rows:
            rejected = {b.line for b in bad_rows}  # the offsets of rows whose values did not convert
            good = [o for o in offsets if o not in rejected]
            ords = pa.array(np.array(good, dtype=np.int64) + (rng.partition << 40))
            yield table.append_column(ORD, ords)
