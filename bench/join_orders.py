"""Join benchmark: N orders (CSV) inner-joined with 10,000 customers (CSV) on customer_id → Parquet.

Contenders, each a whole process, run ``--repeat`` times interleaved:
  flow-beam auto / shuffle / broadcast   ``python -m flow_beam run`` with the join's ``strategy``
  pyarrow                                read both CSVs, ``Table.join``, write Parquet
  duckdb                                 one SQL statement
  beam per-element                       ReadFromText → dicts → customers as an AsDict side input (--no-per-element
                                         skips it)
Prints median wall, peak RSS and the ratio to pyarrow; row count, amount total and rows per segment are
cross-checked. Usage: python bench/join_orders.py [--rows 1000000] [--customers 10000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_orders import ORDERS_SCHEMA, ensure_data  # noqa: E402

SEGMENTS = ["retail", "smb", "enterprise", "public"]


def ensure_customers(folder: str, n: int) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "customers.csv")
    rnd = random.Random(7)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "name", "segment"])
        for i in range(n):
            w.writerow([f"C{i}", f"customer {i}", rnd.choice(SEGMENTS)])
    return path


def ir(orders: str, customers: str, out: str, strategy: str) -> dict:
    return {"kind": "pipeline", "version": "1.0", "id": "bench-join", "nodes": [
        {"id": "orders", "kind": "source", "connector": "local_fs",
         "config": {"path": orders, "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
         "schema": ORDERS_SCHEMA},
        {"id": "customers", "kind": "source", "connector": "local_fs",
         "config": {"path": customers, "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
         "schema": [{"name": "customer_id", "type": "string"}, {"name": "name", "type": "string"},
                    {"name": "segment", "type": "string"}]},
        {"id": "j", "kind": "join", "inputs": ["orders", "customers"], "type": "inner", "on": ["customer_id"],
         "strategy": strategy},
        {"id": "out", "kind": "target", "input": "j", "connector": "local_fs",
         "config": {"path": out, "format": "parquet"}}]}


def summary(table) -> dict:
    import pyarrow.compute as pc

    seg = table.group_by("segment").aggregate([("segment", "count")])
    return {"rows": table.num_rows, "amount": round(pc.sum(table["amount"]).as_py(), 2),
            "segments": dict(zip(seg["segment"].to_pylist(), seg["segment_count"].to_pylist()))}


# ---- contenders ----------------------------------------------------------------------------------------
def flow_beam_argv(orders: str, customers: str, out: str, strategy: str) -> list[str]:
    doc = os.path.join(out, "pipeline.json")
    with open(doc, "w") as fh:
        json.dump(ir(orders, customers, os.path.join(out, "result"), strategy), fh)
    return [sys.executable, "-m", "flow_beam", "run", doc, "--warehouse", f"duckdb://{out}/wh.duckdb"]


def flow_beam_result(out: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    res = os.path.join(out, "result")
    return summary(pa.concat_tables([pq.read_table(os.path.join(res, f)) for f in os.listdir(res)]))


def run_pyarrow(orders: str, customers: str, out: str) -> dict:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    o = pacsv.read_csv(os.path.join(orders, "orders.csv"))
    c = pacsv.read_csv(os.path.join(customers, "customers.csv"))
    j = o.join(c, keys="customer_id", join_type="inner")
    pq.write_table(j, os.path.join(out, "out.parquet"))
    return summary(j)


def run_duckdb(orders: str, customers: str, out: str) -> dict:
    import duckdb

    con = duckdb.connect()
    o = os.path.join(orders, "orders.csv").replace("'", "''")
    c = os.path.join(customers, "customers.csv").replace("'", "''")
    dst = os.path.join(out, "out.parquet").replace("'", "''")
    con.execute(f"COPY (SELECT * FROM read_csv('{o}', header=true) AS o JOIN read_csv('{c}', header=true) AS c "
                f"USING (customer_id)) TO '{dst}' (FORMAT parquet)")
    return summary(con.execute(f"SELECT * FROM '{dst}'").fetch_arrow_table())


def run_per_element(orders: str, customers: str, out: str) -> dict:
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    def order(line):
        order_id, customer_id, country, status, amount = next(csv.reader([line]))
        return {"order_id": int(order_id), "customer_id": customer_id, "country": country, "status": status,
                "amount": float(amount)}

    def customer(line):
        customer_id, name, segment = next(csv.reader([line]))
        return customer_id, {"name": name, "segment": segment}

    def join(o, cs):
        c = cs.get(o["customer_id"])
        if c is not None:
            yield json.dumps({**o, **c})

    with beam.Pipeline(runner=FnApiRunner()) as p:
        cs = (p | "C" >> beam.io.ReadFromText(os.path.join(customers, "customers.csv"), skip_header_lines=1)
              | "PC" >> beam.Map(customer))
        (p | "O" >> beam.io.ReadFromText(os.path.join(orders, "orders.csv"), skip_header_lines=1)
         | "PO" >> beam.Map(order) | beam.FlatMap(join, beam.pvalue.AsDict(cs))
         | beam.io.WriteToText(os.path.join(out, "part"), file_name_suffix=".jsonl"))
    rows = [json.loads(line) for f in os.listdir(out) if f.startswith("part") for line in open(os.path.join(out, f))]
    return summary(pa.Table.from_pylist(rows))


CONTENDERS = {"pyarrow": run_pyarrow, "duckdb": run_duckdb, "beam per-element": run_per_element}


def same(name, res, ref) -> None:
    if res["rows"] != ref["rows"] or res["segments"] != ref["segments"] or abs(res["amount"] - ref["amount"]) > 0.05:
        raise SystemExit(f"{name}: result differs from pyarrow:\n{res}\n{ref}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--strategies", default="auto,shuffle,broadcast")
    ap.add_argument("--no-per-element", action="store_true")
    ap.add_argument("--keep", help="keep the generated orders in this folder (reused by later runs)")
    ap.add_argument("--contender", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    ap.add_argument("--orders", help=argparse.SUPPRESS)
    ap.add_argument("--customers-dir", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.contender:
        print(json.dumps(CONTENDERS[args.contender](args.orders, args.customers_dir, args.out)))
        return
    from harness import compare, last_json

    with tempfile.TemporaryDirectory(prefix="flow-beam-join-") as tmp:
        orders = args.keep or os.path.join(tmp, "orders")
        ensure_data(orders, args.rows)
        customers = os.path.join(tmp, "customers")
        ensure_customers(customers, args.customers)
        strategies = [s for s in args.strategies.split(",") if s]
        names = [f"flow-beam {s}" for s in strategies] + [
            n for n in CONTENDERS if not (args.no_per_element and n == "beam per-element")]
        runs = iter(range(10**6))

        def prepare(name):
            out = os.path.join(tmp, f"out{next(runs)}")
            os.makedirs(out)
            if name.startswith("flow-beam"):
                return flow_beam_argv(orders, customers, out, name.split()[-1]), out
            return [sys.executable, os.path.abspath(__file__), "--contender", name, "--orders", orders,
                    "--customers-dir", customers, "--out", out], out

        def collect(name, stdout, out):
            return flow_beam_result(out) if name.startswith("flow-beam") else last_json(stdout)

        compare(names, args.repeat, "pyarrow", prepare, collect, same,
                f"join {args.rows:,} orders × {args.customers:,} customers (inner, CSV → Parquet)")


if __name__ == "__main__":
    main()
