"""The Beam step of a drained kafka_consumer: the offset ranges the driver planned → one read per partition range
(:func:`connectors.kafka.client.read_range`) → Arrow tables; bad messages leave through ``errors``.

Windows stay whole across runs (issue 12): when windowed targets are downstream (``windowed``: their ids, the
retention = window size + allowedLateness, and a function giving each row's event time, from the compiler), the
reader records every message's (offset, event time) (``record``); after the loads committed, ``settle`` stores
the frontier F = max(the targets' stored frontier, the latest event read) in ``_flow_frontier`` and returns, per
partition, the offsets to commit: only those before the first message whose window is not final at F. The next
run re-reads every still-open window from its first event and replaces its row with the aggregate of all of its
events (the compiler drops rows of windows already final at the stored frontier as late:
ir_compiler/lower/drain.py)."""
from __future__ import annotations

import io
import json

import apache_beam as beam
import numpy as np
import pyarrow as pa

from connectors.runtime import ERRORS, ORD, counter, schemas_of
from connectors.streams import final_at


def read_ranges(p, node, ctx, ranges: list, schema):
    """{main, errors} of a drained Kafka source reading ``ranges``."""
    declared, _ = schemas_of(node, schema)
    windowed = getattr(ctx, "drain_windowed", {}).get(node.id)
    read = (p | f"{node.id}/OffsetRanges" >> beam.Create(ranges)
            | f"{node.id}/ReadKafka" >> beam.ParDo(ReadKafkaFn(node.id, node.config, declared, ctx.batch_rows,
                                                               windowed, ctx.run_dir))
            .with_outputs(ERRORS, main="main"))
    return {"main": read.main, ERRORS: read[ERRORS]}


class ReadKafkaFn(beam.DoFn):
    """One partition's offset range → Arrow tables (typed by the declared schema); undecodable messages and
    values that do not convert leave through ``errors`` with topic, partition and offset."""

    def __init__(self, node_id, cfg, schema, batch_rows, windowed=None, run_dir=None):
        self.node_id, self.cfg, self.schema, self.batch_rows = node_id, cfg, schema, batch_rows
        self.windowed, self.run_dir = windowed, run_dir  # windowed targets downstream: record event times

    def process(self, rng):
        from connectors.kafka.client import read_range

        msgs, bad = [], []
        self.seen = {} if self.windowed else None  # offset -> event µs (-1: none / undecodable: final)
        self.stamps = {}
        for msg in read_range(self.cfg, rng, self.cfg.pollTimeoutMs):
            if self.seen is not None:
                self.seen[msg.offset] = -1
                self.stamps[msg.offset] = msg.timestamp * 1000 if msg.timestamp is not None and msg.timestamp >= 0 \
                    else -1
            msgs.append(msg)
            if len(msgs) >= self.batch_rows:
                yield from self._decode(rng, msgs, bad)
                msgs = []
        if msgs:
            yield from self._decode(rng, msgs, bad)
        if self.seen is not None:
            offsets = sorted(self.seen)
            record(self.run_dir, self.node_id, rng, offsets, [self.seen[o] for o in offsets],
                   {"targets": self.windowed["targets"], "retention_us": self.windowed["retention_us"],
                    "final_shapes": self.windowed.get("final_shapes", [])})
        counter(self.node_id, "rows_in").inc(len(bad))
        counter(self.node_id, "rows_errored").inc(len(bad))
        if bad:
            yield beam.pvalue.TaggedOutput(ERRORS, pa.table({
                "node_id": [self.node_id] * len(bad), "error": [b[0] for b in bad], "row": [b[1] for b in bad]}))

    def _decode(self, rng, msgs, bad):
        """A batch of messages → its table: all at once by Arrow's JSON reader when it can
        (:func:`connectors.codecs.json_batch`), else message by message (a bad one goes to ``bad``)."""
        from connectors.codecs import decode, json_batch
        from connectors.formats import _columns_table

        values = {m.offset: m.value for m in msgs}
        table = json_batch(self.cfg, self.schema, list(values.values()))
        if table is not None:
            yield from self._emit(rng, list(values), table, values)
            return
        rows = []
        for msg in msgs:
            try:
                rows.append((msg.offset, decode(self.cfg, msg)))
            except (ValueError, UnicodeDecodeError) as exc:
                where = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
                raw = msg.value.decode("utf-8", "replace")[:2000] if msg.value else None
                bad.append((f"{msg.topic}[{msg.partition}]@{msg.offset}: {exc}", json.dumps({**where, "raw": raw})))
        if rows:
            yield from self._emit(rng, [o for o, _ in rows], _columns_table([r for _, r in rows]), values)

    def _emit(self, rng, offsets, table, values):
        from connectors.formats import _conform, messages_table

        table = messages_table(table, self.schema)
        table, bad_rows = _conform(table, self.schema, f"{rng.topic}[{rng.partition}]",
                                   lambda i: offsets[i] if i < len(offsets) else None)
        counter(self.node_id, "rows_in").inc(len(offsets))
        if bad_rows:  # a value that does not convert: the DLQ keeps the message as it came
            counter(self.node_id, "rows_errored").inc(len(bad_rows))
            yield beam.pvalue.TaggedOutput(ERRORS, pa.table({
                "node_id": [self.node_id] * len(bad_rows),
                "error": [f"{b.file}@{b.line}: {b.reason}" for b in bad_rows],
                "row": [json.dumps({"topic": rng.topic, "partition": rng.partition, "offset": b.line,
                                    "raw": (values.get(b.line) or b"").decode("utf-8", "replace")[:2000]})
                        for b in bad_rows]}))
        if table.num_rows:
            rejected = {b.line for b in bad_rows}  # the offsets of rows whose values did not convert
            good = [o for o in offsets if o not in rejected]
            ords = pa.array(np.array(good, dtype=np.int64) + (rng.partition << 40))
            if self.seen is not None:
                events = self.windowed["event_us"](table)  # each row's event time µs (None: not set)
                self.seen.update({o: e if e is not None else self.stamps.get(o, -1) for o, e in zip(good, events)})
            yield table.append_column(ORD, ords)


FOLDER = "kafka_events"


def record(run_dir: str, node_id: str, rng, offsets: list[int], events_us: list[int], meta: dict) -> None:
    """The (offset, event µs) of one offset range's messages, for ``settle``."""
    from connectors import runfs
    buf = io.BytesIO()
    np.savez(buf, offsets=np.array(offsets, dtype=np.int64), events=np.array(events_us, dtype=np.int64))
    name = f"{node_id}~{rng.topic}~{rng.partition}~{rng.start}"
    runfs.write_bytes(runfs.join(run_dir, FOLDER, name + ".npz"), buf.getvalue())
    runfs.write_bytes(runfs.join(run_dir, FOLDER, node_id + ".json"), json.dumps(meta).encode())


def settle(run_dir: str, warehouse_url: str, pipeline_id: str, node_id: str, ranges: list) -> list:
    """After the loads committed: store the frontier and return the ranges to commit (module doc)."""
    from connectors import runfs
    from connectors.kafka.client import OffsetRange
    from connectors.warehouse import open_warehouse
    from connectors.warehouse.streaming import advance_frontier, read_frontier

    folder = runfs.join(run_dir, FOLDER)
    try:
        names = runfs.list_names(folder)
    except OSError:
        names = []
    if f"{node_id}.json" not in names:
        return ranges  # no windowed target downstream: commit everything read
    meta = json.loads(runfs.read_bytes(runfs.join(folder, f"{node_id}.json")))
    retention, targets = int(meta["retention_us"]), list(meta["targets"])
    shapes = [tuple(x) for x in meta.get("final_shapes") or []]
    read = {}
    for name in names:
        parts = name[:-4].split("~") if name.endswith(".npz") else []
        if len(parts) == 4 and parts[0] == node_id:
            data = np.load(io.BytesIO(runfs.read_bytes(runfs.join(folder, name))))
            read[(parts[1], int(parts[2]), int(parts[3]))] = (data["offsets"], data["events"])
    latest = max((int(e.max()) for _, e in read.values() if len(e)), default=None)
    wh = open_warehouse(warehouse_url)
    stored = read_frontier(wh, pipeline_id, targets)
    known = [x for x in (stored, latest) if x is not None]
    if not known:
        return []  # nothing with an event time was read: commit nothing new
    frontier = max(known)
    out = []
    empty = (np.array([], np.int64), np.array([], np.int64))
    for r in ranges:
        offsets, events = read.get((r.topic, r.partition, r.start), empty)
        last = final_at(events, shapes) if shapes else events + retention  # the row's last window final at
        open_ = np.nonzero(last > frontier)[0]
        end = int(offsets[open_[0]]) if len(open_) else r.end
        if end > r.start:
            out.append(OffsetRange(r.topic, r.partition, r.start, end))
    for target in targets:
        advance_frontier(wh, pipeline_id, target, frontier)
    return out
