"""The s3 (s3fs): keys in one bucket; claims with an ``If-None-Match: *`` marker, copies ``CopySourceIfMatch``.\n\n``open_store(cfg)`` is what :func:`connectors.remote.fs.open_fs` calls (see there for the config)."""
from __future__ import annotations

import re
from typing import Any

from connectors.remote.fs import (FileInfo, ObjectStoreFS, RemoteFS, as_utc, need, probe_url, require,
                                  resolve_secret)
from ir_compiler.errors import ConnectorError


class S3FS(ObjectStoreFS):
    connector = "s3"

    def _file_info(self, d: dict) -> FileInfo:
        etag = (d.get("ETag") or d.get("etag") or "").strip('"') or None
        md5 = etag if etag and re.fullmatch(r"[0-9a-f]{32}", etag) else None  # single-part uploads only
        return FileInfo(self._user(d["name"]), int(d.get("size") or 0), as_utc(d.get("LastModified")), etag, md5)

    def _call(self, op: str, path: str, method: str, **kwargs):
        from fsspec.asyn import sync
        return self._guard(op, path, sync, self.fs.loop, self.fs._call_s3, method, **kwargs)

    def _copy(self, src: str, dst: str, src_info: FileInfo | None = None, overwrite: bool = False) -> None:
        extra = {"CopySourceIfMatch": f'"{src_info.etag}"'} if src_info and src_info.etag else {}
        if src_info and src_info.size > 5 * 2**30:  # above a single CopyObject's limit: s3fs' multipart copy
            return super()._copy(src, dst, src_info, overwrite)
        self._call("copy", src, "copy_object", Bucket=self.bucket, Key=dst.lstrip("/"),
                   CopySource={"Bucket": self.bucket, "Key": src.lstrip("/")}, **extra)
        self.fs.invalidate_cache()

    def _delete_version(self, path: str, info: FileInfo) -> None:
        extra = {"IfMatch": f'"{info.etag}"'} if info.etag else {}
        self._call("delete", path, "delete_object", Bucket=self.bucket, Key=path.lstrip("/"), **extra)
        self.fs.invalidate_cache()




def open_store(c: dict) -> RemoteFS:
    s3fs = need("s3fs", "s3")
    bucket = require(c, "bucket", "s3")
    secret = resolve_secret(c.get("passwordSecret"), "passwordSecret")
    if secret and not c.get("username"):
        raise ConnectorError("the s3 connector: passwordSecret (the secret access key) needs username (the access key id)")
    endpoint = c.get("endpoint")
    if endpoint:
        probe_url(endpoint, f"the S3 endpoint {endpoint}")
    kwargs: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False,
                              "config_kwargs": {"connect_timeout": 10, "read_timeout": 120,
                                                "retries": {"max_attempts": 3, "mode": "standard"}}}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if c.get("region"):
        kwargs["client_kwargs"] = {"region_name": c["region"]}
    if c.get("username"):
        kwargs.update(key=c["username"], secret=secret)
    display = f"s3://{bucket}"
    try:
        fs = s3fs.S3FileSystem(**kwargs)
    except Exception as e:  # noqa: BLE001
        raise RemoteFS(display, endpoint or "AWS S3", [secret or ""]).error("open", None, e) from None
    fs.retries = 3  # s3fs' own retry loop (default 5) on top of botocore's
    store = S3FS(fs, bucket, display, endpoint or "AWS S3", [secret or ""])
    store._guard("open", "", fs.ls, bucket)  # the bucket exists and the credentials are accepted
    return store


