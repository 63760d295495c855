"""connectors/remote/fs.py and connectors/<store>/store.py against real local servers started by the repo's
scripts (s3: moto, gcs: fake-gcs-server, azure_blob: Azurite, sftp: OpenSSH, ftp: pyftpdlib, http_pull:
scripts/httpfiles.py), on free non-default ports.

A store whose server cannot run here skips, saying why. Every format the product reads goes through write →
fetch_local → connectors/formats.py read_file; claims race from two threads; failure paths check the message.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import urllib.parse
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from connectors.formats import read_file, write_table
from connectors.remote.fs import ConnectorError, FileInfo, open_fs
from tests.remote_util import ScriptServer, ServerUnavailable, free_port

pytestmark = pytest.mark.infra

STORES = ("s3", "gcs", "azure_blob", "sftp", "ftp")
SCRIPT = {"s3": "s3", "gcs": "gcs", "azure_blob": "azurite", "sftp": "sftp", "ftp": "ftp"}
EXTRA = {"s3": {"FLOW_BEAM_S3_AUTH": "1"}}  # moto checks signatures and IAM policies (a read-only user exists)
BUCKET = "fb-remotefs"


class _Servers:
    """Each store's server, started on first use: a ScriptServer, or the reason it cannot run here (a string)."""

    def __init__(self):
        self.started: dict[str, ScriptServer | str] = {}

    def get(self, store: str) -> ScriptServer:
        if store not in self.started:
            srv = ScriptServer(SCRIPT[store], EXTRA.get(store))
            try:
                self.started[store] = srv.start()
            except ServerUnavailable as e:
                self.started[store] = str(e)
            except Exception as e:  # noqa: BLE001 - a start failure fails that store's tests, with the reason
                self.started[store] = f"FAILED: {e}"
                srv.cleanup()
        srv = self.started[store]
        if isinstance(srv, str):
            if srv.startswith("FAILED"):
                pytest.fail(srv)
            pytest.skip(srv)
        return srv


@pytest.fixture(scope="session")
def servers():
    # a SIGTERM (e.g. from `timeout`) still stops the servers: pytest tears fixtures down on KeyboardInterrupt
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


def _cfg(store: str, srv: ScriptServer, env: pytest.MonkeyPatch) -> dict:
    e = srv.env
    if store == "s3":
        env.setenv("FB_TEST_S3_SECRET", e["AWS_SECRET_ACCESS_KEY"])
        return {"bucket": BUCKET, "endpoint": e["FLOW_BEAM_S3_ENDPOINT"], "region": e["AWS_DEFAULT_REGION"],
                "username": e["AWS_ACCESS_KEY_ID"], "passwordSecret": "env:FB_TEST_S3_SECRET"}
    if store == "gcs":
        return {"bucket": BUCKET, "endpoint": e["STORAGE_EMULATOR_HOST"]}
    if store == "azure_blob":
        env.setenv("FB_TEST_AZURE_KEY", e["FLOW_BEAM_AZURE_KEY"])
        return {"bucket": BUCKET, "endpoint": e["FLOW_BEAM_AZURE_ENDPOINT"], "username": e["FLOW_BEAM_AZURE_ACCOUNT"],
                "passwordSecret": "env:FB_TEST_AZURE_KEY"}
    if store == "sftp":
        env.setenv("FB_TEST_SFTP_KEY", e["FLOW_BEAM_SFTP_KEY"])
        return {"host": e["FLOW_BEAM_SFTP_HOST"], "port": int(e["FLOW_BEAM_SFTP_PORT"]),
                "username": e["FLOW_BEAM_SFTP_USER"], "privateKeySecret": "env:FB_TEST_SFTP_KEY",
                "knownHosts": e["FLOW_BEAM_SFTP_KNOWN_HOSTS"]}
    env.setenv("FB_TEST_FTP_PASSWORD", e["FLOW_BEAM_FTP_PASSWORD"])
    return {"host": e["FLOW_BEAM_FTP_HOST"], "port": int(e["FLOW_BEAM_FTP_PORT"]), "username": e["FLOW_BEAM_FTP_USER"],
            "passwordSecret": "env:FB_TEST_FTP_PASSWORD"}


_buckets_made: set[str] = set()


def _make_bucket(store: str, srv: ScriptServer) -> None:
    if store in _buckets_made or store in ("sftp", "ftp"):
        return
    e = srv.env
    if store == "s3":
        import botocore.session
        s3 = botocore.session.get_session().create_client(
            "s3", endpoint_url=e["FLOW_BEAM_S3_ENDPOINT"], region_name=e["AWS_DEFAULT_REGION"],
            aws_access_key_id=e["AWS_ACCESS_KEY_ID"], aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket=BUCKET)
    elif store == "gcs":
        import requests
        requests.post(f"{e['STORAGE_EMULATOR_HOST']}/storage/v1/b?project=test", json={"name": BUCKET},
                      timeout=30).raise_for_status()
    else:
        from azure.storage.blob import BlobServiceClient
        BlobServiceClient.from_connection_string(e["FLOW_BEAM_AZURE_CONNECTION_STRING"]).create_container(BUCKET)
    _buckets_made.add(store)


class Store:
    def __init__(self, name, srv, cfg):
        self.name, self.srv, self.cfg = name, srv, cfg
        self.base = ("/" if name in ("sftp", "ftp") else "") + f"t-{uuid.uuid4().hex[:10]}"
        self.opened = []

    def open(self, **override):
        fs = open_fs(self.name, {**self.cfg, **override})
        self.opened.append(fs)
        return fs

    def p(self, *parts):
        return "/".join([self.base, *parts])


@pytest.fixture(params=STORES)
def store(request, servers, monkeypatch):
    srv = servers.get(request.param)
    _make_bucket(request.param, srv)
    st = Store(request.param, srv, _cfg(request.param, srv, monkeypatch))
    yield st
    for fs in st.opened:
        fs.close()


def _local(tmp_path, name, data: bytes) -> str:
    p = tmp_path / f"src-{uuid.uuid4().hex[:6]}" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return str(p)


TABLE = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b, with comma", "ü"],
                  "amount": [1.5, None, -2.25]})


def _format_file(tmp_path, fmt) -> str:
    folder = tmp_path / f"fmt-{fmt}"
    if fmt in ("csv", "jsonl", "parquet", "avro"):
        return write_table(TABLE, str(folder), fmt, prefix="data")
    folder.mkdir()
    rows = TABLE.to_pylist()
    if fmt == "json":
        path = folder / "data.json"
        path.write_text(json.dumps(rows))
    else:
        path = folder / "data.tsv"
        path.write_text("id\tname\tamount\n" + "".join(
            f"{r['id']}\t{r['name']}\t{'' if r['amount'] is None else r['amount']}\n" for r in rows))
    return str(path)


# ---- every format through the store ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet", "avro"])
def test_every_format_round_trips(store, tmp_path, fmt):
    fs = store.open()
    local = _format_file(tmp_path, fmt)
    remote = store.p("in", os.path.basename(local))
    assert fs.write(remote, local) == remote
    [info] = fs.list(store.p("in"))
    assert (info.path, info.size) == (remote, os.path.getsize(local))
    fetched = fs.fetch_local(remote, str(tmp_path / "fetch"), expect=info)
    assert Path(fetched).read_bytes() == Path(local).read_bytes()
    assert os.path.basename(fetched) == os.path.basename(local)
    rows = [r for chunk in read_file(fetched, fmt) for r in chunk.batch.to_pylist()]
    assert [(r["id"], r["name"], r["amount"]) for r in rows] == [(1, "a", 1.5), (2, "b, with comma", None),
                                                                 (3, "ü", -2.25)]
    with fs.open_read(remote) as fh:
        assert fh.read() == Path(local).read_bytes()


def test_list_sizes_mtimes_hidden_and_recursive(store, tmp_path):
    fs = store.open()
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    payloads = {"a.csv": b"id\n1\n", "b.csv": b"id\n1\n2\n", "c.jsonl": b'{"id": 1}\n' * 10}
    for name, data in payloads.items():
        fs.write(store.p("in", name), _local(tmp_path, name, data))
    fs.write(store.p("in", ".hidden.csv"), _local(tmp_path, "h.csv", b"x"))
    fs.write(store.p("in", "sub", "d.csv"), _local(tmp_path, "d.csv", b"id\n4\n"))
    listed = fs.list(store.p("in"))
    assert [(f.name, f.size) for f in listed] == [(n, len(d)) for n, d in sorted(payloads.items())]
    for f in listed:
        assert f.mtime is not None and before < f.mtime < dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        if store.name in ("s3", "gcs", "azure_blob"):
            assert f.etag
    if store.name in ("s3", "gcs"):  # stores that keep an MD5 of the content
        import hashlib
        assert {f.name: f.md5 for f in listed} == {n: hashlib.md5(d).hexdigest() for n, d in payloads.items()}
    deep = fs.list(store.p("in"), recursive=True)
    assert [f.path for f in deep] == sorted([store.p("in", n) for n in payloads] + [store.p("in", "sub", "d.csv")])
    assert ".hidden.csv" in [f.name for f in fs.list(store.p("in"), include_hidden=True)]


def test_write_is_never_an_overwrite_unless_asked(store, tmp_path):
    fs = store.open()
    target = store.p("out", "part-00000.csv")
    fs.write(target, _local(tmp_path, "a.csv", b"first\n"))
    with pytest.raises(ConnectorError, match="already exists"):
        fs.write(target, _local(tmp_path, "b.csv", b"second\n"))
    with fs.open_read(target) as fh:
        assert fh.read() == b"first\n"
    fs.write(target, _local(tmp_path, "c.csv", b"third\n"), overwrite=True)
    with fs.open_read(target) as fh:
        assert fh.read() == b"third\n"
    # no temp files left behind
    assert [f.name for f in fs.list(store.p("out"), include_hidden=True)] == ["part-00000.csv"]


def test_move_never_overwrites(store, tmp_path):
    fs = store.open()
    fs.write(store.p("in", "a.csv"), _local(tmp_path, "a.csv", b"A"))
    fs.write(store.p("in", "b.csv"), _local(tmp_path, "b.csv", b"B"))
    assert fs.move(store.p("in", "a.csv"), store.p("done", "a.csv")) == store.p("done", "a.csv")
    assert not fs.exists(store.p("in", "a.csv"))
    fs.write(store.p("in", "a.csv"), _local(tmp_path, "a2.csv", b"A2"))
    with pytest.raises(ConnectorError, match="exists"):
        fs.move(store.p("in", "a.csv"), store.p("done", "a.csv"))
    with fs.open_read(store.p("done", "a.csv")) as fh:
        assert fh.read() == b"A"
    assert fs.exists(store.p("in", "a.csv"))
    fs.move(store.p("in", "a.csv"), store.p("done", "a.csv"), overwrite=True)
    with fs.open_read(store.p("done", "a.csv")) as fh:
        assert fh.read() == b"A2"
    with pytest.raises(ConnectorError, match=r"not found.*|.*not found") as e:
        fs.move(store.p("in", "nope.csv"), store.p("done", "nope.csv"))
    assert "nope.csv" in str(e.value)


def test_claim_exactly_one_wins(store, tmp_path):
    fs1, fs2 = store.open(), store.open()
    src = store.p("in", "a.csv")
    fs1.write(src, _local(tmp_path, "a.csv", b"id\n1\n"))
    staged = fs1.claim(src, store.p(".processing"))
    assert staged == store.p(".processing", "a.csv")
    assert fs2.claim(src, store.p(".processing")) is None
    assert not fs1.exists(src)
    with fs2.open_read(staged) as fh:
        assert fh.read() == b"id\n1\n"
    # a file of the same name already staged (a crashed run's) is kept; the new one gets a free name
    fs1.write(src, _local(tmp_path, "a2.csv", b"id\n2\n"))
    assert fs2.claim(src, store.p(".processing")) == store.p(".processing", "a.1.csv")
    assert fs1.claim_markers(store.p(".processing")) == []
    assert fs1.list(store.p("in")) == []


def test_claim_race_from_two_threads(store, tmp_path):
    rounds = 6
    fss = [store.open(), store.open()]
    for i in range(rounds):
        fss[0].write(store.p("in", f"f{i}.csv"), _local(tmp_path, f"f{i}.csv", f"id\n{i}\n".encode()))
    wins: list[list[str | None]] = [[None] * rounds, [None] * rounds]
    barrier = threading.Barrier(2)
    errors = []

    def run(k):
        try:
            for i in range(rounds):
                barrier.wait(timeout=60)
                wins[k][i] = fss[k].claim(store.p("in", f"f{i}.csv"), store.p(".processing"))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for i in range(rounds):
        got = [w[i] for w in wins if w[i] is not None]
        assert got == [store.p(".processing", f"f{i}.csv")], f"round {i}: {wins[0][i]!r} / {wins[1][i]!r}"
    staged = fss[0].list(store.p(".processing"))
    assert [f.name for f in staged] == [f"f{i}.csv" for i in range(rounds)]
    for i in range(rounds):
        with fss[1].open_read(store.p(".processing", f"f{i}.csv")) as fh:
            assert fh.read() == f"id\n{i}\n".encode()


def test_claim_backs_out_when_the_source_is_replaced_mid_claim(store, tmp_path):
    """A writer replaces the file between the claim's copy and its delete: the new version must survive."""
    if store.name in ("sftp", "ftp"):
        pytest.skip("sftp/ftp claims are one rename: there is no copy-then-delete window")
    fs, writer = store.open(), store.open()
    src = store.p("in", "r.csv")
    fs.write(src, _local(tmp_path, "r1.csv", b"v1\n"))
    copy = fs._copy

    def copy_then_replace(*args, **kwargs):
        copy(*args, **kwargs)
        writer.write(src, _local(tmp_path, "r2.csv", b"v2, newer\n"), overwrite=True)
    fs._copy = copy_then_replace
    staged = fs.claim(src, store.p(".processing"))
    with writer.open_read(src) as fh:
        assert fh.read() == b"v2, newer\n"  # the newer version is never deleted
    if staged is None:  # s3, azure: the delete's precondition failed; the staged copy was backed out
        assert writer.list(store.p(".processing")) == []
    else:  # gcs: exactly the copied generation was claimed (and deleted); the newer one waits
        assert staged == store.p(".processing", "r.csv")
        with writer.open_read(staged) as fh:
            assert fh.read() == b"v1\n"
    fs._copy = copy
    again = fs.claim(src, store.p(".processing"))
    assert again is not None
    with writer.open_read(again) as fh:
        assert fh.read() == b"v2, newer\n"


def test_claim_of_a_missing_file_is_none(store):
    fs = store.open()
    assert fs.claim(store.p("in", "gone.csv"), store.p(".processing")) is None


# ---- failure paths -----------------------------------------------------------------------------------------
def test_file_vanishing_between_list_and_read_names_the_path(store, tmp_path):
    fs, other = store.open(), store.open()
    fs.write(store.p("in", "v.csv"), _local(tmp_path, "v.csv", b"id\n1\n"))
    [info] = fs.list(store.p("in"))
    other.delete(info.path)
    with pytest.raises(ConnectorError) as e:
        fs.fetch_local(info.path, str(tmp_path / "fetch"), expect=info)
    assert "v.csv" in str(e.value) and "not found" in str(e.value)
    with pytest.raises(ConnectorError, match="not found"):
        fs.open_read(info.path).read()
    assert list((tmp_path / "fetch").rglob("*.csv")) == []  # no partial download left


def test_file_changed_since_listed_is_refused(store, tmp_path):
    fs = store.open()
    fs.write(store.p("in", "c.csv"), _local(tmp_path, "c.csv", b"id\n1\n"))
    [info] = fs.list(store.p("in"))
    fs.write(store.p("in", "c.csv"), _local(tmp_path, "c2.csv", b"id\n1\n2\n"), overwrite=True)
    with pytest.raises(ConnectorError, match="changed since it was listed"):
        fs.fetch_local(info.path, str(tmp_path / "fetch"), expect=info)


def test_server_down_names_the_endpoint(store):
    port = free_port()  # nothing listens there
    over = {"port": port} if store.name in ("sftp", "ftp") else {"endpoint": f"http://127.0.0.1:{port}" + (
        "/devstoreaccount1" if store.name == "azure_blob" else "")}
    with pytest.raises(ConnectorError) as e:
        store.open(**over)
    assert f"127.0.0.1:{port}" in str(e.value) and "cannot reach" in str(e.value)


def test_bad_credentials_are_a_clear_error_without_the_secret(store, monkeypatch, tmp_path):
    if store.name == "gcs":
        pytest.skip("the local gcs server (fake-gcs-server) has no authentication: it accepts any credentials")
    if store.name in ("s3", "azure_blob", "ftp"):
        bad = {"s3": "wrongSecretKey0123456789abcdefghijklmnop", "ftp": "wrong-" + uuid.uuid4().hex,
               "azure_blob": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="}[store.name]
        monkeypatch.setenv("FB_TEST_BAD", bad)
        override = {"passwordSecret": "env:FB_TEST_BAD"}
    else:
        key = tmp_path / "other_key"
        import asyncssh
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
        bad = str(key)
        monkeypatch.setenv("FB_TEST_BAD", bad)
        override = {"privateKeySecret": "env:FB_TEST_BAD"}
    with pytest.raises(ConnectorError) as e:
        store.open(**override)
    msg = str(e.value)
    assert "credentials rejected" in msg or "permission denied" in msg
    assert bad not in msg and "Traceback" not in msg
    assert "127.0.0.1" in msg or BUCKET in msg


def test_permission_denied_names_the_path(store, monkeypatch, tmp_path):
    """A real read-only account: pyftpdlib's second user, an IAM user on moto with read/list only, an Azure
    account SAS with read/list permissions only."""
    if store.name not in ("ftp", "s3", "azure_blob"):
        pytest.skip(f"the local {store.name} server has no read-only account here (sshd runs sessions as root, "
                    f"which file permissions do not stop; fake-gcs-server has no auth)")
    store.open().write(store.p("in", "a.csv"), _local(tmp_path, "a.csv", b"a"))
    sig = None
    if store.name == "ftp":
        fs = store.open(username=store.srv.env["FLOW_BEAM_FTP_RO_USER"])
    elif store.name == "azure_blob":
        from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
        e = store.srv.env
        sas = generate_account_sas(e["FLOW_BEAM_AZURE_ACCOUNT"], e["FLOW_BEAM_AZURE_KEY"],
                                   ResourceTypes(service=True, container=True, object=True),
                                   AccountSasPermissions(read=True, list=True),
                                   expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        sig = sas.split("sig=")[1].split("&")[0]
        monkeypatch.setenv("FB_TEST_RO_CONN", f"BlobEndpoint={e['FLOW_BEAM_AZURE_ENDPOINT']};SharedAccessSignature={sas}")
        fs = store.open(passwordSecret="env:FB_TEST_RO_CONN", username=None, endpoint=None)
    else:
        monkeypatch.setenv("FB_TEST_RO_SECRET", store.srv.env["FLOW_BEAM_S3_RO_SECRET_ACCESS_KEY"])
        fs = store.open(username=store.srv.env["FLOW_BEAM_S3_RO_ACCESS_KEY_ID"], passwordSecret="env:FB_TEST_RO_SECRET")
    assert [f.name for f in fs.list(store.p("in"))] == ["a.csv"]  # it may list and read
    with fs.open_read(store.p("in", "a.csv")) as fh:
        assert fh.read() == b"a"
    with pytest.raises(ConnectorError) as e:
        fs.write(store.p("in", "x.csv"), _local(tmp_path, "x.csv", b"x"))
    assert "permission denied" in str(e.value) and "x.csv" in str(e.value)
    assert sig is None or (sig not in str(e.value) and urllib.parse.unquote(sig) not in str(e.value))
    with pytest.raises(ConnectorError, match="permission denied") as e:
        fs.claim(store.p("in", "a.csv"), store.p(".processing"))
    assert fs.exists(store.p("in", "a.csv"))  # a refused claim leaves the file where it was


def test_secrets_must_be_env_references(store):
    with pytest.raises(ConnectorError, match="env:VAR_NAME") as e:
        store.open(passwordSecret="hunter2-literal")
    assert "hunter2" not in str(e.value)
    with pytest.raises(ConnectorError, match="FB_TEST_UNSET_VAR is unset"):
        store.open(passwordSecret="env:FB_TEST_UNSET_VAR")


# ---- http_pull -----------------------------------------------------------------------------------------------
@pytest.fixture
def http_server(tmp_path):
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


def _site(tmp_path) -> Path:
    root = tmp_path / "site"
    (root / "in" / "sub").mkdir(parents=True)
    for fmt in ("csv", "tsv", "json", "jsonl", "parquet", "avro"):
        src = _format_file(tmp_path, fmt)
        (root / "in" / os.path.basename(src)).write_bytes(Path(src).read_bytes())
    (root / "in" / ".hidden").write_text("x")
    (root / "in" / "sub" / "deep.csv").write_text("id\n9\n")
    return root


@pytest.mark.parametrize("listing", ["html", "json"])
def test_http_lists_pages_and_reads_every_format(http_server, tmp_path, monkeypatch, listing):
    root = _site(tmp_path)
    token = uuid.uuid4().hex
    srv = http_server(root, FLOW_BEAM_HTTP_TOKEN=token, FLOW_BEAM_HTTP_PAGE_SIZE=2)
    monkeypatch.setenv("FB_TEST_HTTP_TOKEN", token)
    url = srv.env["FLOW_BEAM_HTTP_URL"] + "in/" + ("?format=json" if listing == "json" else "")
    fs = open_fs("http_pull", {"url": url, "headers": {"Authorization": "Bearer env:FB_TEST_HTTP_TOKEN"}})
    files = fs.list("")
    base = srv.env["FLOW_BEAM_HTTP_URL"] + "in/"
    names = sorted(os.path.basename(f) for f in os.listdir(root / "in") if not f.startswith(".") and
                   (root / "in" / f).is_file())
    assert [f.path for f in files] == [base + n for n in names]
    for f in files:
        assert f.size == (root / "in" / os.path.basename(f.path)).stat().st_size and f.mtime is not None
    assert base + "sub/deep.csv" in [f.path for f in fs.list("", recursive=True)]
    for f in files:
        fmt = f.path.rsplit(".", 1)[1]
        local = fs.fetch_local(f.path, str(tmp_path / "fetch"), expect=f)
        rows = [r for chunk in read_file(local, fmt) for r in chunk.batch.to_pylist()]
        assert [r["id"] for r in rows] == [1, 2, 3], f.path
    with pytest.raises(ConnectorError, match="read-only"):
        fs.delete(files[0].path)


def test_http_single_url_and_bad_token(http_server, tmp_path, monkeypatch):
    root = _site(tmp_path)
    srv = http_server(root, FLOW_BEAM_HTTP_TOKEN="right-token")
    url = srv.env["FLOW_BEAM_HTTP_URL"] + "in/data-00000.csv"
    monkeypatch.setenv("FB_TEST_HTTP_TOKEN", "right-token")
    fs = open_fs("http_pull", {"url": url, "headers": {"Authorization": "Bearer env:FB_TEST_HTTP_TOKEN"}})
    [f] = fs.list("")
    assert f.path == url and f.size == (root / "in" / "data-00000.csv").stat().st_size
    monkeypatch.setenv("FB_TEST_HTTP_TOKEN", "wrong-token-value")
    bad = open_fs("http_pull", {"url": url, "headers": {"Authorization": "Bearer env:FB_TEST_HTTP_TOKEN"}})
    with pytest.raises(ConnectorError) as e:
        bad.list("")
    assert "401" in str(e.value) and "credentials" in str(e.value) and url in str(e.value)
    assert "wrong-token-value" not in str(e.value)
    with pytest.raises(ConnectorError, match="not found") as e:
        fs.fetch_local(srv.env["FLOW_BEAM_HTTP_URL"] + "in/nope.csv", str(tmp_path / "f"))
    assert "nope.csv" in str(e.value)


def test_http_retries_then_succeeds_and_gives_up(http_server, tmp_path):
    root = _site(tmp_path)
    srv = http_server(root, FLOW_BEAM_HTTP_FAIL_FIRST=2)
    url = srv.env["FLOW_BEAM_HTTP_URL"] + "in/data-00000.csv"
    fs = open_fs("http_pull", {"url": url, "retries": 2, "retryBackoffSeconds": 0.05})
    assert len(fs.list("")) == 1  # two 503s, then the answer
    srv2 = http_server(root, FLOW_BEAM_HTTP_FAIL_FIRST=10)
    url2 = srv2.env["FLOW_BEAM_HTTP_URL"] + "in/data-00000.csv"
    fs2 = open_fs("http_pull", {"url": url2, "retries": 1, "retryBackoffSeconds": 0.05})
    with pytest.raises(ConnectorError, match="503.*2 attempts") as e:
        fs2.list("")
    assert url2 in str(e.value)


def test_http_server_down_names_the_endpoint(tmp_path):
    port = free_port()
    fs = open_fs("http_pull", {"url": f"http://127.0.0.1:{port}/in/", "retries": 1, "retryBackoffSeconds": 0.05})
    with pytest.raises(ConnectorError) as e:
        fs.list("")
    assert f"127.0.0.1:{port}" in str(e.value) and "cannot reach" in str(e.value)


def test_http_redirect_to_another_origin_drops_the_auth_headers(http_server, tmp_path, monkeypatch):
    root = _site(tmp_path)
    record = tmp_path / "b-requests.jsonl"
    b = http_server(root, FLOW_BEAM_HTTP_RECORD=record)
    b_origin = b.env["FLOW_BEAM_HTTP_URL"].rstrip("/")
    a = http_server(root, FLOW_BEAM_HTTP_REDIRECT_TO=b_origin, FLOW_BEAM_HTTP_TOKEN="the-secret-token")
    monkeypatch.setenv("FB_TEST_HTTP_TOKEN", "the-secret-token")
    monkeypatch.setenv("FB_TEST_API_KEY", "the-secret-api-key")
    url = a.env["FLOW_BEAM_HTTP_URL"] + "in/data-00000.csv"
    fs = open_fs("http_pull", {"url": url, "headers": {"Authorization": "Bearer env:FB_TEST_HTTP_TOKEN",
                                                       "X-Api-Key": "env:FB_TEST_API_KEY"}})
    local = fs.fetch_local(url, str(tmp_path / "fetch"))  # A (authorised) → 302 → B
    assert Path(local).read_bytes() == (root / "in" / "data-00000.csv").read_bytes()
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert seen, "B saw no request"
    for req in seen:
        keys = {k.lower() for k in req["headers"]}
        assert "authorization" not in keys and "x-api-key" not in keys, req
        assert "the-secret" not in json.dumps(req)


def test_unknown_connector_and_missing_fields():
    with pytest.raises(ConnectorError, match="unknown remote connector"):
        open_fs("dropbox", {})
    with pytest.raises(ConnectorError, match="needs 'bucket'"):
        open_fs("s3", {"endpoint": "http://127.0.0.1:1"})
    with pytest.raises(ConnectorError, match="http:// or https://"):
        open_fs("http_pull", {"url": "file:///etc/passwd"})
    assert FileInfo("a/b.csv", 1, None).name == "b.csv"


@pytest.mark.parametrize("name", [pytest.param(s, marks=pytest.mark.slow) if s in ("gcs", "azure_blob") else s
                                  for s in STORES])
def test_server_stopping_mid_run_is_a_clear_error(name, monkeypatch, tmp_path):
    """A dedicated server: open, write and list, then the server really stops; the next read names the endpoint.
    (slow for gcs: gcsfs retries a dead endpoint 6 times with exponential backoff, ~35 s, and cannot be told
    less; azure_blob ~18 s with 3 retries.)"""
    srv = ScriptServer(SCRIPT[name], EXTRA.get(name))
    try:
        srv.start()
    except ServerUnavailable as e:
        pytest.skip(str(e))
    try:
        _buckets_made.discard(name)
        _make_bucket(name, srv)
        _buckets_made.discard(name)
        st = Store(name, srv, _cfg(name, srv, monkeypatch))
        fs = st.open()
        fs.write(st.p("in", "a.csv"), _local(tmp_path, "a.csv", b"id\n1\n"))
        [info] = fs.list(st.p("in"))
        srv.stop()
        with pytest.raises(ConnectorError) as e:
            fs.fetch_local(info.path, str(tmp_path / "fetch"), expect=info)
        msg = str(e.value)
        assert "a.csv" in msg and (f"127.0.0.1:{srv.port}" in msg), msg
        assert "cannot reach" in msg or "connection" in msg.lower(), msg
        assert list((tmp_path / "fetch").rglob("a.csv")) == []
        fs.close()
    finally:
        srv.cleanup()
