"""Path confinement (SPEC §6): with a root (--root / $FLOW_BEAM_ROOT / RunOptions.root) every path a document
names resolves inside it, symlinks and '..' resolved; without one, atomicity folders, archive destinations and
sink prefixes still cannot leave their folder. Each traversal vector of the issue-11 probe is run for real: the
run is refused at validation with the field's JSON path and nothing is written outside."""
import json
import os
import subprocess
import sys

import pytest

from conftest import write_csv
from flow_beam.running import RunOptions, run_document
from ir_compiler.check import check_document
from ir_compiler.confine import confinement_issues
from ir_compiler.errors import ValidationFailed
from ir_compiler.propagate import SchemaContext


def tree(tmp_path):
    """root/in/orders.csv, root/out/ and a sibling folder outside the root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    outside.mkdir()
    write_csv(root / "in" / "orders.csv", ["id", "amount"], [(1, 5), (2, 7)])
    return root, outside


def doc(root, **over):
    src = {"id": "src", "kind": "source", "connector": "local_fs",
           "config": {"path": str(root / "in"), "format": "csv",
                      "atomicity": {"stagingFolder": ".processing/", "successFolder": ".done/",
                                    "failureFolder": ".failed/"}}}
    sink = {"id": "tgt", "kind": "target", "input": "src", "connector": "local_fs",
            "config": {"path": str(root / "out"), "format": "jsonl"}}
    d = {"kind": "pipeline", "version": "1.0", "id": "confine", "nodes": [src, sink]}
    for key, value in over.items():
        node, _, field = key.partition(".")
        target = {"src": src["config"], "atom": src["config"]["atomicity"], "sink": sink["config"]}[node]
        target[field] = value
    return d


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(r, n), folder) for r, _, ns in os.walk(folder) for n in ns)


def errors_of(d, root=None):
    with pytest.raises(ValidationFailed) as info:
        check_document(d, ctx=SchemaContext(), root=root)
    return {i.path: i.message for i in info.value.issues if i.severity == "error"}


VECTORS = {  # name -> (document changes, JSON path of the error, needs a root)
    "sink path outside the root": ({"sink.path": "ROOT/../outside"}, "nodes[1].config.path", True),
    "sink prefix with ../": ({"sink.prefix": "../../outside/x"}, "nodes[1].config.prefix", False),
    "staging folder with ../": ({"atom.stagingFolder": "../../outside/staging"},
                                "nodes[0].config.atomicity.stagingFolder", False),
    "success folder with ../": ({"atom.successFolder": "../../outside/done"},
                                "nodes[0].config.atomicity.successFolder", False),
    "failure folder with ../": ({"atom.failureFolder": "../../outside/failed"},
                                "nodes[0].config.atomicity.failureFolder", False),
    "date template with ../": ({"atom.successFolder": ".done/{YYYY}/../../../outside/{MM}"},
                               "nodes[0].config.atomicity.successFolder", False),
    "absolute success folder outside the root": ({"atom.successFolder": "OUTSIDE/done"},
                                                 "nodes[0].config.atomicity.successFolder", True),
    "source path outside the root": ({"src.path": "OUTSIDE"}, "nodes[0].config.path", True),
    # found by a service probe: a path holding '://' skipped the check, and the OS read `/a/x://y` as `/a/x:/y`
    "source path with ://": ({"src.path": "OUTSIDE/x://y"}, "nodes[0].config.path", False),
    "sink path with ://": ({"sink.path": "OUTSIDE/w://out"}, "nodes[1].config.path", False),
    "success folder with ://": ({"atom.successFolder": "OUTSIDE/s://done/"},
                                "nodes[0].config.atomicity.successFolder", False),
    "relative staging folder with ://": ({"atom.stagingFolder": "../../outside/x://y"},
                                         "nodes[0].config.atomicity.stagingFolder", False),
}


def _fill(value, root, outside):
    return value.replace("ROOT", str(root)).replace("OUTSIDE", str(outside)) if isinstance(value, str) else value


@pytest.mark.parametrize("name", list(VECTORS))
def test_traversal_vector_is_refused_and_writes_nothing_outside(tmp_path, name):
    root, outside = tree(tmp_path)
    changes, path, needs_root = VECTORS[name]
    if name == "source path outside the root":
        write_csv(outside / "o.csv", ["id", "amount"], [(3, 1)])
    d = doc(root, **{k: _fill(v, root, outside) for k, v in changes.items()})
    before = files_under(outside)
    assert path in errors_of(d, root=str(root))
    if not needs_root:
        assert path in errors_of(d)  # never intended: refused without a root too
    else:
        check_document(d, ctx=SchemaContext())  # without a root the document is fine
    result = run_document(d, RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}", root=str(root),
                                        record_history=False))
    assert result.status == "failed" and path in result.error, result.error
    assert files_under(outside) == before
    assert files_under(root / "in") == ["orders.csv"]  # not even staged


def test_archive_destination_and_lookups(tmp_path):
    root, outside = tree(tmp_path)
    d = doc(root)
    d["nodes"].append({"id": "arch", "kind": "archive", "input": "tgt", "action": "copy",
                       "destination": "../../outside/{YYYY-MM-DD}"})
    assert "nodes[2].destination" in errors_of(d)
    d["nodes"][2]["destination"] = str(outside)
    assert "nodes[2].destination" in errors_of(d, root=str(root))
    d["nodes"][2]["destination"] = ".archived/{YYYY-MM-DD}"
    check_document(d, ctx=SchemaContext(), root=str(root))
    write_csv(outside / "lk.csv", ["id", "name"], [(1, "x")])
    d["nodes"].insert(1, {"id": "t", "kind": "transform", "input": "src", "ops": [
        {"op": "lookup_join", "lookup": {"connector": "local_fs", "config": {"path": str(outside / "lk.csv")}},
         "on": ["id"], "fields": ["name"]}]})
    d["nodes"].insert(2, {"id": "e", "kind": "enrich", "input": "t", "output": "n2",
                          "provider": {"kind": "lookup", "path": str(outside / "lk.csv"), "on": "id",
                                       "field": "name"}})
    d["nodes"][3]["input"] = "e"
    found = errors_of(d, root=str(root))
    assert {"nodes[1].ops[0].lookup.config.path", "nodes[2].provider.path"} <= set(found)


def test_symlinks_are_resolved(tmp_path):
    root, outside = tree(tmp_path)
    os.symlink(outside, root / "link")
    d = doc(root, **{"src.path": str(root / "link")})
    assert "nodes[0].config.path" in errors_of(d, root=str(root))
    d = doc(root, **{"sink.path": str(root / "link" / "deeper")})
    assert "nodes[1].config.path" in errors_of(d, root=str(root))
    os.symlink(root, tmp_path / "root-alias")  # the root itself given through a symlink still works
    check_document(doc(root), ctx=SchemaContext(), root=str(tmp_path / "root-alias"))


def test_relative_paths_resolve_against_the_working_folder(tmp_path, monkeypatch):
    root, _ = tree(tmp_path)
    monkeypatch.chdir(root)
    d = doc(root, **{"src.path": "in", "sink.path": "../outside"})
    issues = confinement_issues(check_document(d, ctx=SchemaContext()).pipeline, str(root))
    assert [i.path for i in issues] == ["nodes[1].config.path"]


def test_a_confined_document_runs_with_root(tmp_path):
    root, outside = tree(tmp_path)
    result = run_document(doc(root), RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}", root=str(root),
                                                record_history=False))
    assert result.status == "completed", result.error
    assert files_under(root / "in") == [os.path.join(".done", "orders.csv")]
    assert len(files_under(root / "out")) == 1 and files_under(outside) == []


def test_cli_root_option_and_environment(tmp_path):
    root, outside = tree(tmp_path)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc(root, **{"sink.path": str(outside)})))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("FLOW_BEAM_ROOT", None)
    base = [sys.executable, "-m", "flow_beam"]
    for cmd in (["validate", str(path), "--root", str(root), "--format", "json"],
                ["plan", str(path), "--root", str(root)],
                ["run", str(path), "--root", str(root), "--warehouse", str(tmp_path / "w.duckdb")]):
        out = subprocess.run(base + cmd, capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 1 and "confinement root" in out.stdout + out.stderr, (cmd, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
    out = subprocess.run(base + ["validate", str(path)], capture_output=True, text=True,
                         env={**env, "FLOW_BEAM_ROOT": str(root)}, timeout=300)
    assert out.returncode == 1 and "confinement root" in out.stdout + out.stderr
    out = subprocess.run(base + ["validate", str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert files_under(outside) == []
