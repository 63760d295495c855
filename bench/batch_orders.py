"""Batch benchmark: N generated order rows, CSV → filter → derived column → group-by sum → Parquet.

Every contender is a whole process (start-up and imports included), run ``--repeat`` times interleaved:
  flow-beam         ``python -m flow_beam run`` of the IR below (DirectRunner/FnApiRunner, Arrow batches)
  pyarrow           read_csv + compute + group_by, the floor for an Arrow engine
  duckdb            the same job as one SQL statement
  beam per-element  a hand-written per-element Beam pipeline on the same runner (skip with --no-per-element)
Prints median wall, peak RSS and the ratio to pyarrow; the per-country sums are cross-checked.
Usage: python bench/batch_orders.py [--rows 1000000] [--repeat 3] [--no-per-element] [--keep DIR]
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

COUNTRIES = ["US", "DE", "FR", "GB", "ES", "IT", "NL", "SE", "PL", "JP"]


def generate(path: str, rows: int) -> None:
    rnd = random.Random(42)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "customer_id", "country", "status", "amount"])
        for i in range(rows):
            w.writerow([i, f"C{rnd.randrange(50000)}", rnd.choice(COUNTRIES),
                        "paid" if rnd.random() < 0.8 else "refunded", f"{rnd.uniform(1, 500):.2f}"])


def ensure_data(folder: str, rows: int) -> str:
    """``folder/orders.csv`` with ``rows`` rows (generated once; reused when the row count matches)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "orders.csv")
    stamp = path + ".rows"
    if not (os.path.exists(path) and os.path.exists(stamp) and open(stamp).read() == str(rows)):
        generate(path, rows)
        with open(stamp, "w") as fh:
            fh.write(str(rows))
    return path


ORDERS_SCHEMA = [{"name": "order_id", "type": "int"}, {"name": "customer_id", "type": "string"},
                 {"name": "country", "type": "string"}, {"name": "status", "type": "string"},
                 {"name": "amount", "type": "float"}]


def ir(folder: str, out: str) -> dict:
    return {
        "kind": "pipeline", "version": "1.0", "id": "bench-orders",
        "nodes": [
            {"id": "src", "kind": "source", "connector": "local_fs",
             "config": {"path": folder, "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
             "schema": ORDERS_SCHEMA},
            {"id": "t", "kind": "transform", "input": "src", "ops": [
                {"op": "filter", "condition": "status = 'paid'"},
                {"op": "expression", "field": "amount_with_tax", "expr": "amount * 1.2"},
                {"op": "aggregate", "groupBy": ["country"],
                 "aggregations": [{"field": "amount_with_tax", "fn": "sum", "as": "revenue"}]}]},
            {"id": "out", "kind": "target", "input": "t", "connector": "local_fs",
             "config": {"path": out, "format": "parquet"}},
        ],
    }


# ---- contenders: flow-beam is its CLI; the others run in this file (--contender NAME) ------------------------
def flow_beam_argv(folder: str, out: str) -> list[str]:
    doc = os.path.join(out, "pipeline.json")
    with open(doc, "w") as fh:
        json.dump(ir(folder, os.path.join(out, "result")), fh)
    return [sys.executable, "-m", "flow_beam", "run", doc, "--warehouse", f"duckdb://{out}/wh.duckdb"]


def flow_beam_result(out: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    res = os.path.join(out, "result")
    table = pa.concat_tables([pq.read_table(os.path.join(res, f)) for f in os.listdir(res)])
    return {r["country"]: r["revenue"] for r in table.to_pylist()}


def run_per_element(folder: str, out: str) -> dict:
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    def parse(line):
        order_id, customer_id, country, status, amount = next(csv.reader([line]))
        return {"order_id": int(order_id), "customer_id": customer_id, "country": country, "status": status,
                "amount": float(amount)}

    with beam.Pipeline(runner=FnApiRunner()) as p:
        (p | beam.io.ReadFromText(os.path.join(folder, "orders.csv"), skip_header_lines=1) | beam.Map(parse)
         | beam.Filter(lambda r: r["status"] == "paid")
         | beam.Map(lambda r: (r["country"], r["amount"] * 1.2)) | beam.CombinePerKey(sum)
         | beam.Map(lambda kv: json.dumps({"country": kv[0], "revenue": kv[1]}))
         | beam.io.WriteToText(os.path.join(out, "part"), file_name_suffix=".jsonl"))
    rows = [json.loads(line) for f in os.listdir(out) if f.startswith("part") for line in open(os.path.join(out, f))]
    return {r["country"]: r["revenue"] for r in rows}


def run_pyarrow(folder: str, out: str) -> dict:
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t = pacsv.read_csv(os.path.join(folder, "orders.csv"))
    t = t.filter(pc.equal(t["status"], "paid"))
    t = t.append_column("amount_with_tax", pc.multiply(t["amount"], 1.2))
    g = t.group_by("country").aggregate([("amount_with_tax", "sum")])
    pq.write_table(g, os.path.join(out, "out.parquet"))
    return dict(zip(g["country"].to_pylist(), g["amount_with_tax_sum"].to_pylist()))


def run_duckdb(folder: str, out: str) -> dict:
    import duckdb

    con = duckdb.connect()
    src = os.path.join(folder, "orders.csv").replace("'", "''")
    dst = os.path.join(out, "out.parquet").replace("'", "''")
    con.execute(f"COPY (SELECT country, sum(amount * 1.2) AS revenue FROM read_csv('{src}', header=true) "
                f"WHERE status = 'paid' GROUP BY country) TO '{dst}' (FORMAT parquet)")
    return dict(con.execute(f"SELECT country, revenue FROM '{dst}'").fetchall())


CONTENDERS = {"pyarrow": run_pyarrow, "duckdb": run_duckdb, "beam per-element": run_per_element}


def same_sums(name, res, ref) -> None:
    if set(res) != set(ref) or not all(abs(res[c] - ref[c]) <= 1e-6 * max(1.0, abs(ref[c])) for c in ref):
        raise SystemExit(f"{name}: result differs from pyarrow:\n{res}\n{ref}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-per-element", action="store_true")
    ap.add_argument("--keep", help="keep the generated data in this folder (reused by later runs)")
    ap.add_argument("--contender", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.contender:  # one timed process
        print(json.dumps(CONTENDERS[args.contender](args.data, args.out)))
        return
    from harness import compare, last_json

    with tempfile.TemporaryDirectory(prefix="flow-beam-bench-") as tmp:
        data = args.keep or os.path.join(tmp, "data")
        ensure_data(data, args.rows)
        names = ["flow-beam", *[n for n in CONTENDERS if not (args.no_per_element and n == "beam per-element")]]
        runs = iter(range(10**6))

        def prepare(name):
            out = os.path.join(tmp, f"out{next(runs)}")
            os.makedirs(out)
            if name == "flow-beam":
                return flow_beam_argv(data, out), out
            return [sys.executable, os.path.abspath(__file__), "--contender", name, "--data", data, "--out", out], out

        def collect(name, stdout, out):
            return flow_beam_result(out) if name == "flow-beam" else last_json(stdout)

        compare(names, args.repeat, "pyarrow", prepare, collect, same_sums,
                f"aggregate job, {args.rows:,} rows (CSV → filter → derived column → group-by sum → Parquet)")


if __name__ == "__main__":
    main()
