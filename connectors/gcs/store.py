"""The gcs (gcsfs' core JSON-API class): generations make copies and deletes exact.\n\n``open_store(cfg)`` is what :func:`connectors.remote.fs.open_fs` calls (see there for the config)."""
from __future__ import annotations

import base64
import json
import os
from typing import Any

from connectors.remote.fs import (FileInfo, ObjectStoreFS, RemoteFS, as_utc, need, probe_url, require,
                                  resolve_secret)
from ir_compiler.errors import ConnectorError


class GCSFS(ObjectStoreFS):
    connector = "gcs"

    def _file_info(self, d: dict) -> FileInfo:
        md5 = d.get("md5Hash")
        md5 = base64.b64decode(md5).hex() if md5 else None
        gen = d.get("generation")
        return FileInfo(self._user(d["name"]), int(d.get("size") or 0), as_utc(d.get("updated") or d.get("mtime")),
                        str(gen) if gen else d.get("etag"), md5)

    def _call(self, op: str, path: str, *args, **kwargs):
        from fsspec.asyn import sync
        return self._guard(op, path, sync, self.fs.loop, self.fs._call, *args, **kwargs)

    def _copy(self, src: str, dst: str, src_info: FileInfo | None = None, overwrite: bool = False) -> None:
        """Rewrite exactly the listed generation of ``src`` onto an absent ``dst`` (ifGenerationMatch=0)."""
        if not src_info or not (src_info.etag or "").isdigit():
            return super()._copy(src, dst, src_info, overwrite)
        args = ("POST", "b/{}/o/{}/rewriteTo/b/{}/o/{}", self.bucket, src.lstrip("/"), self.bucket, dst.lstrip("/"))
        kw = {"headers": {"Content-Type": "application/json"}, "json_out": True, "sourceGeneration": src_info.etag,
              "ifSourceGenerationMatch": src_info.etag, **({} if overwrite else {"ifGenerationMatch": "0"})}
        out = self._call("copy", src, *args, **kw)
        while out.get("done") is not True:  # large objects are rewritten in several calls
            out = self._call("copy", src, *args, rewriteToken=out["rewriteToken"], **kw)
        self.fs.invalidate_cache()

    def _delete_version(self, path: str, info: FileInfo) -> None:
        if not (info.etag or "").isdigit():
            return self.delete(path)
        # generation= deletes exactly that version (fake-gcs-server ignores ifGenerationMatch on DELETE; GCS
        # honours both): a newer version written meanwhile survives, and the delete reports it missing
        self._call("delete", path, "DELETE", "b/{}/o/{}", self.bucket, path.lstrip("/"), generation=info.etag,
                   ifGenerationMatch=info.etag)
        self.fs.invalidate_cache()




def open_store(c: dict) -> RemoteFS:
    # gcsfs.core's class: the package's default (ExtendedGcsFileSystem, "experimental" zonal/HNS support) asks
    # Google's gRPC storage-control API for each bucket's type, which an emulator does not serve (it retries TLS
    # handshakes for minutes); the core class speaks only the JSON API
    gcsfs = need("gcsfs.core", "gcs")
    bucket = require(c, "bucket", "gcs")
    secret = resolve_secret(c.get("passwordSecret"), "passwordSecret")
    endpoint = c.get("endpoint")
    kwargs: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    token: Any = None
    if secret:
        if secret.lstrip().startswith("{"):
            try:
                token = json.loads(secret)
            except ValueError:
                raise ConnectorError("gcs passwordSecret: the service-account key is not valid JSON") from None
        elif os.path.isfile(secret):
            token = secret
        else:
            raise ConnectorError("gcs passwordSecret: must hold a service-account key (JSON text or a file path)")
    elif endpoint:
        token = "anon"  # an emulator: no credentials
    if endpoint:
        probe_url(endpoint, f"the GCS endpoint {endpoint}")
        kwargs["endpoint_url"] = endpoint
    if token is not None:
        kwargs["token"] = token
    display = f"gs://{bucket}"
    try:
        fs = gcsfs.GCSFileSystem(**kwargs)
    except Exception as e:  # noqa: BLE001
        raise RemoteFS(display, endpoint or "Google Cloud Storage", [secret or ""]).error("open", None, e) from None
    store = GCSFS(fs, bucket, display, endpoint or "Google Cloud Storage", [secret or ""])
    store._guard("open", "", fs.ls, bucket)
    return store


