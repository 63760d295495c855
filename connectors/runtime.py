"""What a connector's Beam step needs of the run, without the compiler: the hidden columns, counters, the run
folder's reports and the errors-port shape. A leaf module (Beam is imported only when a counter is made), re-exported
by ``ir_compiler.lower.context`` and ``ir_compiler.ops.common``."""
from __future__ import annotations

import json

import pyarrow as pa

ORD = "__fb_ord"  # hidden input-order column (source file index, row) used for first/last and keep
ERROR = "__fb_error"  # reason column on error/quarantine tables
RULE = "__fb_rule"  # rule id on quarantine tables
INTERNAL_PREFIX = "__fb_"
ERRORS = "errors"  # the error port of every reader: node_id, error, row (JSON)


def user_columns(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if not c.startswith(INTERNAL_PREFIX)]


def strip_internal(table: pa.Table) -> pa.Table:
    return table.select(user_columns(table))


def ords(block: int, start: int, n: int, shift: int = 36) -> pa.Array:
    """ORD values ``start .. start+n`` of input block ``block`` (a file index, a partition): ``block << shift``."""
    import numpy as np
    return pa.array(np.arange(start, start + n, dtype=np.int64) + (block << shift))


def counter(node_id: str, name: str):
    """The Beam counter ``name`` of a node (rows_in, rows_errored, ...): what the run result reports."""
    from apache_beam.metrics import Metrics
    return Metrics.counter(node_id, name)


def write_report(run_dir: str, kind: str, name: str, data: dict) -> None:
    """Write one JSON report (read by the driver after the run) into the run folder (local or gs://)."""
    from connectors import runfs
    runfs.write_bytes(runfs.join(run_dir, kind, f"{name}.json"), json.dumps(data, default=str).encode())


def read_reports(run_dir: str, kind: str) -> dict[str, dict]:
    from connectors import runfs
    folder = runfs.join(run_dir, kind)
    return {name[:-5]: json.loads(runfs.read_bytes(runfs.join(folder, name)))
            for name in runfs.list_names(folder) if name.endswith(".json") and not name.startswith(".")}


def error_table(node_id: str, errors: list[str], rows: list[str]) -> pa.Table:
    """The errors-port shape: one row per problem (node id, what went wrong, the raw row as JSON)."""
    return pa.table({"node_id": pa.array([node_id] * len(errors), pa.string()),
                     "error": pa.array(errors, pa.string()), "row": pa.array(rows, pa.string())})


def schemas_of(node, schema):
    """(declared, hint) for a reader: the node's declared schema (values must convert: strict), or else the schema
    sampled at validation (a hint the reader converts to where it can)."""
    return (schema, None) if node.schema_ else (None, schema)


def bad_rows_table(node_id, bad_rows) -> pa.Table:
    """Rows a reader could not take (``connectors.formats.BadRow``: file, line, reason, raw) in the errors-port shape."""
    return pa.table({
        "node_id": pa.array([node_id] * len(bad_rows), pa.string()),
        "error": pa.array([f"{b.file}, {b.unit} {b.line}: {b.reason}" if b.line else f"{b.file}: {b.reason}"
                           for b in bad_rows], pa.string()),
        "row": pa.array([json.dumps({"raw": b.raw}) for b in bad_rows], pa.string()),
    })


def count_rows_in(pcoll, node_id: str):
    """``pcoll`` (Arrow tables) with its rows counted as the node's ``rows_in``: for a reader whose own steps do
    not count what they read (the run result's row balance needs it)."""
    import apache_beam as beam
    return pcoll | f"{node_id}/CountRead" >> beam.Map(_counted, node_id)


def _counted(table: pa.Table, node_id: str) -> pa.Table:
    counter(node_id, "rows_in").inc(table.num_rows)
    return table
