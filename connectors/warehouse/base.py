"""What every warehouse does: create tables from schemas, load staged Parquet files by load mode in one
transaction, record quarantine/DLQ rows, read tables. Dialect specifics live in subclasses."""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from ir_compiler.errors import ConnectorError, LoadError
from ir_compiler.types import JSON, ColumnType, Schema, common_type, from_arrow

LINEAGE = "_flow_lineage"
WATERMARKS = "_flow_watermarks"


JSON_META = {b"flow_beam.type": b"json"}  # a text column declared `json`: created as JSON / JSONB


def is_json_field(f: pa.Field) -> bool:
    return bool(f.metadata) and f.metadata.get(b"flow_beam.type") == b"json"


def mark_json(table: pa.Table, names) -> pa.Table:
    """``table`` with its columns ``names`` (text declared `json` in the pipeline) marked, so that a table
    created for them gets the warehouse's JSON type (PostgreSQL JSONB) instead of text."""
    names = set(names or ())
    if not names.intersection(table.column_names):
        return table
    fields = [f.with_metadata(JSON_META) if f.name in names and pa.types.is_string(f.type) else f
              for f in table.schema]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def narrowing(rows, table) -> str | None:
    """Why storing a value of type ``rows`` in a column of type ``table`` would silently change it (the database
    converts on insert: a timestamp into a date loses its time, 1.2345 into decimal(5,2) becomes 1.23, 1.5 into a
    DuckDB BIGINT becomes 2), or None when every value is kept (a value that does not fit raises instead)."""
    if rows == table:
        return None
    if rows.name == "timestamp" and table.name == "date":
        return "the time of day would be dropped"
    if rows.name == "float" and table.name in ("int", "decimal"):
        return "fractions would be rounded"
    if rows.name == "decimal" and table.name == "int" and (rows.scale or 0) > 0:
        return "fractions would be rounded"
    if rows.name == "decimal" and table.name == "decimal" and (rows.scale or 0) > (table.scale or 0):
        return f"digits after the {table.scale}th decimal place would be rounded"
    if rows.name == "decimal" and table.name == "float" and (rows.precision or 0) > 15:
        return "a float keeps about 15 significant digits"
    return None


@dataclass
class LoadRequest:
    table: str  # "schema.table"
    mode: str  # append | truncate | upsert | blue_green | incremental_watermark
    files: list[str]  # staged parquet files (all rows of this load)
    schema: pa.Schema  # arrow schema of the staged rows (lineage column included when enabled)
    keys: list[str] = field(default_factory=list)
    watermark: str | None = None
    pipeline_id: str = ""
    node_id: str = ""
    lineage: dict | None = None  # {runId, pipelineId, sourceNodeId}
    pre_sql: str | None = None
    post_sql: str | None = None
    ledger: dict | None = None  # input files for ``_flow_files`` (exactly once per file, see ledger.py)
    json_columns: list[str] = field(default_factory=list)  # text columns declared `json` (JSON / JSONB tables)


@dataclass
class LoadReport:
    rows_loaded: int
    rows_skipped: int = 0  # not loaded by design: at or below the high-water mark, a repeated upsert key, …
    warnings: list[str] = field(default_factory=list)


def split_name(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None), table


class Warehouse:
    """Base class; subclasses set ``dialect`` and implement the connection-level methods."""

    dialect = "duckdb"

    def __init__(self, url: str):
        self.url = url

    # ---- SQL helpers (identifiers always quoted) ------------------------------------------------------
    def ident(self, name: str) -> str:
        """A quoted identifier: SQL's delimited identifier, ``"`` doubled inside, the same in PostgreSQL and DuckDB
        (what sqlglot generates for both; written out because sqlglot's first generation for a dialect costs
        ~25 ms of start-up)."""
        return '"' + name.replace('"', '""') + '"'

    def qualified(self, name: str) -> str:
        schema, table = split_name(name)
        return f"{self.ident(schema)}.{self.ident(table)}" if schema else self.ident(table)

    def sql_type(self, t: ColumnType) -> str:
        if t.name == "json":
            return "JSON"
        if t.name == "array":
            return f"{self.sql_type(t.item)}[]"
        return {"string": "TEXT", "int": "BIGINT", "float": "DOUBLE PRECISION", "bool": "BOOLEAN",
                "date": "DATE", "timestamp": "TIMESTAMP", "null": "TEXT"}.get(
            t.name, f"DECIMAL({t.precision},{t.scale})")

    def create_table_sql(self, name: str, schema: pa.Schema) -> str:
        cols = ", ".join(f"{self.ident(f.name)} {self._col_type(f)}" for f in schema)
        return f"CREATE TABLE {self.qualified(name)} ({cols})"

    def _col_type(self, f: pa.Field) -> str:
        if f.name == LINEAGE or is_json_field(f):
            return self.sql_type(JSON)
        return self.sql_type(from_arrow(f.type))

    def check_compatible(self, name: str, incoming: pa.Schema, existing: Schema) -> None:
        """Raise LoadError before anything is written if the rows do not fit the existing table."""
        problems = []
        for f in incoming:
            have = existing.get(f.name)
            if have is None:
                problems.append(f"column '{f.name}' is not in the table")
                continue
            want = from_arrow(f.type)
            if f.name != LINEAGE and have.type != want and common_type(have.type, want) is None \
                    and not (have.type.name in ("string", "json") and want.name in ("string", "json")):
                problems.append(f"column '{f.name}' is {want} but the table has {have.type}")
            elif f.name != LINEAGE and (why := narrowing(want, have.type)):
                problems.append(f"column '{f.name}' is {want} but the table has {have.type}: {why}")
        if problems:
            raise LoadError(f"table {name} does not match the rows: {'; '.join(problems)}. Alter the table, "
                            f"or cast/rename columns in the pipeline; nothing was written")

    # ---- operations, written once over the dialect primitives ------------------------------------------
    def load(self, req: LoadRequest) -> LoadReport:
        """Apply ``req.mode`` in one transaction; roll back on any error. ``pre_sql`` (a preHook) runs first in its
        own read-only transaction; ``post_sql`` is an allowlisted query run inside the load transaction."""
        from connectors.warehouse.loading import staged_rows
        from connectors.warehouse.modes import MODES

        rows = mark_json(staged_rows(req), req.json_columns)
        if req.pre_sql:  # its own read-only transaction before the load (a failure stops the load)
            self.run_hook(req.pre_sql, "preHook")
        with self.session() as con:
            self.begin(con)
            try:
                report = MODES[req.mode](self, con, req, rows)
                if req.post_sql:  # in-transaction check (allowlisted; its failure rolls the load back)
                    self.execute(con, check_read_only_query(req.post_sql, self.dialect))
                self.commit(con)
                return report
            except LoadError:
                self.rollback(con)
                raise
            except self.db_errors as exc:
                self.rollback(con)
                raise LoadError(f"load into {req.table} failed and was rolled back (the table is unchanged): "
                                f"{str(exc).strip().splitlines()[0]}") from None

    def append_rows(self, name: str, table: pa.Table) -> int:
        """Append rows (quarantine, DLQ, run history), creating the table if needed, in one transaction; known
        secret values in text columns are replaced by ``***`` first (ir_compiler.secrets)."""
        from connectors.warehouse.modes import ensure_table, insert_rows
        from ir_compiler.secrets import scrub_table

        table = scrub_table(table)  # known secret values never reach a stored row
        with self.session() as con:
            self.begin(con)
            try:
                ensure_table(self, con, name, table.schema)
                insert_rows(self, con, name, table)
                self.commit(con)
                return table.num_rows
            except (LoadError, *self.db_errors) as exc:
                self.rollback(con)
                raise LoadError(f"cannot write to {name}: {exc}") from None

    def read(self, name: str | None = None, query: str | None = None) -> pa.Table:
        """A whole table, or a table source query (allowlisted), read in a read-only transaction."""
        if query is None and name is not None:
            from ir_compiler.hooks import table_name_problem
            problem = table_name_problem(name)
            if problem:
                raise LoadError(f"table '{name}' cannot be read: {problem}")
        sql = f"SELECT * FROM {self.qualified(name)}" if query is None else check_read_only_query(query, self.dialect)
        return self.query_read_only(sql, name or "query")

    # ---- the read-only surface: hooks, table queries, lookup tables ------------------------------------
    def run_hook(self, statement: str, what: str = "hook") -> None:
        """A SQL hook: allowlisted (ir_compiler.hooks), then a query runs in a read-only transaction and a
        maintenance verb (ANALYZE / VACUUM / CHECKPOINT, re-built from quoted names) on its own."""
        from ir_compiler.hooks import SqlRejected, check_sql

        try:
            safe = check_sql(statement, self.dialect)
        except SqlRejected as exc:
            raise LoadError(f"{what} was refused: {exc}") from None
        try:
            if safe.kind == "maintenance":
                self.run_maintenance(safe.sql)
            else:
                self.query_read_only(safe.sql, what)
        except ConnectorError as exc:
            raise LoadError(f"{what} failed: {exc.message}") from None

    def query_read_only(self, sql: str, what: str = "query") -> pa.Table:
        """Run ``sql`` inside a read-only transaction (layer 1: this alone blocks writes even when the allowlist
        was bypassed) and return its rows; cancelled after ``$FLOW_BEAM_SQL_TIMEOUT_S`` seconds (default 600,
        0 = never), so a runaway query (a recursive CTE without an end) cannot hang the run or the database."""
        import threading
        limit = sql_timeout_s()
        with self.read_only_session() as con:
            timer = threading.Timer(limit, self.cancel, (con,)) if limit else None
            if timer is not None:
                timer.daemon = True
                timer.start()
            try:
                return self.fetch_arrow(con, sql)
            except self.db_errors as exc:
                if timer is not None and timer.finished.is_set():
                    raise ConnectorError(f"{what} was cancelled after {limit:g} s (FLOW_BEAM_SQL_TIMEOUT_S): make "
                                         f"it cheaper, or raise the limit") from None
                raise ConnectorError(f"cannot read {what} from the warehouse: "
                                     f"{str(exc).strip().splitlines()[0]}") from None
            finally:
                if timer is not None:
                    timer.cancel()

    def cancel(self, con) -> None:
        """Cancel the statement running on ``con`` (from another thread)."""

    def describe_query(self, query: str) -> Schema:
        """The columns a table source query would return, learned WITHOUT running it (validation)."""
        sql = check_read_only_query(query, self.dialect)
        with self.read_only_session() as con:
            try:
                return self.describe_in(con, sql)
            except self.db_errors as exc:
                raise ConnectorError(f"cannot describe the query: {str(exc).strip().splitlines()[0]}") from None

    def read_only_session(self):  # context manager yielding a connection inside a read-only transaction
        raise NotImplementedError

    def run_maintenance(self, sql: str) -> None:  # ANALYZE / VACUUM / CHECKPOINT built by ir_compiler.hooks
        raise NotImplementedError

    def describe_in(self, con, sql: str) -> Schema:
        raise NotImplementedError

    def table_schema(self, name: str) -> Schema | None:
        with self.session() as con:
            return self.schema_in(con, name)

    def close(self) -> None:
        pass

    # ---- dialect primitives (subclasses) -------------------------------------------------------------
    ph = "?"  # query parameter placeholder
    db_errors: tuple = ()

    def session(self):  # context manager yielding a connection
        raise NotImplementedError

    def begin(self, con):
        raise NotImplementedError

    def commit(self, con):
        raise NotImplementedError

    def rollback(self, con):
        raise NotImplementedError

    def execute(self, con, sql: str, params=None):
        raise NotImplementedError

    def stage(self, con, name: str, table: pa.Table) -> None:
        raise NotImplementedError

    def unstage(self, con, name: str) -> None:
        raise NotImplementedError

    def schema_in(self, con, name: str) -> Schema | None:
        raise NotImplementedError

    def fetch_arrow(self, con, sql: str) -> pa.Table:
        raise NotImplementedError


def sql_timeout_s() -> float:
    """Seconds a hook, table source query or lookup read may run (``$FLOW_BEAM_SQL_TIMEOUT_S``; 0 = no limit)."""
    import os
    try:
        return max(0.0, float(os.environ.get("FLOW_BEAM_SQL_TIMEOUT_S", "600")))
    except ValueError:
        return 600.0


def check_read_only_query(query: str, dialect: str) -> str:
    """A table source ``query`` must be one allowlisted read-only SELECT; returns the SQL to run (re-generated
    from the checked tree)."""
    from ir_compiler.hooks import SqlRejected, check_sql

    try:
        return check_sql(query, dialect, maintenance=False, query_only=True).sql
    except SqlRejected as exc:
        raise LoadError(f"a table source query must be one read-only SELECT: {exc}") from None
