"""Connector configs, validated per ``connector`` name (one model per connector family)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ir_compiler.models.base import Strict

FILE_CONNECTORS = ("local_fs", "s3", "gcs", "azure_blob", "sftp", "ftp", "http_pull")
STREAM_CONNECTORS = ("kafka_consumer", "pubsub_subscription", "kinesis_consumer", "pulsar_consumer")
SOURCE_CONNECTORS = FILE_CONNECTORS + STREAM_CONNECTORS + ("table",)
SINK_CONNECTORS = ("local_fs", "s3", "gcs", "azure_blob", "kafka_producer", "pubsub_topic")
FILE_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "avro")


class Pattern(Strict):
    type: Literal["glob", "regex", "date_template"] = "glob"
    value: str = Field(min_length=1)
    timezone: str | None = Field(default=None, description="IANA zone for date tokens, e.g. America/Los_Angeles")


class WaitPolicy(Strict):
    maxRetries: int = Field(default=0, ge=0, le=1000)
    intervalMinutes: float = Field(default=1, ge=0)
    onMissAction: Literal["alert", "skip", "fail"] = "alert"


class Atomicity(Strict):
    stagingFolder: str = ".processing/"
    successFolder: str = ".archive/{YYYY-MM-DD}/"
    failureFolder: str = ".failed/"


class FileSourceConfig(Strict):
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


class KafkaConsumerConfig(Strict):
    bootstrapServers: str | list[str]
    topics: str | list[str]
    groupId: str = Field(min_length=1)
    startingOffsets: Literal["earliest", "latest", "committed"] = "committed"
    format: Literal["json", "avro", "csv", "raw"] = "json"
    commitOffsets: bool = True
    avroSchema: dict[str, Any] | str | None = None
    schemaRegistryUrl: str | None = None
    securityProtocol: str | None = None
    pollTimeoutMs: int = Field(default=1000, ge=10)
    discoverPartitions: int = Field(default=4, ge=0, le=64, description=(
        "streaming: how many partitions added to each topic while the job runs are picked up"))


class PubsubSubscriptionConfig(Strict):
    subscription: str | None = None
    topic: str | None = None
    format: Literal["json", "avro", "csv", "raw"] = "json"
    idAttribute: str | None = None
    timestampAttribute: str | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.subscription is None) == (self.topic is None):
            raise ValueError("pubsub_subscription needs exactly one of 'subscription' or 'topic'")
        return self


class KinesisConsumerConfig(Strict):
    streamName: str
    region: str | None = None
    format: Literal["json", "avro", "csv", "raw"] = "json"
    startingPosition: Literal["LATEST", "TRIM_HORIZON"] = "LATEST"
    endpoint: str | None = None


class PulsarConsumerConfig(Strict):
    serviceUrl: str
    topics: str | list[str]
    subscription: str
    format: Literal["json", "avro", "csv", "raw"] = "json"


class TableSourceConfig(Strict):
    table: str = Field(min_length=1, description='"schema.table" in the warehouse')
    query: str | None = Field(default=None, description="a read-only SELECT over the warehouse")


class FileSinkConfig(Strict):
    path: str = Field(min_length=1)
    format: Literal["csv", "jsonl", "parquet", "avro"] = "jsonl"
    prefix: str | None = None
    compression: Literal["gzip", "snappy", "zstd", "none"] | None = None
    bucket: str | None = None
    endpoint: str | None = None


class KafkaProducerConfig(Strict):
    bootstrapServers: str | list[str]
    topic: str
    key: str | list[str] | None = Field(default=None, description="column(s) that form the message key")
    format: Literal["json", "avro", "csv", "raw"] = "json"
    avroSchema: dict[str, Any] | str | None = None


class PubsubTopicConfig(Strict):
    topic: str
    format: Literal["json", "avro", "csv", "raw"] = "json"
    attributes: list[str] | None = None


SOURCE_CONFIGS: dict[str, type[Strict]] = {
    **{c: FileSourceConfig for c in FILE_CONNECTORS},
    "kafka_consumer": KafkaConsumerConfig,
    "pubsub_subscription": PubsubSubscriptionConfig,
    "kinesis_consumer": KinesisConsumerConfig,
    "pulsar_consumer": PulsarConsumerConfig,
    "table": TableSourceConfig,
}
SINK_CONFIGS: dict[str, type[Strict]] = {
    **{c: FileSinkConfig for c in ("local_fs", "s3", "gcs", "azure_blob")},
    "kafka_producer": KafkaProducerConfig,
    "pubsub_topic": PubsubTopicConfig,
}
