"""The Beam step of every file source: the staged paths → (file index, path[, range]) → Arrow tables, read by
:func:`connectors.formats.read_file`. Local files larger than the split size are read as several ranges by
different workers (:mod:`connectors.splits`); a remote file is one range.

A file is loaded whole or not at all, without holding rows back:

1. before a file's first row is emitted the reader checks it is whole (:func:`connectors.formats.verify_file`:
   a cut-off last record, the gzip trailer, the parquet footer, the avro block framing). A file that fails is
   reported unreadable and none of its rows is emitted;
2. rows then stream with no barrier. A file that still breaks part-way (damage inside a verified file, invalid
   UTF-8 in the middle) is reported in the run folder (``files/<source>.<index>.json``), and the commit step of
   every target — which runs only after every reader finished — leaves that file's rows out (rows carry their
   file index in the hidden ordinal: ``index << 36``), or refuses to load when its rows combine several files
   (``ir_compiler.lower.targets``).

Row errors (the ``errors`` port) carry their file index too (hidden column ``__fb_file``): the DLQ append and
the targets' commit leave out those of a file that broke part-way. No side input, no barrier: on Flink a
side input made the reading stage's outputs blocking partitions (512 network buffers each), which a
2-worker job on the 2-slot cluster could not get.

A remote store passes a ``fetch`` object (picklable; see ``connectors.remote.reader``): on the worker,
``fetch.setup()`` once, then ``fetch.local(index, path)`` → a local copy to read (a ConnectorError there makes the
file unreadable, or fails the run when the store cannot be reached), ``fetch.done(local)`` after it was read.
"""
from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa

from connectors.file_config import format_options
from connectors.runtime import ERRORS, ORD, bad_rows_table, counter, ords, schemas_of, write_report
from ir_compiler.errors import ConnectorError

FILE_SHIFT = 36  # ORD = file index << 36 | row number in the file
FILE = "__fb_file"  # hidden column of a reader's row errors: the file index (the DLQ leaves out broken files')


@beam.typehints.with_output_types(pa.Table)  # declared: Beam skips inferring it from the bytecode
class _ReadFilesFn(beam.DoFn):
    """(file index, path[, range]) → Arrow tables (main) and malformed rows (errors port shape, plus the file
    index in the hidden ``__fb_file`` column). A range (connectors.splits) is read like a whole file: verified first, rows numbered from the
    range's first row."""

    def __init__(self, node_id, fmt, options, schema, batch_rows, run_dir, hint=None, fetch=None):
        self.node_id, self.fmt, self.options = node_id, fmt, options
        self.schema, self.batch_rows, self.run_dir, self.hint = schema, batch_rows, run_dir, hint
        self.fetch = fetch

    def setup(self):
        self.rows_in = counter(self.node_id, "rows_in")
        self.rows_out = counter(self.node_id, "rows_out")
        self.bad = counter(self.node_id, "rows_errored")
        if self.fetch is not None:
            self.fetch.setup()

    def teardown(self):
        if self.fetch is not None:
            self.fetch.teardown()

    def process(self, item):
        from connectors.formats import read_file

        from connectors.splits import first_row

        index, path = item[0], item[1]
        part = item[2] if len(item) > 2 else None
        offset, emitted, errored, local, chunks = first_row(part), 0, 0, path, None
        try:
            if self.fetch is not None:  # a ConnectorError here: the file is unreadable (other errors fail the run)
                local = self.fetch.local(index, path)
            # read ahead: the next chunks are parsed and converted on another core while the steps fused after
            # this one work on the current chunk
            chunks = read_file(local, self.fmt, self.options, self.schema, hint=self.hint,
                               batch_rows=self.batch_rows, verify=True, part=part, read_ahead=True)
            for chunk in chunks:
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
                    errors = bad_rows_table(self.node_id, chunk.bad_rows)
                    yield beam.pvalue.TaggedOutput(ERRORS, errors.append_column(
                        FILE, pa.array([index] * errors.num_rows, pa.int64())))
        except ConnectorError as exc:
            if local != path:
                exc = ConnectorError(str(exc).replace(local, path))
            # another range of the file may have emitted rows: the targets' commit decides
            yield from self._broken(index, path, exc, emitted, errored, partial=bool(part and part.get("of", 1) > 1))
        finally:
            if chunks is not None:
                chunks.close()  # stops the read-ahead thread before the local copy goes
            if local != path:
                self.fetch.done(local)

    def _broken(self, index, path, exc, emitted, errored, partial=False):
        """Report a file that cannot be read (``emitted`` rows of it already went downstream: the targets'
        commit steps leave them out) and send it to the errors port as one row."""
        note = f" ({emitted} row(s) read before the break are not loaded)" if emitted else ""
        write_report(self.run_dir, "files", f"{self.node_id}.{index}",
                     {"path": path, "error": str(exc) + note, "rowsBeforeBreak": emitted,
                      "rowsEmitted": bool(emitted - errored) or partial})
        # the file counts as one row in, set aside; the rows read before the break are taken back (the targets
        # drop them, see ir_compiler.lower.targets)
        self.rows_in.inc(1 - emitted)
        self.rows_out.inc(-(emitted - errored))
        self.bad.inc(1 - errored)
        row = json.dumps({"file": path})
        yield beam.pvalue.TaggedOutput(ERRORS, pa.table({
            "node_id": [self.node_id], "error": [f"unreadable file: {exc}{note}"], "row": [row]}))


def read_files(p, node, ctx, paths: list[str], schema, fetch=None):
    """{main, errors} of a file source reading ``paths`` (in this order: the file index is the position);
    ``fetch``: how a worker gets a local copy of a remote path (None: the paths are local)."""
    from connectors.splits import plan_file

    declared, hint = schemas_of(node, schema)
    cfg, label = node.config, node.id
    options = format_options(cfg)
    if fetch is None and getattr(ctx, "split_files", True):  # local files: large ones become ranges (connectors.splits)
        files = [(i, path, part) for i, path in enumerate(paths)
                 for part in plan_file(path, cfg.format, options, typed=schema is not None)]
    else:
        files = list(enumerate(paths))
    matched = p | f"{label}/MatchedFiles" >> beam.Create(files)
    if len(files) > 1:  # spread the files and ranges over workers
        matched = matched | f"{label}/Reshuffle" >> beam.Reshuffle()
    read = (matched | f"{label}/ReadFiles" >> beam.ParDo(_ReadFilesFn(
                node.id, cfg.format, options, declared, ctx.batch_rows, ctx.run_dir, hint, fetch))
            .with_outputs(ERRORS, main="main"))
    return {"main": read.main, ERRORS: read[ERRORS]}
