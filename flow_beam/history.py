"""Run history: every run's result is appended to ``_flow_runs`` in the warehouse it ran against."""
from __future__ import annotations

import json
import logging
import time

import pyarrow as pa

from connectors.warehouse import open_warehouse
from ir_compiler.errors import FlowError

RUNS = "_flow_runs"
log = logging.getLogger(__name__)


def record_run(result, url: str) -> None:
    """Append the run; a failure to record becomes a run warning (the run itself is not changed)."""
    row = result.to_json()
    table = pa.table({
        "run_id": [result.runId], "pipeline_id": [result.pipelineId], "status": [result.status],
        "runner": [result.runner], "started_at": [result.startedAt], "finished_at": [result.finishedAt],
        "duration_ms": pa.array([result.durationMs], pa.int64()), "result": [json.dumps(row, default=str)]})
    from ir_compiler.errors import ConnectorError

    for attempt in range(4):  # the DuckDB file may be held by another run: each try waits for it already
        try:
            open_warehouse(url).append_rows(RUNS, table)
            return
        except ConnectorError as exc:
            if attempt == 3:
                _lost(result, exc)
            else:
                time.sleep(0.5 * 2 ** attempt)
        except FlowError as exc:
            _lost(result, exc)
            return


def _lost(result, exc) -> None:
    """Never silent: a loud warning on stderr and in the result, and a non-zero exit (2) for a completed run."""
    msg = f"could not record the run in {RUNS}: {exc}; this run is missing from the run history"
    log.warning(msg)
    result.warnings.append(msg)
    if result.status == "completed":
        result.status = "completed_with_errors"


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
