"""The real components started by scripts/{postgres,kafka,flink,prism}.sh answer a real round trip.

Each test skips, saying how to start its component, when the env var that scripts/<component>.sh env prints is
unset:  bash scripts/services.sh up pg kafka prism && eval "$(bash scripts/services.sh env)"
"""
import os
import time
import uuid

import pytest

pytestmark = pytest.mark.infra


def _require(var, script):
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} is unset: start the component with `bash scripts/{script} start` "
                    f"and `eval \"$(bash scripts/{script} env)\"`")
    return value


# --- PostgreSQL ---------------------------------------------------------------------------------------------

def test_postgres_round_trip():
    base = _require("FLOW_BEAM_PG_URL", "postgres.sh")
    import psycopg

    name = f"fb_infra_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = base.rsplit("/", 1)[0] + "/" + name
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO items VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])
            conn.commit()
            rows = conn.execute("SELECT id, label FROM items ORDER BY id").fetchall()
        assert rows == [(1, "a"), (2, "b"), (3, "c")]
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            left = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0]
    assert left == 0


# --- Kafka --------------------------------------------------------------------------------------------------

def test_kafka_round_trip():
    servers = _require("FLOW_BEAM_KAFKA", "kafka.sh")
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"fb-infra-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
        assert topic in admin.list_topics()
    finally:
        admin.close()

    sent = [f'{{"n": {i}}}' for i in range(10)]
    producer = KafkaProducer(bootstrap_servers=servers, request_timeout_ms=30000)
    for i, value in enumerate(sent):
        producer.send(topic, key=str(i).encode(), value=value.encode())
    producer.flush(timeout=30)
    producer.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest",
                             group_id=f"g-{topic}", enable_auto_commit=False)
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                got.extend(r.value.decode() for r in records)
    finally:
        consumer.close()
    assert sorted(got) == sorted(sent)


# --- Beam runners: the same tiny pipeline on Flink (job server) and Prism --------------------------------------

def _run_tiny_pipeline(out_dir, runner_args):
    """Create([1, 2, 3]) | Map(x * 10) | a DoFn writing each bundle to its own file (LOOPBACK runs it here)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    class WriteBundle(beam.DoFn):
        def __init__(self, folder):
            self.folder = folder

        def start_bundle(self):
            self.items = []

        def process(self, element):
            self.items.append(element)

        def finish_bundle(self):
            if self.items:
                path = os.path.join(self.folder, f"part-{uuid.uuid4().hex}.txt")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write("".join(f"{x}\n" for x in self.items))

    options = PipelineOptions(runner_args)
    started = time.monotonic()
    with beam.Pipeline(options=options) as p:
        _ = (p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 10) | beam.ParDo(WriteBundle(str(out_dir))))
    elapsed = time.monotonic() - started
    values = []
    for name in sorted(os.listdir(out_dir)):
        with open(os.path.join(out_dir, name), encoding="utf-8") as fh:
            values.extend(int(line) for line in fh.read().split())
    return sorted(values), elapsed


def test_flink_tiny_pipeline(tmp_path):
    # the job server scripts/flink.sh starts in front of its real Flink cluster (127.0.0.1:8081)
    endpoint = _require("FLOW_BEAM_FLINK_JOB_ENDPOINT", "flink.sh")
    values, elapsed = _run_tiny_pipeline(tmp_path, [
        "--runner=PortableRunner", f"--job_endpoint={endpoint}", "--environment_type=LOOPBACK",
    ])
    print(f"flink tiny pipeline: {elapsed:.1f}s")
    assert values == [10, 20, 30]


def test_prism_tiny_pipeline(tmp_path):
    prism = _require("FLOW_BEAM_PRISM", "prism.sh")
    if not os.access(prism, os.X_OK):
        pytest.fail(f"FLOW_BEAM_PRISM={prism} is not an executable file: run `bash scripts/prism.sh install`")
    values, elapsed = _run_tiny_pipeline(tmp_path, [
        "--runner=PrismRunner", f"--prism_location={prism}", "--environment_type=LOOPBACK",
    ])
    print(f"prism tiny pipeline: {elapsed:.1f}s")
    assert values == [10, 20, 30]
