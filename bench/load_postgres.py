"""Load benchmark: 1,000,000 rows into PostgreSQL through flow-beam (append and upsert, the whole pipeline:
CSV source → target) and, side by side, a plain psycopg script (pyarrow CSV read + COPY into the table).
Needs the test server: bash scripts/postgres.sh start && eval "$(bash scripts/postgres.sh env)".
Usage: python bench/load_postgres.py [--rows 1000000] [--repeat 1]"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import uuid

import psycopg
import pyarrow.csv as pacsv

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_orders import generate  # noqa: E402

SCHEMA = [{"name": "order_id", "type": "int"}, {"name": "customer_id", "type": "string"},
          {"name": "country", "type": "string"}, {"name": "status", "type": "string"},
          {"name": "amount", "type": "float"}]


def fresh_db(base: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


def drop_db(base: str, url: str) -> None:
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def flow_beam(folder: str, url: str, mode: str) -> int:
    from flow_beam.running import RunOptions, run_document

    target = {"id": "t", "kind": "target", "input": "src", "schema": "public.orders", "loadMode": mode,
              "lineage": False}
    if mode == "upsert":
        target["upsertKey"] = "order_id"
    doc = {"kind": "pipeline", "version": "1.0", "id": "bench-load", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": folder, "format": "csv"},
         "schema": SCHEMA}, target]}
    result = run_document(doc, RunOptions(warehouse=url, record_history=False))
    assert result.status == "completed", result.error
    return result.nodes["t"].rowsLoaded


def plain_copy(path: str, url: str) -> int:
    table = pacsv.read_csv(path)
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
    with psycopg.connect(url) as con:
        con.execute("CREATE TABLE IF NOT EXISTS public.orders (order_id BIGINT, customer_id TEXT, country TEXT, "
                    "status TEXT, amount DOUBLE PRECISION)")
        with con.cursor().copy("COPY public.orders FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buf.getvalue())
    return table.num_rows


def timed(fn, *args):
    t0 = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    base = os.environ.get("FLOW_BEAM_PG_URL")
    if not base:
        sys.exit("start PostgreSQL first: bash scripts/postgres.sh start && eval \"$(bash scripts/postgres.sh env)\"")
    with tempfile.TemporaryDirectory(prefix="flow-beam-load-") as tmp:
        folder = os.path.join(tmp, "data")
        os.makedirs(folder)
        path = os.path.join(folder, "orders.csv")
        generate(path, args.rows)
        times: dict[str, list[float]] = {"plain COPY": [], "flow-beam append": [], "flow-beam upsert": []}
        for _ in range(args.repeat):
            for name, fn in (("plain COPY", lambda u: plain_copy(path, u)),
                             ("flow-beam append", lambda u: flow_beam(folder, u, "append")),
                             ("flow-beam upsert", lambda u: flow_beam(folder, u, "upsert"))):
                url = fresh_db(base)
                try:
                    if name == "flow-beam upsert":  # upsert into a table that already holds every key
                        plain_copy(path, url)
                    dt_, n = timed(fn, url)
                    assert n == args.rows, (name, n)
                    times[name].append(dt_)
                finally:
                    drop_db(base, url)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"rows: {args.rows:,}  (median of {args.repeat})")
        for name, t in med.items():
            print(f"  {name:18s} {t:7.2f} s   ({t / med['plain COPY']:.2f}x plain COPY)")


if __name__ == "__main__":
    main()
