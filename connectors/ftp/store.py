"""The ftp (fsspec's FTPFileSystem over ftplib): RNFR/RNTO renames; one control connection per store.\n\n``open_store(cfg)`` is what :func:`connectors.remote.fs.open_fs` calls (see there for the config)."""
from __future__ import annotations

import threading
from typing import IO

from connectors.remote.fs import FileInfo, RemoteFS, RenameFS, as_utc, probe, require, resolve_secret
from ir_compiler.errors import ConnectorError


class FTPFS(RenameFS):
    connector = "ftp"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()  # one control connection

    def _guard(self, op, path, fn, *args, **kwargs):
        with self._lock:
            return super()._guard(op, path, fn, *args, **kwargs)

    def _file_info(self, d: dict) -> FileInfo:
        return FileInfo(d["name"].rstrip("/"), int(d.get("size") or 0), as_utc(d.get("modify")), None, None)

    def _upload(self, local_file: str, remote: str) -> None:
        def put():
            with open(local_file, "rb") as fh:
                self.fs.ftp.storbinary(f"STOR {remote}", fh)
        self._guard("write", remote, put)

    def _rename(self, src: str, dst: str) -> None:
        if self.exists(dst):  # FTP has no rename-without-overwrite: checked first (not atomic)
            err = ConnectorError(f"ftp rename {self.url(src)} → {self.url(dst)}: the destination exists")
            err.kind = "exists"  # type: ignore[attr-defined]
            raise err
        self._replace(src, dst)

    def _replace(self, src: str, dst: str) -> None:
        self._guard("rename", src, self.fs.ftp.rename, src, dst)
        self.fs.invalidate_cache()

    def info(self, path: str) -> FileInfo:
        self.fs.invalidate_cache()  # fsspec's FTP info reads the parent's listing: never a stale one
        d = self._guard("stat", path, self.fs.info, path)
        if d.get("type") == "directory":
            raise ConnectorError(f"ftp stat {self.url(path)}: is a folder, not a file")
        return self._file_info(d)

    def open_read(self, path: str) -> IO[bytes]:
        self.fs.invalidate_cache()
        return super().open_read(path)

    def list(self, path: str, recursive: bool = False, include_hidden: bool = False) -> list[FileInfo]:
        self.fs.invalidate_cache()
        return super().list(path, recursive, include_hidden)

    def delete(self, path: str, missing_ok: bool = False) -> None:
        try:
            self._guard("delete", path, self.fs.ftp.delete, path)
            self.fs.invalidate_cache()
        except ConnectorError as e:
            if missing_ok and getattr(e, "kind", "") == "missing":
                return
            raise

    def close(self) -> None:
        try:
            self.fs.ftp.close()
        except Exception:  # noqa: BLE001
            pass




def open_store(c: dict) -> RemoteFS:
    from fsspec.implementations.ftp import FTPFileSystem
    host = require(c, "host", "ftp")
    port = int(c.get("port") or 21)
    user = c.get("username") or "anonymous"
    password = resolve_secret(c.get("passwordSecret"), "passwordSecret") or ""
    display = f"ftp://{user}@{host}:{port}"
    probe(host, port, f"the FTP server {host}:{port}")
    err_fs = RemoteFS(display, f"{host}:{port}", [password])
    err_fs.connector = "ftp"
    try:
        fs = FTPFileSystem(host, port=port, username=user, password=password, timeout=30, skip_instance_cache=True)
    except Exception as e:  # noqa: BLE001
        raise err_fs.error("login", None, e) from None
    return FTPFS(fs, display, f"{host}:{port}", [password])


