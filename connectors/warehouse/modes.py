"""The load modes, written once over a few dialect primitives (stage rows, schema lookup, execute).

Each mode runs inside the caller's transaction; the caller commits or rolls back.
"""
from __future__ import annotations

import pyarrow as pa

from connectors.warehouse.base import LINEAGE, WATERMARKS, LoadReport, LoadRequest, split_name
from connectors.warehouse.loading import check_keys, dedupe_last, with_lineage
from ir_compiler.errors import LoadError

STAGE = "__fb_stage"


def _guard_empty(req: LoadRequest, rows: pa.Table) -> None:
    if rows.num_rows == 0:
        raise LoadError(f"{req.mode} into {req.table} aborted: upstream produced 0 rows, and {req.mode} would "
                        f"empty the table; the table was left as it was")


def ensure_table(wh, con, name: str, schema: pa.Schema) -> bool:
    """Create the schema/table if missing, else check the rows fit. True if the table existed."""
    from connectors.warehouse.ledger import create_if_missing, lock_table

    lock_table(wh, con, name)  # writers of one table take turns (PostgreSQL), also quarantine/DLQ/history
    db_schema, _ = split_name(name)
    if db_schema:
        create_if_missing(wh, con, db_schema, f"CREATE SCHEMA IF NOT EXISTS {wh.ident(db_schema)}", schema=db_schema)
    existing = wh.schema_in(con, name)
    if existing is None:
        wh.execute(con, wh.create_table_sql(name, schema))
        return False
    wh.check_compatible(name, schema, existing)
    return True


def insert_rows(wh, con, name: str, table: pa.Table) -> None:
    """Insert ``table`` into ``name`` by column name (PostgreSQL: COPY straight into the table)."""
    if hasattr(wh, "copy_into"):
        wh.copy_into(con, name, table)
        return
    wh.stage(con, STAGE, table)
    try:
        cols = ", ".join(wh.ident(c) for c in table.column_names)
        wh.execute(con, f"INSERT INTO {wh.qualified(name)} ({cols}) SELECT {cols} FROM {STAGE}")
    finally:
        wh.unstage(con, STAGE)


def delete_keys(wh, con, name: str, keys: pa.Table) -> None:
    """Delete the rows of ``name`` whose key columns match a row of ``keys``."""
    wh.stage(con, STAGE, keys)
    try:
        match = " AND ".join(f"t.{wh.ident(k)} = s.{wh.ident(k)}" for k in keys.column_names)
        wh.execute(con, f"DELETE FROM {wh.qualified(name)} AS t WHERE EXISTS "
                        f"(SELECT 1 FROM {STAGE} AS s WHERE {match})")
    finally:
        wh.unstage(con, STAGE)


def append(wh, con, req, rows):
    table = with_lineage(rows, req.lineage)
    ensure_table(wh, con, req.table, table.schema)
    insert_rows(wh, con, req.table, table)
    return LoadReport(table.num_rows)


def truncate(wh, con, req, rows):
    _guard_empty(req, rows)
    table = with_lineage(rows, req.lineage)
    if ensure_table(wh, con, req.table, table.schema):
        wh.execute(con, f"DELETE FROM {wh.qualified(req.table)}")
    insert_rows(wh, con, req.table, table)
    return LoadReport(table.num_rows)


def upsert(wh, con, req, rows):
    check_keys(rows, req.keys, req.table)
    rows, dupes = dedupe_last(rows, req.keys)
    table = with_lineage(rows, req.lineage)
    if set(req.keys) >= {c for c in table.column_names if c != LINEAGE}:
        raise LoadError(f"every column of {req.table} is an upsert key; upsert would never update, use append")
    if ensure_table(wh, con, req.table, table.schema):
        delete_keys(wh, con, req.table, table.select(req.keys))
    insert_rows(wh, con, req.table, table)
    warnings = [f"{dupes} row(s) shared an upsert key within this load; the last in input order won"] \
        if dupes else []
    return LoadReport(table.num_rows, rows_skipped=dupes, warnings=warnings)


def blue_green(wh, con, req, rows):
    _guard_empty(req, rows)
    table = with_lineage(rows, req.lineage)
    new, old = f"{req.table}_new", f"{req.table}_old"
    schema, base = split_name(req.table)
    if schema:
        from connectors.warehouse.ledger import create_if_missing
        create_if_missing(wh, con, schema, f"CREATE SCHEMA IF NOT EXISTS {wh.ident(schema)}", schema=schema)
    taken = [t for t in (new, old) if wh.schema_in(con, t) is not None]
    if taken:  # never ours: the swap is one transaction, so a crash leaves neither name behind
        raise LoadError(f"blue_green swaps {req.table} through {new} and {old}, but {' and '.join(taken)} already "
                        f"exist{'s' if len(taken) == 1 else ''} (not made by flow-beam: the swap is one transaction "
                        f"and leaves neither behind); rename or drop {'it' if len(taken) == 1 else 'them'} — nothing "
                        f"was written, nothing was dropped")
    wh.execute(con, wh.create_table_sql(new, table.schema))
    insert_rows(wh, con, new, table)
    if wh.schema_in(con, req.table) is not None:
        wh.execute(con, f"ALTER TABLE {wh.qualified(req.table)} RENAME TO {wh.ident(base + '_old')}")
        wh.execute(con, f"DROP TABLE {wh.qualified(old)}")
    wh.execute(con, f"ALTER TABLE {wh.qualified(new)} RENAME TO {wh.ident(base)}")
    return LoadReport(table.num_rows)


def _above(rows: pa.Table, col: str, hwm: str) -> pa.Table:
    """Rows whose ``col`` is above the persisted high-water mark (kept as text, parsed as the column type)."""
    import pyarrow.compute as pc

    from ir_compiler.ops.cast import cast_array
    from ir_compiler.types import from_arrow

    bound, failed = cast_array(pa.array([hwm]), from_arrow(rows.schema.field(col).type), None)
    if failed is not None and failed[0].as_py():
        raise LoadError(f"the stored high-water mark {hwm!r} does not fit column '{col}'")
    mask = pc.greater(rows.column(col), bound[0].cast(rows.schema.field(col).type))
    return rows.filter(pc.fill_null(mask, False))


def incremental_watermark(wh, con, req, rows):
    col = req.watermark
    if col not in rows.column_names:
        raise LoadError(f"watermark column '{col}' is not in the rows loaded into {req.table}")
    from connectors.warehouse.ledger import create_if_missing
    create_if_missing(wh, con, WATERMARKS, f"CREATE TABLE IF NOT EXISTS {wh.ident(WATERMARKS)} (pipeline_id TEXT, "
                      f"node_id TEXT, table_name TEXT, column_name TEXT, hwm TEXT, updated_at TIMESTAMP)")
    key = [req.pipeline_id, req.node_id, req.table]
    where = f"pipeline_id = {wh.ph} AND node_id = {wh.ph} AND table_name = {wh.ph}"
    row = wh.execute(con, f"SELECT hwm, column_name FROM {wh.ident(WATERMARKS)} WHERE {where}", key).fetchone()
    if row is not None and row[1] is not None and row[1] != col:
        raise LoadError(f"the high-water mark of {req.table} ({row[0]!r}) was kept for column '{row[1]}', but the "
                        f"target's watermarkColumn is now '{col}': comparing one column's values with the other's "
                        f"mark would skip or repeat rows. Set watermarkColumn back, or delete the row of pipeline "
                        f"'{req.pipeline_id}', node '{req.node_id}' from {WATERMARKS} to load '{col}' from the "
                        f"start; nothing was written")
    import pyarrow.compute as pc
    nulls = rows.column(col).null_count  # a row without a mark cannot be placed: never loaded (every run alike)
    known = rows.filter(pc.is_valid(rows.column(col))) if nulls else rows
    table = _above(known, col, row[0]) if row is not None and row[0] is not None and known.num_rows else known
    out = with_lineage(table, req.lineage)
    ensure_table(wh, con, req.table, out.schema)
    insert_rows(wh, con, req.table, out)
    if out.num_rows:
        new_hwm = pc.max(table.column(col)).cast(pa.string()).as_py()
        wh.execute(con, f"DELETE FROM {wh.ident(WATERMARKS)} WHERE {where}", key)
        wh.execute(con, f"INSERT INTO {wh.ident(WATERMARKS)} VALUES ({', '.join([wh.ph] * 5)}, CURRENT_TIMESTAMP)",
                   key + [col, new_hwm])
    skipped = rows.num_rows - table.num_rows
    below = skipped - nulls
    notes = [f"{below} row(s) with {col} at or below the high-water mark {row[0]} were not loaded "
             f"(incremental_watermark)"] if below else []
    if nulls:
        notes.append(f"{nulls} row(s) with no {col} (NULL) were not loaded: incremental_watermark places each row "
                     f"by {col} (give it a value, e.g. with coalesce, to load them)")
    return LoadReport(out.num_rows, rows_skipped=skipped, warnings=notes)


def cdc_mirror(wh, con, req, rows):
    """Apply Debezium change events: touched keys are deleted, the surviving after-images inserted."""
    from connectors.warehouse.cdc import final_images, images_table

    applied = _cdc_positions(wh, con, req.table)
    touched, alive, positions, replayed = final_images(
        rows.select([c for c in rows.column_names if not c.startswith("__fb_")]), req.keys, applied)
    notes = []  # events at or before their key's applied position (replays, late older ones) are only skipped:
    # the mirror already holds a newer state of the key; rowsSkipped counts them with the folded ones
    table = with_lineage(images_table(alive), req.lineage) if alive else None
    if table is None:
        existing = wh.schema_in(con, req.table)
        if existing is None:
            _keep_cdc_positions(wh, con, req.table, applied, positions)
            return LoadReport(0, rows_skipped=rows.num_rows, warnings=notes + [
                "every change was a delete and the mirror table does not exist yet"])
    else:
        ensure_table(wh, con, req.table, table.schema)
    if touched:
        delete_keys(wh, con, req.table, pa.table({k: [t[i] for t in touched] for i, k in enumerate(req.keys)}))
    if table is not None:
        insert_rows(wh, con, req.table, table)
    _keep_cdc_positions(wh, con, req.table, applied, positions)
    return LoadReport(len(alive), rows_skipped=rows.num_rows - len(alive), warnings=notes)


CDC_POSITIONS = "_flow_cdc_positions"


def _cdc_positions(wh, con, table: str) -> dict:
    """key → [lsn, ts_ms] of the event that decided it, for a mirror table (JSON text; -1 where absent)."""
    import json
    if wh.schema_in(con, CDC_POSITIONS) is None:
        return {}
    got = wh.execute(con, f"SELECT key_json, position FROM {wh.ident(CDC_POSITIONS)} WHERE table_name = {wh.ph}",
                     [table]).fetchall()
    return {tuple(json.loads(k)): json.loads(p) for k, p in got}


def _keep_cdc_positions(wh, con, table: str, applied: dict, positions: dict) -> None:
    """The decided positions, in the load's transaction (rewritten per table: one bulk insert)."""
    import json
    if not positions:
        return
    merged = {**applied, **positions}
    rows = pa.table({"table_name": pa.array([table] * len(merged), pa.string()),
                     "key_json": pa.array([json.dumps(list(k), default=str) for k in merged], pa.string()),
                     "position": pa.array([json.dumps(list(p), default=str) for p in merged.values()], pa.string())})
    ensure_table(wh, con, CDC_POSITIONS, rows.schema)
    wh.execute(con, f"DELETE FROM {wh.ident(CDC_POSITIONS)} WHERE table_name = {wh.ph}", [table])
    insert_rows(wh, con, CDC_POSITIONS, rows)


def _exactly_once(mode_fn):
    """The mode behind the table's lock and the ``_flow_files`` ledger (see ``ledger.apply``)."""
    def run(wh, con, req, rows):
        from connectors.warehouse.ledger import apply
        return apply(wh, con, req, rows, mode_fn)
    run.__name__ = mode_fn.__name__
    return run


MODES = {name: _exactly_once(fn) for name, fn in {
    "cdc_mirror": cdc_mirror, "append": append, "truncate": truncate, "upsert": upsert, "blue_green": blue_green,
    "incremental_watermark": incremental_watermark}.items()}
