"""Remote file stores behind one small interface: s3, gcs, azure_blob, sftp, ftp (fsspec's family) and http_pull.

``open_fs(connector, cfg)`` → :class:`RemoteFS`. ``cfg`` holds plain values, the fields of the IR's
``FileSourceConfig``/``FileSinkConfig`` (``bucket endpoint region host port username passwordSecret url headers``)
plus the proposed ones marked *(proposed)* below, which the IR does not have yet:

============  =====================================================================================================
s3            ``bucket``; ``endpoint`` (an S3-compatible server; default AWS); ``region``; ``username`` = access key
              id with ``passwordSecret`` = its secret key (else the AWS default chain: AWS_* variables, profiles...)
gcs           ``bucket``; ``endpoint`` (an emulator: no credentials are sent); ``passwordSecret`` = a service-account
              key (JSON text or the path of the file); else Google's default credentials
azure_blob    ``bucket`` = container; ``endpoint`` = the blob endpoint (``https://ACCOUNT.blob.core.windows.net``,
              or Azurite's ``http://127.0.0.1:10000/devstoreaccount1``); ``username`` = account name (default:
              from the endpoint); ``passwordSecret`` = the account key, or a whole connection string
sftp          ``host``, ``port`` (22), ``username``; ``privateKeySecret`` *(proposed)* = a private key (its text or
              the path of the file); ``passwordSecret`` = the password, or the key's passphrase with a key;
              ``knownHosts`` *(proposed)* = a known_hosts file (default ``~/.ssh/known_hosts``; the server's key
              is always checked)
ftp           ``host``, ``port`` (21), ``username`` (default anonymous), ``passwordSecret``
http_pull     ``url`` (a listing page or JSON listing, or one file); ``headers`` whose values may hold ``env:VAR``
              words (``{"Authorization": "Bearer env:API_TOKEN"}``); ``retries`` *(proposed, default 3)*
============  =====================================================================================================

Secrets are references ``env:VAR`` only, resolved from the environment when the store is opened, never logged
and scrubbed from every error message. A secret field holding anything else is refused without echoing it.

Paths: object stores take keys inside the bucket (``in/a.csv``; a leading ``/`` is ignored); sftp/ftp take server
paths (``/in/a.csv``); http_pull takes URLs or paths relative to ``url``. Every failure is a ConnectorError whose
message names the store URL of the file (``s3://bucket/in/a.csv``) or the endpoint, never a traceback.

Operations: :meth:`RemoteFS.list` (files with size, mtime, etag and an MD5 when the store keeps one; names starting
with ``.`` are hidden, like local_fs), :meth:`~RemoteFS.open_read`, :meth:`~RemoteFS.fetch_local` (download to a
local file for ``connectors/formats.py``, verified by size and MD5, and refused when the file changed since it was
listed), :meth:`~RemoteFS.write` (all or nothing, never overwriting unless asked), :meth:`~RemoteFS.move`,
:meth:`~RemoteFS.claim` (take a file for one run: exactly one of several racing runs wins) and
:meth:`~RemoteFS.delete`. http_pull is read-only. How each store makes claim and write atomic:

- s3: a ``<staging>/.claims/<name>.<version>.claim`` marker created with ``If-None-Match: *`` (the loser gets 412),
  then copy to staging (``CopySourceIfMatch`` the listed ETag) and delete the source (``IfMatch``); the marker is
  removed after the source is gone, so a late racer finds nothing to copy. Writes are one conditional PUT.
- gcs: the same marker protocol with ``ifGenerationMatch=0``; writes use ``ifGenerationMatch=0``.
- azure_blob: the same marker protocol with ``If-None-Match: *`` (``overwrite=False``); writes likewise.
- sftp: ``rename`` to a unique name in staging (OpenSSH's SFTP rename links then unlinks: it never overwrites,
  and the second of two racing renames finds no source). Writes go to a hidden temp name, then rename.
- ftp: ``RNFR``/``RNTO`` to a unique name in staging (the server's rename is atomic; the loser's RNFR/RNTO fails).
  Writes go to a hidden temp name, then rename (the no-overwrite check before it is not atomic on FTP).
A run that dies between the marker and the copy leaves the marker (and the file) in place: that file version is
then not claimed again until the marker is removed (:meth:`RemoteFS.claim_markers` lists them).
"""
from __future__ import annotations

import base64
import datetime as dt
import email.utils
import ftplib
import hashlib
import html.parser
import io
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator

from ir_compiler.errors import ConnectorError, MissingDependencyError

log = logging.getLogger(__name__)

REMOTE_CONNECTORS = ("s3", "gcs", "azure_blob", "sftp", "ftp", "http_pull")
_INSTALL = "pip install 'flow-beam[remote]'"
_CLAIMS = ".claims"


@dataclass(frozen=True)
class FileInfo:
    """One remote file. ``path`` is in the store's own form (see the module doc); ``mtime`` is UTC;
    ``etag`` the store's version tag (None where it has none); ``md5`` the content's MD5 hex when the store
    keeps one."""

    path: str
    size: int
    mtime: dt.datetime | None
    etag: str | None = None
    md5: str | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))


# ---- secrets -----------------------------------------------------------------------------------------------
_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


def resolve_secret(ref: str | None, field: str) -> str | None:
    """``env:VAR`` → the variable's value. Anything else is refused (the value is never echoed)."""
    if ref is None:
        return None
    m = _ENV_REF.match(ref.strip()) if isinstance(ref, str) else None
    if not m:
        raise ConnectorError(f"{field} must be a secret reference 'env:VAR_NAME' (the value itself is never "
                             f"accepted in a pipeline document)")
    value = os.environ.get(m.group(1))
    if not value:
        raise ConnectorError(f"{field}: the environment variable {m.group(1)} is unset or empty")
    return value


def _resolve_header(name: str, value: str, secrets: list[str]) -> str:
    """Each whitespace-separated ``env:VAR`` word of a header value is replaced by the variable's value."""
    words = []
    for word in str(value).split(" "):
        if _ENV_REF.match(word):
            word = resolve_secret(word, f"headers.{name}")
            secrets.append(word)
        words.append(word)
    return " ".join(words)


def _need(module: str, connector: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(f"the {connector} connector needs the Python package {module.split('.')[0]!r} "
                                     f"({e}); install it with: {_INSTALL}") from None


# ---- error mapping -----------------------------------------------------------------------------------------
def _status_of(e: BaseException) -> int | None:
    for attr in ("status_code", "status", "code"):
        v = getattr(e, attr, None)
        if isinstance(v, int):
            return v
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        code = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    return None


def _kind(e: BaseException) -> str:
    """missing | exists | denied | unreachable | other."""
    names = {c.__name__ for c in type(e).__mro__}
    text = str(e)
    if isinstance(e, ftplib.error_perm):
        if text.startswith("530"):
            return "denied"
        if text.startswith("550") and ("privilege" in text.lower() or "permission" in text.lower()):
            return "denied"
        if text.startswith("550") and "exists" in text.lower():
            return "exists"
        if text.startswith("550"):
            return "missing"
    if isinstance(e, FileNotFoundError) or names & {"ResourceNotFoundError", "NoSuchKey", "SFTPNoSuchFile"}:
        return "missing"
    if isinstance(e, FileExistsError) or names & {"ResourceExistsError", "SFTPFileAlreadyExists"}:
        return "exists"
    if isinstance(e, PermissionError) or names & {"ClientAuthenticationError", "PermissionDenied", "HostKeyNotVerifiable",
                                                  "SFTPPermissionDenied", "NoCredentialsError", "DefaultCredentialsError",
                                                  "RefreshError"}:
        return "denied"
    code = _status_of(e)
    if code in (401, 403) or any(w in text for w in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                                      "AuthenticationFailed", "AuthorizationFailure")):
        return "denied"
    if code == 404 or "NoSuchKey" in text or "Not Found" in text:
        return "missing"
    if code == 412 or "PreconditionFailed" in text or "ConditionNotMet" in text:
        return "exists"
    if isinstance(e, (ConnectionError, TimeoutError, socket.timeout, socket.gaierror, EOFError)) or names & {
            "EndpointConnectionError", "ConnectTimeoutError", "ServiceRequestError", "ClientConnectorError",
            "ServerDisconnectedError", "ConnectionLost", "DisconnectError", "ConnectionError", "ServerTimeoutError"}:
        return "unreachable"
    return "other"


_KIND_TEXT = {"missing": "not found (moved or deleted meanwhile?)", "exists": "already exists",
              "denied": "permission denied or credentials rejected", "unreachable": "cannot reach the server",
              "other": "failed"}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else ""
    return f"{type(e).__name__}: {line[:300]}" if line else type(e).__name__


def _unwrap(e: BaseException) -> BaseException:
    """The most telling exception of a chain (fsspec wraps the client library's errors)."""
    seen = e
    for _ in range(5):
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        if _kind(seen) == "other" and _kind(nxt) != "other":
            seen = nxt
        else:
            break
    return seen


class RemoteFS:
    """A remote store opened by :func:`open_fs` (one per run and thread: instances are not shared)."""

    connector = ""
    read_only = False

    def __init__(self, display: str, endpoint: str, secrets: list[str]):
        self.display = display      # e.g. s3://bucket, sftp://user@host:port
        self.endpoint = endpoint    # what "cannot reach" names
        self._secrets = [s for s in secrets if s]

    # ---- naming and errors -------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        """The store URL of ``path`` as error messages show it."""
        return f"{self.display.rstrip('/')}/{path.lstrip('/')}"

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
            if len(s) > 8:
                text = text.replace(urllib.parse.quote(s, safe=""), "***")
        return text

    def error(self, op: str, path: str | None, e: BaseException) -> ConnectorError:
        if isinstance(e, ConnectorError):
            return e
        e = _unwrap(e)
        kind = _kind(e)
        where = self.url(path) if path is not None else self.display
        if kind == "unreachable":
            msg = (f"{self.connector} {op} {where}: cannot reach {self.endpoint} (server down or connection lost: "
                   f"{_first_line(e)})")
        elif kind == "denied":
            msg = (f"{self.connector} {op} {where}: {_KIND_TEXT[kind]} ({_first_line(e)}); check the credentials "
                   f"and the permissions of this account")
        else:
            msg = f"{self.connector} {op} {where}: {_KIND_TEXT[kind]} ({_first_line(e)})"
        err = ConnectorError(self._scrub(msg))
        err.kind = kind  # type: ignore[attr-defined]
        return err

    def _guard(self, op: str, path: str | None, fn: Callable, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConnectorError:
            raise
        except Exception as e:  # noqa: BLE001 - every client error becomes one clear ConnectorError
            raise self.error(op, path, e) from None

    def _read_only(self, op: str, path: str):
        raise ConnectorError(f"{self.connector} {op} {self.url(path)}: {self.connector} is read-only")

    # ---- the interface (implemented per store) -----------------------------------------------------------
    def list(self, path: str, recursive: bool = False, include_hidden: bool = False) -> list[FileInfo]:
        raise NotImplementedError

    def info(self, path: str) -> FileInfo:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        try:
            self.info(path)
            return True
        except ConnectorError as e:
            if getattr(e, "kind", "") == "missing":
                return False
            raise

    def open_read(self, path: str) -> IO[bytes]:
        raise NotImplementedError

    def fetch_local(self, path: str, tmpdir: str, expect: FileInfo | None = None) -> str:
        """Download ``path`` into a new folder under ``tmpdir`` (keeping its file name, so format readers see the
        extension); verify its size and MD5 (when known). With ``expect`` (the listed FileInfo), a file that changed
        since it was listed (other size or etag) is refused. Returns the local path."""
        current = self.info(path)
        if expect is not None and (expect.size != current.size
                                   or (expect.etag and current.etag and expect.etag != current.etag)):
            raise ConnectorError(f"{self.connector} read {self.url(path)}: the file changed since it was listed "
                                 f"(size {expect.size} → {current.size}, etag {expect.etag} → {current.etag})")
        os.makedirs(tmpdir, exist_ok=True)
        folder = tempfile.mkdtemp(prefix="fetch-", dir=tmpdir)
        local = os.path.join(folder, posixpath.basename(path.rstrip("/")) or "file")
        md5, size = hashlib.md5(), 0
        try:
            with self.open_read(path) as src, open(local, "wb") as dst:
                while True:
                    block = self._guard("read", path, src.read, 1 << 20)
                    if not block:
                        break
                    md5.update(block)
                    size += len(block)
                    dst.write(block)
            if size != current.size:
                raise ConnectorError(f"{self.connector} read {self.url(path)}: got {size} bytes, the store says "
                                     f"{current.size} (truncated download or the file changed while it was read)")
            if current.md5 and md5.hexdigest() != current.md5:
                raise ConnectorError(f"{self.connector} read {self.url(path)}: MD5 {md5.hexdigest()} of the download "
                                     f"differs from the store's {current.md5} (corrupted or changed while read)")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return local

    def write(self, path: str, local_file: str, overwrite: bool = False) -> str:
        raise NotImplementedError

    def move(self, src: str, dst: str, overwrite: bool = False) -> str:
        raise NotImplementedError

    def claim(self, path: str, staging_dir: str) -> str | None:
        """Take ``path`` for this run by moving it into ``staging_dir``: the staged path, or None when another run
        took it first or it vanished. Of several runs (or threads, each with its own RemoteFS) claiming one file,
        exactly one gets a path. An existing file of that name in staging is kept: the claimed one becomes
        ``name.1.ext`` (``.2``…)."""
        raise NotImplementedError

    def delete(self, path: str, missing_ok: bool = False) -> None:
        raise NotImplementedError

    def claim_markers(self, staging_dir: str) -> list[FileInfo]:
        """Claim markers left in ``staging_dir`` (object stores; a run that died mid-claim leaves one)."""
        return []

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _unique_name(name: str, n: int) -> str:
    if n == 0:
        return name
    stem, ext = posixpath.splitext(name)
    if ext == ".gz":
        stem, inner = posixpath.splitext(stem)
        ext = inner + ext
    return f"{stem}.{n}{ext}"


def _join(folder: str, name: str) -> str:
    return posixpath.join(folder.rstrip("/"), name) if folder else name


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/") if part)


def _as_utc(v: Any) -> dt.datetime | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return dt.datetime.fromtimestamp(v, dt.timezone.utc)
    if isinstance(v, str):
        try:
            if re.fullmatch(r"\d{14}(\.\d+)?", v):  # FTP MLSD modify=YYYYMMDDHHMMSS
                return dt.datetime.strptime(v[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)
            v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            try:
                return email.utils.parsedate_to_datetime(v).astimezone(dt.timezone.utc)
            except (TypeError, ValueError):
                return None
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=dt.timezone.utc) if v.tzinfo is None else v.astimezone(dt.timezone.utc)
    return None


def _probe(host: str, port: int, what: str) -> None:
    """Fail fast and clearly when nothing listens (client libraries retry a dead endpoint for half a minute)."""
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        raise ConnectorError(f"cannot reach {what} ({type(e).__name__}: {e}); is the server running?") from None


def _probe_url(url: str, what: str) -> None:
    u = urllib.parse.urlsplit(url)
    if u.hostname:
        _probe(u.hostname, u.port or (443 if u.scheme == "https" else 80), what)


class _GuardedStream(io.RawIOBase):
    """A readable binary stream whose errors are ConnectorErrors naming the file."""

    def __init__(self, fs: RemoteFS, path: str, raw):
        self._fs, self._path, self._raw = fs, path, raw

    def readable(self):
        return True

    def readinto(self, b):
        data = self._fs._guard("read", self._path, self._raw.read, len(b))
        n = len(data)
        b[:n] = data
        return n

    def read(self, size=-1):
        return self._fs._guard("read", self._path, self._raw.read, size)

    def seekable(self):
        return bool(getattr(self._raw, "seekable", lambda: False)())

    def seek(self, offset, whence=io.SEEK_SET):
        return self._fs._guard("read", self._path, self._raw.seek, offset, whence)

    def tell(self):
        return self._raw.tell()

    def close(self):
        try:
            self._raw.close()
        except Exception:  # noqa: BLE001 - closing a read stream must not mask the real error
            pass
        super().close()


# ---- fsspec-backed stores ----------------------------------------------------------------------------------
class _FsspecFS(RemoteFS):
    """Shared code of the fsspec-backed stores; ``_full`` maps a user path to the fsspec path."""

    def __init__(self, fs, display: str, endpoint: str, secrets: list[str]):
        super().__init__(display, endpoint, secrets)
        self.fs = fs

    def _full(self, path: str) -> str:
        return path

    def _user(self, full: str) -> str:
        return full

    def _file_info(self, d: dict) -> FileInfo:
        raise NotImplementedError

    def info(self, path: str) -> FileInfo:
        d = self._guard("stat", path, self.fs.info, self._full(path))
        if d.get("type") == "directory":
            raise ConnectorError(f"{self.connector} stat {self.url(path)}: is a folder, not a file")
        return self._file_info(d)

    def list(self, path: str, recursive: bool = False, include_hidden: bool = False) -> list[FileInfo]:
        full = self._full(path).rstrip("/")
        if recursive:
            entries = self._guard("list", path, self.fs.find, full, detail=True, withdirs=False)
            entries = list(entries.values())
        else:
            entries = self._guard("list", path, self.fs.ls, full, detail=True)
        out = []
        for d in entries:
            if d.get("type") != "file":
                continue
            info = self._file_info(d)
            rel = posixpath.relpath(info.path, self._user(full)) if self._user(full) else info.path
            if not include_hidden and _hidden(rel):
                continue
            out.append(info)
        return sorted(out, key=lambda f: f.path)

    def open_read(self, path: str) -> IO[bytes]:
        raw = self._guard("open", path, self.fs.open, self._full(path), "rb")
        return io.BufferedReader(_GuardedStream(self, path, raw), buffer_size=1 << 20)

    def delete(self, path: str, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self._full(path))
        except Exception as e:  # noqa: BLE001
            err = self.error("delete", path, e)
            if missing_ok and getattr(err, "kind", "") == "missing":
                return
            raise err from None


class _ObjectStoreFS(_FsspecFS):
    """s3, gcs, azure_blob: keys in one bucket; no rename, so moves are copy + delete and claims use markers."""

    def __init__(self, fs, bucket: str, display: str, endpoint: str, secrets: list[str]):
        super().__init__(fs, display, endpoint, secrets)
        self.bucket = bucket

    def _full(self, path: str) -> str:
        return f"{self.bucket}/{path.lstrip('/')}"

    def list(self, path: str, recursive: bool = False, include_hidden: bool = False) -> list[FileInfo]:
        """A prefix without objects is an empty folder (object stores have no folders of their own)."""
        try:
            return super().list(path, recursive, include_hidden)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "missing":
                return []
            raise

    def _user(self, full: str) -> str:
        return full[len(self.bucket) + 1:] if full.startswith(self.bucket + "/") else ""

    # per store: create ``path`` with ``data`` only if absent → True, or False when it exists
    def _create_exclusive(self, path: str, data: bytes) -> bool:
        try:
            self.fs.pipe_file(self._full(path), data, mode="create")
            return True
        except Exception as e:  # noqa: BLE001
            if _kind(_unwrap(e)) == "exists":
                return False
            raise self.error("create", path, e) from None

    def _copy(self, src: str, dst: str, src_info: FileInfo | None = None, overwrite: bool = False) -> None:
        self._guard("copy", src, self.fs.cp_file, self._full(src), self._full(dst))

    def _delete_version(self, path: str, info: FileInfo) -> None:
        self.delete(path)

    def write(self, path: str, local_file: str, overwrite: bool = False) -> str:
        if not os.path.isfile(local_file):
            raise ConnectorError(f"{self.connector} write {self.url(path)}: local file {local_file} does not exist")
        try:
            self.fs.put_file(local_file, self._full(path), mode="overwrite" if overwrite else "create")
        except Exception as e:  # noqa: BLE001
            err = self.error("write", path, e)
            if getattr(err, "kind", "") == "exists":
                raise ConnectorError(f"{self.connector} write {self.url(path)}: already exists (never overwritten)")
            raise err from None
        return path

    def move(self, src: str, dst: str, overwrite: bool = False) -> str:
        info = self.info(src)
        if not overwrite and self.exists(dst):
            raise ConnectorError(f"{self.connector} move {self.url(src)} → {self.url(dst)}: the destination exists "
                                 f"(never overwritten)")
        self._copy(src, dst, info, overwrite)
        self._delete_version(src, info)
        return dst

    def _marker(self, path: str, staging_dir: str, info: FileInfo) -> str:
        version = hashlib.sha1(f"{path}\0{info.etag}\0{info.mtime}\0{info.size}".encode()).hexdigest()[:16]
        return _join(_join(staging_dir, _CLAIMS), f"{posixpath.basename(path)}.{version}.claim")

    def claim(self, path: str, staging_dir: str) -> str | None:
        try:
            info = self.info(path)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "missing":
                return None
            raise
        marker = self._marker(path, staging_dir, info)
        body = json.dumps({"source": path, "etag": info.etag, "owner": uuid.uuid4().hex, "host": socket.gethostname(),
                           "pid": os.getpid(), "claimed_at": dt.datetime.now(dt.timezone.utc).isoformat()}).encode()
        if not self._create_exclusive(marker, body):
            return None  # another run holds this version of the file
        try:
            for n in range(1000):
                dest = _join(staging_dir, _unique_name(info.name, n))
                if not self.exists(dest):
                    break
            else:
                raise ConnectorError(f"{self.connector} claim {self.url(path)}: no free name in {staging_dir}")
            try:
                self._copy(path, dest, info)
            except ConnectorError as e:
                if getattr(e, "kind", "") in ("missing", "exists"):  # gone, or replaced by a newer version
                    return None
                raise
            try:
                self._delete_version(path, info)
            except ConnectorError as e:
                if getattr(e, "kind", "") == "missing":  # our version is gone (deleted by someone, or replaced
                    return dest                          # by a newer one, which stays for a later claim)
                self.delete(dest, missing_ok=True)  # back out: the source stays for a later claim
                if getattr(e, "kind", "") == "exists":  # replaced by a newer version while we copied
                    return None
                raise
            return dest
        finally:
            self.delete(marker, missing_ok=True)

    def claim_markers(self, staging_dir: str) -> list[FileInfo]:
        folder = _join(staging_dir, _CLAIMS)
        try:
            return self.list(folder, include_hidden=True)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "missing":
                return []
            raise


class S3FS(_ObjectStoreFS):
    connector = "s3"

    def _file_info(self, d: dict) -> FileInfo:
        etag = (d.get("ETag") or d.get("etag") or "").strip('"') or None
        md5 = etag if etag and re.fullmatch(r"[0-9a-f]{32}", etag) else None  # single-part uploads only
        return FileInfo(self._user(d["name"]), int(d.get("size") or 0), _as_utc(d.get("LastModified")), etag, md5)

    def _call(self, op: str, path: str, method: str, **kwargs):
        from fsspec.asyn import sync
        return self._guard(op, path, sync, self.fs.loop, self.fs._call_s3, method, **kwargs)

    def _copy(self, src: str, dst: str, src_info: FileInfo | None = None, overwrite: bool = False) -> None:
        extra = {"CopySourceIfMatch": f'"{src_info.etag}"'} if src_info and src_info.etag else {}
        if src_info and src_info.size > 5 * 2**30:  # above a single CopyObject's limit: s3fs' multipart copy
            return super()._copy(src, dst, src_info, overwrite)
        self._call("copy", src, "copy_object", Bucket=self.bucket, Key=dst.lstrip("/"),
                   CopySource={"Bucket": self.bucket, "Key": src.lstrip("/")}, **extra)
        self.fs.invalidate_cache()

    def _delete_version(self, path: str, info: FileInfo) -> None:
        extra = {"IfMatch": f'"{info.etag}"'} if info.etag else {}
        self._call("delete", path, "delete_object", Bucket=self.bucket, Key=path.lstrip("/"), **extra)
        self.fs.invalidate_cache()


class GCSFS(_ObjectStoreFS):
    connector = "gcs"

    def _file_info(self, d: dict) -> FileInfo:
        md5 = d.get("md5Hash")
        md5 = base64.b64decode(md5).hex() if md5 else None
        gen = d.get("generation")
        return FileInfo(self._user(d["name"]), int(d.get("size") or 0), _as_utc(d.get("updated") or d.get("mtime")),
                        str(gen) if gen else d.get("etag"), md5)

    def _call(self, op: str, path: str, *args, **kwargs):
        from fsspec.asyn import sync
        return self._guard(op, path, sync, self.fs.loop, self.fs._call, *args, **kwargs)

    def _copy(self, src: str, dst: str, src_info: FileInfo | None = None, overwrite: bool = False) -> None:
        """Rewrite exactly the listed generation of ``src`` onto an absent ``dst`` (ifGenerationMatch=0)."""
        if not src_info or not (src_info.etag or "").isdigit():
            return super()._copy(src, dst, src_info, overwrite)
        args = ("POST", "b/{}/o/{}/rewriteTo/b/{}/o/{}", self.bucket, src.lstrip("/"), self.bucket, dst.lstrip("/"))
        kw = {"headers": {"Content-Type": "application/json"}, "json_out": True, "sourceGeneration": src_info.etag,
              "ifSourceGenerationMatch": src_info.etag, **({} if overwrite else {"ifGenerationMatch": "0"})}
        out = self._call("copy", src, *args, **kw)
        while out.get("done") is not True:  # large objects are rewritten in several calls
            out = self._call("copy", src, *args, rewriteToken=out["rewriteToken"], **kw)
        self.fs.invalidate_cache()

    def _delete_version(self, path: str, info: FileInfo) -> None:
        if not (info.etag or "").isdigit():
            return self.delete(path)
        # generation= deletes exactly that version (fake-gcs-server ignores ifGenerationMatch on DELETE; GCS
        # honours both): a newer version written meanwhile survives, and the delete reports it missing
        self._call("delete", path, "DELETE", "b/{}/o/{}", self.bucket, path.lstrip("/"), generation=info.etag,
                   ifGenerationMatch=info.etag)
        self.fs.invalidate_cache()


class AzureBlobFS(_ObjectStoreFS):
    connector = "azure_blob"
    COPY_WAIT_S = 3600

    def _file_info(self, d: dict) -> FileInfo:
        cs = d.get("content_settings") or {}
        raw_md5 = cs.get("content_md5") if isinstance(cs, dict) else getattr(cs, "content_md5", None)
        md5 = bytes(raw_md5).hex() if raw_md5 else None
        etag = (d.get("etag") or "").strip('"') or None
        return FileInfo(self._user(d["name"]), int(d.get("size") or 0), _as_utc(d.get("last_modified")), etag, md5)

    def _run(self, op: str, path: str, make_coro: Callable):
        from fsspec.asyn import sync
        return self._guard(op, path, sync, self.fs.loop, make_coro)

    def _copy(self, src: str, dst: str, src_info: FileInfo | None = None, overwrite: bool = False) -> None:
        """Server-side copy of exactly the listed version (source ETag) onto an absent ``dst``, waiting until the
        copy completed (Azure copies asynchronously: deleting the source before would lose it)."""
        import asyncio

        from azure.core import MatchConditions
        cond: dict[str, Any] = {} if overwrite else {"match_condition": MatchConditions.IfMissing}
        if src_info and src_info.etag:
            cond.update(source_etag=src_info.etag, source_match_condition=MatchConditions.IfNotModified)

        async def go():
            cc = self.fs.service_client.get_container_client(self.bucket)
            source = cc.get_blob_client(src.lstrip("/"))
            target = cc.get_blob_client(dst.lstrip("/"))
            props = await target.start_copy_from_url(source.url, **cond)
            status, waited = props.get("copy_status"), 0.0
            while status == "pending":
                if waited > self.COPY_WAIT_S:
                    await target.abort_copy(props["copy_id"])
                    raise ConnectorError(f"azure_blob copy {self.url(src)}: not done after {self.COPY_WAIT_S} s")
                await asyncio.sleep(0.5)
                waited += 0.5
                status = (await target.get_blob_properties()).copy.status
            if status != "success":
                raise ConnectorError(f"azure_blob copy {self.url(src)} → {self.url(dst)}: copy {status}")
        self._run("copy", src, go)
        self.fs.invalidate_cache()

    def _delete_version(self, path: str, info: FileInfo) -> None:
        if not info.etag:
            return self.delete(path)
        from azure.core import MatchConditions

        async def go():
            cc = self.fs.service_client.get_container_client(self.bucket)
            await cc.get_blob_client(path.lstrip("/")).delete_blob(
                etag=info.etag, match_condition=MatchConditions.IfNotModified)
        self._run("delete", path, go)
        self.fs.invalidate_cache()


# ---- sftp and ftp: real folders with an atomic rename --------------------------------------------------------
class _RenameFS(_FsspecFS):
    """sftp, ftp: server paths; rename is atomic, so moves and claims are renames."""

    def _rename(self, src: str, dst: str) -> None:
        """Rename that fails (ConnectorError kind missing/exists) instead of overwriting."""
        raise NotImplementedError

    def _replace(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def _file_info(self, d: dict) -> FileInfo:
        return FileInfo(d["name"].rstrip("/"), int(d.get("size") or 0), _as_utc(d.get("mtime") or d.get("modify")),
                        None, None)

    def _mkdirs(self, folder: str) -> None:
        if folder and folder != "/":
            try:
                self._guard("mkdir", folder, self.fs.makedirs, folder, exist_ok=True)
            except ConnectorError as e:  # another run made it meanwhile
                if getattr(e, "kind", "") not in ("exists", "other") or not self._is_dir(folder):
                    raise

    def _is_dir(self, folder: str) -> bool:
        try:
            self.fs.invalidate_cache()
            return self.fs.info(folder).get("type") == "directory"
        except Exception:  # noqa: BLE001
            return False

    def _upload(self, local_file: str, remote: str) -> None:
        self._guard("write", remote, self.fs.put_file, local_file, remote)

    def write(self, path: str, local_file: str, overwrite: bool = False) -> str:
        if not os.path.isfile(local_file):
            raise ConnectorError(f"{self.connector} write {self.url(path)}: local file {local_file} does not exist")
        folder, name = posixpath.split(path)
        self._mkdirs(folder)
        tmp = _join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
        self._upload(local_file, tmp)
        try:
            (self._replace if overwrite else self._rename)(tmp, path)
        except ConnectorError as e:
            self.delete(tmp, missing_ok=True)
            if getattr(e, "kind", "") == "exists":
                raise ConnectorError(f"{self.connector} write {self.url(path)}: already exists (never overwritten)")
            raise
        return path

    def move(self, src: str, dst: str, overwrite: bool = False) -> str:
        self._mkdirs(posixpath.dirname(dst))
        try:
            (self._replace if overwrite else self._rename)(src, dst)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "exists":
                raise ConnectorError(f"{self.connector} move {self.url(src)} → {self.url(dst)}: the destination "
                                     f"exists (never overwritten)")
            raise
        return dst

    def claim(self, path: str, staging_dir: str) -> str | None:
        self._mkdirs(staging_dir)
        name = posixpath.basename(path)
        tmp = _join(staging_dir, f".{name}.{uuid.uuid4().hex}.claiming")
        try:
            self._rename(path, tmp)  # atomic: of racing runs exactly one finds the source
        except ConnectorError as e:
            if getattr(e, "kind", "") == "missing":
                return None
            raise
        for n in range(1000):
            dest = _join(staging_dir, _unique_name(name, n))
            try:
                self._rename(tmp, dest)
                return dest
            except ConnectorError as e:
                if getattr(e, "kind", "") != "exists":
                    raise
        raise ConnectorError(f"{self.connector} claim {self.url(path)}: no free name in {staging_dir} "
                             f"(the file is kept as {tmp})")


class SFTPFS(_RenameFS):
    connector = "sftp"

    def _channel_call(self, op: str, path: str, method: str, *args):
        from fsspec.asyn import sync

        async def call():
            async with self.fs._pool.get() as channel:
                return await getattr(channel, method)(*args)
        return self._guard(op, path, sync, self.fs.loop, call)

    def _rename(self, src: str, dst: str) -> None:
        # SFTP v3 rename: OpenSSH's server links then unlinks, so an existing dst fails (no overwrite)
        try:
            self._channel_call("rename", src, "rename", src, dst)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "other":  # OpenSSH answers a bare "Failure": tell the cases apart
                if not self.exists(src):
                    e.kind = "missing"  # type: ignore[attr-defined]
                elif self.exists(dst):
                    e.kind = "exists"  # type: ignore[attr-defined]
            raise

    def _replace(self, src: str, dst: str) -> None:
        self._channel_call("rename", src, "posix_rename", src, dst)

    def close(self) -> None:
        try:
            self.fs.client.close()
        except Exception:  # noqa: BLE001
            pass


class FTPFS(_RenameFS):
    connector = "ftp"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()  # one control connection

    def _guard(self, op, path, fn, *args, **kwargs):
        with self._lock:
            return super()._guard(op, path, fn, *args, **kwargs)

    def _file_info(self, d: dict) -> FileInfo:
        return FileInfo(d["name"].rstrip("/"), int(d.get("size") or 0), _as_utc(d.get("modify")), None, None)

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


# ---- http_pull ---------------------------------------------------------------------------------------------
class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.next: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("a", "link") and a.get("href"):
            if "next" in (a.get("rel") or "").lower().split():
                self.next = a["href"]
            elif tag == "a":
                self.links.append(a["href"])


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urllib.parse.urlsplit(url)
    return u.scheme.lower(), (u.hostname or "").lower(), u.port or {"http": 80, "https": 443}.get(u.scheme.lower())


class HttpFS(RemoteFS):
    """http_pull: read-only. A listing is an HTML page (its ``<a href>`` links under the listed URL) or JSON
    (``{"files": [{"url"|"name", "size", "mtime", "etag"}], "next": url}`` or a list of URLs/names), followed
    across pages (JSON ``next``, ``Link: rel=next``, ``<a rel="next">``). A URL answering with anything else is
    one file. Retries: connection errors, 429 and 5xx, ``retries`` times with exponential backoff (Retry-After is
    honoured up to 30 s). Redirects are followed by hand: the configured headers (which carry the secrets) go only
    to the origin of ``url``; a redirect to another origin drops them."""

    connector = "http_pull"
    read_only = True
    MAX_PAGES = 1000
    MAX_REDIRECTS = 10

    def __init__(self, url: str, headers: dict[str, str], secrets: list[str], retries: int = 3,
                 timeout: float = 60.0, backoff: float = 0.5):
        super().__init__(url, url, secrets)
        requests = _need("requests", "http_pull")
        self._requests = requests
        self.base = url
        self.headers = headers
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.session = requests.Session()
        self.session.trust_env = False  # no ~/.netrc credentials or proxies sneaking in

    def url(self, path: str) -> str:
        return self._abs(path)

    def _abs(self, path: str) -> str:
        if not path:
            return self.base
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path):
            return path
        return urllib.parse.urljoin(self.base if self.base.endswith("/") else self.base + "/", path.lstrip("/")
                                    if not path.startswith("/") else path)

    def _request(self, method: str, path: str, stream: bool = False):
        url = self._abs(path)
        origin = _origin(self.base)
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30))
            target, hops = url, 0
            try:
                while True:
                    headers = dict(self.headers) if _origin(target) == origin else {}
                    resp = self.session.request(method, target, headers=headers, stream=stream,
                                                allow_redirects=False, timeout=self.timeout)
                    if resp.status_code in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        resp.close()
                        hops += 1
                        if hops > self.MAX_REDIRECTS:
                            raise ConnectorError(f"http_pull {method} {url}: more than {self.MAX_REDIRECTS} redirects")
                        target = urllib.parse.urljoin(target, resp.headers["Location"])
                        if _origin(target) != origin:
                            log.info("http_pull: redirect from %s to another origin %s: configured headers dropped",
                                     url, urllib.parse.urlsplit(target)._replace(query="").geturl())
                        continue
                    break
            except ConnectorError:
                raise
            except self._requests.RequestException as e:
                last = e
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                last = ConnectorError(f"HTTP {resp.status_code}")
                retry_after = resp.headers.get("Retry-After", "")
                resp.close()
                if retry_after.isdigit() and attempt < self.retries:
                    time.sleep(min(int(retry_after), 30))
                continue
            if resp.status_code >= 400:
                resp.close()
                kind = {401: "denied", 403: "denied", 404: "missing", 410: "missing"}.get(resp.status_code, "other")
                detail = {"denied": "permission denied or credentials rejected; check the headers' secrets",
                          "missing": "not found (moved or deleted meanwhile?)"}.get(kind, "refused")
                err = ConnectorError(self._scrub(f"http_pull {method} {url}: HTTP {resp.status_code} {resp.reason}: "
                                                 f"{detail}"))
                err.kind = kind  # type: ignore[attr-defined]
                raise err
            return resp
        if isinstance(last, self._requests.RequestException):
            err = self.error(method, path, last)
            raise ConnectorError(f"{err.message} (after {self.retries + 1} attempts)") from None
        err = ConnectorError(f"http_pull {method} {url}: {last} after {self.retries + 1} attempts; giving up")
        err.kind = "unreachable"  # type: ignore[attr-defined]
        raise err

    def error(self, op: str, path: str | None, e: BaseException) -> ConnectorError:
        if isinstance(e, self._requests.ConnectionError) or isinstance(e, self._requests.Timeout):
            msg = f"http_pull {op} {self._abs(path or '')}: cannot reach {self._netloc()} ({_first_line(e)})"
            err = ConnectorError(self._scrub(msg))
            err.kind = "unreachable"  # type: ignore[attr-defined]
            return err
        return super().error(op, path, e)

    def _netloc(self) -> str:
        u = urllib.parse.urlsplit(self.base)
        return f"{u.scheme}://{u.netloc}"

    @staticmethod
    def _info_from_headers(url: str, headers) -> FileInfo:
        md5 = headers.get("Content-MD5")
        try:
            md5 = base64.b64decode(md5).hex() if md5 else None
        except ValueError:
            md5 = None
        size = headers.get("Content-Length")
        return FileInfo(url, int(size) if size and size.isdigit() else -1, _as_utc(headers.get("Last-Modified")),
                        (headers.get("ETag") or "").strip('"').removeprefix("W/").strip('"') or None, md5)

    def info(self, path: str) -> FileInfo:
        resp = self._request("HEAD", path)
        resp.close()
        return self._info_from_headers(resp.url or self._abs(path), resp.headers)

    @staticmethod
    def _is_listing(resp) -> str | None:
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype in ("application/json", "text/json") or ctype.endswith("+json"):
            return "json"
        if ctype in ("text/html", "application/xhtml+xml"):
            return "html"
        return None

    def list(self, path: str = "", recursive: bool = False, include_hidden: bool = False) -> list[FileInfo]:
        start = self._abs(path)
        out: dict[str, FileInfo] = {}
        todo, seen_pages, pages = [start], set(), 0
        while todo:
            page = todo.pop(0)
            if page in seen_pages:
                continue
            seen_pages.add(page)
            pages += 1
            if pages > self.MAX_PAGES:
                raise ConnectorError(f"http_pull list {start}: more than {self.MAX_PAGES} listing pages")
            resp = self._request("GET", page)
            kind = self._is_listing(resp)
            if kind is None:  # one file
                resp.close()
                info = self._info_from_headers(page, resp.headers)
                out[info.path] = info
                continue
            try:
                body = resp.content
            except self._requests.RequestException as e:
                raise self.error("list", page, e) from None
            nxt, files, folders = self._parse_listing(kind, page, body, resp.headers)
            for f in files:
                rel = f.path[len(start):] if f.path.startswith(start) else urllib.parse.urlsplit(f.path).path
                if not include_hidden and _hidden(urllib.parse.unquote(rel)):
                    continue
                out[f.path] = f
            if recursive:
                todo += [u for u in folders if u not in seen_pages]
            if nxt:
                todo.insert(0, nxt)
        result = []
        for f in out.values():
            if f.size < 0 or f.mtime is None:
                head = self.info(f.path)
                f = FileInfo(f.path, head.size if f.size < 0 else f.size, f.mtime or head.mtime, f.etag or head.etag,
                             f.md5 or head.md5)
            result.append(f)
        return sorted(result, key=lambda f: f.path)

    def _keep(self, listed: str, url: str) -> bool:
        """Same origin and under the listed URL's folder (no parent links, no query-only links)."""
        if _origin(url) != _origin(listed):
            return False
        folder = urllib.parse.urlsplit(listed).path
        folder = folder if folder.endswith("/") else posixpath.dirname(folder) + "/"
        p = urllib.parse.urlsplit(url).path
        return p.startswith(folder) and p != folder

    def _parse_listing(self, kind: str, page: str, body: bytes, headers):
        nxt = None
        link = headers.get("Link", "")
        m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
        if m:
            nxt = urllib.parse.urljoin(page, m.group(1))
        files: list[FileInfo] = []
        folders: list[str] = []
        if kind == "json":
            try:
                doc = json.loads(body)
            except ValueError as e:
                raise ConnectorError(f"http_pull list {page}: the JSON listing does not parse ({e})") from None
            entries = doc if isinstance(doc, list) else doc.get("files", []) if isinstance(doc, dict) else []
            if isinstance(doc, dict):
                if doc.get("next"):
                    nxt = urllib.parse.urljoin(page, doc["next"])
                folders = [urllib.parse.urljoin(page, f.get("url") or f.get("name", "") + "/")
                           for f in doc.get("folders", []) if isinstance(f, dict)]
            for e in entries:
                if isinstance(e, str):
                    e = {"url": e}
                if not isinstance(e, dict) or not (e.get("url") or e.get("name")):
                    continue
                url = urllib.parse.urljoin(page, e.get("url") or urllib.parse.quote(e["name"]))
                if not self._keep(page, url):
                    continue
                size = e.get("size")
                files.append(FileInfo(url, int(size) if isinstance(size, (int, float)) else -1, _as_utc(e.get("mtime")),
                                      e.get("etag"), e.get("md5")))
        else:
            parser = _Links()
            parser.feed(body.decode("utf-8", "replace"))
            if parser.next:
                nxt = urllib.parse.urljoin(page, parser.next)
            for href in parser.links:
                url = urllib.parse.urljoin(page, href)
                url = urllib.parse.urlsplit(url)._replace(fragment="").geturl()
                if not self._keep(page, url) or urllib.parse.urlsplit(url).query:
                    continue
                if url.endswith("/"):
                    folders.append(url)
                else:
                    files.append(FileInfo(url, -1, None))
        nxt = nxt if nxt and _origin(nxt) == _origin(page) else None
        return nxt, files, folders

    def open_read(self, path: str) -> IO[bytes]:
        resp = self._request("GET", path, stream=True)
        resp.raw.decode_content = True

        class _Raw:
            def read(self_, n=-1):
                return resp.raw.read(None if n is None or n < 0 else n)

            def close(self_):
                resp.close()
        return io.BufferedReader(_GuardedStream(self, path, _Raw()), buffer_size=1 << 20)

    def fetch_local(self, path: str, tmpdir: str, expect: FileInfo | None = None) -> str:
        name = posixpath.basename(urllib.parse.urlsplit(self._abs(path)).path) or "file"
        os.makedirs(tmpdir, exist_ok=True)
        folder = tempfile.mkdtemp(prefix="fetch-", dir=tmpdir)
        local = os.path.join(folder, urllib.parse.unquote(name))
        try:
            resp = self._request("GET", path, stream=True)
            current = self._info_from_headers(self._abs(path), resp.headers)
            if expect is not None and expect.etag and current.etag and expect.etag != current.etag:
                resp.close()
                raise ConnectorError(f"http_pull read {self._abs(path)}: the file changed since it was listed "
                                     f"(etag {expect.etag} → {current.etag})")
            md5, size = hashlib.md5(), 0
            with open(local, "wb") as dst:
                try:
                    for block in resp.iter_content(1 << 20):
                        md5.update(block)
                        size += len(block)
                        dst.write(block)
                except self._requests.RequestException as e:
                    raise self.error("read", path, e) from None
                finally:
                    resp.close()
            if current.size >= 0 and size != current.size:
                raise ConnectorError(f"http_pull read {self._abs(path)}: got {size} bytes of {current.size} "
                                     f"(truncated download)")
            if current.md5 and md5.hexdigest() != current.md5:
                raise ConnectorError(f"http_pull read {self._abs(path)}: the download's MD5 differs from Content-MD5")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return local

    def write(self, path, local_file, overwrite=False):
        self._read_only("write", path)

    def move(self, src, dst, overwrite=False):
        self._read_only("move", src)

    def claim(self, path, staging_dir):
        self._read_only("claim", path)

    def delete(self, path, missing_ok=False):
        self._read_only("delete", path)

    def close(self) -> None:
        self.session.close()


# ---- open_fs -----------------------------------------------------------------------------------------------
def _cfg(cfg: Any) -> dict:
    if hasattr(cfg, "model_dump"):
        return cfg.model_dump(exclude_none=True)
    return {k: v for k, v in dict(cfg or {}).items() if v is not None}


def _require(cfg: dict, key: str, connector: str) -> Any:
    v = cfg.get(key)
    if v in (None, ""):
        raise ConnectorError(f"the {connector} connector needs '{key}' in its config")
    return v


def open_fs(connector: str, cfg: Any) -> RemoteFS:
    """Open the remote store of ``connector`` (s3, gcs, azure_blob, sftp, ftp, http_pull) with ``cfg`` (a dict of
    plain values or the IR's file config model). Raises ConnectorError (bad config, unreachable, bad credentials)
    or MissingDependencyError (the ``remote`` extra is not installed)."""
    c = _cfg(cfg)
    if connector not in REMOTE_CONNECTORS:
        raise ConnectorError(f"unknown remote connector {connector!r}; use one of {', '.join(REMOTE_CONNECTORS)}")
    return {"s3": _open_s3, "gcs": _open_gcs, "azure_blob": _open_azure, "sftp": _open_sftp, "ftp": _open_ftp,
            "http_pull": _open_http}[connector](c)


def _open_s3(c: dict) -> RemoteFS:
    s3fs = _need("s3fs", "s3")
    bucket = _require(c, "bucket", "s3")
    secret = resolve_secret(c.get("passwordSecret"), "passwordSecret")
    if secret and not c.get("username"):
        raise ConnectorError("the s3 connector: passwordSecret (the secret access key) needs username (the access key id)")
    endpoint = c.get("endpoint")
    if endpoint:
        _probe_url(endpoint, f"the S3 endpoint {endpoint}")
    kwargs: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False,
                              "config_kwargs": {"connect_timeout": 10, "read_timeout": 120,
                                                "retries": {"max_attempts": 3, "mode": "standard"}}}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if c.get("region"):
        kwargs["client_kwargs"] = {"region_name": c["region"]}
    if c.get("username"):
        kwargs.update(key=c["username"], secret=secret)
    display = f"s3://{bucket}"
    try:
        fs = s3fs.S3FileSystem(**kwargs)
    except Exception as e:  # noqa: BLE001
        raise RemoteFS(display, endpoint or "AWS S3", [secret or ""]).error("open", None, e) from None
    fs.retries = 3  # s3fs' own retry loop (default 5) on top of botocore's
    store = S3FS(fs, bucket, display, endpoint or "AWS S3", [secret or ""])
    store._guard("open", "", fs.ls, bucket)  # the bucket exists and the credentials are accepted
    return store


def _open_gcs(c: dict) -> RemoteFS:
    # gcsfs.core's class: the package's default (ExtendedGcsFileSystem, "experimental" zonal/HNS support) asks
    # Google's gRPC storage-control API for each bucket's type, which an emulator does not serve (it retries TLS
    # handshakes for minutes); the core class speaks only the JSON API
    gcsfs = _need("gcsfs.core", "gcs")
    bucket = _require(c, "bucket", "gcs")
    secret = resolve_secret(c.get("passwordSecret"), "passwordSecret")
    endpoint = c.get("endpoint")
    kwargs: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    token: Any = None
    if secret:
        if secret.lstrip().startswith("{"):
            try:
                token = json.loads(secret)
            except ValueError:
                raise ConnectorError("gcs passwordSecret: the service-account key is not valid JSON") from None
        elif os.path.isfile(secret):
            token = secret
        else:
            raise ConnectorError("gcs passwordSecret: must hold a service-account key (JSON text or a file path)")
    elif endpoint:
        token = "anon"  # an emulator: no credentials
    if endpoint:
        _probe_url(endpoint, f"the GCS endpoint {endpoint}")
        kwargs["endpoint_url"] = endpoint
    if token is not None:
        kwargs["token"] = token
    display = f"gs://{bucket}"
    try:
        fs = gcsfs.GCSFileSystem(**kwargs)
    except Exception as e:  # noqa: BLE001
        raise RemoteFS(display, endpoint or "Google Cloud Storage", [secret or ""]).error("open", None, e) from None
    store = GCSFS(fs, bucket, display, endpoint or "Google Cloud Storage", [secret or ""])
    store._guard("open", "", fs.ls, bucket)
    return store


_AZ_KV = re.compile(r"(?:^|;)\s*(AccountKey|SharedAccessSignature|BlobEndpoint|AccountName)\s*=", re.I)


def _open_azure(c: dict) -> RemoteFS:
    adlfs = _need("adlfs", "azure_blob")
    container = _require(c, "bucket", "azure_blob")
    secret = resolve_secret(c.get("passwordSecret"), "passwordSecret")
    endpoint = (c.get("endpoint") or "").rstrip("/")
    secrets = [secret or ""]
    if secret and _AZ_KV.search(secret):  # a whole connection string
        conn = secret
        m = re.search(r"BlobEndpoint=([^;]+)", conn)
        endpoint = endpoint or (m.group(1).rstrip("/") if m else "")
        for field in ("AccountKey", "SharedAccessSignature"):  # scrubbed from messages on their own too
            m = re.search(field + r"=([^;]+)", conn)
            if m:
                secrets.append(m.group(1))
                sig = re.search(r"(?:^|&)sig=([^&]+)", m.group(1))
                if sig:
                    secrets += [sig.group(1), urllib.parse.unquote(sig.group(1))]
    else:
        account = c.get("username")
        if not account and endpoint:
            u = urllib.parse.urlsplit(endpoint)
            host = u.hostname or ""
            account = host.split(".")[0] if host.endswith(".core.windows.net") else u.path.strip("/").split("/")[0]
        if not account:
            raise ConnectorError("the azure_blob connector needs 'username' (the storage account) or 'endpoint'")
        endpoint = endpoint or f"https://{account}.blob.core.windows.net"
        if not secret:
            raise ConnectorError("the azure_blob connector needs passwordSecret: env:VAR holding the account key or "
                                 "a connection string")
        scheme = urllib.parse.urlsplit(endpoint).scheme or "https"
        conn = f"DefaultEndpointsProtocol={scheme};AccountName={account};AccountKey={secret};BlobEndpoint={endpoint};"
    if endpoint:
        _probe_url(endpoint, f"the Azure Blob endpoint {endpoint}")
    display = f"az://{container}"
    try:
        fs = adlfs.AzureBlobFileSystem(connection_string=conn, skip_instance_cache=True)
        # the SDK's default retry waits 15 s, 18 s, 24 s... (a dead endpoint takes minutes to report); this one
        # retries 3 times after ~2, 3 and 5 s
        from azure.storage.blob.aio import BlobServiceClient
        fs.service_client = BlobServiceClient.from_connection_string(
            conn, retry_total=3, initial_backoff=1, increment_base=2, connection_timeout=10)
    except Exception as e:  # noqa: BLE001
        raise RemoteFS(display, endpoint or "Azure Blob", secrets).error("open", None, e) from None
    store = AzureBlobFS(fs, container, display, endpoint or "Azure Blob", secrets)
    store._guard("open", "", fs.ls, container)
    return store


def _open_sftp(c: dict) -> RemoteFS:
    sshfs = _need("sshfs", "sftp")
    host = _require(c, "host", "sftp")
    port = int(c.get("port") or 22)
    user = _require(c, "username", "sftp")
    password = resolve_secret(c.get("passwordSecret"), "passwordSecret")
    key = resolve_secret(c.get("privateKeySecret"), "privateKeySecret")
    known = c.get("knownHosts") or os.path.expanduser("~/.ssh/known_hosts")
    display = f"sftp://{user}@{host}:{port}"
    if not os.path.isfile(known):
        raise ConnectorError(f"sftp {display}: no known_hosts file at {known}: the server's host key must be known "
                             f"(set knownHosts to a file with its key, e.g. from ssh-keyscan)")
    _probe(host, port, f"the SFTP server {host}:{port}")
    kwargs: dict[str, Any] = {"port": port, "username": user, "known_hosts": known, "connect_timeout": 15,
                              "skip_instance_cache": True}
    secrets = [password or ""]
    if key:
        asyncssh = _need("asyncssh", "sftp")
        try:
            if "PRIVATE KEY" in key:
                secrets.append(key)
                pk = asyncssh.import_private_key(key, passphrase=password)
            elif os.path.isfile(key):
                pk = asyncssh.read_private_key(key, passphrase=password)
            else:
                raise ConnectorError("sftp privateKeySecret: must hold a private key (its text or a file path)")
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as e:
            raise ConnectorError(f"sftp {display}: the private key cannot be read ({type(e).__name__})") from None
        kwargs.update(client_keys=[pk], passphrase=None, agent_path=None, password=None,
                      preferred_auth="publickey")
    elif password:
        kwargs.update(password=password, client_keys=None, agent_path=None,
                      preferred_auth="password,keyboard-interactive")
    else:
        raise ConnectorError(f"sftp {display}: needs passwordSecret or privateKeySecret")
    err_fs = RemoteFS(display, f"{host}:{port}", secrets)
    err_fs.connector = "sftp"
    try:
        fs = sshfs.SSHFileSystem(host, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise err_fs.error("connect", None, e) from None
    return SFTPFS(fs, display, f"{host}:{port}", secrets)


def _open_ftp(c: dict) -> RemoteFS:
    from fsspec.implementations.ftp import FTPFileSystem
    host = _require(c, "host", "ftp")
    port = int(c.get("port") or 21)
    user = c.get("username") or "anonymous"
    password = resolve_secret(c.get("passwordSecret"), "passwordSecret") or ""
    display = f"ftp://{user}@{host}:{port}"
    _probe(host, port, f"the FTP server {host}:{port}")
    err_fs = RemoteFS(display, f"{host}:{port}", [password])
    err_fs.connector = "ftp"
    try:
        fs = FTPFileSystem(host, port=port, username=user, password=password, timeout=30, skip_instance_cache=True)
    except Exception as e:  # noqa: BLE001
        raise err_fs.error("login", None, e) from None
    return FTPFS(fs, display, f"{host}:{port}", [password])


def _open_http(c: dict) -> RemoteFS:
    url = _require(c, "url", "http_pull")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConnectorError(f"http_pull url must start with http:// or https://, not {url!r}")
    secrets: list[str] = []
    headers = {str(k): _resolve_header(str(k), v, secrets) for k, v in (c.get("headers") or {}).items()}
    retries = int(c.get("retries", 3))
    if not 0 <= retries <= 20:
        raise ConnectorError("http_pull retries must be between 0 and 20")
    return HttpFS(url, headers, secrets, retries=retries, backoff=float(c.get("retryBackoffSeconds", 0.5)))


def iter_remote_files(fs: RemoteFS, path: str, tmpdir: str, recursive: bool = False) -> Iterator[tuple[FileInfo, str]]:
    """Each listed file of ``path`` with its downloaded local copy (deleted after the caller moves on)."""
    for info in fs.list(path, recursive):
        local = fs.fetch_local(info.path, tmpdir, expect=info)
        try:
            yield info, local
        finally:
            shutil.rmtree(os.path.dirname(local), ignore_errors=True)
