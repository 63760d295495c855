"""Dialect-independent load preparation: concatenate staged Parquet, order, dedupe, lineage column."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.warehouse.base import LINEAGE, LoadRequest
from ir_compiler.errors import LoadError

ORD = "__fb_ord"


def read_staged(path: str) -> pa.Table:
    """A staged file: Arrow IPC (``.arrow``, what the engine writes) or Parquet."""
    if "://" in path:  # a run folder on object storage (Dataflow)
        from connectors.runfs import read_bytes
        data = pa.BufferReader(read_bytes(path))
        return pa.ipc.open_file(data).read_all() if path.endswith(".arrow") else pq.read_table(data)
    if path.endswith(".arrow"):
        with pa.memory_map(path) as source:
            return pa.ipc.open_file(source).read_all()
    return pq.read_table(path)


def staged_rows(req: LoadRequest) -> pa.Table:
    """All rows of the load in input order (by the hidden ordinal), internal columns kept."""
    tables = [read_staged(f) for f in req.files]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return req.schema.empty_table()
    if ORD in tables[0].column_names:  # staged files are runs of increasing ordinals: order the files first
        tables.sort(key=_first_ordinal)  # a right/full join's unmatched rows carry no ordinal: last
    table = pa.concat_tables(tables, promote_options="default")
    if ORD in table.column_names and not _increasing(table.column(ORD)):
        table = table.sort_by([(ORD, "ascending")])
    return table


def _first_ordinal(table: pa.Table) -> tuple[bool, int]:
    if ORD not in table.column_names:  # e.g. a shuffle join's bucket with rows of the right input only
        return True, 0
    first = table.column(ORD)[0].as_py()
    return first is None, first or 0


def _increasing(col) -> bool:
    import numpy as np

    values = col.to_numpy()
    return col.null_count == 0 and bool(np.all(values[1:] > values[:-1]))


def dedupe_last(table: pa.Table, keys: list[str]) -> tuple[pa.Table, int]:
    """One row per key; the last row in input order wins (documented upsert rule)."""
    if table.num_rows == 0:
        return table, 0
    idx = pa.array(range(table.num_rows), pa.int64())
    last = table.select(keys).append_column("__fb_i", idx).group_by(keys, use_threads=False) \
        .aggregate([("__fb_i", "max")]).column("__fb_i_max")
    out = table.take(pc.take(last, pc.sort_indices(last)))
    return out, table.num_rows - out.num_rows


def check_keys(table: pa.Table, keys: list[str], name: str) -> None:
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise LoadError(f"upsert key(s) {missing} are not columns of the rows loaded into {name}")
    for k in keys:
        nulls = table.column(k).null_count
        if nulls:
            raise LoadError(f"upsert key '{k}' is null in {nulls} row(s); keys must be set (filter or validate "
                            f"them with not_null first); nothing was written to {name}")


def with_lineage(table: pa.Table, lineage: dict | None) -> pa.Table:
    """Drop internal columns and add ``_flow_lineage`` = {runId, pipelineId, sourceNodeId, writeOrder}."""
    table = table.select([c for c in table.column_names if not c.startswith("__fb_")])
    if lineage is None:
        return table
    head = json.dumps({k: lineage[k] for k in ("runId", "pipelineId", "sourceNodeId")})[:-1] + ', "writeOrder": '
    order = pa.array(range(1, table.num_rows + 1), pa.int64()).cast(pa.string())
    col = pc.binary_join_element_wise(pa.scalar(head), order, pa.scalar("}"), "")
    if LINEAGE in table.column_names:
        table = table.drop_columns([LINEAGE])
    return table.append_column(LINEAGE, col)
