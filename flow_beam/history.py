"""Run history: every run's result is appended to ``_flow_runs`` in the warehouse it ran against."""
from __future__ import annotations

import json

import pyarrow as pa

from connectors.warehouse import open_warehouse
from ir_compiler.errors import FlowError

RUNS = "_flow_runs"


def record_run(result, url: str) -> None:
    """Append the run; a failure to record becomes a run warning (the run itself is not changed)."""
    row = result.to_json()
    table = pa.table({
        "run_id": [result.runId], "pipeline_id": [result.pipelineId], "status": [result.status],
        "runner": [result.runner], "started_at": [result.startedAt], "finished_at": [result.finishedAt],
        "duration_ms": pa.array([result.durationMs], pa.int64()), "result": [json.dumps(row, default=str)]})
    try:
        open_warehouse(url).append_rows(RUNS, table)
    except FlowError as exc:
        result.warnings.append(f"could not record the run in {RUNS}: {exc}")


def list_runs(url: str, pipeline: str | None = None, limit: int = 20) -> list[dict]:
    wh = open_warehouse(url)
    if wh.table_schema(RUNS) is None:
        return []
    rows = wh.read(RUNS).select(["run_id", "pipeline_id", "status", "runner", "started_at", "duration_ms"]) \
        .to_pylist()
    rows = [r for r in rows if pipeline is None or r["pipeline_id"] == pipeline]
    return sorted(rows, key=lambda r: r["started_at"], reverse=True)[:limit]


def get_run(url: str, run_id: str) -> dict | None:
    wh = open_warehouse(url)
    if wh.table_schema(RUNS) is None:
        return None
    for row in wh.read(RUNS).to_pylist():
        if row["run_id"] == run_id or (len(run_id) >= 6 and row["run_id"].startswith(run_id)):
            return json.loads(row["result"])
    return None
