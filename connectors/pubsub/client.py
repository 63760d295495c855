"""Google Cloud Pub/Sub for the ``pubsub_subscription`` source and the ``pubsub_topic`` sink.

Thin, synchronous helpers over the google-cloud-pubsub client (imported lazily): resolve names, synchronous
Pull, Acknowledge / ModifyAckDeadline, and Publish that waits for every message. The client talks to
``PUBSUB_EMULATOR_HOST`` when it is set (insecure channel, no credentials): locally that is the in-repo
stand-in started by ``bash scripts/pubsub.sh start`` (``eval "$(bash scripts/pubsub.sh env)"`` sets it).
Without it the real service and Application Default Credentials are used.

Bare names (no ``projects/...`` prefix) live in the project ``$GOOGLE_CLOUD_PROJECT`` (default
``flow-beam-local``). Every failure is a :class:`~ir_compiler.errors.ConnectorError` with a message that says
what to do.
"""
from __future__ import annotations

import os
import re
import socket
import threading
from dataclasses import dataclass, field

from ir_compiler.errors import ConnectorError

DEFAULT_PROJECT = "flow-beam-local"
EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
START_HINT = '`bash scripts/pubsub.sh start && eval "$(bash scripts/pubsub.sh env)"`'
# subscriptions this module creates (topic-only configs): the engine acks only after its loads committed
CREATED_ACK_DEADLINE_S = 60
PUBLISH_TIMEOUT_S = 120.0
RPC_TIMEOUT_S = 30.0
_ACK_CHUNK = 1000

_TOPIC_RE = re.compile(r"^projects/([^/]+)/topics/([^/]+)$")
_SUB_RE = re.compile(r"^projects/([^/]+)/subscriptions/([^/]+)$")


@dataclass(frozen=True)
class Received:
    """One pulled message. ``ack_id`` is what :func:`ack` / :func:`modify_ack_deadline` take."""

    ack_id: str
    data: bytes
    attributes: dict = field(default_factory=dict)
    publish_time_us: int = 0  # microseconds since the epoch (UTC), set by the service
    message_id: str = ""


# --- names ----------------------------------------------------------------------------------------------------

def project() -> str:
    """The project for bare names: ``$GOOGLE_CLOUD_PROJECT`` or ``flow-beam-local``."""
    return os.environ.get("GOOGLE_CLOUD_PROJECT") or DEFAULT_PROJECT


def topic_path(topic: str) -> str:
    """``projects/P/topics/T`` for a full path or a bare topic name."""
    return _path(topic, "topics", _TOPIC_RE)


def _path(name: str, kind: str, regex: re.Pattern) -> str:
    name = (name or "").strip()
    if not name:
        raise ConnectorError(f"Pub/Sub: empty {kind[:-1]} name")
    if name.startswith("projects/"):
        if not regex.match(name):
            raise ConnectorError(f"Pub/Sub: {name!r} is not a {kind[:-1]} path (projects/PROJECT/{kind}/NAME) "
                                 f"nor a bare name")
        return name
    if "/" in name:
        raise ConnectorError(f"Pub/Sub: {name!r} is not a {kind[:-1]} path (projects/PROJECT/{kind}/NAME) "
                             f"nor a bare name")
    return f"projects/{project()}/{kind}/{name}"


def subscription_path(cfg, run_id: str | None = None) -> str:
    """The subscription a ``pubsub_subscription`` source reads.

    ``cfg.subscription`` (a path or a bare name) is returned as a path without any call to the service. With only
    ``cfg.topic``, the subscription ``flow-beam-<topic name>`` in the topic's project is created when missing
    (ack deadline 60 s) and its path returned; the name does not depend on ``run_id``, so successive runs continue
    from the same backlog (``run_id`` only labels a subscription this call creates). An existing subscription of
    that name attached to another topic is an error.
    """
    sub = getattr(cfg, "subscription", None)
    if sub:
        return _path(sub, "subscriptions", _SUB_RE)
    topic = getattr(cfg, "topic", None)
    if not topic:
        raise ConnectorError("pubsub_subscription needs 'subscription' or 'topic'")
    tpath = topic_path(topic)
    proj, tname = _TOPIC_RE.match(tpath).groups()
    spath = f"projects/{proj}/subscriptions/{('flow-beam-' + tname)[:255]}"
    _, subscriber = _clients()
    from google.api_core import exceptions as gexc

    try:
        existing = subscriber.get_subscription(request={"subscription": spath}, timeout=RPC_TIMEOUT_S)
    except gexc.NotFound:
        existing = None
    except Exception as exc:  # noqa: BLE001 - every client error becomes a ConnectorError
        raise _error(exc, f"reading subscription {spath}") from None
    if existing is None:
        labels = {"created-by": "flow-beam"}
        if run_id:
            labels["flow-beam-run"] = re.sub(r"[^a-z0-9_-]", "-", str(run_id).lower())[:63]
        try:
            subscriber.create_subscription(
                request={"name": spath, "topic": tpath, "ack_deadline_seconds": CREATED_ACK_DEADLINE_S,
                         "labels": labels}, timeout=RPC_TIMEOUT_S)
            return spath
        except gexc.AlreadyExists:  # created concurrently (another worker or run)
            try:
                existing = subscriber.get_subscription(request={"subscription": spath}, timeout=RPC_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001
                raise _error(exc, f"reading subscription {spath}") from None
        except gexc.NotFound:
            raise ConnectorError(f"Pub/Sub topic {tpath} does not exist: create it first (subscription {spath} "
                                 f"is created on it automatically)") from None
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, f"creating subscription {spath} on {tpath}") from None
    if existing.topic != tpath:
        raise ConnectorError(f"Pub/Sub subscription {spath} exists but is attached to {existing.topic!r}, not "
                             f"{tpath}: name the subscription explicitly ('subscription') or delete it")
    return spath


# --- clients --------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_cache: dict = {}


def _clients():
    """(PublisherClient, SubscriberClient), one pair per process and emulator host. Fails fast with a
    ConnectorError when ``PUBSUB_EMULATOR_HOST`` is set but nothing listens there."""
    host = os.environ.get(EMULATOR_ENV) or None
    if host:
        _check_reachable(host)
    key = (os.getpid(), host)
    with _lock:
        if key not in _cache:
            try:
                from google.cloud import pubsub_v1
            except ImportError:
                raise ConnectorError("Pub/Sub needs the google-cloud-pubsub package: pip install "
                                     "'google-cloud-pubsub>=2.18,<3'") from None
            try:
                _cache[key] = (pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient())
            except Exception as exc:  # noqa: BLE001 - DefaultCredentialsError and friends
                raise _error(exc, "creating the Pub/Sub client") from None
        return _cache[key]


def _check_reachable(host: str) -> None:
    h, _, port = host.rpartition(":")
    try:
        socket.create_connection((h.strip("[]") or "127.0.0.1", int(port)), timeout=3).close()
    except (OSError, ValueError) as exc:
        raise ConnectorError(f"cannot reach the Pub/Sub emulator at {EMULATOR_ENV}={host} ({exc}): is it running? "
                             f"Start the in-repo stand-in with {START_HINT}") from None


def _error(exc: Exception, doing: str) -> ConnectorError:
    """A ConnectorError that says what failed and what to do about it."""
    from google.api_core import exceptions as gexc

    host = os.environ.get(EMULATOR_ENV)
    where = f"{EMULATOR_ENV}={host}" if host else "pubsub.googleapis.com"
    name = type(exc).__name__
    if isinstance(exc, (gexc.ServiceUnavailable, gexc.RetryError)) or "DefaultCredentialsError" in name:
        if host:
            return ConnectorError(f"Pub/Sub: {doing} failed: cannot reach the emulator at {where} ({exc}); start "
                                  f"the in-repo stand-in with {START_HINT}")
        return ConnectorError(f"Pub/Sub: {doing} failed: cannot use pubsub.googleapis.com ({name}: {exc}). "
                              f"{EMULATOR_ENV} is unset, so the real service and Application Default Credentials "
                              f"are used; for local runs start the in-repo stand-in with {START_HINT}")
    if isinstance(exc, gexc.NotFound):
        return ConnectorError(f"Pub/Sub: {doing} failed: not found ({exc.message}) on {where}")
    if isinstance(exc, (gexc.PermissionDenied, gexc.Unauthenticated)):
        return ConnectorError(f"Pub/Sub: {doing} failed: permission denied on {where} ({exc.message})")
    if isinstance(exc, gexc.GoogleAPICallError):
        return ConnectorError(f"Pub/Sub: {doing} failed on {where}: {name}: {exc.message}")
    return ConnectorError(f"Pub/Sub: {doing} failed on {where}: {name}: {exc}")


# --- topics ---------------------------------------------------------------------------------------------------

def create_topic(topic: str) -> str:
    """Create the topic when it does not exist (idempotent); returns its path."""
    from google.api_core import exceptions as gexc

    path = topic_path(topic)
    publisher, _ = _clients()
    try:
        publisher.create_topic(request={"name": path}, timeout=RPC_TIMEOUT_S)
    except gexc.AlreadyExists:
        pass
    except Exception as exc:  # noqa: BLE001
        raise _error(exc, f"creating topic {path}") from None
    return path


def publish(topic: str, payloads: list[tuple[bytes, dict]]) -> int:
    """Publish ``(data, attributes)`` pairs to ``topic`` (path or bare name) and wait until the service accepted
    every one. Returns the number published. Attribute keys and values are sent as strings."""
    if not payloads:
        return 0
    path = topic_path(topic)
    publisher, _ = _clients()
    pending = []
    for i, (data, attrs) in enumerate(payloads):
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, bytes):
            raise ConnectorError(f"Pub/Sub publish to {path}: message {i} data must be bytes, "
                                 f"got {type(data).__name__}")
        attributes = {str(k): "" if v is None else str(v) for k, v in (attrs or {}).items()}
        try:
            pending.append(publisher.publish(path, data, **attributes))
        except Exception as exc:  # noqa: BLE001 - e.g. a message over the size limit
            raise _error(exc, f"publishing message {i} to {path}") from None
    failed = 0
    first = None
    for future in pending:
        try:
            future.result(timeout=PUBLISH_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001
            failed += 1
            first = first or exc
    if first is not None:
        from google.api_core import exceptions as gexc

        if isinstance(first, gexc.NotFound):
            raise ConnectorError(f"Pub/Sub publish: topic {path} does not exist ({failed} of {len(pending)} "
                                 f"messages not published)")
        if isinstance(first, TimeoutError) or type(first).__name__ == "TimeoutError":
            raise ConnectorError(f"Pub/Sub publish to {path}: {failed} of {len(pending)} messages not confirmed "
                                 f"within {PUBLISH_TIMEOUT_S:.0f}s")
        err = _error(first, f"publishing to {path}")
        raise ConnectorError(f"{err.message} ({failed} of {len(pending)} messages not published)")
    return len(pending)


# --- subscriptions --------------------------------------------------------------------------------------------

def pull(sub_path: str, max_messages: int = 1000, timeout_s: float = 1.0) -> list[Received]:
    """Up to ``max_messages`` messages from the subscription, waiting at most ``timeout_s`` seconds for some to
    arrive; ``[]`` when none did. The messages stay leased until acked or their ack deadline passes."""
    from google.api_core import exceptions as gexc
    from google.pubsub_v1 import types

    path = _path(sub_path, "subscriptions", _SUB_RE)
    _, subscriber = _clients()
    try:
        resp = subscriber.pull(request={"subscription": path, "max_messages": max_messages},
                               timeout=timeout_s, retry=None)
    except gexc.DeadlineExceeded:
        return []
    except gexc.NotFound:
        raise ConnectorError(f"Pub/Sub subscription {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001
        raise _error(exc, f"pulling from {path}") from None
    out = []
    for rm in types.PullResponse.pb(resp).received_messages:
        m = rm.message
        out.append(Received(ack_id=rm.ack_id, data=bytes(m.data), attributes=dict(m.attributes),
                            publish_time_us=m.publish_time.seconds * 1_000_000 + m.publish_time.nanos // 1000,
                            message_id=m.message_id))
    return out


def _by_chunks(sub_path: str, ack_ids, call: str, doing: str, **fields) -> None:
    """``subscriber.<call>`` over ``ack_ids`` in chunks the service accepts."""
    ids = list(ack_ids)
    if not ids:
        return
    path = _path(sub_path, "subscriptions", _SUB_RE)
    _, subscriber = _clients()
    for i in range(0, len(ids), _ACK_CHUNK):
        try:
            getattr(subscriber, call)(request={"subscription": path, "ack_ids": ids[i:i + _ACK_CHUNK], **fields},
                                      timeout=RPC_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, f"{doing} {len(ids)} message(s) on {path}") from None


def ack(sub_path: str, ack_ids) -> None:
    """Acknowledge the messages (they are not delivered again)."""
    _by_chunks(sub_path, ack_ids, "acknowledge", "acknowledging")


def modify_ack_deadline(sub_path: str, ack_ids, seconds: int) -> None:
    """Lease the messages for ``seconds`` more from now (0: hand them out again at once, i.e. nack)."""
    _by_chunks(sub_path, ack_ids, "modify_ack_deadline", "changing the ack deadline of",
               ack_deadline_seconds=seconds)
