"""kafka_consumer in drain mode against the real broker started by scripts/kafka.sh: a run reads what the
topic holds (two partitions), loads it, and only then commits the offsets; the next run reads only new
messages; a failed load commits nothing, so the following run reads those messages again."""
import json
import os
import uuid

import duckdb
import pytest

from flow_beam.running import RunOptions, run_document

pytestmark = pytest.mark.infra


@pytest.fixture
def kafka():
    servers = os.environ.get("FLOW_BEAM_KAFKA")
    if not servers:
        pytest.skip("Kafka not running: bash scripts/kafka.sh start && eval \"$(bash scripts/kafka.sh env)\"")
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"orders-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    return servers, topic


def produce(servers, topic, events):
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=servers)
    for e in events:
        if isinstance(e, dict):
            producer.send(topic, key=str(e["order_id"]).encode(), value=json.dumps(e).encode())
        else:
            producer.send(topic, key=b"bad", value=e)
    producer.flush()
    producer.close()


def doc(servers, topic):
    return {"kind": "pipeline", "version": "1.0", "id": "kafka-drain", "nodes": [
        {"id": "events", "kind": "source", "connector": "kafka_consumer",
         "config": {"bootstrapServers": servers, "topics": topic, "groupId": f"g-{topic}", "format": "json"},
         "schema": [{"name": "order_id", "type": "int"}, {"name": "amount", "type": "float"}]},
        {"id": "t", "kind": "transform", "input": "events", "ops": [
            {"op": "expression", "field": "amount2", "expr": "amount * 2"}]},
        {"id": "out", "kind": "target", "input": "t", "schema": "public.orders", "loadMode": "append"}],
        "errorHandling": {"dlq": {"enabled": True, "table": "dlq.kafka"}}}


def ids(tmp_path, sql="select order_id from public.orders"):
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        return sorted(r[0] for r in con.execute(sql).fetchall())
    finally:
        con.close()


def test_drain_commits_after_the_load_and_reads_only_new_messages(tmp_path, kafka):
    servers, topic = kafka
    wh = f"duckdb://{tmp_path / 'w.duckdb'}"
    produce(servers, topic, [{"order_id": i, "amount": i * 1.5} for i in range(10)] + [b"not json"])
    result = run_document(doc(servers, topic), RunOptions(warehouse=wh))
    assert result.status == "completed_with_errors", result.error  # the bad message went to the DLQ
    assert ids(tmp_path) == list(range(10))
    assert result.nodes["events"].rowsIn == 11 and result.nodes["events"].rowsQuarantined == 1
    assert ids(tmp_path, "select count(*) from dlq.kafka") == [1]
    produce(servers, topic, [{"order_id": i, "amount": 1.0} for i in range(10, 13)])
    result = run_document(doc(servers, topic), RunOptions(warehouse=wh))
    assert result.status == "completed", result.error
    assert ids(tmp_path) == list(range(13))  # nothing read twice


def test_failed_load_commits_nothing(tmp_path, kafka):
    servers, topic = kafka
    wh = f"duckdb://{tmp_path / 'w.duckdb'}"
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema public; create table public.orders(order_id bigint, other varchar)")
    con.close()
    produce(servers, topic, [{"order_id": i, "amount": 2.0} for i in range(4)])
    result = run_document(doc(servers, topic), RunOptions(warehouse=wh))
    assert result.status == "failed"
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("drop table public.orders")
    con.close()
    result = run_document(doc(servers, topic), RunOptions(warehouse=wh))
    assert result.status == "completed", result.error
    assert ids(tmp_path) == [0, 1, 2, 3]  # the messages of the failed run were read again


def test_unreachable_broker_is_a_clear_error(tmp_path):
    d = doc("127.0.0.1:9", "nope")
    result = run_document(d, RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "failed" and "Kafka" in result.error and "Traceback" not in result.error


def test_a_message_whose_value_does_not_convert_goes_to_the_dlq_as_it_came(tmp_path, kafka):
    """Valid JSON objects are read as one batch (Arrow's exact JSON reader); one whose value does not fit its
    column goes to the DLQ holding the message itself; a decimal stays exact; a column no message carries is
    null."""
    servers, topic = kafka
    wh = f"duckdb://{tmp_path / 'w.duckdb'}"
    d = doc(servers, topic)
    d["nodes"][0]["schema"] += [{"name": "price", "type": "decimal(38,12)"}, {"name": "note", "type": "string"}]
    produce(servers, topic, [{"order_id": i, "amount": 1.0} for i in range(6)] +
            [b'{"order_id": 100, "amount": 2.5, "price": 12345678901234567.123456789012}',
             b'{"order_id": 1.5, "amount": 1.0}'])  # read as a float column by Arrow: 1.5 fails for int
    result = run_document(d, RunOptions(warehouse=wh))
    assert result.status == "completed_with_errors", result.error
    assert ids(tmp_path) == [0, 1, 2, 3, 4, 5, 100]
    assert ids(tmp_path, "select price::varchar from public.orders where order_id = 100") == \
        ["12345678901234567.123456789012"]
    assert ids(tmp_path, "select count(*) from public.orders where note is null") == [7]
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        (error, row), = con.execute("select error, row from dlq.kafka").fetchall()
    finally:
        con.close()
    assert "order_id" in error and json.loads(json.loads(row)["raw"]) == {"order_id": 1.5, "amount": 1.0}
