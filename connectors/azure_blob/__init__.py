"""``azure_blob``: files in an Azure Blob container (Azurite locally: scripts/azurite.sh), as a source and as a sink.

``{"connector": "azure_blob", "config": {"bucket": "container", "endpoint": "https://ACCOUNT.blob.core.windows.net", "passwordSecret": "env:AZ_KEY", "path": "in/"}}``

Everything but the name, the config model and the store's own client (:mod:`.store`) is shared with the other
remote stores: :mod:`connectors.remote`.
"""
from __future__ import annotations

from connectors.file_config import AzureBlobSourceConfig, AzureBlobSinkConfig
from connectors.remote import RemoteFileSink, RemoteFileSource


class AzureBlobSource(RemoteFileSource):
    name = "azure_blob"
    config = AzureBlobSourceConfig
    store = "Azure Blob"
    doc = "files in an Azure Blob container (adlfs): patterns, orderings, wait policy, atomicity on the container"


class AzureBlobSink(RemoteFileSink):
    name = "azure_blob"
    config = AzureBlobSinkConfig
    doc = "one file per commit (csv, jsonl, parquet, avro) into an Azure Blob container"
