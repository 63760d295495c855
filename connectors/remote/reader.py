"""The worker's side of a remote file source: each file is downloaded to a local temp file inside the reader DoFn
(:class:`RemoteFetch`, the ``fetch`` of :func:`connectors.filereader.read_files`), checked against the
fingerprint the driver recorded for ``_flow_files`` (other bytes would make the ledger lie), read by
:mod:`connectors.formats` and deleted. The store is opened on the worker from the node's config; its secrets are
``env:VAR`` references resolved there (a Dataflow worker needs the variables and the ``remote`` extra).

A file that vanished, changed or does not parse is unreadable: set aside whole (failure folder, a run warning
naming it). A store that cannot be reached or refuses the credentials fails the run with the endpoint named:
the run's files stay claimed and the next run (or this one's failure handling) moves them on; nothing is lost."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from ir_compiler.errors import ConnectorError


class StoreUnavailable(RuntimeError):
    """The store cannot be reached or refuses this worker: the run fails (a per-file error would set every file
    aside as unreadable)."""


class RemoteFetch:
    def __init__(self, connector: str, cfg: dict, identities: dict | None = None):
        self.connector, self.cfg, self.identities = connector, cfg, identities or {}
        self.fs = None
        self.tmp = None

    def __getstate__(self):
        return {"connector": self.connector, "cfg": self.cfg, "identities": self.identities}

    def __setstate__(self, state):
        self.__init__(state["connector"], state["cfg"], state["identities"])

    def setup(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="fb-remote-")

    def teardown(self) -> None:
        if self.fs is not None:
            self.fs.close()
            self.fs = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _open(self, path: str):
        if self.fs is None:
            from connectors.remote.fs import open_fs
            try:
                self.fs = open_fs(self.connector, self.cfg)
            except ConnectorError as exc:
                raise StoreUnavailable(f"{self.connector} read {path}: {exc}") from None
        return self.fs

    def local(self, index: int, path: str) -> str:
        fs = self._open(path)
        try:
            local = fs.fetch_local(path, self.tmp or tempfile.gettempdir())
        except ConnectorError as exc:
            if getattr(exc, "kind", "") in ("unreachable", "denied"):
                self.fs = None  # reconnect next time
                raise StoreUnavailable(str(exc)) from None
            raise
        want = self.identities.get(path)
        if want:
            got, size = _sha256(local), os.path.getsize(local)
            if (got, size) != (want["hash"], want["size"]):
                self.done(local)
                raise ConnectorError(f"{fs.url(path)}: its bytes changed after they were fingerprinted (size "
                                     f"{want['size']} → {size}, SHA-256 differs); not loaded")
        return local

    def done(self, local: str) -> None:
        shutil.rmtree(os.path.dirname(local), ignore_errors=True)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
