"""Type layer: propagate a column schema from every source through every node and op.

A schema is ``None`` when it is unknown at validation time (no declared schema and the data is not reachable);
the checks that need it are reported as skipped (info issues) and run again at run time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ir_compiler.errors import ExpressionError, Issue
from ir_compiler.graph import MAIN, NodeGraph, Ref, output_ports
from ir_compiler.joins import JoinError, output_schema as join_schema
from ir_compiler.ops import OPS, OpTypeError
from ir_compiler.ops.lookup import lookup_schema
from ir_compiler.rowrules import parse_rule, type_problem
from ir_compiler.types import JSON, STRING, Field, Schema, parse_type

ERRORS_SCHEMA = Schema([Field("node_id", STRING, False), Field("error", STRING, False), Field("row", JSON)])
QUARANTINE_EXTRA = [Field("_rule_id", STRING), Field("_error", STRING)]


@dataclass
class SchemaContext:
    """What propagation may consult: a source-schema resolver (file sampling, warehouse) and test rows."""

    infer_source: Callable | None = None  # (node) -> Schema | None ; may raise ConnectorError
    infer_lookup: Callable | None = None  # (node, op) -> Schema | None
    overrides: dict[str, Schema] = field(default_factory=dict)  # node id -> schema (tests: inline inputs)


@dataclass
class Propagation:
    ports: dict[str, Schema | None] = field(default_factory=dict)  # "node" / "node.port" -> schema
    op_schemas: dict[str, list[Schema | None]] = field(default_factory=dict)  # transform id -> after each op
    issues: list[Issue] = field(default_factory=list)
    graph: object = None

    def of(self, ref: str) -> Schema | None:
        return self.ports.get(str(Ref.parse(ref)))


def declared_schema(node) -> Schema | None:
    if node.kind != "source" or not node.schema_:
        return None
    return Schema([Field(f.name, parse_type(f.type), f.nullable) for f in node.schema_])


def propagate_schemas(graph: NodeGraph, ctx: SchemaContext | None = None) -> Propagation:
    ctx = ctx or SchemaContext()
    prop = Propagation(graph=graph)
    for node_id in graph.order:
        node = graph.nodes[node_id]
        i = graph.pipeline.index_of(node_id)
        inputs = [prop.of(str(r)) for r in graph.inputs[node_id]]
        try:
            outs = _KINDS[node.kind](node, inputs, f"nodes[{i}]", prop, ctx)
        except _Problem as p:
            prop.issues.append(Issue(p.path, p.message, node_id, "types"))
            outs = {}
        for port in output_ports(node):
            key = node_id if port == MAIN else f"{node_id}.{port}"
            prop.ports[key] = ERRORS_SCHEMA if port == "errors" else outs.get(port)
    return prop


class _Problem(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path, self.message = path, message


def _unknown(prop, node, path, what):
    prop.issues.append(Issue(path, f"schema unknown at validation time: {what} checked at run time",
                             node.id, "types", "info"))


def _source(node, inputs, path, prop, ctx):
    if node.id in ctx.overrides:
        return {MAIN: ctx.overrides[node.id]}
    schema = declared_schema(node)
    if schema is None and ctx.infer_source is not None:
        try:
            schema = ctx.infer_source(node)
        except Exception as exc:  # noqa: BLE001 - data not reachable now: unknown, not an error
            prop.issues.append(Issue(f"{path}.config", f"could not sample the data ({exc})", node.id, "types",
                                     "info"))
    if schema is None:
        _unknown(prop, node, path, "types downstream of this source are")
    elif node.eventTime and node.eventTime.field not in schema:
        raise _Problem(f"{path}.eventTime.field", f"eventTime field '{node.eventTime.field}' is not a column; "
                                                  f"columns: {', '.join(schema.names)}")
    return {MAIN: schema}


def _transform(node, inputs, path, prop, ctx):
    schema = inputs[0]
    after = []
    for j, op in enumerate(node.ops):
        op_path = f"{path}.ops[{j}]"
        try:
            if op.op == "lookup_join":
                lk = ctx.infer_lookup(node, op) if ctx.infer_lookup else None
                schema = lookup_schema(op, schema, lk)
            elif op.op == "aggregate" and op.window is not None and op.window.type != "global":
                schema = _windowed_aggregate(op, schema, node, prop, op_path)
            else:
                schema = OPS[op.op].schema(op, schema)
        except OpTypeError as exc:
            raise _Problem(f"{op_path}.{exc.field}" if exc.field else op_path, str(exc)) from None
        after.append(schema)
    prop.op_schemas[node.id] = after
    return {MAIN: schema}


def _windowed_aggregate(op, schema, node, prop, op_path):
    from ir_compiler.types import TIMESTAMP
    from ir_compiler.windows import WINDOW_COLUMNS, event_time_of

    from ir_compiler.rules import is_unbounded

    out = OPS["aggregate"].schema(op, schema)
    columns = [Field(c, TIMESTAMP, False) for c in WINDOW_COLUMNS]
    if is_unbounded(prop.graph, node.id):  # streaming windows come from the runner
        return Schema(columns + list(out.fields)) if out is not None else None
    et = event_time_of(prop.graph, node.id)
    if et is None:
        raise _Problem(f"{op_path}.window", "a window needs event times: set eventTime {field, format} on the "
                                            "source")
    if schema is not None and et.field not in schema:
        raise _Problem(f"{op_path}.window", f"the event time column '{et.field}' (the source's eventTime) is no "
                                            f"longer a column here; keep it until the aggregation")
    if out is None:
        return None
    return Schema(columns + list(out.fields))


def _validate(node, inputs, path, prop, ctx):
    schema = inputs[0]
    for j, rule in enumerate(node.rowLevel):
        rpath = f"{path}.rowLevel[{j}]"
        try:
            spec = parse_rule(rule.rule)
        except ValueError:
            continue  # reported by the rules layer
        if schema is None:
            continue
        if spec.name == "expr":
            _check_expr(spec.args[0], schema, f"{rpath}.rule", boolean=True)
            continue
        if rule.field not in schema:
            raise _Problem(f"{rpath}.field", f"column '{rule.field}' does not exist; available: "
                                             f"{', '.join(schema.names)}")
        problem = type_problem(spec, schema[rule.field].type)
        if problem:
            raise _Problem(f"{rpath}.rule", problem)
    if schema is not None and node.datasetLevel is not None:
        _check_dataset(node.datasetLevel, schema, f"{path}.datasetLevel")
    quarantine = Schema([*schema.fields, *QUARANTINE_EXTRA]) if schema is not None else None
    return {MAIN: schema, "quarantine": quarantine}


def _check_dataset(dl, schema, path):
    checks = []
    if dl.unique:
        checks += [(f"unique.fields[{i}]", f) for i, f in enumerate(dl.unique.fields)]
    if dl.nullRatio:
        checks.append(("nullRatio.field", dl.nullRatio.field))
    if dl.freshness:
        checks.append(("freshness.field", dl.freshness.field))
        f = schema.get(dl.freshness.field)
        if f is not None and not f.type.is_temporal:
            raise _Problem(f"{path}.freshness.field", f"freshness needs a date or timestamp column; "
                                                      f"'{f.name}' is {f.type}; add a cast")
    for where, name in checks:
        if name not in schema:
            raise _Problem(f"{path}.{where}", f"column '{name}' does not exist; available: {', '.join(schema.names)}")


def _check_expr(text, schema, path, boolean=False):
    try:
        from ir_compiler.expressions import compile_expression

        return compile_expression(text, schema, boolean=boolean)
    except ExpressionError as exc:
        raise _Problem(path, exc.message) from None


def _branch(node, inputs, path, prop, ctx):
    schema = inputs[0]
    if schema is not None:
        for j, r in enumerate(node.routes):
            _check_expr(r.condition, schema, f"{path}.routes[{j}].condition", boolean=True)
    outs = {r.name: schema for r in node.routes}
    if node.otherwise:
        outs[node.otherwise] = schema
    return outs


def _join(node, inputs, path, prop, ctx):
    if any(s is None for s in inputs):
        _unknown(prop, node, path, "join keys and columns are")
        return {MAIN: None}
    try:
        return {MAIN: join_schema(node, inputs)}
    except JoinError as exc:
        raise _Problem(f"{path}.{exc.field}", str(exc)) from None


def _enrich(node, inputs, path, prop, ctx):
    from connectors.enrich.providers import template_fields

    schema = inputs[0]
    if schema is None:
        return {MAIN: None}
    provider = node.provider.model_dump()
    refs = template_fields(provider) if provider["kind"] != "lookup" else set()
    if provider["kind"] == "lookup":
        on = provider.get("on")
        refs = set(on) if isinstance(on, dict) else {on} if isinstance(on, str) else set(on or [])
    for name in sorted(refs):
        if name not in schema:
            raise _Problem(f"{path}.provider", f"the provider uses column '{name}', which does not exist; "
                                               f"available: {', '.join(schema.names)}")
    outs = [node.output] if isinstance(node.output, str) else list(node.output)
    for name in outs:
        if name in schema:
            raise _Problem(f"{path}.output", f"output column '{name}' already exists in the input; name a new "
                                             f"column (or drop or rename '{name}' upstream)")
        schema = schema.with_field(Field(name, STRING))
    return {MAIN: schema}


def _target(node, inputs, path, prop, ctx):
    schema = inputs[0]
    if schema is None or node.loadMode == "cdc_mirror":  # mirror columns come from the events' row images
        return {}
    if node.connector is None:
        _table_columns(schema, path)
    for k in node.upsert_keys:
        if k not in schema:
            raise _Problem(f"{path}.upsertKey", f"upsert key '{k}' is not a column; columns: {', '.join(schema.names)}")
    if node.upsert_keys and node.loadMode == "upsert" and set(node.upsert_keys) >= set(schema.names):
        raise _Problem(f"{path}.upsertKey", "every column is a key: upsert would never update; use append")
    if node.watermarkColumn and node.watermarkColumn not in schema:
        raise _Problem(f"{path}.watermarkColumn", f"'{node.watermarkColumn}' is not a column; columns: "
                                                  f"{', '.join(schema.names)}")
    return {}


def _table_columns(schema, path):
    """A table needs a column, and names that differ only in case are one column in DuckDB (its identifiers are
    case-insensitive even when quoted) and in every unquoted SQL query: refused before anything runs."""
    if not len(schema):
        raise _Problem(path, "no column reaches this table (every column was dropped upstream); keep at least one")
    seen = {}
    for name in schema.names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise _Problem(path, f"columns '{other}' and '{name}' differ only in case: a table cannot hold both "
                                 f"(DuckDB names are case-insensitive); rename or drop one upstream")


def _archive(node, inputs, path, prop, ctx):
    return {}


_KINDS = {"source": _source, "transform": _transform, "validate": _validate, "branch": _branch, "join": _join,
          "enrich": _enrich, "target": _target, "archive": _archive}
