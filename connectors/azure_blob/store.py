"""The azure_blob (adlfs + azure-storage-blob): ETag conditions; server-side copies awaited.\n\n``open_store(cfg)`` is what :func:`connectors.remote.fs.open_fs` calls (see there for the config)."""
from __future__ import annotations

import re
import urllib.parse
from typing import Any, Callable

from connectors.remote.fs import (FileInfo, ObjectStoreFS, RemoteFS, as_utc, need, probe_url, require,
                                  resolve_secret)
from ir_compiler.errors import ConnectorError


class AzureBlobFS(ObjectStoreFS):
    connector = "azure_blob"
    COPY_WAIT_S = 3600

    def _file_info(self, d: dict) -> FileInfo:
        cs = d.get("content_settings") or {}
        raw_md5 = cs.get("content_md5") if isinstance(cs, dict) else getattr(cs, "content_md5", None)
        md5 = bytes(raw_md5).hex() if raw_md5 else None
        etag = (d.get("etag") or "").strip('"') or None
        return FileInfo(self._user(d["name"]), int(d.get("size") or 0), as_utc(d.get("last_modified")), etag, md5)

    def _run(self, op: str, path: str, make_coro: Callable):
        from fsspec.asyn import sync
        return self._guard(op, path, sync, self.fs.loop, make_coro)

    def _copy(self, src: str, dst: str, src_info: FileInfo | None = None, overwrite: bool = False) -> None:
        """Server-side copy of exactly the listed version (source ETag) onto an absent ``dst``, waiting until the
        copy completed (Azure copies asynchronously: deleting the source before would lose it)."""
        import asyncio

        from azure.core import MatchConditions
        cond: dict[str, Any] = {} if overwrite else {"match_condition": MatchConditions.IfMissing}
        if src_info and src_info.etag:
            cond.update(source_etag=src_info.etag, source_match_condition=MatchConditions.IfNotModified)

        async def go():
            cc = self.fs.service_client.get_container_client(self.bucket)
            source = cc.get_blob_client(src.lstrip("/"))
            target = cc.get_blob_client(dst.lstrip("/"))
            props = await target.start_copy_from_url(source.url, **cond)
            status, waited = props.get("copy_status"), 0.0
            while status == "pending":
                if waited > self.COPY_WAIT_S:
                    await target.abort_copy(props["copy_id"])
                    raise ConnectorError(f"azure_blob copy {self.url(src)}: not done after {self.COPY_WAIT_S} s")
                await asyncio.sleep(0.5)
                waited += 0.5
                status = (await target.get_blob_properties()).copy.status
            if status != "success":
                raise ConnectorError(f"azure_blob copy {self.url(src)} → {self.url(dst)}: copy {status}")
        self._run("copy", src, go)
        self.fs.invalidate_cache()

    def _delete_version(self, path: str, info: FileInfo) -> None:
        if not info.etag:
            return self.delete(path)
        from azure.core import MatchConditions

        async def go():
            cc = self.fs.service_client.get_container_client(self.bucket)
            await cc.get_blob_client(path.lstrip("/")).delete_blob(
                etag=info.etag, match_condition=MatchConditions.IfNotModified)
        self._run("delete", path, go)
        self.fs.invalidate_cache()




_AZ_KV = re.compile(r"(?:^|;)\s*(AccountKey|SharedAccessSignature|BlobEndpoint|AccountName)\s*=", re.I)


def open_store(c: dict) -> RemoteFS:
    adlfs = need("adlfs", "azure_blob")
    container = require(c, "bucket", "azure_blob")
    secret = resolve_secret(c.get("passwordSecret"), "passwordSecret")
    endpoint = (c.get("endpoint") or "").rstrip("/")
    secrets = [secret or ""]
    if secret and _AZ_KV.search(secret):  # a whole connection string
        conn = secret
        m = re.search(r"BlobEndpoint=([^;]+)", conn)
        endpoint = endpoint or (m.group(1).rstrip("/") if m else "")
        for field in ("AccountKey", "SharedAccessSignature"):  # scrubbed from messages on their own too
            m = re.search(field + r"=([^;]+)", conn)
            if m:
                secrets.append(m.group(1))
                sig = re.search(r"(?:^|&)sig=([^&]+)", m.group(1))
                if sig:
                    secrets += [sig.group(1), urllib.parse.unquote(sig.group(1))]
    else:
        account = c.get("username")
        if not account and endpoint:
            u = urllib.parse.urlsplit(endpoint)
            host = u.hostname or ""
            account = host.split(".")[0] if host.endswith(".core.windows.net") else u.path.strip("/").split("/")[0]
        if not account:
            raise ConnectorError("the azure_blob connector needs 'username' (the storage account) or 'endpoint'")
        endpoint = endpoint or f"https://{account}.blob.core.windows.net"
        if not secret:
            raise ConnectorError("the azure_blob connector needs passwordSecret: env:VAR holding the account key or "
                                 "a connection string")
        scheme = urllib.parse.urlsplit(endpoint).scheme or "https"
        conn = f"DefaultEndpointsProtocol={scheme};AccountName={account};AccountKey={secret};BlobEndpoint={endpoint};"
    if endpoint:
        probe_url(endpoint, f"the Azure Blob endpoint {endpoint}")
    display = f"az://{container}"
    try:
        fs = adlfs.AzureBlobFileSystem(connection_string=conn, skip_instance_cache=True, use_listings_cache=False)
        # the SDK's default retry waits 15 s, 18 s, 24 s... (a dead endpoint takes minutes to report); this one
        # retries 3 times after ~2, 3 and 5 s
        from azure.storage.blob.aio import BlobServiceClient
        fs.service_client = BlobServiceClient.from_connection_string(
            conn, retry_total=3, initial_backoff=1, increment_base=2, connection_timeout=10)
    except Exception as e:  # noqa: BLE001
        raise RemoteFS(display, endpoint or "Azure Blob", secrets).error("open", None, e) from None
    store = AzureBlobFS(fs, container, display, endpoint or "Azure Blob", secrets)
    store._guard("open", "", fs.ls, container)
    return store


