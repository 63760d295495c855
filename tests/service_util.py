"""Start ``flow-beam serve`` as a real subprocess on a free loopback port, for the service, MCP and canvas tests."""
import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ORDERS_DOC = {
    "kind": "pipeline", "version": "1.0", "id": "svc-orders", "metadata": {"name": "Service orders"},
    "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": "in", "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
         "schema": [{"name": "order_id", "type": "int"}, {"name": "amount", "type": "float"},
                    {"name": "country", "type": "string"}]},
        {"id": "v", "kind": "validate", "input": "src",
         "rowLevel": [{"id": "amt-positive", "field": "amount", "rule": "gt:0", "onFail": "quarantine"}],
         "quarantine": {"table": "dlq.svc_orders"}},
        {"id": "tgt", "kind": "target", "input": "v", "schema": "public.svc_orders", "loadMode": "append"},
    ],
}


def orders_doc(pid: str = "svc-orders") -> dict:
    doc = copy.deepcopy(ORDERS_DOC)
    doc["id"] = pid
    return doc


def write_orders(folder, name="orders_1.csv", rows=((1, 10.5, "DE"), (2, -3, "FR"), (3, 7, "DE"))):
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("order_id,amount,country\n")
        for r in rows:
            fh.write(",".join(str(v) for v in r) + "\n")
    os.replace(tmp, os.path.join(folder, name))  # the file appears whole


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(port, root, warehouse, *extra):
    return [sys.executable, "-m", "flow_beam", "serve", "--port", str(port), "--root", str(root),
            "--warehouse", warehouse, *extra]


def child_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


@contextlib.contextmanager
def running_service(root, warehouse, *extra, env=None, headers=None):
    """Yields the base URL of a started service; stops it afterwards (its log is shown if it fails to start)."""
    port = free_port()
    log_path = os.path.join(str(root), "..", f"serve-{port}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(serve_command(port, root, warehouse, *extra), stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(**(env or {})), cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"flow-beam serve exited ({proc.returncode}): {open(log_path).read()[-3000:]}")
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2, headers=headers).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"flow-beam serve did not start: {open(log_path).read()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_run(client, run_id, done=("completed", "completed_with_errors", "failed"), limit_s=300):
    """Poll GET /api/v1/runs/{id} until the run reaches one of ``done`` (bounded)."""
    deadline = time.monotonic() + limit_s
    seen = []
    while time.monotonic() < deadline:
        r = client.get(f"/api/v1/runs/{run_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] in done:
            return body, seen
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish; statuses seen: {seen}")
