"""Layered validation: models → graph → kind rules → types. Every issue carries a JSON path."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ir_compiler.errors import Issue, ValidationFailed
from ir_compiler.graph import NodeGraph, check_graph, check_refs
from ir_compiler.loader import load_partial
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
    confinement root every path of the document must stay inside (ir_compiler.confine).

    The layers check what they can even when another part is broken: a node whose model is invalid is left out
    (with its model issues) and the graph, rules, confinement and types of the other nodes are still checked;
    nodes reading a broken or unknown node get an unknown schema (no follow-on errors). A document with model
    errors always raises, whatever ``raise_on_error`` says (there is no pipeline to return).
    """
    from ir_compiler.confine import confinement_issues

    loaded = load_partial(source, params)  # raises only when nothing can be checked (unreadable, limits)
    issues = list(loaded.issues)
    if loaded.pipeline is None:
        raise ValidationFailed(issues)
    graph, found = check_graph(loaded.pipeline, invalid=loaded.invalid)
    found += check_rules(graph)
    escaping = confinement_issues(loaded.pipeline, root)
    found += escaping
    if escaping:  # never sample files outside the root: no inference at all
        ctx = SchemaContext(overrides=ctx.overrides if ctx is not None else {})
    prop = propagate_schemas(graph, ctx if ctx is not None else default_context())
    found += prop.issues
    issues += loaded.in_document(found)  # paths of the checked part → paths in the document
    for i, twin in loaded.duplicates:  # a node whose id is taken: its own references, at its own path
        issues += check_refs(graph, twin, f"nodes[{i}].", loaded.invalid)
    checked = CheckedPipeline(loaded.full or loaded.pipeline, loaded.raw, graph, prop, issues)
    if loaded.errors or (raise_on_error and checked.errors):
        raise ValidationFailed(issues)
    return checked


def default_context(warehouse=None) -> SchemaContext:
    """Schema inference from reachable data: sample files of file sources, read lookup files and tables."""
    from connectors.lookups import infer_lookup_schema
    from connectors.registry import infer_source_schema

    return SchemaContext(infer_source=lambda node: infer_source_schema(node, warehouse),
                         infer_lookup=lambda node, op: infer_lookup_schema(op, warehouse))
