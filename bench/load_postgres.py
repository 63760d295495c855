"""Load benchmark: N rows from a CSV file into PostgreSQL, every contender a whole process (start-up included),
each into a fresh database, ``--repeat`` rounds interleaved:
  plain COPY          a plain script: pyarrow read_csv → CSV bytes → psycopg COPY into the table
  flow-beam append    ``python -m flow_beam run`` of CSV source → target (loadMode append, lineage off)
  flow-beam upsert    the same with loadMode upsert on order_id, into a table that already holds every key
Prints median wall, peak RSS and the ratio to the plain script; row counts and sum(amount) are cross-checked.
Needs PostgreSQL: FLOW_BEAM_PG_URL (eval "$(bash scripts/services.sh env)" or scripts/postgres.sh).
Usage: python bench/load_postgres.py [--rows 1000000] [--repeat 3] [--modes append,upsert]"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_orders import ORDERS_SCHEMA, ensure_data  # noqa: E402

DDL = ("CREATE TABLE IF NOT EXISTS public.orders (order_id BIGINT, customer_id TEXT, country TEXT, status TEXT, "
       "amount DOUBLE PRECISION)")


def fresh_db(base: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


def drop_db(base: str, url: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def plain_copy(path: str, url: str) -> dict:
    """The baseline, also used (untimed) to pre-fill the table for the upsert run."""
    import psycopg
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(path)
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
    with psycopg.connect(url) as con:
        con.execute(DDL)
        with con.cursor().copy("COPY public.orders FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buf.getvalue())
    return {"rows": table.num_rows}


def flow_beam_argv(folder: str, url: str, mode: str, out: str) -> list[str]:
    target = {"id": "t", "kind": "target", "input": "src", "schema": "public.orders", "loadMode": mode,
              "lineage": False}
    if mode == "upsert":
        target["upsertKey"] = "order_id"
    doc = {"kind": "pipeline", "version": "1.0", "id": "bench-load", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": folder, "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
         "schema": ORDERS_SCHEMA}, target]}
    path = os.path.join(out, f"load-{mode}.json")
    with open(path, "w") as fh:
        json.dump(doc, fh)
    return [sys.executable, "-m", "flow_beam", "run", path, "--warehouse", url]


def table_summary(url: str) -> dict:
    import psycopg

    with psycopg.connect(url) as con:
        n, total, distinct = con.execute("SELECT count(*), round(sum(amount)::numeric, 2), count(DISTINCT order_id) "
                                         "FROM public.orders").fetchone()
    return {"rows": n, "amount": float(total), "distinct": distinct}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default="append,upsert")
    ap.add_argument("--keep", help="keep the generated data in this folder (reused by later runs)")
    ap.add_argument("--plain", nargs=2, metavar=("CSV", "URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain:  # the timed baseline process
        print(json.dumps(plain_copy(*args.plain)))
        return
    base = os.environ.get("FLOW_BEAM_PG_URL")
    if not base:
        sys.exit("set FLOW_BEAM_PG_URL first: eval \"$(bash scripts/services.sh env)\"")
    from harness import compare

    with tempfile.TemporaryDirectory(prefix="flow-beam-load-") as tmp:
        folder = args.keep or os.path.join(tmp, "data")
        path = ensure_data(folder, args.rows)
        names = ["plain COPY"] + [f"flow-beam {m}" for m in args.modes.split(",") if m]
        databases: list[str] = []

        def prepare(name):
            url = fresh_db(base)
            databases.append(url)
            if name == "plain COPY":
                return [sys.executable, os.path.abspath(__file__), "--plain", path, url], url
            if name == "flow-beam upsert":
                plain_copy(path, url)  # every key already present
            return flow_beam_argv(folder, url, name.split()[-1], tmp), url

        def collect(name, stdout, url):
            try:
                return table_summary(url)
            finally:
                drop_db(base, url)

        def same(name, res, ref):
            if res != ref or res["rows"] != args.rows:
                raise SystemExit(f"{name}: table differs from the plain COPY's:\n{res}\n{ref}")

        try:
            compare(names, args.repeat, "plain COPY", prepare, collect, same,
                    f"load {args.rows:,} rows CSV → PostgreSQL")
        finally:
            for url in databases:
                drop_db(base, url)


if __name__ == "__main__":
    main()
