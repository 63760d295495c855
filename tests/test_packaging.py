"""The built wheel carries the pipeline catalog and the Flex Template files: `flow-beam init` and `template build`
work after a normal (not editable) install. Builds the wheel from a copy of the repository, installs it with
--no-deps into a fresh venv that sees this interpreter's site-packages (for Beam and the other dependencies),
and runs the console commands from outside the repository."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, flow-beam script, env) of a fresh venv holding only the built wheel."""
    base = tmp_path_factory.mktemp("pkg")
    src = base / "src"
    src.mkdir()
    for name in ("setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    for name in ("flow_beam", "ir_compiler", "connectors", "templates"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, timeout=600)
    (wheel,) = wheels.glob("flow_beam-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)  # its own pip (offline)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=600, env={k: v for k, v in os.environ.items()
                                                          if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "zz_shared_deps.pth"), "w") as fh:  # after the venv's own packages
        fh.write(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLUMNS"] = "200"
    return python, venv / "bin" / "flow-beam", env, base


def run(installed, *args):
    python, script, env, base = installed
    proc = subprocess.run([str(script), *args], capture_output=True, text=True, cwd=base, env=env, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.slow
def test_the_wheel_is_what_runs(installed):
    python, _, env, base = installed
    where = subprocess.run([str(python), "-c", "import flow_beam.templates as t; print(t.__file__, t.TEMPLATES)"],
                           capture_output=True, text=True, cwd=base, env=env, check=True).stdout
    assert str(base / "venv") in where and "flow_beam/_templates" in where and ROOT not in where


@pytest.mark.slow
def test_init_list_and_init_from_the_wheel(installed):
    code, out, err = run(installed, "init", "--list")
    assert code == 0, err
    assert "daily-orders" in out and "files-to-warehouse" in out
    folder = installed[3] / "orders"
    code, out, err = run(installed, "init", "daily-orders", str(folder))
    assert code == 0, err
    assert json.loads((folder / "pipeline.json").read_text())["id"] == "daily-orders"
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["orders_2026-11-21.csv", "orders_2026-11-22.csv"]


@pytest.mark.slow
def test_template_build_generic_and_for_a_pipeline_from_the_wheel(installed, tmp_path):
    code, out, err = run(installed, "template", "build", "--generic", "--image", "us-docker.pkg.dev/p/r/fb:1")
    assert code == 0, err
    spec = json.loads(out)
    assert {p["name"] for p in spec["metadata"]["parameters"]} >= {"ir", "ir_file", "params"}
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps(NO_DEFAULT))
    code, out, err = run(installed, "template", "build", str(doc), "--image", "us-docker.pkg.dev/p/r/fb:1")
    assert code == 0, err
    params = {p["name"]: p for p in json.loads(out)["metadata"]["parameters"]}
    assert params["data_dir"]["isOptional"] is False and "defaultValue" not in params["data_dir"]


NO_DEFAULT = {"kind": "pipeline", "version": "1.0", "id": "needs-params",
              "params": {"data_dir": {"type": "string", "description": "where the files land"},
                         "limit": {"type": "int"}, "ratio": {"type": "float"}, "strict": {"type": "bool"},
                         "table": {"type": "string", "default": "public.out"}},
              "nodes": [
                  {"id": "src", "kind": "source", "connector": "local_fs",
                   "config": {"path": "${params.data_dir}", "format": "csv"},
                   "schema": [{"name": "id", "type": "int"}, {"name": "amount", "type": "float"}]},
                  {"id": "t", "kind": "transform", "input": "src", "ops": [
                      {"op": "filter", "condition": "id > ${params.limit} AND amount > ${params.ratio}"},
                      {"op": "add_field", "field": "strict", "value": "${params.strict}", "type": "bool"}]},
                  {"id": "tgt", "kind": "target", "input": "t", "schema": "${params.table}"}]}


def test_template_build_exposes_params_without_defaults(tmp_path, capsys):
    from flow_beam import cli

    doc = tmp_path / "p.json"
    doc.write_text(json.dumps(NO_DEFAULT))
    code = cli.main(["template", "build", str(doc), "--image", "us-docker.pkg.dev/p/r/fb:1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    meta = json.loads(out.out)["metadata"]
    params = {p["name"]: p for p in meta["parameters"]}
    for name in ("data_dir", "limit", "ratio", "strict"):
        assert params[name]["isOptional"] is False and "defaultValue" not in params[name], params[name]
    assert params["limit"]["regexes"] == ["^-?[0-9]+$"] and params["table"]["defaultValue"] == "public.out"
    assert json.loads(next(p for p in meta["parameters"] if p["name"] == "ir")["defaultValue"]) == NO_DEFAULT
