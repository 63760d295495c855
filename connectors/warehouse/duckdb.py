"""The embedded DuckDB warehouse (default): one file, no set-up, every load one transaction."""
from __future__ import annotations

import os
import threading

import duckdb
import pyarrow as pa

from connectors.warehouse.base import (LINEAGE, WATERMARKS, LoadReport, LoadRequest, Warehouse,
                                       check_read_only_query, split_name)
from connectors.warehouse.loading import check_keys, dedupe_last, staged_rows, with_lineage
from ir_compiler.errors import ConnectorError, LoadError
from ir_compiler.types import Schema

_LOCK = threading.Lock()  # one writer at a time inside a process


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, url: str):
        super().__init__(url)
        # duckdb:///abs/path.duckdb → /abs/path.duckdb ; duckdb://rel.duckdb → rel.duckdb (relative)
        self.path = url.split("://", 1)[1] or "flow_warehouse.duckdb"
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ConnectorError(f"warehouse folder {folder} does not exist; create it or pick another "
                                 f"--warehouse path")

    def _connect(self):
        try:
            return duckdb.connect(self.path)
        except duckdb.Error as exc:
            raise ConnectorError(f"cannot open the DuckDB warehouse {self.path}: {exc}") from None

    def sql_type(self, t):
        return "VARCHAR" if t.name == "string" else "DOUBLE" if t.name == "float" else super().sql_type(t)

    # ---- reads ------------------------------------------------------------------------------------
    def table_schema(self, name: str) -> Schema | None:
        with _LOCK:
            con = self._connect()
            try:
                return self._schema(con, name)
            finally:
                con.close()

    def _schema(self, con, name: str) -> Schema | None:
        schema, table = split_name(name)
        found = con.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                            [schema or "main", table]).fetchone()
        if not found:
            return None
        return Schema.from_arrow(_arrow(con.execute(f"SELECT * FROM {self.qualified(name)} LIMIT 0")).schema)

    def read(self, name: str | None = None, query: str | None = None) -> pa.Table:
        sql = f"SELECT * FROM {self.qualified(name)}" if query is None else query
        if query is not None:
            check_read_only_query(query, self.dialect)
        with _LOCK:
            con = self._connect()
            try:
                return _arrow(con.execute(sql))
            except duckdb.Error as exc:
                raise ConnectorError(f"cannot read {name or 'query'} from the warehouse: {exc}") from None
            finally:
                con.close()

    # ---- writes -----------------------------------------------------------------------------------
    def append_rows(self, name: str, table: pa.Table) -> int:
        with _LOCK:
            con = self._connect()
            try:
                con.execute("BEGIN")
                self._ensure(con, name, table.schema)
                self._insert(con, name, table)
                con.execute("COMMIT")
                return table.num_rows
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise LoadError(f"cannot write to {name}: {exc}") from None
            finally:
                con.close()

    def load(self, req: LoadRequest) -> LoadReport:
        rows = staged_rows(req)
        with _LOCK:
            con = self._connect()
            try:
                con.execute("BEGIN")
                if req.pre_sql:
                    con.execute(req.pre_sql)
                report = _MODES[req.mode](self, con, req, rows)
                if req.post_sql:
                    con.execute(req.post_sql)
                con.execute("COMMIT")
                return report
            except (LoadError, duckdb.Error) as exc:
                con.execute("ROLLBACK")
                if isinstance(exc, LoadError):
                    raise
                raise LoadError(f"load into {req.table} failed and was rolled back (the table is unchanged): "
                                f"{str(exc).splitlines()[0]}") from None
            finally:
                con.close()

    def _ensure(self, con, name: str, schema: pa.Schema) -> bool:
        """Create the schema/table if missing; check compatibility if present. True if it existed."""
        db_schema, _ = split_name(name)
        if db_schema:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.ident(db_schema)}")
        existing = self._schema(con, name)
        if existing is None:
            con.execute(self.create_table_sql(name, schema))
            return False
        self.check_compatible(name, schema, existing)
        return True

    def _insert(self, con, name: str, table: pa.Table, target: str | None = None) -> None:
        cols = ", ".join(self.ident(c) for c in table.column_names)
        con.register("__fb_rows", table)
        try:
            con.execute(f"INSERT INTO {self.qualified(target or name)} ({cols}) SELECT {cols} FROM __fb_rows")
        finally:
            con.unregister("__fb_rows")

    def _append(self, con, req, rows):
        table = with_lineage(rows, req.lineage)
        self._ensure(con, req.table, table.schema)
        self._insert(con, req.table, table)
        return LoadReport(table.num_rows)

    def _truncate(self, con, req, rows):
        _guard_empty(req, rows)
        table = with_lineage(rows, req.lineage)
        if self._ensure(con, req.table, table.schema):
            con.execute(f"DELETE FROM {self.qualified(req.table)}")
        self._insert(con, req.table, table)
        return LoadReport(table.num_rows)

    def _upsert(self, con, req, rows):
        check_keys(rows, req.keys, req.table)
        rows, dupes = dedupe_last(rows, req.keys)
        table = with_lineage(rows, req.lineage)
        if set(req.keys) >= {c for c in table.column_names if c != LINEAGE}:
            raise LoadError(f"every column of {req.table} is an upsert key; upsert would never update, use append")
        if self._ensure(con, req.table, table.schema):
            keys = ", ".join(self.ident(k) for k in req.keys)
            con.register("__fb_keys", table.select(req.keys))
            con.execute(f"DELETE FROM {self.qualified(req.table)} WHERE ({keys}) IN (SELECT {keys} FROM __fb_keys)")
            con.unregister("__fb_keys")
        self._insert(con, req.table, table)
        warnings = [f"{dupes} row(s) shared an upsert key within this load; the last in input order won"] \
            if dupes else []
        return LoadReport(table.num_rows, warnings=warnings)

    def _blue_green(self, con, req, rows):
        _guard_empty(req, rows)
        table = with_lineage(rows, req.lineage)
        new, old = f"{req.table}_new", f"{req.table}_old"
        schema, base = split_name(req.table)
        if schema:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.ident(schema)}")
        con.execute(f"DROP TABLE IF EXISTS {self.qualified(new)}")
        con.execute(self.create_table_sql(new, table.schema))
        self._insert(con, new, table)
        if self._schema(con, req.table) is not None:
            con.execute(f"DROP TABLE IF EXISTS {self.qualified(old)}")
            con.execute(f"ALTER TABLE {self.qualified(req.table)} RENAME TO {self.ident(base + '_old')}")
            con.execute(f"DROP TABLE {self.qualified(old)}")
        con.execute(f"ALTER TABLE {self.qualified(new)} RENAME TO {self.ident(base)}")
        return LoadReport(table.num_rows)

    def _incremental(self, con, req, rows):
        col = req.watermark
        con.execute(f"CREATE TABLE IF NOT EXISTS {self.ident(WATERMARKS)} (pipeline_id VARCHAR, node_id VARCHAR, "
                    f"table_name VARCHAR, column_name VARCHAR, hwm VARCHAR, updated_at TIMESTAMP)")
        hwm_row = con.execute(f"SELECT hwm FROM {self.ident(WATERMARKS)} WHERE pipeline_id = ? AND node_id = ? "
                              f"AND table_name = ?", [req.pipeline_id, req.node_id, req.table]).fetchone()
        table = rows
        if hwm_row is not None and hwm_row[0] is not None and rows.num_rows:
            con.register("__fb_all", rows)
            wm_type = con.execute(f"SELECT typeof({self.ident(col)}) FROM __fb_all LIMIT 1").fetchone()[0]
            table = _arrow(con.execute(f"SELECT * FROM __fb_all WHERE {self.ident(col)} > CAST(? AS {wm_type})",
                                       [hwm_row[0]]))
            con.unregister("__fb_all")
        skipped = rows.num_rows - table.num_rows
        out = with_lineage(table, req.lineage)
        self._ensure(con, req.table, out.schema)
        self._insert(con, req.table, out)
        if out.num_rows:
            con.register("__fb_new", out)
            new_hwm = con.execute(f"SELECT CAST(max({self.ident(col)}) AS VARCHAR) FROM __fb_new").fetchone()[0]
            con.unregister("__fb_new")
            con.execute(f"DELETE FROM {self.ident(WATERMARKS)} WHERE pipeline_id = ? AND node_id = ? AND "
                        f"table_name = ?", [req.pipeline_id, req.node_id, req.table])
            con.execute(f"INSERT INTO {self.ident(WATERMARKS)} VALUES (?, ?, ?, ?, ?, now())",
                        [req.pipeline_id, req.node_id, req.table, col, new_hwm])
        return LoadReport(out.num_rows, rows_skipped=skipped)


def _guard_empty(req: LoadRequest, rows: pa.Table) -> None:
    if rows.num_rows == 0:
        raise LoadError(f"{req.mode} into {req.table} aborted: upstream produced 0 rows, and {req.mode} would "
                        f"empty the table; the table was left as it was")


def _arrow(result) -> pa.Table:
    out = result.fetch_arrow_table() if hasattr(result, "fetch_arrow_table") else result.arrow()
    return out.read_all() if hasattr(out, "read_all") else out


_MODES = {"append": DuckDBWarehouse._append, "truncate": DuckDBWarehouse._truncate,
          "upsert": DuckDBWarehouse._upsert, "blue_green": DuckDBWarehouse._blue_green,
          "incremental_watermark": DuckDBWarehouse._incremental}
