"""Shared benchmark harness: every contender runs as its own whole process (start-up, imports and exit included),
the runs are interleaved (round k runs every contender once before round k+1), and each contender prints its
result as one JSON line that the harness cross-checks. Reported per contender: median wall time and peak RSS
(from ``wait4``) over the rounds, and the ratio to the baseline. The 1-minute load average is printed before and
after, since the machine may be shared."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = os.environ.get("BENCH_CODE_ROOT", ROOT)  # the flow-beam checkout under test (e.g. another worktree)
PYTHON = sys.executable


PYCACHE = os.path.join(os.path.expanduser("~/.cache/flow-beam"), "bench-pycache")
WARM_UP = "import apache_beam, duckdb, pyarrow.csv, pyarrow.parquet, flow_beam.cli, flow_beam.running"


def child_env() -> dict:
    """The children write and reuse compiled bytecode (as an installed package does) under their own cache
    folder, whatever PYTHONDONTWRITEBYTECODE says in this shell, and never into the source trees."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    env["PYTHONPATH"] = CODE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


TIME = "/usr/bin/time"  # GNU time: the child's own peak RSS and CPU (see run_measured)


def run_measured(argv: list[str]) -> tuple[float, float, float, str]:
    """(wall seconds, peak RSS in MB, CPU seconds (user + system), stdout) of one whole process.

    Peak RSS and CPU come from GNU time wrapped around the command: measured from this (parent) process,
    ``ru_maxrss`` of a child started by fork/vfork also counts the parent's resident memory at exec time."""
    wrap = os.path.exists(TIME)
    cmd = [TIME, "-f", "__bench__ %M %U %S"] + argv if wrap else argv
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), cwd=CODE)
    out_chunks, err_chunks = [], []

    def pump(src, dst):
        for chunk in iter(lambda: src.read(65536), b""):
            dst.append(chunk)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks)),
               threading.Thread(target=pump, args=(proc.stderr, err_chunks))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = b"".join(err_chunks).decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-3000:]}")
    if wrap:
        line = [ln for ln in err.splitlines() if ln.startswith("__bench__ ")][-1].split()
        return wall, int(line[1]) / 1024.0, float(line[2]) + float(line[3]), b"".join(out_chunks).decode()
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime, b"".join(out_chunks).decode()


def last_json(stdout: str):
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{") or ln.startswith("[")]
    if not lines:
        raise SystemExit(f"no JSON result in:\n{stdout[-2000:]}")
    return json.loads(lines[-1])


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def compare(names: list[str], rounds: int, baseline: str, prepare, collect, check, title: str) -> dict[str, dict]:
    """Run every contender ``rounds`` times, interleaved. ``prepare(name)`` (untimed) returns (argv, ctx) of one
    run (e.g. after creating a fresh database); ``collect(name, stdout, ctx)`` (untimed) returns its result;
    ``check(name, result, baseline_result)`` raises on a difference. Prints a table; returns
    {name: {wall, rss, walls}}."""
    subprocess.run([PYTHON, "-c", WARM_UP], env=child_env(), cwd=CODE, check=True, capture_output=True)
    print(f"{title}\nload average before: {loadavg()}", flush=True)
    walls: dict[str, list[float]] = {n: [] for n in names}
    rss: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    results: dict[str, object] = {}
    for _ in range(rounds):
        for name in names:
            argv, ctx = prepare(name)
            wall, peak, used, out = run_measured(argv)
            walls[name].append(wall)
            rss[name].append(peak)
            cpu[name].append(used)
            results[name] = collect(name, out, ctx)
    for name, res in results.items():
        check(name, res, results[baseline])
    print(f"load average after:  {loadavg()}")
    base = statistics.median(walls[baseline])
    summary = {}
    base_cpu = statistics.median(cpu[baseline])
    print(f"{'contender':26s} {'median wall':>11s} {'min':>7s} {'max':>7s} {'CPU':>7s} {'peak RSS':>9s} "
          f"{'wall ÷ ' + baseline:>16s} {'CPU ÷ ' + baseline:>15s}")
    for name in names:
        med = statistics.median(walls[name])
        summary[name] = {"wall": med, "rss": statistics.median(rss[name]), "walls": walls[name],
                         "cpu": statistics.median(cpu[name])}
        print(f"{name:26s} {med:9.2f} s {min(walls[name]):6.2f}s {max(walls[name]):6.2f}s "
              f"{summary[name]['cpu']:6.2f}s {summary[name]['rss']:7.0f}MB {med / base:15.2f}x "
              f"{summary[name]['cpu'] / base_cpu:14.2f}x")
    print(f"(median of {rounds} whole-process runs each, interleaved; results cross-checked)", flush=True)
    return summary
