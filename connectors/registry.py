"""THE list of connectors: every source and sink this build knows, in one place, built explicitly (no import side
effects, no auto-discovery). A name used twice is an error when this module loads.

Adding a connector: write its package (``connectors/<name>/__init__.py`` with its config model and its
:class:`~connectors.base.Source` / :class:`~connectors.base.Sink` class) and add one line below. The IR's node
union, ``flow-beam schema``, validation, ``flow-beam plan`` and the runner pick it up from here.
"""
from __future__ import annotations

from connectors import azure_blob, ftp, gcs, http_pull, kafka, kinesis, local_fs, pubsub, pulsar, s3, sftp, table
from connectors.base import Sink, Source
from ir_compiler.errors import ConnectorError


def by_name(kind: str, connectors: list) -> dict:
    """``{name: connector}``; raises ValueError when two connectors of one kind share a name."""
    out: dict = {}
    for c in connectors:
        if c.name in out:
            raise ValueError(f"two {kind} connectors are named '{c.name}': {type(out[c.name]).__name__} and "
                             f"{type(c).__name__}")
        out[c.name] = c
    return out


SOURCES: dict[str, Source] = by_name("source", [
    local_fs.LocalFsSource(),
    s3.S3Source(),
    gcs.GcsSource(),
    azure_blob.AzureBlobSource(),
    sftp.SftpSource(),
    ftp.FtpSource(),
    http_pull.HttpPullSource(),
    kafka.KafkaConsumerSource(),
    pubsub.PubsubSubscriptionSource(),
    kinesis.KinesisConsumerSource(),
    pulsar.PulsarConsumerSource(),
    table.TableSource(),
])
SINKS: dict[str, Sink] = by_name("sink", [
    local_fs.LocalFsSink(),
    s3.S3Sink(),
    gcs.GcsSink(),
    azure_blob.AzureBlobSink(),
    sftp.SftpSink(),
    kafka.KafkaProducerSink(),
    pubsub.PubsubTopicSink(),
])


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ConnectorError(f"unknown source connector '{name}'; known: {', '.join(SOURCES)}") from None


def get_sink(name: str) -> Sink:
    try:
        return SINKS[name]
    except KeyError:
        raise ConnectorError(f"unknown sink connector '{name}'; known: {', '.join(SINKS)}") from None


def local_file_sink() -> Sink:
    """The sink that writes files on this machine (capabilities ``writes_files`` and ``local_paths``): embedded
    tests send every file sink's files to it, under their own folder."""
    return next(s for s in SINKS.values() if s.capabilities.writes_files and s.capabilities.local_paths)


def unbounded_connectors() -> tuple[str, ...]:
    """The names of the stream sources (capability ``bounded=False``)."""
    return tuple(n for n, s in SOURCES.items() if not s.capabilities.bounded)


def infer_source_schema(node, warehouse=None):
    """Sample the data behind a source to learn its schema, or None when it is not reachable now."""
    return get_source(node.connector).infer_schema(node, warehouse)
