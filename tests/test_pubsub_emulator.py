"""connectors/pubsub/client.py end to end against the Pub/Sub server started by scripts/pubsub.sh.

That server is Google's Pub/Sub emulator (the machine image's google-cloud-cli-pubsub-emulator package); only
where it is missing does the script fall back to the in-repo stand-in scripts/pubsub_emulator.py.
FLOW_BEAM_PUBSUB_KIND says which one ran (google | standin), and pytest's header line "pubsub:" prints it. The
client is the real google-cloud-pubsub library, pointed at the server through PUBSUB_EMULATOR_HOST. Skips when
FLOW_BEAM_PUBSUB is unset:
    bash scripts/pubsub.sh start && eval "$(bash scripts/pubsub.sh env)"
"""
import os
import time
import types
import uuid

import pytest

from ir_compiler.errors import ConnectorError

pytestmark = pytest.mark.infra


@pytest.fixture()
def ps(monkeypatch):
    host = os.environ.get("FLOW_BEAM_PUBSUB")
    if not host:
        pytest.skip("FLOW_BEAM_PUBSUB is unset: start the Pub/Sub emulator with "
                    "`bash scripts/pubsub.sh start` and `eval \"$(bash scripts/pubsub.sh env)\"`")
    # always the local server, never the real service, whatever else the environment says
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "flow-beam-test")
    from connectors.pubsub import client as pubsub

    return pubsub


def _name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _pull_all(ps, sub, want, timeout_s=10.0):
    """Pull until ``want`` messages arrived (or timeout_s passed)."""
    got, end = [], time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < end:
        got += ps.pull(sub, max_messages=want - len(got), timeout_s=2.0)
    return got


def test_publish_pull_ack(ps):
    topic = ps.create_topic(_name("orders"))
    assert topic.startswith("projects/flow-beam-test/topics/orders-")
    sub = ps.subscription_path(types.SimpleNamespace(subscription=None, topic=topic))
    before_us = int(time.time() * 1e6)
    payloads = [(f'{{"n": {i}}}'.encode(), {"i": str(i), "kind": "order"}) for i in range(3)]
    assert ps.publish(topic.rsplit("/", 1)[1], payloads) == 3  # bare topic name

    got = sorted(_pull_all(ps, sub, 3), key=lambda r: r.attributes["i"])
    assert [(r.data, r.attributes) for r in got] == payloads
    assert len({r.message_id for r in got}) == 3 and all(r.message_id for r in got)
    assert len({r.ack_id for r in got}) == 3
    assert all(before_us - 5_000_000 <= r.publish_time_us <= time.time() * 1e6 + 5_000_000 for r in got)

    ps.ack(sub, [r.ack_id for r in got])
    assert ps.pull(sub, timeout_s=1.5) == []


def test_unacked_message_is_redelivered_after_its_deadline(ps):
    topic = ps.create_topic(_name("redeliver"))
    sub = ps.subscription_path(types.SimpleNamespace(subscription=None, topic=topic))
    ps.publish(topic, [(b"one", {}), (b"two", {"k": "v"})])
    first = _pull_all(ps, sub, 2)
    assert sorted(r.data for r in first) == [b"one", b"two"]
    # both are leased now (60 s deadline): nothing to pull
    assert ps.pull(sub, timeout_s=1.0) == []

    one = next(r for r in first if r.data == b"one")
    two = next(r for r in first if r.data == b"two")
    ps.ack(sub, [two.ack_id])
    ps.modify_ack_deadline(sub, [one.ack_id], 0)  # nack: deliver again at once
    again = _pull_all(ps, sub, 1, timeout_s=5.0)
    assert [(r.data, r.message_id) for r in again] == [(b"one", one.message_id)]
    assert again[0].ack_id != one.ack_id

    # a 1 s lease that runs out: redelivered without any call
    ps.modify_ack_deadline(sub, [again[0].ack_id], 1)
    assert ps.pull(sub, timeout_s=0.5) == []
    t0 = time.monotonic()
    third = _pull_all(ps, sub, 1, timeout_s=5.0)
    assert [r.data for r in third] == [b"one"]
    assert time.monotonic() - t0 < 3.0
    ps.ack(sub, [third[0].ack_id])
    assert ps.pull(sub, timeout_s=1.5) == []


def test_topic_only_config_creates_the_subscription(ps):
    from google.cloud import pubsub_v1

    tname = _name("events")
    topic = ps.create_topic(tname)
    assert ps.create_topic(tname) == topic  # idempotent
    cfg = types.SimpleNamespace(subscription=None, topic=tname)
    sub = ps.subscription_path(cfg, run_id="Run 42")
    assert sub == f"projects/flow-beam-test/subscriptions/flow-beam-{tname}"
    info = pubsub_v1.SubscriberClient().get_subscription(request={"subscription": sub})
    assert info.topic == topic and info.ack_deadline_seconds == 60
    assert info.labels["flow-beam-run"] == "run-42"
    assert ps.subscription_path(cfg, run_id="another") == sub  # existing one reused

    # messages published after creation reach it; a full subscription path is returned as is
    ps.publish(topic, [(b"x", {"a": "1"})])
    same = ps.subscription_path(types.SimpleNamespace(subscription=sub, topic=None))
    assert same == sub
    assert ps.subscription_path(types.SimpleNamespace(subscription="bare", topic=None)) == \
        "projects/flow-beam-test/subscriptions/bare"
    got = _pull_all(ps, sub, 1)
    assert [(r.data, r.attributes) for r in got] == [(b"x", {"a": "1"})]
    ps.ack(sub, [got[0].ack_id])


def test_only_subscriptions_existing_at_publish_time_get_the_message(ps):
    topic = ps.create_topic(_name("fanout"))
    early = ps.subscription_path(types.SimpleNamespace(subscription=None, topic=topic))
    ps.publish(topic, [(b"before", {})])
    from google.cloud import pubsub_v1

    late = f"projects/flow-beam-test/subscriptions/{_name('late')}"
    pubsub_v1.SubscriberClient().create_subscription(request={"name": late, "topic": topic})
    ps.publish(topic, [(b"after", {})])
    assert sorted(r.data for r in _pull_all(ps, early, 2)) == [b"after", b"before"]
    assert [r.data for r in _pull_all(ps, late, 1)] == [b"after"]
    assert ps.pull(late, timeout_s=1.0) == []


def test_errors_are_connector_errors(ps, monkeypatch):
    with pytest.raises(ConnectorError, match="does not exist"):
        ps.publish(_name("missing"), [(b"x", {})])
    with pytest.raises(ConnectorError, match="does not exist"):
        ps.subscription_path(types.SimpleNamespace(subscription=None, topic=_name("missing")))
    with pytest.raises(ConnectorError, match="does not exist"):
        ps.pull(f"projects/flow-beam-test/subscriptions/{_name('missing')}", timeout_s=1.0)

    # nothing listens on this port: a fast, explained failure
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free}")
    t0 = time.monotonic()
    with pytest.raises(ConnectorError, match=r"PUBSUB_EMULATOR_HOST.*bash scripts/pubsub.sh start"):
        ps.publish("anything", [(b"x", {})])
    assert time.monotonic() - t0 < 10


def test_streaming_pull_subscribe(ps):
    """The client's subscribe() (StreamingPull) works against the stand-in too."""
    import threading

    from google.cloud import pubsub_v1

    topic = ps.create_topic(_name("stream"))
    sub = ps.subscription_path(types.SimpleNamespace(subscription=None, topic=topic))
    ps.publish(topic, [(f"m{i}".encode(), {}) for i in range(5)])
    seen, done = [], threading.Event()

    def callback(message):
        seen.append(message.data)
        message.ack()
        if len(seen) >= 5:
            done.set()

    client = pubsub_v1.SubscriberClient()
    future = client.subscribe(sub, callback)
    try:
        assert done.wait(20), f"only {seen} arrived"
    finally:
        future.cancel()  # triggers the shutdown; result() waits for it
        future.result(timeout=20)
        client.close()
    assert sorted(seen) == [f"m{i}".encode() for i in range(5)]
    time.sleep(0.5)  # the acks travel on the stream; give them a moment before checking
    assert ps.pull(sub, timeout_s=1.0) == []


def test_the_server_is_googles_emulator_where_the_machine_has_it(ps):
    """On a machine with the emulator package the tests must not quietly run against the stand-in."""
    import glob
    installed = glob.glob("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
    kind = os.environ.get("FLOW_BEAM_PUBSUB_KIND")
    if installed and os.environ.get("FLOW_BEAM_PUBSUB_IMPL") != "standin":
        assert kind == "google", f"Google's emulator is installed but the tests ran against: {kind}"
    else:
        assert kind in ("google", "standin")
