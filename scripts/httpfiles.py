"""A small local HTTP file server for the http_pull connector's tests (standard library only; run by scripts/http.sh).

    python scripts/httpfiles.py --port N --root DIR [--token-env VAR] [--page-size N] [--fail-first N]
                                [--redirect-to ORIGIN] [--record FILE]

- ``GET /path/file`` sends the file (``Content-Length``, ``Last-Modified``, ``ETag`` = MD5 of the content in
  quotes, ``Content-MD5``); ``HEAD`` the same without a body.
- ``GET /folder/`` is a listing of the folder's visible files and sub-folders (names starting with ``.`` are
  hidden), sorted by name: an HTML page of ``<a href>`` links by default, JSON with ``?format=json`` or an
  ``Accept: application/json`` header: ``{"files": [{"name", "url", "size", "mtime", "etag"}], "folders": [...],
  "page": n, "next": url-or-null}`` (``mtime`` in epoch seconds, URLs absolute paths).
  ``--page-size N`` cuts listings into pages of N entries: ``?page=2`` (1-based); the HTML page then carries
  ``<a rel="next" href="...">`` and a ``Link: <...>; rel="next"`` header, the JSON its ``next``.
- ``--token-env VAR``: every request needs ``Authorization: Bearer <value of VAR>`` (else 401). The token is read
  from the environment so it never shows in the process list.
- ``--fail-first N``: the first N requests (of any kind) get ``503`` with ``Retry-After: 0``, for retry tests.
- ``--redirect-to ORIGIN``: every request gets ``302`` to ``ORIGIN`` + the same path and query (cross-origin
  redirect tests); checked after the token, so only an authorised request is redirected.
- ``--record FILE``: one JSON line per request (method, path, headers) appended to FILE, for tests that check
  which headers arrived.
Binds 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import base64
import email.utils
import hashlib
import html
import json
import os
import posixpath
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, args, token):
        self.root = os.path.realpath(args.root)
        self.token = token
        self.page_size = args.page_size
        self.fail_left = args.fail_first
        self.redirect_to = args.redirect_to.rstrip("/") if args.redirect_to else None
        self.record = args.record
        self.lock = threading.Lock()


def _md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Handler(BaseHTTPRequestHandler):
    server_version = "flow-beam-httpfiles/1"
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, fmt, *args):  # one line per request on stderr (the server log)
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    # ---- helpers ------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _record(self):
        st = self.state
        if not st.record:
            return
        line = json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers.items())})
        with st.lock, open(st.record, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def _gate(self) -> bool:
        """Recording, injected failures, auth and redirects; True when the request may be served."""
        self._record()
        st = self.state
        with st.lock:
            fail = st.fail_left > 0
            if fail:
                st.fail_left -= 1
        if fail:
            self._send(503, b"injected failure (--fail-first)\n", headers={"Retry-After": "0"})
            return False
        if st.token is not None and self.headers.get("Authorization") != f"Bearer {st.token}":
            self._send(401, b"missing or wrong bearer token\n", headers={"WWW-Authenticate": "Bearer"})
            return False
        if st.redirect_to:
            self._send(302, b"", headers={"Location": st.redirect_to + self.path})
            return False
        return True

    def _local(self, url_path: str) -> str | None:
        path = posixpath.normpath(urllib.parse.unquote(url_path))
        parts = [p for p in path.split("/") if p and p not in (".", "..")]
        local = os.path.realpath(os.path.join(self.state.root, *parts))
        if local != self.state.root and not local.startswith(self.state.root + os.sep):
            return None
        return local

    # ---- requests -----------------------------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if not self._gate():
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        local = self._local(url.path)
        if local is None or not os.path.exists(local):
            self._send(404, f"not found: {url.path}\n".encode())
            return
        if os.path.isdir(local):
            if not url.path.endswith("/"):
                self._send(301, b"", headers={"Location": url.path + "/" + (f"?{url.query}" if url.query else "")})
                return
            self._listing(local, url.path, query)
            return
        try:
            with open(local, "rb") as fh:
                body = fh.read()
        except PermissionError:
            self._send(403, f"permission denied: {url.path}\n".encode())
            return
        st = os.stat(local)
        md5 = hashlib.md5(body)
        self._send(200, body, "application/octet-stream", {
            "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
            "ETag": f'"{md5.hexdigest()}"',
            "Content-MD5": base64.b64encode(md5.digest()).decode()})

    def _listing(self, local: str, url_path: str, query: dict):
        names = sorted(n for n in os.listdir(local) if not n.startswith("."))
        page = 1
        try:
            page = max(1, int(query.get("page", ["1"])[0]))
        except ValueError:
            self._send(400, b"page must be a number\n")
            return
        size = self.state.page_size
        chunk = names[(page - 1) * size: page * size] if size else names
        more = bool(size) and page * size < len(names)
        want_json = query.get("format", [""])[0] == "json" or "application/json" in self.headers.get("Accept", "")
        fmt = "&format=json" if query.get("format", [""])[0] == "json" else ""
        next_url = f"{url_path}?page={page + 1}{fmt}" if more else None
        files, folders = [], []
        for n in chunk:
            p = os.path.join(local, n)
            href = url_path + urllib.parse.quote(n)
            if os.path.isdir(p):
                folders.append({"name": n, "url": href + "/"})
            else:
                st = os.stat(p)
                files.append({"name": n, "url": href, "size": st.st_size, "mtime": st.st_mtime, "etag": _md5(p)})
        headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
        if want_json:
            body = json.dumps({"files": files, "folders": folders, "page": page, "next": next_url}).encode()
            self._send(200, body, "application/json", headers)
            return
        items = [f'<li><a href="{html.escape(f["url"])}">{html.escape(f["name"])}/</a></li>' for f in folders]
        items += [f'<li><a href="{html.escape(f["url"])}">{html.escape(f["name"])}</a> {f["size"]}</li>' for f in files]
        nxt = f'<p><a rel="next" href="{html.escape(next_url)}">next page</a></p>' if next_url else ""
        body = (f"<!doctype html><html><head><title>Index of {html.escape(url_path)}</title></head><body>"
                f"<h1>Index of {html.escape(url_path)}</h1><ul>{''.join(items)}</ul>{nxt}</body></html>").encode()
        self._send(200, body, "text/html; charset=utf-8", headers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A local HTTP file server for http_pull tests (see the module doc).")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--token-env", default=None, help="name of the environment variable holding the bearer token")
    ap.add_argument("--page-size", type=int, default=0)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--redirect-to", default=None)
    ap.add_argument("--record", default=None)
    args = ap.parse_args(argv)
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"httpfiles: --token-env {args.token_env}: that environment variable is unset", file=sys.stderr)
            return 2
    if args.page_size < 0 or args.fail_first < 0:
        print("httpfiles: --page-size and --fail-first must be >= 0", file=sys.stderr)
        return 2
    os.makedirs(args.root, exist_ok=True)
    Handler.state = State(args, token)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"httpfiles: serving {args.root} on http://127.0.0.1:{args.port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
