"""Dataflow Flex Template specs: a generic one (any IR through ``ir`` / ``ir_file`` / ``params``) or one per
pipeline (the IR embedded as the ``ir`` default, each IR param exposed as its own template parameter), and
the exact ``gcloud dataflow flex-template run`` command for a spec."""
from __future__ import annotations

import json
import os
import shlex
import subprocess

from ir_compiler.errors import FlowError



def _templates_dir() -> str:
    """``templates/``: inside the installed package (a wheel carries it as ``flow_beam/_templates``, see setup.py)
    or at the top of the repository (a checkout or an editable install)."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = (os.path.join(here, "_templates"), os.path.join(os.path.dirname(here), "templates"))
    return next((c for c in candidates if os.path.isdir(os.path.join(c, "pipelines"))), candidates[-1])


TEMPLATES = _templates_dir()
METADATA = os.path.join(TEMPLATES, "dataflow", "metadata.json")
_STAND_IN = {"int": "1", "float": "1.0", "bool": "false"}  # a string param stands in as its own ${params.x}
_PARAM_REGEX = {"int": r"^-?[0-9]+$", "float": r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$",
                "bool": r"^(true|false)$"}


def _missing(what: str) -> FlowError:
    return FlowError(f"the flow-beam {what} is missing from this installation ({TEMPLATES}); reinstall flow-beam")


def generic_metadata() -> dict:
    try:
        with open(METADATA, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise _missing("Flex Template metadata (templates/dataflow/metadata.json)") from None


def pipeline_metadata(source) -> dict:
    """Metadata of a pipeline-specific template: the IR as the ``ir`` default, its params as parameters."""
    from ir_compiler.check import check_document
    from ir_compiler.loader import read_json
    from connectors.registry import get_source
    from ir_compiler.propagate import SchemaContext

    raw = read_json(source)
    # a param without a default is a template parameter without a value: validate with a stand-in of its type
    specs = raw.get("params") if isinstance(raw.get("params"), dict) else {}
    stand_ins = {name: _STAND_IN.get(str(spec.get("type", "string")), f"${{params.{name}}}")
                 for name, spec in specs.items() if isinstance(spec, dict) and spec.get("default") is None}
    checked = check_document(raw, stand_ins, SchemaContext())
    p = checked.pipeline
    streaming = any(n.kind == "source" and not get_source(n.connector).capabilities.bounded for n in p.nodes)
    meta = generic_metadata()
    meta.update({"name": f"flow-beam-{p.id}", "description": (p.metadata.description or p.metadata.name or p.id)
                 if p.metadata else p.id, "streaming": streaming,
                 "supportsAtLeastOnce": streaming, "supportsExactlyOnce": not streaming})
    ir = next(x for x in meta["parameters"] if x["name"] == "ir")
    ir["defaultValue"] = json.dumps(raw, separators=(",", ":"))
    for name, spec in p.params.items():
        param = {"name": name, "label": name, "helpText": spec.description or f"IR param {name} ({spec.type})",
                 "isOptional": spec.default is not None}  # no default: the launch must give a value
        if spec.type in _PARAM_REGEX:
            param["regexes"] = [_PARAM_REGEX[spec.type]]
        if spec.default is not None:
            param["defaultValue"] = str(spec.default).lower() if spec.type == "bool" else str(spec.default)
        meta["parameters"].append(param)
    return meta


def build_spec(image: str, source=None, *, java: bool = False) -> dict:
    """The template spec file content (image, sdkInfo, metadata, defaultEnvironment)."""
    if not image or "/" not in image:
        raise FlowError("--image needs a container image path, e.g. us-docker.pkg.dev/PROJECT/REPO/flow-beam:1.0")
    metadata = generic_metadata() if source is None else pipeline_metadata(source)
    env = {"additionalUserLabels": {"flow-beam": "true"}}
    if java:
        env["additionalExperiments"] = ["use_runner_v2"]
    return {"image": image, "sdkInfo": {"language": "PYTHON"}, "metadata": metadata, "defaultEnvironment": env}


def run_command(spec_path: str, params: dict[str, str], *, job_name: str, region: str | None,
                project: str | None, extra: list[str] | None = None) -> list[str]:
    """The `gcloud dataflow flex-template run` argv for a spec: a local spec file (its parameters are checked) or
    the gs:// path of an uploaded one (checked by Dataflow at launch)."""
    if not spec_path.startswith("gs://"):
        declared = set(spec_parameters(spec_path))
        unknown = sorted(set(params) - declared)
        if unknown:
            raise FlowError(f"unknown template parameter(s) {unknown}; the spec declares {sorted(declared)}")
    location = spec_path if spec_path.startswith("gs://") else f"gs://BUCKET/templates/{os.path.basename(spec_path)}"
    cmd = ["gcloud", "dataflow", "flex-template", "run", job_name, f"--template-file-gcs-location={location}"]
    if region:
        cmd.append(f"--region={region}")
    if project:
        cmd.append(f"--project={project}")
    if params:
        cmd.append("--parameters=^~^" + "~".join(f"{k}={v}" for k, v in sorted(params.items())))
    return cmd + list(extra or [])


def spec_parameters(spec_path: str) -> list[str]:
    """The parameter names a local template spec file declares; a missing, unreadable or malformed file is a
    FlowError saying which and how to get a spec."""
    build = "build one with `flow-beam template build FILE|--generic --image … --output SPEC.json`"
    try:
        with open(spec_path, encoding="utf-8") as fh:
            spec = json.load(fh)
    except FileNotFoundError:
        raise FlowError(f"template spec {spec_path} not found; {build}") from None
    except IsADirectoryError:
        raise FlowError(f"template spec {spec_path} is a folder; give the spec file") from None
    except json.JSONDecodeError as exc:
        raise FlowError(f"{spec_path}, line {exc.lineno}, column {exc.colno}: the template spec is not valid JSON: "
                        f"{exc.msg}") from None
    except UnicodeDecodeError:
        raise FlowError(f"{spec_path}: the template spec is not UTF-8 text") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise FlowError(f"cannot read the template spec {spec_path}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    metadata = spec.get("metadata") if isinstance(spec, dict) else None
    parameters = metadata.get("parameters") if isinstance(metadata, dict) else None
    if not isinstance(parameters, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str)
                                                   for p in parameters):
        raise FlowError(f"{spec_path} is not a Flex Template spec (it has no metadata.parameters list); {build}")
    return [p["name"] for p in parameters]


def submit(cmd: list[str]) -> int:
    try:
        return subprocess.call(cmd)
    except FileNotFoundError:
        raise FlowError("gcloud is not installed; run the printed command where the Google Cloud CLI is") \
            from None


def shell_line(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


CATALOG = os.path.join(TEMPLATES, "pipelines")


def catalog() -> dict[str, str]:
    """Template name → its description."""
    if not os.path.isdir(CATALOG):
        raise _missing("pipeline catalog (templates/pipelines)")
    out = {}
    for name in sorted(os.listdir(CATALOG)):
        path = os.path.join(CATALOG, name, "pipeline.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                meta = json.load(fh).get("metadata") or {}
            out[name] = meta.get("description") or meta.get("name") or name
    return out


def init(name: str, folder: str) -> str:
    """Copy a catalog template (pipeline.json + sample data) into ``folder``; never overwrites."""
    import shutil

    src = os.path.join(CATALOG, name)
    if not os.path.isfile(os.path.join(src, "pipeline.json")):
        raise FlowError(f"no template {name!r}; available: {', '.join(catalog())}")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise FlowError(f"{folder} exists and is not a folder; pick a new folder")
    if os.path.exists(folder) and os.listdir(folder):
        raise FlowError(f"{folder} exists and is not empty; pick a new folder")
    try:
        shutil.copytree(src, folder, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise FlowError(f"cannot copy template {name!r} into {folder}: {reason}") from None
    return os.path.join(folder, "pipeline.json")
