"""Splittable reads: the 10M-row aggregate job of ``batch_orders.py`` (one CSV file) with 1 vs 2 workers.

Contenders (each a whole process, interleaved rounds, per-country sums cross-checked with pyarrow's):
  pyarrow                 the floor (read_csv + compute + group_by)
  direct 1 range          flow-beam on the direct runner with splitting off (FLOW_BEAM_SPLIT_BYTES huge)
  direct                  flow-beam on the direct runner, the file split into 64 MiB ranges (FLOW_BEAM_SPLIT_BYTES
                          set: a one-worker direct run does not split by default)
  direct 2 procs          + --direct_num_workers=2 --direct_running_mode=multi_processing
  flink p1 / flink p2     the Flink cluster (scripts/flink.sh) with --parallelism=1 / 2; Python work runs in a
                          pool of SDK worker PROCESSES (--environment_type=EXTERNAL, a worker pool bound to
                          127.0.0.1 that this script starts and stops): with flow-beam's default LOOPBACK every
                          Flink task's Python work shares the submitting process (one GIL), so 2 tasks cannot
                          use 2 cores
  flink p2 1 range        p2 with splitting off: one worker reads the whole file
Peak RSS is the flow-beam process's (Flink's SDK workers are other processes; not counted). For the Flink runs
the reading stage's own wall time (reader + filter + derived column + partial aggregation, from Flink's REST
API: the slowest subtask of that stage) is printed too: it is what the workers share, the rest is job start-up.
Usage: python bench/splits.py [--rows 10000000] [--repeat 3] [--contenders a,b,...] [--keep DIR]
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from batch_orders import ensure_data, flow_beam_result, ir, run_pyarrow, same_sums  # noqa: E402

NO_SPLIT = str(1 << 50)
FLINK = ["--runner", "flink", "--flink-master", "127.0.0.1:8081"]


def serve_worker_pool(port: int) -> None:
    """Beam's external worker pool (one SDK worker process per request), bound to 127.0.0.1 only."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
    from apache_beam.utils import thread_pool_executor

    server = grpc.server(thread_pool_executor.shared_unbounded_instance())
    server.add_insecure_port(f"127.0.0.1:{port}")
    pool = BeamFnExternalWorkerPoolServicer(use_process=True)
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()

    def stop(*_):
        for proc in pool._worker_processes.values():
            proc.kill()
        os._exit(0)
    import signal
    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def start_pool() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # workers run `python`
    from harness import CODE
    env["PYTHONPATH"] = CODE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker-pool", str(port)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    atexit.register(proc.terminate)
    return port


CONTENDERS = {
    "direct 1 range": ([], NO_SPLIT),
    "direct": ([], str(64 << 20)),  # set explicitly: a one-worker direct run does not split by default
    "direct 2 procs": (["--", "--direct_num_workers=2", "--direct_running_mode=multi_processing"], None),
    "flink p1": (FLINK + ["--", "--parallelism=1"], None),
    "flink p2": (FLINK + ["--", "--parallelism=2"], None),
    "flink p2 1 range": (FLINK + ["--", "--parallelism=2"], NO_SPLIT),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--keep", help="keep the generated data in this folder (reused by later runs)")
    ap.add_argument("--worker-pool", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--pyarrow", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_pool:
        serve_worker_pool(args.worker_pool)
        return
    if args.pyarrow:
        print(json.dumps(run_pyarrow(*args.pyarrow)))
        return
    from harness import compare, last_json

    names = ["pyarrow"] + [n for n in args.contenders.split(",") if n in CONTENDERS]
    pool = start_pool() if any(n.startswith("flink") for n in names) else None
    with tempfile.TemporaryDirectory(prefix="flow-beam-bench-") as tmp:
        data = args.keep or os.path.join(tmp, "data")
        ensure_data(data, args.rows)
        runs = iter(range(10**6))

        def prepare(name):
            out = os.path.join(tmp, f"out{next(runs)}")
            os.makedirs(out)
            if name == "pyarrow":
                return [sys.executable, os.path.abspath(__file__), "--pyarrow", data, out], out
            extra, split = CONTENDERS[name]
            doc = os.path.join(out, "pipeline.json")
            with open(doc, "w") as fh:
                json.dump(ir(data, os.path.join(out, "result")), fh)
            if name.startswith("flink"):
                workers = "2" if "p2" in name else "1"  # one SDK worker process per slot (default: 1 per TaskManager)
                extra = extra + ["--environment_type=EXTERNAL", f"--environment_config=127.0.0.1:{pool}",
                                 f"--sdk_worker_parallelism={workers}"]
            env = ["env", f"FLOW_BEAM_SPLIT_BYTES={split}"] if split else []
            return env + [sys.executable, "-m", "flow_beam", "run", doc, "--warehouse",
                          f"duckdb://{out}/wh.duckdb"] + extra, out

        stages: dict[str, list[float]] = {}

        def collect(name, stdout, out):
            if name.startswith("flink"):
                stages.setdefault(name, []).append(read_stage_seconds())
            return last_json(stdout) if name == "pyarrow" else flow_beam_result(out)

        compare(names, args.repeat, "pyarrow", prepare, collect, same_sums,
                f"aggregate job, {args.rows:,} rows in one CSV file, 1 vs 2 workers")
        for name, secs in stages.items():
            print(f"{name:26s} reading stage {statistics.median(secs):6.2f} s (runs: "
                  f"{', '.join(f'{x:.1f}' for x in secs)})")


def read_stage_seconds(master: str = "127.0.0.1:8081") -> float:
    """Wall time of the newest Flink job's reading stage (the vertex fusing the source with the transform)."""
    import urllib.request

    def get(path):
        with urllib.request.urlopen(f"http://{master}{path}", timeout=10) as resp:
            return json.load(resp)
    jobs = [j for j in get("/jobs/overview")["jobs"] if j["name"].startswith("flowbeam-bench-orders")]
    job = get(f"/jobs/{max(jobs, key=lambda j: j['start-time'])['jid']}")
    stage = next(v for v in job["vertices"] if "{src, t}" in v["name"])
    subtasks = get(f"/jobs/{job['jid']}/vertices/{stage['id']}")["subtasks"]
    return (max(s["end-time"] for s in subtasks) - min(s["start-time"] for s in subtasks)) / 1000.0


if __name__ == "__main__":
    main()
