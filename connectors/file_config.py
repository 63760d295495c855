"""The config models of the file connectors: where the files are, which to take, in which order, how long to
wait, how to stage them (atomicity) and how to read them — shared by local_fs and the remote stores — plus each
remote store's connection settings (one model per connector, so a field another store uses is an error here).

Secrets are references only: ``env:VAR`` (the variable is read when the store is opened, on the driver and on
the workers); a value that is not a reference is a validation error and is never echoed."""
from __future__ import annotations

import re
import urllib.parse
from typing import Literal

from pydantic import Field, field_validator

from connectors.base import ConnectorConfig

FILE_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "avro")
FORMAT_OPTIONS = ("delimiter", "header", "encoding", "compression", "quote", "nullValues")
SECRET_REF = r"^env:[A-Za-z_][A-Za-z0-9_]*$"


def _secret(what: str):
    return Field(default=None, pattern=SECRET_REF, description=f"{what}: a secret reference env:VAR (the "
                                                               f"environment variable holding it), never the value")


class Pattern(ConnectorConfig):
    type: Literal["glob", "regex", "date_template"] = "glob"
    value: str = Field(min_length=1)
    timezone: str | None = Field(default=None, description="IANA zone for date tokens, e.g. America/Los_Angeles")


class WaitPolicy(ConnectorConfig):
    maxRetries: int = Field(default=0, ge=0, le=1000)
    intervalMinutes: float = Field(default=1, ge=0)
    onMissAction: Literal["alert", "skip", "fail"] = "alert"


class Atomicity(ConnectorConfig):
    stagingFolder: str = ".processing/"
    successFolder: str = ".archive/{YYYY-MM-DD}/"
    failureFolder: str = ".failed/"


class FileReading(ConnectorConfig):
    """Which files a source takes and how it reads them (every file source)."""

    pattern: Pattern | None = None
    ordering: Literal["latest_by_mtime", "fifo_by_name", "lexicographic", "process_all"] = "process_all"
    waitPolicy: WaitPolicy | None = None
    format: Literal["csv", "tsv", "json", "jsonl", "parquet", "avro"] = "csv"
    delimiter: str | None = None
    header: bool = True
    encoding: str = "utf-8"
    compression: Literal["gzip", "none", "auto"] | None = None
    quote: str | None = None
    nullValues: list[str] | None = None


class FileSourceConfig(FileReading):
    """Files from a folder: ``{"path": "/data/orders/", "pattern": {...}, "format": "csv"}``."""

    path: str = Field(min_length=1)
    atomicity: Atomicity | None = None


class FileSinkConfig(ConnectorConfig):
    path: str = Field(min_length=1)
    format: Literal["csv", "jsonl", "parquet", "avro"] = "jsonl"
    prefix: str | None = Field(None, description="the start of each file's name (no folder: put folders in path)")
    compression: Literal["gzip", "snappy", "zstd", "none"] | None = None

    @field_validator("prefix")
    @classmethod
    def _plain_name(cls, v):
        if v is not None and (not v or "/" in v or "\\" in v or "\x00" in v or v.startswith(".")):
            raise ValueError("prefix is the start of a file name: not empty, no '/' or '\\', not starting with "
                             "'.' (hidden files are the sinks' temp files); put folders in path")
        return v


# ---- the remote stores' connection settings ------------------------------------------------------------------
class S3Connection(ConnectorConfig):
    bucket: str = Field(min_length=1, description="the bucket; config.path is a key prefix inside it")
    endpoint: str | None = Field(default=None, description="an S3-compatible server's URL (default: AWS S3)")
    region: str | None = None
    username: str | None = Field(default=None, description="the access key id (without it: the AWS default "
                                                           "credential chain)")
    passwordSecret: str | None = _secret("the secret access key")


class GcsConnection(ConnectorConfig):
    bucket: str = Field(min_length=1, description="the bucket; config.path is an object-name prefix inside it")
    endpoint: str | None = Field(default=None, description="a GCS-API server's URL (an emulator: no credentials "
                                                           "are sent); default Google Cloud Storage")
    passwordSecret: str | None = _secret("a service-account key (its JSON text or the path of the file); "
                                         "without it Google's default credentials")


class AzureBlobConnection(ConnectorConfig):
    bucket: str = Field(min_length=1, description="the container; config.path is a blob-name prefix inside it")
    endpoint: str | None = Field(default=None, description="the blob endpoint, https://ACCOUNT.blob.core.windows.net "
                                                           "(or Azurite's http://127.0.0.1:10000/devstoreaccount1)")
    username: str | None = Field(default=None, description="the storage account (default: from the endpoint)")
    passwordSecret: str | None = _secret("the account key, or a whole connection string (SAS included)")


class SftpConnection(ConnectorConfig):
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1)
    passwordSecret: str | None = _secret("the password (with privateKeySecret: the key's passphrase)")
    privateKeySecret: str | None = _secret("a private key (its text or the path of the key file)")
    knownHosts: str | None = Field(default=None, description="a known_hosts file holding the server's host key "
                                                             "(default ~/.ssh/known_hosts); the key is always checked")


class FtpConnection(ConnectorConfig):
    host: str = Field(min_length=1)
    port: int = Field(default=21, ge=1, le=65535)
    username: str | None = Field(default=None, description="default: anonymous")
    passwordSecret: str | None = _secret("the password")


class RemoteSourceConfig(FileSourceConfig):
    """A remote folder's files: ``path`` is a key prefix (object stores) or a server path (sftp, ftp)."""

    claimLeaseSeconds: int = Field(default=300, ge=5, le=86400, description=(
        "with atomicity: how long a run's claim on its staged files outlives its last heartbeat (renewed every "
        "third of it while the run lives); another run recovers the files of a run that is provably gone — its "
        "lease expired, or its process on the same host is dead"))


class S3SourceConfig(RemoteSourceConfig, S3Connection):
    """Files in an S3 bucket: ``{"bucket": "b", "path": "in/", "format": "csv", "atomicity": {}}``."""


class GcsSourceConfig(RemoteSourceConfig, GcsConnection):
    """Files in a GCS bucket: ``{"bucket": "b", "path": "in/", "format": "csv", "atomicity": {}}``."""


class AzureBlobSourceConfig(RemoteSourceConfig, AzureBlobConnection):
    """Files in an Azure Blob container: ``{"bucket": "container", "path": "in/", "atomicity": {}}``."""


class SftpSourceConfig(RemoteSourceConfig, SftpConnection):
    """Files on an SFTP server: ``{"host": "h", "username": "u", "privateKeySecret": "env:KEY", "path": "/in"}``."""


class FtpSourceConfig(RemoteSourceConfig, FtpConnection):
    """Files on an FTP server: ``{"host": "h", "username": "u", "passwordSecret": "env:PW", "path": "/in"}``."""


class S3SinkConfig(FileSinkConfig, S3Connection):
    """One file per commit into an S3 bucket under the key prefix ``path``."""


class GcsSinkConfig(FileSinkConfig, GcsConnection):
    """One file per commit into a GCS bucket under the prefix ``path``."""


class AzureBlobSinkConfig(FileSinkConfig, AzureBlobConnection):
    """One file per commit into an Azure Blob container under the prefix ``path``."""


class SftpSinkConfig(FileSinkConfig, SftpConnection):
    """One file per commit into the folder ``path`` of an SFTP server."""


_SENSITIVE = re.compile(r"authorization|cookie|token|secret|key|password|signature|credential", re.I)
_REF_WORD = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")


class HttpPullSourceConfig(FileReading):
    """Files from an HTTP listing (HTML links or JSON, paginated) or one URL: ``{"url": "https://h/exports/",
    "headers": {"Authorization": "Bearer env:API_TOKEN"}, "format": "csv"}``. Read-only: no atomicity; with
    table targets the ``_flow_files`` ledger makes a re-run skip files already loaded (same content and size)."""

    url: str = Field(pattern=r"^https?://", description="a listing page (HTML or JSON) or one file, http(s) only")
    path: str = Field(default="", description="a path under url to list (default: url itself)")
    headers: dict[str, str] | None = Field(default=None, description=(
        "request headers sent to url's origin only; a credential header (Authorization, Cookie, *Token*, *Key*, "
        "...) holds its secret as an env:VAR word, e.g. \"Bearer env:API_TOKEN\""))
    retries: int = Field(default=3, ge=0, le=20, description="retries of connection errors, 429 and 5xx")
    retryBackoffSeconds: float = Field(default=0.5, ge=0, le=60,
                                       description="first backoff, doubled per retry (Retry-After honoured up to 30 s)")
    atomicity: Atomicity | None = Field(default=None, description="not supported: http_pull is read-only")

    @field_validator("url", "path", mode="before")
    @classmethod
    def _no_userinfo(cls, v, info):
        problem = url_userinfo_problem(v, info.field_name)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("atomicity")
    @classmethod
    def _no_atomicity(cls, v):
        if v is not None:
            raise ValueError("http_pull is read-only: it cannot stage or move files (remove atomicity; with table "
                             "targets the _flow_files ledger still skips files already loaded)")
        return v

    @field_validator("headers")
    @classmethod
    def _secret_headers(cls, v):
        for name, value in (v or {}).items():
            problem = header_secret_problem(name, value)
            if problem:
                raise ValueError(problem)
        return v


def url_userinfo_problem(url, field: str = "url") -> str | None:
    """Why ``url`` may not be used (it carries ``user:password@`` before the host), or None. The message never
    repeats the url: its password would end up in errors, run results and ``_flow_files.path``."""
    if not isinstance(url, str):
        return None
    try:
        netloc = urllib.parse.urlsplit(url.strip()).netloc
    except ValueError:
        return None
    if "@" in netloc:
        return (f"{field} carries credentials (user:password@ before the host), which are never accepted in a url "
                f"(they would show in errors, results and _flow_files.path): remove them and send them as a header "
                f"whose secret is an env:VAR reference, e.g. \"headers\": {{\"Authorization\": \"Basic env:HTTP_BASIC\"}}")
    return None


def header_secret_problem(name: str, value) -> str | None:
    """Why a request header of a document holds a literal credential, or None: a credential header
    (Authorization, Cookie, *Token*, *Key*, ...) must carry its secret as ``env:VAR`` words, after at most a
    scheme word (``Bearer env:API_TOKEN``). The rule of http_pull headers and enrich http/geocode headers."""
    words = str(value).split(" ")
    if _SENSITIVE.search(name) and not (any(_REF_WORD.match(w) for w in words)
                                        and all(_REF_WORD.match(w) for w in words[1:])):
        return (f"header {name!r} carries a credential: write its secret as an env:VAR reference "
                f"(e.g. \"Bearer env:API_TOKEN\"), never the value")
    return None


def format_options(cfg) -> dict:
    """The reader options a file source config sets (delimiter, header, encoding, ...)."""
    return {k: getattr(cfg, k) for k in FORMAT_OPTIONS if getattr(cfg, k) is not None}
