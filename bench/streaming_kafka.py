"""Streaming benchmark: JSON events in Kafka → derived column + filter → per-user 1-minute windowed sum/count →
upsert into a DuckDB warehouse table. Events/second of each contender on the same topic, side by side:
  1. flow-beam, streaming mode on Prism (Beam's portable Go runner, LOOPBACK: the Python SDK worker runs in
     this process) and on Flink: the real Flink 1.19 cluster scripts/flink.sh runs (JobManager + TaskManager on
     127.0.0.1:8081, through its job server; LOOPBACK too). The run ends once every partition has been idle for
     IDLE seconds (stop_after_idle_s); the wall time therefore includes IDLE seconds of waiting, and the adjusted
     time (raw − IDLE) is the one events/s and the ratio use. Both are printed, with the job's own time on Flink
     (start to finish as Flink's REST API reports it) to show what the submission costs.
  2. baseline: a plain kafka-python consumer loop (assign every partition, seek to the beginning, poll until
     the end offsets) doing the same work in Python (json decode, the same expression and filter, per
     (user, minute) sum/count in a dict), then one upsert transaction of the final rows into DuckDB.
  3. informational: the same IR in drain mode on the direct runner (FnApiRunner; a bounded read of the topic).
The events are produced once into a fresh topic before any timing; every contender reads it from the earliest
offset with its own consumer group. The tables are cross-checked against the baseline (the run fails loudly if
a status is not "completed", a total differs, or a row is late: default settings, no allowedLateness).

Needs Kafka (bash scripts/kafka.sh start; FLOW_BEAM_KAFKA, default 127.0.0.1:19092; started and stopped here
if it is not running), prism (bash scripts/prism.sh install) and, for flink, the cluster (bash scripts/flink.sh
start; FLOW_BEAM_FLINK_MASTER, default 127.0.0.1:8081; started and stopped here if it is not running).
Usage: python bench/streaming_kafka.py [--events 200000] [--partitions 2] [--users 50] [--idle 3]
                                       [--runners prism,flink] [--beam-arg=--OPTION=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

T0 = 1767225600  # 2026-01-01T00:00:00Z
EVENTS_PER_SECOND = 20  # of event time: one 1-minute window holds 1,200 events
FACTOR = 1.2  # expression: amount * 1.2
THRESHOLD = 60  # filter: amount_taxed > 60
TABLE = "public.user_minute"
LATE_HINT = ("\nRows missing with default settings mean the reader's watermark passed events it had not emitted "
             "yet (see connectors/streams.py, *Time model*): a bug to report, with this output.")


# ---- data ----------------------------------------------------------------------------------------------
def make_events(n: int, users: int) -> list[dict]:
    """Event i at T0 + i / 20 s (whole seconds), a user out of ``users``, an amount 1.00–500.00."""
    rnd = random.Random(7)
    names = [f"u{k:03d}" for k in range(users)]
    return [{"id": i, "user": rnd.choice(names), "amount": round(rnd.uniform(1, 500), 2),
             "ts": T0 + i // EVENTS_PER_SECOND} for i in range(n)]


def produce(servers: str, topic: str, partitions: int, events: list[dict]) -> float:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=servers)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    t0 = time.perf_counter()
    producer = KafkaProducer(bootstrap_servers=servers, acks=1, linger_ms=20, batch_size=512 * 1024,
                             max_request_size=4 * 1024 * 1024)
    futures = [producer.send(topic, key=e["user"].encode(), value=json.dumps(e, separators=(",", ":")).encode())
               for e in events]
    producer.flush()
    for f in futures[-partitions * 4:]:
        f.get(timeout=30)
    producer.close()
    return time.perf_counter() - t0


def end_offsets(servers: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        return {tp.partition: off for tp, off in c.end_offsets(parts).items()}
    finally:
        c.close()


# ---- contender: flow-beam ------------------------------------------------------------------------------
def ir(servers: str, topic: str, group: str, lateness: str | None = None) -> dict:
    window = {"type": "fixed", "size": "1m"}
    if lateness:
        window["allowedLateness"] = lateness
    return {"kind": "pipeline", "version": "1.0", "id": "bench-stream-user-minute", "nodes": [
        {"id": "events", "kind": "source", "connector": "kafka_consumer",
         "config": {"bootstrapServers": servers, "topics": topic, "groupId": group,
                    "startingOffsets": "earliest", "format": "json"},
         "schema": [{"name": "id", "type": "int"}, {"name": "user", "type": "string"},
                    {"name": "amount", "type": "float"}, {"name": "ts", "type": "int"}],
         "eventTime": {"field": "ts", "format": "epoch_s"}},
        {"id": "prep", "kind": "transform", "input": "events", "ops": [
            {"op": "expression", "field": "amount_taxed", "expr": f"amount * {FACTOR}"},
            {"op": "filter", "condition": f"amount_taxed > {THRESHOLD}"}]},
        {"id": "per_minute", "kind": "transform", "input": "prep", "ops": [
            {"op": "aggregate", "groupBy": ["user"],
             "aggregations": [{"field": "amount_taxed", "fn": "sum", "as": "total"}, {"fn": "count", "as": "n"}],
             "window": window}]},
        {"id": "out", "kind": "target", "input": "per_minute", "schema": TABLE,
         "loadMode": "upsert", "upsertKey": ["user", "window_start"]}]}


def read_table(db_path: str) -> dict:
    import duckdb

    con = duckdb.connect(db_path, read_only=True)
    try:
        rows = con.execute(f'SELECT "user", CAST(epoch(window_start) AS BIGINT), total, n FROM {TABLE}').fetchall()
    finally:
        con.close()
    out = {}
    for user, start, total, n in rows:
        if (user, start) in out:
            raise AssertionError(f"two rows for {user} {start} in {db_path}")
        out[(user, int(start))] = (float(total), int(n))
    return out


def run_flow_beam(servers: str, topic: str, tmp: str, runner: str, idle: float | None,
                  lateness: str | None, flink_master: str | None = None, beam_args: list[str] | None = None) -> dict:
    from flow_beam.running import RunOptions, run_document

    db = os.path.join(tmp, f"fb-{runner}.duckdb")
    group = f"bench-fb-{runner}-{uuid.uuid4().hex[:8]}"
    opts = RunOptions(runner=runner, warehouse=f"duckdb://{db}", stop_after_idle_s=idle,
                      flink_master=flink_master if runner == "flink" else None, beam_args=list(beam_args or []))
    t0 = time.perf_counter()
    result = run_document(ir(servers, topic, group, lateness), opts)
    seconds = time.perf_counter() - t0
    job_s = None
    if runner == "flink" and flink_master:
        from flow_beam.runners import flink_rest
        jobs = [j for j in flink_rest(flink_master, "GET", "/jobs/overview")["jobs"]
                if j["name"].startswith("flowbeam-bench-stream-user-minute-" + result.runId[:8])]
        job_s = jobs[0]["duration"] / 1000 if jobs else None
    if result.status != "completed":
        raise SystemExit(f"flow-beam on {runner}: status {result.status!r}, error: {result.error}\n"
                         f"warnings: {result.warnings}\n"
                         + "\n".join(f"  {k}: {v.status} {v.error or ''} {v.warnings}"
                                     for k, v in result.nodes.items()))
    nodes = {k: (v.rowsIn, v.rowsOut, v.rowsFiltered, v.rowsLoaded) for k, v in result.nodes.items()}
    late = sum(v.rowsLate for v in result.nodes.values())
    return {"seconds": seconds, "table": read_table(db), "nodes": nodes, "durationMs": result.durationMs,
            "late": late, "job_s": job_s}


# ---- contender: plain kafka-python loop ----------------------------------------------------------------
def run_baseline(servers: str, topic: str, tmp: str) -> dict:
    import duckdb
    import pyarrow as pa
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    t0 = time.perf_counter()
    group = f"bench-base-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    agg: dict[tuple[str, int], list] = defaultdict(lambda: [0.0, 0])
    read = 0
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        left = {tp for tp in parts if ends[tp] > 0}
        loads = json.loads
        while left:
            for tp, msgs in consumer.poll(timeout_ms=500, max_records=10_000).items():
                for msg in msgs:
                    if msg.offset >= ends[tp]:
                        break
                    read += 1
                    e = loads(msg.value)
                    taxed = e["amount"] * FACTOR
                    if not taxed > THRESHOLD:
                        continue
                    a = agg[(e["user"], e["ts"] - e["ts"] % 60)]
                    a[0] += taxed
                    a[1] += 1
                if consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        keys = list(agg)
        rows = pa.table({
            "user": [k[0] for k in keys],
            "window_start": pa.array([k[1] * 1_000_000 for k in keys], pa.int64()).cast(pa.timestamp("us")),
            "window_end": pa.array([(k[1] + 60) * 1_000_000 for k in keys], pa.int64()).cast(pa.timestamp("us")),
            "total": [agg[k][0] for k in keys], "n": pa.array([agg[k][1] for k in keys], pa.int64())})
        db = os.path.join(tmp, "baseline.duckdb")
        con = duckdb.connect(db)
        try:
            con.execute("CREATE SCHEMA IF NOT EXISTS public")
            con.execute(f'CREATE TABLE IF NOT EXISTS {TABLE} ("user" VARCHAR, window_start TIMESTAMP, '
                        f'window_end TIMESTAMP, total DOUBLE, n BIGINT, PRIMARY KEY ("user", window_start))')
            con.execute("BEGIN")
            con.register("incoming", rows)
            con.execute(f'INSERT INTO {TABLE} SELECT * FROM incoming ON CONFLICT ("user", window_start) DO UPDATE '
                        f"SET window_end = excluded.window_end, total = excluded.total, n = excluded.n")
            con.execute("COMMIT")
        finally:
            con.close()
        consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in parts})
    finally:
        consumer.close()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "table": read_table(db), "read": read}


# ---- checks and report ---------------------------------------------------------------------------------
def expected(events: list[dict]) -> dict:
    agg: dict = defaultdict(lambda: [0.0, 0])
    for e in events:
        taxed = e["amount"] * FACTOR
        if taxed > THRESHOLD:
            a = agg[(e["user"], e["ts"] - e["ts"] % 60)]
            a[0] += taxed
            a[1] += 1
    return {k: (v[0], v[1]) for k, v in agg.items()}


def same(name: str, got: dict, ref: dict, hint: str = "", nodes: dict | None = None) -> None:
    """Counts exactly, sums to 1e-9 relative (float additions in another order)."""
    problems = []
    if set(got) != set(ref):
        problems.append(f"{len(set(ref) - set(got))} row(s) missing, {len(set(got) - set(ref))} extra "
                        f"(e.g. missing {sorted(set(ref) - set(got))[:3]}, extra {sorted(set(got) - set(ref))[:3]})")
    for k in sorted(set(got) & set(ref)):
        (gt, gn), (rt, rn) = got[k], ref[k]
        if gn != rn or not math.isclose(gt, rt, rel_tol=1e-9, abs_tol=1e-6):
            problems.append(f"{k}: got total={gt} n={gn}, baseline total={rt} n={rn}")
    if problems:
        print(f"{name} node rows (in, out, filtered, loaded): {nodes}" if nodes else "", file=sys.stderr)
        raise SystemExit(f"MISMATCH: {name} table differs from the baseline ({len(problems)} problem(s)):\n  "
                         + "\n  ".join(problems[:10]) + hint)


def kafka_up() -> bool:
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", "kafka.sh"), "status"],
                          capture_output=True).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--idle", type=float, default=3.0, help="stop_after_idle_s of the streaming run")
    ap.add_argument("--allowed-lateness", default=None, metavar="DURATION",
                    help="allowedLateness of the window (default none, as specified); a value longer than the "
                         "topic's event-time span (events / 20 s), e.g. 24h, works around the streaming reader "
                         "dropping all but the last window of a multi-window read batch")
    ap.add_argument("--skip-direct", action="store_true", help="leave out the informational drain run")
    ap.add_argument("--beam-arg", action="append", default=[], metavar="--OPTION=VALUE",
                    help="a Beam option for the streaming runs (repeatable), e.g. --beam-arg=--max_bundle_size=500")
    ap.add_argument("--runners", default="prism,flink", help="streaming runners to measure (prism, flink)")
    args = ap.parse_args()
    args.runners = [r.strip() for r in args.runners.split(",") if r.strip()]

    servers = os.environ.get("FLOW_BEAM_KAFKA", "127.0.0.1:19092")
    started_kafka = False
    if not kafka_up():
        print("starting Kafka (bash scripts/kafka.sh start) ...", flush=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "kafka.sh"), "start"], check=True)
        started_kafka = True
    if "prism" in args.runners:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "prism.sh"), "install"], check=True)
    started_flink = False
    args.flink_master = os.environ.get("FLOW_BEAM_FLINK_MASTER", "127.0.0.1:8081")
    if "flink" in args.runners:
        flink = os.path.join(ROOT, "scripts", "flink.sh")
        if subprocess.run(["bash", flink, "status"], capture_output=True).returncode != 0:
            print("starting Flink (bash scripts/flink.sh start) ...", flush=True)
            subprocess.run(["bash", flink, "start"], check=True)
            started_flink = True
        env = subprocess.run(["bash", flink, "env"], capture_output=True, text=True, check=True).stdout
        for line in env.splitlines():  # export NAME=value
            name, _, value = line.removeprefix("export ").partition("=")
            os.environ[name] = value
        args.flink_master = os.environ.get("FLOW_BEAM_FLINK_MASTER", args.flink_master)
    try:
        bench(args, servers)
    finally:
        if started_kafka:
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "kafka.sh"), "stop"], check=False)
        if started_flink:
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "flink.sh"), "stop"], check=False)


def bench(args, servers: str) -> None:
    topic = f"bench-events-{uuid.uuid4().hex[:8]}"
    events = make_events(args.events, args.users)
    try:
        produce_s = produce(servers, topic, args.partitions, events)
        measure(args, servers, topic, events, produce_s)
    finally:
        delete_topic(servers, topic)


def delete_topic(servers: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=servers)
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
    except Exception as exc:  # noqa: BLE001 - a leftover topic is harmless
        print(f"(could not delete topic {topic}: {exc})", file=sys.stderr)


def measure(args, servers: str, topic: str, events: list[dict], produce_s: float) -> None:
    ends = end_offsets(servers, topic)
    if sum(ends.values()) != args.events:
        raise SystemExit(f"topic {topic} holds {sum(ends.values())} messages, expected {args.events}")
    print(f"topic {topic}: {args.events:,} events in {args.partitions} partition(s) "
          f"{sorted(ends.values())}, produced in {produce_s:.1f} s ({args.events / produce_s:,.0f}/s)", flush=True)
    ref = expected(events)
    kept = sum(n for _, n in ref.values())
    print(f"work: amount*{FACTOR} > {THRESHOLD} keeps {kept:,} events → {len(ref):,} (user, minute) rows "
          f"upserted into {TABLE} (DuckDB); window fixed 1m, allowedLateness "
          f"{args.allowed_lateness or 'none'}", flush=True)

    with tempfile.TemporaryDirectory(prefix="flow-beam-bench-stream-") as tmp:
        print("running: baseline (kafka-python loop) ...", flush=True)
        base = run_baseline(servers, topic, tmp)
        same("baseline", base["table"], ref)  # the baseline itself against the events as produced
        if base["read"] != args.events:
            raise SystemExit(f"baseline read {base['read']} events, expected {args.events}")
        streams = {}
        for runner in args.runners:
            print(f"running: flow-beam streaming on {runner} (stop_after_idle_s={args.idle}) ...", flush=True)
            got = run_flow_beam(servers, topic, tmp, runner, args.idle, args.allowed_lateness, args.flink_master,
                                args.beam_arg)
            read = got["nodes"]["events"][0]
            if read != args.events:
                print(f"flow-beam {runner} node rows (in, out, filtered, loaded): {got['nodes']}", file=sys.stderr)
                raise SystemExit(f"INCOMPLETE: the streaming run on {runner} ended after reading {read:,} of "
                                 f"{args.events:,} events")
            if got["late"]:
                raise SystemExit(f"LATE: flow-beam on {runner} counted {got['late']} late row(s) with default "
                                 f"settings{LATE_HINT}")
            same(f"flow-beam {runner}", got["table"], base["table"], LATE_HINT, got["nodes"])
            streams[runner] = got
        direct = None
        if not args.skip_direct:
            print("running: flow-beam drain on direct ...", flush=True)
            direct = run_flow_beam(servers, topic, tmp, "direct", None, args.allowed_lateness)
            same("flow-beam direct", direct["table"], base["table"], nodes=direct["nodes"])

    n = args.events
    lines = [("baseline kafka-python loop", base["seconds"], None)]
    for runner, got in streams.items():
        adj = max(got["seconds"] - args.idle, 1e-9)
        note = f"raw {got['seconds']:.2f} s − idle {args.idle:g} s"
        if got.get("job_s") is not None:
            note += f"; Flink job {got['job_s']:.2f} s"
        lines.append((f"flow-beam {runner} streaming", adj, note))
    if direct:
        lines.append(("flow-beam direct drain (info)", direct["seconds"], None))
    print()
    print(f"results cross-checked: {len(ref):,} rows, counts equal, sums equal to 1e-9 (all statuses completed, "
          f"no late row)")
    print(f"{'contender':32s} {'events':>9s} {'seconds':>8s} {'events/s':>10s} {'vs baseline':>12s}  note")
    for name, sec, note in lines:
        print(f"{name:32s} {n:9,d} {sec:8.2f} {n / sec:10,.0f} {(n / sec) / (n / base['seconds']):11.2f}x  "
              f"{note or ''}")
    for runner, got in streams.items():
        print(f"flow-beam {runner} node rows (in, out, filtered, loaded): {got['nodes']}")
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
