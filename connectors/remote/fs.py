"""Remote file stores behind one small interface: s3, gcs, azure_blob, sftp, ftp (fsspec's family) and http_pull.

``open_fs(connector, cfg)`` → :class:`RemoteFS`. ``cfg`` is the connector's config model (``connectors.file_config``)
or a dict of the same plain values. This module holds what every store shares (errors, secrets, the fsspec-backed
object-store and rename-store protocols); each store's own class and ``open_store`` live in
``connectors/<store>/store.py``:

============  =====================================================================================================
s3            ``bucket``; ``endpoint`` (an S3-compatible server; default AWS); ``region``; ``username`` = access key
              id with ``passwordSecret`` = its secret key (else the AWS default chain: AWS_* variables, profiles...)
gcs           ``bucket``; ``endpoint`` (an emulator: no credentials are sent); ``passwordSecret`` = a service-account
              key (JSON text or the path of the file); else Google's default credentials
azure_blob    ``bucket`` = container; ``endpoint`` = the blob endpoint (``https://ACCOUNT.blob.core.windows.net``,
              or Azurite's ``http://127.0.0.1:10000/devstoreaccount1``); ``username`` = account name (default:
              from the endpoint); ``passwordSecret`` = the account key, or a whole connection string
sftp          ``host``, ``port`` (22), ``username``; ``privateKeySecret`` = a private key (its text or
              the path of the file); ``passwordSecret`` = the password, or the key's passphrase with a key;
              ``knownHosts`` = a known_hosts file (default ``~/.ssh/known_hosts``; the server's key
              is always checked)
ftp           ``host``, ``port`` (21), ``username`` (default anonymous), ``passwordSecret``
http_pull     ``url`` (a listing page or JSON listing, or one file); ``headers`` whose values may hold ``env:VAR``
              words (``{"Authorization": "Bearer env:API_TOKEN"}``); ``retries`` (default 3), ``retryBackoffSeconds``
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
The marker is keyed by the source file's path and version and lives in one folder shared by every run that may
claim that file (``claims_dir``; the file sources use ``<staging>/.claims/``), so two runs race on the same key;
each run copies into its own staging folder. A run whose conditional delete finds its version already gone keeps
its copy only while its own marker still stands, else it backs the copy out and takes nothing.
A run that dies between the marker and the copy leaves the marker (and the file) in place: that file version is
then not claimed again until the marker is removed (:meth:`RemoteFS.claim_markers` lists them). The marker names
its run (``connectors.remote.claims``), and the run that recovers a dead run's folder removes that run's markers.
"""
from __future__ import annotations

import datetime as dt
import email.utils
import ftplib
import hashlib
import io
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import tempfile
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


def resolve_header(name: str, value: str, secrets: list[str]) -> str:
    """Each whitespace-separated ``env:VAR`` word of a header value is replaced by the variable's value."""
    words = []
    for word in str(value).split(" "):
        if _ENV_REF.match(word):
            word = resolve_secret(word, f"headers.{name}")
            secrets.append(word)
        words.append(word)
    return " ".join(words)


def need(module: str, connector: str):
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


def error_kind(e: BaseException) -> str:
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


def exists_error(message: str) -> ConnectorError:
    """A refused overwrite (kind ``exists``: callers pick the next free name)."""
    err = ConnectorError(message)
    err.kind = "exists"  # type: ignore[attr-defined]
    return err


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else ""
    return f"{type(e).__name__}: {line[:300]}" if line else type(e).__name__


def unwrap(e: BaseException) -> BaseException:
    """The most telling exception of a chain (fsspec wraps the client library's errors)."""
    seen = e
    for _ in range(5):
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        if error_kind(seen) == "other" and error_kind(nxt) != "other":
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
        e = unwrap(e)
        kind = error_kind(e)
        where = self.url(path) if path is not None else self.display
        if kind == "unreachable":
            msg = (f"{self.connector} {op} {where}: cannot reach {self.endpoint} (server down or connection lost: "
                   f"{first_line(e)})")
        elif kind == "denied":
            msg = (f"{self.connector} {op} {where}: {_KIND_TEXT[kind]} ({first_line(e)}); check the credentials "
                   f"and the permissions of this account")
        else:
            msg = f"{self.connector} {op} {where}: {_KIND_TEXT[kind]} ({first_line(e)})"
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

    def claim(self, path: str, staging_dir: str, name: str | None = None, claims_dir: str | None = None,
              owner: dict | None = None) -> str | None:
        """Take ``path`` for this run by moving it into ``staging_dir`` (as ``name``, default its own name): the
        staged path, or None when another run took it first or it vanished. Of several runs (or threads, each with
        its own RemoteFS) claiming one file, exactly one gets a path. An existing file of that name in staging is
        kept: the claimed one becomes ``name.1.ext`` (``.2``…).

        ``claims_dir`` (object stores) is where the claim marker of ``path`` is created: it must be the same folder
        for every run that may claim ``path`` (the file sources pass ``<staging>/.claims``, shared by all runs,
        while each run stages into its own ``staging_dir``); default ``<staging_dir>/.claims``. ``owner`` is
        written into the marker (which run holds it)."""
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


def unique_name(name: str, n: int) -> str:
    if n == 0:
        return name
    stem, ext = posixpath.splitext(name)
    if ext == ".gz":
        stem, inner = posixpath.splitext(stem)
        ext = inner + ext
    return f"{stem}.{n}{ext}"


def join(folder: str, name: str) -> str:
    return posixpath.join(folder.rstrip("/"), name) if folder else name


def is_hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/") if part)


def as_utc(v: Any) -> dt.datetime | None:
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


def probe(host: str, port: int, what: str) -> None:
    """Fail fast and clearly when nothing listens (client libraries retry a dead endpoint for half a minute)."""
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        raise ConnectorError(f"cannot reach {what} ({type(e).__name__}: {e}); is the server running?") from None


def probe_url(url: str, what: str) -> None:
    u = urllib.parse.urlsplit(url)
    if u.hostname:
        probe(u.hostname, u.port or (443 if u.scheme == "https" else 80), what)


class GuardedStream(io.RawIOBase):
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
class FsspecFS(RemoteFS):
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
            if not include_hidden and is_hidden(rel):
                continue
            out.append(info)
        return sorted(out, key=lambda f: f.path)

    def open_read(self, path: str) -> IO[bytes]:
        raw = self._guard("open", path, self.fs.open, self._full(path), "rb")
        return io.BufferedReader(GuardedStream(self, path, raw), buffer_size=1 << 20)

    def delete(self, path: str, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self._full(path))
        except Exception as e:  # noqa: BLE001
            err = self.error("delete", path, e)
            if missing_ok and getattr(err, "kind", "") == "missing":
                return
            raise err from None


class ObjectStoreFS(FsspecFS):
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
            if error_kind(unwrap(e)) == "exists":
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
                raise exists_error(f"{self.connector} write {self.url(path)}: already exists (never overwritten)")
            raise err from None
        return path

    def move(self, src: str, dst: str, overwrite: bool = False) -> str:
        info = self.info(src)
        if not overwrite and self.exists(dst):
            raise exists_error(f"{self.connector} move {self.url(src)} → {self.url(dst)}: the destination exists "
                               f"(never overwritten)")
        self._copy(src, dst, info, overwrite)
        self._delete_version(src, info)
        return dst

    def _marker(self, path: str, claims_dir: str, info: FileInfo) -> str:
        """The marker key of this version of ``path``: keyed by the source's full path and its identity (etag,
        mtime, size), so every run claiming that file version competes for the same key in ``claims_dir``."""
        version = hashlib.sha1(f"{path}\0{info.etag}\0{info.mtime}\0{info.size}".encode()).hexdigest()[:16]
        return join(claims_dir, f"{posixpath.basename(path)}.{version}.claim")

    def _marker_owner(self, marker: str) -> str | None:
        """The ``owner`` token written in ``marker``, or None when it is gone or unreadable."""
        try:
            with self.open_read(marker) as fh:
                body = json.loads(fh.read(1 << 16).decode())
            return body.get("owner") if isinstance(body, dict) else None
        except (ConnectorError, ValueError):
            return None

    def claim(self, path: str, staging_dir: str, name: str | None = None, claims_dir: str | None = None,
              owner: dict | None = None) -> str | None:
        try:
            info = self.info(path)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "missing":
                return None
            raise
        marker = self._marker(path, claims_dir or join(staging_dir, _CLAIMS), info)
        token = uuid.uuid4().hex
        body = json.dumps({**(owner or {}), "source": path, "etag": info.etag, "owner": token,
                           "stagingDir": staging_dir, "host": socket.gethostname(), "pid": os.getpid(),
                           "claimed_at": dt.datetime.now(dt.timezone.utc).isoformat()}).encode()
        if not self._create_exclusive(marker, body):
            return None  # another run holds this version of the file
        try:
            for n in range(1000):
                dest = join(staging_dir, unique_name(name or info.name, n))
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
                # our version is gone (deleted by someone, or replaced by a newer one, which stays for a later
                # claim): the copy is ours only while our marker still stands, i.e. no other claimer of this
                # version can have copied it; otherwise give the file up and load nothing of it
                if getattr(e, "kind", "") == "missing" and self._marker_owner(marker) == token:
                    return dest
                self.delete(dest, missing_ok=True)  # back out: the source stays for a later claim
                if getattr(e, "kind", "") == "missing":
                    return None
                if getattr(e, "kind", "") == "exists":  # replaced by a newer version while we copied
                    return None
                raise
            return dest
        finally:
            self.delete(marker, missing_ok=True)

    def claim_markers(self, staging_dir: str) -> list[FileInfo]:
        folder = join(staging_dir, _CLAIMS)
        try:
            return self.list(folder, include_hidden=True)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "missing":
                return []
            raise


# ---- sftp and ftp: real folders with an atomic rename --------------------------------------------------------
class RenameFS(FsspecFS):
    """sftp, ftp: server paths; rename is atomic, so moves and claims are renames."""

    def _rename(self, src: str, dst: str) -> None:
        """Rename that fails (ConnectorError kind missing/exists) instead of overwriting."""
        raise NotImplementedError

    def _replace(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def _file_info(self, d: dict) -> FileInfo:
        return FileInfo(d["name"].rstrip("/"), int(d.get("size") or 0), as_utc(d.get("mtime") or d.get("modify")),
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
        tmp = join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
        self._upload(local_file, tmp)
        try:
            (self._replace if overwrite else self._rename)(tmp, path)
        except ConnectorError as e:
            self.delete(tmp, missing_ok=True)
            if getattr(e, "kind", "") == "exists":
                raise exists_error(f"{self.connector} write {self.url(path)}: already exists (never overwritten)")
            raise
        return path

    def move(self, src: str, dst: str, overwrite: bool = False) -> str:
        self._mkdirs(posixpath.dirname(dst))
        try:
            (self._replace if overwrite else self._rename)(src, dst)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "exists":
                raise exists_error(f"{self.connector} move {self.url(src)} → {self.url(dst)}: the destination "
                                   f"exists (never overwritten)")
            raise
        return dst

    def claim(self, path: str, staging_dir: str, name: str | None = None, claims_dir: str | None = None,
              owner: dict | None = None) -> str | None:
        self._mkdirs(staging_dir)  # no marker: the rename itself is exclusive
        name = name or posixpath.basename(path)
        tmp = join(staging_dir, f".{name}.{uuid.uuid4().hex}.claiming")
        try:
            self._rename(path, tmp)  # atomic: of racing runs exactly one finds the source
        except ConnectorError as e:
            if getattr(e, "kind", "") == "missing":
                return None
            raise
        for n in range(1000):
            dest = join(staging_dir, unique_name(name, n))
            try:
                self._rename(tmp, dest)
                return dest
            except ConnectorError as e:
                if getattr(e, "kind", "") != "exists":
                    raise
        raise ConnectorError(f"{self.connector} claim {self.url(path)}: no free name in {staging_dir} "
                             f"(the file is kept as {tmp})")


# ---- open_fs -----------------------------------------------------------------------------------------------
def plain_config(cfg: Any) -> dict:
    if hasattr(cfg, "model_dump"):
        return cfg.model_dump(exclude_none=True)
    return {k: v for k, v in dict(cfg or {}).items() if v is not None}


def require(cfg: dict, key: str, connector: str) -> Any:
    v = cfg.get(key)
    if v in (None, ""):
        raise ConnectorError(f"the {connector} connector needs '{key}' in its config")
    return v


def open_fs(connector: str, cfg: Any) -> RemoteFS:
    """Open the remote store of ``connector`` (s3, gcs, azure_blob, sftp, ftp, http_pull) with ``cfg`` (a dict of
    plain values or the IR's file config model). Raises ConnectorError (bad config, unreachable, bad credentials)
    or MissingDependencyError (the ``remote`` extra is not installed)."""
    c = plain_config(cfg)
    if connector not in REMOTE_CONNECTORS:
        raise ConnectorError(f"unknown remote connector {connector!r}; use one of {', '.join(REMOTE_CONNECTORS)}")
    import importlib
    return importlib.import_module(f"connectors.{connector}.store").open_store(c)


def iter_remote_files(fs: RemoteFS, path: str, tmpdir: str, recursive: bool = False) -> Iterator[tuple[FileInfo, str]]:
    """Each listed file of ``path`` with its downloaded local copy (deleted after the caller moves on)."""
    for info in fs.list(path, recursive):
        local = fs.fetch_local(info.path, tmpdir, expect=info)
        try:
            yield info, local
        finally:
            shutil.rmtree(os.path.dirname(local), ignore_errors=True)
