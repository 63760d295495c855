"""``pubsub_subscription`` (source) and ``pubsub_topic`` (sink): Google Cloud Pub/Sub, or its emulator.

Source ``{"connector": "pubsub_subscription", "config": {"subscription": "orders-sub", "format": "json"}}`` (or
``"topic"``: a subscription is created for it). Drained runs pull until the subscription is empty and ack after the
loads committed (:meth:`PubsubSubscriptionSource.finish`); streaming runs ack as the targets' frontiers pass. On
Dataflow Beam's own ReadFromPubSub / WriteToPubSub are used. The client is :mod:`.client`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from connectors.base import Capabilities, ConnectorConfig, Finished, RunInfo, Sink, Source


class PubsubSubscriptionConfig(ConnectorConfig):
    subscription: str | None = None
    topic: str | None = None
    format: Literal["json", "avro", "csv", "raw"] = "json"
    idAttribute: str | None = None
    timestampAttribute: str | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.subscription is None) == (self.topic is None):
            raise ValueError("pubsub_subscription needs exactly one of 'subscription' or 'topic'")
        return self


class PubsubTopicConfig(ConnectorConfig):
    topic: str
    format: Literal["json", "avro", "csv", "raw"] = "json"
    attributes: list[str] | None = None


class PubsubSubscriptionSource(Source):
    name = "pubsub_subscription"
    config = PubsubSubscriptionConfig
    capabilities = Capabilities(bounded=False, finishes=True)
    doc = "a Pub/Sub subscription (or a topic: a subscription is made for it); acked after the loads"

    def describe(self, node, unbounded=False):
        return ["Dataflow: ReadFromPubSub → ParDo(decode)",
                "local: splittable ParDo(Pull rounds, ack once final) (drain: ParDo(pull until empty))"]

    def read(self, p, node, ctx, prepared, schema):
        raise NotImplementedError("the Pub/Sub readers are wired by ir_compiler.lower.build (they move here next)")

    def finish(self, node, prepared, ok, run: RunInfo) -> Finished:
        """After a drain run: ack its messages (loads committed) or hand them back at once (the run failed)."""
        from connectors.pubsub import client
        from connectors.runtime import read_reports

        done = Finished()
        rep = read_reports(run.run_dir, "pubsub").get(node.id) if run.run_dir else None
        if rep is None:
            return done
        try:
            if ok:
                client.ack(rep["subscription"], rep["ackIds"])
            else:
                client.modify_ack_deadline(rep["subscription"], rep["ackIds"], 0)
        except Exception as exc:  # noqa: BLE001 - unacked messages are redelivered: at-least-once
            done.warnings.append(f"node '{node.id}': could not {'ack' if ok else 'release'} Pub/Sub messages "
                                 f"({exc}); they will be delivered again")
        return done


class PubsubTopicSink(Sink):
    name = "pubsub_topic"
    config = PubsubTopicConfig
    doc = "rows as messages of a Pub/Sub topic (attributes from columns), published before the commit ends"

    def write(self, node, config, table, prefix):
        from connectors.pubsub import client
        payloads = payloads_of(config, table)
        return (client.publish(config.topic, payloads) if payloads else 0), []


def payloads_of(cfg, table) -> list[tuple[bytes, dict]]:
    """Rows → (data, attributes): the ``attributes`` columns become message attributes."""
    from connectors.codecs import encode
    from connectors.runtime import ORD, strip_internal

    if ORD in table.column_names:
        table = table.sort_by([(ORD, "ascending")])
    attrs = list(cfg.attributes or [])
    return [(encode(cfg, {k: v for k, v in r.items() if k not in attrs}),
             {a: "" if r.get(a) is None else str(r.get(a)) for a in attrs}) for r in strip_internal(table).to_pylist()]


def __getattr__(name: str) -> Any:
    """``connectors.pubsub.pull`` etc.: the client's functions, imported when first asked for (the readers in
    ir_compiler.lower.pubsub still reach them here)."""
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib
    client = importlib.import_module("connectors.pubsub.client")  # (not `from . import`: that would ask us again)
    try:
        return getattr(client, name)
    except AttributeError:
        raise AttributeError(f"module 'connectors.pubsub' has no attribute {name!r}") from None
