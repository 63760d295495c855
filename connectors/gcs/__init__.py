"""``gcs``: files in a GCS bucket (fake-gcs-server locally: scripts/gcs.sh), as a source and as a sink.

``{"connector": "gcs", "config": {"bucket": "b", "path": "in/", "format": "parquet", "atomicity": {}}}``

Everything but the name, the config model and the store's own client (:mod:`.store`) is shared with the other
remote stores: :mod:`connectors.remote`.
"""
from __future__ import annotations

from connectors.file_config import GcsSourceConfig, GcsSinkConfig
from connectors.remote import RemoteFileSink, RemoteFileSource


class GcsSource(RemoteFileSource):
    name = "gcs"
    config = GcsSourceConfig
    store = "GCS"
    doc = "files in a GCS bucket (gcsfs): patterns, orderings, wait policy, atomicity on the bucket"


class GcsSink(RemoteFileSink):
    name = "gcs"
    config = GcsSinkConfig
    doc = "one file per commit (csv, jsonl, parquet, avro) into a GCS bucket"
