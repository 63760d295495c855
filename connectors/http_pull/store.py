"""The http_pull (requests): read-only listings (HTML or JSON, paginated) and downloads.\n\n``open_store(cfg)`` is what :func:`connectors.remote.fs.open_fs` calls (see there for the config)."""
from __future__ import annotations

import base64
import hashlib
import html.parser
import http.cookiejar
import io
import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
import time
import urllib.parse
from typing import IO

from connectors.remote.fs import (FileInfo, GuardedStream, RemoteFS, as_utc, first_line, is_hidden, need, require,
                                  resolve_header)
from ir_compiler.errors import ConnectorError

log = logging.getLogger(__name__)


# ---- http_pull ---------------------------------------------------------------------------------------------
class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.next: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("a", "link") and a.get("href"):
            if "next" in (a.get("rel") or "").lower().split():
                self.next = a["href"]
            elif tag == "a":
                self.links.append(a["href"])


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Accept and return no cookie."""

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urllib.parse.urlsplit(url)
    return u.scheme.lower(), (u.hostname or "").lower(), u.port or {"http": 80, "https": 443}.get(u.scheme.lower())


class HttpFS(RemoteFS):
    """http_pull: read-only. A listing is an HTML page (its ``<a href>`` links under the listed URL) or JSON
    (``{"files": [{"url"|"name", "size", "mtime", "etag"}], "next": url}`` or a list of URLs/names), followed
    across pages (JSON ``next``, ``Link: rel=next``, ``<a rel="next">``). A URL answering with anything else is
    one file. Retries: connection errors, 429 and 5xx, ``retries`` times with exponential backoff (Retry-After is
    honoured up to 30 s). Redirects are followed by hand: the configured headers (which carry the secrets) go only
    to the origin of ``url``; a redirect to another origin drops them."""

    connector = "http_pull"
    read_only = True
    MAX_PAGES = 1000
    MAX_REDIRECTS = 10

    def __init__(self, url: str, headers: dict[str, str], secrets: list[str], retries: int = 3,
                 timeout: float = 60.0, backoff: float = 0.5):
        super().__init__(url, url, secrets)
        requests = need("requests", "http_pull")
        self._requests = requests
        self.base = url
        self.headers = headers
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.session = requests.Session()
        self.session.trust_env = False  # no ~/.netrc credentials or proxies sneaking in
        # no cookie jar: a cookie a server sets would be sent on to another origin after a redirect (cookies ignore
        # ports and schemes); credentials go only in the configured headers, which stay with url's origin
        self.session.cookies.set_policy(_NoCookies())
        self.warnings: list[str] = []  # listed files not taken (dead links), for the run's warnings

    def url(self, path: str) -> str:
        return self._abs(path)

    def _abs(self, path: str) -> str:
        if not path:
            return self.base
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path):
            return path
        return urllib.parse.urljoin(self.base if self.base.endswith("/") else self.base + "/", path.lstrip("/")
                                    if not path.startswith("/") else path)

    def _request(self, method: str, path: str, stream: bool = False):
        url = self._abs(path)
        origin = _origin(self.base)
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30))
            target, hops = url, 0
            try:
                while True:
                    headers = dict(self.headers) if _origin(target) == origin else {}
                    resp = self.session.request(method, target, headers=headers, stream=stream,
                                                allow_redirects=False, timeout=self.timeout)
                    if resp.status_code in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        resp.close()
                        hops += 1
                        if hops > self.MAX_REDIRECTS:
                            raise ConnectorError(f"http_pull {method} {url}: more than {self.MAX_REDIRECTS} redirects")
                        target = urllib.parse.urljoin(target, resp.headers["Location"])
                        if _origin(target) != origin:
                            log.info("http_pull: redirect from %s to another origin %s: configured headers dropped",
                                     url, urllib.parse.urlsplit(target)._replace(query="").geturl())
                        continue
                    break
            except ConnectorError:
                raise
            except self._requests.RequestException as e:
                last = e
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                last = ConnectorError(f"HTTP {resp.status_code}")
                retry_after = resp.headers.get("Retry-After", "")
                resp.close()
                if retry_after.isdigit() and attempt < self.retries:
                    time.sleep(min(int(retry_after), 30))
                continue
            if resp.status_code >= 400:
                resp.close()
                kind = {401: "denied", 403: "denied", 404: "missing", 410: "missing"}.get(resp.status_code, "other")
                detail = {"denied": "permission denied or credentials rejected; check the headers' secrets",
                          "missing": "not found (moved or deleted meanwhile?)"}.get(kind, "refused")
                err = ConnectorError(self._scrub(f"http_pull {method} {url}: HTTP {resp.status_code} {resp.reason}: "
                                                 f"{detail}"))
                err.kind = kind  # type: ignore[attr-defined]
                err.status = resp.status_code  # type: ignore[attr-defined]
                raise err
            return resp
        if isinstance(last, self._requests.RequestException):
            err = self.error(method, path, last)
            raise ConnectorError(f"{err.message} (after {self.retries + 1} attempts)") from None
        err = ConnectorError(f"http_pull {method} {url}: {last} after {self.retries + 1} attempts; giving up")
        err.kind = "unreachable"  # type: ignore[attr-defined]
        raise err

    def error(self, op: str, path: str | None, e: BaseException) -> ConnectorError:
        if isinstance(e, self._requests.ConnectionError) or isinstance(e, self._requests.Timeout):
            msg = f"http_pull {op} {self._abs(path or '')}: cannot reach {self._netloc()} ({first_line(e)})"
            err = ConnectorError(self._scrub(msg))
            err.kind = "unreachable"  # type: ignore[attr-defined]
            return err
        return super().error(op, path, e)

    def _netloc(self) -> str:
        u = urllib.parse.urlsplit(self.base)
        return f"{u.scheme}://{u.netloc}"

    @staticmethod
    def _info_from_headers(url: str, headers) -> FileInfo:
        md5 = headers.get("Content-MD5")
        try:
            md5 = base64.b64decode(md5).hex() if md5 else None
        except ValueError:
            md5 = None
        size = headers.get("Content-Length")
        return FileInfo(url, int(size) if size and size.isdigit() else -1, as_utc(headers.get("Last-Modified")),
                        (headers.get("ETag") or "").strip('"').removeprefix("W/").strip('"') or None, md5)

    def info(self, path: str) -> FileInfo:
        resp = self._request("HEAD", path)
        resp.close()
        return self._info_from_headers(resp.url or self._abs(path), resp.headers)

    @staticmethod
    def _is_listing(resp) -> str | None:
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype in ("application/json", "text/json") or ctype.endswith("+json"):
            return "json"
        if ctype in ("text/html", "application/xhtml+xml"):
            return "html"
        return None

    def list(self, path: str = "", recursive: bool = False, include_hidden: bool = False) -> list[FileInfo]:
        start = self._abs(path)
        out: dict[str, FileInfo] = {}
        todo, seen_pages, pages = [start], set(), 0
        while todo:
            page = todo.pop(0)
            if page in seen_pages:
                continue
            seen_pages.add(page)
            pages += 1
            if pages > self.MAX_PAGES:
                raise ConnectorError(f"http_pull list {start}: more than {self.MAX_PAGES} listing pages")
            resp = self._request("GET", page)
            kind = self._is_listing(resp)
            if kind is None:  # one file
                resp.close()
                info = self._info_from_headers(page, resp.headers)
                out[info.path] = info
                continue
            try:
                body = resp.content
            except self._requests.RequestException as e:
                raise self.error("list", page, e) from None
            nxt, files, folders = self._parse_listing(kind, page, body, resp.headers)
            for f in files:
                rel = f.path[len(start):] if f.path.startswith(start) else urllib.parse.urlsplit(f.path).path
                if not include_hidden and is_hidden(urllib.parse.unquote(rel)):
                    continue
                out[f.path] = f
            if recursive:
                todo += [u for u in folders if u not in seen_pages]
            if nxt:
                todo.insert(0, nxt)
        result = []
        for f in out.values():
            if f.size < 0 or f.mtime is None:
                try:
                    head = self.info(f.path)
                except ConnectorError as e:
                    if getattr(e, "kind", "") != "missing":  # 404/410: a dead link (or gone since): not taken
                        raise
                    note = (f"http_pull: listed file {f.path} answers HTTP {getattr(e, 'status', 404)} (a dead link, "
                            f"or deleted meanwhile): not taken")
                    log.warning("%s", note)
                    if note not in self.warnings:
                        self.warnings.append(note)
                    continue
                f = FileInfo(f.path, head.size if f.size < 0 else f.size, f.mtime or head.mtime, f.etag or head.etag,
                             f.md5 or head.md5)
            result.append(f)
        return sorted(result, key=lambda f: f.path)

    def _keep(self, listed: str, url: str) -> bool:
        """Same origin and under the listed URL's folder (no parent links, no query-only links)."""
        if _origin(url) != _origin(listed):
            return False
        folder = urllib.parse.urlsplit(listed).path
        folder = folder if folder.endswith("/") else posixpath.dirname(folder) + "/"
        p = urllib.parse.urlsplit(url).path
        return p.startswith(folder) and p != folder

    def _parse_listing(self, kind: str, page: str, body: bytes, headers):
        nxt = None
        link = headers.get("Link", "")
        m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
        if m:
            nxt = urllib.parse.urljoin(page, m.group(1))
        files: list[FileInfo] = []
        folders: list[str] = []
        if kind == "json":
            try:
                doc = json.loads(body)
            except ValueError as e:
                raise ConnectorError(f"http_pull list {page}: the JSON listing does not parse ({e})") from None
            entries = doc if isinstance(doc, list) else doc.get("files", []) if isinstance(doc, dict) else []
            if isinstance(doc, dict):
                if doc.get("next"):
                    nxt = urllib.parse.urljoin(page, doc["next"])
                folders = [urllib.parse.urljoin(page, f.get("url") or f.get("name", "") + "/")
                           for f in doc.get("folders", []) if isinstance(f, dict)]
            for e in entries:
                if isinstance(e, str):
                    e = {"url": e}
                if not isinstance(e, dict) or not (e.get("url") or e.get("name")):
                    continue
                url = urllib.parse.urljoin(page, e.get("url") or urllib.parse.quote(e["name"]))
                if not self._keep(page, url):
                    continue
                size = e.get("size")
                files.append(FileInfo(url, int(size) if isinstance(size, (int, float)) else -1, as_utc(e.get("mtime")),
                                      e.get("etag"), e.get("md5")))
        else:
            parser = _Links()
            parser.feed(body.decode("utf-8", "replace"))
            if parser.next:
                nxt = urllib.parse.urljoin(page, parser.next)
            for href in parser.links:
                url = urllib.parse.urljoin(page, href)
                url = urllib.parse.urlsplit(url)._replace(fragment="").geturl()
                if not self._keep(page, url) or urllib.parse.urlsplit(url).query:
                    continue
                if url.endswith("/"):
                    folders.append(url)
                else:
                    files.append(FileInfo(url, -1, None))
        nxt = nxt if nxt and _origin(nxt) == _origin(page) else None
        return nxt, files, folders

    def open_read(self, path: str) -> IO[bytes]:
        resp = self._request("GET", path, stream=True)
        resp.raw.decode_content = True

        class _Raw:
            def read(self_, n=-1):
                return resp.raw.read(None if n is None or n < 0 else n)

            def close(self_):
                resp.close()
        return io.BufferedReader(GuardedStream(self, path, _Raw()), buffer_size=1 << 20)

    def fetch_local(self, path: str, tmpdir: str, expect: FileInfo | None = None) -> str:
        name = posixpath.basename(urllib.parse.urlsplit(self._abs(path)).path) or "file"
        os.makedirs(tmpdir, exist_ok=True)
        folder = tempfile.mkdtemp(prefix="fetch-", dir=tmpdir)
        local = os.path.join(folder, urllib.parse.unquote(name))
        try:
            resp = self._request("GET", path, stream=True)
            current = self._info_from_headers(self._abs(path), resp.headers)
            if expect is not None and expect.etag and current.etag and expect.etag != current.etag:
                resp.close()
                raise ConnectorError(f"http_pull read {self._abs(path)}: the file changed since it was listed "
                                     f"(etag {expect.etag} → {current.etag})")
            md5, size = hashlib.md5(), 0
            with open(local, "wb") as dst:
                try:
                    for block in resp.iter_content(1 << 20):
                        md5.update(block)
                        size += len(block)
                        dst.write(block)
                except self._requests.RequestException as e:
                    raise self.error("read", path, e) from None
                finally:
                    resp.close()
            if current.size >= 0 and size != current.size:
                raise ConnectorError(f"http_pull read {self._abs(path)}: got {size} bytes of {current.size} "
                                     f"(truncated download)")
            if current.md5 and md5.hexdigest() != current.md5:
                raise ConnectorError(f"http_pull read {self._abs(path)}: the download's MD5 differs from Content-MD5")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return local

    def write(self, path, local_file, overwrite=False):
        self._read_only("write", path)

    def move(self, src, dst, overwrite=False):
        self._read_only("move", src)

    def claim(self, path, staging_dir, name=None, claims_dir=None, owner=None):
        self._read_only("claim", path)

    def delete(self, path, missing_ok=False):
        self._read_only("delete", path)

    def close(self) -> None:
        self.session.close()




def open_store(c: dict) -> RemoteFS:
    url = require(c, "url", "http_pull")
    from connectors.file_config import url_userinfo_problem
    for field in ("url", "path"):
        problem = url_userinfo_problem(c.get(field), field)
        if problem:
            raise ConnectorError(f"http_pull {problem}")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConnectorError(f"http_pull url must start with http:// or https://, not {url!r}")
    secrets: list[str] = []
    headers = {str(k): resolve_header(str(k), v, secrets) for k, v in (c.get("headers") or {}).items()}
    retries = int(c.get("retries", 3))
    if not 0 <= retries <= 20:
        raise ConnectorError("http_pull retries must be between 0 and 20")
    return HttpFS(url, headers, secrets, retries=retries, backoff=float(c.get("retryBackoffSeconds", 0.5)))


