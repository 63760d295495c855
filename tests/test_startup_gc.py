"""The collector pause of a command's start-up (flow_beam/startup.py): paused only for the short commands that
build a pipeline, resumed (with start-up's objects frozen) before the pipeline runs, never touched for in-process
callers."""
import gc
import json
import os
import subprocess
import sys

import pytest

from flow_beam import startup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def collector():
    was = gc.isenabled()
    yield
    startup._paused = False
    gc.unfreeze()
    gc.enable() if was else gc.disable()


@pytest.mark.parametrize("argv", [["serve"], ["schedule", "serve"], ["runs"], []])
def test_long_or_other_commands_keep_the_collector(collector, argv):
    startup.pause_gc(argv)
    assert gc.isenabled()
    startup.resume_gc()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_run_pauses_and_resume_freezes_start_up(collector):
    startup.pause_gc(["run", "doc.json"])
    assert not gc.isenabled()
    startup.resume_gc()
    assert gc.isenabled() and gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    startup.resume_gc()  # once only
    assert gc.get_freeze_count() == frozen


def test_a_collector_disabled_by_the_caller_stays_disabled(collector):
    gc.disable()
    startup.pause_gc(["run"])
    startup.resume_gc()
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_a_cli_run_collects_while_the_pipeline_runs(tmp_path):
    """End to end in a real ``flow-beam run`` process: start-up ran with the collector paused, and it is back on,
    with start-up's objects frozen, when the pipeline runs (the process records the state around resume_gc);
    the rows arrive."""
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_text("id,name\n1,a\n2,b\n")
    doc = {"kind": "pipeline", "version": "1.0", "id": "gc-check", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(data), "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
         "schema": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]},
        {"id": "out", "kind": "target", "input": "src", "connector": "local_fs",
         "config": {"path": str(tmp_path / "out"), "format": "jsonl"}}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    probe = tmp_path / "gc.json"
    code = ("import gc, json, sys\n"
            "import flow_beam.running as r\n"
            "orig = r.resume_gc\n"
            "def spy():\n"
            "    before = gc.isenabled(); orig()\n"
            f"    open({str(probe)!r}, 'w').write(json.dumps([before, gc.isenabled(), gc.get_freeze_count()]))\n"
            "r.resume_gc = spy\n"
            "sys.argv = ['flow-beam'] + sys.argv[1:]\n"
            "from flow_beam.cli import entry\n"
            "entry()\n")
    res = subprocess.run([sys.executable, "-c", code, "run", str(tmp_path / "p.json"), "--warehouse",
                          f"duckdb:///{tmp_path}/wh.duckdb"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    before, after, frozen = json.loads(probe.read_text())
    assert before is False and after is True and frozen > 100_000
    rows = [json.loads(line) for f in sorted((tmp_path / "out").iterdir()) for line in f.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == [1, 2]


def test_a_run_without_expressions_never_imports_sqlglot(tmp_path):
    """The expression compiler (and sqlglot, ~0.1 s of start-up) loads only for a document that has
    expressions: a plain CSV → file run never imports it; one with a filter does, and both give their rows."""
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_text("id,name\n1,a\n2,b\n")
    probe = ("import sys, json\n"
             "sys.argv = ['flow-beam'] + sys.argv[1:]\n"
             "from flow_beam.cli import main\n"
             "code = main()\n"
             "print(json.dumps({'code': code, 'sqlglot': 'sqlglot' in sys.modules}))\n")
    seen = {}
    for name, ops in (("plain", []), ("filtered", [{"op": "filter", "condition": "id > 1"}])):
        nodes = [{"id": "src", "kind": "source", "connector": "local_fs",
                  "config": {"path": str(data), "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
                  "schema": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]}]
        last = "src"
        if ops:
            nodes.append({"id": "t", "kind": "transform", "input": "src", "ops": ops})
            last = "t"
        nodes.append({"id": "out", "kind": "target", "input": last, "connector": "local_fs",
                      "config": {"path": str(tmp_path / name), "format": "jsonl"}})
        doc = tmp_path / f"{name}.json"
        doc.write_text(json.dumps({"kind": "pipeline", "version": "1.0", "id": name, "nodes": nodes}))
        res = subprocess.run([sys.executable, "-c", probe, "run", str(doc), "--warehouse",
                              f"duckdb:///{tmp_path}/wh.duckdb"], capture_output=True, text=True, cwd=ROOT,
                             timeout=120)
        out = json.loads(res.stdout.strip().splitlines()[-1])
        assert out["code"] == 0, res.stdout + res.stderr
        rows = [json.loads(line) for f in sorted((tmp_path / name).iterdir()) for line in f.read_text().splitlines()]
        seen[name] = (out["sqlglot"], sorted(r["id"] for r in rows))
    assert seen == {"plain": (False, [1, 2]), "filtered": (True, [2])}


def test_beartype_loads_only_when_beam_asks_it_something(tmp_path):
    """Beam's type hints import beartype for is_subhint, which a run never calls: a local run's lean import puts
    stand-ins in its place (flow_beam/lean.py). A run loads no beartype; the first question Beam asks loads the
    real one, answers as beartype answers (an unrelated pair: False through Beam's `except
    BeartypeDoorException`), and other names of beartype.door still import."""
    code = ("import json, sys\n"
            "from flow_beam.lean import import_beam\n"
            f"import_beam('direct', {str(tmp_path / 'none.json')!r})\n"
            "import apache_beam\n"
            "before = 'beartype' in sys.modules\n"
            "from apache_beam.typehints import typehints as th\n"
            "answers = [th.is_consistent_with(bool, int, use_beartype=True),\n"
            "           th.is_consistent_with(str, int, use_beartype=True),\n"
            "           th.is_consistent_with(int, float, use_beartype=True)]\n"
            "from beartype.door import TypeHint\n"
            "from beartype.roar import BeartypeDoorException\n"
            "print(json.dumps([before, 'beartype' in sys.modules, answers,\n"
            "                  th.BeartypeDoorException is BeartypeDoorException, TypeHint.__module__]))\n")
    (tmp_path / "none.json").write_text('{"nodes": []}')
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    before, after, answers, same_exception, module = json.loads(res.stdout.strip().splitlines()[-1])
    assert before is False and after is True and same_exception
    assert answers == [True, False, True] and module.startswith("beartype.door")
