"""The compiled plan as text, mermaid or dot: each node, the Beam primitives it becomes, its schema."""
from __future__ import annotations

from ir_compiler.check import CheckedPipeline
from ir_compiler.graph import MAIN, output_ports
from ir_compiler.ops import OPS


def _segments(ops):
    out, run = [], []
    for op in ops:
        if OPS[op.op].kind in ("row", "lookup"):
            run.append(op.op)
            continue
        if run:
            out.append(f"ParDo(fused Arrow ops: {' → '.join(run)})")
            run = []
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


def primitives(node) -> list[str]:
    """The Beam primitives a node is lowered to (mirrors ir_compiler.lower)."""
    k = node.kind
    if k == "source":
        if node.connector == "local_fs":
            return ["Create(staged file list)", "Reshuffle", "ParDo(read file → Arrow tables; errors tagged)"]
        if node.connector == "table":
            return ["Create", "ParDo(read warehouse table → Arrow tables)"]
        return [f"{node.connector} reader (not available in this build)"]
    if k == "transform":
        return _segments(node.ops)
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
        return ["batched ParDo (not available in this build)"]
    if k == "target":
        return ["ParDo(stage Arrow files)", "ToList", "ParDo(one commit transaction; gate as side input)"]
    return ["file moves after the target's commit"]


def plan_rows(checked: CheckedPipeline) -> list[dict]:
    rows = []
    for node_id in checked.graph.order:
        node = checked.graph.nodes[node_id]
        schema = checked.types.of(node_id)
        rows.append({"id": node_id, "kind": node.kind, "inputs": [str(r) for r in checked.graph.inputs[node_id]],
                     "primitives": primitives(node),
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


def _mid(node_id: str) -> str:
    return node_id.replace("-", "_")


def render_mermaid(checked: CheckedPipeline) -> str:
    lines = ["flowchart LR"]
    for row in plan_rows(checked):
        lines.append(f'    {_mid(row["id"])}["{row["id"]} ({row["kind"]})"]')
        for ref in row["inputs"]:
            node, _, port = ref.partition(".")
            label = f"|{port}|" if port else ""
            lines.append(f"    {_mid(node)} -->{label} {_mid(row['id'])}")
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
