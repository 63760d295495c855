"""Read a document: JSON text → ``${params.x}`` substitution → pydantic models, errors as JSON-path issues."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ir_compiler.errors import DocumentError, Issue, ValidationFailed
from ir_compiler.models import Pipeline

_PARAM = re.compile(r"\$\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")
_CASTS = {"string": str, "int": int, "float": float, "bool": lambda v: str(v).lower() in ("1", "true", "yes")}


def read_json(source: str | Path | dict) -> dict:
    """The raw document from a path, a JSON string or a dict; syntax errors give file, line and column."""
    if isinstance(source, dict):
        return source
    text, name = str(source), "<document>"
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.exists():
            raise DocumentError(f"file not found: {path}; pass the path of a pipeline JSON document")
        text, name = path.read_text(encoding="utf-8"), str(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{name}, line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise DocumentError(f"{name}: a pipeline document is a JSON object, got {type(doc).__name__}")
    return doc


def json_path(loc: tuple | list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def resolve_params(raw: dict, given: dict[str, Any] | None) -> tuple[dict, list[Issue]]:
    """Substitute ``${params.name}`` everywhere (a whole-string reference keeps the param's type)."""
    specs = raw.get("params") or {}
    issues: list[Issue] = []
    if not isinstance(specs, dict):
        return raw, [Issue("params", "params must be an object of {name: {type, default}}")]
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        spec = spec if isinstance(spec, dict) else {}
        if given and name in given:
            try:
                values[name] = _CASTS.get(spec.get("type", "string"), str)(given[name])
            except (TypeError, ValueError):
                issues.append(Issue(f"params.{name}", f"value {given[name]!r} is not a valid {spec.get('type')}"))
        elif spec.get("default") is not None:
            values[name] = spec["default"]
    for name in (given or {}):
        if name not in specs:
            issues.append(Issue(f"params.{name}", f"unknown param '{name}'; declared: {sorted(specs) or 'none'}"))

    def sub(value, path):
        if isinstance(value, dict):
            return {k: (v if path == "" and k in ("params", "tests") else sub(v, f"{path}.{k}" if path else k))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        refs = _PARAM.findall(value)
        for ref in refs:
            if ref not in specs:
                issues.append(Issue(path, f"unknown param '${{params.{ref}}}'; declare it under 'params'"))
            elif ref not in values:
                issues.append(Issue(path, f"param '{ref}' has no value; give --param {ref}=... or a default"))
        whole = _PARAM.fullmatch(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return _PARAM.sub(lambda m: str(values.get(m.group(1), m.group(0))), value)

    return sub(raw, ""), issues


def _strip_tags(loc: tuple, raw: Any) -> list:
    """Drop the union-tag entries pydantic puts in ``loc`` (``nodes.1.transform.ops``)."""
    out, cur = [], raw
    for part in loc:
        if isinstance(cur, dict) and isinstance(part, str) and part not in cur and part in (
                cur.get("kind"), cur.get("op"), "function-after", "list[str]", "list[dict[str,str]]", "str"):
            continue
        if isinstance(part, str) and part.startswith(("function-", "list[", "dict[", "str", "int", "bool")) and \
                not (isinstance(cur, dict) and part in cur):
            continue
        out.append(part)
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            cur = None
    return out


def _node_id(raw: dict, loc: list) -> str | None:
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = raw.get("nodes") or []
        if loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
            return nodes[loc[1]].get("id")
    return None


def pydantic_issues(exc: ValidationError, raw: dict, prefix: tuple = ()) -> list[Issue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = _strip_tags(prefix + tuple(err["loc"]), raw)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field '{loc[-1]}'; check the spelling (allowed fields are in `flow-beam schema`)"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown {err['ctx']['discriminator'].strip(chr(39))} {err['ctx']['tag']!r}; " \
                  f"expected one of {err['ctx']['expected_tags']}"
        issues.append(Issue(json_path(loc), msg, _node_id(raw, loc), "model"))
    return issues


def load_document(source: str | Path | dict, params: dict[str, Any] | None = None) -> tuple[Pipeline, dict]:
    """Parse and model-validate a document; raises ValidationFailed with every model-layer issue."""
    raw = read_json(source)
    resolved, issues = resolve_params(raw, params)
    try:
        pipeline = Pipeline.model_validate(resolved)
    except ValidationError as exc:
        raise ValidationFailed(issues + pydantic_issues(exc, resolved)) from None
    issues += _connector_issues(pipeline, resolved)
    if [i for i in issues if i.severity == "error"]:
        raise ValidationFailed(issues)
    return pipeline, resolved


def _connector_issues(pipeline: Pipeline, raw: dict) -> list[Issue]:
    """Validate each source/target ``config`` against its connector's model."""
    from ir_compiler.models import SINK_CONFIGS, SOURCE_CONFIGS

    issues = []
    for i, node in enumerate(pipeline.nodes):
        table = SOURCE_CONFIGS if node.kind == "source" else SINK_CONFIGS if node.kind == "target" else None
        connector = getattr(node, "connector", None)
        if table is None or connector is None:
            continue
        try:
            table[connector].model_validate(node.config or {})
        except ValidationError as exc:
            issues += pydantic_issues(exc, raw, ("nodes", i, "config"))
    return issues


def connector_config(node):
    """The typed config model of a source or target node (already validated by load_document)."""
    from ir_compiler.models import SINK_CONFIGS, SOURCE_CONFIGS

    table = SOURCE_CONFIGS if node.kind == "source" else SINK_CONFIGS
    return table[node.connector].model_validate(node.config or {})
