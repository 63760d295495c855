"""``local_fs``: files in a local (or mounted) folder, as a source and as a sink.

Source ``{"connector": "local_fs", "config": {"path": "/data/orders/", "pattern": {"type": "glob", "value":
"orders_*.csv"}, "format": "csv", "atomicity": {}}}``: the driver lists the files (pattern, ordering, wait
policy) and, with ``atomicity``, claims them into the run's own staging folder (:mod:`.files`); workers read them
into Arrow tables (:mod:`.reader`); after the run the files move to the success or failure folder (:mod:`.staging`).
Sink ``{"connector": "local_fs", "config": {"path": "out/", "format": "parquet"}}``: one file per commit.
"""
from __future__ import annotations

import os

from connectors.base import Capabilities, Finished, RunInfo, Sink, Source
from connectors.file_config import FileSinkConfig, FileSourceConfig, format_options


class LocalFsSource(Source):
    name = "local_fs"
    config = FileSourceConfig
    capabilities = Capabilities(samples_schema=True, prepares=True, finishes=True, reads_files=True, atomicity=True,
                                local_paths=True, on_dataflow=False)
    doc = "files in a local or mounted folder (patterns, orderings, wait policy, atomicity)"

    def infer_schema(self, node, warehouse=None):
        from connectors.formats import infer_schema
        from connectors.local_fs.files import list_files

        cfg = node.config
        if not os.path.isdir(cfg.path):
            return None
        files = list_files(cfg.path, cfg.pattern.model_dump() if cfg.pattern else None, cfg.ordering)
        return infer_schema(files[:3], cfg.format, format_options(cfg)) if files else None

    def describe(self, node, unbounded=False):
        return ["Create(staged files; large ones as ranges)", "Reshuffle",
                "ParDo(verify, read file or range → Arrow tables; errors tagged)"]

    def prepare(self, node, run: RunInfo):
        from connectors.local_fs.staging import prepare_files
        return prepare_files(node, run)

    def read(self, p, node, ctx, prepared, schema):
        from connectors.local_fs.reader import read_files
        return read_files(p, node, ctx, prepared.paths if prepared else [], schema)

    def finish(self, node, prepared, ok, run: RunInfo) -> Finished:
        from connectors.local_fs.staging import finish_files
        return finish_files(node, prepared, ok, run)


class LocalFsSink(Sink):
    name = "local_fs"
    config = FileSinkConfig
    capabilities = Capabilities(writes_files=True, local_paths=True, on_dataflow=False)
    doc = "one file per commit (csv, jsonl, parquet, avro) in a local or mounted folder"

    def write(self, node, config, table, prefix):
        from connectors.formats import write_table
        from connectors.runtime import strip_internal
        path = write_table(strip_internal(table), config.path, config.format, prefix=prefix,
                           compression=config.compression)
        return table.num_rows, [path]
