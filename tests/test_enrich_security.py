"""Enrich credentials (SPEC §6) against real HTTP servers on 127.0.0.1: a redirect to another origin (another port)
never carries the bearer token, a same-origin redirect still does; an answer that echoes the token never puts it
into a stored or printed text (DLQ rows, loaded output, run result, run history, CLI output)."""
import contextlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from conftest import write_csv
from flow_beam.running import RunOptions, run_document
from ir_compiler.secrets import register_value, scrub_table, scrub_text

TOKEN = "s3cr3t/T0ken+xyz=42"


@contextlib.contextmanager
def server(respond):
    """``respond(handler) -> (status, headers dict, body bytes)``; yields (base url, recorded requests)."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append({"path": self.path, "headers": dict(self.headers)})
            status, headers, body = respond(self)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def answer(handler):
    return 200, {"Content-Type": "application/json"}, json.dumps({"score": 7}).encode()


def pipeline(tmp_path, url, on_error="quarantine", output="score"):
    (tmp_path / "in").mkdir(exist_ok=True)
    write_csv(tmp_path / "in" / "c.csv", ["id"], [[f"C{i}"] for i in range(10)])
    return {"kind": "pipeline", "version": "1.0", "id": "enrich-sec", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(tmp_path / "in"),
                                                                               "format": "csv"}},
        {"id": "e", "kind": "enrich", "input": "src", "output": output, "onError": on_error, "timeoutSeconds": 5,
         "provider": {"kind": "http", "url": url + "/score?id={id}", "apiKey": "env:FB_TEST_TOKEN"}},
        {"id": "out", "kind": "target", "input": "e", "schema": "public.enriched", "lineage": False}],
        "errorHandling": {"dlq": {"enabled": True, "table": "dlq.enrich"},
                          "retry": {"maxAttempts": 1, "backoff": "fixed", "initialDelaySeconds": 0}}}


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("FB_TEST_TOKEN", TOKEN)
    return TOKEN


def test_credentials_never_follow_a_redirect_to_another_origin(tmp_path, token):
    with server(answer) as (other, other_seen):
        def redirect(handler):
            return 302, {"Location": other + handler.path}, b""
        with server(redirect) as (first, first_seen):
            result = run_document(pipeline(tmp_path, first), RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "completed", result.error
    assert len(first_seen) == 10 and len(other_seen) == 10
    assert all(r["headers"].get("Authorization") == f"Bearer {token}" for r in first_seen)
    for r in other_seen:  # another port = another origin
        assert "Authorization" not in r["headers"] and token not in json.dumps(r["headers"])


def test_a_same_origin_redirect_keeps_the_credentials(tmp_path, token):
    def respond(handler):
        if handler.path.startswith("/score"):
            return 302, {"Location": "/final" + handler.path[len("/score"):]}, b""
        return answer(handler)
    with server(respond) as (base, seen):
        result = run_document(pipeline(tmp_path, base), RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "completed", result.error
    final = [r for r in seen if r["path"].startswith("/final")]
    assert len(final) == 10 and all(r["headers"].get("Authorization") == f"Bearer {token}" for r in final)


def _echo_not_json(handler):  # echoes the credentials in an answer that is not JSON → the call fails
    return 200, {"Content-Type": "text/plain"}, f"you sent {handler.headers.get('Authorization')}".encode()


def _echo_json(handler):  # echoes them as a value → the enrich output
    return 200, {"Content-Type": "application/json"}, json.dumps({"auth": handler.headers.get("Authorization"),
                                                                  "q": handler.path}).encode()


def _all_text(tmp_path) -> str:
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        return json.dumps([con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall() for s, t in tables], default=str)
    finally:
        con.close()


def test_an_echoing_server_never_puts_the_token_into_stored_or_printed_text(tmp_path, token):
    with server(_echo_not_json) as (base, seen):
        result = run_document(pipeline(tmp_path, base), RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert len(seen) == 10 and result.nodes["e"].rowsErrored == 10
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    errors = [r[0] for r in con.execute("SELECT error FROM dlq.enrich").fetchall()]
    con.close()
    assert len(errors) == 10 and all("you sent Bearer ***" in e for e in errors), errors[:2]
    stored = _all_text(tmp_path)  # DLQ, run history, everything in the warehouse
    assert token not in stored and "s3cr3t" not in stored
    assert token not in json.dumps(result.to_json())


def test_echoed_token_in_an_output_value_and_in_a_failing_run(tmp_path, token):
    with server(_echo_json) as (base, _):
        result = run_document(pipeline(tmp_path, base, output={"auth": "auth"}),
                              RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "completed", result.error
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert {r[0] for r in con.execute("SELECT auth FROM public.enriched").fetchall()} == {"Bearer ***"}
    con.close()
    with server(_echo_not_json) as (base, _):  # onError fail: the error text reaches the run result
        result = run_document(pipeline(tmp_path, base, on_error="fail"),
                              RunOptions(warehouse=f"duckdb://{tmp_path / 'w2.duckdb'}"))
    assert result.status == "failed" and "Bearer ***" in result.error, result.error
    assert token not in json.dumps(result.to_json()) and token not in _all_text(tmp_path)


def test_cli_output_and_result_file_are_scrubbed(tmp_path, token):
    with server(_echo_not_json) as (base, _):
        path = tmp_path / "p.json"
        path.write_text(json.dumps(pipeline(tmp_path, base, on_error="fail")))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "FB_TEST_TOKEN": token}
        out = subprocess.run([sys.executable, "-m", "flow_beam", "run", str(path), "--warehouse",
                              str(tmp_path / "w.duckdb"), "--result-file", str(tmp_path / "r.json")],
                             capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1
    assert token not in out.stdout + out.stderr and "s3cr3t" not in out.stdout + out.stderr
    assert token not in (tmp_path / "r.json").read_text()
    assert "Bearer ***" in (tmp_path / "r.json").read_text()


def test_scrubber_forms():
    import pyarrow as pa

    register_value("p@ss w0rd/+")
    assert scrub_text("a p@ss w0rd/+ b p%40ss%20w0rd%2F%2B c p%40ss+w0rd%2F%2B") == "a *** b *** c ***"
    t = scrub_table(pa.table({"e": ["x p@ss w0rd/+", None, "fine"], "n": [1, 2, 3]}))
    assert t.column("e").to_pylist() == ["x ***", None, "fine"] and t.column("n").to_pylist() == [1, 2, 3]
    register_value("abc")  # too short to scrub without mangling ordinary text
    assert scrub_text("abc") == "abc"
