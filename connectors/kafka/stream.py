"""The streaming read of ``kafka_consumer``: each partition (and each discovery slot for a partition added while
the job runs) is a :class:`~connectors.streams.Partition` read by the shared unbounded reader of
:mod:`connectors.streams`; positions are offsets, the order column carries them, and offsets are committed to the
consumer group as the targets' frontiers pass the messages (:class:`KafkaLog`)."""
from __future__ import annotations

import threading
import time

from connectors.codecs import Record
from connectors.streams import LogSpec, Partition, PartitionLog, stream_read

POLL_S = 1.0  # one bounded read polls at most this long
_TOPICS: dict[tuple, list] = {}  # (servers, topic) -> [partitions known to exist, when metadata was last read]
_TOPICS_LOCK = threading.Lock()


def read_stream(p, node, ctx, starts: list, schema):
    """{main, errors} of a streaming Kafka source; ``starts``: (topic, partition, start offset) per partition, the
    last ``discoverPartitions`` of each topic being slots for partitions that may be added later."""
    from connectors.kafka.client import _topics

    cfg = node.config
    names = _topics(cfg)
    parts = [Partition(f"{t}[{q}]", names.index(t), q, s, (t, q)) for t, q, s in starts]
    launch = []  # the partitions that exist at launch (start_positions appends discovery slots per topic)
    for topic in dict.fromkeys(t for t, _, _ in starts):
        mine = [f"{t}[{q}]" for t, q, _ in starts if t == topic]
        launch += mine[:max(0, len(mine) - cfg.discoverPartitions)]
    return stream_read(p, node, ctx, KafkaLog(cfg), parts, schema, "ReadKafkaStream", launch=launch)


class KafkaLog(LogSpec):
    """Partitions of the consumer's topics; offsets committed to its group (``commitOffsets``)."""

    ord_by_position = True

    def __init__(self, cfg):
        self.cfg = cfg

    def open(self, part):
        return _PartitionLog(self.cfg, part)

    def commits(self):
        return self.cfg.commitOffsets

    def commit(self, batch):
        from connectors.kafka.client import commit_offsets
        commit_offsets(self.cfg, {part.info: pos + 1 for part, _, pos in batch.values()})


class _PartitionLog(PartitionLog):
    """One assigned partition: fetching continues where the last read ended, a moved restriction seeks."""

    def __init__(self, cfg, part):
        self.cfg, self.part, self.tp = cfg, part, tuple(part.info)
        self.consumer = None
        self.position: int | None = None  # where the consumer fetches next (None: seek before reading)

    def _consumer(self):
        if self.consumer is None:
            from kafka import TopicPartition

            from connectors.kafka.client import _consumer
            self.consumer = _consumer(self.cfg)
            self.consumer.assign([TopicPartition(*self.tp)])
            self.position = None
        return self.consumer

    def _exists(self) -> bool:
        """Dynamic partition discovery: a slot for a partition that does not exist yet checks the topic's
        metadata every 10 s; once the partition is created it is read from its first offset."""
        from connectors.kafka.client import _consumer, _servers

        topic, partition = self.tp
        with _TOPICS_LOCK:
            entry = _TOPICS.setdefault((tuple(_servers(self.cfg)), topic), [set(), -1e9])
            if partition in entry[0]:
                return True
            now = time.monotonic()
            if now - entry[1] < 10:
                return False
            entry[1] = now
        try:
            c = _consumer(self.cfg)
            try:
                found = set(c.partitions_for_topic(topic) or ())
            finally:
                c.close()
        except Exception:  # noqa: BLE001 - metadata unavailable now: look again in 10 s
            return False
        with _TOPICS_LOCK:
            entry[0] |= found
        return partition in found

    def read(self, start, limit):
        from kafka import TopicPartition

        if not self._exists():
            return [], None  # a discovery slot: no partition yet
        ktp = TopicPartition(*self.tp)
        consumer = self._consumer()
        if self.position != start:  # a resumed or moved restriction: seek; else keep fetching
            consumer.seek(ktp, start)
        messages = []
        deadline = time.monotonic() + POLL_S
        while time.monotonic() < deadline and len(messages) < limit:
            got = consumer.poll(timeout_ms=200, max_records=limit).get(ktp, [])
            if not got:
                break
            messages += got
        if not messages:
            self.position = None  # nothing read: seek again next time (the restriction is unchanged)
            return [], self._at_end(start)
        self.position = messages[-1].offset + 1
        raw = self.cfg.format == "raw"
        return [_record(m, raw) for m in messages], False

    def rewind(self, records):
        self.position = None  # seek to the restriction's next start
        return True

    def _at_end(self, next_offset: int) -> bool:
        """Caught up only once the partition is read to its end offset (a slow poll is not an idle topic)."""
        from kafka import TopicPartition
        ktp = TopicPartition(*self.tp)
        consumer = self._consumer()
        try:
            end = consumer.end_offsets([ktp]).get(ktp)
            if end is not None and next_offset < end and self.position is not None:
                next_offset = max(next_offset, consumer.position(ktp))  # past transaction markers
        except Exception:  # noqa: BLE001 - the broker did not answer: not at the end (try again later)
            return False
        return end is None or next_offset >= end

    def close(self):
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None


def _record(msg, raw: bool = True) -> Record:
    """A consumed message as a Record; its ``raw`` row (every value decoded to text) only for format raw."""
    ts = msg.timestamp if msg.timestamp is not None and msg.timestamp >= 0 else None
    where = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
    row = {"key": msg.key.decode("utf-8", "replace") if msg.key else None,
           "value": msg.value.decode("utf-8", "replace") if msg.value is not None else None,
           "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
           "timestamp": msg.timestamp} if raw else {}
    return Record(msg.offset, msg.value, msg.key, ts * 1000 if ts is not None else None, where,
                  f"{msg.topic}[{msg.partition}]@{msg.offset}", row, f"{msg.topic}[{msg.partition}]")
