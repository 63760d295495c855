"""Streaming runs on Prism against the real Kafka broker (scripts/kafka.sh), into DuckDB: each window type and
trigger, windowed deduplicate, bad messages to the DLQ, the kafka_producer sink, cdc_mirror from a topic,
Avro through a schema registry (a local HTTP server speaking the registry's GET /schemas/ids/{id}) and
partitions added while the job runs. Every run ends on its own once the topic is idle (--stop-after-idle)."""
import io
import json
import os
import threading
import time
import uuid
from collections import defaultdict

import duckdb
import pytest

from flow_beam.running import RunOptions, run_document

pytestmark = [pytest.mark.infra, pytest.mark.slow]
T0 = 1767225600  # 2026-01-01T00:00:00Z


@pytest.fixture
def servers():
    s = os.environ.get("FLOW_BEAM_KAFKA")
    if not s:
        pytest.skip("Kafka not running: bash scripts/kafka.sh start && eval \"$(bash scripts/kafka.sh env)\"")
    from flow_beam.runners import RunnerError, beam_args
    try:
        beam_args("prism")
    except RunnerError as exc:
        pytest.skip(str(exc))
    return s


def new_topic(servers, partitions=1):
    from kafka.admin import KafkaAdminClient, NewTopic
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()
    return topic


def produce(servers, topic, values, partition=None, key=None):
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=servers)
    for v in values:
        data = v if isinstance(v, bytes) else json.dumps(v).encode()
        producer.send(topic, value=data, partition=partition, key=key(v).encode() if key else None)
    producer.flush()
    producer.close()


SCHEMA = [{"name": "id", "type": "int"}, {"name": "user", "type": "string"}, {"name": "amount", "type": "int"},
          {"name": "ts", "type": "int"}]


def source(servers, topic, **config):
    return {"id": "src", "kind": "source", "connector": "kafka_consumer",
            "config": {"bootstrapServers": servers, "topics": topic, "groupId": f"g-{topic}",
                       "startingOffsets": "earliest", **config},
            "schema": SCHEMA, "eventTime": {"field": "ts", "format": "epoch_s"}}


def pipeline(nodes, **extra):
    return {"kind": "pipeline", "version": "1.0", "id": "stream-modes", "nodes": nodes, **extra}


def run(doc, tmp_path, idle=2.5):
    wh = tmp_path / "w.duckdb"
    result = run_document(doc, RunOptions(runner="prism", warehouse=f"duckdb://{wh}", stop_after_idle_s=idle))
    return result, wh


def query(wh, sql):
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


EVENTS = [{"id": i, "user": "ab"[i % 2], "amount": i, "ts": T0 + 7 * i} for i in range(40)]


def agg_target(window, load="upsert"):
    return [{"id": "agg", "kind": "transform", "input": "src", "ops": [
        {"op": "aggregate", "groupBy": ["user"], "window": window,
         "aggregations": [{"field": "amount", "fn": "sum", "as": "total"}, {"fn": "count", "as": "n"}]}]},
        {"id": "out", "kind": "target", "input": "agg", "schema": "public.totals", "loadMode": load,
         **({"upsertKey": ["user", "window_start"]} if load == "upsert" else {})}]


def test_sliding_windows_count_every_event_once_per_window(servers, tmp_path):
    topic = new_topic(servers)
    produce(servers, topic, EVENTS)
    result, wh = run(pipeline([source(servers, topic)] + agg_target(
        {"type": "sliding", "size": "1m", "period": "30s"})), tmp_path)
    assert result.status == "completed", (result.status, result.error, {k: (v.status, v.warnings, v.error) for k, v in result.nodes.items()})
    want = defaultdict(int)
    for e in EVENTS:
        last = e["ts"] - e["ts"] % 30
        for start in (last, last - 30):
            want[(e["user"], start)] += e["amount"]
    got = {(u, s): t for u, s, t in query(wh, "select user, epoch(window_start)::bigint, total from public.totals")}
    assert got == dict(want)


def test_session_windows_merge_events_closer_than_the_gap(servers, tmp_path):
    topic = new_topic(servers)
    times = [0, 10, 20, 100, 105, 300]  # sessions (gap 30s): [0, 50), [100, 135), [300, 330)
    produce(servers, topic, [{"id": i, "user": "a", "amount": 1, "ts": T0 + t} for i, t in enumerate(times)])
    result, wh = run(pipeline([source(servers, topic)] + agg_target({"type": "session", "gap": "30s"})), tmp_path)
    assert result.status == "completed", (result.status, result.error, {k: (v.status, v.warnings, v.error) for k, v in result.nodes.items()})
    rows = query(wh, "select epoch(window_start)::bigint - 1767225600, epoch(window_end)::bigint - 1767225600, n "
                     "from public.totals order by 1")
    assert rows == [(0, 50, 3), (100, 135, 2), (300, 330, 1)]


def test_global_window_with_a_count_trigger_appends_a_pane_per_n_rows(servers, tmp_path):
    topic = new_topic(servers)
    produce(servers, topic, [{"id": i, "user": "a", "amount": 1, "ts": T0 + i} for i in range(9)])
    window = {"type": "global", "trigger": {"type": "after_count", "count": 3, "accumulation": "discarding"}}
    result, wh = run(pipeline([source(servers, topic)] + agg_target(window, load="append")), tmp_path)
    assert result.status == "completed", (result.status, result.error, {k: (v.status, v.warnings, v.error) for k, v in result.nodes.items()})
    assert query(wh, "select n from public.totals") == [(3,), (3,), (3,)]


def test_a_count_trigger_into_an_upsert_keeps_the_whole_window(servers, tmp_path):
    """Found by a probe: a trigger without `accumulation` fired discarding panes (the old default), and the upsert
    by window kept only the last pane's rows (n=1 of 5), status completed. Accumulating is the default now."""
    topic = new_topic(servers)
    times = [0, 5, 10, 20, 30, 65, 70, 80]  # 5 events in minute 0, 3 in minute 1
    produce(servers, topic, [{"id": i, "user": "a", "amount": i + 1, "ts": T0 + t} for i, t in enumerate(times)])
    window = {"type": "fixed", "size": "1m", "trigger": {"type": "after_count", "count": 2}}
    result, wh = run(pipeline([source(servers, topic)] + agg_target(window)), tmp_path)
    assert result.status == "completed", (result.status, result.error)
    assert query(wh, "select epoch(window_start)::bigint - 1767225600, n, total from public.totals order by 1") == [
        (0, 5, 15), (60, 3, 21)]


def test_windowed_deduplicate_keeps_one_row_per_key_and_window(servers, tmp_path):
    topic = new_topic(servers)
    rows = [{"id": i % 3, "user": "a", "amount": i, "ts": T0 + i} for i in range(9)] + [
        {"id": 0, "user": "a", "amount": 99, "ts": T0 + 70}]  # same id, next minute: kept
    produce(servers, topic, rows)
    nodes = [source(servers, topic),
             {"id": "dd", "kind": "transform", "input": "src", "ops": [
                 {"op": "deduplicate", "keys": ["id"], "window": {"type": "fixed", "size": "1m"}}]},
             {"id": "out", "kind": "target", "input": "dd", "schema": "public.ids", "loadMode": "append"}]
    result, wh = run(pipeline(nodes), tmp_path)
    assert result.status == "completed", (result.status, result.error, {k: (v.status, v.warnings, v.error) for k, v in result.nodes.items()})
    assert query(wh, "select id, count(*) from public.ids group by id order by id") == [(0, 2), (1, 1), (2, 1)]


def test_bad_messages_go_to_the_dlq_while_streaming(servers, tmp_path):
    topic = new_topic(servers)
    produce(servers, topic, [EVENTS[0], b"{not json", {"id": "x", "user": "a", "amount": 1, "ts": T0}, EVENTS[1]])
    nodes = [source(servers, topic),
             {"id": "out", "kind": "target", "input": "src", "schema": "public.raw", "loadMode": "append"}]
    result, wh = run(pipeline(nodes, errorHandling={"dlq": {"enabled": True, "table": "dlq.stream"}}), tmp_path)
    assert result.status == "completed_with_errors", result.error
    assert sorted(r[0] for r in query(wh, "select id from public.raw")) == [0, 1]
    errors = [r[0] for r in query(wh, "select error from dlq.stream")]
    assert len(errors) == 2 and all(topic in e for e in errors)


def test_kafka_producer_sink_writes_keyed_messages(servers, tmp_path):
    topic, out_topic = new_topic(servers), new_topic(servers)
    produce(servers, topic, EVENTS[:6])
    nodes = [source(servers, topic),
             {"id": "t", "kind": "transform", "input": "src", "ops": [
                 {"op": "expression", "field": "double", "expr": "amount * 2"}]},
             {"id": "out", "kind": "target", "input": "t", "connector": "kafka_producer",
              "config": {"bootstrapServers": servers, "topic": out_topic, "key": "user", "format": "json"}}]
    result, _ = run(pipeline(nodes), tmp_path)
    assert result.status == "completed", (result.status, result.error, {k: (v.status, v.warnings, v.error) for k, v in result.nodes.items()})
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(out_topic, bootstrap_servers=servers, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    got = sorted((m.key.decode(), json.loads(m.value)["double"]) for m in consumer)
    consumer.close()
    assert got == sorted((e["user"], e["amount"] * 2) for e in EVENTS[:6])


def test_cdc_mirror_from_a_topic(servers, tmp_path):
    topic = new_topic(servers)

    def ev(op, lsn, before=None, after=None):
        return {"op": op, "before": before, "after": after, "source": {"lsn": lsn}, "ts_ms": lsn}
    changes = [ev("c", 1, after={"id": 1, "name": "ann"}), ev("c", 2, after={"id": 2, "name": "bob"}),
               ev("u", 3, {"id": 1, "name": "ann"}, {"id": 1, "name": "anna"}), ev("d", 4, {"id": 2, "name": "bob"}),
               ev("c", 5, after={"id": 3, "name": "cid"})]
    produce(servers, topic, changes)
    nodes = [{"id": "cdc", "kind": "source", "connector": "kafka_consumer",
              "config": {"bootstrapServers": servers, "topics": topic, "groupId": f"g-{topic}",
                         "startingOffsets": "earliest"}},
             {"id": "mirror", "kind": "target", "input": "cdc", "schema": "public.people", "loadMode": "cdc_mirror",
              "cdcSource": "cdc", "upsertKey": "id", "lineage": False}]
    result, wh = run(pipeline(nodes), tmp_path)
    assert result.status == "completed", (result.status, result.error, {k: (v.status, v.warnings, v.error) for k, v in result.nodes.items()})
    assert query(wh, "select id, name from public.people order by id") == [(1, "anna"), (3, "cid")]


def test_avro_messages_through_a_schema_registry(servers, tmp_path):
    import fastavro
    from http.server import BaseHTTPRequestHandler, HTTPServer

    schema = {"type": "record", "name": "Click", "fields": [
        {"name": "id", "type": "long"}, {"name": "user", "type": "string"}, {"name": "amount", "type": "long"},
        {"name": "ts", "type": "long"}]}

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/schemas/ids/7":
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps({"schema": json.dumps(schema)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        topic = new_topic(servers)
        parsed = fastavro.parse_schema(schema)
        framed = []
        for e in EVENTS[:5]:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, parsed, e)
            framed.append(b"\x00" + (7).to_bytes(4, "big") + buf.getvalue())
        produce(servers, topic, framed)
        src = source(servers, topic, format="avro", schemaRegistryUrl=f"http://127.0.0.1:{server.server_port}")
        nodes = [src, {"id": "out", "kind": "target", "input": "src", "schema": "public.clicks", "loadMode": "append"}]
        result, wh = run(pipeline(nodes), tmp_path)
        assert result.status == "completed", (result.status, result.error, {k: (v.status, v.warnings, v.error) for k, v in result.nodes.items()})
        assert query(wh, "select id, user, amount from public.clicks order by id") == [
            (e["id"], e["user"], e["amount"]) for e in EVENTS[:5]]
    finally:
        server.shutdown()


def test_partitions_added_while_the_job_runs_are_read(servers, tmp_path):
    from kafka.admin import KafkaAdminClient, NewPartitions

    topic = new_topic(servers, partitions=1)
    produce(servers, topic, EVENTS[:3], partition=0)
    nodes = [source(servers, topic),
             {"id": "out", "kind": "target", "input": "src", "schema": "public.rows", "loadMode": "append"}]
    box = {}
    worker = threading.Thread(target=lambda: box.update(res=run(pipeline(nodes), tmp_path, idle=16)))
    worker.start()
    time.sleep(4)
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_partitions({topic: NewPartitions(total_count=2)})
    admin.close()
    produce(servers, topic, EVENTS[3:6], partition=1)
    worker.join(timeout=120)
    result, wh = box["res"]
    assert result.status == "completed", (result.status, result.error, {k: (v.status, v.warnings, v.error) for k, v in result.nodes.items()})
    assert sorted(r[0] for r in query(wh, "select id from public.rows")) == [0, 1, 2, 3, 4, 5]


def test_a_source_feeding_windowed_and_plain_targets_commits_what_both_wrote(servers, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOW_BEAM_COMMIT_EVERY_S", "0.3")
    topic = new_topic(servers)
    produce(servers, topic, [{"id": i, "user": "a", "amount": 1, "ts": T0 + 10 * i} for i in range(60)])
    nodes = [source(servers, topic, startingOffsets="committed")] + agg_target({"type": "fixed", "size": "1m"}) + [
        {"id": "raw", "kind": "target", "input": "src", "schema": "public.raw", "loadMode": "append"}]
    result, wh = run(pipeline(nodes), tmp_path)
    assert result.status == "completed", result.error
    assert query(wh, "select count(*) from public.raw") == [(60,)]
    assert query(wh, "select sum(n) from public.totals") == [(60,)]
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=servers, group_id=f"g-{topic}", enable_auto_commit=False)
    committed = consumer.committed(TopicPartition(topic, 0)) or 0
    consumer.close()
    # final windows (all but the last minute or so) were released by the frontier and the plain target's offsets
    assert 0 < committed < 60
