"""The Dataflow Flex Template launcher (FLEX_TEMPLATE_PYTHON_PY_FILE runs ``python -m flow_beam.flex`` through
templates/dataflow/launcher.py).

Dataflow passes template parameters as ``--name=value`` arguments together with its own pipeline options:
``--ir`` (inline JSON), ``--ir_file`` (a gs:// or local path, read through Beam's FileSystems), ``--params``
(a JSON object of IR params); any ``--<param>=value`` whose name is an IR param is taken as that param (so a
pipeline-specific template can expose its params one by one). Every other argument is a Beam option.
The pipeline is built and started; like every Flex Template launcher it does not wait for a Dataflow job, but on
local runners it waits and prints the run result.
"""
from __future__ import annotations

import argparse
import json
import sys

from ir_compiler.errors import FlowError


def read_ir(ir: str | None, ir_file: str | None) -> dict:
    if bool(ir) == bool(ir_file):
        raise FlowError("give exactly one of --ir (inline JSON) or --ir_file (a gs:// or local path)")
    if ir:
        from ir_compiler.loader import read_json
        return read_json(ir)
    from apache_beam.io.filesystems import FileSystems
    try:
        with FileSystems.open(ir_file) as fh:
            text = fh.read().decode("utf-8")
    except Exception as exc:  # noqa: BLE001 - any storage error: say which file
        raise FlowError(f"cannot read --ir_file {ir_file}: {exc}") from None
    from ir_compiler.loader import read_json
    return read_json(text)


def parse(argv: list[str]) -> tuple[dict, dict, list[str]]:
    """(raw IR, params, remaining Beam options) from the launcher's arguments."""
    ap = argparse.ArgumentParser(prog="flow_beam.flex", add_help=False)
    ap.add_argument("--ir")
    ap.add_argument("--ir_file")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--warehouse")
    known, rest = ap.parse_known_args(argv)
    raw = read_ir(known.ir, known.ir_file)
    try:
        params = json.loads(known.params or "{}")
    except ValueError as exc:
        raise FlowError(f"--params must be a JSON object: {exc}") from None
    if not isinstance(params, dict):
        raise FlowError("--params must be a JSON object of IR params")
    declared = set((raw.get("params") or {}).keys())
    beam_args = []
    for arg in rest:
        name, sep, value = arg.lstrip("-").partition("=")
        if arg.startswith("--") and sep and name in declared:
            params[name] = value
        else:
            beam_args.append(arg)
    if known.warehouse:
        params.setdefault("__warehouse__", known.warehouse)
    return raw, params, beam_args


def runner_of(beam_args: list[str]) -> tuple[str, list[str]]:
    names = {"directrunner": "direct", "direct": "direct", "prismrunner": "prism", "prism": "prism",
             "flinkrunner": "flink", "flink": "flink", "dataflowrunner": "dataflow", "dataflow": "dataflow"}
    runner, rest = "dataflow", []
    for arg in beam_args:
        if arg.startswith("--runner="):
            runner = names.get(arg.split("=", 1)[1].lower(), arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return runner, rest


def main(argv: list[str] | None = None) -> int:
    from flow_beam.reporting import print_result
    from flow_beam.running import RunOptions, run_document

    try:
        raw, params, beam_args = parse(list(sys.argv[1:] if argv is None else argv))
        warehouse = params.pop("__warehouse__", None)
        runner, rest = runner_of(beam_args)
        result = run_document(raw, RunOptions(runner=runner, warehouse=warehouse, params=params, beam_args=rest))
    except FlowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_result(result)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
