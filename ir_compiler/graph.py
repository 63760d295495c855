"""The node graph: ``node.port`` references, output ports, topological order, cycles."""
from __future__ import annotations

import graphlib
from dataclasses import dataclass

from ir_compiler.errors import Issue
from ir_compiler.models import Pipeline

MAIN = "main"


def output_ports(node) -> list[str]:
    """The ports a node offers; ``main`` is the bare id."""
    if node.kind == "validate":
        return [MAIN, "quarantine", "errors"]
    if node.kind == "branch":
        return [r.name for r in node.routes] + ([node.otherwise] if node.otherwise else []) + ["errors"]
    if node.kind == "archive":
        return []
    return [MAIN, "errors"]


@dataclass(frozen=True)
class Ref:
    node: str
    port: str = MAIN

    @classmethod
    def parse(cls, text: str) -> "Ref":
        node, _, port = text.partition(".")
        return cls(node, port or MAIN)

    def __str__(self) -> str:
        return self.node if self.port == MAIN else f"{self.node}.{self.port}"


class NodeGraph:
    """Resolved wiring of a pipeline: who reads which port, in topological order."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.nodes = {n.id: n for n in pipeline.nodes}
        self.inputs: dict[str, list[Ref]] = {n.id: [Ref.parse(r) for r in n.upstream_refs()] for n in pipeline.nodes}
        self.order: list[str] = []

    def readers(self, node_id: str, port: str | None = None) -> list[str]:
        return [n for n, refs in self.inputs.items()
                if any(r.node == node_id and (port is None or r.port == port) for r in refs)]

    def consumed_ports(self, node_id: str) -> set[str]:
        return {r.port for refs in self.inputs.values() for r in refs if r.node == node_id}

    def upstream(self, node_id: str) -> set[str]:
        """Every node this one (transitively) reads from."""
        seen, stack = set(), [r.node for r in self.inputs.get(node_id, [])]
        while stack:
            n = stack.pop()
            if n not in seen and n in self.nodes:
                seen.add(n)
                stack += [r.node for r in self.inputs[n]]
        return seen

    def downstream(self, node_id: str) -> set[str]:
        return {n for n in self.nodes if node_id in self.upstream(n)}

    def sources(self) -> list[str]:
        return [n for n in self.order if self.nodes[n].kind == "source"]


def _path(pipeline: Pipeline, node_id: str, field: str) -> str:
    return f"nodes[{pipeline.index_of(node_id)}].{field}"


def check_graph(pipeline: Pipeline, invalid: set[str] | frozenset = frozenset()) -> tuple[NodeGraph, list[Issue]]:
    """Duplicate ids, dangling refs, unknown ports, wiring rules per kind and cycles. ``invalid``: ids of nodes
    the model layer left out (a reference to one is not reported; the reader's schema is unknown)."""
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for i, n in enumerate(pipeline.nodes):
        if n.id in seen:
            issues.append(Issue(f"nodes[{i}].id", f"duplicate node id '{n.id}' (first used at nodes[{seen[n.id]}])",
                                n.id, "graph"))
        seen.setdefault(n.id, i)
    graph = NodeGraph(pipeline)
    for node in pipeline.nodes:
        issues += check_refs(graph, node, _path(pipeline, node.id, ""), invalid)
    sorter = graphlib.TopologicalSorter({n: {r.node for r in refs if r.node in graph.nodes}
                                         for n, refs in graph.inputs.items()})
    try:
        graph.order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = " → ".join(exc.args[1])
        issues.append(Issue("nodes", f"the graph has a cycle: {cycle}; remove one of these references",
                            exc.args[1][0], "graph"))
        graph.order = [n.id for n in pipeline.nodes]
    return graph, issues


def check_refs(graph: NodeGraph, node, prefix: str, invalid: set[str] | frozenset = frozenset()) -> list[Issue]:
    """The problems of the references one node reads (``prefix``: its path, ``nodes[i].``)."""
    issues: list[Issue] = []
    field = "inputs" if node.kind == "join" else "input"
    for k, text in enumerate(node.upstream_refs()):
        ref = Ref.parse(text)
        if ref.node in invalid and ref.node not in graph.nodes:
            continue
        issues += _check_ref(graph, node, ref, f"{prefix}{field}[{k}]" if node.kind == "join" else prefix + field)
    if node.kind == "join" and len(set(node.inputs)) != len(node.inputs):
        issues.append(Issue(prefix + "inputs", "a join input is listed twice", node.id, "graph"))
    return issues


def _check_ref(graph: NodeGraph, node, ref: Ref, where: str) -> list[Issue]:
    if ref.node not in graph.nodes:
        known = ", ".join(sorted(graph.nodes))
        return [Issue(where, f"'{ref}' does not name a node; known nodes: {known}", node.id, "graph")]
    if ref.node == node.id:
        return [Issue(where, "a node cannot read its own output", node.id, "graph")]
    up = graph.nodes[ref.node]
    ports = output_ports(up)
    if ref.port not in ports:
        hint = f"ports of '{up.id}': {', '.join(p if p == MAIN else up.id + '.' + p for p in ports) or 'none'}"
        return [Issue(where, f"'{ref}' is not an output port; {hint}", node.id, "graph")]
    if node.kind == "archive" and (up.kind != "target" or ref.port != MAIN):
        return [Issue(where, "an archive node reads a target node (it archives the files that fed it)",
                      node.id, "graph")]
    if up.kind == "target" and ref.port == MAIN and node.kind != "archive":
        return [Issue(where, f"'{ref}' is a target; only an archive node can follow a target", node.id, "graph")]
    return []
