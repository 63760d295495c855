"""The sftp (sshfs over asyncssh): OpenSSH's SFTP rename never overwrites, so claims and moves are renames.\n\n``open_store(cfg)`` is what :func:`connectors.remote.fs.open_fs` calls (see there for the config)."""
from __future__ import annotations

import os
from typing import Any

from connectors.remote.fs import RemoteFS, RenameFS, need, probe, require, resolve_secret
from ir_compiler.errors import ConnectorError


class SFTPFS(RenameFS):
    connector = "sftp"

    def _channel_call(self, op: str, path: str, method: str, *args):
        from fsspec.asyn import sync

        async def call():
            async with self.fs._pool.get() as channel:
                return await getattr(channel, method)(*args)
        return self._guard(op, path, sync, self.fs.loop, call)

    def _rename(self, src: str, dst: str) -> None:
        # SFTP v3 rename: OpenSSH's server links then unlinks, so an existing dst fails (no overwrite)
        try:
            self._channel_call("rename", src, "rename", src, dst)
        except ConnectorError as e:
            if getattr(e, "kind", "") == "other":  # OpenSSH answers a bare "Failure": tell the cases apart
                if not self.exists(src):
                    e.kind = "missing"  # type: ignore[attr-defined]
                elif self.exists(dst):
                    e.kind = "exists"  # type: ignore[attr-defined]
            raise

    def _replace(self, src: str, dst: str) -> None:
        self._channel_call("rename", src, "posix_rename", src, dst)

    def close(self) -> None:
        try:
            self.fs.client.close()
        except Exception:  # noqa: BLE001
            pass




def open_store(c: dict) -> RemoteFS:
    sshfs = need("sshfs", "sftp")
    host = require(c, "host", "sftp")
    port = int(c.get("port") or 22)
    user = require(c, "username", "sftp")
    password = resolve_secret(c.get("passwordSecret"), "passwordSecret")
    key = resolve_secret(c.get("privateKeySecret"), "privateKeySecret")
    known = c.get("knownHosts") or os.path.expanduser("~/.ssh/known_hosts")
    display = f"sftp://{user}@{host}:{port}"
    if not os.path.isfile(known):
        raise ConnectorError(f"sftp {display}: no known_hosts file at {known}: the server's host key must be known "
                             f"(set knownHosts to a file with its key, e.g. from ssh-keyscan)")
    probe(host, port, f"the SFTP server {host}:{port}")
    kwargs: dict[str, Any] = {"port": port, "username": user, "known_hosts": known, "connect_timeout": 15,
                              "skip_instance_cache": True}
    secrets = [password or ""]
    if key:
        asyncssh = need("asyncssh", "sftp")
        try:
            if "PRIVATE KEY" in key:
                secrets.append(key)
                pk = asyncssh.import_private_key(key, passphrase=password)
            elif os.path.isfile(key):
                pk = asyncssh.read_private_key(key, passphrase=password)
            else:
                raise ConnectorError("sftp privateKeySecret: must hold a private key (its text or a file path)")
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as e:
            raise ConnectorError(f"sftp {display}: the private key cannot be read ({type(e).__name__})") from None
        kwargs.update(client_keys=[pk], passphrase=None, agent_path=None, password=None,
                      preferred_auth="publickey")
    elif password:
        kwargs.update(password=password, client_keys=None, agent_path=None,
                      preferred_auth="password,keyboard-interactive")
    else:
        raise ConnectorError(f"sftp {display}: needs passwordSecret or privateKeySecret")
    err_fs = RemoteFS(display, f"{host}:{port}", secrets)
    err_fs.connector = "sftp"
    try:
        fs = sshfs.SSHFileSystem(host, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise err_fs.error("connect", None, e) from None
    return SFTPFS(fs, display, f"{host}:{port}", secrets)


