"""The compiled plan as text, mermaid or dot: each node, the Beam primitives it becomes, its schema."""
from __future__ import annotations

from ir_compiler.check import CheckedPipeline
from ir_compiler.graph import MAIN, output_ports
from ir_compiler.ops import OPS
from ir_compiler.rules import is_unbounded


_WINDOW_FNS = {"fixed": "FixedWindows", "sliding": "IntervalWindows([start, start+size))",
               "session": "Sessions", "global": "GlobalWindows"}


def _streaming_set_op(op) -> str:
    w = op.window
    trig = w.trigger.type if w.trigger else "after_watermark (+1 pane per late row), accumulating"
    per_row = w.type == "session" or (w.trigger and w.trigger.type in ("after_count", "repeatedly_after_count"))
    head = "ParDo(rows keyed by group key, stamped at event time)" if per_row else \
        f"ParDo(split batch by window, stamp at window start) → ParDo(pre-{op.op} batch)"
    return (f"{head} → WindowInto({_WINDOW_FNS[w.type]}, trigger {trig}"
            f"{', allowedLateness ' + w.allowedLateness if w.allowedLateness else ''}) → GroupByKey(window pane) → "
            f"ParDo(finish pane{' + window_start/window_end' if op.op == 'aggregate' else ''})")


def _segments(ops, unbounded=False):
    out, run = [], []
    for op in ops:
        if OPS[op.op].kind in ("row", "lookup"):
            run.append(op.op)
            continue
        if run:
            out.append(f"ParDo(fused Arrow ops: {' → '.join(run)})")
            run = []
        if unbounded and op.op in ("aggregate", "deduplicate") and op.window is not None:
            out.append(_streaming_set_op(op))
            continue
        if op.op == "aggregate" and op.window is not None and op.window.type != "global":
            out.append(f"ParDo(assign {op.window.type} event-time windows)")
        if op.op == "aggregate":
            out.append("ParDo(pre-aggregate batch) → GroupByKey(key bucket) → ParDo(final aggregate)"
                       if op.groupBy else "CombineGlobally(aggregate)")
        elif op.op == "deduplicate":
            out.append("ParDo(dedupe batch) → GroupByKey(key bucket) → ParDo(final dedupe)")
        elif op.op == "summarize":
            out.append("CombineGlobally(summarize)")
        else:
            out.append(f"{op.op} (model op)")
    if run:
        out.append(f"ParDo(fused Arrow ops: {' → '.join(run)})")
    return out


def primitives(node, unbounded: bool = False) -> list[str]:
    """The Beam primitives a node is lowered to (mirrors ir_compiler.lower); ``unbounded``: as it runs streaming
    (a drained or direct run lowers it like a bounded input)."""
    k = node.kind
    if k == "source":
        from connectors.registry import get_source
        return get_source(node.connector).describe(node, unbounded)
    if k == "transform":
        return _segments(node.ops, unbounded)
    if k == "validate":
        out = ["ParDo(row rules; tagged outputs main/quarantine)"]
        if node.datasetLevel:
            out.append("CombineGlobally(dataset checks) → side input gating downstream loads")
        return out
    if k == "branch":
        return [f"ParDo(tagged outputs: {', '.join(r.name for r in node.routes)}"
                f"{', ' + node.otherwise if node.otherwise else ''})"]
    if k == "join":
        if node.strategy == "broadcast":
            return ["ParDo(Arrow join per batch; other inputs as AsList side inputs)"]
        return ["ParDo(hash-bucket each input)", "Flatten", "GroupByKey(bucket)", "ParDo(Arrow join per bucket)"]
    if k == "enrich":
        return ["batched ParDo(provider calls: bounded concurrency, retry, cache; failures tagged)"]
    if k == "target" and unbounded:
        write = (f"ParDo(write each pane/batch to {node.connector})" if node.connector else
                 "ParDo(one transaction per pane with its commit key in _flow_commits)")
        return [write, "WindowInto(GlobalWindows)", "stateful ParDo(event-time timer → _flow_frontier)"]
    if k == "target":
        return ["ParDo(stage Arrow files)", "ToList", "ParDo(one commit transaction; gate as side input)"]
    return ["file moves after the target's commit"]


def plan_rows(checked: CheckedPipeline) -> list[dict]:
    rows = []
    for node_id in checked.graph.order:
        node = checked.graph.nodes[node_id]
        schema = checked.types.of(node_id)
        if schema is None and node.kind == "branch":  # a branch has route ports only, each with its input's schema
            schema = checked.types.of(f"{node_id}.{node.routes[0].name}")
        rows.append({"id": node_id, "kind": node.kind, "inputs": [str(r) for r in checked.graph.inputs[node_id]],
                     "primitives": primitives(node, is_unbounded(checked.graph, node_id)),
                     "schema": schema.to_json() if schema is not None else None,
                     "ports": [p for p in output_ports(node) if p != MAIN]})
    return rows


def render_text(checked: CheckedPipeline) -> str:
    lines = [f"pipeline {checked.pipeline.id}"]
    for row in plan_rows(checked):
        src = f" ← {', '.join(row['inputs'])}" if row["inputs"] else ""
        lines.append(f"\n[{row['kind']}] {row['id']}{src}")
        for prim in row["primitives"]:
            lines.append(f"    beam: {prim}")
        if row["schema"] is None:
            lines.append("    schema: (unknown until run time)" if row["kind"] not in ("target", "archive") else "")
        else:
            cols = ", ".join(f"{c['name']} {c['type']}" for c in row["schema"])
            lines.append(f"    schema: {cols}")
    return "\n".join(line for line in lines if line != "")


def render_mermaid(checked: CheckedPipeline) -> str:
    """Mermaid ids are ``n0``, ``n1``… in graph order (ids like ``a-b`` and ``a_b`` stay two nodes, and ``end`` —
    a Mermaid keyword — is only a label); each label is the real id, quoted."""
    rows = plan_rows(checked)
    mid = {row["id"]: f"n{i}" for i, row in enumerate(rows)}
    lines = ["flowchart LR"]
    for row in rows:
        lines.append(f'    {mid[row["id"]]}["{row["id"]} ({row["kind"]})"]')
        for ref in row["inputs"]:
            node, _, port = ref.partition(".")
            label = f"|{port}|" if port else ""
            lines.append(f"    {mid[node]} -->{label} {mid[row['id']]}")
    return "\n".join(lines)


def render_dot(checked: CheckedPipeline) -> str:
    lines = ["digraph pipeline {", "  rankdir=LR;"]
    for row in plan_rows(checked):
        lines.append(f'  "{row["id"]}" [label="{row["id"]}\\n({row["kind"]})"];')
        for ref in row["inputs"]:
            node, _, port = ref.partition(".")
            attr = f' [label="{port}"]' if port else ""
            lines.append(f'  "{node}" -> "{row["id"]}"{attr};')
    lines.append("}")
    return "\n".join(lines)
