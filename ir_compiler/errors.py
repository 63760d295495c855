"""One exception tree for the whole product.

Every problem found in a document is an :class:`Issue` with a JSON path (``nodes[2].ops[0].expr``) and,
where it applies, the node id. Validation collects issues and raises once with all of them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem in a document: where (JSON path, node id) and what (message, fix hint)."""

    path: str
    message: str
    node_id: str | None = None
    layer: str = "model"  # model | graph | rules | types | expression | runtime
    severity: str = "error"  # error | warning | info

    def __str__(self) -> str:
        where = self.path or "<document>"
        node = f" (node '{self.node_id}')" if self.node_id else ""
        return f"{where}{node}: {self.message}"


class FlowError(Exception):
    """Root of every error flow-beam raises on purpose (never shown as a traceback)."""

    def __init__(self, message: str, *, path: str = "", node_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.node_id = node_id

    def __str__(self) -> str:
        parts = []
        if self.node_id:
            parts.append(f"node '{self.node_id}'")
        if self.path:
            parts.append(self.path)
        prefix = f"{' at '.join(parts)}: " if parts else ""
        return f"{prefix}{self.message}"


class DocumentError(FlowError):
    """The document could not be read or parsed (file missing, JSON syntax)."""


class ValidationFailed(FlowError):
    """One or more validation issues; ``issues`` holds all of them."""

    def __init__(self, issues: list[Issue]):
        self.issues = [i for i in issues]
        errors = [i for i in issues if i.severity == "error"]
        lines = "\n".join(f"  - {i}" for i in errors)
        super().__init__(f"{len(errors)} validation error(s):\n{lines}")


class ExpressionError(FlowError):
    """A SQL expression could not be parsed, is unsupported or is ill-typed.

    ``position`` is the 1-based column in the expression text, when known.
    """

    def __init__(self, message: str, *, expr: str = "", position: int | None = None,
                 path: str = "", node_id: str | None = None):
        if position is not None:
            message = f"{message} (at position {position} in {expr!r})"
        elif expr:
            message = f"{message} (in {expr!r})"
        super().__init__(message, path=path, node_id=node_id)
        self.expr = expr
        self.position = position


class ConnectorError(FlowError):
    """A source or sink failed (missing folder, unreadable file, unreachable endpoint)."""


class NotAvailableError(FlowError):
    """The node kind, connector or load mode validates but has no runtime in this build."""


class LoadError(FlowError):
    """A target load failed; the target was left as it was."""


class MissingDependencyError(FlowError):
    """An optional dependency is missing; the message names the pip extra to install."""
