"""pubsub_subscription sources and pubsub_topic sinks in pipelines, against the Pub/Sub server started by
scripts/pubsub.sh — Google's Pub/Sub emulator, or where it is missing the in-repo stand-in (FLOW_BEAM_PUBSUB_KIND
and pytest's "pubsub:" header line say which): drain mode on the direct runner (acked only after the load committed; a failed run hands the messages
back), streaming on Prism (windowed aggregate, acked once the windows are final), and a topic sink.
On Dataflow the same nodes compile to Beam's ReadFromPubSub / WriteToPubSub (tests/test_deploy.py)."""
import json
import os
import uuid

import duckdb
import pytest

from flow_beam.running import RunOptions, run_document

pytestmark = pytest.mark.infra
T0 = 1767225600


@pytest.fixture
def ps(monkeypatch):
    host = os.environ.get("FLOW_BEAM_PUBSUB")
    if not host:
        pytest.skip("Pub/Sub emulator not running: bash scripts/pubsub.sh start && "
                    "eval \"$(bash scripts/pubsub.sh env)\"")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
    from connectors.pubsub import client as pubsub
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    pubsub.create_topic(topic)
    return pubsub, topic


def send(pubsub, topic, rows):
    pubsub.publish(topic, [(r if isinstance(r, bytes) else json.dumps(r).encode(), {"src": "test"}) for r in rows])


def doc(topic, target):
    return {"kind": "pipeline", "version": "1.0", "id": "pubsub-orders", "nodes": [
        {"id": "orders", "kind": "source", "connector": "pubsub_subscription", "config": {"topic": topic},
         "schema": [{"name": "id", "type": "int"}, {"name": "amount", "type": "int"}, {"name": "ts", "type": "int"}],
         "eventTime": {"field": "ts", "format": "epoch_s"}}, *target],
        "errorHandling": {"dlq": {"enabled": True, "table": "dlq.pubsub"}}}


def rows(wh, sql):
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_drain_acks_after_the_load_and_a_failed_run_hands_messages_back(ps, tmp_path):
    pubsub, topic = ps
    wh = tmp_path / "w.duckdb"
    # the subscription is created by the first run; messages published before it would not reach it
    pubsub.subscription_path(type("C", (), {"subscription": None, "topic": topic})())
    send(pubsub, topic, [{"id": i, "amount": i, "ts": T0 + i} for i in range(5)] + [b"not json"])
    target = [{"id": "out", "kind": "target", "input": "orders", "schema": "public.orders", "loadMode": "append"}]
    # a target table that does not fit: the load fails, nothing is acked
    con = duckdb.connect(str(wh))
    con.execute("create schema public; create table public.orders(id bigint, other varchar)")
    con.close()
    result = run_document(doc(topic, target), RunOptions(warehouse=f"duckdb://{wh}"))
    assert result.status == "failed"
    con = duckdb.connect(str(wh))
    con.execute("drop table public.orders")
    con.close()
    result = run_document(doc(topic, target), RunOptions(warehouse=f"duckdb://{wh}"))
    assert result.status == "completed_with_errors", result.error  # the bad message went to the DLQ
    assert rows(wh, "select id from public.orders order by id") == [(i,) for i in range(5)]
    # the DLQ records the bad message once per run that read it (the failed run's row stays, with its run id)
    assert rows(wh, "select count(*), count(distinct run_id) from dlq.pubsub") == [(2, 2)]
    result = run_document(doc(topic, target), RunOptions(warehouse=f"duckdb://{wh}"))
    assert result.status == "completed" and result.nodes["orders"].rowsIn == 0  # all acked: nothing again


def test_streaming_windowed_aggregate_on_prism(ps, tmp_path):
    from flow_beam.runners import RunnerError, beam_args
    try:
        beam_args("prism")
    except RunnerError as exc:
        pytest.skip(str(exc))
    pubsub, topic = ps
    pubsub.subscription_path(type("C", (), {"subscription": None, "topic": topic})())
    events = [{"id": i, "amount": i, "ts": T0 + 10 * i} for i in range(30)]
    send(pubsub, topic, events)
    target = [{"id": "agg", "kind": "transform", "input": "orders", "ops": [
                  {"op": "aggregate", "groupBy": [], "window": {"type": "fixed", "size": "1m"},
                   "aggregations": [{"field": "amount", "fn": "sum", "as": "total"}]}]},
              {"id": "out", "kind": "target", "input": "agg", "schema": "public.totals", "loadMode": "upsert",
               "upsertKey": "window_start"}]
    wh = tmp_path / "w.duckdb"
    result = run_document(doc(topic, target), RunOptions(runner="prism", warehouse=f"duckdb://{wh}",
                                                         stop_after_idle_s=3))
    assert result.status == "completed", result.error
    want = {}
    for e in events:
        want[e["ts"] - e["ts"] % 60] = want.get(e["ts"] - e["ts"] % 60, 0) + e["amount"]
    assert dict(rows(wh, "select epoch(window_start)::bigint, total from public.totals")) == want


def test_topic_sink_publishes_rows_with_attributes(ps, tmp_path):
    pubsub, topic = ps
    out_topic = f"out-{uuid.uuid4().hex[:8]}"
    pubsub.create_topic(out_topic)
    sub = pubsub.subscription_path(type("C", (), {"subscription": None, "topic": out_topic})())
    pubsub.subscription_path(type("C", (), {"subscription": None, "topic": topic})())
    send(pubsub, topic, [{"id": i, "amount": i * 10, "ts": T0} for i in range(3)])
    target = [{"id": "out", "kind": "target", "input": "orders", "connector": "pubsub_topic",
               "config": {"topic": out_topic, "format": "json", "attributes": ["id"]}}]
    result = run_document(doc(topic, target), RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "completed", result.error
    got = pubsub.pull(sub, max_messages=10, timeout_s=3)
    assert sorted((m.attributes["id"], json.loads(m.data)["amount"]) for m in got) == [
        ("0", 0), ("1", 10), ("2", 20)]
