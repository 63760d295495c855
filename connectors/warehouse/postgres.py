"""The PostgreSQL warehouse (psycopg 3): rows are staged with COPY into a temporary table, then the load mode
runs as SQL inside one transaction."""
from __future__ import annotations

import io
import json
from contextlib import contextmanager
from decimal import Decimal

import pyarrow as pa

from connectors.warehouse.base import LINEAGE, Warehouse, split_name
from ir_compiler.errors import ConnectorError, MissingDependencyError
from ir_compiler.types import BOOL, DATE, FLOAT, INT, JSON, STRING, TIMESTAMP, Field, Schema, array_of, decimal

try:
    import psycopg
except ImportError:  # pragma: no cover - reported when the warehouse is opened
    psycopg = None

_PG_TYPES = {"text": STRING, "character varying": STRING, "character": STRING, "bigint": INT, "integer": INT,
             "smallint": INT, "double precision": FLOAT, "real": FLOAT, "boolean": BOOL, "date": DATE,
             "timestamp without time zone": TIMESTAMP, "timestamp with time zone": TIMESTAMP, "json": JSON,
             "jsonb": JSON}


_CAN_READ_ALL = ("SELECT CASE WHEN to_regrole('pg_read_all_data') IS NULL THEN false "
                 "ELSE pg_has_role(current_user, to_regrole('pg_read_all_data')::oid, 'MEMBER') END")
_OID_TYPES = {"text": STRING, "varchar": STRING, "bpchar": STRING, "name": STRING, "int2": INT, "int4": INT,
              "int8": INT, "float4": FLOAT, "float8": FLOAT, "bool": BOOL, "date": DATE, "timestamp": TIMESTAMP,
              "timestamptz": TIMESTAMP, "json": JSON, "jsonb": JSON}


class PostgresWarehouse(Warehouse):
    dialect = "postgres"
    ph = "%s"

    def __init__(self, url: str):
        if psycopg is None:
            raise MissingDependencyError("the PostgreSQL warehouse needs psycopg: pip install 'flow-beam[postgres]'")
        super().__init__(url.replace("postgres://", "postgresql://", 1))
        self.db_errors = (psycopg.Error,)

    def sql_type(self, t):
        return "JSONB" if t.name == "json" else super().sql_type(t)

    def _col_type(self, f: pa.Field) -> str:
        return "JSONB" if f.name == LINEAGE else super()._col_type(f)

    @contextmanager
    def session(self):
        try:
            con = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as exc:
            from connectors.warehouse import redact_url
            raise ConnectorError(f"cannot connect to the PostgreSQL warehouse {redact_url(self.url)}: "
                                 f"{str(exc).strip().splitlines()[0]}") from None
        try:
            yield con
        finally:
            con.close()

    def begin(self, con):
        pass  # psycopg opens a transaction with the first statement

    def commit(self, con):
        con.commit()

    def rollback(self, con):
        con.rollback()

    def execute(self, con, sql: str, params=None):
        return con.execute(sql, params)

    def stage(self, con, name: str, table: pa.Table) -> None:
        """COPY the rows into a temporary table."""
        from connectors.warehouse.pgcopy import DDL_TYPES

        types = [self._col_type(f) for f in table.schema]
        cols = ", ".join(f"{self.ident(f.name)} {t}" for f, t in zip(table.schema, types))
        con.execute(f"CREATE TEMP TABLE {self.ident(name)} ({cols}) ON COMMIT DROP")
        self._copy(con, self.ident(name), table, [DDL_TYPES.get(t) for t in types])
        if table.num_rows > 1000:  # autovacuum never analyzes temp tables: without statistics the planner guesses,
            con.execute(f"ANALYZE {self.ident(name)}")  # e.g. a nested loop for an upsert's DELETE ... EXISTS

    def copy_into(self, con, name: str, table: pa.Table) -> None:
        """COPY the rows straight into a table, by column name (inside the load transaction)."""
        self._copy(con, self.qualified(name), table, self._column_types(con, name, table.column_names))

    def _column_types(self, con, name: str, columns: list[str]) -> list[str | None]:
        schema, table = split_name(name)
        rows = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema = %s AND table_name = %s", [schema or "public", table]).fetchall()
        types = dict(rows)
        return [types.get(c) for c in columns]

    def _copy(self, con, target: str, table: pa.Table, pg_types: list[str | None] | None = None) -> None:
        """Binary COPY built from the Arrow buffers when every column pairs exactly with its PostgreSQL type
        (connectors.warehouse.pgcopy), else CSV COPY (pyarrow writes '' as "" and NULL as nothing, which is exactly
        how COPY reads them); streamed in batches of 100,000 rows either way, sent by a worker thread."""
        if table.num_rows == 0:
            return
        from connectors.warehouse import pgcopy

        names = ", ".join(self.ident(c) for c in table.column_names)
        if pg_types is not None and all(pgcopy.encode_column(pa.array([], f.type), t) is not None
                                        for f, t in zip(table.schema, pg_types)):
            cur = con.cursor()
            # the queued writer sends from its own thread: the next batch is encoded while the server reads this one
            with cur.copy(f"COPY {target} ({names}) FROM STDIN WITH (FORMAT binary)",
                          writer=_queued_writer(cur)) as copy:
                copy.write(pgcopy.HEADER)
                for batch in table.to_batches(max_chunksize=_COPY_BATCH_ROWS):
                    if batch.num_rows:
                        copy.write(memoryview(pgcopy.binary_rows(batch, pg_types)))
                copy.write(pgcopy.TRAILER)
            return
        import pyarrow.csv as pacsv

        cur = con.cursor()
        with cur.copy(f"COPY {target} ({names}) FROM STDIN WITH (FORMAT csv)", writer=_queued_writer(cur)) as copy:
            for batch in _csv_ready(table).to_batches(max_chunksize=_COPY_BATCH_ROWS):
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
                copy.write(buf.getbuffer())

    def unstage(self, con, name: str) -> None:
        con.execute(f"DROP TABLE IF EXISTS {self.ident(name)}")

    def schema_in(self, con, name: str) -> Schema | None:
        schema, table = split_name(name)
        rows = con.execute(
            "SELECT column_name, data_type, numeric_precision, numeric_scale, udt_name, is_nullable "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema or "public", table]).fetchall()
        if not rows:
            return None
        return Schema([Field(n, _pg_type(dt_, p, s, udt), nullable == "YES") for n, dt_, p, s, udt, nullable in rows])

    # ---- read-only surface (hooks, table queries, lookups) -------------------------------------------------
    @contextmanager
    def read_only_session(self):
        """A connection inside ``BEGIN READ ONLY``, with privileges dropped to ``pg_read_all_data`` when the
        warehouse user may take that role (then file, large-object and signalling functions are denied even
        to a superuser's URL); always rolled back."""
        with self.session() as con:
            con.read_only = True
            try:
                if con.execute(_CAN_READ_ALL).fetchone()[0]:
                    con.execute("SET LOCAL ROLE pg_read_all_data")
                yield con
            finally:
                con.rollback()

    def cancel(self, con) -> None:
        try:
            con.cancel()
        except Exception:  # noqa: BLE001 - the statement may have ended meanwhile
            pass

    def run_maintenance(self, sql: str) -> None:
        """ANALYZE / VACUUM / CHECKPOINT (built from quoted names by ir_compiler.hooks): autocommit, since VACUUM
        refuses a transaction block, with ``default_transaction_read_only`` on."""
        with self.session() as con:
            con.autocommit = True
            try:
                con.execute("SET default_transaction_read_only = on")
                con.execute(sql)
            except psycopg.Error as exc:
                raise ConnectorError(str(exc).strip().splitlines()[0]) from None

    def describe_in(self, con, sql: str) -> Schema:
        """Parse + describe a prepared statement (the protocol's Parse/Describe): nothing is executed."""
        pg = con.pgconn
        res = pg.prepare(b"", sql.encode())
        if res.status != 1:  # COMMAND_OK
            raise psycopg.ProgrammingError(res.error_message.decode(errors="replace").removeprefix("ERROR:  "))
        desc = pg.describe_prepared(b"")
        fields = []
        for i in range(desc.nfields):
            oid, mod = desc.ftype(i), desc.fmod(i)
            info = con.adapters.types.get(oid)
            name = info.name if info is not None else "text"
            if info is not None and info.array_oid == oid:
                fields.append(Field(desc.fname(i).decode(), array_of(_OID_TYPES.get(name, STRING))))
            elif name == "numeric":
                p, s = ((mod - 4) >> 16) & 0xFFFF if mod >= 4 else None, (mod - 4) & 0xFFFF if mod >= 4 else None
                fields.append(Field(desc.fname(i).decode(), _pg_type("numeric", p, s, None)))
            else:
                fields.append(Field(desc.fname(i).decode(), _OID_TYPES.get(name, STRING)))
        return Schema(fields)

    def fetch_arrow(self, con, sql: str) -> pa.Table:
        from psycopg.types.string import TextLoader

        cur = con.cursor()
        for name in _AS_PG_TEXT:  # values Arrow has no type for, and JSON: PostgreSQL's own text
            cur.adapters.register_loader(name, TextLoader)
        cur.execute(sql, prepare=True)  # the extended protocol: one statement, never a batch
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
        cols = list(zip(*rows)) if rows else [[] for _ in names]
        arrays = [_column(name, col) for name, col in zip(names, cols)]
        return pa.table(arrays, names=names) if names else pa.table({})


# read as PostgreSQL's text output: uuid and the like (no Arrow type), and json/jsonb (the exact JSON text, a
# JSON string value with its quotes — psycopg would give Python objects, a string value unquoted)
_AS_PG_TEXT = ("uuid", "interval", "json", "jsonb", "time", "timetz", "inet", "cidr", "macaddr", "money", "xml",
               "bytea")


def _column(name: str, col) -> pa.Array:
    """One fetched column as Arrow; a value Arrow cannot hold is an error naming the column and what to do."""
    values = [json.dumps(v) if isinstance(v, (dict, list)) and not _is_array_col(col) else v for v in col]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        special = [v for v in values if isinstance(v, Decimal) and not v.is_finite()]
        if special:
            raise ConnectorError(f"column {name!r} holds the numeric {special[0]}, which no decimal column can hold: "
                                 f"leave it out in the query (WHERE {name} <> '{special[0]}') or read the column as "
                                 f"float8 ({name}::float8)") from None
        raise ConnectorError(f"column {name!r}: {str(exc).splitlines()[0]}") from None


def _is_array_col(col) -> bool:
    return any(isinstance(v, list) for v in col) and not any(isinstance(v, dict) for v in col)


def _pg_type(data_type, precision, scale, udt):
    if data_type == "numeric":
        return decimal(precision or 38, scale or 0)
    if data_type == "ARRAY":
        return array_of(_OID_TYPES.get(udt.lstrip("_"), STRING) if udt else STRING)  # udt: _int8, _text…
    return _PG_TYPES.get(data_type, STRING)


def _pg_array_literal(values) -> str | None:
    if values is None:
        return None
    items = ["NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(items) + "}"


def _csv_ready(table: pa.Table) -> pa.Table:
    """Arrow → CSV-writable columns: lists become PostgreSQL array literals."""
    for i, f in enumerate(table.schema):
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            col = pa.array([_pg_array_literal(v) for v in table.column(i).to_pylist()], pa.string())
            table = table.set_column(i, f.name, col)
    return table


_COPY_BATCH_ROWS = 100_000


def _queued_writer(cursor):
    """psycopg's QueuedLibpqWriter (a worker thread sends the COPY data, so encoding the next batch overlaps the
    server reading this one; errors still surface when the COPY ends), or None (the default writer) when this
    psycopg has none."""
    try:
        from psycopg.copy import QueuedLibpqWriter
    except ImportError:  # pragma: no cover - psycopg < 3.1
        return None
    return QueuedLibpqWriter(cursor)
