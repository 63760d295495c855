"""The remote file connectors (s3, gcs, azure_blob, sftp, ftp, http_pull) running pipelines against real local
servers started by the repo's scripts (moto, fake-gcs-server, Azurite, OpenSSH, pyftpdlib, scripts/httpfiles.py)
on free ports: every format read through each source, every sink format written and read back, exactly once per
file (a second run loads nothing, a live run's claim is never taken, a killed run's claim is recovered — real
SIGKILLs at the fault points of ir_compiler/faults.py), and failure paths that lose nothing and name the path.

A store whose server cannot be installed here skips, saying why."""
from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import duckdb
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


def pipeline(sources: list[dict], pid: str = "rc", schema: list | None = SCHEMA, dlq: bool = False) -> dict:
    nodes = []
    for s in sources:
        if schema is not None:
            s = {**s, "schema": schema}
        nodes += [s, {"id": f"{s['id']}_t", "kind": "target", "input": s["id"], "schema": f"public.{s['id']}",
                      "loadMode": "append", "lineage": False}]
    doc = {"kind": "pipeline", "version": "1.0", "id": pid, "nodes": nodes}
    if dlq:
        doc["errorHandling"] = {"dlq": {"enabled": True, "table": "dlq.rc"}}
    return doc


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


# ---- exactly once per file -----------------------------------------------------------------------------------
def put_csvs(st: Store, tmp: Path, n_files: int, per_file: int, folder: str = "in", start: int = 0) -> list[int]:
    ids = []
    for f in range(n_files):
        lo = start + f * per_file
        st.put(f"{folder}/part-{lo:07d}.csv", csv_bytes(lo, per_file), tmp)
        ids += range(lo, lo + per_file)
    return ids


def everything(st: Store, folder: str = "in") -> list[str]:
    """Every visible file under the folder, its staging/success/failure folders included (no leases, markers)."""
    base = st.p(folder).strip("/")
    return sorted(f.path.strip("/")[len(base) + 1:] for f in st.fs.list(st.p(folder), recursive=True,
                                                                        include_hidden=True)
                  if not f.name.startswith(".") and "/.claims/" not in f.path)


def test_a_second_run_loads_nothing_and_a_renamed_copy_is_the_same_file(store, tmp_path):
    ids = put_csvs(store, tmp_path, 3, 100)
    wh, doc = tmp_path / "wh.duckdb", pipeline([source(store, "in", waitPolicy={"onMissAction": "skip"})])
    first = run(doc, wh)
    assert first.status == "completed", (first.error, first.warnings)
    assert rows(wh, "public.src") == [(i,) for i in ids]
    assert store.names("in/.done") == [f"part-{i:07d}.csv" for i in (0, 100, 200)]
    second = run(doc, wh)  # nothing new
    assert second.status == "completed" and second.nodes["src"].rowsIn == 0
    store.put("in/copy.csv", csv_bytes(0, 100), tmp_path)  # the bytes of part-0000000.csv under a new name
    third = run(doc, wh)
    assert rows(wh, "public.src") == [(i,) for i in ids]
    assert any("copy.csv was already loaded" in w for w in third.nodes["src"].warnings), third.nodes["src"].warnings
    assert everything(store) == sorted(f".done/{n}" for n in ["copy.csv", "part-0000000.csv", "part-0000100.csv",
                                                              "part-0000200.csv"])
    led = duckdb.connect(str(wh), read_only=True).execute(
        "select path, rows_loaded, run_id from _flow_files order by path").fetchall()
    assert [(p.rsplit("/", 1)[1], n) for p, n, _ in led] == [(f"part-{i:07d}.csv", 100) for i in (0, 100, 200)]
    assert {r for _, _, r in led} == {first.runId} and led[0][0].startswith(store.fs.url(store.p("in")))


def _run_folder(st: Store, run_id: str, node_id: str = "src") -> str:
    return st.p("in", ".processing", f"{run_id}.{node_id}")


def test_a_live_runs_claim_is_never_taken_then_recovered_once_it_is_gone(store, tmp_path):
    """A claim held by a live process (this one: the lease names its pid) keeps its file out of other runs; once
    released (its lease deleted, as after the run) the next run recovers and loads it."""
    from connectors.remote.claims import RemoteClaim
    ids = put_csvs(store, tmp_path, 2, 50)
    other = RemoteClaim(open_fs(store.name, store.conn), lambda: open_fs(store.name, store.conn), store.p("in"),
                        ".processing/", "live0000run", "rc", "src", lease_seconds=300)
    [(held, _)] = other.stage([f for f in store.fs.list(store.p("in")) if f.name == "part-0000000.csv"])
    wh, doc = tmp_path / "wh.duckdb", pipeline([source(store, "in")])
    try:
        first = run(doc, wh)
        assert first.status == "completed", first.error
        assert rows(wh, "public.src") == [(i,) for i in ids[50:]]  # the live run's file is not read
        assert store.fs.exists(held)  # ... nor moved
    finally:
        other.release()
    second = run(doc, wh)
    assert second.status == "completed_with_errors", second.error  # a recovery is a warning
    assert any("recovered" in w for w in second.nodes["src"].warnings), second.nodes["src"].warnings
    assert rows(wh, "public.src") == [(i,) for i in ids]
    assert everything(store) == [".done/part-0000000.csv", ".done/part-0000050.csv"]


@pytest.mark.parametrize("age_s, taken", [(3600, True), (5, False)])
def test_another_hosts_lease_is_honoured_until_it_expires(store, tmp_path, age_s, taken):
    put_csvs(store, tmp_path, 1, 10)
    folder = _run_folder(store, "farhostrun")
    store.fs.claim(store.p("in", "part-0000000.csv"), folder)
    renewed = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age_s)).isoformat()
    lease = {"pid": 1, "host": "another-host.example", "runId": "farhostrun", "pipelineId": "rc", "nodeId": "src",
             "leaseSeconds": 300, "renewedAt": renewed}
    store.put("in/.processing/.farhostrun.src.lease", json.dumps(lease).encode(), tmp_path)
    wh = tmp_path / "wh.duckdb"
    result = run(pipeline([source(store, "in")]), wh)
    assert result.status in ("completed", "completed_with_errors") and result.error is None
    assert rows(wh, "public.src") == ([(i,) for i in range(10)] if taken else [])
    assert any("recovered" in w for w in result.nodes["src"].warnings) is taken
    assert store.fs.exists(folder + "/part-0000000.csv") is (not taken)


FAULTS = ["after_claim", "before_commit", "after_commit", "before_move", "after_first_move"]
FAST_FAULTS = {("s3", "after_claim"), ("s3", "after_commit"), ("sftp", "after_claim"), ("ftp", "after_first_move"),
               ("gcs", "before_move"), ("azure_blob", "after_claim")}


@pytest.mark.parametrize("point", [pytest.param(p, marks=pytest.mark.slow) for p in FAULTS])
def test_a_killed_runs_claim_is_recovered_and_every_row_loads_once(store, tmp_path, point):
    """SIGKILL at each fault point of a real `flow-beam run` subprocess, then a second run: every row exactly once,
    every file in the success folder (the fast subset of store × point runs without -m slow, see
    test_a_killed_run_fast)."""
    _kill_then_recover(store, tmp_path, point)


@pytest.mark.parametrize("name, point", sorted(FAST_FAULTS))
def test_a_killed_run_fast(servers, tmp_path, name, point):
    srv = servers.get(name)
    make_bucket(name, srv)
    st = Store(name, srv)
    try:
        _kill_then_recover(st, tmp_path, point)
    finally:
        st.fs.close()


def _kill_then_recover(st: Store, tmp_path: Path, point: str) -> None:
    ids = put_csvs(st, tmp_path, 3, 400)
    wh, doc = tmp_path / "wh.duckdb", pipeline([source(st, "in")])
    code, out = run_cli(doc, tmp_path, wh, {"FLOW_BEAM_FAULT": point})
    assert code == -signal.SIGKILL, out
    assert rows(wh, "public.src") in ([], [(i,) for i in ids])  # never half
    names = [n.rsplit("/", 1)[1] for n in everything(st)]
    assert sorted(names) == [f"part-{i:07d}.csv" for i in (0, 400, 800)], everything(st)  # each file in one place
    code, out = run_cli(doc, tmp_path, wh)
    assert code in (0, 2), out
    assert rows(wh, "public.src") == [(i,) for i in ids]
    assert everything(st) == [f".done/part-{i:07d}.csv" for i in (0, 400, 800)]
    leftovers = [f.path for f in st.fs.list(st.p("in", ".processing"), recursive=True, include_hidden=True)]
    assert leftovers == [], leftovers  # the dead run's lease and markers are gone too


# ---- failure paths: nothing lost, the path named ---------------------------------------------------------------
def _dead(st: Store) -> tuple[dict, str]:
    port = free_port()  # nothing listens there
    if st.name in ("sftp", "ftp"):
        return {"port": port}, f"127.0.0.1:{port}"
    suffix = "/devstoreaccount1" if st.name == "azure_blob" else ""
    return {"endpoint": f"http://127.0.0.1:{port}{suffix}"}, f"127.0.0.1:{port}"


def test_server_down_fails_the_run_naming_the_endpoint_and_touches_nothing(store, tmp_path):
    put_csvs(store, tmp_path, 2, 10)
    over, where = _dead(store)
    doc = pipeline([{**source(store, "in"), "config": {**source(store, "in")["config"], **over}}])
    result = run(doc, tmp_path / "wh.duckdb")
    assert result.status == "failed"
    assert where in result.error and "cannot reach" in result.error, result.error
    assert store.names("in") == ["part-0000000.csv", "part-0000010.csv"]  # untouched
    assert everything(store) == ["part-0000000.csv", "part-0000010.csv"]


@pytest.mark.parametrize("atomic", [False, True])
def test_a_file_vanishing_between_listing_and_reading(store, tmp_path, monkeypatch, atomic):
    """Without atomicity the run lists, then the file is deleted before a worker reads it: that file is set aside
    (a warning and a DLQ-shaped error naming it), the others load. With atomicity the file vanishes between the
    listing and the claim: it is simply not claimed (another run may have taken it), the others load."""
    import connectors.remote.staging as staging
    ids = put_csvs(store, tmp_path, 2, 10)
    victim = store.p("in", "part-0000010.csv")
    other = open_fs(store.name, store.conn)
    if atomic:
        real = staging.list_matching

        def list_then_delete(fs, cfg, now=None):
            out = real(fs, cfg, now)
            other.delete(victim)
            return out
        monkeypatch.setattr(staging, "list_matching", list_then_delete)
    else:
        real = staging.prepare_remote

        def prepare_then_delete(connector, node, run_):
            out = real(connector, node, run_)
            other.delete(victim)
            return out
        monkeypatch.setattr(staging, "prepare_remote", prepare_then_delete)
    wh = tmp_path / "wh.duckdb"
    result = run(pipeline([source(store, "in", atomicity=ATOM if atomic else None)], dlq=True), wh)
    other.close()
    assert rows(wh, "public.src") == [(i,) for i in ids[:10]], (result.status, result.error, result.warnings)
    if atomic:
        assert result.status == "completed", (result.error, result.warnings)
        assert everything(store) == [".done/part-0000000.csv"]
    else:
        assert result.status == "completed_with_errors", result.error
        [warning] = [w for w in result.nodes["src"].warnings if "unreadable" in w]
        assert "part-0000010.csv" in warning and "not found" in warning, warning
        [(err,)] = rows(wh, "dlq.rc", "error")
        assert "unreadable file" in err and "part-0000010.csv" in err
        assert store.names("in") == ["part-0000000.csv"]


def test_server_stopping_mid_run_fails_it_and_the_next_run_recovers(servers, tmp_path, monkeypatch):
    """A dedicated SFTP server (its files persist across a restart) stops after the driver claimed the files and
    before the workers download them: the run fails naming the endpoint and the file, the files stay claimed in
    staging (the moves could not happen either), and once the server is back the next run recovers and loads
    them, each row once."""
    import connectors.remote.staging as staging
    srv = ScriptServer("sftp")
    try:
        srv.start()
    except ServerUnavailable as e:
        pytest.skip(str(e))
    try:
        st = Store("sftp", srv)
        ids = put_csvs(st, tmp_path, 2, 10)
        real = staging.prepare_remote

        def prepare_then_stop(connector, node, run_):
            out = real(connector, node, run_)
            srv.stop()
            return out
        monkeypatch.setattr(staging, "prepare_remote", prepare_then_stop)
        wh, doc = tmp_path / "wh.duckdb", pipeline([source(st, "in")])
        result = run(doc, wh)
        assert result.status == "failed"
        assert f"127.0.0.1:{srv.port}" in result.error and "part-00000" in result.error, result.error
        assert rows(wh, "public.src") == []
        monkeypatch.setattr(staging, "prepare_remote", real)
        srv.start()
        st.fs = open_fs("sftp", st.conn)
        assert len([n for n in everything(st) if n.startswith(".processing/")]) == 2  # claimed, not lost
        again = run(doc, wh)
        assert again.status == "completed_with_errors" and any("recovered" in w for w in again.nodes["src"].warnings)
        assert rows(wh, "public.src") == [(i,) for i in ids]
        assert everything(st) == [".done/part-0000000.csv", ".done/part-0000010.csv"]
        st.fs.close()
    finally:
        srv.cleanup()


def test_permission_denied_names_the_path_and_loses_nothing(store, tmp_path, monkeypatch):
    """A real read-only account (moto IAM user with read/list only, pyftpdlib's read-only user, an Azure account
    SAS with read/list): it may load without atomicity; with atomicity the run fails at its first write (the claim
    lease in the staging folder), naming that path, and the input files stay where they were."""
    if store.name not in ("s3", "ftp", "azure_blob"):
        pytest.skip(f"the local {store.name} server cannot refuse a permission here (sshd runs the chrooted session "
                    f"as root, which file modes do not stop; fake-gcs-server has no authentication)")
    ids = put_csvs(store, tmp_path, 1, 10)
    e = store.srv.env
    if store.name == "s3":
        monkeypatch.setenv("FB_RC_RO", e["FLOW_BEAM_S3_RO_SECRET_ACCESS_KEY"])
        ro = {"username": e["FLOW_BEAM_S3_RO_ACCESS_KEY_ID"], "passwordSecret": "env:FB_RC_RO"}
    elif store.name == "ftp":
        ro = {"username": e["FLOW_BEAM_FTP_RO_USER"]}
    else:
        from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
        sas = generate_account_sas(e["FLOW_BEAM_AZURE_ACCOUNT"], e["FLOW_BEAM_AZURE_KEY"],
                                   ResourceTypes(service=True, container=True, object=True),
                                   AccountSasPermissions(read=True, list=True),
                                   expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        monkeypatch.setenv("FB_RC_RO", f"BlobEndpoint={e['FLOW_BEAM_AZURE_ENDPOINT']};SharedAccessSignature={sas}")
        ro = {"passwordSecret": "env:FB_RC_RO", "username": None, "endpoint": None}

    def cfg(atomicity):
        c = {**source(store, "in", atomicity=atomicity)["config"], **ro}
        return {k: v for k, v in c.items() if v is not None}
    wh = tmp_path / "wh.duckdb"
    denied = run(pipeline([{**source(store, "in"), "config": cfg(ATOM)}]), wh)
    assert denied.status == "failed" and "permission denied" in denied.error, denied.error
    assert store.p("in", ".processing").strip("/") in denied.error
    assert everything(store) == ["part-0000000.csv"]  # nothing moved, nothing lost
    reading = run(pipeline([{**source(store, "in"), "config": cfg(None)}]), wh)
    assert reading.status == "completed", reading.error
    assert rows(wh, "public.src") == [(i,) for i in ids]


# ---- http_pull ---------------------------------------------------------------------------------------------------
@pytest.fixture
def http_server():
    started = []

    def start(root, **extra):
        srv = ScriptServer("http", {"FLOW_BEAM_HTTP_ROOT": str(root), **{k: str(v) for k, v in extra.items()}})
        try:
            srv.start()
        except ServerUnavailable as e:
            pytest.skip(str(e))
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.cleanup()


def http_source(url: str, fmt: str, sid: str = "src", **extra) -> dict:
    return {"id": sid, "kind": "source", "connector": "http_pull", "config": {"url": url, "format": fmt, **extra}}


@pytest.mark.parametrize("listing", ["html", "json"])
def test_http_pull_reads_every_format_and_a_rerun_skips_what_is_loaded(http_server, tmp_path, monkeypatch, listing):
    """Listings paginated two links a page behind a bearer token (from env:VAR); seven sources, one per format;
    the re-run reads nothing (the _flow_files ledger: same bytes, same size), a changed file is a new one."""
    root = tmp_path / "site"
    payloads = format_payloads(tmp_path)
    for key, (name, data) in payloads.items():
        (root / key).mkdir(parents=True)
        (root / key / name).write_bytes(data)
    token = uuid.uuid4().hex
    srv = http_server(root, FLOW_BEAM_HTTP_TOKEN=token, FLOW_BEAM_HTTP_PAGE_SIZE=2)
    monkeypatch.setenv("FB_RC_HTTP_TOKEN", token)
    auth = {"Authorization": "Bearer env:FB_RC_HTTP_TOKEN"}
    query = "?format=json" if listing == "json" else ""
    sources = [http_source(f"{srv.env['FLOW_BEAM_HTTP_URL']}{key}/{query}", "csv" if key == "gzip" else key,
                           sid=f"s_{key}", headers=auth) for key in payloads]
    wh, doc = tmp_path / "wh.duckdb", pipeline(sources, schema=None)
    first = run(doc, wh)
    assert first.status == "completed", (first.error, first.warnings)
    for key in payloads:
        assert rows(wh, f"public.s_{key}", "id, name, amount") == [(1, "a", 1.5), (2, "b, with comma", None),
                                                                   (3, "ü", -2.25)], key
    again = run(doc, wh)
    assert again.nodes["s_csv"].rowsIn == 0 and any("already loaded" in w for w in again.nodes["s_csv"].warnings)
    assert all(rows(wh, f"public.s_{k}", "count(*)") == [(3,)] for k in payloads)
    (root / "csv" / "more.csv").write_text("id,name,amount\n4,d,0.5\n")
    third = run(doc, wh)
    assert third.nodes["s_csv"].rowsIn == 1 and rows(wh, "public.s_csv", "count(*)") == [(4,)]
    assert sorted(p.name for p in (root / "csv").iterdir()) == ["data-00000.csv", "more.csv"]  # read-only


def test_http_pull_retries_auth_and_server_down(http_server, tmp_path, monkeypatch):
    root = tmp_path / "site"
    (root / "in").mkdir(parents=True)
    (root / "in" / "a.csv").write_bytes(csv_bytes(0, 5))
    flaky = http_server(root, FLOW_BEAM_HTTP_FAIL_FIRST=2)
    url = flaky.env["FLOW_BEAM_HTTP_URL"] + "in/a.csv"
    ok = run(pipeline([http_source(url, "csv", retries=3, retryBackoffSeconds=0.05)]), tmp_path / "a.duckdb")
    assert ok.status == "completed", ok.error  # two 503s, then the file
    assert rows(tmp_path / "a.duckdb", "public.src") == [(i,) for i in range(5)]

    guarded = http_server(root, FLOW_BEAM_HTTP_TOKEN="right-token")
    monkeypatch.setenv("FB_RC_HTTP_TOKEN", "wrong-token-value")
    url = guarded.env["FLOW_BEAM_HTTP_URL"] + "in/"
    denied = run(pipeline([http_source(url, "csv", headers={"Authorization": "Bearer env:FB_RC_HTTP_TOKEN"})]),
                 tmp_path / "b.duckdb")
    assert denied.status == "failed" and "401" in denied.error and url in denied.error, denied.error
    assert "wrong-token-value" not in json.dumps(dataclasses.asdict(denied), default=str)

    port = free_port()
    down = run(pipeline([http_source(f"http://127.0.0.1:{port}/in/", "csv", retries=1, retryBackoffSeconds=0.05)]),
               tmp_path / "c.duckdb")
    assert down.status == "failed" and f"127.0.0.1:{port}" in down.error and "cannot reach" in down.error


# ---- validation and the schema -----------------------------------------------------------------------------------
@pytest.mark.infra
@pytest.mark.parametrize("node, path, words", [
    ({"connector": "s3", "config": {"bucket": "b", "path": "in/", "bucekt": "x"}}, "nodes[0].config.bucekt",
     "unknown field"),
    ({"connector": "s3", "config": {"path": "in/"}}, "nodes[0].config.bucket", ""),
    ({"connector": "s3", "config": {"bucket": "b", "path": "in/", "passwordSecret": "hunter2-literal"}},
     "nodes[0].config.passwordSecret", "env:"),
    ({"connector": "gcs", "config": {"bucket": "b", "path": "in/", "host": "h"}}, "nodes[0].config.host",
     "unknown field"),
    ({"connector": "azure_blob", "config": {"bucket": "c", "path": "in/", "atomicity": {"stagingFoldr": "x"}}},
     "nodes[0].config.atomicity.stagingFoldr", "unknown field"),
    ({"connector": "sftp", "config": {"host": "h", "username": "u", "path": "/in", "privateKeySecret": "/k"}},
     "nodes[0].config.privateKeySecret", "env:"),
    ({"connector": "sftp", "config": {"host": "h", "username": "u", "path": "/in", "bucket": "b"}},
     "nodes[0].config.bucket", "unknown field"),
    ({"connector": "ftp", "config": {"host": "h", "path": "/in", "port": 70000}}, "nodes[0].config.port", ""),
    ({"connector": "http_pull", "config": {"url": "http://h/in/", "atomicity": {}}}, "nodes[0].config.atomicity",
     "read-only"),
    ({"connector": "http_pull", "config": {"url": "http://h/in/", "headers": {"Authorization": "Bearer abc123"}}},
     "nodes[0].config.headers", "env:VAR"),
    ({"connector": "http_pull", "config": {"url": "file:///etc/passwd"}}, "nodes[0].config.url", ""),
    ({"connector": "http_pull", "config": {"url": "http://h/", "retries": 99}}, "nodes[0].config.retries", ""),
])
def test_a_remote_config_problem_is_one_error_at_its_json_path(node, path, words):
    from ir_compiler.errors import ValidationFailed
    from ir_compiler.loader import load_document
    doc = {"kind": "pipeline", "id": "p", "nodes": [{"id": "s", "kind": "source", **node}]}
    with pytest.raises(ValidationFailed) as info:
        load_document(doc)
    assert [(i.path, i.node_id) for i in info.value.issues] == [(path, "s")]
    assert words in info.value.issues[0].message
    assert "hunter2" not in info.value.issues[0].message and "abc123" not in info.value.issues[0].message


def test_flow_beam_schema_documents_every_remote_config():
    out = subprocess.run([sys.executable, "-m", "flow_beam", "schema"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": ROOT})
    defs = json.loads(out.stdout)["$defs"]
    for model in ("S3SourceConfig", "GcsSourceConfig", "AzureBlobSourceConfig", "SftpSourceConfig", "FtpSourceConfig",
                  "HttpPullSourceConfig", "S3SinkConfig", "GcsSinkConfig", "AzureBlobSinkConfig", "SftpSinkConfig"):
        assert model in defs, model
    sftp = defs["SftpSourceConfig"]["properties"]
    assert {"privateKeySecret", "knownHosts", "claimLeaseSeconds", "atomicity"} <= set(sftp)
    assert "env:VAR" in sftp["privateKeySecret"]["description"]
    assert {"retries", "retryBackoffSeconds", "headers"} <= set(defs["HttpPullSourceConfig"]["properties"])


def test_plan_describes_the_remote_steps_without_a_server(tmp_path):
    doc = pipeline([{"id": "src", "kind": "source", "connector": "s3", "schema": SCHEMA,
                     "config": {"bucket": "b", "path": "in/", "endpoint": f"http://127.0.0.1:{free_port()}",
                                "atomicity": {}}}])
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, "-m", "flow_beam", "plan", str(path)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "200"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "claim into the run's staging folder" in out.stdout and "download to a worker temp file" in out.stdout


# ---- patterns, orderings, wait policy, bounded sampling ------------------------------------------------------------
def test_patterns_orderings_and_the_wait_policy(store, tmp_path):
    """The same matching as local_fs (shared connectors/filematch.py) over the store's listing."""
    import time as _time

    from connectors.file_config import FileSourceConfig
    from connectors.remote.staging import list_matching
    store.put("in/b.csv", b"id\n1\n", tmp_path)
    _time.sleep(1.1)  # object stores keep mtimes to the second: b is older than a
    store.put("in/a.csv", b"id\n2\n", tmp_path)
    store.put("in/c.txt", b"x", tmp_path)
    store.put("in/sub/d.csv", b"id\n3\n", tmp_path)
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    store.put(f"in/orders_{today}.csv", b"id\n4\n", tmp_path)
    store.put("in/.processing/z.csv", b"id\n5\n", tmp_path)

    def names(**cfg):
        c = FileSourceConfig(path=store.p("in"), **cfg)
        return [f.path.rsplit("/", 1)[1] for f in list_matching(store.fs, c)]
    glob = {"type": "glob", "value": "?.csv"}
    assert names(pattern=glob, ordering="fifo_by_name") == ["a.csv", "b.csv"]
    assert names(pattern=glob, ordering="process_all") == ["b.csv", "a.csv"]
    assert names(pattern=glob, ordering="latest_by_mtime") == ["a.csv"]
    assert names(pattern={"type": "regex", "value": r"[bc]\.(csv|txt)"}, ordering="lexicographic") == ["b.csv", "c.txt"]
    assert names(pattern={"type": "glob", "value": "**/*.csv"}, ordering="lexicographic") == [
        "a.csv", "b.csv", f"orders_{today}.csv", "d.csv"]  # recursive; the hidden staging folder never listed
    assert names(pattern={"type": "date_template", "value": "orders_{YYYY-MM-DD}.csv"}) == [f"orders_{today}.csv"]
    wait = {"maxRetries": 1, "intervalMinutes": 0, "onMissAction": "fail"}
    failed = run(pipeline([source(store, "in", pattern={"type": "glob", "value": "*.parquet"}, waitPolicy=wait)]),
                 tmp_path / "wh.duckdb")
    assert failed.status == "failed" and "no file in" in failed.error and store.p("in").strip("/") in failed.error
    assert "after 1 retry" in failed.error


def test_schema_inference_samples_a_bounded_prefix(servers, tmp_path):
    """A 6 MB csv.gz and a parquet file of many row groups on s3: the sample is at most 4 MB of text / the first
    10,000 rows, and the schema inferred from it types the columns."""
    from connectors.formats import SAMPLE_BYTES, SAMPLE_ROWS
    from connectors.remote.sample import infer_remote_schema, sample_copy
    srv = servers.get("s3")
    make_bucket("s3", srv)
    st = Store("s3", srv)
    n = 300_000
    text = "id,price,day\n" + "".join(f"{i},{i}.5,2024-01-{1 + i % 28:02d}\n" for i in range(n))
    assert len(text) > SAMPLE_BYTES
    st.put("in/big.csv.gz", gzip.compress(text.encode()), tmp_path)
    import numpy as np
    rng = np.random.default_rng(7)
    table = pa.table({"id": pa.array(rng.integers(0, 2**62, n), pa.int64()), "v": pa.array(rng.random(n))})
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=20_000)
    assert (tmp_path / "big.parquet").stat().st_size > SAMPLE_BYTES
    st.put("in/big.parquet", (tmp_path / "big.parquet").read_bytes(), tmp_path)
    infos = {f.name: f for f in st.fs.list(st.p("in"))}
    local = sample_copy(st.fs, infos["big.csv.gz"], "csv", {}, str(tmp_path))
    assert 0 < os.path.getsize(local) <= SAMPLE_BYTES and Path(local).read_bytes().endswith(b"\n")
    schema = infer_remote_schema(st.fs, [infos["big.csv.gz"]], "csv", {})
    assert str(schema.types()["id"]) == "int" and str(schema.types()["day"]) == "date"
    local = sample_copy(st.fs, infos["big.parquet"], "parquet", {}, str(tmp_path))
    assert pq.ParquetFile(local).metadata.num_rows == SAMPLE_ROWS
    assert str(infer_remote_schema(st.fs, [infos["big.parquet"]], "parquet", {}).types()["v"]) == "float"
    st.fs.close()
