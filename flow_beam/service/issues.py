"""Issues as the service answers them: ``{"path": JSON Pointer, "nodeId", "layer", "message", "severity"}``."""
from __future__ import annotations

import re

from ir_compiler.errors import Issue

_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def json_pointer(path: str) -> str:
    """``nodes[2].rowLevel[0].rule`` → ``/nodes/2/rowLevel/0/rule`` (RFC 6901; ``""`` is the whole document).

    A path that already is a pointer is returned as it is."""
    if not path or path.startswith("/"):
        return path or ""
    parts = []
    for index, key in _TOKEN.findall(path):
        token = index if index else key
        parts.append(token.replace("~", "~0").replace("/", "~1"))
    return "/" + "/".join(parts)


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
