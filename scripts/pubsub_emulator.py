"""An in-repo Pub/Sub stand-in: a small in-memory gRPC server for flow-beam's tests.

This is NOT Google's Pub/Sub emulator (``gcloud beta emulators pubsub``, which needs gcloud/Java and is not on
this machine). It implements just enough of the ``google.pubsub.v1`` Publisher and Subscriber services for the
google-cloud-pubsub client library, which talks to it when ``PUBSUB_EMULATOR_HOST=127.0.0.1:PORT`` is set
(insecure channel, anonymous credentials). Started and stopped by ``bash scripts/pubsub.sh start|stop``.

    python scripts/pubsub_emulator.py [--port N]     (default: $FLOW_BEAM_PUBSUB_PORT or 8681; binds 127.0.0.1 only)

Implemented RPCs
  Publisher   CreateTopic, GetTopic, DeleteTopic, ListTopics, ListTopicSubscriptions, Publish
  Subscriber  CreateSubscription, GetSubscription, DeleteSubscription, ListSubscriptions,
              Pull, StreamingPull, Acknowledge, ModifyAckDeadline
  Anything else answers UNIMPLEMENTED.

Semantics (a subset of the real service)
  * Names must be ``projects/P/topics/T`` / ``projects/P/subscriptions/S`` (ids: a letter, then 2-254 of
    ``[A-Za-z0-9-_.~+%]``, not starting with ``goog``); any project is accepted, nothing needs credentials.
  * Publish sets ``message_id`` (a decimal counter) and ``publish_time``; each message is copied to every
    subscription attached to the topic at publish time (subscriptions created later do not see it).
    A message needs data or attributes (INVALID_ARGUMENT otherwise); publishing to a missing topic is NOT_FOUND.
  * Pull / StreamingPull deliver, in publish order, unacked messages whose ack deadline has passed (new messages
    are immediately available). A delivered message is leased for the subscription's ``ack_deadline_seconds``
    (default 10 s; StreamingPull: the stream's ``stream_ack_deadline_seconds``) and redelivered with a new ack id
    when the lease runs out. ModifyAckDeadline sets the lease to N seconds from now (0 = redeliver at once).
    Acknowledge removes the message. Ack ids of an earlier delivery of the same message are still honoured.
  * Pull without ``return_immediately`` waits for messages until shortly before the caller's deadline (at most
    10 s) and then answers with an empty list, like the real service.
  * Deleting a topic detaches its subscriptions (their topic becomes ``_deleted-topic_``); they keep their backlog.
  * Not implemented: message ordering guarantees, filters, dead-letter and retry policies, exactly-once delivery,
    retention/seek/snapshots, push delivery, schemas, paging (List* return everything at once).
Everything lives in memory, guarded by one lock; a restart forgets all topics, subscriptions and messages.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import OrderedDict
from concurrent import futures

import grpc
from google.protobuf import empty_pb2, timestamp_pb2
from google.pubsub_v1 import types as _t

log = logging.getLogger("pubsub-stand-in")

DEFAULT_PORT = 8681
DEFAULT_ACK_DEADLINE = 10
MAX_ACK_DEADLINE = 600
MAX_PULL_WAIT = 10.0
DELETED_TOPIC = "_deleted-topic_"

# protobuf classes behind the client library's proto-plus types
Topic = _t.Topic.pb()
Subscription = _t.Subscription.pb()
PubsubMessage = _t.PubsubMessage.pb()
ReceivedMessage = _t.ReceivedMessage.pb()
GetTopicRequest = _t.GetTopicRequest.pb()
DeleteTopicRequest = _t.DeleteTopicRequest.pb()
ListTopicsRequest = _t.ListTopicsRequest.pb()
ListTopicsResponse = _t.ListTopicsResponse.pb()
ListTopicSubscriptionsRequest = _t.ListTopicSubscriptionsRequest.pb()
ListTopicSubscriptionsResponse = _t.ListTopicSubscriptionsResponse.pb()
PublishRequest = _t.PublishRequest.pb()
PublishResponse = _t.PublishResponse.pb()
GetSubscriptionRequest = _t.GetSubscriptionRequest.pb()
DeleteSubscriptionRequest = _t.DeleteSubscriptionRequest.pb()
ListSubscriptionsRequest = _t.ListSubscriptionsRequest.pb()
ListSubscriptionsResponse = _t.ListSubscriptionsResponse.pb()
PullRequest = _t.PullRequest.pb()
PullResponse = _t.PullResponse.pb()
StreamingPullRequest = _t.StreamingPullRequest.pb()
StreamingPullResponse = _t.StreamingPullResponse.pb()
AcknowledgeRequest = _t.AcknowledgeRequest.pb()
ModifyAckDeadlineRequest = _t.ModifyAckDeadlineRequest.pb()
Empty = empty_pb2.Empty

_ID = r"(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
_TOPIC_RE = re.compile(rf"^projects/([^/]+)/topics/({_ID})$")
_SUB_RE = re.compile(rf"^projects/([^/]+)/subscriptions/({_ID})$")


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _check(regex: re.Pattern, name: str, what: str) -> None:
    if not regex.match(name or ""):
        kind = "topics" if what == "topic" else "subscriptions"
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"Invalid {what} name {name!r}: expected projects/PROJECT/{kind}/ID (ID: a letter, then "
                     f"2-254 letters, digits or -_.~+%, not starting with 'goog')")


class _Pending:
    __slots__ = ("seq", "message", "available_at", "deliveries")

    def __init__(self, seq: int, message):
        self.seq = seq
        self.message = message  # PubsubMessage (pb) with message_id and publish_time set
        self.available_at = 0.0  # time.monotonic() from which it may be delivered (again)
        self.deliveries = 0


class _Sub:
    def __init__(self, pb):
        self.pb = pb  # Subscription (pb), returned by Get/List
        self.pending: OrderedDict[int, _Pending] = OrderedDict()

    @property
    def deadline(self) -> int:
        return self.pb.ack_deadline_seconds or DEFAULT_ACK_DEADLINE


class Broker:
    """The in-memory state and the operations on it; every public method takes the one lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified when messages become available
        self._topics: dict[str, object] = {}
        self._subs: dict[str, _Sub] = {}
        self._seq = itertools.count(1)
        self._message_ids = itertools.count(1)

    # --- topics -------------------------------------------------------------------------------------------
    def create_topic(self, topic):
        _check(_TOPIC_RE, topic.name, "topic")
        with self._lock:
            if topic.name in self._topics:
                raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Topic already exists: {topic.name}")
            stored = Topic()
            stored.CopyFrom(topic)
            self._topics[topic.name] = stored
            return stored

    def get_topic(self, name):
        _check(_TOPIC_RE, name, "topic")
        with self._lock:
            return self._topic(name)

    def _topic(self, name):
        try:
            return self._topics[name]
        except KeyError:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Topic not found: {name}") from None

    def delete_topic(self, name):
        _check(_TOPIC_RE, name, "topic")
        with self._lock:
            self._topic(name)
            del self._topics[name]
            for sub in self._subs.values():
                if sub.pb.topic == name:
                    sub.pb.topic = DELETED_TOPIC

    def list_topics(self, project):
        with self._lock:
            return [t for n, t in sorted(self._topics.items()) if n.startswith(f"{project}/topics/")]

    def list_topic_subscriptions(self, topic):
        with self._lock:
            self._topic(topic)
            return sorted(n for n, s in self._subs.items() if s.pb.topic == topic)

    def publish(self, topic, messages) -> list[str]:
        _check(_TOPIC_RE, topic, "topic")
        if not messages:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "A Publish request needs at least one message")
        for m in messages:
            if not m.data and not m.attributes:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             "Some messages are empty: a message needs data or at least one attribute")
        with self._lock:
            self._topic(topic)
            targets = [s for s in self._subs.values() if s.pb.topic == topic]
            ids = []
            now = timestamp_pb2.Timestamp()
            now.GetCurrentTime()
            for m in messages:
                stored = PubsubMessage()
                stored.CopyFrom(m)
                stored.message_id = str(next(self._message_ids))
                stored.publish_time.CopyFrom(now)
                ids.append(stored.message_id)
                for sub in targets:
                    seq = next(self._seq)
                    sub.pending[seq] = _Pending(seq, stored)
            self._changed.notify_all()
            return ids

    # --- subscriptions ------------------------------------------------------------------------------------
    def create_subscription(self, sub):
        _check(_SUB_RE, sub.name, "subscription")
        _check(_TOPIC_RE, sub.topic, "topic")
        if sub.ack_deadline_seconds and not 10 <= sub.ack_deadline_seconds <= MAX_ACK_DEADLINE:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"ack_deadline_seconds must be between 10 and {MAX_ACK_DEADLINE}, "
                         f"got {sub.ack_deadline_seconds}")
        with self._lock:
            if sub.name in self._subs:
                raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Subscription already exists: {sub.name}")
            self._topic(sub.topic)
            stored = Subscription()
            stored.CopyFrom(sub)
            stored.ack_deadline_seconds = sub.ack_deadline_seconds or DEFAULT_ACK_DEADLINE
            stored.state = Subscription.State.ACTIVE
            self._subs[sub.name] = _Sub(stored)
            return stored

    def _sub(self, name) -> _Sub:
        try:
            return self._subs[name]
        except KeyError:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Subscription does not exist: {name}") from None

    def get_subscription(self, name):
        _check(_SUB_RE, name, "subscription")
        with self._lock:
            return self._sub(name).pb

    def delete_subscription(self, name):
        _check(_SUB_RE, name, "subscription")
        with self._lock:
            self._sub(name)
            del self._subs[name]
            self._changed.notify_all()

    def list_subscriptions(self, project):
        with self._lock:
            return [s.pb for n, s in sorted(self._subs.items()) if n.startswith(f"{project}/subscriptions/")]

    # --- delivery -----------------------------------------------------------------------------------------
    def _take(self, sub: _Sub, max_messages: int, deadline_s: int) -> list:
        """Lease up to max_messages available messages (lock held); returns ReceivedMessage pbs."""
        now = time.monotonic()
        out = []
        for p in sub.pending.values():
            if len(out) >= max_messages:
                break
            if p.available_at <= now:
                p.deliveries += 1
                p.available_at = now + deadline_s
                out.append(ReceivedMessage(ack_id=f"{p.seq}-{p.deliveries}", message=p.message))
        return out

    def _next_expiry(self, sub: _Sub) -> float | None:
        return min((p.available_at for p in sub.pending.values()), default=None)

    def pull(self, name, max_messages: int, wait_s: float, deadline_s: int | None = None,
             stop: threading.Event | None = None) -> list:
        """Messages now, or (wait_s > 0) as soon as some become available within wait_s seconds."""
        _check(_SUB_RE, name, "subscription")
        if max_messages <= 0:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "max_messages must be greater than 0")
        end = time.monotonic() + max(wait_s, 0.0)
        with self._lock:
            while True:
                sub = self._sub(name)
                got = self._take(sub, max_messages, deadline_s or sub.deadline)
                now = time.monotonic()
                if got or now >= end or (stop is not None and stop.is_set()):
                    return got
                timeout = end - now
                nxt = self._next_expiry(sub)
                if nxt is not None:
                    timeout = min(timeout, max(nxt - now, 0.0) + 0.005)
                self._changed.wait(min(timeout, 0.5))

    def _parse_ack_id(self, ack_id: str) -> int:
        try:
            seq, _, _attempt = ack_id.partition("-")
            return int(seq)
        except ValueError:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid ack id {ack_id!r}") from None

    def acknowledge(self, name, ack_ids) -> None:
        _check(_SUB_RE, name, "subscription")
        seqs = [self._parse_ack_id(a) for a in ack_ids]
        with self._lock:
            sub = self._sub(name)
            for seq in seqs:
                sub.pending.pop(seq, None)

    def modify_ack_deadline(self, name, ack_ids, seconds) -> None:
        _check(_SUB_RE, name, "subscription")
        if isinstance(seconds, int):
            seconds = [seconds] * len(ack_ids)
        for s in seconds:
            if not 0 <= s <= MAX_ACK_DEADLINE:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"ack_deadline_seconds must be between 0 and {MAX_ACK_DEADLINE}, got {s}")
        pairs = [(self._parse_ack_id(a), s) for a, s in zip(ack_ids, seconds)]
        with self._lock:
            sub = self._sub(name)
            now = time.monotonic()
            for seq, s in pairs:
                p = sub.pending.get(seq)
                if p is not None:
                    p.available_at = now + s
            self._changed.notify_all()


class Service:
    """The gRPC handlers: (de)serialisation and status codes around a :class:`Broker`."""

    def __init__(self, broker: Broker):
        self.b = broker

    # every unary handler goes through here, so _Abort becomes a gRPC status
    @staticmethod
    def _unary(fn):
        def handler(request, context):
            try:
                return fn(request, context)
            except _Abort as exc:
                context.abort(exc.code, exc.message)
        return handler

    @staticmethod
    def _project(parent: str) -> str:
        if not re.match(r"^projects/[^/]+$", parent or ""):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid project name {parent!r}")
        return parent

    # Publisher
    def CreateTopic(self, req, ctx):
        return self.b.create_topic(req)

    def GetTopic(self, req, ctx):
        return self.b.get_topic(req.topic)

    def DeleteTopic(self, req, ctx):
        self.b.delete_topic(req.topic)
        return Empty()

    def ListTopics(self, req, ctx):
        return ListTopicsResponse(topics=self.b.list_topics(self._project(req.project)))

    def ListTopicSubscriptions(self, req, ctx):
        return ListTopicSubscriptionsResponse(subscriptions=self.b.list_topic_subscriptions(req.topic))

    def Publish(self, req, ctx):
        return PublishResponse(message_ids=self.b.publish(req.topic, list(req.messages)))

    # Subscriber
    def CreateSubscription(self, req, ctx):
        return self.b.create_subscription(req)

    def GetSubscription(self, req, ctx):
        return self.b.get_subscription(req.subscription)

    def DeleteSubscription(self, req, ctx):
        self.b.delete_subscription(req.subscription)
        return Empty()

    def ListSubscriptions(self, req, ctx):
        return ListSubscriptionsResponse(subscriptions=self.b.list_subscriptions(self._project(req.project)))

    def Pull(self, req, ctx):
        wait = 0.0
        if not req.return_immediately:
            remaining = ctx.time_remaining()
            wait = MAX_PULL_WAIT if remaining is None else min(MAX_PULL_WAIT, remaining - 0.25)
        stop = threading.Event()
        ctx.add_callback(stop.set)  # client went away: stop waiting
        return PullResponse(received_messages=self.b.pull(req.subscription, req.max_messages, wait, stop=stop))

    def Acknowledge(self, req, ctx):
        self.b.acknowledge(req.subscription, list(req.ack_ids))
        return Empty()

    def ModifyAckDeadline(self, req, ctx):
        self.b.modify_ack_deadline(req.subscription, list(req.ack_ids), req.ack_deadline_seconds)
        return Empty()

    def StreamingPull(self, request_iterator, ctx):
        """First request names the subscription; later ones carry acks and deadline changes. Messages are
        pushed as they become available until the client closes the stream or the server stops."""
        try:
            first = next(request_iterator)
        except StopIteration:
            return
        name = first.subscription
        deadline = first.stream_ack_deadline_seconds
        try:
            if not 10 <= deadline <= MAX_ACK_DEADLINE:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"stream_ack_deadline_seconds must be between 10 and {MAX_ACK_DEADLINE}, got {deadline}")
            self.b.get_subscription(name)
            self._stream_request(name, first)
        except _Abort as exc:
            ctx.abort(exc.code, exc.message)
        batch = min(first.max_outstanding_messages or 1000, 1000)
        closed = threading.Event()
        ctx.add_callback(closed.set)

        def read_requests():
            nonlocal deadline
            try:
                for req in request_iterator:
                    if req.stream_ack_deadline_seconds:
                        deadline = req.stream_ack_deadline_seconds
                    self._stream_request(name, req)
            except (_Abort, grpc.RpcError, Exception) as exc:  # noqa: BLE001 - any failure ends the stream
                log.debug("StreamingPull request stream of %s ended: %s", name, exc)
            finally:
                closed.set()

        threading.Thread(target=read_requests, name=f"streaming-pull-reader {name}", daemon=True).start()
        while not closed.is_set() and ctx.is_active():
            try:
                got = self.b.pull(name, batch, 1.0, deadline_s=deadline, stop=closed)
            except _Abort as exc:
                ctx.abort(exc.code, exc.message)
            if got:
                yield StreamingPullResponse(received_messages=got)

    def _stream_request(self, name, req):
        if req.ack_ids:
            self.b.acknowledge(name, list(req.ack_ids))
        if req.modify_deadline_ack_ids:
            if len(req.modify_deadline_ack_ids) != len(req.modify_deadline_seconds):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             "modify_deadline_seconds and modify_deadline_ack_ids differ in length")
            self.b.modify_ack_deadline(name, list(req.modify_deadline_ack_ids), list(req.modify_deadline_seconds))

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        def unary(name, req_cls, resp_cls):
            return grpc.unary_unary_rpc_method_handler(
                self._unary(getattr(self, name)), request_deserializer=req_cls.FromString,
                response_serializer=resp_cls.SerializeToString)

        publisher = {
            "CreateTopic": unary("CreateTopic", Topic, Topic),
            "GetTopic": unary("GetTopic", GetTopicRequest, Topic),
            "DeleteTopic": unary("DeleteTopic", DeleteTopicRequest, Empty),
            "ListTopics": unary("ListTopics", ListTopicsRequest, ListTopicsResponse),
            "ListTopicSubscriptions": unary("ListTopicSubscriptions", ListTopicSubscriptionsRequest,
                                            ListTopicSubscriptionsResponse),
            "Publish": unary("Publish", PublishRequest, PublishResponse),
        }
        subscriber = {
            "CreateSubscription": unary("CreateSubscription", Subscription, Subscription),
            "GetSubscription": unary("GetSubscription", GetSubscriptionRequest, Subscription),
            "DeleteSubscription": unary("DeleteSubscription", DeleteSubscriptionRequest, Empty),
            "ListSubscriptions": unary("ListSubscriptions", ListSubscriptionsRequest, ListSubscriptionsResponse),
            "Pull": unary("Pull", PullRequest, PullResponse),
            "Acknowledge": unary("Acknowledge", AcknowledgeRequest, Empty),
            "ModifyAckDeadline": unary("ModifyAckDeadline", ModifyAckDeadlineRequest, Empty),
            "StreamingPull": grpc.stream_stream_rpc_method_handler(
                self.StreamingPull, request_deserializer=StreamingPullRequest.FromString,
                response_serializer=StreamingPullResponse.SerializeToString),
        }
        return [grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", publisher),
                grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", subscriber)]


def serve(port: int, max_workers: int = 64) -> grpc.Server:
    """Start the stand-in on 127.0.0.1:PORT (0 = any free port; read it from ``server.flow_beam_port``)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pubsub"),
                         options=[("grpc.max_receive_message_length", 20 * 1024 * 1024),
                                  ("grpc.max_send_message_length", 20 * 1024 * 1024),
                                  ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(Service(Broker()).handlers())
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if not bound:
        raise OSError(f"cannot bind 127.0.0.1:{port}")
    server.start()
    server.flow_beam_port = bound
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="In-repo Pub/Sub stand-in (not Google's emulator).")
    parser.add_argument("port", nargs="?", type=int, help="port on 127.0.0.1 (same as --port)")
    parser.add_argument("--port", dest="port_opt", type=int,
                        default=int(os.environ.get("FLOW_BEAM_PUBSUB_PORT", DEFAULT_PORT)),
                        help="port on 127.0.0.1 (default: $FLOW_BEAM_PUBSUB_PORT or 8681)")
    args = parser.parse_args(argv)
    port = args.port if args.port is not None else args.port_opt
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = serve(port)
    except (OSError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    stopping = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %d: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("in-repo Pub/Sub stand-in listening on 127.0.0.1:%d (pid %d)", server.flow_beam_port, os.getpid())
    while not stopping.wait(1.0):
        pass
    server.stop(grace=1.0).wait(5)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
