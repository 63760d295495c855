"""A real Apache Pulsar standalone (scripts/pulsar.sh, Maven Central jars) and the client layer connectors/pulsar/client.py.

The module starts its own broker through the script, on free ports with a fresh state folder under
~/.cache/flow-beam/run/, and stops it at the end. It skips, saying why, when java/mvn or the pulsar-client package
is missing or the Pulsar jars cannot be fetched; a broker that was installed but does not start is a failure.
"""
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ir_compiler.errors import ConnectorError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "pulsar.sh"
WAIT_S = 90  # upper bound for conditions the broker reaches on its own (backlog updated, redelivery)


def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Broker:
    def __init__(self):
        self.port, self.web, self.bookie = _free_ports(3)
        self.state_root = Path.home() / ".cache" / "flow-beam" / "run" / f"pulsar-test-{uuid.uuid4().hex[:10]}"
        self.env = dict(os.environ, FLOW_BEAM_STATE=str(self.state_root), FLOW_BEAM_PULSAR_PORT=str(self.port),
                        FLOW_BEAM_PULSAR_WEB_PORT=str(self.web), FLOW_BEAM_PULSAR_BOOKIE_PORT=str(self.bookie))
        self.url = f"pulsar://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.web}"

    def run(self, *args, timeout=600):
        return subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    @property
    def pid(self):
        return int((self.state_root / "pulsar" / "pulsar.pid").read_text().strip())


@pytest.fixture(scope="module")
def broker():
    for tool in ("java", "mvn", "curl"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed: scripts/pulsar.sh needs java 17+, mvn and curl")
    pytest.importorskip("pulsar", reason="the pulsar-client package is missing: pip install 'flow-beam[pulsar]'")
    b = Broker()
    inst = b.run("install")
    if inst.returncode != 0:
        pytest.skip(f"the Pulsar jars could not be fetched (bash scripts/pulsar.sh install): {inst.stderr[-1500:]}")
    try:
        started = b.run("start")
        if started.returncode != 0:
            pytest.fail(f"bash scripts/pulsar.sh start failed:\n{started.stderr[-3000:]}")
        yield b
    finally:
        b.run("stop", timeout=120)
        shutil.rmtree(b.state_root, ignore_errors=True)


def _client(broker):
    from connectors.pulsar.client import PulsarClient
    return PulsarClient(broker.url)


def _receive_all(consumer, want, deadline_s=WAIT_S):
    got = []
    deadline = time.monotonic() + deadline_s
    while len(got) < want and time.monotonic() < deadline:
        got += consumer.receive_batch(max_messages=50, timeout_s=1.0)
    return got


def _wait_backlog(broker, topic, sub, expected):
    from connectors.pulsar.client import subscription_backlog
    deadline = time.monotonic() + WAIT_S
    seen = None
    while time.monotonic() < deadline:
        seen = subscription_backlog(broker.admin, topic, sub)
        if seen == expected:
            return
        time.sleep(0.2)
    pytest.fail(f"subscription {sub} on {topic}: backlog {seen}, expected {expected} within {WAIT_S}s")


def _listening_addresses(pid):
    """(address, port) of every TCP socket the process listens on, from /proc (IPv4 and IPv6)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        if not os.path.exists(table):
            continue
        with open(table) as fh:
            next(fh)
            for line in fh:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state != "0A" or inode not in inodes:
                    continue
                addr_hex, port_hex = local.split(":")
                raw = bytes.fromhex(addr_hex)
                if v6:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    addr = socket.inet_ntop(socket.AF_INET6, words)
                else:
                    addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
                out.append((addr, int(port_hex, 16)))
    return out


# --- tests without a broker ---------------------------------------------------------------------------------------

def test_unreachable_broker_is_a_clear_connector_error():
    from connectors.pulsar.client import PulsarClient, create_topic
    port = _free_ports(1)[0]
    with pytest.raises(ConnectorError) as err:
        PulsarClient(f"pulsar://127.0.0.1:{port}")
    msg = str(err.value)
    assert f"pulsar://127.0.0.1:{port}" in msg and "scripts/pulsar.sh start" in msg
    with pytest.raises(ConnectorError) as err:
        create_topic(f"http://127.0.0.1:{port}", "t", 2)
    assert f"http://127.0.0.1:{port}" in str(err.value)


@pytest.mark.parametrize("bad", ["http://127.0.0.1:6650", "pulsar://", "127.0.0.1:6650", "pulsar://h:port"])
def test_bad_service_url_is_rejected(bad):
    from connectors.pulsar.client import PulsarClient
    with pytest.raises(ConnectorError, match="serviceUrl"):
        PulsarClient(bad, probe=False)


def test_topic_names():
    from connectors.pulsar.client import topic_name
    assert topic_name("orders") == "persistent://public/default/orders"
    assert topic_name("acme/sales/orders") == "persistent://acme/sales/orders"
    assert topic_name("non-persistent://a/b/c") == "non-persistent://a/b/c"
    for bad in ("", "a/b", "persistent://a/b", "or ders", "a/b/c/d"):
        with pytest.raises(ConnectorError):
            topic_name(bad)


# --- against the real standalone ----------------------------------------------------------------------------------

@pytest.mark.infra
def test_script_binds_only_loopback_and_reports(broker):
    listening = _listening_addresses(broker.pid)
    ports = {p for _, p in listening}
    assert {broker.port, broker.web, broker.bookie} <= ports, listening
    assert all(addr in ("127.0.0.1", "::ffff:127.0.0.1") for addr, _ in listening), listening
    status = broker.run("status")
    assert status.returncode == 0 and f"127.0.0.1:{broker.port}" in status.stdout
    env = broker.run("env").stdout
    assert f"FLOW_BEAM_PULSAR={broker.url}" in env and f"FLOW_BEAM_PULSAR_ADMIN={broker.admin}" in env
    # a second start is a no-op on the running broker
    again = broker.run("start")
    assert again.returncode == 0 and "already running" in again.stderr
    assert broker.run("topic", "made-by-script", "2").stdout.strip() == "persistent://public/default/made-by-script"


@pytest.mark.infra
def test_partitioned_produce_consume_ack(broker):
    from connectors.pulsar.client import create_topic
    topic = create_topic(broker.admin, f"orders-{uuid.uuid4().hex[:8]}", partitions=3)
    n = 60
    payloads = [json.dumps({"n": i}).encode() for i in range(n)]
    with _client(broker) as client:
        assert len(client.partitions(topic)) == 3
        before_ms = int(time.time() * 1000)
        ids = client.produce(topic, payloads, keys=[f"k{i}" for i in range(n)], properties={"src": "test"})
        after_ms = int(time.time() * 1000)
        assert len(set(ids)) == n
        consumer = client.subscribe(topic, "sub-a")
        got = _receive_all(consumer, n)
        assert sorted(m.data for m in got) == sorted(payloads)
        assert {m.topic for m in got} == {f"{topic}-partition-{p}" for p in range(3)}
        assert len({m.key for m in got}) == n
        assert sorted(m.message_id for m in got) == sorted(ids)
        for m in got:
            assert before_ms <= m.publish_time_ms <= after_ms
            assert m.properties == {"src": "test"} and m.redelivery_count == 0
            assert m.partition_key == f"k{json.loads(m.data)['n']}"
            assert m.topic.endswith(f"-partition-{m.partition}")
        # one key always lands on one partition
        by_key = {}
        for m in got:
            by_key.setdefault(m.partition_key, set()).add(m.partition)
        assert all(len(p) == 1 for p in by_key.values())
        assert consumer.ack(got) == n
        _wait_backlog(broker, topic, "sub-a", 0)
        consumer.close()
        # nothing comes back to the subscription once acknowledged
        again = client.subscribe(topic, "sub-a")
        assert again.receive_batch(max_messages=10, timeout_s=1.0) == []
        # a second subscription reads the whole topic on its own; cumulative acks per partition
        other = client.subscribe(topic, "sub-b", subscription_type="failover")
        got_b = _receive_all(other, n)
        assert sorted(m.data for m in got_b) == sorted(payloads)
        assert other.ack_cumulative(got_b) == 3
        _wait_backlog(broker, topic, "sub-b", 0)
        with pytest.raises(ConnectorError, match="exclusive or failover"):
            again.ack_cumulative(got_b)


_CRASHING_CONSUMER = r"""
import json, sys, time
from connectors.pulsar.client import PulsarClient
url, topic, sub, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = PulsarClient(url)
consumer = client.subscribe(topic, sub)
got = []
deadline = time.monotonic() + 90
while len(got) < n and time.monotonic() < deadline:
    got += consumer.receive_batch(max_messages=50, timeout_s=1.0)
acked = [m for m in got if int(m.data.decode().split("-")[1]) % 3 == 0]
consumer.ack(acked)
print(json.dumps({"received": sorted(m.data.decode() for m in got),
                  "acked": sorted(m.data.decode() for m in acked)}), flush=True)
time.sleep(600)  # killed by the test before it acks the rest
"""


def _read_line(proc, timeout_s):
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout_s):
        return None
    return proc.stdout.readline()


@pytest.mark.infra
def test_killed_consumer_gets_unacked_messages_redelivered(broker):
    from connectors.pulsar.client import create_topic
    topic = create_topic(broker.admin, f"crash-{uuid.uuid4().hex[:8]}", partitions=2)
    n = 30
    sent = [f"m-{i}" for i in range(n)]
    with _client(broker) as client:
        # no producer batching: the subscription backlog then counts messages, which the test waits on
        client.produce(topic, sent, batching=False)
    proc = subprocess.Popen([sys.executable, "-c", _CRASHING_CONSUMER, broker.url, topic, "sub-crash", str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        line = _read_line(proc, 120)
        assert line, f"the consumer process printed nothing: {proc.stderr.read() if proc.poll() is not None else ''}"
        report = json.loads(line)
        assert report["received"] == sorted(sent)
        acked = set(report["acked"])
        unacked = set(sent) - acked
        assert len(acked) == 10 and len(unacked) == 20
        # the acks reached the broker; the other 20 are delivered but unacknowledged when the process dies
        _wait_backlog(broker, topic, "sub-crash", len(unacked))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with _client(broker) as client:
        consumer = client.subscribe(topic, "sub-crash")
        got = _receive_all(consumer, len(unacked))
        assert sorted(m.data.decode() for m in got) == sorted(unacked)  # every unacked one, no acked one
        assert consumer.ack(got) == len(unacked)
        _wait_backlog(broker, topic, "sub-crash", 0)
        assert consumer.receive_batch(max_messages=10, timeout_s=1.0) == []


@pytest.mark.infra
def test_acks_inside_producer_batches_are_kept(broker):
    """Half of each producer batch acknowledged, the consumer closed: only the other half comes back."""
    from connectors.pulsar.client import create_topic
    topic = create_topic(broker.admin, f"batched-{uuid.uuid4().hex[:8]}", partitions=0)
    sent = [f"b-{i}" for i in range(40)]
    with _client(broker) as client:
        ids = client.produce(topic, sent, batching=True)
        assert len(set(ids)) == len(sent)
        consumer = client.subscribe(topic, "sub-batch")
        got = _receive_all(consumer, len(sent))
        assert sorted(m.data.decode() for m in got) == sorted(sent)
        assert any(not m.message_id.endswith(",-1)") for m in got)  # really batched (batch index >= 0)
        even = [m for m in got if int(m.data.decode().split("-")[1]) % 2 == 0]
        consumer.ack(even)
        consumer.close()  # flushes the pending acknowledgements
        again = client.subscribe(topic, "sub-batch")
        back = _receive_all(again, len(sent) - len(even))
        assert sorted(m.data.decode() for m in back) == sorted(set(sent) - {m.data.decode() for m in even})
        assert again.receive_batch(max_messages=10, timeout_s=1.0) == []


@pytest.mark.infra
def test_broker_stop_is_reported_and_restart_keeps_the_backlog(broker):
    from connectors.pulsar.client import PulsarClient, create_topic, subscription_backlog
    topic = create_topic(broker.admin, f"durable-{uuid.uuid4().hex[:8]}", partitions=2)
    with _client(broker) as client:
        client.produce(topic, [f"d-{i}" for i in range(10)], batching=False)  # backlog counts messages
        consumer = client.subscribe(topic, "sub-durable")
        first = _receive_all(consumer, 10)
        consumer.ack(first[:4])
        _wait_backlog(broker, topic, "sub-durable", 6)
        stopped = broker.run("stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert broker.run("status").returncode != 0
        for port in (broker.port, broker.web, broker.bookie):  # stop stopped every listener it started
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
        # the live consumer: a ConnectorError naming the service URL once the connection is gone
        deadline = time.monotonic() + WAIT_S
        error = None
        while error is None and time.monotonic() < deadline:
            try:
                assert consumer.receive_batch(max_messages=10, timeout_s=0.5) == []
            except ConnectorError as exc:
                error = exc
        assert error is not None and broker.url in str(error) and "disconnected" in str(error)
    with pytest.raises(ConnectorError, match=broker.url.replace("+", r"\+")):
        PulsarClient(broker.url)
    # same state folder: metadata, ledgers and the subscription's acks survive a restart
    started = broker.run("start")
    assert started.returncode == 0, started.stderr[-3000:]
    assert subscription_backlog(broker.admin, topic, "sub-durable") == 6
    with _client(broker) as client:
        consumer = client.subscribe(topic, "sub-durable")
        rest = _receive_all(consumer, 6)
        assert sorted(m.data.decode() for m in rest) == sorted(m.data.decode() for m in first[4:])
