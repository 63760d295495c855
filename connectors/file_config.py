"""The config models every file connector shares: where the files are, which to take, in which order, how long to
wait, how to stage them (atomicity) and how to read them. Remote file connectors (s3, gcs, azure_blob, sftp, ftp,
http_pull) add their connection settings to the same model."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from connectors.base import ConnectorConfig

FILE_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "avro")
FORMAT_OPTIONS = ("delimiter", "header", "encoding", "compression", "quote", "nullValues")


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


class FileSourceConfig(ConnectorConfig):
    """Files from a folder: ``{"path": "/data/orders/", "pattern": {...}, "format": "csv"}``."""

    path: str = Field(min_length=1)
    pattern: Pattern | None = None
    ordering: Literal["latest_by_mtime", "fifo_by_name", "lexicographic", "process_all"] = "process_all"
    waitPolicy: WaitPolicy | None = None
    atomicity: Atomicity | None = None
    format: Literal["csv", "tsv", "json", "jsonl", "parquet", "avro"] = "csv"
    delimiter: str | None = None
    header: bool = True
    encoding: str = "utf-8"
    compression: Literal["gzip", "none", "auto"] | None = None
    quote: str | None = None
    nullValues: list[str] | None = None
    # connection settings of the remote file connectors (s3, gcs, azure_blob, sftp, ftp, http_pull)
    bucket: str | None = None
    endpoint: str | None = None
    region: str | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    passwordSecret: str | None = Field(default=None, description="env:VAR or a secret reference, never a value")
    url: str | None = None
    headers: dict[str, str] | None = None


class FileSinkConfig(ConnectorConfig):
    path: str = Field(min_length=1)
    format: Literal["csv", "jsonl", "parquet", "avro"] = "jsonl"
    prefix: str | None = None
    compression: Literal["gzip", "snappy", "zstd", "none"] | None = None
    bucket: str | None = None
    endpoint: str | None = None


def format_options(cfg) -> dict:
    """The reader options a file source config sets (delimiter, header, encoding, ...)."""
    return {k: getattr(cfg, k) for k in FORMAT_OPTIONS if getattr(cfg, k) is not None}
