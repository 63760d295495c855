"""The Beam step of every file source: the staged paths → (file index, path) → Arrow tables, read by
:func:`connectors.formats.read_file`; a file that breaks part-way is dropped whole (:class:`_WholeFiles`).

A remote store passes a ``fetch`` object (picklable; see ``connectors.remote.reader``): on the worker,
``fetch.setup()`` once, then ``fetch.local(index, path)`` → a local copy to read (a ConnectorError there makes the
file unreadable, or fails the run when the store cannot be reached), ``fetch.done(local)`` after it was read."""
from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa

from connectors.file_config import format_options
from connectors.runtime import ERRORS, ORD, bad_rows_table, counter, ords, schemas_of, write_report
from ir_compiler.errors import ConnectorError


class _ReadFilesFn(beam.DoFn):
    """(file index, path) → Arrow tables (main), (file index, malformed rows) (errors port shape), and the index
    of every file that broke part-way (``unreadable``): :class:`_WholeFiles` drops the rows already emitted for
    it, so a file is loaded whole or not at all."""

    UNREADABLE = "unreadable"

    def __init__(self, node_id, fmt, options, schema, batch_rows, run_dir, hint=None, fetch=None):
        self.node_id, self.fmt, self.options = node_id, fmt, options
        self.schema, self.batch_rows, self.run_dir, self.hint = schema, batch_rows, run_dir, hint
        self.fetch = fetch

    def setup(self):
        self.rows_in = counter(self.node_id, "rows_in")
        self.bad = counter(self.node_id, "rows_errored")
        if self.fetch is not None:
            self.fetch.setup()

    def teardown(self):
        if self.fetch is not None:
            self.fetch.teardown()

    def process(self, item):
        from connectors.formats import read_file

        index, path = item
        offset, emitted, errored, local = 0, 0, 0, path
        try:
            if self.fetch is not None:  # a ConnectorError here: the file is unreadable (other errors fail the run)
                local = self.fetch.local(index, path)
            for chunk in read_file(local, self.fmt, self.options, self.schema, hint=self.hint,
                                   batch_rows=self.batch_rows):
                if local != path:  # row errors name the remote file, not the worker's copy
                    for b in chunk.bad_rows:
                        b.file = path
                table = pa.Table.from_batches([chunk.batch])
                table = table.append_column(ORD, ords(index, offset, table.num_rows))
                offset += table.num_rows + len(chunk.bad_rows)
                self.rows_in.inc(table.num_rows + len(chunk.bad_rows))
                emitted += table.num_rows + len(chunk.bad_rows)
                if table.num_rows:
                    yield table
                if chunk.bad_rows:
                    self.bad.inc(len(chunk.bad_rows))
                    errored += len(chunk.bad_rows)
                    yield beam.pvalue.TaggedOutput(ERRORS, (index, bad_rows_table(self.node_id, chunk.bad_rows)))
        except ConnectorError as exc:
            if local != path:
                exc = ConnectorError(str(exc).replace(local, path))
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
        finally:
            if local != path:
                self.fetch.done(local)


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


def read_files(p, node, ctx, paths: list[str], schema, fetch=None):
    """{main, errors} of a file source reading ``paths`` (in this order: the file index is the position);
    ``fetch``: how a worker gets a local copy of a remote path (None: the paths are local)."""
    declared, hint = schemas_of(node, schema)
    cfg, label = node.config, node.id
    files = list(enumerate(paths))
    matched = p | f"{label}/MatchedFiles" >> beam.Create(files)
    if len(files) > 1:  # spread the files over workers
        matched = matched | f"{label}/Reshuffle" >> beam.Reshuffle()
    read = (matched | f"{label}/ReadFiles" >> beam.ParDo(_ReadFilesFn(
                node.id, cfg.format, format_options(cfg), declared, ctx.batch_rows, ctx.run_dir, hint, fetch))
            .with_outputs(ERRORS, _ReadFilesFn.UNREADABLE, main="main"))
    broken = beam.pvalue.AsList(read[_ReadFilesFn.UNREADABLE])
    main = read.main | f"{label}/WholeFiles" >> beam.ParDo(_WholeFiles(False), broken)
    errors = read[ERRORS] | f"{label}/WholeFileErrors" >> beam.ParDo(_WholeFiles(True), broken)
    return {"main": main, ERRORS: errors}
