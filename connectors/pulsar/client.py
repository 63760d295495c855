"""Apache Pulsar for the ``pulsar_consumer`` source: a small synchronous layer over the official client.

The official ``pulsar-client`` wheel (C++ core, extra ``flow-beam[pulsar]``) speaks the binary protocol to the
broker (``pulsar://host:6650``); topic creation and backlog/stat look-ups use the broker's admin REST API
(``http://host:8080``, stdlib HTTP only). Locally both come from ``bash scripts/pulsar.sh start``
(``eval "$(bash scripts/pulsar.sh env)"`` sets ``FLOW_BEAM_PULSAR`` and ``FLOW_BEAM_PULSAR_ADMIN``).

What it offers:

- :meth:`PulsarClient.produce` publishes payloads (optional keys/properties) and returns once the broker has
  persisted every one of them, with their message ids;
- :meth:`PulsarClient.subscribe` returns a :class:`Consumer` whose :meth:`~Consumer.receive_batch` returns up to
  ``max_messages`` :class:`Received` messages within a timeout (topic partition, message id, publish time,
  redelivery count); nothing is acknowledged until :meth:`~Consumer.ack` (individually) or
  :meth:`~Consumer.ack_cumulative` (per partition, up to the newest given; exclusive/failover subscriptions only).
  Unacknowledged messages are redelivered to the subscription when the consumer goes away (at-least-once).

Acknowledgements are grouped by the client and reach the broker within ~100 ms (or when the consumer closes):
a process killed right after :meth:`~Consumer.ack` may see those messages again. A message keeps its
:attr:`Received.key` (topic + message id) across redeliveries, which is what a reader deduplicates on.

Every failure is a :class:`~ir_compiler.errors.ConnectorError` naming the service URL and saying what to do.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from time import monotonic

from ir_compiler.errors import ConnectorError, MissingDependencyError

START_HINT = 'start it with `bash scripts/pulsar.sh start && eval "$(bash scripts/pulsar.sh env)"`'
DEFAULT_TENANT = "public"
DEFAULT_NAMESPACE = "default"
SUBSCRIPTION_TYPES = ("exclusive", "shared", "failover", "key_shared")
INITIAL_POSITIONS = ("earliest", "latest")
CONNECT_PROBE_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 30.0

_URL_RE = re.compile(r"^(pulsar|pulsar\+ssl)://([^/?#]+)/?$")
_HTTP_RE = re.compile(r"^https?://[^/?#]+/?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.=:-]+$")
_log = logging.getLogger("flow_beam.pulsar")


@dataclass(frozen=True)
class Received:
    """One received message; pass it back to :meth:`Consumer.ack` / :meth:`Consumer.ack_cumulative`."""

    topic: str              # the partition it came from: persistent://t/ns/name-partition-N (or the topic)
    message_id: str         # "(ledger,entry,partition,batch_index)", stable across redeliveries
    data: bytes
    publish_time_ms: int    # set by the producer's client at publish (ms since the epoch, UTC)
    event_time_ms: int | None = None
    partition_key: str | None = None
    properties: dict = field(default_factory=dict)
    redelivery_count: int = 0
    _handle: object = field(default=None, repr=False, compare=False)  # the client's Message

    @property
    def key(self) -> str:
        """A unique, redelivery-stable identity: ``topic@message_id``."""
        return f"{self.topic}@{self.message_id}"

    @property
    def order(self) -> tuple[int, int, int]:
        """(ledger, entry, batch index): the order of messages within one partition."""
        return _order(self)

    @property
    def serialized_id(self) -> bytes:
        return self._id().serialize()

    @property
    def partition(self) -> int:
        return self._id().partition()

    def _id(self):
        return self._handle.message_id()


# --- names ----------------------------------------------------------------------------------------------------

def topic_name(topic: str) -> str:
    """The full topic name: ``NAME`` -> persistent://public/default/NAME, ``TENANT/NS/NAME`` -> persistent://...;
    a full ``persistent://`` or ``non-persistent://`` name is kept."""
    name = (topic or "").strip()
    for scheme in ("persistent://", "non-persistent://"):
        if name.startswith(scheme):
            parts = name[len(scheme):].split("/")
            if len(parts) == 3 and all(_NAME_RE.match(p) for p in parts):
                return name
            raise ConnectorError(f"Pulsar topic {topic!r} is not {scheme}TENANT/NAMESPACE/TOPIC")
    parts = name.split("/")
    if len(parts) == 1 and _NAME_RE.match(name):
        return f"persistent://{DEFAULT_TENANT}/{DEFAULT_NAMESPACE}/{name}"
    if len(parts) == 3 and all(_NAME_RE.match(p) for p in parts):
        return "persistent://" + name
    raise ConnectorError(f"Pulsar topic {topic!r}: use NAME, TENANT/NAMESPACE/NAME or persistent://TENANT/NAMESPACE/NAME "
                         f"(letters, digits, '_', '-', '.', '=', ':')")


def _check_service_url(url: str) -> list[tuple[str, int]]:
    m = _URL_RE.match((url or "").strip())
    if not m:
        raise ConnectorError(f"Pulsar serviceUrl {url!r} is not pulsar://HOST:PORT[,HOST:PORT...] (or pulsar+ssl://)")
    default_port = 6651 if m.group(1) == "pulsar+ssl" else 6650
    hosts = []
    for hp in m.group(2).split(","):
        host, _, port = hp.rpartition(":") if ":" in hp else (hp, "", str(default_port))
        if not host or not port.isdigit():
            raise ConnectorError(f"Pulsar serviceUrl {url!r}: {hp!r} is not HOST:PORT")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def _probe(url: str, hosts: list[tuple[str, int]]) -> None:
    """Fail fast with a clear message when no broker listens (the client itself retries until its timeout)."""
    errors = []
    for host, port in hosts:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_PROBE_TIMEOUT_S):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    raise ConnectorError(f"cannot reach the Pulsar broker at {url} ({'; '.join(errors)}): is it running? {START_HINT}")


def _import_pulsar():
    try:
        import pulsar
    except ImportError:
        raise MissingDependencyError("the pulsar_consumer connector needs the pulsar-client package: "
                                     "pip install 'flow-beam[pulsar]'") from None
    return pulsar


# --- the client -------------------------------------------------------------------------------------------------

class PulsarClient:
    """One connection to a Pulsar cluster (``with PulsarClient(url) as c: ...``); closes its consumers too."""

    def __init__(self, service_url: str, *, operation_timeout_s: int = 30, connect_timeout_s: float = 10.0,
                 probe: bool = True):
        self.service_url = service_url.strip() if isinstance(service_url, str) else service_url
        hosts = _check_service_url(self.service_url)
        if probe:
            _probe(self.service_url, hosts)
        pulsar = _import_pulsar()
        self._pulsar = pulsar
        try:
            self._client = pulsar.Client(self.service_url, operation_timeout_seconds=int(operation_timeout_s),
                                         connection_timeout_ms=int(connect_timeout_s * 1000),
                                         logger=logging.getLogger("pulsar"))
        except Exception as exc:  # noqa: BLE001 - the client raises its own exception tree
            raise self._error(exc, "creating the client") from None
        self._producers: dict[str, object] = {}
        self._consumers: list[Consumer] = []
        self._closed = False

    # context manager
    def __enter__(self) -> PulsarClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the consumers (flushing their pending acknowledgements), producers and the connection."""
        if self._closed:
            return
        self._closed = True
        for c in list(self._consumers):
            c.close()
        try:
            self._client.close()
        except Exception as exc:  # noqa: BLE001
            _log.warning("closing the Pulsar client for %s: %s", self.service_url, exc)

    def _error(self, exc: Exception, doing: str) -> ConnectorError:
        kind = type(exc).__name__
        hint = ""
        if kind in ("ConnectError", "Timeout", "NotConnected", "LookupError", "ServiceUnitNotReady"):
            hint = f": is the broker running? {START_HINT}"
        elif kind in ("TopicNotFound",):
            hint = ": create the topic first (or allow auto topic creation on the broker)"
        elif kind == "CumulativeAcknowledgementNotAllowedError":
            hint = ": cumulative acknowledgement needs an exclusive or failover subscription"
        return ConnectorError(f"Pulsar at {self.service_url}: {doing} failed ({kind}: {exc}){hint}")

    # --- producing --------------------------------------------------------------------------------------------

    def _producer(self, topic: str, batching: bool):
        p = self._producers.get((topic, batching))
        if p is None:
            try:
                p = self._client.create_producer(
                    topic, batching_enabled=batching, batching_max_publish_delay_ms=5, block_if_queue_full=True,
                    max_pending_messages=1000, send_timeout_millis=30000)
            except Exception as exc:  # noqa: BLE001
                raise self._error(exc, f"creating a producer on {topic}") from None
            self._producers[(topic, batching)] = p
        return p

    def produce(self, topic: str, payloads: Iterable[bytes | str], *, keys: Sequence[str | None] | None = None,
                properties: Sequence[dict | None] | dict | None = None, batching: bool = True) -> list[str]:
        """Publish every payload to ``topic`` (partitions chosen by key, else round robin) and wait until the broker
        has persisted all of them. Returns the message ids in input order; raises on the first failure (messages
        before it may have been published: producing is at-least-once too). ``batching`` packs several messages
        into one stored entry (ids then differ only in their batch index)."""
        full = topic_name(topic)
        producer = self._producer(full, batching)
        items = [p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in payloads]
        if keys is not None and len(keys) != len(items):
            raise ConnectorError(f"Pulsar produce to {full}: {len(keys)} keys for {len(items)} payloads")
        if isinstance(properties, Sequence) and len(properties) != len(items):
            raise ConnectorError(f"Pulsar produce to {full}: {len(properties)} property sets for {len(items)} payloads")
        results: list = [None] * len(items)

        def done(i):
            def cb(res, msg_id):
                results[i] = (res, msg_id)
            return cb

        try:
            for i, data in enumerate(items):
                props = properties if isinstance(properties, dict) else (properties[i] if properties else None)
                kwargs = {}
                if props:
                    kwargs["properties"] = {str(k): str(v) for k, v in props.items()}
                if keys is not None and keys[i] is not None:
                    kwargs["partition_key"] = str(keys[i])
                producer.send_async(data, done(i), **kwargs)
            producer.flush()
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, f"publishing to {full}") from None
        ids = []
        for i, r in enumerate(results):
            if r is None or r[0] != self._pulsar.Result.Ok:
                status = "no answer" if r is None else str(r[0])
                raise ConnectorError(f"Pulsar at {self.service_url}: publishing message {i} to {full} failed "
                                     f"({status}): is the broker running? {START_HINT}")
            ids.append(str(r[1]))
        return ids

    # --- consuming --------------------------------------------------------------------------------------------

    def subscribe(self, topics: str | Sequence[str], subscription: str, *, subscription_type: str = "shared",
                  initial_position: str = "earliest", receiver_queue_size: int = 1000,
                  consumer_name: str | None = None) -> Consumer:
        """Attach to ``subscription`` on the topic(s), creating it at ``initial_position`` when new. A partitioned
        topic is read from all its partitions."""
        if subscription_type not in SUBSCRIPTION_TYPES:
            raise ConnectorError(f"Pulsar subscription type {subscription_type!r}: use one of {', '.join(SUBSCRIPTION_TYPES)}")
        if initial_position not in INITIAL_POSITIONS:
            raise ConnectorError(f"Pulsar initial position {initial_position!r}: use earliest or latest")
        if not subscription or not _NAME_RE.match(subscription):
            raise ConnectorError(f"Pulsar subscription name {subscription!r}: use letters, digits, '_', '-', '.'")
        names = [topic_name(t) for t in ([topics] if isinstance(topics, str) else list(topics))]
        if not names:
            raise ConnectorError("Pulsar subscribe: no topic given")
        pulsar = self._pulsar
        ctype = {"exclusive": pulsar.ConsumerType.Exclusive, "shared": pulsar.ConsumerType.Shared,
                 "failover": pulsar.ConsumerType.Failover, "key_shared": pulsar.ConsumerType.KeyShared}
        pos = {"earliest": pulsar.InitialPosition.Earliest, "latest": pulsar.InitialPosition.Latest}
        try:
            raw = self._client.subscribe(names[0] if len(names) == 1 else names, subscription,
                                         consumer_type=ctype[subscription_type],
                                         initial_position=pos[initial_position],
                                         receiver_queue_size=receiver_queue_size, consumer_name=consumer_name,
                                         # acks of single messages inside a producer batch are kept by the broker
                                         # (acknowledgmentAtBatchIndexLevelEnabled, on by default since Pulsar 3):
                                         # without it the acked half of a batch would be redelivered too
                                         batch_index_ack_enabled=True)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, f"subscribing {subscription!r} to {', '.join(names)}") from None
        consumer = Consumer(self, raw, names, subscription, subscription_type)
        self._consumers.append(consumer)
        return consumer

    def partitions(self, topic: str) -> list[str]:
        """The partition topics of a partitioned topic (``[topic]`` when it is not partitioned)."""
        full = topic_name(topic)
        try:
            return list(self._client.get_topic_partitions(full))
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, f"looking up the partitions of {full}") from None


class Consumer:
    """A subscription's consumer; obtain it from :meth:`PulsarClient.subscribe`."""

    def __init__(self, client: PulsarClient, raw, topics: list[str], subscription: str, subscription_type: str):
        self._client = client
        self._raw = raw
        self.topics = topics
        self.subscription = subscription
        self.subscription_type = subscription_type
        self._closed = False

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        try:
            return bool(self._raw.is_connected())
        except Exception:  # noqa: BLE001
            return False

    def receive_batch(self, max_messages: int = 1000, timeout_s: float = 1.0, linger_s: float = 0.05) -> list[Received]:
        """Up to ``max_messages`` messages: waits at most ``timeout_s`` for the first one, then takes more while each
        next one comes within ``linger_s`` (and ``timeout_s`` has not run out). An empty list when none came; a
        ConnectorError when none came because the broker connection is down."""
        if self._closed:
            raise ConnectorError(f"Pulsar consumer {self.subscription!r} on {self._client.service_url} is closed")
        if max_messages < 1:
            raise ConnectorError(f"Pulsar receive_batch: max_messages must be >= 1, not {max_messages}")
        timeout_cls = self._client._pulsar.Timeout
        out: list[Received] = []
        deadline = monotonic() + max(0.0, timeout_s)
        first = True
        while len(out) < max_messages:
            left_ms = int((deadline - monotonic()) * 1000)
            if left_ms <= 0:
                if not first:
                    break
                left_ms = 1  # timeout 0: one look at what is already queued
            if not first:
                left_ms = max(1, min(left_ms, int(linger_s * 1000)))
            first = False
            try:
                msg = self._raw.receive(left_ms)
            except timeout_cls:
                break
            except Exception as exc:  # noqa: BLE001
                raise self._client._error(exc, f"receiving from subscription {self.subscription!r}") from None
            out.append(_received(msg))
        if not out and not self.connected:
            raise ConnectorError(f"Pulsar at {self._client.service_url}: the consumer of subscription "
                                 f"{self.subscription!r} is disconnected from the broker (unacknowledged messages "
                                 f"stay in the subscription and are redelivered): is the broker running? {START_HINT}")
        return out

    def ack(self, messages: Iterable[Received]) -> int:
        """Acknowledge each given message individually; returns how many."""
        n = 0
        for m in messages:
            try:
                self._raw.acknowledge(m._handle)
            except Exception as exc:  # noqa: BLE001
                raise self._client._error(exc, f"acknowledging {m.key} on {self.subscription!r}") from None
            n += 1
        return n

    def ack_cumulative(self, messages: Iterable[Received]) -> int:
        """Acknowledge, per partition, everything up to and including the newest of the given messages
        (exclusive/failover subscriptions only). Returns how many partitions were acknowledged."""
        if self.subscription_type not in ("exclusive", "failover"):
            raise ConnectorError(f"Pulsar subscription {self.subscription!r} is {self.subscription_type}: cumulative "
                                 f"acknowledgement needs an exclusive or failover subscription; use ack()")
        newest: dict[str, Received] = {}
        for m in messages:
            cur = newest.get(m.topic)
            if cur is None or _order(m) > _order(cur):
                newest[m.topic] = m
        for m in newest.values():
            try:
                self._raw.acknowledge_cumulative(m._handle)
            except Exception as exc:  # noqa: BLE001
                raise self._client._error(exc, f"acknowledging up to {m.key} on {self.subscription!r}") from None
        return len(newest)

    def last_message_id(self) -> tuple[int, int, int] | None:
        """(ledger, entry, batch index) of the newest message of the (single, non-multi-topic) topic this consumer
        reads, or None when the topic holds no message yet: the end of the backlog "now"."""
        try:
            mid = self._raw.get_last_message_id()
        except Exception as exc:  # noqa: BLE001
            raise self._client._error(exc, f"looking up the last message of {', '.join(self.topics)}") from None
        if mid.entry_id() < 0:
            return None
        return (mid.ledger_id(), mid.entry_id(), mid.batch_index())

    def ack_cumulative_id(self, serialized: bytes) -> None:
        """Acknowledge everything up to a message id given as :meth:`Received.serialized_id` bytes (exclusive or
        failover subscriptions). The id carries no batch size: the whole stored entry it is in is acknowledged,
        so give the id of the last message of an entry."""
        pulsar = self._client._pulsar
        try:
            self._raw.acknowledge_cumulative(pulsar.MessageId.deserialize(serialized))
        except Exception as exc:  # noqa: BLE001
            raise self._client._error(exc, f"acknowledging on {self.subscription!r}") from None

    def nack(self, messages: Iterable[Received]) -> None:
        """Ask for redelivery of these messages (after the client's negative-ack delay)."""
        for m in messages:
            self._raw.negative_acknowledge(m._handle)

    def redeliver_unacked(self) -> None:
        """Redeliver every message this consumer received and has not acknowledged."""
        self._raw.redeliver_unacknowledged_messages()

    def close(self) -> None:
        """Close the consumer (pending acknowledgements are flushed; unacknowledged messages are redelivered)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._raw.close()
        except Exception as exc:  # noqa: BLE001
            _log.warning("closing Pulsar consumer %r on %s: %s", self.subscription, self._client.service_url, exc)
        if self in self._client._consumers:
            self._client._consumers.remove(self)


def _received(msg) -> Received:
    mid = msg.message_id()
    event = msg.event_timestamp()
    return Received(topic=msg.topic_name(), message_id=str(mid), data=msg.data(),
                    publish_time_ms=int(msg.publish_timestamp()), event_time_ms=int(event) if event else None,
                    partition_key=msg.partition_key() or None, properties=dict(msg.properties()),
                    redelivery_count=int(msg.redelivery_count()), _handle=msg)


def _order(m: Received) -> tuple[int, int, int]:
    mid = m._id()
    return (mid.ledger_id(), mid.entry_id(), mid.batch_index())


# --- admin REST (topic creation, subscription backlog) ----------------------------------------------------------

def _admin_path(admin_url: str, topic: str) -> tuple[str, str]:
    url = (admin_url or "").strip()
    if not _HTTP_RE.match(url):
        raise ConnectorError(f"Pulsar admin URL {admin_url!r} is not http(s)://HOST:PORT")
    full = topic_name(topic)
    scheme, rest = full.split("://", 1)
    return url.rstrip("/"), f"/admin/v2/{scheme}/{'/'.join(urllib.parse.quote(p, safe='') for p in rest.split('/'))}"


def _http(method: str, url: str, body: bytes | None = None, *, admin_url: str, doing: str):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            data = resp.read()
            return resp.status, (json.loads(data) if data else None)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        return exc.code, detail
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectorError(f"cannot reach the Pulsar admin API at {admin_url} while {doing} ({reason}): "
                             f"is the broker running? {START_HINT}") from None


def create_topic(admin_url: str, topic: str, partitions: int = 0) -> str:
    """Create ``topic`` with ``partitions`` partitions (0: non-partitioned); an existing topic is left as it is.
    Returns the full topic name."""
    if partitions < 0:
        raise ConnectorError(f"Pulsar topic partitions must be >= 0, not {partitions}")
    base, path = _admin_path(admin_url, topic)
    if partitions:
        status, detail = _http("PUT", f"{base}{path}/partitions", str(partitions).encode(), admin_url=admin_url,
                               doing=f"creating {topic}")
    else:
        status, detail = _http("PUT", f"{base}{path}", admin_url=admin_url, doing=f"creating {topic}")
    if status not in (200, 204, 409):
        raise ConnectorError(f"Pulsar admin API at {admin_url}: creating topic {topic_name(topic)} failed "
                             f"(HTTP {status}: {detail})")
    return topic_name(topic)


def subscription_backlog(admin_url: str, topic: str, subscription: str) -> int | None:
    """Messages not yet acknowledged on ``subscription`` (summed over partitions); None when the subscription
    does not exist. Read from the broker's topic stats."""
    base, path = _admin_path(admin_url, topic)
    doing = f"reading the stats of {topic}"
    status, stats = _http("GET", f"{base}{path}/partitioned-stats", admin_url=admin_url, doing=doing)
    # 404: not partitioned; 412: a partition's own topic (NAME-partition-N); 200 without partitions: not partitioned
    if status in (404, 412) or (status == 200 and not (stats or {}).get("metadata", {}).get("partitions")):
        status, stats = _http("GET", f"{base}{path}/stats", admin_url=admin_url, doing=doing)
    if status != 200:
        raise ConnectorError(f"Pulsar admin API at {admin_url}: {doing} failed (HTTP {status}: {stats})")
    sub = (stats.get("subscriptions") or {}).get(subscription)
    return None if sub is None else int(sub.get("msgBacklog", 0))
