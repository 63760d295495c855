"""The run result: per-node counts from Beam metrics (namespaced by node id) plus commit/check reports."""
from __future__ import annotations

import datetime as dt
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


ROW_PRESERVING = {"source", "validate", "branch", "target"}


def balance_problem(node, r: NodeResult) -> str | None:
    """Rows in = out + quarantined + filtered (+ combined by aggregations), for every node that keeps rows."""
    if node.kind == "transform":
        if any(op.op in ("aggregate", "summarize") for op in node.ops):
            return None
    elif node.kind not in ROW_PRESERVING or (node.kind == "branch" and node.mode == "all_matches"):
        return None
    if node.kind == "target":
        if r.status != "loaded" or r.rowsIn - r.rowsErrored == r.rowsLoaded or node.loadMode in (
                "upsert", "incremental_watermark", "cdc_mirror"):
            return None
        return f"rows in ({r.rowsIn}) ≠ rows loaded ({r.rowsLoaded}) + errored ({r.rowsErrored})"
    if r.rowsIn != r.rowsOut + r.rowsQuarantined + r.rowsFiltered:
        return f"rows in ({r.rowsIn}) ≠ out ({r.rowsOut}) + quarantined ({r.rowsQuarantined}) + " \
               f"filtered ({r.rowsFiltered})"
    return None
