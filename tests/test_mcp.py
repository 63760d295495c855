"""The MCP server through the official SDK client: over stdio (`flow-beam mcp`) and over streamable HTTP (`/mcp` of
`flow-beam serve`). List tools, create, patch, validate with errors, plan, run; write tools refused read-only."""
import json
import subprocess
import sys

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.service_util import REPO, child_env, orders_doc, running_service, write_orders

TOOLS = {"list_pipelines", "get_pipeline", "create_pipeline", "patch_pipeline", "validate_pipeline", "plan_pipeline",
         "run_pipeline", "get_run", "ir_schema"}


def stdio_params(root, warehouse, *extra):
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "flow_beam", "mcp", "--root", str(root), "--warehouse", warehouse, *extra],
                                 env={"PYTHONPATH": child_env()["PYTHONPATH"]}, cwd=REPO)


async def exercise(client, root):
    """The same conversation over either transport."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    ir_schema = tools["create_pipeline"].input_schema
    assert ir_schema["properties"]["ir"]["$ref"] == "#/$defs/Pipeline"
    assert "SourceNode" in ir_schema["$defs"] and ir_schema["$defs"]["Pipeline"]["properties"]["nodes"]
    assert tools["patch_pipeline"].input_schema["required"] == ["id", "patch", "expectedVersion"]

    created = await client.call_tool("create_pipeline", {"name": "MCP orders", "ir": orders_doc("mcp-orders")})
    assert not created.is_error, created.content
    assert created.structured_content["version"] == 1

    listed = await client.call_tool("list_pipelines", {})
    assert [p["id"] for p in listed.structured_content["pipelines"]] == ["mcp-orders"]

    stale = await client.call_tool("patch_pipeline", {"id": "mcp-orders", "expectedVersion": 5, "patch": []})
    assert stale.is_error and stale.structured_content["status"] == 409
    bad = await client.call_tool("patch_pipeline", {"id": "mcp-orders", "expectedVersion": 1, "patch": [
        {"op": "replace", "path": "/nodes/2/input", "value": "ghost"}]})
    assert bad.is_error and bad.structured_content["status"] == 422
    assert {i["path"] for i in bad.structured_content["issues"]} >= {"/nodes/2/input"}
    patched = await client.call_tool("patch_pipeline", {"id": "mcp-orders", "expectedVersion": 1, "patch": [
        {"op": "replace", "path": "/nodes/1/rowLevel/0/rule", "value": "gt:8"}], "message": "stricter"})
    assert not patched.is_error, patched.content
    assert patched.structured_content["version"] == 2
    got = await client.call_tool("get_pipeline", {"id": "mcp-orders", "version": 1})
    assert got.structured_content["ir"]["nodes"][1]["rowLevel"][0]["rule"] == "gt:0"

    doc = orders_doc("mcp-bad")
    doc["nodes"][0]["schema"][1]["type"] = "string"
    doc["nodes"][0]["config"]["path"] = "/etc"
    checked = await client.call_tool("validate_pipeline", {"ir": doc})
    assert not checked.is_error and checked.structured_content["valid"] is False
    paths = {i["path"]: i for i in checked.structured_content["issues"]}
    assert "confinement root" in paths["/nodes/0/config/path"]["message"]
    assert paths["/nodes/1/rowLevel/0/rule"]["layer"] == "types"
    ok = await client.call_tool("validate_pipeline", {"ir": orders_doc("mcp-ok")})
    assert ok.structured_content == {"valid": True, "issues": []}

    plan = await client.call_tool("plan_pipeline", {"id": "mcp-orders"})
    assert [n["id"] for n in plan.structured_content["nodes"]] == ["src", "v", "tgt"]

    write_orders(root / "in")
    ran = await client.call_tool("run_pipeline", {"id": "mcp-orders"})
    assert not ran.is_error, ran.content
    result = ran.structured_content
    assert result["nodes"]["src"]["rowsIn"] == 3
    assert result["nodes"]["v"]["rowsOut"] == 1 and result["nodes"]["tgt"]["rowsLoaded"] == 1  # gt:8 keeps 10.5
    again = await client.call_tool("get_run", {"runId": result["runId"]})
    assert again.structured_content["nodes"]["tgt"]["rowsLoaded"] == 1
    schema = await client.call_tool("ir_schema", {})
    assert schema.structured_content["title"] == "flow-beam pipeline IR 1.0"
    missing = await client.call_tool("get_pipeline", {"id": "nope"})
    assert missing.is_error and missing.structured_content["status"] == 404


def test_mcp_over_stdio(tmp_path):
    root = tmp_path / "root"
    root.mkdir()

    async def main():
        async with Client(stdio_params(root, f"duckdb://{tmp_path}/wh.duckdb", "--allow-writes")) as client:
            await exercise(client, root)

    anyio.run(main)


@pytest.mark.parametrize("allow", [True, False], ids=["allow-writes", "read-only"])
def test_mcp_over_http(tmp_path, allow):
    root = tmp_path / "root"
    root.mkdir()
    extra = ["--allow-writes"] if allow else []
    with running_service(root, f"duckdb://{tmp_path}/wh.duckdb", *extra) as base:
        async def main():
            async with Client(f"{base}/mcp") as client:
                if allow:
                    await exercise(client, root)
                    return
                refused = await client.call_tool("create_pipeline", {"name": "x", "ir": orders_doc("ro")})
                assert refused.is_error and "--allow-writes" in refused.structured_content["error"]
                assert (await client.call_tool("run_pipeline", {"id": "ro"})).is_error
                listed = await client.call_tool("list_pipelines", {})
                assert listed.structured_content == {"pipelines": []}
                checked = await client.call_tool("validate_pipeline", {"ir": orders_doc("ro")})
                assert checked.structured_content["valid"] is True

        anyio.run(main)
        if allow:  # the MCP tools and the REST API share one store
            assert httpx.get(f"{base}/api/v1/pipelines/mcp-orders").json()["version"] == 2


def test_mcp_stdio_stdout_is_protocol_only(tmp_path):
    """A raw session (initialize, a run that starts Beam, a refused write): every stdout line is JSON-RPC."""
    root = tmp_path / "root"
    root.mkdir()
    write_orders(root / "in")
    from flow_beam.service.core import PipelineService, ServiceConfig
    svc = PipelineService(ServiceConfig(warehouse=f"duckdb://{tmp_path}/wh.duckdb", root=str(root)))
    doc = orders_doc("raw")
    doc["nodes"][0]["config"]["path"] = str(root / "in")  # in-process: relative paths would be taken from the cwd
    svc.create("raw", doc)
    svc.close()
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "plan_pipeline",
                                                                        "arguments": {"id": "raw"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "run_pipeline",
                                                                        "arguments": {"id": "raw"}}},
    ]
    proc = subprocess.Popen([sys.executable, "-m", "flow_beam", "mcp", "--root", str(root), "--warehouse",
                             f"duckdb://{tmp_path}/wh.duckdb", "--allow-writes"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=REPO)
    out = []
    try:
        for line in lines:
            proc.stdin.write(json.dumps(line) + "\n")
            proc.stdin.flush()
            if "id" in line:  # one answer per request, in order (bounded by the timeout below)
                while True:
                    text = proc.stdout.readline()
                    assert text, f"the server closed stdout; stderr: {proc.stderr.read()[-2000:]}"
                    out.append(text)
                    if json.loads(text).get("id") == line["id"]:
                        break
        rest, _ = proc.communicate(timeout=120)  # closes stdin: the server ends
    finally:
        if proc.poll() is None:
            proc.kill()
    out += rest.splitlines()
    messages = [json.loads(text) for text in out if text.strip()]  # any non-JSON line fails here
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    answers = {m["id"]: m for m in messages if "id" in m}
    assert answers[2]["result"]["structuredContent"]["nodes"][0]["id"] == "src"
    run = answers[3]["result"]["structuredContent"]
    assert run["nodes"]["tgt"]["rowsLoaded"] == 2, run  # Beam ran in the server; its logs went to stderr
