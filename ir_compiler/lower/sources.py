"""Sources → Beam: files (Create of the staged paths + a reading DoFn emitting Arrow tables), warehouse
tables, and in-document rows for embedded tests."""
from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pyarrow as pa

from ir_compiler.errors import ConnectorError, NotAvailableError
from ir_compiler.lower.context import RunContext, counter, write_report
from ir_compiler.models import FILE_CONNECTORS
from ir_compiler.ops.common import ORD
from ir_compiler.propagate import declared_schema

ERRORS = "errors"
FORMAT_OPTIONS = ("delimiter", "header", "encoding", "compression", "quote", "nullValues")


def _ords(file_index: int, start: int, n: int) -> pa.Array:
    return pa.array(np.arange(start, start + n, dtype=np.int64) + (file_index << 36))


class _ReadFilesFn(beam.DoFn):
    """(file index, path) → Arrow tables (main), (file index, malformed rows) (errors port shape), and the index
    of every file that broke part-way (``unreadable``): :class:`_WholeFiles` drops the rows already emitted for
    it, so a file is loaded whole or not at all."""

    UNREADABLE = "unreadable"

    def __init__(self, node_id, fmt, options, schema, batch_rows, run_dir, hint=None):
        self.node_id, self.fmt, self.options = node_id, fmt, options
        self.schema, self.batch_rows, self.run_dir, self.hint = schema, batch_rows, run_dir, hint

    def setup(self):
        self.rows_in = counter(self.node_id, "rows_in")
        self.bad = counter(self.node_id, "rows_errored")

    def process(self, item):
        from connectors.formats import read_file

        index, path = item
        offset, emitted, errored = 0, 0, 0
        try:
            for chunk in read_file(path, self.fmt, self.options, self.schema, hint=self.hint,
                                   batch_rows=self.batch_rows):
                table = pa.Table.from_batches([chunk.batch])
                table = table.append_column(ORD, _ords(index, offset, table.num_rows))
                offset += table.num_rows + len(chunk.bad_rows)
                self.rows_in.inc(table.num_rows + len(chunk.bad_rows))
                emitted += table.num_rows + len(chunk.bad_rows)
                if table.num_rows:
                    yield table
                if chunk.bad_rows:
                    self.bad.inc(len(chunk.bad_rows))
                    errored += len(chunk.bad_rows)
                    yield beam.pvalue.TaggedOutput(ERRORS, (index, _bad_rows_table(self.node_id, chunk.bad_rows)))
        except ConnectorError as exc:
            note = f" ({emitted} row(s) read before the break are not loaded)" if emitted else ""
            write_report(self.run_dir, "files", f"{self.node_id}.{index}",
                         {"path": path, "error": str(exc) + note, "rowsBeforeBreak": emitted})
            # the file counts as one row in, set aside (the rows read before the break are taken back)
            self.rows_in.inc(1 - emitted)
            self.bad.inc(1 - errored)
            yield beam.pvalue.TaggedOutput(self.UNREADABLE, index)
            row = json.dumps({"file": path})
            yield beam.pvalue.TaggedOutput(ERRORS, (-1, pa.table({
                "node_id": [self.node_id], "error": [f"unreadable file: {exc}{note}"], "row": [row]})))


class _WholeFiles(beam.DoFn):
    """Drops the rows (main: by the file index in ORD) or error rows ((index, table) pairs) of files that broke
    part-way. Its side input (every reader's unreadable files) is complete only once every file was read, so
    nothing downstream sees a row of a file before the whole file was read."""

    def __init__(self, errors: bool):
        self.errors = errors

    def process(self, item, unreadable):
        import pyarrow.compute as pc

        bad = set(unreadable)
        if self.errors:
            index, table = item
            if index not in bad:
                yield table
            return
        if not bad or item.num_rows == 0:
            yield item
            return
        files = pc.shift_right(item.column(ORD), 36)
        keep = pc.invert(pc.is_in(files, pa.array(sorted(bad), pa.int64())))
        kept = item.filter(keep)
        if kept.num_rows:
            yield kept


def _bad_rows_table(node_id, bad_rows) -> pa.Table:
    return pa.table({
        "node_id": pa.array([node_id] * len(bad_rows), pa.string()),
        "error": pa.array([f"{b.file}, line {b.line}: {b.reason}" if b.line else f"{b.file}: {b.reason}"
                           for b in bad_rows], pa.string()),
        "row": pa.array([json.dumps({"raw": b.raw}) for b in bad_rows], pa.string()),
    })


def file_options(cfg) -> dict:
    return {k: getattr(cfg, k) for k in FORMAT_OPTIONS if getattr(cfg, k) is not None}


class _ReadTableFn(beam.DoFn):
    def __init__(self, node_id, url, table, query, batch_rows):
        self.node_id, self.url, self.table, self.query, self.batch_rows = node_id, url, table, query, batch_rows

    def process(self, _):
        from connectors.warehouse import open_warehouse

        wh = open_warehouse(self.url)
        data = wh.read(self.table if not self.query else None, self.query)
        counter(self.node_id, "rows_in").inc(data.num_rows)
        data = data.append_column(ORD, _ords(0, 0, data.num_rows))
        for batch in data.to_batches(max_chunksize=self.batch_rows):
            yield pa.Table.from_batches([batch])


def test_rows_table(rows: list[dict], schema, strict: bool = True, fmt: str | None = None):
    """In-document rows as one Arrow table and their bad rows, read the way the source reads its data: converted
    to the declared (``strict``) or inferred schema like file values are; without a schema, typed by the rules of
    the source's format (text rules for csv/tsv, JSON rules otherwise). Every key of every row is a column."""
    from connectors.formats import _conform
    from connectors.infer import infer_text_schema, rows_table

    table = rows_table(rows)
    if schema is None and fmt in ("csv", "tsv"):
        table = as_text(table)
        schema, strict = infer_text_schema(table), False
    if schema is not None:
        table, bad = _conform(table, schema, "test rows", lambda i: i + 1, strict=strict)
    else:
        bad = []
    return table.append_column(ORD, _ords(0, 0, table.num_rows)), bad


def as_text(table: pa.Table) -> pa.Table:
    """Every column as the text a CSV file would hold (JSON for nested values)."""
    from connectors.infer import json_text
    return pa.table({n: pa.array([None if v is None else v if isinstance(v, str) else
                                  ("true" if v else "false") if isinstance(v, bool) else json_text(v)
                                  for v in table.column(n).to_pylist()], pa.string())
                     for n in table.column_names})


def lower_source(p, node, ctx: RunContext, label: str, schema=None):
    """{port: PCollection} of a source node. ``schema``: its propagated schema (declared, or inferred from a
    sample at validation), which every file's values are converted to."""
    from ir_compiler.loader import connector_config

    declared = declared_schema(node)
    hint = None if declared is not None else schema
    if ctx.test_inputs is not None and node.id in ctx.test_inputs:
        rows = ctx.test_inputs[node.id]
        fmt = node.config.get("format") if isinstance(node.config, dict) else getattr(node.config, "format", None)
        table, bad = test_rows_table(rows, declared or hint, declared is not None, fmt)
        main = p | f"{label}/TestRows" >> beam.Create([table]) | f"{label}/CountIn" >> beam.ParDo(_CountIn(node.id))
        errors = p | f"{label}/TestRowErrors" >> beam.Create([_bad_rows_table(node.id, bad)] if bad else [])
        if bad:
            errors = (errors | f"{label}/CountBad" >> beam.ParDo(_CountIn(node.id, "rows_errored"))
                      | f"{label}/CountBadIn" >> beam.ParDo(_CountIn(node.id)))
        return {"main": main, ERRORS: errors}
    cfg = connector_config(node)
    if node.connector == "local_fs":
        files = list(enumerate(ctx.files.get(node.id, [])))
        matched = p | f"{label}/MatchedFiles" >> beam.Create(files)
        if len(files) > 1:  # spread the files over workers
            matched = matched | f"{label}/Reshuffle" >> beam.Reshuffle()
        read = (matched | f"{label}/ReadFiles" >> beam.ParDo(_ReadFilesFn(
                    node.id, cfg.format, file_options(cfg), declared, ctx.batch_rows, ctx.run_dir, hint))
                .with_outputs(ERRORS, _ReadFilesFn.UNREADABLE, main="main"))
        broken = beam.pvalue.AsList(read[_ReadFilesFn.UNREADABLE])
        main = read.main | f"{label}/WholeFiles" >> beam.ParDo(_WholeFiles(False), broken)
        errors = read[ERRORS] | f"{label}/WholeFileErrors" >> beam.ParDo(_WholeFiles(True), broken)
        return {"main": main, ERRORS: errors}
    if node.connector == "table":
        main = p | f"{label}/Start" >> beam.Create([None]) | f"{label}/ReadTable" >> beam.ParDo(
            _ReadTableFn(node.id, ctx.warehouse_url, cfg.table, cfg.query, ctx.batch_rows))
        return {"main": main, ERRORS: p | f"{label}/NoErrors" >> beam.Create([])}
    if node.connector == "kafka_consumer":
        ranges = ctx.kafka_ranges.get(node.id, [])
        read = (p | f"{label}/OffsetRanges" >> beam.Create(ranges)
                | f"{label}/ReadKafka" >> beam.ParDo(_ReadKafkaFn(node.id, cfg, declared_schema(node),
                                                                  ctx.batch_rows)).with_outputs(ERRORS, main="main"))
        return {"main": read.main, ERRORS: read[ERRORS]}
    if node.connector in FILE_CONNECTORS:
        raise NotAvailableError(f"connector '{node.connector}' validates but has no runtime in this build yet; "
                                f"use local_fs (or mount the files locally)", node_id=node.id)
    raise NotAvailableError(
        f"stream connector '{node.connector}' is out of scope in this build: Beam's Python SDK reads it only "
        f"through a Java cross-language expansion service that this build does not ship; the document validates "
        f"and plans — use kafka_consumer or pubsub_subscription", node_id=node.id)


class _ReadKafkaFn(beam.DoFn):
    """One partition's offset range → Arrow tables (typed by the declared schema); undecodable messages and
    values that do not convert leave through ``errors`` with topic, partition and offset."""

    def __init__(self, node_id, cfg, schema, batch_rows):
        self.node_id, self.cfg, self.schema, self.batch_rows = node_id, cfg, schema, batch_rows

    def process(self, rng):
        from connectors.kafka import decode, read_range

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


class _CountIn(beam.DoFn):
    def __init__(self, node_id, name="rows_in"):
        self.node_id, self.name = node_id, name

    def process(self, table):
        counter(self.node_id, self.name).inc(table.num_rows)
        yield table
