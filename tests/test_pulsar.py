"""pulsar_consumer against a real Apache Pulsar standalone (scripts/pulsar.sh, Maven Central jars): the broker at
$FLOW_BEAM_PULSAR / $FLOW_BEAM_PULSAR_ADMIN when set, else a private one on free ports started through the script
and stopped at the end (~25 s, ~300 MB).

Drain mode (direct runner): every message read exactly once across runs (acknowledged after the loads), a failed
load acknowledges nothing and the next run reads the messages again, bad messages reach the DLQ with topic and
message id, several partitions and topics, every format. Streaming mode (prism): a windowed aggregate and an
unwindowed append, acknowledged as the frontier passes, and a second run that resumes from the acknowledgements."""
import io
import json
import os
import shutil
import time
import uuid
from collections import defaultdict

import duckdb
import pytest

from flow_beam.running import RunOptions, run_document

pytestmark = pytest.mark.infra
T0 = 1767225600  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def broker():
    pytest.importorskip("pulsar", reason="the pulsar-client package is missing: pip install 'flow-beam[pulsar]'")
    url, admin = os.environ.get("FLOW_BEAM_PULSAR"), os.environ.get("FLOW_BEAM_PULSAR_ADMIN")
    if url and admin:
        yield url, admin
        return
    for tool in ("java", "mvn", "curl"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed: scripts/pulsar.sh needs java 17+, mvn and curl")
    from tests.test_pulsar_infra import Broker
    b = Broker()
    inst = b.run("install")
    if inst.returncode != 0:
        pytest.skip(f"the Pulsar jars could not be fetched (bash scripts/pulsar.sh install): {inst.stderr[-1500:]}")
    try:
        started = b.run("start")
        if started.returncode != 0:
            pytest.fail(f"bash scripts/pulsar.sh start failed:\n{started.stderr[-3000:]}")
        yield b.url, b.admin
    finally:
        b.run("stop", timeout=120)
        shutil.rmtree(b.state_root, ignore_errors=True)


def new_topic(broker, partitions=2):
    from connectors.pulsar.client import create_topic
    name = f"t-{uuid.uuid4().hex[:8]}"
    create_topic(broker[1], name, partitions)
    return name


def produce(broker, topic, values, keys=None, batching=True):
    from connectors.pulsar.client import PulsarClient
    payloads = [v if isinstance(v, bytes) else json.dumps(v).encode() for v in values]
    with PulsarClient(broker[0]) as c:
        return c.produce(topic, payloads, keys=keys or [str(i) for i in range(len(values))], batching=batching)


SCHEMA = [{"name": "id", "type": "int"}, {"name": "amount", "type": "float"}]


def doc(broker, topics, fmt="json", schema=SCHEMA, pipeline_id="pulsar-drain", **config):
    d = {"kind": "pipeline", "version": "1.0", "id": pipeline_id, "nodes": [
        {"id": "events", "kind": "source", "connector": "pulsar_consumer",
         "config": {"serviceUrl": broker[0], "topics": topics, "format": fmt, "receiveTimeoutMs": 1500, **config}},
        {"id": "out", "kind": "target", "input": "events", "schema": "public.events", "loadMode": "append"}],
        "errorHandling": {"dlq": {"enabled": True, "table": "dlq.pulsar"}}}
    if schema is not None:
        d["nodes"][0]["schema"] = schema
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


def backlog(broker, topic, sub):
    from connectors.pulsar.client import subscription_backlog
    return subscription_backlog(broker[1], topic, sub)


def wait_backlog(broker, topic, sub, want):
    deadline = time.monotonic() + 60
    while (seen := backlog(broker, topic, sub)) != want:
        assert time.monotonic() < deadline, f"backlog of {sub} on {topic} is {seen}, expected {want}"
        time.sleep(0.2)


def test_drain_reads_every_message_once_across_runs_and_acks_after_the_load(broker, tmp_path):
    a, b = new_topic(broker, 2), new_topic(broker, 0)  # a partitioned and a non-partitioned topic
    wh = tmp_path / "w.duckdb"
    produce(broker, a, [{"id": i, "amount": i * 1.5} for i in range(20)])
    produce(broker, b, [{"id": i, "amount": 1.0} for i in range(100, 105)])
    d = doc(broker, [a, b])
    result = drain(d, wh)
    assert result.status == "completed", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == list(range(20)) + list(range(100, 105))
    sub = "flow-beam-pulsar-drain-events"
    wait_backlog(broker, a, sub, 0)  # acknowledged after the load
    wait_backlog(broker, b, sub, 0)
    produce(broker, a, [{"id": i, "amount": 2.0} for i in range(20, 26)])
    result = drain(d, wh)
    assert result.status == "completed", explain(result)
    assert result.nodes["events"].rowsIn == 6  # only the new messages
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == \
        list(range(26)) + list(range(100, 105))
    result = drain(d, wh)
    assert result.status == "completed" and result.nodes["events"].rowsIn == 0, explain(result)


def test_failed_load_acknowledges_nothing_and_the_next_run_reads_again(broker, tmp_path):
    topic = new_topic(broker, 2)
    wh = tmp_path / "w.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("create schema public; create table public.events(id bigint, other varchar)")  # incompatible
    con.close()
    produce(broker, topic, [{"id": i, "amount": 2.0} for i in range(8)], batching=False)
    d = doc(broker, topic, pipeline_id="pulsar-fail")
    result = drain(d, wh)
    assert result.status == "failed", explain(result)
    assert backlog(broker, topic, "flow-beam-pulsar-fail-events") == 8  # nothing acknowledged
    con = duckdb.connect(str(wh))
    con.execute("drop table public.events")
    con.close()
    result = drain(d, wh)
    assert result.status == "completed", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == list(range(8))
    wait_backlog(broker, topic, "flow-beam-pulsar-fail-events", 0)


def test_bad_messages_reach_the_dlq_with_topic_and_message_id(broker, tmp_path):
    topic = new_topic(broker, 0)
    wh = tmp_path / "w.duckdb"
    ids = produce(broker, topic, [{"id": 1, "amount": 1.0}, b"not json", {"id": "x", "amount": 2.0},
                                  {"id": 4, "amount": 4.0}])
    result = drain(doc(broker, topic, pipeline_id="pulsar-dlq"), wh)
    assert result.status == "completed_with_errors", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == [1, 4]
    rows = query(wh, "select error, row from dlq.pulsar order by error")
    assert len(rows) == 2
    text = " | ".join(r[0] for r in rows)
    for mid in ids[1:3]:
        assert f"#{mid}" in text, (mid, text)
    assert all(json.loads(r[1])["topic"].endswith(topic) for r in rows)
    assert any(json.loads(r[1]).get("raw") == "not json" for r in rows)
    result = drain(doc(broker, topic, pipeline_id="pulsar-dlq"), wh)  # bad messages are acknowledged too
    assert result.status == "completed" and result.nodes["events"].rowsIn == 0, explain(result)


def test_every_format(broker, tmp_path):
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
        topic = new_topic(broker, 0)
        wh = tmp_path / f"{fmt}.duckdb"
        produce(broker, topic, values)
        result = drain(doc(broker, topic, fmt, schema=None, **extra), wh)
        assert result.status == "completed", (fmt, explain(result))
        cols = "c0, c1" if fmt == "csv" else "id, name"
        assert sorted(query(wh, f"select {cols} from public.events")) == want, fmt
    topic = new_topic(broker, 0)
    wh = tmp_path / "raw.duckdb"
    ids = produce(broker, topic, [b"hello", b"world"], keys=["k1", "k2"])
    result = drain(doc(broker, topic, "raw", schema=None), wh)
    assert result.status == "completed", explain(result)
    rows = query(wh, "select key, value, message_id from public.events order by value")
    assert rows == [("k1", "hello", ids[0]), ("k2", "world", ids[1])]


def test_unreachable_broker_is_a_clear_error(tmp_path):
    pytest.importorskip("pulsar")
    result = drain(doc(("pulsar://127.0.0.1:9", ""), "t"), tmp_path / "w.duckdb")
    assert result.status == "failed" and "cannot reach the Pulsar broker" in result.error, explain(result)
    assert "Traceback" not in result.error


# ---- streaming on Prism ------------------------------------------------------------------------------------
@pytest.fixture
def prism():
    from flow_beam.runners import RunnerError, beam_args
    try:
        beam_args("prism")
    except RunnerError as exc:
        pytest.skip(str(exc))


EVENTS = [{"id": i, "user": "ab"[i % 2], "amount": i, "ts": T0 + 7 * i} for i in range(40)]


def stream_doc(broker, topic, window=None, pipeline_id="pulsar-stream"):
    source = {"id": "src", "kind": "source", "connector": "pulsar_consumer",
              "config": {"serviceUrl": broker[0], "topics": topic},
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
            "errorHandling": {"dlq": {"enabled": True, "table": "dlq.pulsar"}}}


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
def test_streaming_windowed_aggregate_on_prism_and_a_second_run_resumes_from_the_acks(broker, prism, tmp_path):
    topic = new_topic(broker, 2)
    wh = tmp_path / "w.duckdb"
    produce(broker, topic, EVENTS[:30] + [b"not json"])
    d = stream_doc(broker, topic, {"type": "fixed", "size": "1m"}, pipeline_id="pulsar-win")
    result = stream_run(d, wh)
    assert result.status in ("completed", "completed_with_errors"), explain(result)
    got = {(u, s): (t, n) for u, s, t, n in query(
        wh, "select user, epoch(window_start)::bigint, total, n from public.totals")}
    assert got == totals(EVENTS[:30])
    assert query(wh, "select count(*) from dlq.pulsar") == [(1,)]
    left = backlog(broker, topic, "flow-beam-pulsar-win-src")
    assert left < 31 and left is not None  # acknowledged as windows became final
    produce(broker, topic, EVENTS[30:], keys=[str(i) for i in range(30, 40)])
    result = stream_run(d, wh)
    assert result.status in ("completed", "completed_with_errors"), explain(result)
    assert 10 <= result.nodes["src"].rowsIn <= 41 - 10, explain(result)  # resumed, not from the start
    got = {(u, s): (t, n) for u, s, t, n in query(
        wh, "select user, epoch(window_start)::bigint, total, n from public.totals")}
    assert got == totals(EVENTS)


@pytest.mark.slow
def test_streaming_unwindowed_appends_each_message_once(broker, prism, tmp_path):
    topic = new_topic(broker, 2)
    wh = tmp_path / "w.duckdb"
    produce(broker, topic, EVENTS[:20])
    d = stream_doc(broker, topic, pipeline_id="pulsar-append")
    result = stream_run(d, wh)
    assert result.status == "completed", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == list(range(20))
    produce(broker, topic, EVENTS[20:], keys=[str(i) for i in range(20, 40)])
    result = stream_run(d, wh)
    assert result.status == "completed", explain(result)
    assert sorted(r[0] for r in query(wh, "select id from public.events")) == list(range(40))


def crash_events(start, stop):
    """Event i at T0 + 5 i s; every 7th has a late twin 45 s in the past (within the 2-minute allowed lateness)."""
    out = []
    for i in range(start, stop):
        out.append({"id": i, "user": "abcd"[i % 4], "amount": i % 13 + 1, "ts": T0 + 5 * i})
        if i % 7 == 3:
            out.append({"id": 10_000 + i, "user": "abcd"[(i + 1) % 4], "amount": 100, "ts": T0 + 5 * i - 45})
    return out


@pytest.mark.slow
def test_streaming_windowed_upsert_survives_a_crash_and_a_restart(broker, prism, tmp_path):
    """A streaming run in its own process is killed (SIGKILL) once it acknowledged something; the rest of the
    events are published; a second run until idle: the PostgreSQL table equals the aggregates of every event and
    the second run read exactly the messages that were not acknowledged."""
    import signal
    import subprocess
    import sys

    import psycopg

    from tests.pg_util import fresh_database

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    topic = new_topic(broker, 2)
    sub = "crash-test"
    first, second = crash_events(0, 240), crash_events(240, 400)
    d = stream_doc(broker, topic, {"type": "fixed", "size": "1m", "allowedLateness": "2m"}, "pulsar-crash")
    d["nodes"][0]["config"]["subscription"] = sub
    ids = produce(broker, topic, first, keys=[e["user"] for e in first], batching=False)
    per_partition = defaultdict(int)
    for mid in ids:  # "(ledger,entry,partition,batch index)"
        per_partition[int(mid.strip("()").split(",")[2])] += 1

    def acked() -> int:
        """Messages acknowledged, once every partition has the subscription (each reader subscribes its own)."""
        done = 0
        for partition, n in per_partition.items():
            left = backlog(broker, f"{topic}-partition-{partition}", sub)
            if left is None:
                return 0
            done += n - left
        return done

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
            while time.monotonic() < deadline and acked() == 0:
                assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
                time.sleep(1)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # a crash: no shutdown, prism dies with it
            proc.wait()
        after_crash = acked()
        assert 0 < after_crash < len(first), "the first run acknowledged some messages, not all"
        assert table(url), "panes were written before the crash"
        produce(broker, topic, second, keys=[e["user"] for e in second], batching=False)
        result = run_document(d, RunOptions(runner="prism", warehouse=url, stop_after_idle_s=4))
        assert result.status == "completed", explain(result)
        assert result.nodes["src"].rowsIn == len(first) + len(second) - after_crash  # resumed at the acks
        assert table(url) == totals(first + second)
