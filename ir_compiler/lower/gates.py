"""Gates: what must stop downstream loads. A gate input is a PCollection of either abort reasons (str) or
unrouted error rows (Arrow tables in the errors-port shape). Targets take every upstream gate input as an
``AsList`` side input (no extra shuffle), and a small ParDo reports each one for the run result."""
from __future__ import annotations

import uuid

import apache_beam as beam
import pyarrow as pa

from ir_compiler.lower.context import write_report


def unrouted_message(node_id: str, rows: int, first: str | None, row: str | None) -> str:
    return (f"node '{node_id}': {rows} row(s) failed and nothing received them (no '{node_id}.errors' reader "
            f"and the DLQ is disabled); first: {first}; row: {row}")


def reasons_of(gate_lists) -> list[str]:
    """Abort reasons from the side-input lists of a commit (error tables summarised per node)."""
    reasons: list[str] = []
    errors: dict[str, list] = {}
    for items in gate_lists:
        for item in items:
            if isinstance(item, str):
                reasons.append(item)
            elif isinstance(item, pa.Table) and item.num_rows:
                node = item.column("node_id")[0].as_py()
                acc = errors.setdefault(node, [0, item.column("error")[0].as_py(), item.column("row")[0].as_py()])
                acc[0] += item.num_rows
    return reasons + [unrouted_message(n, *acc) for n, acc in errors.items()]


@beam.typehints.with_output_types(beam.typehints.Any)  # declared: Beam skips inferring it from the bytecode
class ReportGateFn(beam.DoFn):
    """Writes one report per gate element (the driver adds them up)."""

    def __init__(self, run_dir: str, node_id: str):
        self.run_dir, self.node_id = run_dir, node_id

    def process(self, item):
        name = f"{self.node_id}-{uuid.uuid4().hex}"
        if isinstance(item, str):
            write_report(self.run_dir, "signals", name, {"node": self.node_id, "reason": item})
        elif item.num_rows:
            write_report(self.run_dir, "signals", name, {
                "node": self.node_id, "rows": item.num_rows, "first": item.column("error")[0].as_py(),
                "row": item.column("row")[0].as_py()})


def collect_failures(reports: dict[str, dict]) -> list[str]:
    """The run's failure messages from the gate reports (error rows summed per node)."""
    reasons, errors = [], {}
    for rep in reports.values():
        if "reason" in rep:
            reasons.append(rep["reason"])
        else:
            acc = errors.setdefault(rep["node"], [0, rep["first"], rep["row"]])
            acc[0] += rep["rows"]
    return reasons + [unrouted_message(n, *acc) for n, acc in sorted(errors.items())]
