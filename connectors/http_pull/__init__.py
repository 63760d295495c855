"""``http_pull``: files from an HTTP(S) listing — an HTML page's links or a JSON listing, followed across pages —
or one URL, as a source (read-only: no sink, no atomicity).

``{"connector": "http_pull", "config": {"url": "https://h/exports/", "headers": {"Authorization": "Bearer
env:API_TOKEN"}, "format": "csv", "retries": 3}}``

Read-only, so nothing is staged or moved: ``atomicity`` is a validation error. With table targets downstream the
``_flow_files`` ledger still makes a re-run skip files already loaded (identity: SHA-256 of the bytes and the size,
streamed on the driver; the workers check the bytes they read are those). The configured headers (their secrets
as ``env:VAR`` words) go only to the origin of ``url``. Everything else is shared: :mod:`connectors.remote`.
"""
from __future__ import annotations

from connectors.base import Capabilities
from connectors.file_config import HttpPullSourceConfig
from connectors.remote import RemoteFileSource


class HttpPullSource(RemoteFileSource):
    name = "http_pull"
    config = HttpPullSourceConfig
    capabilities = Capabilities(samples_schema=True, prepares=True, finishes=True, reads_files=True,
                                atomicity=False, local_paths=False, on_dataflow=True)
    store = "the HTTP listing (pages followed)"
    doc = "files from an HTTP(S) listing or URL (read-only; auth headers from env:VAR, pagination, retries)"
