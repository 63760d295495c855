"""Run-time context shared by the lowered transforms: ids, run folder, reports, counters, error rows."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from connectors.runtime import counter, read_reports, write_report  # noqa: F401 (re-exported)
from ir_compiler.ops.common import ERROR, INTERNAL_PREFIX

COUNTERS = ("rows_in", "rows_out", "rows_quarantined", "rows_filtered", "rows_errored", "rows_loaded",
            "rows_warned", "rows_combined")


@dataclass
class RunContext:
    run_id: str
    pipeline_id: str
    run_dir: str  # staging files, per-node reports and captures of this run
    warehouse_url: str
    buckets: int = 8
    batch_rows: int = 65536
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    test_inputs: dict[str, list[dict]] | None = None
    capture: tuple[str, ...] = ()  # node ids whose main output is captured (embedded tests)
    files: dict[str, list[str]] = field(default_factory=dict)  # source id -> the input files it reads
    retry: object = None  # errorHandling.retry of the document (external calls)
    sink_root: str | None = None  # embedded tests: file sinks write under this folder instead of their path
    prepared: dict = field(default_factory=dict)  # source id -> what its connector's prepare() planned
    streaming: bool = False  # unbounded run: stream sources read forever (or until idle_stop_s), panes commit
    on_dataflow: bool = False  # Pub/Sub compiles to Beam's own IO there
    idle_stop_s: float | None = None  # streaming: a partition with no new message for this long ends its read
    dlq_enabled: bool = False  # streaming: late rows (beyond allowedLateness) are also written to the DLQ
    drain_windowed: dict = field(default_factory=dict)  # drain: stream source id -> {targets, retention_us, event_us}
    drain_frontiers: dict = field(default_factory=dict)  # drain: windowed transform id -> stored frontier µs
    ledger: dict = field(default_factory=dict)  # target id -> the input files its load records in _flow_files
    stream_plans: dict = field(default_factory=dict)  # streaming: stream source id -> connectors.streams.StreamPlan
    # (what its own unbounded reader gates its commits on)
    split_files: bool = True  # large local files become ranges (connectors.splits); off on a one-worker direct run

    def report_dir(self, kind: str) -> str:
        path = os.path.join(self.run_dir, kind)
        os.makedirs(path, exist_ok=True)
        return path


@beam.typehints.with_output_types(pa.Table)  # declared: Beam skips inferring it from the bytecode
class CountRows(beam.DoFn):
    """Counts the rows of every batch passing by (``rows_in`` or ``rows_out`` of one or more nodes)."""

    def __init__(self, node_id: str, name: str):
        self.counts = [(node_id, name)]

    def setup(self):
        self.cs = [counter(node_id, name) for node_id, name in self.counts]

    def process(self, table):
        for c in self.cs:
            c.inc(table.num_rows)
        yield table


def count(pcoll, node_id: str, name: str, label: str):
    """Counts rows; both sides carry Arrow tables, so both get the Arrow coder (no pickling to size them). A
    collection that a count step already produced (a node's ``rows_out``, then a reader's ``rows_in``) is counted by
    that same step: one ParDo fewer per edge, the same numbers."""
    from ir_compiler.lower.arrow_coder import tables

    fn = getattr(getattr(getattr(pcoll, "producer", None), "transform", None), "fn", None)
    if isinstance(fn, CountRows) and pcoll.tag is None:
        fn.counts.append((node_id, name))
        return pcoll
    return tables(tables(pcoll) | label >> beam.ParDo(CountRows(node_id, name)))


def json_value(v):
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def rows_json(table: pa.Table) -> list[str]:
    """Each row as a JSON object: numbers exact (a decimal is a JSON number, as sinks write it), a float NaN or
    infinity as PostgreSQL's text of it (JSON has no such number), dates ISO."""
    from connectors.formats import _dumps
    cols = [c for c in table.column_names if not c.startswith(INTERNAL_PREFIX) and c not in ("_rule_id", "_error")]
    return [_dumps({k: _json_safe(v) for k, v in r.items()}) for r in table.select(cols).to_pylist()]


def _json_safe(v):
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return v


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")  # the escape of NUL, not an escaped backslash + u0000


def json_text_column(values) -> pa.Array:
    """A `row` column of the quarantine / DLQ tables, marked JSON (JSONB in PostgreSQL, JSON in DuckDB, as
    SPEC §3 says); a value that is not valid JSON (NaN included) is stored as a JSON string holding it, and a NUL
    character (which JSONB cannot hold: such rows are in the DLQ precisely for it) as the six characters
    ``\\u0000``, so the insert never fails on a row."""
    out = []
    for v in values:
        if v is not None:
            try:
                json.loads(v, parse_constant=_no_constant)
            except ValueError:
                v = json.dumps(v)
            if "\\u0000" in v:
                v = _NUL_ESCAPE.sub(r"\1\\\\u0000", v)
        out.append(v)
    return pa.array(out, pa.string())


def _no_constant(name):
    raise ValueError(name)


def to_error_table(node_id: str, table: pa.Table) -> pa.Table:
    """Rows with an ERROR column → the errors-port shape (node_id, error, row JSON)."""
    return pa.table({
        "node_id": pa.array([node_id] * table.num_rows, pa.string()),
        "error": table.column(ERROR).cast(pa.string()),
        "row": pa.array(rows_json(table), pa.string()),
    })


def quarantine_rows(table: pa.Table, ctx_ids: tuple[str, str], node_id: str) -> pa.Table:
    """Quarantine-table shape: id, run_id, pipeline_id, node_id, rule_id, error, row (JSON), created_at."""
    from connectors.warehouse.base import mark_json
    run_id, pipeline_id = ctx_ids
    n = table.num_rows
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return mark_json(pa.table({
        "id": pa.array([uuid.uuid4().hex for _ in range(n)], pa.string()),
        "run_id": pa.array([run_id] * n, pa.string()),
        "pipeline_id": pa.array([pipeline_id] * n, pa.string()),
        "node_id": pa.array([node_id] * n, pa.string()),
        "rule_id": table.column("_rule_id").cast(pa.string()) if "_rule_id" in table.column_names
        else pa.nulls(n, pa.string()),
        "error": table.column("_error").cast(pa.string()) if "_error" in table.column_names
        else table.column("error").cast(pa.string()),
        "row": json_text_column(rows_json(table) if "_error" in table.column_names
                                else table.column("row").cast(pa.string()).to_pylist()),
        "created_at": pa.array([now] * n, pa.timestamp("us")),
    }), ["row"])


def dlq_rows(errors: pa.Table, run_id: str, pipeline_id: str) -> pa.Table:
    """DLQ-table shape: id, run_id, pipeline_id, node_id, error, row (JSON), created_at."""
    from connectors.warehouse.base import mark_json
    n = errors.num_rows
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return mark_json(pa.table({
        "id": pa.array([uuid.uuid4().hex for _ in range(n)], pa.string()),
        "run_id": pa.array([run_id] * n, pa.string()),
        "pipeline_id": pa.array([pipeline_id] * n, pa.string()),
        "node_id": errors.column("node_id"), "error": errors.column("error"),
        "row": json_text_column(errors.column("row").cast(pa.string()).to_pylist()),
        "created_at": pa.array([now] * n, pa.timestamp("us")),
    }), ["row"])


def nonempty(table: pa.Table) -> bool:
    return table is not None and table.num_rows > 0


def mask_count(mask) -> int:
    return int(pc.sum(pc.cast(pc.fill_null(mask, False), pa.int64())).as_py() or 0)
