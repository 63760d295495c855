"""Lookup tables: the small side of a ``lookup_join`` op and of an enrich ``lookup`` provider (in-document rows, a
warehouse table, or local files), read whole on the driver and broadcast to every batch."""
from __future__ import annotations

import os

import pyarrow as pa

from ir_compiler.errors import ConnectorError
from ir_compiler.types import Schema


def read_lookup(op, warehouse_url: str | None) -> pa.Table:
    """The whole lookup table of a lookup_join op (small side, broadcast to every batch)."""
    lk = op.lookup
    if lk.rows is not None:
        return pa.Table.from_pylist(lk.rows)
    if lk.table is not None:
        from connectors.warehouse import open_warehouse
        return open_warehouse(warehouse_url).read(lk.table)
    if lk.connector == "local_fs":
        from connectors.local_fs.files import list_files
        from connectors.formats import read_file

        cfg = lk.config or {}
        path, fmt = cfg.get("path"), cfg.get("format", "csv")
        if not path:
            raise ConnectorError("a local_fs lookup needs config.path")
        files = [path] if os.path.isfile(path) else list_files(path, cfg.get("pattern"), "lexicographic")
        tables = [pa.Table.from_batches([c.batch]) for f in files for c in read_file(f, fmt, {})]
        if not tables:
            raise ConnectorError(f"lookup {path} has no rows")
        return pa.concat_tables(tables, promote_options="permissive")
    raise ConnectorError(f"lookup connector '{lk.connector}' is not available; use rows, table or local_fs")


def infer_lookup_schema(op, warehouse=None) -> Schema | None:
    lk = op.lookup
    if lk.table is not None and warehouse is None:
        return None
    try:
        url = warehouse.url if warehouse is not None else None
        return Schema.from_arrow(read_lookup(op, url).schema)
    except ConnectorError:
        return None


def read_enrich_lookup(provider: dict, warehouse_url: str | None) -> tuple[pa.Table, int]:
    """The lookup table of an enrich ``lookup`` provider, one row per key (the first wins), and how many rows
    repeated a key (the caller warns)."""
    if provider.get("rows") is not None:
        table = pa.Table.from_pylist(provider["rows"])
    elif provider.get("table"):
        from connectors.warehouse import open_warehouse
        table = open_warehouse(warehouse_url).read(provider["table"])
    else:
        from connectors.formats import read_file
        chunks = [pa.Table.from_batches([c.batch]) for c in read_file(provider["path"], provider.get("format", "csv"))]
        table = pa.concat_tables(chunks)
    on = provider["on"]
    keys = list(on.values()) if isinstance(on, dict) else [on] if isinstance(on, str) else list(on)
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise ConnectorError(f"the lookup has no key column(s) {missing}; it has {table.column_names}")
    first = first_per_key(table, keys)
    return first, table.num_rows - first.num_rows


def first_per_key(table: pa.Table, keys: list[str]) -> pa.Table:
    """One row per key, the first in the table's order (the lookups' rule; a caller warns about the rest). Float
    keys are grouped with -0.0 as 0.0 (one key, as in SQL); the rows keep their values."""
    from ir_compiler.types import normal_keys

    idx = normal_keys(table.select(keys), keys).append_column(
        "__fb_i", pa.array(range(table.num_rows), pa.int64())).group_by(keys, use_threads=False).aggregate([("__fb_i", "min")]).column("__fb_i_min")
    return table.take(idx)
