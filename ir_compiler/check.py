"""Layered validation: models → graph → kind rules → types. Every issue carries a JSON path."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ir_compiler.errors import Issue, ValidationFailed
from ir_compiler.graph import NodeGraph, check_graph
from ir_compiler.loader import load_document
from ir_compiler.models import Pipeline
from ir_compiler.propagate import Propagation, SchemaContext, propagate_schemas
from ir_compiler.rules import check_rules


@dataclass
class CheckedPipeline:
    pipeline: Pipeline
    raw: dict
    graph: NodeGraph
    types: Propagation
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def notes(self) -> list[Issue]:
        return [i for i in self.issues if i.severity != "error"]


def check_document(source: str | Path | dict, params: dict[str, Any] | None = None,
                   ctx: SchemaContext | None = None, *, raise_on_error: bool = True,
                   root: str | None = None) -> CheckedPipeline:
    """Run every validation layer; raise ValidationFailed with all errors (or return them). ``root``: the
    confinement root every path of the document must stay inside (ir_compiler.confine)."""
    from ir_compiler.confine import confinement_issues

    pipeline, raw = load_document(source, params)  # raises ValidationFailed on model errors
    graph, issues = check_graph(pipeline)
    issues += check_rules(graph)
    escaping = confinement_issues(pipeline, root)
    issues += escaping
    if escaping:  # never sample files outside the root: no inference at all
        ctx = SchemaContext(overrides=ctx.overrides if ctx is not None else {})
    prop = Propagation()
    if not any(i.layer == "graph" for i in issues):
        prop = propagate_schemas(graph, ctx if ctx is not None else default_context())
        issues += prop.issues
    checked = CheckedPipeline(pipeline, raw, graph, prop, issues)
    if raise_on_error and checked.errors:
        raise ValidationFailed(issues)
    return checked


def default_context(warehouse=None) -> SchemaContext:
    """Schema inference from reachable data: sample files of file sources, read lookup files and tables."""
    from connectors.registry import infer_lookup_schema, infer_source_schema

    return SchemaContext(infer_source=lambda node: infer_source_schema(node, warehouse),
                         infer_lookup=lambda node, op: infer_lookup_schema(op, warehouse))
