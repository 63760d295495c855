"""``ftp``: files on an FTP server (pyftpdlib locally: scripts/ftp.sh), as a source.

``{"connector": "ftp", "config": {"host": "h", "username": "u", "passwordSecret": "env:FTP_PASSWORD", "path": "/in"}}``

Everything but the name, the config model and the store's own client (:mod:`.store`) is shared with the other
remote stores: :mod:`connectors.remote`.
"""
from __future__ import annotations

from connectors.file_config import FtpSourceConfig
from connectors.remote import RemoteFileSource


class FtpSource(RemoteFileSource):
    name = "ftp"
    config = FtpSourceConfig
    store = "FTP"
    doc = "files on an FTP server (fsspec ftp): patterns, orderings, wait policy, atomicity by rename"
