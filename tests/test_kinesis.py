"""kinesis_consumer against a real Kinesis API: kinesalite from npm, through scripts/kinesis.sh (the one at
$FLOW_BEAM_KINESIS_ENDPOINT when set, else a private one on a free port started and stopped here).

Drain mode (direct runner): every record read exactly once across runs (checkpoints in _flow_checkpoints after the
loads), a failed load checkpoints nothing and the next run re-reads, bad records reach the DLQ with shard and
sequence number, several shards, every format. Streaming mode (prism): a windowed aggregate, checkpoints gated by
the frontier, and a restart that resumes from the checkpoints."""
import io
import json
import os
import time
import uuid
from collections import defaultdict

import duckdb
import pytest

from flow_beam.running import RunOptions, run_document

pytestmark = pytest.mark.infra
T0 = 1767225600  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def endpoint():
    pytest.importorskip("boto3", reason="boto3 is missing: pip install 'flow-beam[kinesis]'")
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ}
    url = os.environ.get("FLOW_BEAM_KINESIS_ENDPOINT")
    server = None
    if not url:
        from tests.remote_util import ScriptServer, ServerUnavailable
        try:
            server = ScriptServer("kinesis").start()
        except ServerUnavailable as exc:
            pytest.skip(str(exc))
        url = server.env["FLOW_BEAM_KINESIS_ENDPOINT"]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "flowbeam-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "flowbeam-test-secret")
    try:
        yield url
    finally:
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if k in env:
                os.environ[k] = env[k]
            else:
                os.environ.pop(k, None)
        if server is not None:
            server.cleanup()


def cfg(endpoint, stream, **extra):
    from connectors.kinesis import KinesisConsumerConfig
    return KinesisConsumerConfig(streamName=stream, endpoint=endpoint, region="us-east-1", **extra)


_CREATED = []  # streams to delete after each test (kinesalite allows 10 shards per account)


@pytest.fixture(autouse=True)
def _delete_streams(endpoint):
    yield
    from connectors.kinesis.client import client
    while _CREATED:
        stream = _CREATED.pop()
        try:
            client(cfg(endpoint, stream)).delete_stream(StreamName=stream)
        except Exception:  # noqa: BLE001 - already gone
            pass


def new_stream(endpoint, shards=2):
    from connectors.kinesis.client import client
    stream = f"s-{uuid.uuid4().hex[:8]}"
    k = client(cfg(endpoint, stream))
    k.create_stream(StreamName=stream, ShardCount=shards)
    _CREATED.append(stream)
    deadline = time.monotonic() + 60
    while k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, "the stream did not become ACTIVE"
        time.sleep(0.1)
    return stream


def put(endpoint, stream, values, keys=None):
    from connectors.kinesis.client import put_records
    payloads = [v if isinstance(v, bytes) else json.dumps(v).encode() for v in values]
    return put_records(cfg(endpoint, stream), payloads, keys or [str(i) for i in range(len(values))])


SCHEMA = [{"name": "id", "type": "int"}, {"name": "amount", "type": "float"}]


def doc(endpoint, stream, fmt="json", schema=SCHEMA, dlq=True, **config):
    d = {"kind": "pipeline", "version": "1.0", "id": "kinesis-drain", "nodes": [
        {"id": "events", "kind": "source", "connector": "kinesis_consumer",
         "config": {"streamName": stream, "endpoint": endpoint, "region": "us-east-1", "format": fmt,
                    "startingPosition": "TRIM_HORIZON", **config}},
        {"id": "out", "kind": "target", "input": "events", "schema": "public.events", "loadMode": "append"}]}
    if schema is not None:
        d["nodes"][0]["schema"] = schema
    if dlq:
        d["errorHandling"] = {"dlq": {"enabled": True, "table": "dlq.kinesis"}}
    return d


def query(wh, sql):
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def drain(d, wh):
    return run_document(d, RunOptions(warehouse=f"duckdb://{wh}"))


def explain(result):
    return (result.status, result.error, result.warnings,
            {k: (v.status, v.error, v.warnings) for k, v in result.nodes.items()})


def test_drain_reads_every_record_once_across_runs_and_checkpoints_after_the_load(endpoint, tmp_path):
    stream = new_stream(endpoint, shards=3)
    wh = tmp_path / "w.duckdb"
    placed = put(endpoint, stream, [{"id": i, "amount": i * 1.5} for i in range(30)])
    assert len({shard for shard, _ in placed}) >= 2  # the records are spread over several shards
    result = drain(doc(endpoint, stream), wh)
    assert result.status == "completed", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == list(range(30))
    assert result.nodes["events"].rowsIn == 30
    # the checkpoint of each shard is the last sequence number put there
    last = {}
    for shard, seq in placed:
        last[shard] = max(last.get(shard, 0), int(seq))
    got = {s: int(p) for s, p in query(wh, "select shard, position from _flow_checkpoints "
                                           "where consumer = 'kinesis-drain/events'")}
    assert got == last
    put(endpoint, stream, [{"id": i, "amount": 1.0} for i in range(30, 35)])
    result = drain(doc(endpoint, stream), wh)
    assert result.status == "completed", explain(result)
    assert result.nodes["events"].rowsIn == 5  # only the new records
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == list(range(35))
    result = drain(doc(endpoint, stream), wh)  # nothing new
    assert result.status == "completed" and result.nodes["events"].rowsIn == 0, explain(result)


def test_failed_load_checkpoints_nothing_and_the_next_run_reads_again(endpoint, tmp_path):
    stream = new_stream(endpoint)
    wh = tmp_path / "w.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("create schema public; create table public.events(id bigint, other varchar)")  # incompatible
    con.close()
    put(endpoint, stream, [{"id": i, "amount": 2.0} for i in range(6)])
    result = drain(doc(endpoint, stream), wh)
    assert result.status == "failed", explain(result)
    assert query(wh, "select count(*) from information_schema.tables where table_name = '_flow_checkpoints'") \
        in ([(0,)], [(1,)])
    if query(wh, "select count(*) from information_schema.tables where table_name = '_flow_checkpoints'")[0][0]:
        assert query(wh, "select count(*) from _flow_checkpoints") == [(0,)]
    con = duckdb.connect(str(wh))
    con.execute("drop table public.events")
    con.close()
    result = drain(doc(endpoint, stream), wh)
    assert result.status == "completed", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == list(range(6))


def test_bad_records_reach_the_dlq_with_shard_and_sequence_number(endpoint, tmp_path):
    stream = new_stream(endpoint, shards=1)
    wh = tmp_path / "w.duckdb"
    placed = put(endpoint, stream, [{"id": 1, "amount": 1.0}, b"not json", {"id": "x", "amount": 2.0},
                                    {"id": 4, "amount": 4.0}])
    result = drain(doc(endpoint, stream), wh)
    assert result.status == "completed_with_errors", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == [1, 4]
    rows = query(wh, "select error, row from dlq.kinesis order by error")
    assert len(rows) == 2
    errors = " | ".join(r[0] for r in rows)
    for shard, seq in placed[1:3]:
        assert f"{stream}/{shard}@{seq}" in errors
    assert {json.loads(r[1]).get("sequence_number") for r in rows if "sequence_number" in r[1]} <= \
        {seq for _, seq in placed}
    assert any(json.loads(r[1]).get("raw") == "not json" for r in rows)
    assert result.nodes["events"].rowsIn == 4 and result.nodes["events"].rowsQuarantined == 2
    result = drain(doc(endpoint, stream), wh)  # the bad records are checkpointed too: not read again
    assert result.status == "completed" and result.nodes["events"].rowsIn == 0, explain(result)


def test_every_format_and_an_inferred_schema(endpoint, tmp_path):
    import fastavro
    avro = {"type": "record", "name": "E", "fields": [{"name": "id", "type": "long"},
                                                      {"name": "name", "type": "string"}]}

    def avro_bytes(row):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(avro), row)
        return buf.getvalue()

    cases = {
        "json": ([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], {}, [(1, "a"), (2, "b")]),
        "csv": ([b"1,a", b"2,b"], {}, [("1", "a"), ("2", "b")]),
        "avro": ([avro_bytes({"id": 1, "name": "a"}), avro_bytes({"id": 2, "name": "b"})], {"avroSchema": avro},
                 [(1, "a"), (2, "b")]),
    }
    for fmt, (values, extra, want) in cases.items():
        stream = new_stream(endpoint, shards=1)
        wh = tmp_path / f"{fmt}.duckdb"
        put(endpoint, stream, values)
        result = drain(doc(endpoint, stream, fmt, schema=None, **extra), wh)
        assert result.status == "completed", (fmt, explain(result))
        cols = "c0, c1" if fmt == "csv" else "id, name"
        assert sorted(query(wh, f"select {cols} from public.events")) == want, fmt
    stream = new_stream(endpoint, shards=1)
    wh = tmp_path / "raw.duckdb"
    placed = put(endpoint, stream, [b"hello", b"world"], keys=["k1", "k2"])
    result = drain(doc(endpoint, stream, "raw", schema=None), wh)
    assert result.status == "completed", explain(result)
    rows = query(wh, "select key, value, stream, shard, sequence_number from public.events order by value")
    assert rows == [("k1", "hello", stream, placed[0][0], placed[0][1]), ("k2", "world", stream, placed[1][0],
                                                                          placed[1][1])]


def test_latest_without_a_checkpoint_reads_nothing_in_a_drain_and_says_so(endpoint, tmp_path):
    stream = new_stream(endpoint, shards=1)
    put(endpoint, stream, [{"id": 1, "amount": 1.0}])
    result = drain(doc(endpoint, stream, startingPosition="LATEST"), tmp_path / "w.duckdb")
    assert result.status == "completed_with_errors", explain(result)
    assert result.nodes["events"].rowsIn == 0
    assert any("TRIM_HORIZON" in w for w in result.nodes["events"].warnings), explain(result)


def test_missing_stream_and_unreachable_server_are_clear_errors(endpoint, tmp_path):
    result = drain(doc(endpoint, "no-such-stream"), tmp_path / "w.duckdb")
    assert result.status == "failed" and "no-such-stream" in result.error and "does not exist" in result.error
    assert "Traceback" not in result.error
    result = drain(doc("http://127.0.0.1:9", "s"), tmp_path / "w.duckdb")
    assert result.status == "failed" and "cannot reach" in result.error and "kinesis.sh" in result.error, \
        explain(result)


# ---- streaming on Prism ------------------------------------------------------------------------------------
@pytest.fixture
def prism():
    from flow_beam.runners import RunnerError, beam_args
    try:
        beam_args("prism")
    except RunnerError as exc:
        pytest.skip(str(exc))


EVENTS = [{"id": i, "user": "ab"[i % 2], "amount": i, "ts": T0 + 7 * i} for i in range(40)]


def stream_doc(endpoint, stream, window=None, pipeline_id="kinesis-stream"):
    source = {"id": "src", "kind": "source", "connector": "kinesis_consumer",
              "config": {"streamName": stream, "endpoint": endpoint, "region": "us-east-1",
                         "startingPosition": "TRIM_HORIZON"},
              "schema": [{"name": "id", "type": "int"}, {"name": "user", "type": "string"},
                         {"name": "amount", "type": "int"}, {"name": "ts", "type": "int"}],
              "eventTime": {"field": "ts", "format": "epoch_s"}}
    if window is None:
        rest = [{"id": "out", "kind": "target", "input": "src", "schema": "public.events", "loadMode": "append"}]
    else:
        rest = [{"id": "agg", "kind": "transform", "input": "src", "ops": [
            {"op": "aggregate", "groupBy": ["user"], "window": window,
             "aggregations": [{"field": "amount", "fn": "sum", "as": "total"}, {"fn": "count", "as": "n"}]}]},
            {"id": "out", "kind": "target", "input": "agg", "schema": "public.totals", "loadMode": "upsert",
             "upsertKey": ["user", "window_start"]}]
    return {"kind": "pipeline", "version": "1.0", "id": pipeline_id, "nodes": [source] + rest,
            "errorHandling": {"dlq": {"enabled": True, "table": "dlq.kinesis"}}}


def stream_run(d, wh, idle=3.0):
    return run_document(d, RunOptions(runner="prism", warehouse=f"duckdb://{wh}", stop_after_idle_s=idle))


def totals(events):
    want = defaultdict(lambda: [0, 0])
    for e in events:
        key = (e["user"], e["ts"] - e["ts"] % 60)
        want[key][0] += e["amount"]
        want[key][1] += 1
    return {k: tuple(v) for k, v in want.items()}


@pytest.mark.slow
def test_streaming_windowed_aggregate_on_prism_and_a_second_run_resumes_from_the_checkpoints(endpoint, prism,
                                                                                              tmp_path):
    stream = new_stream(endpoint, shards=2)
    wh = tmp_path / "w.duckdb"
    put(endpoint, stream, EVENTS[:30] + [b"not json"], keys=[str(e) for e in range(31)])
    d = stream_doc(endpoint, stream, {"type": "fixed", "size": "1m"})
    result = stream_run(d, wh)
    assert result.status in ("completed", "completed_with_errors"), explain(result)
    got = {(u, s): (t, n) for u, s, t, n in query(
        wh, "select user, epoch(window_start)::bigint, total, n from public.totals")}
    assert got == totals(EVENTS[:30])
    assert query(wh, "select count(*) from dlq.kinesis") == [(1,)]
    assert query(wh, "select count(*) from _flow_checkpoints")[0][0] >= 1  # committed as windows became final
    put(endpoint, stream, EVENTS[30:], keys=[str(e) for e in range(30, 40)])
    result = stream_run(d, wh)
    assert result.status in ("completed", "completed_with_errors"), explain(result)
    # resumed after the records whose windows were final when the first run stopped (at least ids 0..9: their
    # windows end by 120 s, and the frontier reached 180 s), not from the start of the stream
    assert 10 <= result.nodes["src"].rowsIn <= 41 - 10, explain(result)
    got = {(u, s): (t, n) for u, s, t, n in query(
        wh, "select user, epoch(window_start)::bigint, total, n from public.totals")}
    assert got == totals(EVENTS)  # every event counted once: the restart resumed from the checkpoints


@pytest.mark.slow
def test_streaming_windowed_aggregate_on_the_flink_cluster(endpoint, tmp_path):
    """The shared stream reader on Flink: every shard's reader reports its idle stop, so the run stops only once
    all of them ended and every window is loaded (before, a Kinesis run on Flink counted no reader)."""
    from flow_beam.runners import RunnerError, beam_args
    master = os.environ.get("FLOW_BEAM_FLINK_MASTER")
    if not master:
        pytest.skip("no Flink cluster: bash scripts/flink.sh start && eval \"$(bash scripts/flink.sh env)\"")
    try:
        beam_args("flink", flink_master=master)
    except RunnerError as exc:
        pytest.skip(str(exc))
    stream = new_stream(endpoint, shards=2)
    wh = tmp_path / "w.duckdb"
    put(endpoint, stream, EVENTS, keys=[str(e) for e in range(len(EVENTS))])
    d = stream_doc(endpoint, stream, {"type": "fixed", "size": "1m"}, pipeline_id="kinesis-flink")
    result = run_document(d, RunOptions(runner="flink", warehouse=f"duckdb://{wh}", stop_after_idle_s=3,
                                        flink_master=master))
    assert result.status == "completed", explain(result)
    assert result.nodes["src"].rowsIn == len(EVENTS)
    got = {(u, s): (t, n) for u, s, t, n in query(
        wh, "select user, epoch(window_start)::bigint, total, n from public.totals")}
    assert got == totals(EVENTS)
    # (no checkpoint is asserted: in a run this short Flink's watermark reaches the windows' ends only after the
    # readers stopped, so their last commit finds nothing final yet; the next run re-reads and the upserts converge)


@pytest.mark.slow
def test_streaming_unwindowed_appends_each_record_once(endpoint, prism, tmp_path):
    stream = new_stream(endpoint, shards=2)
    wh = tmp_path / "w.duckdb"
    put(endpoint, stream, EVENTS[:20])
    d = stream_doc(endpoint, stream)
    result = stream_run(d, wh)
    assert result.status == "completed", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == list(range(20))
    put(endpoint, stream, EVENTS[20:])
    result = stream_run(d, wh)
    assert result.status == "completed", explain(result)
    ids = [r[0] for r in query(wh, "select id from public.events")]
    assert sorted(ids) == list(range(40))  # the second run read only what the first one had not written


def crash_events(start, stop):
    """Event i at T0 + 5 i s; every 7th has a late twin 45 s in the past (within the 2-minute allowed lateness)."""
    out = []
    for i in range(start, stop):
        out.append({"id": i, "user": "abcd"[i % 4], "amount": i % 13 + 1, "ts": T0 + 5 * i})
        if i % 7 == 3:
            out.append({"id": 10_000 + i, "user": "abcd"[(i + 1) % 4], "amount": 100, "ts": T0 + 5 * i - 45})
    return out


@pytest.mark.slow
def test_streaming_windowed_upsert_survives_a_crash_and_a_restart(endpoint, prism, tmp_path):
    """A streaming run in its own process is killed (SIGKILL) once it checkpointed something; the rest of the
    events are put; a second run until idle: the PostgreSQL table equals the aggregates of every event and the
    second run read exactly the records after the checkpoints."""
    import signal
    import subprocess
    import sys

    import psycopg

    from tests.pg_util import fresh_database

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    stream = new_stream(endpoint, shards=2)
    first, second = crash_events(0, 240), crash_events(240, 400)
    d = stream_doc(endpoint, stream, {"type": "fixed", "size": "1m", "allowedLateness": "2m"}, "kinesis-crash")
    d["nodes"][0]["config"]["applicationName"] = "crash-test"
    placed = put(endpoint, stream, first, keys=[e["user"] for e in first])

    def checkpointed(url) -> int:
        try:
            with psycopg.connect(url) as con:
                rows = con.execute("SELECT shard, position FROM _flow_checkpoints WHERE consumer = 'crash-test'"
                                   ).fetchall()
        except psycopg.Error:
            return 0
        upto = {shard: int(pos) for shard, pos in rows}
        return sum(1 for shard, seq in placed if int(seq) <= upto.get(shard, -1))

    def table(url):
        with psycopg.connect(url) as con:
            rows = con.execute('SELECT "user", extract(epoch from window_start)::bigint, total, n '
                               'FROM public.totals').fetchall()
        out = {}
        for user, start, total, n in rows:
            assert (user, start) not in out, f"two rows for {user} {start}"
            out[(user, start)] = (total, n)
        return out

    with fresh_database() as url:
        path = tmp_path / "crash.json"
        path.write_text(json.dumps(d))
        env = {**os.environ, "FLOW_BEAM_COMMIT_EVERY_S": "1", "PYTHONPATH": root}
        proc = subprocess.Popen([sys.executable, "-m", "flow_beam", "run", str(path), "--runner", "prism",
                                 "--warehouse", url], cwd=root, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "run1.log", "w"))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and checkpointed(url) == 0:
                assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
                time.sleep(1)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # a crash: no shutdown, prism dies with it
            proc.wait()
        after_crash = checkpointed(url)
        assert 0 < after_crash < len(first), "the first run checkpointed some records, not all"
        assert table(url), "panes were written before the crash"
        put(endpoint, stream, second, keys=[e["user"] for e in second])
        result = run_document(d, RunOptions(runner="prism", warehouse=url, stop_after_idle_s=4))
        assert result.status == "completed", explain(result)
        assert result.nodes["src"].rowsIn == len(first) + len(second) - after_crash  # resumed at the checkpoints
        assert table(url) == totals(first + second)
