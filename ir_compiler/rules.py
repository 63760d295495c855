"""Kind rules: the per-kind requirements that need the whole graph (load modes, windows, rule syntax)."""
from __future__ import annotations

import re

from ir_compiler.errors import Issue
from ir_compiler.graph import NodeGraph
from ir_compiler.rowrules import parse_rule

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def is_unbounded(graph: NodeGraph, node_id: str) -> bool:
    """True when a stream source feeds this node (it then runs in streaming mode)."""
    from connectors.registry import get_source
    ids = graph.upstream(node_id) | {node_id}
    return any(graph.nodes[n].kind == "source" and not get_source(graph.nodes[n].connector).capabilities.bounded
               for n in ids)


def check_rules(graph: NodeGraph) -> list[Issue]:
    issues: list[Issue] = []
    for i, node in enumerate(graph.pipeline.nodes):
        check = _CHECKS.get(node.kind)
        if check:
            issues += [Issue(f"nodes[{i}].{where}" if where else f"nodes[{i}]", msg.removeprefix("note: "), node.id,
                             "rules", "info" if msg.startswith("note: ") else "error")
                       for where, msg in check(node, graph)]
    eh = graph.pipeline.errorHandling
    if eh and eh.dlq and eh.dlq.table and not TABLE_NAME.match(eh.dlq.table):
        issues.append(Issue("errorHandling.dlq.table", f"'{eh.dlq.table}' is not a valid table name (schema.table)",
                            None, "rules"))
    return issues


def _discarding_windows(node, graph) -> list[str]:
    """The upstream nodes whose windowed aggregate or join fires discarding panes (deltas) into ``node``."""
    out = []
    for up in sorted(graph.upstream(node.id)):
        n = graph.nodes[up]
        windows = [getattr(op, "window", None) for op in n.ops] if n.kind == "transform" else [
            getattr(n, "window", None)] if n.kind == "join" else []
        if any(w is not None and w.trigger is not None and w.trigger.accumulation == "discarding" for w in windows):
            out.append(up)
    return out


def _target(node, graph):
    if node.loadMode == "upsert" and (deltas := _discarding_windows(node, graph)):
        yield "loadMode", (f"node '{deltas[0]}' fires discarding panes (each pane holds only the rows since the "
                           f"previous one): an upsert by window would keep just the last pane's rows. Use the "
                           f"trigger's accumulation 'accumulating' (the default: every pane the whole window so "
                           f"far) or loadMode 'append' (one row per pane)")
    if (node.schema_ is None) == (node.connector is None):
        yield "", "a target needs exactly one of 'schema' (a warehouse table) or 'connector' + 'config' (a sink)"
        return
    if node.schema_ is not None and not TABLE_NAME.match(node.schema_):
        yield "schema", f"'{node.schema_}' is not a table name; use \"schema.table\" (letters, digits, _)"
    if node.connector is not None:
        if node.config is None:
            yield "config", f"connector '{node.connector}' needs a 'config'"
        if node.loadMode != "append":
            yield "loadMode", f"sink connectors only append; loadMode '{node.loadMode}' needs a warehouse table"
    if node.loadMode == "upsert" and not node.upsert_keys:
        yield "upsertKey", "loadMode 'upsert' requires 'upsertKey' (a column or a list of columns)"
    if node.loadMode == "incremental_watermark" and not node.watermarkColumn:
        yield "watermarkColumn", "loadMode 'incremental_watermark' requires 'watermarkColumn'"
    if node.loadMode == "cdc_mirror":
        if not node.cdcSource:
            yield "cdcSource", "loadMode 'cdc_mirror' requires 'cdcSource' (the node carrying change events)"
        elif node.cdcSource not in graph.nodes:
            yield "cdcSource", f"cdcSource '{node.cdcSource}' does not name a node"
        elif node.cdcSource.split(".")[0] not in graph.upstream(node.id):
            yield "cdcSource", (f"cdcSource '{node.cdcSource}' is not what this target reads: the change events are "
                                f"the target's input, so cdcSource names its input '{node.input}' or a node "
                                f"upstream of it")
        if not node.upsert_keys:
            yield "upsertKey", "loadMode 'cdc_mirror' requires 'upsertKey' (the mirrored table's primary key)"
    for hook_name in ("preHook", "postHook"):
        hook = getattr(node, hook_name)
        if hook is not None and hook.type == "sql":
            from ir_compiler.hooks import sql_hook_problem
            problem = sql_hook_problem(hook.statement)
            if problem:
                yield f"{hook_name}.statement", problem
    if is_unbounded(graph, node.id) and node.loadMode in ("truncate", "blue_green", "incremental_watermark"):
        yield "loadMode", f"loadMode '{node.loadMode}' is batch-only; streaming targets use append, upsert or " \
                          f"cdc_mirror"


def _transform(node, graph):
    unbounded = is_unbounded(graph, node.id)
    for j, op in enumerate(node.ops):
        if getattr(op, "window", None) is not None and not unbounded and op.op != "aggregate":
            yield f"ops[{j}].window", "note: windows apply to streaming runs; on a bounded input this " \
                                      f"{op.op} covers the whole input"
        if op.op in ("aggregate", "deduplicate") and unbounded and op.window is None:
            yield f"ops[{j}].window", f"{op.op} on an unbounded (streaming) input needs a 'window' " \
                                      f"(fixed, sliding, session or global with a trigger)"
        if unbounded and getattr(op, "window", None) is not None and op.window.type == "global" \
                and op.window.trigger is None:
            yield f"ops[{j}].window.trigger", "a global window on an unbounded input never closes: add a trigger " \
                                              "(after_count, after_processing_time or after_watermark)"
        if op.op == "summarize" and unbounded:
            yield f"ops[{j}]", "summarize needs a bounded input"
        if op.op == "lookup_join" and op.lookup is not None:
            problem = _table_problem(getattr(op.lookup, "table", None))
            if problem:
                yield f"ops[{j}].lookup.table", problem


def _table_problem(name):
    from ir_compiler.hooks import table_name_problem
    return table_name_problem(name)


def _join(node, graph):
    if is_unbounded(graph, node.id) and node.window is None:
        yield "window", "a join on an unbounded (streaming) input needs a 'window'"
    shared = all(isinstance(k, str) for k in node.on)
    if not shared and not all(isinstance(k, dict) for k in node.on):
        yield "on", 'use either ["key", ...] or [{"<input>": "col", ...}, ...], not both'


def _validate(node, graph):
    if node.datasetLevel is not None and is_unbounded(graph, node.id):
        yield "datasetLevel", "dataset-level checks need a bounded input (a stream never ends); use rowLevel " \
                              "rules on streams"
    for j, rule in enumerate(node.rowLevel):
        try:
            spec = parse_rule(rule.rule)
        except ValueError as exc:
            yield f"rowLevel[{j}].rule", str(exc)
            continue
        if spec.name != "expr" and not rule.field:
            yield f"rowLevel[{j}].field", f"rule '{spec.name}' needs 'field' (the column it checks)"
    ids = [r.id for r in node.rowLevel if r.id]
    for dup in {x for x in ids if ids.count(x) > 1}:
        yield "rowLevel", f"rule id '{dup}' is used twice"
    if node.quarantine and node.quarantine.table and not TABLE_NAME.match(node.quarantine.table):
        yield "quarantine.table", f"'{node.quarantine.table}' is not a valid table name (schema.table)"
    rc = node.datasetLevel.rowCount if node.datasetLevel else None
    if rc and rc.min is not None and rc.max is not None and rc.min > rc.max:
        yield "datasetLevel.rowCount", "min is greater than max"


def _branch(node, graph):
    names = [r.name for r in node.routes] + ([node.otherwise] if node.otherwise else [])
    for dup in {n for n in names if names.count(n) > 1}:
        yield "routes", f"route name '{dup}' is used twice"
    if "errors" in names:
        yield "routes", "'errors' is reserved for the error port; rename the route"


def _source(node, graph):
    if node.connector == "table":
        problem = _table_problem(getattr(node.config, "table", None))
        if problem:
            yield "config.table", problem
    query = getattr(node.config, "query", None)
    if node.connector == "table" and isinstance(query, str):
        from ir_compiler.hooks import query_problem
        problem = query_problem(query)
        if problem:
            yield "config.query", problem


def _enrich(node, graph):
    from connectors.enrich.providers import provider_problems
    for problem in provider_problems(node.provider.model_dump()):
        yield "provider", problem
    if node.provider.kind == "lookup" and (problem := _table_problem(node.provider.model_dump().get("table"))):
        yield "provider.table", problem
    if node.provider.kind == "lookup" and isinstance(node.output, str) and not node.provider.model_dump().get("field"):
        yield "provider", "a lookup provider with a single output column needs 'field' (the lookup column to copy)"


def _archive(node, graph):
    if node.action in ("move", "copy") and not node.destination:
        yield "destination", (f"action '{node.action}' needs a 'destination' (a folder, relative to the source "
                              f"folder or absolute, date tokens allowed: \".archive/{{YYYY-MM-DD}}/\"); or use "
                              f"action 'delete'")
    elif node.action == "delete" and (node.destination or node.compress):
        yield "destination" if node.destination else "compress", \
            "action 'delete' removes the files: it takes no 'destination' or 'compress'"


_CHECKS = {"archive": _archive, "enrich": _enrich, "target": _target, "transform": _transform, "join": _join, "validate": _validate, "branch": _branch,
           "source": _source}
