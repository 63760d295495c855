"""The ASGI application: REST under /api/v1, MCP (streamable HTTP) at /mcp, the canvas at /."""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from flow_beam import __version__
from flow_beam.service.api import build_router
from flow_beam.service.core import PipelineService, ServiceConfig
from flow_beam.service.issues import ServiceError, issue, json_pointer

STATIC = os.path.join(os.path.dirname(__file__), "static")
PUBLIC = ("/", "/favicon.ico", "/openapi.json")  # the canvas page, its files and the API description
log = logging.getLogger("flow_beam.service")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SafetyMiddleware:
    """Bearer-token check (when a token is set) and a request body size limit (413), for every route."""

    def __init__(self, app, token: str | None, max_body: int):
        self.app, self.token, self.max_body = app, token, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token and not (path in PUBLIC or path.startswith("/static/")):
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return await _json(send, 401, {"error": "missing or wrong bearer token (Authorization: Bearer …)",
                                               "issues": []}, {"WWW-Authenticate": 'Bearer realm="flow-beam"'})
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _too_large(send, self.max_body)
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        body, more = [], True  # read the body up to the limit, then hand it on
        size = 0
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if size > self.max_body:
                return await _too_large(send, self.max_body)
            body.append(message.get("body", b""))
            more = message.get("more_body", False)
        replay = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        return await self.app(scope, replayed, send)


async def _json(send, status: int, body: dict, headers: dict | None = None):
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


async def _too_large(send, limit: int):
    await _json(send, 413, {"error": f"the request body is larger than {limit} bytes", "issues": []})


def create_app(config: ServiceConfig, service: PipelineService | None = None) -> FastAPI:
    service = service or PipelineService(config)
    from flow_beam.service.mcp import build_server

    mcp_server = build_server(service, config.allow_writes)
    mcp_app = mcp_server.streamable_http_app(streamable_http_path="/mcp", host=config.host)

    @asynccontextmanager
    async def lifespan(app):
        async with mcp_server.session_manager.run():
            yield
        service.close()

    app = FastAPI(title="flow-beam pipeline service", version=__version__, lifespan=lifespan,
                  description="Versioned pipeline IR documents, JSON Patch, validation, plans and runs "
                              "(SPEC §7). Errors are {error, issues: [{path (JSON Pointer), nodeId, layer, "
                              "message}]}.", docs_url=None, redoc_url=None)
    app.state.service = service

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError):
        issues = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            where = loc[0] if loc else "body"
            path = json_pointer(tuple(loc[1:])) if where == "body" else ""  # escaped per key (RFC 6901)
            msg = err.get("msg", "invalid")
            if err.get("type") == "json_invalid":  # loc[1] is a character offset, not a place in a document
                reason = (err.get("ctx") or {}).get("error")
                at = f" at character {int(loc[1]) + 1}" if len(loc) > 1 and loc[1].isdigit() else ""
                path, msg = "", f"the body is not valid JSON{at}" + (f": {reason}" if reason else "")
            issues.append(issue(path, msg if where == "body" else f"{where} {'.'.join(loc[1:])}: {msg}", "request"))
        first = issues[0] if issues else {"path": "", "message": "invalid request"}
        return JSONResponse({"error": f"invalid request: {first['path'] or '/'}: {first['message']}",
                             "issues": issues}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Allow (RFC 9110) lists the methods of every route on this path
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope)) or headers.get("Allow", "")
        return JSONResponse({"error": str(exc.detail), "issues": []}, status_code=exc.status_code,
                            headers=headers or None)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("request failed")
        return JSONResponse({"error": f"internal error: {type(exc).__name__}", "issues": []}, status_code=500)

    app.include_router(build_router(service))
    app.router.routes.extend(mcp_app.routes)

    @app.get("/", include_in_schema=False)
    def canvas():
        return FileResponse(os.path.join(STATIC, "index.html"), headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SafetyMiddleware, token=config.token, max_body=config.max_body)
    return app


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app, scope) -> list[str]:
    """The methods some route answers on this request's path, found by matching the request with each method
    (included routers are matched through their own ``matches``, so nested routes count)."""
    found = []
    for method in METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in app.router.routes
               if not isinstance(route, Mount) and getattr(route, "methods", ()) is not None):
            found.append(method)
    return found or ["GET", "HEAD"]  # the only other source of a 405: the static files (GET/HEAD)


def check_binding(host: str, token_env: str | None) -> str | None:
    """The bearer token; binding beyond loopback without one is refused."""
    token = os.environ.get(token_env) if token_env else None
    if token_env and not token:
        raise ServiceError(2, f"--token-env {token_env}: the variable is not set (or empty); export it first")
    if not is_loopback(host) and not token:
        raise ServiceError(2, f"refusing to bind {host} (beyond loopback) without a bearer token: pass "
                              f"--token-env VAR naming an environment variable that holds the token")
    return token
