"""``pubsub_subscription`` (source) and ``pubsub_topic`` (sink): Google Cloud Pub/Sub, or its emulator.

Source ``{"connector": "pubsub_subscription", "config": {"subscription": "orders-sub", "format": "json"}}`` (or
``"topic"``: a subscription is created for it). Drained runs pull until the subscription is empty and ack after the
loads committed (:meth:`PubsubSubscriptionSource.finish`); streaming runs ack as the targets' frontiers pass
(the shared unbounded reader of :mod:`connectors.streams`). On Dataflow Beam's own ReadFromPubSub / WriteToPubSub
are used. The readers are :mod:`.reader`, the client is :mod:`.client`.
"""
from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from connectors.base import Capabilities, ConnectorConfig, Finished, RunInfo, Sink, Source

REPORTS = "pubsub"  # the run folder's reports of drained runs: the ack ids pulled (connectors.pubsub.reader)


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
    capabilities = Capabilities(bounded=False, finishes=True, streams=True)
    doc = "a Pub/Sub subscription (or a topic: a subscription is made for it); acked after the loads"

    def describe(self, node, unbounded=False):
        return ["Dataflow: ReadFromPubSub → ParDo(decode)",
                "local: splittable ParDo(Pull rounds, ack once final) (drain: ParDo(pull until empty))"]

    def read(self, p, node, ctx, prepared, schema):
        from connectors.pubsub.reader import read
        return read(p, node, ctx, schema)

    def finish(self, node, prepared, ok, run: RunInfo) -> Finished:
        """After a drain run: ack its messages (loads committed) or hand them back at once (the run failed)."""
        from connectors.pubsub import client
        from connectors.runtime import read_reports

        done = Finished()
        rep = read_reports(run.run_dir, REPORTS).get(node.id) if run.run_dir else None
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
    capabilities = Capabilities(beam_write_on_dataflow=True)
    doc = "rows as messages of a Pub/Sub topic (attributes from columns), published before the commit ends"

    def beam_write(self, pcoll, node, ctx, label):
        """Dataflow: Beam's own WriteToPubSub."""
        import apache_beam as beam

        from connectors.pubsub.client import topic_path
        from connectors.pubsub.reader import messages_of
        return (pcoll | f"{label}/Messages" >> beam.FlatMap(messages_of, node.config)
                | f"{label}/WriteToPubSub" >> beam.io.WriteToPubSub(topic_path(node.config.topic),
                                                                    with_attributes=True))

    def write(self, node, config, table, prefix):
        from connectors.pubsub import client
        payloads = payloads_of(config, table)
        return (client.publish(config.topic, payloads) if payloads else 0), []


def payloads_of(cfg, table) -> list[tuple[bytes, dict]]:
    """Rows → (data, attributes): the ``attributes`` columns become message attributes."""
    from connectors.codecs import encode
    from connectors.formats import json_rows
    from connectors.runtime import ORD, strip_internal

    if ORD in table.column_names:
        table = table.sort_by([(ORD, "ascending")])
    attrs = list(cfg.attributes or [])
    return [(encode(cfg, {k: v for k, v in r.items() if k not in attrs}),
             {a: "" if r.get(a) is None else str(r.get(a)) for a in attrs}) for r in json_rows(strip_internal(table))]

