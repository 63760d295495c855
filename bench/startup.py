"""Start-up benchmark: where the fixed cost of a tiny run goes, every line a whole process, interleaved.

  python (empty)             the interpreter alone
  import apache_beam          Beam's import with every installed extra (what a plain ``import apache_beam`` does)
  import apache_beam (lean)   Beam's import as ``flow-beam run`` does it for a local document (flow_beam/lean.py)
  pyarrow job                 the aggregate job of bench/batch_orders.py in pyarrow, on 10 rows
  flow-beam run               ``python -m flow_beam run`` of that job on 10 rows (direct runner, DuckDB history)
Usage: python bench/startup.py [--repeat 5]"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_orders import ensure_data, flow_beam_argv, flow_beam_result  # noqa: E402

LEAN = ("import json, sys; from flow_beam.lean import import_beam; import_beam('direct', sys.argv[1]); "
        "print(json.dumps({'modules': len(sys.modules)}))")
FULL = "import json, sys, apache_beam; print(json.dumps({'modules': len(sys.modules)}))"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from harness import compare, last_json

    here = os.path.abspath(os.path.join(os.path.dirname(__file__), "batch_orders.py"))
    with tempfile.TemporaryDirectory(prefix="flow-beam-startup-") as tmp:
        data = os.path.join(tmp, "data")
        ensure_data(data, 10)
        doc = os.path.join(tmp, "local.json")
        with open(doc, "w") as fh:
            fh.write('{"nodes": []}')
        runs = iter(range(10**6))
        names = ["python (empty)", "import apache_beam", "import apache_beam (lean)", "pyarrow job", "flow-beam run"]

        def prepare(name):
            out = os.path.join(tmp, f"out{next(runs)}")
            os.makedirs(out)
            if name == "python (empty)":
                return [sys.executable, "-c", "print('{}')"], out
            if name == "import apache_beam":
                return [sys.executable, "-c", FULL], out
            if name == "import apache_beam (lean)":
                return [sys.executable, "-c", LEAN, doc], out
            if name == "pyarrow job":
                return [sys.executable, here, "--contender", "pyarrow", "--data", data, "--out", out], out
            return flow_beam_argv(data, out), out

        def collect(name, stdout, out):
            return flow_beam_result(out) if name == "flow-beam run" else last_json(stdout)

        def check(name, res, ref):
            if name == "flow-beam run" and (set(res) != set(ref) or any(
                    abs(res[k] - ref[k]) > 1e-9 * max(1.0, abs(ref[k])) for k in ref)):
                raise SystemExit(f"flow-beam result differs from pyarrow's: {res} {ref}")
            if name.startswith("import"):
                print(f"  {name}: {res['modules']} modules")

        compare(names, args.repeat, "pyarrow job", prepare, collect, check, "start-up: a 10-row run and its parts")


if __name__ == "__main__":
    main()
