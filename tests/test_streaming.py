"""Streaming on real components: Kafka (scripts/kafka.sh), Prism (scripts/prism.sh), the real Flink cluster
(scripts/flink.sh: JobManager + TaskManager on 127.0.0.1:8081, Flink checkpoints every 10 s) and PostgreSQL
(scripts/postgres.sh).

The crash test: a producer writes events with event times (some of them late) to a two-partition topic; a
streaming run (a separate process: the pipeline's Python worker, LOOPBACK) windows, aggregates and upserts into
PostgreSQL; the test kills it part-way (SIGKILL, no clean shutdown; on Flink the job left on the cluster is
cancelled through Flink's REST API), writes the rest of the events, runs again until the topic is idle (on Flink
that idle stop needs --shutdown_sources_after_idle_ms, which flow-beam sets), and checks the table equals the
aggregates of every event — no loss, no double counting — and that the second run resumed from the offsets the
first one committed."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import pytest

from flow_beam.running import RunOptions, run_document
from tests.pg_util import fresh_database

pytestmark = [pytest.mark.infra, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0 = 1767225600  # 2026-01-01T00:00:00Z
USERS = ["ann", "bob", "cid", "dee"]


@pytest.fixture
def kafka():
    servers = os.environ.get("FLOW_BEAM_KAFKA")
    if not servers:
        pytest.skip("Kafka not running: bash scripts/kafka.sh start && eval \"$(bash scripts/kafka.sh env)\"")
    from kafka.admin import KafkaAdminClient, NewTopic
    topic = f"clicks-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    return servers, topic


def need(runner: str) -> str | None:
    """Skips when the runner's component is missing; flink means the real cluster: returns its master."""
    from flow_beam.runners import RunnerError, beam_args
    master = None
    if runner == "flink":
        master = os.environ.get("FLOW_BEAM_FLINK_MASTER")
        if not master:
            pytest.skip("no Flink cluster: bash scripts/flink.sh start && eval \"$(bash scripts/flink.sh env)\"")
    try:
        beam_args(runner, flink_master=master)
    except RunnerError as exc:
        pytest.skip(str(exc))
    return master


@pytest.fixture(autouse=True)
def _prism():
    need("prism")


def events(start: int, stop: int) -> list[dict]:
    """Event i happens at T0 + 5 i seconds; every 7th event also has a late twin 45 s in the past (within the
    2-minute allowed lateness, so it must be counted)."""
    out = []
    for i in range(start, stop):
        out.append({"id": i, "user": USERS[i % 4], "amount": i % 13 + 1, "ts": T0 + 5 * i})
        if i % 7 == 3:
            out.append({"id": 10_000 + i, "user": USERS[(i + 1) % 4], "amount": 100, "ts": T0 + 5 * i - 45})
    return out


def produce(servers, topic, rows):
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=servers)
    for r in rows:
        producer.send(topic, key=r["user"].encode(), value=json.dumps(r).encode())
    producer.flush()
    producer.close()


def expected(rows) -> dict:
    agg = defaultdict(lambda: [0, 0])
    for r in rows:
        start = r["ts"] - r["ts"] % 60
        agg[(r["user"], start)][0] += r["amount"]
        agg[(r["user"], start)][1] += 1
    return {k: tuple(v) for k, v in agg.items()}


def doc(servers, topic, group):
    return {"kind": "pipeline", "version": "1.0", "id": "clicks-per-minute", "nodes": [
        {"id": "clicks", "kind": "source", "connector": "kafka_consumer",
         "config": {"bootstrapServers": servers, "topics": topic, "groupId": group,
                    "startingOffsets": "committed", "format": "json"},
         "schema": [{"name": "id", "type": "int"}, {"name": "user", "type": "string"},
                    {"name": "amount", "type": "int"}, {"name": "ts", "type": "int"}],
         "eventTime": {"field": "ts", "format": "epoch_s"}},
        {"id": "per_minute", "kind": "transform", "input": "clicks", "ops": [
            {"op": "aggregate", "groupBy": ["user"],
             "aggregations": [{"field": "amount", "fn": "sum", "as": "total"}, {"fn": "count", "as": "clicks"}],
             "window": {"type": "fixed", "size": "1m", "allowedLateness": "2m"}}]},
        {"id": "out", "kind": "target", "input": "per_minute", "schema": "public.clicks_per_minute",
         "loadMode": "upsert", "upsertKey": ["user", "window_start"]}]}


def table(url) -> dict:
    import psycopg
    with psycopg.connect(url) as con:
        rows = con.execute("SELECT \"user\", window_start, total, clicks FROM public.clicks_per_minute").fetchall()
    out = {}
    for user, start, total, clicks in rows:
        assert (user, start) not in out, f"two rows for {user} {start}"
        out[(user, _epoch(start))] = (total, clicks)
    return out


def _epoch(value) -> int:
    import datetime as dt
    return int((value - dt.datetime(1970, 1, 1)).total_seconds())


def committed(servers, topic, group) -> int:
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
    try:
        return sum(c.committed(TopicPartition(topic, p)) or 0 for p in (0, 1))
    finally:
        c.close()


def frontier(url) -> int | None:
    import psycopg
    try:
        with psycopg.connect(url) as con:
            row = con.execute("SELECT frontier_us FROM _flow_frontier").fetchone()
            return row[0] if row else None
    except psycopg.Error:
        return None


def flink_checkpoints(master, name) -> int:
    """Completed Flink checkpoints of the running job with this name."""
    from flow_beam.runners import flink_rest
    jobs = [j for j in flink_rest(master, "GET", "/jobs/overview")["jobs"] if j["name"] == name]
    return sum(flink_rest(master, "GET", f"/jobs/{j['jid']}/checkpoints")["counts"]["completed"] for j in jobs)


def cancel_flink_job(master, name):
    from flow_beam.runners import flink_cancel, flink_rest
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        flink_cancel(master, job_name=name)
        jobs = [j for j in flink_rest(master, "GET", "/jobs/overview")["jobs"] if j["name"] == name]
        if all(j["state"] in ("CANCELED", "FAILED", "FINISHED") for j in jobs):
            return
        time.sleep(1)
    raise AssertionError(f"the Flink job {name} did not stop")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("runner", ["prism", "flink"])
def test_windowed_upsert_survives_a_crash_and_a_restart(kafka, tmp_path, runner):
    master = need(runner)
    servers, topic = kafka
    group = f"g-{topic}"
    first, second = events(0, 240), events(240, 400)
    with fresh_database() as url:
        path = tmp_path / "clicks.json"
        path.write_text(json.dumps(doc(servers, topic, group)))
        produce(servers, topic, first)
        env = {**os.environ, "FLOW_BEAM_COMMIT_EVERY_S": "1", "PYTHONPATH": ROOT}
        cmd = [sys.executable, "-m", "flow_beam", "run", str(path), "--runner", runner, "--warehouse", url]
        job = f"crash-{topic}"
        if master:
            cmd += ["--flink-master", master, "--", f"--job_name={job}"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "run1.log", "w"))
        try:
            # up to 300 s before the first commit on Flink: a first submission whose readers Flink never starts is
            # cancelled after 60 s and submitted again (running.py), and a partition Flink starts late holds the
            # source's watermark for up to 120 s (connectors/streams.py): seen together once here under load
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and (committed(servers, topic, group) == 0 or (
                    master and not flink_checkpoints(master, job))):
                assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
                time.sleep(1)
            assert not master or flink_checkpoints(master, job), "Flink completed a checkpoint before the crash"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # a crash: no shutdown hooks, prism dies with it
            proc.wait()
            if master:  # the job on the cluster lost its worker: cancel it (Flink's REST API) so it frees its slot
                cancel_flink_job(master, job)
        after_crash = committed(servers, topic, group)
        assert 0 < after_crash < len(first), "the first run committed some offsets, not all"
        assert frontier(url) is not None
        partial = table(url)
        assert partial, "panes were written before the crash"

        produce(servers, topic, second)
        result = run_document(json.loads(path.read_text()),
                              RunOptions(runner=runner, warehouse=url, stop_after_idle_s=4, flink_master=master))
        assert result.status == "completed", result.error
        # resumed from the committed offsets: the second run did not read the topic from the start
        assert result.nodes["clicks"].rowsIn == len(first) + len(second) - after_crash
        assert table(url) == expected(first + second)


def test_direct_drain_and_prism_streaming_give_the_same_table(kafka, tmp_path):
    servers, topic = kafka
    produce(servers, topic, events(0, 120))
    tables = {}
    for runner in ("direct", "prism"):
        with fresh_database() as url:
            opts = RunOptions(runner=runner, warehouse=url, stop_after_idle_s=3)
            result = run_document(doc(servers, topic, f"g-{runner}-{topic}"), opts)
            assert result.status == "completed", result.error
            tables[runner] = table(url)
    assert tables["prism"] == tables["direct"] == expected(events(0, 120))


def test_streaming_needs_a_streaming_runner(kafka, tmp_path):
    servers, topic = kafka
    result = run_document(doc(servers, topic, "g"), RunOptions(runner="direct", streaming=True,
                                                               warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "failed" and "--runner prism" in result.error
