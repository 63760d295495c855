"""The run result: per-node counts from Beam metrics (namespaced by node id) plus commit/check reports."""
from __future__ import annotations

import datetime as dt
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

EXIT_CODES = {"completed": 0, "completed_with_errors": 2, "failed": 1}


@dataclass
class NodeResult:
    kind: str
    status: str = "not_run"
    rowsIn: int = 0
    rowsOut: int = 0
    rowsQuarantined: int = 0
    rowsFiltered: int = 0
    rowsLoaded: int = 0
    rowsErrored: int = 0
    rowsCombined: int = 0
    rowsLate: int = 0  # streaming: rows whose window had closed (beyond allowedLateness); DLQ'd when there is one
    rowsSkipped: int = 0  # targets: rows not loaded by design (upsert key repeated in the load, at or below the
    # high-water mark, a file already loaded, cdc events folded into a key's last one); each kind also in a warning
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    routes: dict[str, int] | None = None
    checks: list[dict] | None = None
    table: str | None = None
    files: list[str] | None = None


@dataclass
class RunResult:
    runId: str
    pipelineId: str
    status: str
    runner: str
    startedAt: str
    finishedAt: str = ""
    durationMs: int = 0
    warehouse: str | None = None
    nodes: dict[str, NodeResult] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        out = asdict(self)
        for node in out["nodes"].values():
            for k in [k for k, v in node.items() if v is None and k in ("routes", "checks", "table", "files")]:
                del node[k]
        return out

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metric_counts(beam_result) -> dict[str, dict[str, int]]:
    """{node id: {counter name: value}} from a finished Beam PipelineResult."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, dict[str, int]] = {}
    try:
        counters = beam_result.metrics().query(MetricsFilter())["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics support: counts stay 0, said in warnings
        return {}
    for c in counters:
        value = c.committed if c.committed is not None else c.attempted
        ns = out.setdefault(c.key.metric.namespace, {})
        ns[c.key.metric.name] = ns.get(c.key.metric.name, 0) + int(value or 0)
    return out


class PartialMetrics:
    """The counters a failed run leaves behind. The in-process runner (FnApiRunner) raises from ``run()`` and its
    metrics go with it, so the counters of every bundle that finished are kept here as it runs; a portable runner
    (Prism, Flink) raises from ``wait_until_finish`` and its result can still be asked."""

    def __init__(self):
        self.by_stage: dict[str, list] = {}
        self.beam_result = None

    def counts(self) -> dict[str, dict[str, int]]:
        if self.beam_result is not None:
            counts = metric_counts(self.beam_result)
            if counts:
                return counts
        if not self.by_stage:
            return {}
        try:
            from apache_beam.runners.portability.fn_api_runner.fn_runner import RunnerResult
            from apache_beam.runners.runner import PipelineState
            return metric_counts(RunnerResult(PipelineState.FAILED, self.by_stage))
        except Exception:  # noqa: BLE001 - counts of a failed run are a best effort, never a second failure
            return {}


_ACTIVE = threading.local()


@contextmanager
def partial_metrics():
    """Keep the counters of a run in this thread while it runs (see :class:`PartialMetrics`)."""
    _record_bundles()
    recorder = PartialMetrics()
    previous, _ACTIVE.recorder = getattr(_ACTIVE, "recorder", None), recorder
    try:
        yield recorder
    finally:
        _ACTIVE.recorder = previous


def note_beam_result(beam_result) -> None:
    """The PipelineResult of the run in this thread (so a failure in ``wait_until_finish`` keeps its metrics)."""
    recorder = getattr(_ACTIVE, "recorder", None)
    if recorder is not None:
        recorder.beam_result = beam_result


def _record_bundles() -> None:
    """Wrap FnApiRunner's bundle execution once: each finished bundle's monitoring infos also go to the recorder
    of the thread running it. Without that private method (another Beam version) nothing is recorded."""
    try:
        from apache_beam.metrics.monitoring_infos import consolidate
        from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
    except ImportError:
        return
    original = getattr(FnApiRunner, "_execute_bundle", None)
    if original is None or getattr(original, "_flow_beam_recording", False):
        return

    def execute_bundle(self, runner_execution_context, bundle_context_manager, bundle_input):
        results = original(self, runner_execution_context, bundle_context_manager, bundle_input)
        recorder = getattr(_ACTIVE, "recorder", None)
        if recorder is not None:
            try:
                stage = bundle_context_manager.stage.name
                recorder.by_stage[stage] = list(consolidate(
                    list(results.process_bundle.monitoring_infos) + recorder.by_stage.get(stage, [])))
            except Exception:  # noqa: BLE001 - recording is a side job; the run goes on
                pass
        return results

    execute_bundle._flow_beam_recording = True
    FnApiRunner._execute_bundle = execute_bundle


ROW_PRESERVING = {"source", "validate", "branch", "target"}


def balance_problem(node, r: NodeResult) -> str | None:
    """Rows in = out + quarantined + filtered (+ combined by aggregations), for every node that keeps rows."""
    if node.kind == "transform":
        if any(op.op in ("aggregate", "summarize") for op in node.ops):
            return None
    elif node.kind not in ROW_PRESERVING or (node.kind == "branch" and node.mode == "all_matches"):
        return None
    if node.kind == "target":
        if r.status != "loaded" or r.rowsIn - r.rowsErrored == r.rowsLoaded + r.rowsSkipped:
            return None
        return f"rows in ({r.rowsIn}) ≠ rows loaded ({r.rowsLoaded}) + skipped ({r.rowsSkipped}) + errored " \
               f"({r.rowsErrored})"
    if r.rowsIn != r.rowsOut + r.rowsQuarantined + r.rowsFiltered:
        return f"rows in ({r.rowsIn}) ≠ out ({r.rowsOut}) + quarantined ({r.rowsQuarantined}) + " \
               f"filtered ({r.rowsFiltered})"
    return None
