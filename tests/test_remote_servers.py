"""Each remote connector's local server, started by its script on free non-default ports with a private state folder,
answers a real round trip through its real client library, reports its status, and is gone after `stop`.

A server whose install cannot run here (no Go, no npm, no registry) skips, saying why.
"""
from __future__ import annotations

import asyncio
import ftplib
import io
import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.remote_util import ScriptServer, ServerUnavailable, pid_alive

pytestmark = pytest.mark.infra


@pytest.fixture
def server(request):
    """``server(name, **extra_env)`` → a started ScriptServer, stopped (and checked gone) at teardown."""
    started = []

    def start(name, **extra):
        srv = ScriptServer(name, {k: str(v) for k, v in extra.items()})
        try:
            srv.start()
        except ServerUnavailable as e:
            pytest.skip(str(e))
        started.append(srv)
        assert srv.status() == 0, f"{name}.sh status after start"
        return srv

    yield start
    for srv in started:
        pid = srv.pid()
        srv.cleanup()
        assert not pid_alive(pid), f"scripts/{srv.name}.sh stop left pid {pid} running"
        assert srv.status() != 0


def test_s3_moto(server):
    srv = server("s3")
    env = srv.env
    assert env["FLOW_BEAM_S3_ENDPOINT"] == f"http://127.0.0.1:{srv.port}"
    import botocore.session

    s3 = botocore.session.get_session().create_client(
        "s3", endpoint_url=env["FLOW_BEAM_S3_ENDPOINT"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket="fb-servers")
    s3.put_object(Bucket="fb-servers", Key="in/a.csv", Body=b"id\n1\n")
    assert s3.get_object(Bucket="fb-servers", Key="in/a.csv")["Body"].read() == b"id\n1\n"
    listed = s3.list_objects_v2(Bucket="fb-servers", Prefix="in/")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("in/a.csv", 5)]
    # conditional create, which the s3 claim relies on
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket="fb-servers", Key="in/a.csv", Body=b"x", IfNoneMatch="*")


def test_gcs_fake_gcs_server(server, monkeypatch):
    srv = server("gcs")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", srv.env["STORAGE_EMULATOR_HOST"])
    from google.api_core.exceptions import PreconditionFailed
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(credentials=AnonymousCredentials(), project="flow-beam-test")
    bucket = client.create_bucket("fb-servers")
    bucket.blob("in/a.csv").upload_from_string(b"id\n1\n", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        bucket.blob("in/a.csv").upload_from_string(b"x", if_generation_match=0)
    assert bucket.blob("in/a.csv").download_as_bytes() == b"id\n1\n"
    assert [(b.name, b.size) for b in client.list_blobs("fb-servers", prefix="in/")] == [("in/a.csv", 5)]
    # filesystem backend: the object is on disk in the state folder
    assert list(Path(srv.state, "gcs", "data").rglob("*")), "no data written under the state folder"


def test_azurite(server):
    srv = server("azurite")
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    assert f"BlobEndpoint=http://127.0.0.1:{srv.port}/devstoreaccount1;" in srv.env["FLOW_BEAM_AZURE_CONNECTION_STRING"]
    svc = BlobServiceClient.from_connection_string(srv.env["FLOW_BEAM_AZURE_CONNECTION_STRING"])
    cont = svc.create_container("fb-servers")
    cont.upload_blob("in/a.csv", b"id\n1\n")
    with pytest.raises(ResourceExistsError):
        cont.upload_blob("in/a.csv", b"x", overwrite=False)
    assert cont.download_blob("in/a.csv").readall() == b"id\n1\n"
    assert [(b.name, b.size) for b in cont.list_blobs()] == [("in/a.csv", 5)]


def test_sftp_openssh(server):
    srv = server("sftp")
    env = srv.env
    import asyncssh

    async def go():
        async with asyncssh.connect(env["FLOW_BEAM_SFTP_HOST"], port=int(env["FLOW_BEAM_SFTP_PORT"]),
                                    username=env["FLOW_BEAM_SFTP_USER"], client_keys=[env["FLOW_BEAM_SFTP_KEY"]],
                                    known_hosts=env["FLOW_BEAM_SFTP_KNOWN_HOSTS"]) as conn:
            async with conn.start_sftp_client() as sftp:
                await sftp.makedirs("/in", exist_ok=True)
                async with sftp.open("/in/a.csv", "wb") as fh:
                    await fh.write(b"id\n1\n")
                async with sftp.open("/in/a.csv", "rb") as fh:
                    data = await fh.read()
                names = sorted(n for n in await sftp.listdir("/in") if n not in (".", ".."))
                # plain SFTP rename never overwrites (OpenSSH links then unlinks): what the sftp claim relies on
                async with sftp.open("/in/b.csv", "wb") as fh:
                    await fh.write(b"b")
                with pytest.raises(asyncssh.SFTPError):
                    await sftp.rename("/in/a.csv", "/in/b.csv")
            # only SFTP: a shell command is refused (ForceCommand internal-sftp)
            result = await conn.run("echo shell", check=False)
        return data, names, result

    data, names, result = asyncio.run(go())
    assert data == b"id\n1\n"
    assert names == ["a.csv"]
    assert "shell" not in (result.stdout or "")
    # the chroot: "/in" on the server is root/in in the state folder
    assert Path(env["FLOW_BEAM_SFTP_ROOT"], "in", "a.csv").read_bytes() == b"id\n1\n"

    async def bad_key():
        import asyncssh as a
        key = a.generate_private_key("ssh-ed25519")
        await a.connect(env["FLOW_BEAM_SFTP_HOST"], port=int(env["FLOW_BEAM_SFTP_PORT"]),
                        username=env["FLOW_BEAM_SFTP_USER"], client_keys=[key],
                        known_hosts=env["FLOW_BEAM_SFTP_KNOWN_HOSTS"])
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(bad_key())


def test_ftp_pyftpdlib(server):
    srv = server("ftp")
    env = srv.env
    ftp = ftplib.FTP()
    ftp.connect(env["FLOW_BEAM_FTP_HOST"], int(env["FLOW_BEAM_FTP_PORT"]), timeout=30)
    ftp.login(env["FLOW_BEAM_FTP_USER"], env["FLOW_BEAM_FTP_PASSWORD"])
    ftp.mkd("in")
    ftp.storbinary("STOR in/a.csv", io.BytesIO(b"id\n1\n"))  # passive data connection
    got = io.BytesIO()
    ftp.retrbinary("RETR in/a.csv", got.write)
    assert got.getvalue() == b"id\n1\n"
    assert [(n, f["size"]) for n, f in ftp.mlsd("in") if f["type"] == "file"] == [("a.csv", "5")]
    ftp.quit()
    assert Path(env["FLOW_BEAM_FTP_ROOT"], "in", "a.csv").read_bytes() == b"id\n1\n"

    ro = ftplib.FTP()
    ro.connect(env["FLOW_BEAM_FTP_HOST"], int(env["FLOW_BEAM_FTP_PORT"]), timeout=30)
    ro.login(env["FLOW_BEAM_FTP_RO_USER"], env["FLOW_BEAM_FTP_PASSWORD"])
    with pytest.raises(ftplib.error_perm, match="550"):
        ro.storbinary("STOR in/b.csv", io.BytesIO(b"x"))
    ro.quit()
    bad = ftplib.FTP()
    bad.connect(env["FLOW_BEAM_FTP_HOST"], int(env["FLOW_BEAM_FTP_PORT"]), timeout=30)
    with pytest.raises(ftplib.error_perm, match="530"):
        bad.login(env["FLOW_BEAM_FTP_USER"], "wrong-password")
    bad.close()


def test_kinesis_kinesalite(server):
    srv = server("kinesis")
    env = srv.env
    import botocore.session

    kin = botocore.session.get_session().create_client(
        "kinesis", endpoint_url=env["FLOW_BEAM_KINESIS_ENDPOINT"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    kin.create_stream(StreamName="fb-servers", ShardCount=2)
    status, deadline = None, time.monotonic() + 30  # --createStreamMs 0: ACTIVE on kinesalite's next tick
    while status != "ACTIVE" and time.monotonic() < deadline:
        status = kin.describe_stream(StreamName="fb-servers")["StreamDescription"]["StreamStatus"]
        time.sleep(0 if status == "ACTIVE" else 0.1)
    assert status == "ACTIVE"
    sent = [json.dumps({"n": i}).encode() for i in range(6)]
    for i, data in enumerate(sent):
        kin.put_record(StreamName="fb-servers", Data=data, PartitionKey=str(i))
    got = []
    for shard in kin.list_shards(StreamName="fb-servers")["Shards"]:
        it = kin.get_shard_iterator(StreamName="fb-servers", ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got += [r["Data"] for r in kin.get_records(ShardIterator=it, Limit=100)["Records"]]
    assert sorted(got) == sorted(sent)


def _get(url, token=None, accept=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_http_files(server, tmp_path):
    root = tmp_path / "site"
    (root / "in").mkdir(parents=True)
    for i in range(5):
        (root / "in" / f"f{i}.csv").write_bytes(f"id\n{i}\n".encode())
    (root / "in" / ".hidden").write_text("x")
    token = uuid.uuid4().hex
    srv = server("http", FLOW_BEAM_HTTP_ROOT=root, FLOW_BEAM_HTTP_TOKEN=token, FLOW_BEAM_HTTP_PAGE_SIZE=2,
                 FLOW_BEAM_HTTP_FAIL_FIRST=2)
    base = srv.env["FLOW_BEAM_HTTP_URL"]
    for _ in range(2):  # the injected failures come first
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(base + "in/f0.csv", token)
        assert e.value.code == 503
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(base + "in/f0.csv")
    assert e.value.code == 401
    status, headers, body = _get(base + "in/f3.csv", token)
    assert (status, body) == (200, b"id\n3\n")
    assert headers["ETag"].strip('"') == __import__("hashlib").md5(body).hexdigest()
    # paginated JSON listing: all five visible files over three pages
    names, url = [], base + "in/?format=json"
    while url:
        _, _, body = _get(url, token)
        doc = json.loads(body)
        names += [f["name"] for f in doc["files"]]
        url = doc["next"] and base.rstrip("/") + doc["next"]
    assert names == [f"f{i}.csv" for i in range(5)]
    _, headers, body = _get(base + "in/", token)
    assert b'href="/in/f0.csv"' in body and b'rel="next"' in body and 'rel="next"' in headers.get("Link", "")
