"""REST under ``/api/v1`` (SPEC §7). Errors are ``{"error": text, "issues": [{path, nodeId, layer, message}]}``."""
from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from flow_beam.service.core import PipelineService
from flow_beam.service.schema import ir_json_schema
from flow_beam.service.issues import ServiceError, issue

IR_DESCRIPTION = "a pipeline IR document (its JSON Schema: GET /api/v1/schema)"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueOut(BaseModel):
    path: str = Field(description="JSON Pointer into the document")
    nodeId: str | None = None
    layer: str
    message: str
    severity: str = "error"


class ErrorOut(BaseModel):
    error: str
    issues: list[IssueOut] = Field(default_factory=list)


class CreateIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    irVersion: Literal["1.0"] = "1.0"
    ir: dict[str, Any] = Field(description=IR_DESCRIPTION)
    message: str | None = Field(default=None, max_length=2000)
    author: str | None = Field(default=None, max_length=200)


class ReplaceIn(Strict):
    ir: dict[str, Any] = Field(description=IR_DESCRIPTION)
    message: str | None = Field(default=None, max_length=2000)
    author: str | None = Field(default=None, max_length=200)


class ValidateIn(Strict):
    ir: Any = Field(description=IR_DESCRIPTION)
    params: dict[str, Any] | None = None


class ParamsIn(Strict):
    params: dict[str, Any] | None = None


class RunIn(Strict):
    params: dict[str, Any] | None = None
    version: int | None = Field(default=None, ge=1)
    wait: bool = True


class PipelineOut(BaseModel):
    id: str
    name: str
    version: int
    ir: dict[str, Any]


class PipelineSummary(BaseModel):
    id: str
    name: str
    version: int
    updatedAt: str


class PipelineList(BaseModel):
    pipelines: list[PipelineSummary]


class VersionOut(BaseModel):
    version: int
    author: str | None = None
    message: str | None = None
    createdAt: str


class VersionList(BaseModel):
    versions: list[VersionOut]


class ValidationOut(BaseModel):
    valid: bool
    issues: list[IssueOut]


class PlanNode(BaseModel):
    id: str
    kind: str
    primitives: list[str]
    schema_: list[dict[str, Any]] | None = Field(default=None, alias="schema", serialization_alias="schema")
    inputs: list[str] = Field(default_factory=list, description="upstream refs: node or node.port")
    ports: list[str] = Field(default_factory=list, description="output ports besides the main one")
    model_config = ConfigDict(populate_by_name=True)


class PlanOut(BaseModel):
    nodes: list[PlanNode]
    mermaid: str


class RunStarted(BaseModel):
    runId: str


class RunOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    runId: str
    pipelineId: str
    status: str = Field(description="queued | running | completed | completed_with_errors | failed")
    runner: str
    startedAt: str
    finishedAt: str = ""
    durationMs: int = 0
    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RunSummary(BaseModel):
    runId: str
    pipelineId: str
    status: str
    runner: str | None = None
    startedAt: str | None = None
    durationMs: int | None = None


class RunList(BaseModel):
    runs: list[RunSummary]


def errors(*codes: int) -> dict:
    return {code: {"model": ErrorOut} for code in codes}


IF_MATCH = r'^\s*(W/)?"?[0-9]{1,18}"?\s*$'  # the version number, bare or as an ETag


PATCH_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string", "description": "JSON Pointer"},
            "from": {"type": "string", "description": "JSON Pointer (move, copy)"},
            "value": {"description": "the value (add, replace, test)"},
        },
    },
}

ID = r"^[a-z0-9][a-z0-9_-]*$"


def _out(v) -> dict:
    return {"id": v.pipeline_id, "name": v.name, "version": v.version, "ir": v.ir}


def _version_header(value: str | None, header: str) -> int | None:
    """``If-Match: 3`` or the ETag form ``"3"`` / ``W/"3"``."""
    if value is None:
        return None
    m = re.fullmatch(r'\s*(?:W/)?"?(\d{1,18})"?\s*', value)
    if not m:
        raise ServiceError(400, f"{header} must be the version number you read (e.g. {header}: 3)",
                           [issue("", f"{header}: {value[:40]!r} is not a version number", "request")])
    return int(m.group(1))


def build_router(service: PipelineService) -> APIRouter:
    r = APIRouter(prefix="/api/v1")
    sync = run_in_threadpool

    @r.post("/pipelines", status_code=201, response_model=PipelineOut, responses=errors(400, 409, 413, 422),
            summary="create a pipeline (version 1); its id is the IR's id")
    def create(response: Response, body: CreateIn):
        v = service.create(body.name, body.ir, body.message, body.author, body.irVersion)
        response.headers["ETag"] = f'"{v.version}"'
        response.headers["Location"] = f"/api/v1/pipelines/{v.pipeline_id}"
        return _out(v)

    @r.get("/pipelines", response_model=PipelineList, summary="every pipeline with its latest version")
    def list_pipelines():
        return {"pipelines": service.list()}

    @r.get("/pipelines/{id}", response_model=PipelineOut, responses=errors(404),
           summary="the latest version, or ?version=N")
    def get_pipeline(response: Response, id: str, version: int | None = Query(default=None, ge=1, le=2**62)):
        v = service.get(id, version)
        response.headers["ETag"] = f'"{v.version}"'
        return _out(v)

    @r.get("/pipelines/{id}/versions", response_model=VersionList, responses=errors(404))
    def versions(id: str):
        return {"versions": service.versions(id)}

    @r.put("/pipelines/{id}", response_model=PipelineOut, responses=errors(400, 404, 409, 413, 422),
           summary="store a new version (optional If-Match: the version you replace)")
    def replace(response: Response, id: str, body: ReplaceIn,
                if_match: str | None = Header(default=None, alias="If-Match", pattern=IF_MATCH,
                                              description="the version you replace")):
        v = service.replace(id, body.ir, body.message, body.author, _version_header(if_match, "If-Match"))
        response.headers["ETag"] = f'"{v.version}"'
        return _out(v)

    @r.patch("/pipelines/{id}", response_model=PipelineOut, responses=errors(400, 404, 409, 413, 415, 422, 428),
             summary="apply an RFC 6902 JSON Patch to the latest version (If-Match required)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json-patch+json": {"schema": PATCH_SCHEMA}}}})
    async def patch(request: Request, response: Response, id: str,
                    if_match: str | None = Header(default=None, alias="If-Match", pattern=IF_MATCH,
                                                  description="the version the patch was written against"),
                    x_flow_author: str | None = Header(default=None, alias="X-Flow-Author", max_length=200),
                    x_flow_message: str | None = Header(default=None, alias="X-Flow-Message", max_length=2000)):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/json-patch+json", "application/json"):
            raise ServiceError(415, "send the patch as Content-Type: application/json-patch+json")
        expected = _version_header(if_match, "If-Match")
        if expected is None:
            raise ServiceError(428, "PATCH needs If-Match: <version> (the version the patch was written against)",
                               [issue("", "missing If-Match header", "request")])
        raw = await request.body()
        try:
            operations = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServiceError(422, f"the body is not JSON: {exc}", [issue("", "invalid JSON", "patch")]) from None
        v = await sync(service.patch, id, operations, expected, x_flow_author, x_flow_message)
        response.headers["ETag"] = f'"{v.version}"'
        return _out(v)

    @r.post("/validate", response_model=ValidationOut, responses=errors(400, 413, 422),
            summary="validate a document with every layer (nothing stored)")
    def validate(body: ValidateIn):
        v = service.validate(body.ir, body.params)
        return {"valid": v.valid, "issues": v.issues}

    @r.post("/pipelines/{id}/validate", response_model=ValidationOut, responses=errors(400, 404, 413, 422))
    def validate_stored(id: str, body: ParamsIn | None = Body(default=None),
                        version: int | None = Query(default=None, ge=1, le=2**62)):
        v = service.validate_stored(id, version, body.params if body else None)
        return {"valid": v.valid, "issues": v.issues}

    @r.post("/pipelines/{id}/plan", response_model=PlanOut, response_model_by_alias=True,
            responses=errors(400, 404, 413, 422), summary="each node, its Beam primitives and its propagated schema")
    def plan(id: str, body: ParamsIn | None = Body(default=None),
             version: int | None = Query(default=None, ge=1, le=2**62)):
        return service.plan(id, version, body.params if body else None)

    @r.post("/pipelines/{id}/run", response_model=RunOut, responses={**errors(400, 404, 413, 422, 503),
                                                                     202: {"model": RunStarted}},
            summary="run it: wait=true answers the run result, wait=false 202 {runId}")
    async def run(id: str, body: RunIn | None = Body(default=None)):
        body = body or RunIn()
        run_id, future = await sync(service.start_run, id, body.params, body.version)
        if not body.wait:
            return Response(json.dumps({"runId": run_id}), status_code=202, media_type="application/json",
                            headers={"Location": f"/api/v1/runs/{run_id}"})
        return await asyncio.wrap_future(future)  # the run executes in the pool, not on this thread

    @r.get("/runs/{runId}", response_model=RunOut, responses=errors(404),
           summary="a run result (status queued/running while it runs)")
    def get_run(runId: str):
        return service.get_run(runId)

    @r.get("/pipelines/{id}/runs", response_model=RunList, responses=errors(404))
    def runs(id: str, limit: int = Query(default=20, ge=1, le=500)):
        return {"runs": service.pipeline_runs(id, limit)}

    @r.get("/schema", summary="the IR's JSON Schema")
    def schema():
        return ir_json_schema()

    return r
