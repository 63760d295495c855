"""The remote file connectors of the seed (s3, gcs, azure_blob, sftp, ftp, http_pull): they validate with the
file config (:mod:`connectors.file_config`) and plan, but have no runtime in this build yet. Each becomes its own
package (``connectors/s3/`` ...) with a reader when it runs; until then they are declared here, one line each.
"""
from __future__ import annotations

from connectors.base import Capabilities, Sink, Source
from connectors.file_config import FileSinkConfig, FileSourceConfig


class PlannedFileSource(Source):
    config = FileSourceConfig
    capabilities = Capabilities(reads_files=True, atomicity=True)

    def available(self):
        return f"connector '{self.name}' validates but has no runtime in this build yet; use local_fs (or mount " \
               f"the files locally)"

    def describe(self, node, unbounded=False):
        return [f"{self.name} reader (out of scope in this build)"]


class PlannedFileSink(Sink):
    config = FileSinkConfig
    capabilities = Capabilities(writes_files=True)

    def available(self):
        return f"sink connector '{self.name}' is not available yet in this build"


def _source(name: str, doc: str) -> Source:
    return type(f"{name.title().replace('_', '')}Source", (PlannedFileSource,), {"name": name, "doc": doc})()


def _sink(name: str, doc: str) -> Sink:
    return type(f"{name.title().replace('_', '')}Sink", (PlannedFileSink,), {"name": name, "doc": doc})()


SOURCES = [_source("s3", "files in an S3 bucket (planned)"), _source("gcs", "files in a GCS bucket (planned)"),
           _source("azure_blob", "files in an Azure Blob container (planned)"),
           _source("sftp", "files on an SFTP server (planned)"), _source("ftp", "files on an FTP server (planned)"),
           _source("http_pull", "files from an HTTP listing or URL (planned)")]
SINKS = [_sink("s3", "files in an S3 bucket (planned)"), _sink("gcs", "files in a GCS bucket (planned)"),
         _sink("azure_blob", "files in an Azure Blob container (planned)")]
