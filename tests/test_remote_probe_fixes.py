"""Fixes for the remote connectors' probe findings (against the repo's local servers, started on free ports):

- object-store claims are exclusive between runs: the claim marker is keyed by the source file and shared by all
  runs of the staging folder, so concurrent runs load every file once (no file both in .done/ and .failed/);
- http_pull refuses credentials in the url, keeps no cookies across a redirect to another origin, and skips a
  listed file that answers 404/410.
"""
from __future__ import annotations

import concurrent.futures as cf
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.remote.claims import RemoteClaim
from connectors.remote.fs import open_fs
from tests.test_remote_connectors import (ATOM, SCHEMA, Store, csv_bytes, make_bucket, pipeline, rows, run,  # noqa: F401
                                          run_cli, servers, source)

pytestmark = pytest.mark.infra

OBJECT_STORES = ("s3", "gcs", "azure_blob")


@pytest.fixture(params=OBJECT_STORES + ("sftp",))
def store(request, servers):  # noqa: F811
    srv = servers.get(request.param)
    make_bucket(request.param, srv)
    st = Store(request.param, srv)
    yield st
    st.fs.close()


@pytest.fixture(params=OBJECT_STORES)
def object_store(request, servers):  # noqa: F811
    srv = servers.get(request.param)
    make_bucket(request.param, srv)
    st = Store(request.param, srv)
    yield st
    st.fs.close()


# ---- 1. claims are exclusive between runs ----------------------------------------------------------------------
def test_concurrent_runs_load_every_file_exactly_once(store, tmp_path):
    """Three runs at once over one folder into a file sink (no ledger to hide a double claim)."""
    n_files, per_file, n_runs = 20, 5, 3
    for i in range(n_files):
        store.put(f"in/f{i:02d}.csv", csv_bytes(i * 100, per_file), tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    src = source(store, "in")
    doc = {"kind": "pipeline", "version": "1.0", "id": "race",
           "nodes": [{**src, "schema": SCHEMA},
                     {"id": "sink", "kind": "target", "input": "src", "connector": "local_fs",
                      "config": {"path": str(out), "format": "jsonl"}}]}
    with cf.ThreadPoolExecutor(n_runs) as ex:
        futs = [ex.submit(run_cli, doc, tmp_path, tmp_path / f"wh{k}.duckdb") for k in range(n_runs)]
        results = [f.result() for f in futs]
    for rc, text in results:
        assert rc in (0, 2), text  # 2: a run that found every file taken by the others ("no file matches")
        assert "already loaded" not in text, text
    ids = [json.loads(line)["id"] for f in glob.glob(str(out / "*.jsonl")) for line in open(f)]
    expected = [i * 100 + j for i in range(n_files) for j in range(per_file)]
    assert sorted(ids) == expected  # every row exactly once
    done, failed = _names(store, "in/.done"), _names(store, "in/.failed")
    assert done == [f"f{i:02d}.csv" for i in range(n_files)]
    assert failed == [] and not set(done) & set(failed)
    assert store.names("in") == []
    assert _names(store, "in/.processing", hidden=True) == []  # no marker, lease or staged copy is left behind


def _names(st: Store, rel: str, hidden: bool = False) -> list[str]:
    """The files under ``rel`` (none when the folder does not exist)."""
    try:
        files = st.fs.list(st.p(rel), recursive=True, include_hidden=hidden)
    except Exception as e:  # noqa: BLE001
        if getattr(e, "kind", "") == "missing":
            return []
        raise
    base = st.p(rel).strip("/")
    return sorted(f.path.strip("/")[len(base) + 1:] for f in files)


def _claim(st: Store, run_id: str) -> RemoteClaim:
    return RemoteClaim(open_fs(st.name, st.conn), lambda: open_fs(st.name, st.conn), st.p("in"), ".processing/",
                       run_id, "rc", "src", lease_seconds=300)


def test_a_run_claiming_while_another_holds_the_file_takes_nothing(object_store, tmp_path):
    """Run B claims the file while run A is between its copy and its delete: B must get nothing (before, B's marker
    was in its own folder, B copied and deleted the source, and A kept its copy too: two runs had the file)."""
    st = object_store
    st.put("in/a.csv", csv_bytes(0, 3), tmp_path)
    [info] = st.fs.list(st.p("in"))
    a, b = _claim(st, "runaaaa"), _claim(st, "runbbbb")
    got_b: list = []
    copy = a.fs._copy

    def copy_then_race(*args, **kwargs):
        copy(*args, **kwargs)
        got_b.extend(b.stage([info]))
    a.fs._copy = copy_then_race
    try:
        got_a = a.stage([info])
    finally:
        a.fs._copy = copy
        a.release()
        b.release()
    assert got_b == []
    assert [p for p, _ in got_a] == [st.p("in", ".processing", "runaaaa.src", "a.csv")]
    left = sorted(f.path for f in st.fs.list(st.p("in", ".processing"), recursive=True, include_hidden=True))
    assert left == [st.p("in", ".processing", "runaaaa.src", "a.csv")]  # B kept no copy, no marker is left


def test_a_loser_whose_delete_finds_the_file_gone_keeps_nothing(object_store, tmp_path):
    """A claimer whose marker is no longer its own (another run took the file) and whose delete finds the source gone
    backs its copy out instead of keeping it as claimed."""
    st = object_store
    src = st.put("in/b.csv", csv_bytes(0, 3), tmp_path)
    fs, other = open_fs(st.name, st.conn), open_fs(st.name, st.conn)
    claims_dir = st.p("in", ".processing", ".claims")
    copy = fs._copy

    def copy_then_steal(s, d, info=None, overwrite=False):
        copy(s, d, info, overwrite)
        marker = fs._marker(src, claims_dir, info)
        other.delete(marker)  # as if the marker had been dropped and another claimer took and deleted the file
        other.delete(src)
    fs._copy = copy_then_steal
    got = fs.claim(src, st.p("in", ".processing", "r1.src"), claims_dir=claims_dir)
    assert got is None
    assert other.list(st.p("in", ".processing"), recursive=True, include_hidden=True) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_recovery_drops_the_shared_markers_of_runs_that_are_over(object_store, tmp_path):
    """A run that died holding a claim marker (its lease names a dead process), and a finished run whose marker
    delete failed (no lease): the next run drops both markers and loads both files once."""
    import socket
    st = object_store
    st.put("in/x.csv", csv_bytes(0, 2), tmp_path)
    st.put("in/y.csv", csv_bytes(10, 2), tmp_path)
    infos = {f.name: f for f in st.fs.list(st.p("in"))}
    claims_dir = st.p("in", ".processing", ".claims")
    for name, run_id in (("x.csv", "deadrun"), ("y.csv", "overrun")):
        body = {"run": f"{run_id}.src", "runId": run_id, "pipelineId": "rc", "nodeId": "src", "owner": "x"}
        assert st.fs._create_exclusive(st.fs._marker(infos[name].path, claims_dir, infos[name]),
                                       json.dumps(body).encode())
    lease = {"pid": _dead_pid(), "pidStart": "1", "host": socket.gethostname(), "runId": "deadrun",
             "pipelineId": "rc", "nodeId": "src", "leaseSeconds": 300,
             "renewedAt": "2999-01-01T00:00:00+00:00"}
    st.put("in/.processing/.deadrun.src.lease", json.dumps(lease).encode(), tmp_path)
    wh = tmp_path / "wh.duckdb"
    result = run(pipeline([source(st, "in")]), wh)
    assert result.error is None and result.status in ("completed", "completed_with_errors")
    assert rows(wh, "public.src") == [(0,), (1,), (10,), (11,)]
    assert st.names("in/.done") == ["x.csv", "y.csv"]
    assert st.fs.list(st.p("in", ".processing"), recursive=True, include_hidden=True) == []


def test_a_live_runs_shared_marker_is_kept(object_store, tmp_path):
    """A marker held by a live run (this process holds its claim) keeps the file out of another run."""
    st = object_store
    st.put("in/z.csv", csv_bytes(0, 2), tmp_path)
    [info] = st.fs.list(st.p("in"))
    live = _claim(st, "liverun")
    try:
        marker = st.fs._marker(info.path, live.claims_dir, info)
        body = {**live._tag, "owner": "x"}
        assert st.fs._create_exclusive(marker, json.dumps(body).encode())
        wh = tmp_path / "wh.duckdb"
        result = run(pipeline([source(st, "in")]), wh)
        assert result.error is None
        assert rows(wh, "public.src") == []
        assert st.fs.exists(marker) and st.fs.exists(info.path)
    finally:
        live.release()


# ---- 2-4. http_pull ------------------------------------------------------------------------------------------------
import http.server  # noqa: E402
import threading  # noqa: E402
from functools import partial  # noqa: E402

from flow_beam.running import RunOptions, run_document  # noqa: E402


class _Site:
    """A threaded HTTP server in this process: files of ``root``; ``status`` maps a path to an answer code;
    ``redirect_to`` sends every request there (302) with a Set-Cookie; ``seen`` records each request's headers."""

    def __init__(self, root: Path, status: dict | None = None, redirect_to: str | None = None):
        site = self
        self.seen: list[dict] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _special(self) -> bool:
                site.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Set-Cookie", "session=SESSION-SECRET-777; Path=/")
                    self.send_header("Location", redirect_to.rstrip("/") + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
                code = (status or {}).get(self.path)
                if code:
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
                return False

            def do_GET(self):
                if not self._special():
                    super().do_GET()

            def do_HEAD(self):
                if not self._special():
                    super().do_HEAD()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site():
    made = []

    def make(root, **kw):
        s = _Site(root, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def _http_doc(url: str, **cfg) -> dict:
    return {"kind": "pipeline", "version": "1.0", "id": "hp", "nodes": [
        {"id": "src", "kind": "source", "connector": "http_pull", "schema": SCHEMA,
         "config": {"url": url, "format": "csv", "retries": 0, **cfg}},
        {"id": "t", "kind": "target", "input": "src", "schema": "public.src", "loadMode": "append", "lineage": False}]}


def _issues(doc: dict) -> str:
    """The validation issues of ``doc`` as JSON text (paths and messages)."""
    from ir_compiler.loader import load_document
    from ir_compiler.errors import ValidationFailed
    with pytest.raises(ValidationFailed) as info:
        load_document(doc)
    return json.dumps([{"path": i.path, "message": i.message} for i in info.value.issues])


@pytest.mark.parametrize("url, field", [
    ("http://bob:PassW0rdLeak@127.0.0.1:9/pg/", "url"),
    ("https://tokenonlyLeak@example.com/x/", "url"),
    ("ftp://bob:PassW0rdLeak@127.0.0.1/", "url"),
])
def test_http_pull_refuses_credentials_in_the_url_without_echoing_them(url, field, tmp_path):
    doc = _http_doc(url)
    text = _issues(doc)
    assert "credentials" in text and f"config.{field}" in text, text
    assert "Leak" not in text
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{tmp_path / 'wh.duckdb'}"))
    assert result.status == "failed"
    assert "Leak" not in json.dumps(result.__dict__, default=str)


def test_http_pull_refuses_credentials_in_path_and_at_open():
    from connectors.remote.fs import ConnectorError
    with pytest.raises(ConnectorError) as e:
        open_fs("http_pull", {"url": "http://u:PassW0rdLeak@127.0.0.1:9/"})
    assert "credentials" in str(e.value) and "Leak" not in str(e.value)
    text = _issues(_http_doc("http://127.0.0.1:9/", path="http://u:PassW0rdLeak@127.0.0.1:9/x/"))
    assert "config.path" in text and "Leak" not in text


def test_http_pull_sends_no_cookie_of_the_configured_origin_after_a_redirect(site, tmp_path, monkeypatch):
    target_root = tmp_path / "b"
    (target_root / "data").mkdir(parents=True)
    (target_root / "data" / "x.csv").write_bytes(csv_bytes(0, 3))
    other = site(target_root)
    first = site(tmp_path, redirect_to=other.url)  # sets a cookie and redirects to another origin (another port)
    monkeypatch.setenv("FB_PF_TOKEN", "tok")
    result = run_document(_http_doc(first.url + "data/x.csv", headers={"Authorization": "Bearer env:FB_PF_TOKEN"}),
                          RunOptions(warehouse=f"duckdb://{tmp_path / 'wh.duckdb'}"))
    assert result.status == "completed", result.error
    assert rows(tmp_path / "wh.duckdb", "public.src") == [(0,), (1,), (2,)]
    assert first.seen and other.seen
    for req in other.seen:
        assert "cookie" not in req and "authorization" not in req, req
    for req in first.seen:
        assert "cookie" not in req, req  # no cookie jar at all: a Set-Cookie is never sent back


def _listing(root: Path, names: list[str]) -> None:
    (root / "index.html").write_text("<html><body>" + "".join(f'<a href="{n}">{n}</a>' for n in names)
                                     + "</body></html>")


def test_http_pull_skips_a_dead_link_with_a_warning(site, tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "a.csv").write_bytes(csv_bytes(0, 2))
    (root / "b.csv").write_bytes(csv_bytes(10, 2))
    _listing(root, ["a.csv", "gone.csv", "b.csv", "old.csv"])
    s = site(root, status={"/old.csv": 410})
    wh = tmp_path / "wh.duckdb"
    result = run_document(_http_doc(s.url), RunOptions(warehouse=f"duckdb://{wh}"))
    assert result.error is None and result.status == "completed_with_errors", result.error
    assert rows(wh, "public.src") == [(0,), (1,), (10,), (11,)]
    warnings = result.nodes["src"].warnings
    assert any("gone.csv" in w and "404" in w and "not taken" in w for w in warnings), warnings
    assert any("old.csv" in w and "410" in w for w in warnings), warnings


def test_http_pull_a_listed_file_refused_otherwise_still_fails(site, tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "a.csv").write_bytes(csv_bytes(0, 2))
    _listing(root, ["a.csv", "locked.csv"])
    s = site(root, status={"/locked.csv": 403})
    result = run_document(_http_doc(s.url), RunOptions(warehouse=f"duckdb://{tmp_path / 'wh.duckdb'}"))
    assert result.status == "failed" and "locked.csv" in result.error and "403" in result.error, result.error
