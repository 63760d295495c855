"""Issues as the service answers them: ``{"path": JSON Pointer, "nodeId", "layer", "message", "severity"}``."""
from __future__ import annotations

import json
import re

from ir_compiler.errors import Issue

# the engine's paths (``ir_compiler.loader.json_path``): ``nodes[2].ops[0].expr``; a key that is not a plain name is
# a JSON string in brackets: ``metadata["a.b"]``, ``params["my param"]``
_STEP = re.compile(r'(?:^|\.)([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _tokens(path: str) -> list[str]:
    """The keys and indexes of an engine path, quoted keys decoded; a path outside that grammar is split at
    '.', '[' and ']' as well as it can be."""
    out, at = [], 0
    while at < len(path):
        m = _STEP.match(path, at)
        if not m or m.end() == at or (m.group(1) is not None and at and path[at] != "."):
            return [index or key for index, key in _TOKEN.findall(path)]
        name, index, quoted = m.groups()
        if quoted is not None:
            try:
                out.append(str(json.loads(quoted)))
            except ValueError:
                out.append(quoted[1:-1])
        else:
            out.append(index if index is not None else name)
        at = m.end()
    return out


def pointer(tokens) -> str:
    """RFC 6901: ``("nodes", 2, "a/b")`` → ``/nodes/2/a~1b`` (``~`` → ``~0``, ``/`` → ``~1`` in each token)."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def json_pointer(path) -> str:
    """``nodes[2].rowLevel[0].rule`` → ``/nodes/2/rowLevel/0/rule``; ``metadata["a.b"]`` → ``/metadata/a.b``
    (RFC 6901; ``""`` and ``$`` are the whole document). A tuple or list of keys is escaped as it is; a path that
    already is a pointer is returned as it is."""
    if isinstance(path, (tuple, list)):
        return pointer(path)
    if not path or path == "$" or path.startswith("/"):
        return "" if not path or path == "$" else path
    return pointer(_tokens(path))


def issue_json(issue: Issue) -> dict:
    return {"path": json_pointer(issue.path), "nodeId": issue.node_id, "layer": issue.layer,
            "message": issue.message, "severity": issue.severity}


def issue(path: str, message: str, layer: str, node_id: str | None = None) -> dict:
    """An issue made by the service itself (``path`` is already a JSON Pointer)."""
    return {"path": path, "nodeId": node_id, "layer": layer, "message": message, "severity": "error"}


class ServiceError(Exception):
    """An answer other than success: HTTP status, one-line error and the issues behind it."""

    def __init__(self, status: int, error: str, issues: list[dict] | None = None, headers: dict | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.issues = issues or []
        self.headers = headers

    def body(self) -> dict:
        return {"error": self.error, "issues": self.issues}
