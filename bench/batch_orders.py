"""Batch benchmark: 1,000,000 generated order rows, CSV → filter → derived column → group-by sum → file.

Runs the same job three ways in one process and prints each wall time and the ratios:
  1. flow-beam (the IR below, DirectRunner/FnApiRunner, Arrow batches through fused nodes)
  2. a hand-written per-element Beam pipeline on the same runner (ReadFromText → Map → Filter → CombinePerKey)
  3. plain pyarrow (read_csv + compute + group_by), the floor
Usage: python bench/batch_orders.py [--rows 1000000] [--repeat 1]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import tempfile
import time

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

COUNTRIES = ["US", "DE", "FR", "GB", "ES", "IT", "NL", "SE", "PL", "JP"]


def generate(path: str, rows: int) -> None:
    rnd = random.Random(42)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "customer_id", "country", "status", "amount"])
        for i in range(rows):
            w.writerow([i, f"C{rnd.randrange(50000)}", rnd.choice(COUNTRIES),
                        "paid" if rnd.random() < 0.8 else "refunded", f"{rnd.uniform(1, 500):.2f}"])


def ir(folder: str, out: str) -> dict:
    return {
        "kind": "pipeline", "version": "1.0", "id": "bench-orders",
        "nodes": [
            {"id": "src", "kind": "source", "connector": "local_fs",
             "config": {"path": folder, "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
             "schema": [{"name": "order_id", "type": "int"}, {"name": "customer_id", "type": "string"},
                        {"name": "country", "type": "string"}, {"name": "status", "type": "string"},
                        {"name": "amount", "type": "float"}]},
            {"id": "t", "kind": "transform", "input": "src", "ops": [
                {"op": "filter", "condition": "status = 'paid'"},
                {"op": "expression", "field": "amount_with_tax", "expr": "amount * 1.2"},
                {"op": "aggregate", "groupBy": ["country"],
                 "aggregations": [{"field": "amount_with_tax", "fn": "sum", "as": "revenue"}]}]},
            {"id": "out", "kind": "target", "input": "t", "connector": "local_fs",
             "config": {"path": out, "format": "parquet"}},
        ],
    }


def run_flow_beam(folder: str, out: str, wh: str) -> dict:
    from flow_beam.running import RunOptions, run_document

    result = run_document(ir(folder, out), RunOptions(warehouse=wh))
    assert result.status == "completed", result.error
    table = pa.concat_tables([pq.read_table(os.path.join(out, f)) for f in os.listdir(out)])
    return {r["country"]: r["revenue"] for r in table.to_pylist()}


def run_per_element(path: str, out: str) -> dict:
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    def parse(line):
        order_id, customer_id, country, status, amount = next(csv.reader([line]))
        return {"order_id": int(order_id), "customer_id": customer_id, "country": country, "status": status,
                "amount": float(amount)}

    with beam.Pipeline(runner=FnApiRunner()) as p:
        (p | beam.io.ReadFromText(path, skip_header_lines=1) | beam.Map(parse)
         | beam.Filter(lambda r: r["status"] == "paid")
         | beam.Map(lambda r: (r["country"], r["amount"] * 1.2)) | beam.CombinePerKey(sum)
         | beam.Map(lambda kv: json.dumps({"country": kv[0], "revenue": kv[1]}))
         | beam.io.WriteToText(os.path.join(out, "part"), file_name_suffix=".jsonl"))
    rows = [json.loads(line) for f in os.listdir(out) for line in open(os.path.join(out, f))]
    return {r["country"]: r["revenue"] for r in rows}


def run_pyarrow(path: str, out: str) -> dict:
    t = pacsv.read_csv(path)
    t = t.filter(pc.equal(t["status"], "paid"))
    t = t.append_column("amount_with_tax", pc.multiply(t["amount"], 1.2))
    g = t.group_by("country").aggregate([("amount_with_tax", "sum")])
    pq.write_table(g, os.path.join(out, "out.parquet"))
    return dict(zip(g["country"].to_pylist(), g["amount_with_tax_sum"].to_pylist()))


def timed(fn, *args):
    t0 = time.perf_counter()
    res = fn(*args)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="flow-beam-bench-") as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        path = os.path.join(data, "orders.csv")
        generate(path, args.rows)
        times: dict[str, list[float]] = {"flow-beam": [], "beam per-element": [], "pyarrow": []}
        results = {}
        for k in range(args.repeat):
            for name, fn, fargs in (
                    ("flow-beam", run_flow_beam, (data, os.path.join(tmp, f"fb{k}"), f"duckdb://{tmp}/w{k}.duckdb")),
                    ("beam per-element", run_per_element, (path, os.path.join(tmp, f"pe{k}"))),
                    ("pyarrow", run_pyarrow, (path, _mk(os.path.join(tmp, f"pa{k}"))))):
                dt_, res = timed(fn, *fargs)
                times[name].append(dt_)
                results[name] = res
        ref = results["pyarrow"]
        for name, res in results.items():
            assert set(res) == set(ref) and all(abs(res[c] - ref[c]) < 1e-6 * max(1, abs(ref[c])) for c in ref), name
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"rows: {args.rows:,}  (median of {args.repeat}; results cross-checked)")
        for name, t in med.items():
            print(f"  {name:18s} {t:7.2f} s")
        print(f"  per-element Beam / flow-beam = {med['beam per-element'] / med['flow-beam']:.1f}x")
        print(f"  flow-beam / pyarrow          = {med['flow-beam'] / med['pyarrow']:.1f}x")


def _mk(path):
    os.makedirs(path, exist_ok=True)
    return path


if __name__ == "__main__":
    main()
