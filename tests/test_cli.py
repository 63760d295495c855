"""The flow-beam command line, run as a user runs it (a subprocess of the installed console script)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "orders", "pipeline.json")


def cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "flow_beam", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "200"}, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_validate_ok_and_errors_with_paths(tmp_path):
    code, out = cli("validate", EXAMPLE)
    assert code == 0 and "valid (8 nodes)" in out
    doc = json.load(open(EXAMPLE))
    doc["nodes"][1]["ops"][1]["expr"] = "upper(nope)"
    doc["nodes"][2]["rowLevel"][0]["rule"] = "gtt:1"
    doc["nodes"][6]["input"] = "missing"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, out = cli("validate", str(bad))
    assert code == 1
    assert "nodes[2].rowLevel[0].rule" in out and "nodes[6].input" in out and "Traceback" not in out
    code, out = cli("validate", str(tmp_path / "nope.json"))
    assert code == 1 and "file not found" in out


def test_schema_and_plan(tmp_path):
    code, out = cli("schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"].startswith("flow-beam")
    code, out = cli("plan", EXAMPLE)
    assert code == 0 and "beam: ParDo(fused Arrow ops: cast → expression" in out and "schema: order_id int" in out
    branch = out.split("[branch] route", 1)[1].split("\n[", 1)[0]  # a branch's schema is its routes' (was unknown)
    assert "schema: order_id int" in branch and "unknown" not in branch, branch
    code, out = cli("plan", EXAMPLE, "--format", "mermaid")
    assert code == 0 and out.startswith("flowchart LR") and ("route", "paid", "by_country") in mermaid_edges(out)
    code, out = cli("plan", EXAMPLE, "--format", "dot")
    assert code == 0 and '"route" -> "other_orders" [label="other"];' in out


def test_run_prints_table_writes_result_and_exit_code(tmp_path):
    shutil.copytree(os.path.join(ROOT, "examples", "orders", "data"), tmp_path / "data")
    code, out = cli("run", EXAMPLE, "--param", f"input_dir={tmp_path / 'data'}/", "--warehouse",
                    f"duckdb://{tmp_path / 'w.duckdb'}", "--result-file", str(tmp_path / "r.json"), cwd=tmp_path)
    assert code == 2, out  # completed_with_errors: quarantined rows
    assert "orders_table" in out and "completed_with_errors" in out
    result = json.load(open(tmp_path / "r.json"))
    assert result["status"] == "completed_with_errors" and result["nodes"]["orders_table"]["rowsLoaded"] == 7
    assert set(result) >= {"runId", "pipelineId", "status", "runner", "startedAt", "finishedAt", "durationMs", "nodes"}
    assert sorted(os.listdir(tmp_path / "out" / "other_orders"))[0].endswith(".jsonl")


def test_run_failure_exit_code_and_beam_options(tmp_path):
    code, out = cli("run", EXAMPLE, "--param", f"input_dir={tmp_path / 'none'}/", "--warehouse",
                    f"duckdb://{tmp_path / 'w.duckdb'}", "--", "--direct_num_workers=1")
    assert code == 1 and "does not exist" in out and "Traceback" not in out
    code, out = cli("run", EXAMPLE, "--runner", "dataflow")
    assert code == 1 and "--project is required" in out and "--temp-location" in out


def test_embedded_tests_pass_and_fail(tmp_path):
    code, out = cli("test", EXAMPLE)
    assert code == 0 and "1 passed, 0 failed" in out
    doc = json.load(open(EXAMPLE))
    doc["tests"][0]["expect"]["country_revenue"][0]["revenue"] = 99
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps(doc))
    code, out = cli("test", str(bad))
    assert code == 1 and "FAIL" in out and "missing" in out


@pytest.mark.parametrize("args", [["run"], ["bogus"]])
def test_usage_errors(args):
    code, _ = cli(*args)
    assert code == 2


def test_runs_lists_and_shows_history(tmp_path):
    shutil.copytree(os.path.join(ROOT, "examples", "orders", "data"), tmp_path / "data")
    wh = f"duckdb://{tmp_path / 'w.duckdb'}"
    cli("run", EXAMPLE, "--param", f"input_dir={tmp_path / 'data'}/", "--warehouse", wh,
        "--result-file", str(tmp_path / "r.json"), cwd=tmp_path)
    run_id = json.load(open(tmp_path / "r.json"))["runId"]
    code, out = cli("runs", "--warehouse", wh)
    assert code == 0 and run_id[:12] in out and "daily-orders" in out
    code, out = cli("runs", "show", run_id, "--warehouse", wh)
    assert code == 0 and json.loads(out)["runId"] == run_id
    code, out = cli("runs", "show", "nope00000", "--warehouse", wh)
    assert code == 1 and "no run" in out


def mermaid_edges(text: str) -> set:
    """(from id, port label, to id) of a Mermaid flowchart whose nodes are `nK["<id> (<kind>)"]`."""
    import re
    names = {m.group(1): m.group(2) for m in re.finditer(r'^\s*(n\d+)\["(\S+) \(\w+\)"\]$', text, re.M)}
    return {(names[a], label or "", names[b]) for a, label, b in
            re.findall(r"^\s*(n\d+) -->(?:\|(\w+)\|)? (n\d+)$", text, re.M)}


def test_mermaid_keeps_ids_apart_and_never_emits_a_keyword(tmp_path):
    """Found by a probe: ids `a-b` and `a_b` were both drawn as Mermaid node `a_b` (edges merged), and a node `end`
    (a Mermaid keyword) was emitted as an id. Ids are n0, n1… now; each label is the real id."""
    doc = {"kind": "pipeline", "version": "1.0", "id": "m", "nodes": [
        {"id": "a-b", "kind": "source", "connector": "local_fs", "config": {"path": str(tmp_path), "format": "csv"},
         "schema": [{"name": "x", "type": "int"}]},
        {"id": "a_b", "kind": "source", "connector": "local_fs", "config": {"path": str(tmp_path), "format": "csv"},
         "schema": [{"name": "x", "type": "int"}]},
        {"id": "end", "kind": "target", "input": "a-b", "schema": "public.e"},
        {"id": "graph", "kind": "target", "input": "a_b", "schema": "public.g"}]}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    code, out = cli("plan", str(path), "--format", "mermaid")
    assert code == 0 and mermaid_edges(out) == {("a-b", "", "end"), ("a_b", "", "graph")}, out
    assert not re.search(r"^\s*(end|graph|a_b|a-b)\b", out, re.M)
