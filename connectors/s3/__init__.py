"""``s3``: files in an S3 bucket (moto locally: scripts/s3.sh), as a source and as a sink.

``{"connector": "s3", "config": {"bucket": "b", "endpoint": "http://127.0.0.1:19500", "username": "AKIA…", "passwordSecret": "env:S3_SECRET", "path": "in/", "format": "csv", "atomicity": {}}}``

Everything but the name, the config model and the store's own client (:mod:`.store`) is shared with the other
remote stores: :mod:`connectors.remote`.
"""
from __future__ import annotations

from connectors.file_config import S3SourceConfig, S3SinkConfig
from connectors.remote import RemoteFileSink, RemoteFileSource


class S3Source(RemoteFileSource):
    name = "s3"
    config = S3SourceConfig
    store = "S3"
    doc = "files in an S3 bucket (s3fs): patterns, orderings, wait policy, atomicity on the bucket"


class S3Sink(RemoteFileSink):
    name = "s3"
    config = S3SinkConfig
    doc = "one file per commit (csv, jsonl, parquet, avro) into an S3 bucket"
