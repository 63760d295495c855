"""The command line's front door: every bad input is one clear error line (or one JSON object with
``--format json``), never a traceback, and a run that loaded its data is never reported as a failure."""
import json
import os
import random
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fuzz_ir  # noqa: E402

from flow_beam import cli  # noqa: E402

GOOD = {"kind": "pipeline", "version": "1.0", "id": "p", "nodes": [
    {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "/nowhere/", "format": "csv"},
     "schema": [{"name": "id", "type": "int"}]},
    {"id": "tgt", "kind": "target", "input": "src", "schema": "public.out"}]}


def run_cli(*args, cwd=None, env=None):
    """The console script as a user runs it: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "flow_beam", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "200", **(env or {})}, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def in_process(capsys, *args):
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def hostile_files(folder) -> list[str]:
    """Documents that crashed `flow-beam validate` or broke its JSON output on main."""
    docs = {
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "deep_obj.json": '{"kind": "pipeline", "metadata": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}",
        "bigint.json": '{"kind": "pipeline", "id": ' + "9" * 5000 + "}",
        "nan.json": '{"kind": "pipeline", "id": NaN}',
        "longid.json": json.dumps({**GOOD, "nodes": [{**GOOD["nodes"][0], "id": "a" * 5000}, GOOD["nodes"][1]]}),
        "empty_key.json": json.dumps({**GOOD, "": 1}),
        "surrogate.json": json.dumps({**GOOD, "id": "\ud800"}),
        "array.json": "[1, 2]",
        "empty.json": "",
        "truncated.json": json.dumps(GOOD)[:40],
        "markup.json": json.dumps({**GOOD, "nodes": [{**GOOD["nodes"][0], "id": "[bold]x"}, GOOD["nodes"][1]]}),
        "expr.json": json.dumps({**GOOD, "nodes": [GOOD["nodes"][0], {"id": "t", "kind": "transform", "input": "src",
                                 "ops": [{"op": "expression", "field": "x", "expr": "(" * 400 + "1" + ")" * 400}]},
                                 {**GOOD["nodes"][1], "input": "t"}]}),
    }
    paths = []
    for name, text in docs.items():
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(text)
        paths.append(path)
    for name, data in {"latin1.json": json.dumps(GOOD).replace("p", "é").encode("latin-1"),
                       "utf16.json": json.dumps(GOOD).encode("utf-16"), "nul.json": b"\x00{}"}.items():
        path = os.path.join(folder, name)
        with open(path, "wb") as fh:
            fh.write(data)
        paths.append(path)
    return paths + [str(folder), os.path.join(folder, "missing.json")]


def test_validate_json_is_always_json_and_text_never_a_traceback(tmp_path, capsys):
    for path in hostile_files(tmp_path):
        code, out, err = in_process(capsys, "validate", path, "--format", "json")
        answer = json.loads(out)  # fails when the output is not one JSON object
        assert code == 1 and answer["valid"] is False and answer["error"], (path, out)
        assert all(i["path"] for i in answer["issues"]), (path, answer)
        code, out, err = in_process(capsys, "validate", path)
        assert code == 1 and "Traceback" not in out + err and err.strip(), (path, err)


def test_validate_json_for_usage_and_param_errors(capsys):
    path = os.path.join(ROOT, "examples", "orders", "pipeline.json")
    for args in (["--param", "novalue"], ["--param", "nope=1"], ["--param", "min_amount=abc"], ["--bogus"]):
        code, out, err = in_process(capsys, "validate", path, "--format", "json", *args)
        answer = json.loads(out)
        assert code in (1, 2) and answer["valid"] is False and answer["error"], (args, out)
    code, out, err = in_process(capsys, "validate", path, "--format=json")
    assert code == 0 and json.loads(out)["valid"] is True


def test_internal_error_is_one_line_and_json(capsys, monkeypatch):
    import ir_compiler.check

    def broken(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(ir_compiler.check, "check_document", broken)
    path = os.path.join(ROOT, "examples", "orders", "pipeline.json")
    code, out, err = in_process(capsys, "validate", path, "--format", "json")
    answer = json.loads(out)
    assert code == 1 and "internal error (KeyError" in answer["error"]
    code, out, err = in_process(capsys, "validate", path)
    assert code == 1 and "internal error (KeyError: 'boom')" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_fuzzed_documents_through_the_cli(tmp_path, capsys):
    rng = random.Random(5)
    docs = fuzz_ir.corpus()
    path = tmp_path / "doc.json"
    for _ in range(150):
        source = fuzz_ir.fuzzed(rng, docs)
        if isinstance(source, bytes):
            path.write_bytes(source)
        else:
            try:
                path.write_text(json.dumps(source), encoding="utf-8", errors="surrogatepass")
            except (ValueError, RecursionError):
                continue
        code, out, err = in_process(capsys, "validate", str(path), "--format", "json")
        assert json.loads(out)["valid"] is (code == 0)
        code, out, err = in_process(capsys, "validate", str(path))
        assert "Traceback" not in out + err


def test_subprocess_validate_of_a_folder_and_deep_file(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    for target in (str(tmp_path), str(tmp_path / "deep.json")):
        code, out, err = run_cli("validate", target, "--format", "json")
        assert code == 1 and json.loads(out)["valid"] is False and "Traceback" not in err
        code, out, err = run_cli("validate", target)
        assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# ---- section 2: every command's file arguments and outputs ---------------------------------------------------


def one_error_line(code, out, err, *needles):
    assert code == 1, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error ") and "Traceback" not in out + err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_a_folder_given_as_file(tmp_path, capsys):
    for args in (["validate"], ["plan"], ["run"], ["test"], ["schedule", "next"], ["schedule", "export"],
                 ["template", "build"]):
        extra = ["--image", "a/b"] if "build" in args else []
        one_error_line(*in_process(capsys, *args, str(tmp_path), *extra), "is a folder")
    one_error_line(*in_process(capsys, "template", "run", str(tmp_path)), "is a folder")


@pytest.mark.parametrize("command", [["schema"], ["template", "build", "--generic", "--image", "a/b"],
                                     ["schedule", "export", os.path.join(ROOT, "examples", "orders",
                                                                         "pipeline.json")]])
def test_output_into_a_missing_folder_or_a_full_device(tmp_path, capsys, command):
    target = tmp_path / "no" / "such" / "out.json"
    one_error_line(*in_process(capsys, *command, "--output", str(target)), "--output", "does not exist")
    assert not (tmp_path / "no").exists()
    one_error_line(*in_process(capsys, *command, "--output", str(tmp_path)), "is a folder")
    if os.path.exists("/dev/full"):
        one_error_line(*in_process(capsys, *command, "--output", "/dev/full"), "No space left on device")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root only; skipped elsewhere): a real full disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()}); /dev/full covers a full disk")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_leaves_no_half_file(tiny_disk, capsys):
    target = tiny_disk / "schema.json"
    target.write_text("old\n")
    with open(tiny_disk / "fill", "wb") as fh:  # leave 8 KiB: the schema (far larger) cannot fit
        fh.write(b"\0" * (56 * 1024))
    one_error_line(*in_process(capsys, "schema", "--output", str(target)), "No space left on device")
    assert target.read_text() == "old\n" and sorted(p.name for p in tiny_disk.iterdir()) == ["fill", "schema.json"]
    (tiny_disk / "fill").unlink()
    (tiny_disk / "small.json").write_text("{}")
    code, out, err = in_process(capsys, "template", "build", "--generic", "--image", "a/b", "--output",
                                str(tiny_disk / "small.json"))
    assert code == 0 and json.loads((tiny_disk / "small.json").read_text())["image"] == "a/b"


def test_template_run_on_missing_or_malformed_specs(tmp_path, capsys):
    one_error_line(*in_process(capsys, "template", "run", str(tmp_path / "nope.json")), "not found",
                   "template build")
    for name, text, needle in [("bad.json", '{"x":', "line 1, column 6"), ("arr.json", "[1]", "not a Flex Template"),
                               ("meta.json", '{"metadata": 5}', "not a Flex Template"),
                               ("params.json", '{"metadata": {"parameters": [1]}}', "not a Flex Template")]:
        (tmp_path / name).write_text(text)
        one_error_line(*in_process(capsys, "template", "run", str(tmp_path / name)), needle)
    (tmp_path / "latin.json").write_bytes(b'{"metadata": "\xe9"}')
    one_error_line(*in_process(capsys, "template", "run", str(tmp_path / "latin.json")), "not UTF-8")
    code, out, err = in_process(capsys, "template", "run", "gs://bucket/spec.json", "--param", "a=b")
    assert code == 0 and "--template-file-gcs-location=gs://bucket/spec.json" in out


def test_init_into_a_file_or_full_device(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    one_error_line(*in_process(capsys, "init", "daily-orders", str(tmp_path / "file")), "is not a folder")
    one_error_line(*in_process(capsys, "init", "nope", str(tmp_path / "new")), "no template 'nope'")


def _tiny_pipeline(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_text("id,name\n1,x\n2,y\n")
    doc = {"kind": "pipeline", "version": "1.0", "id": "tiny", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(data) + "/", "format": "csv"},
         "schema": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]},
        {"id": "tgt", "kind": "target", "input": "src", "schema": "public.tiny"}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(doc))
    return path


def _loaded(warehouse) -> int | None:
    import duckdb
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM public.tiny").fetchone()[0]
    except duckdb.CatalogException:
        return None
    finally:
        con.close()


def test_result_file_problems_never_turn_a_load_into_a_failure(tmp_path):
    path, warehouse = _tiny_pipeline(tmp_path), tmp_path / "w.duckdb"
    code, out, err = run_cli("run", str(path), "--warehouse", f"duckdb:///{warehouse}", "--result-file",
                             str(tmp_path / "missing" / "r.json"))
    one_error_line(code, out, err, "--result-file", "does not exist")
    assert not warehouse.exists() or _loaded(warehouse) is None  # refused before anything ran
    if os.path.exists("/dev/full"):
        code, out, err = run_cli("run", str(path), "--warehouse", f"duckdb:///{warehouse}", "--result-file",
                                 "/dev/full")
        assert code == 0, out + err
        assert "completed" in out and "warning cannot write --result-file /dev/full: No space left on device" in err
        assert "Traceback" not in out + err and _loaded(warehouse) == 2


# ---- section 5: user text is never terminal markup ------------------------------------------------------------


def test_validation_messages_keep_their_brackets(tmp_path, capsys):
    ops = [{"op": "expression", "field": "z", "expr": "nope || '[red]x[/red] [b]'"}]
    doc = {**GOOD, "nodes": [GOOD["nodes"][0], {"id": "t", "kind": "transform", "input": "src", "ops": ops},
                             {**GOOD["nodes"][1], "input": "t"}]}
    path = tmp_path / "[x]doc.json"
    path.write_text(json.dumps(doc))
    code, out, err = in_process(capsys, "validate", str(path))
    assert code == 1 and f"{path}: 1 error(s)" in err
    assert "nodes[1].ops[0].expr [node t]: unknown column 'nope'" in err and "nope || '[red]x[/red] [b]'" in err
    ops[0] = {"op": "drop", "fields": ["id"], "[bold]key": 1}
    path.write_text(json.dumps(doc))
    code, out, err = in_process(capsys, "validate", str(path))
    assert 'nodes[1].ops[0]["[bold]key"] [node t]' in err and "unknown field '[bold]key'" in err


def test_result_table_and_warnings_keep_user_text():
    from rich.console import Console

    from flow_beam import reporting
    from flow_beam.results import NodeResult, RunResult

    result = RunResult("r" * 32, "p", "failed", "direct", "2026-01-01", nodes={
        "src": NodeResult("source", "completed", rowsIn=2, rowsOut=2, warnings=["regex '^[a-z]*$' :warning:"]),
        "t": NodeResult("transform", "failed", error='row: {"id": "[b]2[/b]", "name": "[red]y[/red]"}')},
        warnings=["[dim]w[/dim]"], error="first: '[b]2[/b]'")
    console = Console(record=True, width=400, highlight=False, emoji=False)
    saved = reporting.console
    reporting.console = console
    try:
        reporting.print_result(result)
    finally:
        reporting.console = saved
    text = console.export_text()
    for needle in ("regex '^[a-z]*$' :warning:", '{"id": "[b]2[/b]", "name": "[red]y[/red]"}', "[dim]w[/dim]",
                   "failed in 0.0s — first: '[b]2[/b]'"):
        assert needle in text, (needle, text)


def test_a_bad_rows_data_shows_as_it_is(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_text("id,name\n1,x\n[b]2[/b],[red]y[/red]\n")
    doc = {"kind": "pipeline", "version": "1.0", "id": "tiny", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(data) + "/", "format": "csv"},
         "schema": [{"name": "id", "type": "string"}, {"name": "name", "type": "string"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [{"op": "cast", "field": "id", "to": "int"}]},
        {"id": "tgt", "kind": "target", "input": "t", "schema": "public.tiny"}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    code, out, err = run_cli("run", str(tmp_path / "p.json"), "--warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}",
                             env={"COLUMNS": "1000"})
    assert code == 1 and "cannot cast '[b]2[/b]' in column 'id' to int" in out
    assert '"name": "[red]y[/red]"' in out


# ---- section 3: a run that fails midway keeps the counts of every node that ran ----------------------------


def test_counts_of_nodes_that_ran_survive_a_failure_midway(tmp_path):
    from flow_beam.history import get_run
    from flow_beam.running import RunOptions, run_document

    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_text("id,name\n1,x\n2,y\n3,\n")
    doc = {"kind": "pipeline", "version": "1.0", "id": "midway", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(data) + "/", "format": "csv"},
         "schema": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [{"op": "expression", "field": "z", "expr": "id * 2"}]},
        {"id": "v", "kind": "validate", "input": "t", "rowLevel": [{"field": "name", "rule": "not_null"}]},
        {"id": "files", "kind": "target", "input": "v", "connector": "local_fs",  # fails in the worker: no folder
         "config": {"path": str(tmp_path / "blocker" / "out") + "/", "format": "jsonl"}}]}
    (tmp_path / "blocker").write_text("a file where the sink wants a folder")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    result = run_document(doc, RunOptions(warehouse=url))
    assert result.status == "failed" and result.nodes["files"].status == "failed"
    src, t, v = (result.nodes[n] for n in ("src", "t", "v"))
    assert (src.status, src.rowsIn, src.rowsOut) == ("completed", 3, 3)
    assert (t.rowsIn, t.rowsOut) == (3, 3)
    assert (v.status, v.rowsIn, v.rowsOut, v.rowsQuarantined) == ("completed_with_errors", 3, 2, 1)
    stored = get_run(url, result.runId)  # the run history table keeps them too
    assert stored["status"] == "failed" and stored["nodes"]["src"]["rowsIn"] == 3
    assert stored["nodes"]["v"]["rowsQuarantined"] == 1


def test_an_unknown_field_names_the_field_it_most_likely_meant():
    from ir_compiler.check import check_document, default_context
    from ir_compiler.errors import ValidationFailed
    doc = {"kind": "pipeline", "version": "1.0", "id": "typos", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": "/nonexistent", "format": "csv", "delimeter": ";"},
         "schema": [{"name": "id", "type": "int"}]},
        {"id": "out", "kind": "target", "input": "src", "schema": "public.t", "loadMode": "upsert",
         "upsert_key": "id", "zzqq": 1}]}
    with pytest.raises(ValidationFailed) as info:
        check_document(doc, {}, default_context(None))
    by_path = {i.path: i.message for i in info.value.issues}
    assert "did you mean 'delimiter'?" in by_path["nodes[0].config.delimeter"]
    assert "did you mean 'upsertKey'?" in by_path["nodes[1].upsert_key"]
    assert "check the spelling" in by_path["nodes[1].zzqq"]  # nothing close: no guess
