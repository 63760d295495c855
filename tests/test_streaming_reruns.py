"""A window's row always covers every event read so far, across runs (issue 12).

The `kafka-to-warehouse` catalog template (count, count_distinct and avg per page and minute, upsert): a drain,
one more event, a second drain, one more event, a streaming run on Prism — each time the minute's row is the
aggregate of every event of that minute (it used to be replaced by the last run's events only: views 2 → 1).
Drains commit offsets only up to the first message whose window is not final yet (ir_compiler/lower/drain.py), so
the next run re-reads the open window from its first event; an event for a window that is already final is late:
counted in rowsLate, the row stays."""
import datetime as dt
import json
import os
import uuid

import duckdb
import pytest

from flow_beam.running import RunOptions, run_document

pytestmark = [pytest.mark.infra]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "templates", "pipelines", "kafka-to-warehouse", "pipeline.json")


@pytest.fixture
def kafka():
    servers = os.environ.get("FLOW_BEAM_KAFKA")
    if not servers:
        pytest.skip("Kafka not running: bash scripts/kafka.sh start && eval \"$(bash scripts/kafka.sh env)\"")
    from kafka.admin import KafkaAdminClient, NewTopic
    topic = f"views-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    return servers, topic


def send(servers, topic, views):
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=servers)
    for v in views:
        producer.send(topic, key=v["user_id"].encode(), value=json.dumps(v).encode())
    producer.flush()
    producer.close()


def view(user, at, ms):
    return {"page": "/home", "user_id": user, "ts": f"2026-01-01T{at}", "duration_ms": ms}


def rows(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {start.strftime("%H:%M"): (views, users, avg) for start, views, users, avg in con.execute(
            "SELECT window_start, views, users, avg_duration_ms FROM public.page_views_per_minute").fetchall()}
    finally:
        con.close()


def run(servers, topic, db, runner="direct", status="completed", **kw):
    params = {"bootstrap_servers": servers, "topic": topic, "group_id": f"g-{topic}"}
    result = run_document(json.load(open(TEMPLATE)), RunOptions(runner=runner, warehouse=f"duckdb://{db}",
                                                                  params=params, **kw))
    assert result.status == status, (result.error, {k: (v.status, v.error, v.warnings) for k, v in result.nodes.items()})
    return result


def test_a_window_spanning_runs_keeps_every_event(kafka, tmp_path):
    servers, topic = kafka
    db = tmp_path / "w.duckdb"
    send(servers, topic, [view("u1", "10:00:05", 100), view("u2", "10:00:40", 300)])
    run(servers, topic, db)
    assert rows(db) == {"10:00": (2, 2, 200.0)}

    send(servers, topic, [view("u1", "10:00:50", 500)])  # one more event in the same minute
    second = run(servers, topic, db)
    assert rows(db) == {"10:00": (3, 2, 300.0)}  # not (1, 1, 500): the open minute was re-read whole
    assert second.nodes["views"].rowsIn == 3

    if os.environ.get("FLOW_BEAM_PRISM") or os.path.exists(os.path.expanduser("~/.cache/flow-beam/bin/prism")):
        send(servers, topic, [view("u3", "10:00:55", 100)])
        run(servers, topic, db, runner="prism", stop_after_idle_s=3)  # streaming after drains
        assert rows(db) == {"10:00": (4, 3, 250.0)}

    # 10:30 closes 10:00 (end 10:01 + allowedLateness 5m <= 10:30): a later 10:00 event is late, the row stays
    send(servers, topic, [view("u4", "10:30:00", 40)])
    run(servers, topic, db)
    before = rows(db)
    send(servers, topic, [view("u5", "10:00:58", 999)])
    late = run(servers, topic, db, status="completed_with_errors")  # a late row is reported, not silent
    assert late.nodes["per_minute"].rowsLate == 1
    assert rows(db) == before


def test_a_rerun_with_nothing_new_finds_no_late_rows(kafka, tmp_path):
    """Found by a probe: offsets were committed only up to the first row whose event time + window size passed
    the frontier, while a row is late once its window's END (+ allowedLateness) has; rows of a final window past
    that point were re-read by every later drain, called late (rowsLate, exit 2) and written to the DLQ again
    each time (3 → 6 → 9 rows). The commit point is now the row's last window end + allowedLateness."""
    servers, topic = kafka
    db = tmp_path / "w.duckdb"
    # the template's windows: 1 minute, allowedLateness 5m; the frontier is the latest event, 10:10:30. The 10:04
    # window is final (10:05 + 5m <= 10:10:30), but 10:04:40 + 1m + 5m is not: the old rule kept it uncommitted
    send(servers, topic, [view("u1", "10:00:05", 100), view("u2", "10:00:40", 300), view("u1", "10:04:40", 10),
                          view("u2", "10:04:45", 20), view("u1", "10:10:30", 50), view("u2", "10:10:30", 60)])
    run(servers, topic, db)
    first = rows(db)
    for _ in range(2):  # nothing new: nothing late, nothing to the DLQ, the table as it was
        again = run(servers, topic, db)
        assert again.nodes["per_minute"].rowsLate == 0 and rows(db) == first
