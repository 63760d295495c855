"""The Kafka client of kafka_consumer / kafka_producer (kafka-python): plan offset ranges (drain mode: every
message that is in the topics when the run starts, from the group's committed offsets or ``startingOffsets``) or
start positions (streaming), read a range, commit offsets after the loads committed, produce rows.
Streaming mode (an unbounded reader per partition, :mod:`.stream`) uses
``start_positions`` and ``commit_offsets`` from here."""
from __future__ import annotations

from dataclasses import dataclass

from connectors.codecs import encode
from ir_compiler.errors import ConnectorError


@dataclass(frozen=True)
class OffsetRange:
    topic: str
    partition: int
    start: int
    end: int  # exclusive


def _servers(cfg) -> list[str]:
    return [cfg.bootstrapServers] if isinstance(cfg.bootstrapServers, str) else list(cfg.bootstrapServers)


def _topics(cfg) -> list[str]:
    return [cfg.topics] if isinstance(cfg.topics, str) else list(cfg.topics)


def _check_reachable(cfg) -> None:
    """Fail fast (instead of the client's long retries) when no bootstrap server accepts a connection."""
    import socket

    for server in _servers(cfg):
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host or server, int(port or 9092)), timeout=5).close()
            return
        except (OSError, ValueError):
            continue
    raise ConnectorError(f"cannot reach Kafka at {', '.join(_servers(cfg))}: no bootstrap server accepts "
                         f"connections; is the broker running (bash scripts/kafka.sh start)?")


def _consumer(cfg, **kw):
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(bootstrap_servers=_servers(cfg), group_id=cfg.groupId, enable_auto_commit=False,
                             request_timeout_ms=15000, **kw)
    except KafkaError as exc:
        raise ConnectorError(f"cannot reach Kafka at {', '.join(_servers(cfg))}: {exc}; is the broker running "
                             f"(bash scripts/kafka.sh start)?") from None


def _positions(cfg) -> list[tuple[str, int, int, int]]:
    """(topic, partition, start, end) of every partition: start from the committed offset (or
    earliest/latest), end = the current end offset."""
    from kafka import TopicPartition

    _check_reachable(cfg)
    consumer = _consumer(cfg)
    try:
        parts = []
        for topic in _topics(cfg):
            ids = consumer.partitions_for_topic(topic)
            if not ids:
                raise ConnectorError(f"Kafka topic {topic!r} does not exist on {', '.join(_servers(cfg))}")
            parts += [TopicPartition(topic, p) for p in sorted(ids)]
        begin, end = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
        out = []
        for tp in parts:
            committed = consumer.committed(tp) if cfg.startingOffsets == "committed" else None
            if committed is not None:
                start = max(committed, begin[tp])
            elif cfg.startingOffsets == "latest":
                start = end[tp]
            else:  # earliest, or committed with nothing committed yet
                start = begin[tp]
            out.append((tp.topic, tp.partition, start, end[tp]))
        return out
    finally:
        consumer.close()


def plan_ranges(cfg) -> list[OffsetRange]:
    """The offset ranges to read now (drain mode): from the start position to the end offset."""
    return [OffsetRange(t, p, s, e) for t, p, s, e in _positions(cfg) if s < e]


def start_positions(cfg) -> list[tuple[str, int, int]]:
    """(topic, partition, start offset) of every partition (streaming mode reads from there on), plus
    ``cfg.discoverPartitions`` slots per topic for partitions added while the job runs (read from offset 0)."""
    out = [(t, p, s) for t, p, s, _ in _positions(cfg)]
    for topic in _topics(cfg):
        top = max([p for t, p, _ in out if t == topic], default=-1)
        out += [(topic, top + 1 + k, 0) for k in range(cfg.discoverPartitions)]
    return out


def commit_offsets(cfg, offsets: dict[tuple[str, int], int]) -> None:
    """Commit ``{(topic, partition): next offset}`` to the consumer group."""
    commit_ranges(cfg, [OffsetRange(t, p, o, o) for (t, p), o in offsets.items()])


def read_range(cfg, rng: OffsetRange, poll_ms: int = 1000):
    """Yield the messages of one offset range (in offset order)."""
    from kafka import TopicPartition

    consumer = _consumer(cfg)
    tp = TopicPartition(rng.topic, rng.partition)
    try:
        consumer.assign([tp])
        consumer.seek(tp, rng.start)
        position, idle = rng.start, 0
        while position < rng.end:
            batch = consumer.poll(timeout_ms=poll_ms, max_records=5000).get(tp, [])
            if not batch:
                idle += 1
                if idle > 30:
                    raise ConnectorError(f"Kafka stopped answering while reading {rng.topic}[{rng.partition}] "
                                         f"at offset {position}")
                continue
            for msg in batch:
                if msg.offset >= rng.end:
                    return
                position = msg.offset + 1
                yield msg
    finally:
        consumer.close()


def commit_ranges(cfg, ranges: list[OffsetRange]) -> None:
    """Commit the end offsets of what was read (call only after the loads committed)."""
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    if not ranges:
        return
    consumer = _consumer(cfg)
    try:
        offsets = {TopicPartition(r.topic, r.partition): OffsetAndMetadata(r.end, "", -1) for r in ranges}
        consumer.commit(offsets)
    finally:
        consumer.close()


def produce(cfg, rows: list[dict]) -> int:
    """Send rows to ``cfg.topic`` (key = the ``key`` column(s) joined by '|'), wait until every message is
    acknowledged (acks=all); raises ConnectorError if any send failed."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    _check_reachable(cfg)
    keys = [cfg.key] if isinstance(cfg.key, str) else list(cfg.key or [])
    producer = KafkaProducer(bootstrap_servers=_servers(cfg), acks="all", linger_ms=5, retries=5)
    try:
        futures = []
        for row in rows:
            key = "|".join("" if row.get(k) is None else str(row.get(k)) for k in keys).encode() if keys else None
            futures.append(producer.send(cfg.topic, key=key, value=encode(cfg, row)))
        producer.flush()
        for f in futures:
            f.get(timeout=30)
        return len(futures)
    except KafkaError as exc:
        raise ConnectorError(f"could not write to Kafka topic {cfg.topic!r}: {exc}") from None
    finally:
        producer.close()
