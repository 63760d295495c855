"""A windowed join of two Kafka streams (issue 12), streaming on Prism and on the real Flink cluster: orders and
payments meet only when they share the key AND the 1-minute window; the table equals the join computed here."""
import json
import os
import uuid

import duckdb
import pytest

from flow_beam.running import RunOptions, run_document

pytestmark = [pytest.mark.infra, pytest.mark.slow]
T0 = 1767225600  # 2026-01-01T00:00:00Z


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


def topic_with(servers, rows):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    name = f"join-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=servers)
    for r in rows:
        producer.send(name, key=str(r["order_id"]).encode(), value=json.dumps(r).encode())
    producer.flush()
    producer.close()
    return name


def source(node_id, servers, topic, fields):
    return {"id": node_id, "kind": "source", "connector": "kafka_consumer",
            "config": {"bootstrapServers": servers, "topics": topic, "groupId": f"g-{topic}",
                       "startingOffsets": "earliest", "format": "json"},
            "schema": [{"name": n, "type": t} for n, t in fields], "eventTime": {"field": "ts", "format": "epoch_s"}}


def orders_payments_join(doc_id, servers, orders, payments):
    """Topics of ``orders`` and ``payments`` (fields typed from the first row) joined on order_id in 1-minute
    windows, order_id/amount/paid appended to public.paid."""
    def fields(rows):
        return [(k, "string" if isinstance(v, str) else "int") for k, v in rows[0].items()]
    return {"kind": "pipeline", "version": "1.0", "id": doc_id, "nodes": [
        source("orders", servers, topic_with(servers, orders), fields(orders)),
        source("payments", servers, topic_with(servers, payments), fields(payments)),
        {"id": "paid", "kind": "join", "inputs": ["orders", "payments"], "type": "inner", "on": ["order_id"],
         "select": {"orders": ["order_id", "amount"], "payments": ["paid"]},
         "window": {"type": "fixed", "size": "1m"}},
        {"id": "out", "kind": "target", "input": "paid", "schema": "public.paid", "loadMode": "append"}]}


@pytest.mark.parametrize("runner", ["prism", "flink"])
def test_windowed_join_of_two_streams(tmp_path, runner):
    servers, master = need(runner)
    orders = [{"order_id": i, "customer": f"c{i % 7}", "amount": i + 1, "ts": T0 + 10 * i} for i in range(60)]
    # a payment 5 s after its order (same minute), except every third: 70 s after (the next minute: no match)
    payments = [{"order_id": i, "paid": (i + 1) * 10, "ts": T0 + 10 * i + (70 if i % 3 == 2 else 5)}
                for i in range(60)]
    doc = {"kind": "pipeline", "version": "1.0", "id": "orders-paid", "nodes": [
        source("orders", servers, topic_with(servers, orders),
               [("order_id", "int"), ("customer", "string"), ("amount", "int"), ("ts", "int")]),
        source("payments", servers, topic_with(servers, payments), [("order_id", "int"), ("paid", "int"),
                                                                    ("ts", "int")]),
        {"id": "paid", "kind": "join", "inputs": ["orders", "payments"], "type": "inner", "on": ["order_id"],
         "select": {"orders": ["order_id", "customer", "amount"], "payments": ["paid"]},
         "window": {"type": "fixed", "size": "1m"}},
        {"id": "out", "kind": "target", "input": "paid", "schema": "public.paid_orders", "loadMode": "upsert",
         "upsertKey": ["order_id"]}]}
    db = tmp_path / "w.duckdb"
    result = run_document(doc, RunOptions(runner=runner, warehouse=f"duckdb://{db}", stop_after_idle_s=3,
                                          flink_master=master))
    assert result.status == "completed", (result.error, {k: (v.status, v.error) for k, v in result.nodes.items()})
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = sorted(con.execute("SELECT order_id, customer, amount, paid FROM public.paid_orders").fetchall())
    finally:
        con.close()
    assert got == [(i, f"c{i % 7}", i + 1, (i + 1) * 10) for i in range(60) if i % 3 != 2]
    assert result.nodes["paid"].rowsLate == 0
