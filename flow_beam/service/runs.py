"""Runs started by the service execute off the request thread, in a bounded pool. A run's id is known before it
starts, so ``GET /api/v1/runs/{runId}`` answers ``queued``/``running`` and then the result (kept in memory for the
recent runs, and in the warehouse's ``_flow_runs`` history for all of them)."""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from flow_beam.results import now_iso
from flow_beam.running import RunOptions, run_document

KEEP = 200  # finished results kept in memory


class PoolFull(Exception):
    pass


class RunExecutor:
    def __init__(self, warehouse_url: str, workers: int = 2, max_queued: int = 8, runner: str = "direct"):
        self.url = warehouse_url
        self.runner = runner
        self.workers = workers
        self.max_queued = max_queued
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flow-beam-run")
        self.lock = threading.Lock()
        self.active: dict[str, dict] = {}  # run id -> the run's state while queued or running
        self.done: OrderedDict[str, dict] = OrderedDict()

    def submit(self, checked, params: dict, pipeline_version: int | None = None,
               root: str | None = None) -> tuple[str, Future]:
        run_id = uuid.uuid4().hex
        state = {"runId": run_id, "pipelineId": checked.pipeline.id, "status": "queued", "runner": self.runner,
                 "startedAt": now_iso(), "finishedAt": "", "durationMs": 0, "pipelineVersion": pipeline_version,
                 "nodes": {}}
        with self.lock:
            if len(self.active) >= self.workers + self.max_queued:
                raise PoolFull(f"{len(self.active)} runs are queued or running; try again when one finished")
            self.active[run_id] = state
        return run_id, self.pool.submit(self._run, checked, params, state, root)

    def _run(self, checked, params: dict, state: dict, root: str | None) -> dict:
        state["status"], state["startedAt"] = "running", now_iso()
        try:
            result = run_document(checked.raw, RunOptions(runner=self.runner, warehouse=self.url, params=params,
                                                          run_id=state["runId"], root=root), checked=checked)
            out = result.to_json()
        except Exception as exc:  # noqa: BLE001 - run_document reports failures itself; this is the last guard
            out = {**state, "status": "failed", "finishedAt": now_iso(), "error": f"{type(exc).__name__}: {exc}"}
        out["pipelineVersion"] = state["pipelineVersion"]
        with self.lock:
            self.active.pop(state["runId"], None)
            self.done[state["runId"]] = out
            while len(self.done) > KEEP:
                self.done.popitem(last=False)
        return out

    def get(self, run_id: str) -> dict | None:
        with self.lock:
            if run_id in self.active:
                return dict(self.active[run_id])
            if run_id in self.done:
                return self.done[run_id]
        from flow_beam.history import get_run
        return get_run(self.url, run_id) if len(run_id) >= 6 else None

    def in_flight(self, pipeline_id: str) -> list[dict]:
        with self.lock:
            return [dict(s) for s in self.active.values() if s["pipelineId"] == pipeline_id]

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
