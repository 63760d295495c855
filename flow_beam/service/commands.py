"""``flow-beam serve`` and ``flow-beam mcp``."""
from __future__ import annotations

import os
import sys

from ir_compiler.errors import FlowError


def absolute_warehouse(url: str | None) -> str:
    """The warehouse URL with a DuckDB path made absolute (the service then works inside its root folder)."""
    from connectors.warehouse import warehouse_url

    url = warehouse_url(url)
    if url.startswith("duckdb://"):
        return "duckdb://" + os.path.abspath(url[len("duckdb://"):] or "flow_warehouse.duckdb")
    return url


def _config(args, **extra):
    from flow_beam.service.core import ServiceConfig, default_root

    root = os.path.realpath(os.path.expanduser(args.root or default_root()))
    os.makedirs(root, exist_ok=True)
    cfg = ServiceConfig(warehouse=absolute_warehouse(args.warehouse), root=root, allow_writes=args.allow_writes,
                        **extra)
    os.chdir(root)  # relative paths in documents resolve inside the root, as the confinement check takes them
    return cfg


def serve(args) -> int:
    import uvicorn

    from flow_beam.service.app import check_binding, create_app
    from flow_beam.service.issues import ServiceError

    try:
        token = check_binding(args.host, args.token_env)
    except ServiceError as exc:
        raise FlowError(exc.error) from None
    cfg = _config(args, token=token, host=args.host)
    app = create_app(cfg)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"flow-beam service on http://{host}:{args.port}/ (canvas /, REST /api/v1, OpenAPI /openapi.json, "
          f"MCP /mcp{', MCP writes allowed' if cfg.allow_writes else ''}); root {cfg.root}; warehouse "
          f"{_redact(cfg.warehouse)}{'; bearer token required' if token else ''}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def mcp_stdio(args) -> int:
    import anyio

    from flow_beam.service.core import PipelineService
    from flow_beam.service.mcp import serve_stdio

    service = PipelineService(_config(args))
    try:
        anyio.run(serve_stdio, service, args.allow_writes)
    finally:
        service.close()
    return 0


def _redact(url: str) -> str:
    from connectors.warehouse import redact_url
    return redact_url(url)


def add_commands(sub) -> None:
    """The ``serve`` and ``mcp`` sub-commands."""
    p = sub.add_parser("serve", help="the pipeline service: REST API, MCP at /mcp and the canvas at /")
    p.add_argument("--host", default="127.0.0.1", help="bind address (beyond loopback needs --token-env)")
    p.add_argument("--port", type=int, default=8642)
    p.add_argument("--warehouse", default=None, help="where pipelines, versions and runs are stored")
    p.add_argument("--root", default=None, help="every path a submitted document names must resolve inside it "
                                               "(default ~/.cache/flow-beam/service-root)")
    p.add_argument("--token-env", default=None, metavar="VAR", help="environment variable holding the bearer token")
    p.add_argument("--allow-writes", action="store_true", help="allow the MCP write tools (create, patch, run)")
    p.set_defaults(fn=serve)
    p = sub.add_parser("mcp", help="the MCP server over stdio (tools: list/get/create/patch/validate/plan/run)")
    p.add_argument("--warehouse", default=None)
    p.add_argument("--root", default=None, help="confinement root for paths in documents")
    p.add_argument("--allow-writes", action="store_true", help="allow create_pipeline, patch_pipeline, run_pipeline")
    p.set_defaults(fn=mcp_stdio)
