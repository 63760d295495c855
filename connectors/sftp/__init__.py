"""``sftp``: files on an SFTP server (OpenSSH locally: scripts/sftp.sh), as a source and as a sink.

``{"connector": "sftp", "config": {"host": "h", "username": "u", "privateKeySecret": "env:SFTP_KEY", "knownHosts": "/etc/known_hosts", "path": "/in"}}``

Everything but the name, the config model and the store's own client (:mod:`.store`) is shared with the other
remote stores: :mod:`connectors.remote`.
"""
from __future__ import annotations

from connectors.file_config import SftpSourceConfig, SftpSinkConfig
from connectors.remote import RemoteFileSink, RemoteFileSource


class SftpSource(RemoteFileSource):
    name = "sftp"
    config = SftpSourceConfig
    store = "SFTP"
    doc = "files on an SFTP server (sshfs/asyncssh): patterns, orderings, wait policy, atomicity by rename"


class SftpSink(RemoteFileSink):
    name = "sftp"
    config = SftpSinkConfig
    doc = "one file per commit (csv, jsonl, parquet, avro) into a folder of an SFTP server"
