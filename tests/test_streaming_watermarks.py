"""The streaming Kafka reader never makes on-time events late (issue 12): a topic with several partitions read at
uneven speeds (one holds most of the events, one a few, one none), default window settings (no allowedLateness),
streaming on Prism and on the real Flink cluster: the table holds the aggregate of every event, `rowsLate` is 0.

Before the source-wide watermark (connectors/streams.py, *Time model*) Prism kept the watermark the last
partition's bundle reported, so a fast partition's watermark made the slow partition's earlier windows late and
Beam dropped them without a count (28–52 % of the rows at 100,000–200,000 events).

And rows that really are late (their window closed before they were read) are counted in `rowsLate` and written to
the DLQ, never dropped silently."""
import json
import os
import time
import uuid
from collections import defaultdict

import pytest

from flow_beam.running import RunOptions, run_document

pytestmark = [pytest.mark.infra, pytest.mark.slow]
T0 = 1767225600  # 2026-01-01T00:00:00Z
USERS = [f"u{k}" for k in range(8)]


def need(runner):
    from flow_beam.runners import RunnerError, beam_args
    servers = os.environ.get("FLOW_BEAM_KAFKA")
    if not servers:
        pytest.skip("Kafka not running: bash scripts/kafka.sh start && eval \"$(bash scripts/kafka.sh env)\"")
    master = None
    if runner == "flink":
        master = os.environ.get("FLOW_BEAM_FLINK_MASTER")
        if not master:
            pytest.skip("no Flink cluster: bash scripts/flink.sh start && eval \"$(bash scripts/flink.sh env)\"")
    try:
        beam_args(runner, flink_master=master)
    except RunnerError as exc:
        pytest.skip(str(exc))
    return servers, master


def topic(servers, partitions):
    from kafka.admin import KafkaAdminClient, NewTopic
    name = f"wm-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    admin.close()
    return name


def produce(servers, name, placed):
    """placed: [(partition, event)] sent in this order."""
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=20, batch_size=512 * 1024)
    for part, e in placed:
        producer.send(name, partition=part, value=json.dumps(e, separators=(",", ":")).encode())
    producer.flush()
    producer.close()


def doc(servers, name, dlq=False):
    out = {"kind": "pipeline", "version": "1.0", "id": "wm-per-minute", "nodes": [
        {"id": "events", "kind": "source", "connector": "kafka_consumer",
         "config": {"bootstrapServers": servers, "topics": name, "groupId": f"g-{name}",
                    "startingOffsets": "earliest", "format": "json"},
         "schema": [{"name": "id", "type": "int"}, {"name": "user", "type": "string"},
                    {"name": "amount", "type": "int"}, {"name": "ts", "type": "int"}],
         "eventTime": {"field": "ts", "format": "epoch_s"}},
        {"id": "per_minute", "kind": "transform", "input": "events", "ops": [
            {"op": "aggregate", "groupBy": ["user"],
             "aggregations": [{"field": "amount", "fn": "sum", "as": "total"}, {"fn": "count", "as": "n"}],
             "window": {"type": "fixed", "size": "1m"}}]},
        {"id": "out", "kind": "target", "input": "per_minute", "schema": "public.per_minute",
         "loadMode": "upsert", "upsertKey": ["user", "window_start"]}]}
    if dlq:
        out["errorHandling"] = {"dlq": {"enabled": True, "table": "dlq.wm"}}
    return out


def expected(events):
    agg = defaultdict(lambda: [0, 0])
    for e in events:
        a = agg[(e["user"], e["ts"] - e["ts"] % 60)]
        a[0] += e["amount"]
        a[1] += 1
    return {k: tuple(v) for k, v in agg.items()}


def table(db):
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute('SELECT "user", CAST(epoch(window_start) AS BIGINT), total, n FROM public.per_minute')
        return {(u, int(s)): (int(t), int(n)) for u, s, t, n in rows.fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize("runner", ["prism", "flink"])
def test_uneven_partitions_lose_no_row_with_default_settings(tmp_path, runner):
    servers, master = need(runner)
    name = topic(servers, 4)
    # 60,000 events over 50 minutes of event time; partition 0 gets 5/8 of them, 1 gets 2/8, 2 gets 1/8, 3 none:
    # partition 0 needs several polls while 1 and 2 catch up at once
    events = [{"id": i, "user": USERS[i % 8], "amount": i % 17 + 1, "ts": T0 + i // 20} for i in range(60_000)]
    produce(servers, name, [((0 if i % 8 < 5 else 1 if i % 8 < 7 else 2), e) for i, e in enumerate(events)])
    db = tmp_path / "w.duckdb"
    result = run_document(doc(servers, name), RunOptions(runner=runner, warehouse=f"duckdb://{db}",
                                                         stop_after_idle_s=3, flink_master=master))
    assert result.status == "completed", result.error
    assert result.nodes["events"].rowsIn == len(events)
    assert result.nodes["per_minute"].rowsLate == 0
    assert table(db) == expected(events)


def committed(servers, name, group, partition) -> int:
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
    try:
        return c.committed(TopicPartition(name, partition)) or 0
    finally:
        c.close()


def test_really_late_rows_are_counted_and_sent_to_the_dlq(tmp_path, monkeypatch):
    """Rows read after their window closed (a partition that was caught up and empty receives old events once
    the run has committed offsets of the other partition, i.e. its windows are final): counted in rowsLate and
    written to the DLQ, the table keeps the on-time rows."""
    servers, _ = need("prism")
    monkeypatch.setenv("FLOW_BEAM_COMMIT_EVERY_S", "1")
    name = topic(servers, 2)
    on_time = [{"id": i, "user": USERS[i % 8], "amount": 1, "ts": T0 + 10 * i} for i in range(400)]  # 66 min
    late = [{"id": 10_000 + i, "user": "late", "amount": 5, "ts": T0 + i} for i in range(30)]  # the first minute
    produce(servers, name, [(0, e) for e in on_time])
    db = tmp_path / "w.duckdb"
    import threading

    def late_producer():  # once partition 0's first windows are final (so the watermark is past minute 0)
        deadline = time.monotonic() + 120
        while committed(servers, name, f"g-{name}", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        produce(servers, name, [(1, e) for e in late])
    t = threading.Thread(target=late_producer)
    t.start()
    result = run_document(doc(servers, name, dlq=True), RunOptions(runner="prism", warehouse=f"duckdb://{db}",
                                                                   stop_after_idle_s=30))
    t.join()
    # rows written to the DLQ make the run completed_with_errors (as for any DLQ'd row)
    assert result.status == "completed_with_errors", (result.error, result.nodes)
    assert result.nodes["events"].rowsIn == len(on_time) + len(late)
    assert result.nodes["per_minute"].rowsLate == len(late)
    assert any("late row" in w for w in result.nodes["per_minute"].warnings)
    got = table(db)
    assert got == expected(on_time)
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT node_id, error, row FROM dlq.wm").fetchall()
    finally:
        con.close()
    assert len(rows) == len(late) and all(r[0] == "per_minute" and r[1].startswith("late:") for r in rows)
    assert sorted(json.loads(r[2])["id"] for r in rows) == [e["id"] for e in late]
