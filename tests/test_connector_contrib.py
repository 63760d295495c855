"""The README's *Contributing a connector* example, as written: one package plus one registry line give a source
that validates with a typed config, plans, and runs (a copy of the code base in tmp_path, never this one)."""
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example() -> str:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Contributing a connector", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _flow_beam(base, *args):
    env = {**os.environ, "PYTHONPATH": str(base), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "flow_beam", *args], capture_output=True, text=True, cwd=base,
                          env=env, timeout=600)


def test_one_package_and_one_registry_line_make_a_connector(tmp_path):
    for name in ("connectors", "ir_compiler", "flow_beam"):
        shutil.copytree(os.path.join(ROOT, name), tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "connectors" / "sequence").mkdir()
    (tmp_path / "connectors" / "sequence" / "__init__.py").write_text(_example())
    registry = tmp_path / "connectors" / "registry.py"
    text = registry.read_text()
    text = re.sub(r"^from connectors import (.*)$", r"from connectors import \1, sequence", text, count=1, flags=re.M)
    text = text.replace("    table.TableSource(),\n", "    table.TableSource(),\n    sequence.SequenceSource(),\n", 1)
    registry.write_text(text)

    doc = {"kind": "pipeline", "id": "seq", "nodes": [
        {"id": "src", "kind": "source", "connector": "sequence", "config": {"start": 1, "stop": 6}},
        {"id": "t", "kind": "transform", "input": "src", "ops": [{"op": "filter", "condition": "n > 2"}]},
        {"id": "out", "kind": "target", "input": "t", "schema": "public.seq"}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    plan = _flow_beam(tmp_path, "plan", "p.json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Create(one Arrow table of integers)" in plan.stdout and "schema: n int" in plan.stdout
    run = _flow_beam(tmp_path, "run", "p.json", "--warehouse", str(tmp_path / "w.duckdb"), "--result-file", "r.json")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["status"] == "completed", result
    assert result["nodes"]["src"]["rowsIn"] == 5 and result["nodes"]["out"]["rowsLoaded"] == 3

    doc["nodes"][0]["config"] = {"stopp": 6}
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    bad = _flow_beam(tmp_path, "validate", "bad.json")
    assert bad.returncode == 1 and "nodes[0].config.stopp" in bad.stdout + bad.stderr
    schema = json.loads(_flow_beam(tmp_path, "schema").stdout)
    assert "SequenceConfig" in schema["$defs"]
