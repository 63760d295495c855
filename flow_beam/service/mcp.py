"""The MCP server (official ``mcp`` SDK, low-level ``Server``): the service's operations as tools.

``flow-beam mcp`` serves it over stdio (nothing but protocol on stdout: logs go to stderr); the service mounts
the same tools over streamable HTTP at ``/mcp``. Write tools (create, patch, run) are refused unless the server
was started with ``--allow-writes``.
"""
from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server

from flow_beam import __version__
from flow_beam.service.api import PATCH_SCHEMA
from flow_beam.service.core import PipelineService
from flow_beam.service.schema import ir_json_schema
from flow_beam.service.issues import ServiceError, issue, pointer

WRITE_TOOLS = {"create_pipeline", "patch_pipeline", "run_pipeline"}


def _ir_schema_parts() -> tuple[dict, dict]:
    """The IR schema split into a reference to ``#/$defs/Pipeline`` and the ``$defs`` a tool schema carries."""
    schema = ir_json_schema()
    defs = dict(schema.pop("$defs", {}))
    schema.pop("$schema", None)
    defs["Pipeline"] = schema
    return {"$ref": "#/$defs/Pipeline", "description": "a pipeline IR document (see the ir_schema tool)"}, defs


def tool_definitions(allow_writes: bool) -> list[types.Tool]:
    ir_ref, defs = _ir_schema_parts()
    pid = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]*$", "description": "the pipeline id (the IR's id)"}
    params = {"type": "object", "additionalProperties": {"type": ["string", "number", "integer", "boolean"]},
              "description": "values of the IR's declared params"}

    def obj(props: dict, required: list[str], with_defs: bool = False) -> dict:
        out = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
        if with_defs:
            out["$defs"] = defs
        return out

    refused = "" if allow_writes else " (refused: this server was started without --allow-writes)"
    ro = types.ToolAnnotations(read_only_hint=True)
    rw = types.ToolAnnotations(read_only_hint=False, destructive_hint=False)
    return [
        types.Tool(name="list_pipelines", description="List the stored pipelines with their latest version.",
                   input_schema=obj({}, []), annotations=ro),
        types.Tool(name="get_pipeline", description="Get a pipeline's IR: the latest version, or `version`.",
                   input_schema=obj({"id": pid, "version": {"type": "integer", "minimum": 1}}, ["id"]),
                   annotations=ro),
        types.Tool(name="create_pipeline", description="Store a new pipeline (version 1) after validating it with "
                   "every layer; its id is the IR's id." + refused,
                   input_schema=obj({"name": {"type": "string", "minLength": 1}, "ir": ir_ref,
                                     "message": {"type": "string"}}, ["name", "ir"], True), annotations=rw),
        types.Tool(name="patch_pipeline", description="Apply an RFC 6902 JSON Patch to the latest version. "
                   "`expectedVersion` must be the version the patch was written against; the patched document is "
                   "validated with every layer before it is stored as the next version; issues are JSON Pointers "
                   "into the patched document." + refused,
                   input_schema=obj({"id": pid, "patch": PATCH_SCHEMA,
                                     "expectedVersion": {"type": "integer", "minimum": 1},
                                     "message": {"type": "string"}}, ["id", "patch", "expectedVersion"]),
                   annotations=rw),
        types.Tool(name="validate_pipeline", description="Validate an IR document (models, graph, kind rules, "
                   "types, paths, secrets) without storing it; answers {valid, issues}.",
                   input_schema=obj({"ir": ir_ref, "params": params}, ["ir"], True), annotations=ro),
        types.Tool(name="plan_pipeline", description="The compiled plan of a stored pipeline: each node, its Beam "
                   "primitives and its propagated schema, plus a mermaid graph.",
                   input_schema=obj({"id": pid, "version": {"type": "integer", "minimum": 1}, "params": params},
                                    ["id"]), annotations=ro),
        types.Tool(name="run_pipeline", description="Run a stored pipeline on the direct runner and answer the run "
                   "result (per-node counts); wait=false answers {runId} at once (poll get_run)." + refused,
                   input_schema=obj({"id": pid, "params": params, "version": {"type": "integer", "minimum": 1},
                                     "wait": {"type": "boolean", "default": True}}, ["id"]),
                   annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True)),
        types.Tool(name="get_run", description="A run result by id (status queued/running while it runs).",
                   input_schema=obj({"runId": {"type": "string", "minLength": 1}}, ["runId"]), annotations=ro),
        types.Tool(name="ir_schema", description="The JSON Schema of the pipeline IR.", input_schema=obj({}, []),
                   annotations=ro),
    ]


# the documents inside the arguments are checked by the service itself, as over REST: the IR by every layer (issues
# point into it), a JSON Patch by apply_patch (layer "patch"); the schema only asks for their JSON type here
_DOCUMENT_ARGS = {"ir": {"create_pipeline": {"type": "object"}, "validate_pipeline": {}},
                  "patch": {"patch_pipeline": {"type": "array"}}}
_validators: dict[str, Any] = {}


def _argument_validator(name: str):
    if name not in _validators:
        from jsonschema import Draft202012Validator

        schemas = {t.name: t.input_schema for t in tool_definitions(True)}
        if name not in schemas:
            return None
        schema = json.loads(json.dumps(schemas[name]))
        schema.pop("$defs", None)
        for arg, per_tool in _DOCUMENT_ARGS.items():
            if arg in schema.get("properties", {}):
                schema["properties"][arg] = per_tool.get(name, {})
        _validators[name] = Draft202012Validator(schema)
    return _validators[name]


def check_arguments(name: str, args: Any) -> dict:
    """The arguments checked against the tool's inputSchema (types, minimum, minLength, required, no unknown
    argument): a violation is a 422 tool error naming each argument, never a silently reinterpreted value."""
    if not isinstance(args, dict):
        raise ServiceError(422, f"{name}: the arguments are a JSON object",
                           [issue("", "give the arguments as an object", "request")])
    validator = _argument_validator(name)
    if validator is None:
        return args
    issues = []
    for err in sorted(validator.iter_errors(args), key=lambda e: list(map(str, e.absolute_path))):
        loc = list(err.absolute_path)
        if err.validator == "additionalProperties":  # name the unknown arguments themselves
            allowed = set(err.schema.get("properties", {}))
            for extra in sorted(k for k in err.instance if k not in allowed):
                issues.append(issue(pointer(loc + [extra]), f"unknown argument '{extra}'; {name} takes "
                                    f"{', '.join(sorted(allowed)) or 'no arguments'}", "request"))
            continue
        where = "/".join(map(str, loc)) or "arguments"
        issues.append(issue(pointer(loc), f"{where}: {_short(err.message)}", "request"))
    if issues:
        raise ServiceError(422, f"invalid arguments for {name}: {issues[0]['message']}", issues)
    return {k: int(v) if k in ("version", "expectedVersion") and isinstance(v, float) else v
            for k, v in args.items()}  # 1.0 is the integer 1 (as REST reads it)


def _short(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _call(service: PipelineService, allow_writes: bool, name: str, args: dict[str, Any]) -> Any:
    if name in WRITE_TOOLS and not allow_writes:
        raise ServiceError(403, f"{name} changes state; this MCP server was started read-only (restart it with "
                                f"--allow-writes to allow create, patch and run)")
    args = check_arguments(name, args)

    def need(key: str, kind: type):
        value = args.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            raise ServiceError(422, f"argument '{key}' is required ({kind.__name__})",
                               [issue(f"/{key}", f"give '{key}'", "request")])
        return value

    version = args.get("version") if isinstance(args.get("version"), int) else None
    params = args.get("params") if isinstance(args.get("params"), dict) else None
    if name == "list_pipelines":
        return {"pipelines": service.list()}
    if name == "get_pipeline":
        v = service.get(need("id", str), version)
        return {"id": v.pipeline_id, "name": v.name, "version": v.version, "ir": v.ir}
    if name == "create_pipeline":
        v = service.create(need("name", str), args.get("ir"), args.get("message"), "mcp")
        return {"id": v.pipeline_id, "name": v.name, "version": v.version, "ir": v.ir}
    if name == "patch_pipeline":
        v = service.patch(need("id", str), args.get("patch"), need("expectedVersion", int), "mcp",
                          args.get("message"))
        return {"id": v.pipeline_id, "name": v.name, "version": v.version, "ir": v.ir}
    if name == "validate_pipeline":
        v = service.validate(args.get("ir"), params)
        return {"valid": v.valid, "issues": v.issues}
    if name == "plan_pipeline":
        return service.plan(need("id", str), version, params)
    if name == "run_pipeline":
        run_id, future = service.start_run(need("id", str), params, version)
        return future.result() if args.get("wait", True) is not False else {"runId": run_id}
    if name == "get_run":
        return service.get_run(need("runId", str))
    if name == "ir_schema":
        return ir_json_schema()
    raise ServiceError(404, f"unknown tool {name!r}")


def build_server(service: PipelineService, allow_writes: bool) -> Server:
    tools = tool_definitions(allow_writes)

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        args = params.arguments or {}
        try:
            data = await anyio.to_thread.run_sync(_call, service, allow_writes, params.name, args)
        except ServiceError as exc:
            body = {**exc.body(), "status": exc.status}
            return types.CallToolResult(content=[types.TextContent(text=json.dumps(body, default=str))],
                                        structured_content=body, is_error=True)
        text = json.dumps(data, default=str)
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=json.loads(text))

    return Server("flow-beam", version=__version__, instructions=(
        "flow-beam pipelines: typed JSON IR documents, versioned. Read with list_pipelines/get_pipeline, check with "
        "validate_pipeline/plan_pipeline, change with patch_pipeline (RFC 6902, expectedVersion), run with "
        "run_pipeline. The IR's JSON Schema: ir_schema."), on_list_tools=list_tools, on_call_tool=call_tool)


async def serve_stdio(service: PipelineService, allow_writes: bool) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(service, allow_writes)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
