"""What the remote file connectors (s3, gcs, azure_blob, sftp, ftp, http_pull) share: one source and one sink
class over :mod:`connectors.remote.fs` (fsspec's family; each store's own part is ``connectors/<store>/store.py``),
so each store's package only names itself, its config model and its line of docs.

A source's life: on the driver, ``prepare`` lists the files (pattern, ordering, wait policy), claims them into the
run's own staging folder on the store with a lease (:mod:`.claims`), fingerprints them for ``_flow_files`` and
leaves out files already loaded (:mod:`.staging`); on the workers each file is downloaded to a temp file and read
(:mod:`.reader`, the shared :mod:`connectors.filereader` step: whole file or nothing); ``finish`` moves the files to
the success or failure folder. Schema inference samples a bounded prefix (:mod:`.sample`).
A sink writes one file per commit: locally with :func:`connectors.formats.write_table`, then uploaded under a name
no other file has (object stores: a conditional create; sftp: a hidden temp name renamed into place).
"""
from __future__ import annotations

import logging
import os
import tempfile
from typing import ClassVar

from connectors.base import Capabilities, Finished, RunInfo, Sink, Source

log = logging.getLogger(__name__)

_PACKAGES = {"s3": ("s3fs",), "gcs": ("gcsfs",), "azure_blob": ("adlfs", "azure.storage.blob"),
             "sftp": ("sshfs", "asyncssh"), "ftp": ("fsspec",), "http_pull": ("requests",)}


def missing_packages(connector: str) -> str | None:
    import importlib.util
    missing = []
    for m in _PACKAGES.get(connector, ()):
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(m.split(".")[0])
    if missing:
        return (f"connector '{connector}' needs the Python package(s) {', '.join(missing)}; install them with "
                f"pip install 'flow-beam[remote]'")
    return None


class RemoteFileSource(Source):
    """A remote folder's files (or an HTTP listing's): see the module docstring."""

    capabilities = Capabilities(samples_schema=True, prepares=True, finishes=True, reads_files=True, atomicity=True,
                                local_paths=False, on_dataflow=True)
    store: ClassVar[str] = ""  # how ``describe`` names the store

    def available(self):
        return missing_packages(self.name)

    def infer_schema(self, node, warehouse=None):
        from connectors.file_config import format_options
        from connectors.remote.fs import open_fs
        from connectors.remote.sample import infer_remote_schema
        from connectors.remote.staging import list_matching
        from ir_compiler.errors import FlowError

        if self.available() is not None:
            return None
        cfg = node.config
        try:
            with open_fs(self.name, cfg) as fs:
                files = list_matching(fs, cfg)
                return infer_remote_schema(fs, files, cfg.format, format_options(cfg)) if files else None
        except FlowError as exc:  # not reachable now (or no credentials here): the run samples each file itself
            log.info("node %s: cannot sample its files now: %s", node.id, exc)
            return None

    def describe(self, node, unbounded=False):
        claim = ", claim into the run's staging folder" if getattr(node.config, "atomicity", None) else ""
        return [f"driver: list {self.store}{claim}, SHA-256 fingerprint", "Create(file list)", "Reshuffle",
                "ParDo(download to a worker temp file → Arrow tables; errors tagged)"]

    def prepare(self, node, run: RunInfo):
        from connectors.remote.staging import prepare_remote
        return prepare_remote(self.name, node, run)

    def read(self, p, node, ctx, prepared, schema):
        from connectors.filereader import read_files
        from connectors.remote.reader import RemoteFetch

        paths = prepared.paths if prepared else []
        ids = {path: {"hash": i["hash"], "size": i["size"]} for path, i in
               (prepared.identities.items() if prepared else [])}
        fetch = RemoteFetch(self.name, node.config.model_dump(exclude_none=True), ids)
        return read_files(p, node, ctx, paths, schema, fetch=fetch)

    def finish(self, node, prepared, ok, run: RunInfo) -> Finished:
        from connectors.remote.staging import finish_remote
        return finish_remote(node, prepared, ok, run)


class RemoteFileSink(Sink):
    """One file per commit (csv, jsonl, parquet, avro) under ``config.path`` of a remote store."""

    capabilities = Capabilities(writes_files=True, local_paths=False, on_dataflow=True)

    def available(self):
        return missing_packages(self.name)

    def describe(self, node, unbounded=False):
        return [f"{self.name}: write one {node.config.format} file per commit, upload under a new name"]

    def write(self, node, config, table, prefix):
        from connectors.formats import write_table
        from connectors.remote.fs import open_fs, unique_name
        from connectors.runtime import strip_internal
        from ir_compiler.errors import ConnectorError

        with open_fs(self.name, config) as fs, tempfile.TemporaryDirectory(prefix="fb-sink-") as tmp:
            local = write_table(strip_internal(table), tmp, config.format, prefix=prefix,
                                compression=config.compression)
            name = os.path.basename(local)
            for n in range(10000):
                dest = "/".join([config.path.rstrip("/"), unique_name(name, n)]) if config.path.strip("/") \
                    else ("/" if config.path.startswith("/") else "") + unique_name(name, n)
                try:
                    fs.write(dest, local)  # never overwrites: a name taken meanwhile is an "exists" error
                    return table.num_rows, [fs.url(dest)]
                except ConnectorError as exc:
                    if getattr(exc, "kind", "") != "exists":
                        raise
            raise ConnectorError(f"{self.name}: no free file name for {name} in {fs.url(config.path)}")
