"""The Kafka broker started by scripts/kafka.sh (KRaft, 127.0.0.1) answers a real produce/consume round trip.
(The kafka_consumer source itself is not in this build; this keeps the component honest for the streaming work.)"""
import os
import uuid

import pytest

pytestmark = pytest.mark.infra


def test_kafka_round_trip():
    servers = os.environ.get("FLOW_BEAM_KAFKA")
    if not servers:
        pytest.skip("Kafka not running: bash scripts/kafka.sh start && eval \"$(bash scripts/kafka.sh env)\"")
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"t-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=servers)
    for i in range(5):
        producer.send(topic, key=str(i).encode(), value=f'{{"n": {i}}}'.encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000, group_id=f"g-{topic}")
    values = sorted(m.value.decode() for m in consumer)
    consumer.close()
    assert values == [f'{{"n": {i}}}' for i in range(5)]
