"""The service's operations, shared by the REST API and the MCP tools. Every failure is a ServiceError carrying
the HTTP status and issues with JSON Pointers."""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

from flow_beam.service.secret_refs import secret_issues
from flow_beam.service.issues import ServiceError, issue, issue_json
from flow_beam.service.runs import PoolFull, RunExecutor
from flow_beam.service.store import Conflict, PipelineStore, Version
from ir_compiler.errors import FlowError, Issue, ValidationFailed

log = logging.getLogger("flow_beam.service")


def default_root() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "flow-beam", "service-root")


@dataclass
class ServiceConfig:
    warehouse: str | None = None
    root: str = field(default_factory=default_root)
    token: str | None = None  # bearer token required on every API call when set
    allow_writes: bool = False  # MCP write tools (create, patch, run)
    host: str = "127.0.0.1"
    max_body: int = 1024 * 1024
    run_workers: int = 2
    run_queue: int = 8


@dataclass
class Validation:
    checked: Any  # CheckedPipeline | None
    issues: list[dict]

    @property
    def valid(self) -> bool:
        return self.checked is not None and not any(i["severity"] == "error" for i in self.issues)

    def errors(self) -> list[dict]:
        return [i for i in self.issues if i["severity"] == "error"]


class PipelineService:
    def __init__(self, config: ServiceConfig):
        self.config = config
        self.root = os.path.realpath(config.root)
        os.makedirs(self.root, exist_ok=True)
        self.store = PipelineStore(config.warehouse)
        self.url = self.store.url
        self.runs = RunExecutor(self.url, workers=config.run_workers, max_queued=config.run_queue)

    # ---- validation -----------------------------------------------------------------------------------------
    def validate(self, ir: Any, params: dict | None = None) -> Validation:
        """Every layer (models, graph, rules with path confinement to the root, types) plus secret references."""
        from ir_compiler.check import check_document, default_context
        from ir_compiler.loader import resolve_params

        if not isinstance(ir, dict):
            return Validation(None, [issue("", "the IR is a JSON object (a pipeline document)", "model")])
        ir = copy.deepcopy(ir)
        try:
            resolved, _ = resolve_params(ir, params)
            secrets = secret_issues(resolved)
        except Exception as exc:  # noqa: BLE001 - a malformed document: the model layer reports it below
            log.debug("secret check skipped: %s", exc)
            secrets = []
        checked, found = None, []
        try:  # every path must stay inside the root: the product's confinement layer (no inference outside it)
            checked = check_document(ir, params, default_context(self.store.wh), raise_on_error=False,
                                     root=self.root)
            found = checked.issues
        except ValidationFailed as exc:
            found = exc.issues
        except FlowError as exc:
            found = [Issue(exc.path, exc.message, exc.node_id, "model")]
        except Exception as exc:  # noqa: BLE001 - never a 500 for a document; the log has the traceback
            log.exception("validation crashed")
            found = [Issue("", f"validation failed unexpectedly: {type(exc).__name__}: {exc}", None, "model")]
        issues = [issue_json(i) for i in secrets + found]
        return Validation(checked if checked is not None and not secrets else None, issues)

    def _valid_or_422(self, ir: Any, params: dict | None = None, what: str = "the IR") -> Validation:
        v = self.validate(ir, params)
        if not v.valid:
            errs = v.errors() or v.issues
            raise ServiceError(422, f"{what} is invalid: {len(errs)} error(s); first: "
                                    f"{errs[0]['path'] or '/'}: {errs[0]['message']}" if errs else f"{what} is invalid",
                               v.issues)
        return v

    # ---- pipelines ------------------------------------------------------------------------------------------
    def list(self) -> list[dict]:
        return self.store.list()

    def get(self, pipeline_id: str, version: int | None = None) -> Version:
        found = self.store.get(pipeline_id, version)
        if found is None:
            if version is not None and self.store.get(pipeline_id) is not None:
                raise ServiceError(404, f"pipeline '{pipeline_id}' has no version {version}")
            raise ServiceError(404, f"no pipeline '{pipeline_id}'")
        return found

    def versions(self, pipeline_id: str) -> list[dict]:
        self.get(pipeline_id)
        return self.store.versions(pipeline_id)

    def create(self, name: str, ir: Any, message: str | None = None, author: str | None = None,
               ir_version: str = "1.0") -> Version:
        if ir_version != "1.0":
            raise ServiceError(422, f"irVersion {ir_version!r} is not supported; use \"1.0\"",
                               [issue("/irVersion", "only IR version 1.0 exists", "model")])
        self._valid_or_422(ir)
        try:
            return self.store.create(ir["id"], name, ir, author, message)
        except Conflict as exc:
            raise ServiceError(409, f"{exc}; change it with PUT or PATCH /api/v1/pipelines/{ir['id']}") from None

    def replace(self, pipeline_id: str, ir: Any, message: str | None = None, author: str | None = None,
                expected: int | None = None) -> Version:
        current = self.get(pipeline_id)
        if expected is not None and expected != current.version:
            raise self._stale(pipeline_id, expected, current.version)
        self._same_id(pipeline_id, ir)
        self._valid_or_422(ir)
        return self._store_version(pipeline_id, current.version, ir, author, message)

    def patch(self, pipeline_id: str, operations: Any, expected: int, author: str | None = None,
              message: str | None = None) -> Version:
        """Apply an RFC 6902 patch to the latest version, validate the result with every layer, store it as the
        next version. The stored document is unchanged on any failure."""
        current = self.get(pipeline_id)
        if expected != current.version:
            raise self._stale(pipeline_id, expected, current.version)
        patched = apply_patch(current.ir, operations)
        self._same_id(pipeline_id, patched)
        self._valid_or_422(patched, what="the patched document")
        return self._store_version(pipeline_id, expected, patched, author,
                                   message or f"JSON Patch: {len(operations)} operation(s)")

    def _store_version(self, pipeline_id, expected, ir, author, message) -> Version:
        try:
            return self.store.add_version(pipeline_id, expected, ir, author, message)
        except Conflict:
            now = self.store.get(pipeline_id)
            raise self._stale(pipeline_id, expected, now.version if now else expected) from None

    @staticmethod
    def _stale(pipeline_id: str, expected: int, latest: int) -> ServiceError:
        return ServiceError(409, f"pipeline '{pipeline_id}' is at version {latest}, not {expected}: fetch it "
                                 f"again and re-apply your change", headers={"ETag": f'"{latest}"'})

    @staticmethod
    def _same_id(pipeline_id: str, ir: Any) -> None:
        if isinstance(ir, dict) and ir.get("id") != pipeline_id:
            raise ServiceError(422, f"the document's id {ir.get('id')!r} differs from the pipeline '{pipeline_id}'",
                               [issue("/id", f"must stay '{pipeline_id}' (the pipeline id is the IR's id)",
                                      "model")])

    # ---- plan and run ---------------------------------------------------------------------------------------
    def validate_stored(self, pipeline_id: str, version: int | None = None, params: dict | None = None):
        return self.validate(self.get(pipeline_id, version).ir, params)

    def plan(self, pipeline_id: str, version: int | None = None, params: dict | None = None) -> dict:
        from ir_compiler.plan import plan_rows, render_mermaid

        checked = self._valid_or_422(self.get(pipeline_id, version).ir, params).checked
        return {"nodes": plan_rows(checked), "mermaid": render_mermaid(checked)}

    def start_run(self, pipeline_id: str, params: dict | None = None, version: int | None = None):
        stored = self.get(pipeline_id, version)
        checked = self._valid_or_422(stored.ir, params, what=f"pipeline '{pipeline_id}'").checked
        try:
            return self.runs.submit(checked, params or {}, stored.version, self.root)
        except PoolFull as exc:
            raise ServiceError(503, str(exc), headers={"Retry-After": "5"}) from None

    def get_run(self, run_id: str) -> dict:
        found = self.runs.get(run_id)
        if found is None:
            raise ServiceError(404, f"no run '{run_id}'")
        return found

    def pipeline_runs(self, pipeline_id: str, limit: int = 20) -> list[dict]:
        from flow_beam.history import list_runs

        self.get(pipeline_id)
        done = [{"runId": r["run_id"], "pipelineId": r["pipeline_id"], "status": r["status"], "runner": r["runner"],
                 "startedAt": r["started_at"], "durationMs": r["duration_ms"]}
                for r in list_runs(self.url, pipeline_id, limit)]
        live = [{k: s[k] for k in ("runId", "pipelineId", "status", "runner", "startedAt", "durationMs")}
                for s in self.runs.in_flight(pipeline_id)]
        seen = {r["runId"] for r in live}  # a run that just finished can be in both lists
        return (live + [r for r in done if r["runId"] not in seen])[:limit]  # at most `limit`, live runs first

    def close(self) -> None:
        self.runs.shutdown()


def apply_patch(document: dict, operations: Any) -> dict:
    """RFC 6902 through ``jsonpatch``; a patch that does not apply → 422 with the failing operation's path."""
    if not isinstance(operations, list):
        raise ServiceError(422, "a JSON Patch is an array of operations",
                           [issue("", "send [{\"op\": \"replace\", \"path\": \"/…\", \"value\": …}, …]", "patch")])
    for n, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("path"), str) or op.get("op") not in (
                "add", "remove", "replace", "move", "copy", "test"):
            raise ServiceError(422, f"operation {n} is not an RFC 6902 operation",
                               [issue(op.get("path", "") if isinstance(op, dict) and isinstance(op.get("path"), str)
                                      else "", f"operation {n}: needs 'op' (add, remove, replace, move, copy, test) "
                                               f"and a 'path'", "patch")])
    try:
        patched = jsonpatch.JsonPatch(operations).apply(document, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, ValueError, KeyError,
            IndexError) as exc:
        n, where, before = _failing_op(document, operations)
        reason = _patch_reason(operations[n], before, exc)
        raise ServiceError(422, f"the patch does not apply: operation {n} ({operations[n].get('op')}): {reason}",
                           [issue(where, f"operation {n} ({operations[n].get('op')}): {reason}", "patch")]) from None
    return patched


def _short_json(value, n: int = 120) -> str:
    import json

    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= n else f"{text[:n]}… ({len(text):,} characters)"


def _patch_reason(op: dict, before, exc: Exception) -> str:
    """Why an operation failed, in the patch's terms (no Python types, never the whole stored document)."""
    if isinstance(exc, jsonpatch.JsonPatchTestFailed) and op.get("op") == "test":
        try:
            actual = jsonpointer.resolve_pointer(before, op["path"])
        except jsonpointer.JsonPointerException:
            return f"the path {op['path'] or '(the whole document)'} names no value to test"
        if isinstance(actual, jsonpointer.EndOfList):
            return f"the path {op['path']} names the end of an array, not a value"
        if not op["path"]:  # never echo the stored document
            return "the whole document differs from the tested value"
        return f"the value at {op['path']} is {_short_json(actual)}, not the tested {_short_json(op.get('value'))}"
    return str(exc)


def _failing_op(document: dict, operations: list) -> tuple[int, str, Any]:
    """The first operation that fails, its path and the document it was applied to."""
    doc = copy.deepcopy(document)
    for n, op in enumerate(operations):
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=False)
        except Exception:  # noqa: BLE001 - this is the one that fails
            return n, op.get("path", ""), doc
    return len(operations) - 1, operations[-1].get("path", "") if operations else "", doc
