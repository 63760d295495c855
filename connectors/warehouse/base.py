"""What every warehouse does: create tables from schemas, load staged Parquet files by load mode in one
transaction, record quarantine/DLQ rows, read tables. Dialect specifics live in subclasses."""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import sqlglot
from sqlglot import exp

from ir_compiler.errors import LoadError
from ir_compiler.types import ColumnType, Schema, common_type, from_arrow

LINEAGE = "_flow_lineage"
WATERMARKS = "_flow_watermarks"


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


@dataclass
class LoadReport:
    rows_loaded: int
    rows_skipped: int = 0  # incremental_watermark: rows at or below the high-water mark
    warnings: list[str] = field(default_factory=list)


def split_name(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None), table


class Warehouse:
    """Base class; subclasses set ``dialect`` and implement the connection-level methods."""

    dialect = "duckdb"

    def __init__(self, url: str):
        self.url = url

    # ---- SQL helpers (identifiers always quoted through sqlglot) -----------------------------------
    def ident(self, name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(self.dialect)

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
        return "JSON" if f.name == LINEAGE else self.sql_type(from_arrow(f.type))

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
        if problems:
            raise LoadError(f"table {name} does not match the rows: {'; '.join(problems)}. Alter the table, "
                            f"or cast/rename columns in the pipeline; nothing was written")

    # ---- to implement ------------------------------------------------------------------------------
    def load(self, req: LoadRequest) -> LoadReport:
        raise NotImplementedError

    def append_rows(self, name: str, table: pa.Table) -> int:
        raise NotImplementedError

    def read(self, name: str | None = None, query: str | None = None) -> pa.Table:
        raise NotImplementedError

    def table_schema(self, name: str) -> Schema | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def check_read_only_query(query: str, dialect: str) -> None:
    """A table source's ``query`` must be a single SELECT."""
    try:
        trees = sqlglot.parse(query, dialect=dialect)
    except sqlglot.errors.ParseError as exc:
        raise LoadError(f"cannot parse the query: {exc}") from None
    if len(trees) != 1 or not isinstance(trees[0], (exp.Select, exp.Union, exp.Subquery)):
        raise LoadError("a table source query must be one SELECT statement")
