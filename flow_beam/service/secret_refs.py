"""Documents submitted to the service carry secrets only as references (``env:VAR``, ``secret:…``): a literal
value under a secret-like key (``apiKey``, ``password``, ``token``, ``*Secret``…) or in an ``Authorization``-like
header is an issue, so no secret is ever stored in the IR versions. (Paths are confined by the product's own
check, ``ir_compiler.confine``, through ``check_document(..., root=…)``.)"""
from __future__ import annotations

import re

from ir_compiler.errors import Issue

SECRET_KEY = re.compile(r"(?i)(secret|password|passwd|token|api_?key|credentials?|private_?key)$")
SECRET_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "cookie"}
REFERENCE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|secret:.+|\$\{params\.[A-Za-z_][A-Za-z0-9_]*\})$")


def secret_issues(raw: dict) -> list[Issue]:
    """Every literal secret in the document's nodes, error handling and metadata."""
    issues: list[Issue] = []
    nodes = raw.get("nodes") if isinstance(raw.get("nodes"), list) else []
    for i, node in enumerate(nodes):
        if isinstance(node, dict):
            node_id = node.get("id") if isinstance(node.get("id"), str) else None
            issues += _literal_secrets(node, f"nodes[{i}]", node_id)
    for key in ("errorHandling", "metadata"):
        if isinstance(raw.get(key), dict):
            issues += _literal_secrets(raw[key], key, None)
    return issues


def _walk(value, path: str, key: str | None = None):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}", k)
    elif isinstance(value, list):
        for j, v in enumerate(value):
            yield from _walk(v, f"{path}[{j}]", key)
    else:
        yield path, key, value


def _literal_secrets(obj, base: str, node_id: str | None) -> list[Issue]:
    out = []
    for path, key, value in _walk(obj, base):
        if not isinstance(value, str) or not value or not isinstance(key, str):
            continue
        header = ".headers." in path and key.lower() in SECRET_HEADERS
        if (SECRET_KEY.search(key) or header) and not REFERENCE.match(value):
            out.append(Issue(path, f"'{key}' holds a literal secret; give a reference such as \"env:VAR\" (the "
                                   f"service never stores secrets)", node_id, "secrets"))
    return out
