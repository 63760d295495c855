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
