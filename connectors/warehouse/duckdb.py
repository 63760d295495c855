"""The embedded DuckDB warehouse (default): one file, no set-up, every load one transaction."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from connectors.warehouse.base import Warehouse, split_name
from ir_compiler.errors import ConnectorError
from ir_compiler.types import BOOL, DATE, FLOAT, INT, JSON, STRING, TIMESTAMP, Field, Schema, array_of, decimal

_LOCK = threading.Lock()  # one writer at a time inside a process


_RO_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
              "autoload_known_extensions": False, "lock_configuration": True}
_PINNED: dict = {}  # path -> an open connection (see DuckDBWarehouse.pin)


LOCK_WAIT_ENV = "FLOW_BEAM_DUCKDB_LOCK_TIMEOUT"  # seconds a run waits for a DuckDB file another process holds


def connect_waiting(path: str, timeout: float | None = None, sleep=None, **kwargs):
    """``duckdb.connect(path)``, waiting while another process holds the file (DuckDB allows one writing
    process per file): retried with backoff (0.05 s doubling to 2 s, plus jitter) for up to ``timeout`` seconds
    (default ``$FLOW_BEAM_DUCKDB_LOCK_TIMEOUT`` or 60), then a clear ConnectorError. Other errors fail at once."""
    import random
    import re
    import time

    sleep = sleep or time.sleep
    if timeout is None:
        try:
            timeout = float(os.environ.get(LOCK_WAIT_ENV) or 60)
        except ValueError:
            timeout = 60.0
    deadline, delay = time.monotonic() + timeout, 0.05
    while True:
        try:
            return duckdb.connect(path, **kwargs)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise
            if time.monotonic() >= deadline:
                pid = re.search(r"PID (\d+)", text)
                by = f" (pid {pid.group(1)})" if pid else ""
                raise ConnectorError(
                    f"the DuckDB file {path} is locked by another process{by} and stayed locked for {timeout:g} s; "
                    f"runs that share a DuckDB file serialize (set {LOCK_WAIT_ENV} to wait longer); for "
                    f"concurrent runs use PostgreSQL") from None
            sleep(min(delay, max(0.0, deadline - time.monotonic())) * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)


def unpin_all() -> None:
    with _LOCK:
        for con in _PINNED.values():
            con.close()
        _PINNED.clear()


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"
    ph = "?"
    db_errors = (duckdb.Error,)

    def __init__(self, url: str):
        super().__init__(url)
        # duckdb:///abs/path.duckdb → /abs/path.duckdb ; duckdb://rel.duckdb → rel.duckdb (relative)
        self.path = url.split("://", 1)[1] or "flow_warehouse.duckdb"
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ConnectorError(f"warehouse folder {folder} does not exist; create it or pick another "
                                 f"--warehouse path")

    def table_schema(self, name: str):
        if not os.path.exists(self.path):  # reading never creates the warehouse file
            return None
        return super().table_schema(name)

    def read(self, name=None, query=None):
        if not os.path.exists(self.path):
            raise ConnectorError(f"the DuckDB warehouse {self.path} does not exist yet (nothing was loaded into it)")
        return super().read(name, query)

    def sql_type(self, t):
        return "VARCHAR" if t.name == "string" else "DOUBLE" if t.name == "float" else super().sql_type(t)

    def pin(self) -> None:
        """Keep the database open in this process (streaming: one small transaction per pane would otherwise
        open and close — and checkpoint — the file every time); released by :func:`unpin_all`."""
        with _LOCK:
            if self.path not in _PINNED:
                try:
                    _PINNED[self.path] = connect_waiting(self.path)
                except duckdb.Error as exc:
                    raise ConnectorError(f"cannot open the DuckDB warehouse {self.path}: {exc}") from None

    @contextmanager
    def session(self):
        with _LOCK:
            try:
                pinned = _PINNED.get(self.path)
                con = pinned.cursor() if pinned is not None else connect_waiting(self.path)
            except duckdb.Error as exc:
                raise ConnectorError(f"cannot open the DuckDB warehouse {self.path}: {exc}") from None
            try:
                yield con
            finally:
                con.close()

    # ---- read-only surface (hooks, table queries, lookups) -------------------------------------------------
    @contextmanager
    def read_only_session(self):
        """A read-only connection with external access off and the configuration locked (no file, URL, COPY,
        ATTACH, INSTALL/LOAD, SET), inside ``BEGIN TRANSACTION READ ONLY``. When a streaming run keeps the file
        open in this process, a cursor of that connection in a read-only transaction (external access then
        stays as it is; the allowlist still applies). No file yet: an empty in-memory database."""
        with _LOCK:
            pinned = _PINNED.get(self.path)
            try:
                if pinned is not None:
                    con = pinned.cursor()
                elif os.path.exists(self.path):
                    con = connect_waiting(self.path, read_only=True, config=dict(_RO_CONFIG))
                else:
                    con = duckdb.connect(":memory:", config=dict(_RO_CONFIG))
            except duckdb.Error as exc:
                raise ConnectorError(f"cannot open the DuckDB warehouse {self.path} read-only: {exc}") from None
            try:
                con.execute("BEGIN TRANSACTION READ ONLY")
                yield con
            finally:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                con.close()

    def cancel(self, con) -> None:
        try:
            con.interrupt()
        except Exception:  # noqa: BLE001 - the statement may have ended meanwhile
            pass

    def run_maintenance(self, sql: str) -> None:
        """ANALYZE / VACUUM / CHECKPOINT, built from quoted names by ir_compiler.hooks (never user text)."""
        with self.session() as con:
            try:
                con.execute(sql)
            except duckdb.Error as exc:
                raise ConnectorError(str(exc).strip().splitlines()[0]) from None

    def describe_in(self, con, sql: str) -> Schema:
        """Bind the query (a lazy relation: its column types, nothing executed)."""
        rel = con.sql(sql)
        return Schema([Field(n, _duck_type(t)) for n, t in zip(rel.columns, rel.types)])

    def begin(self, con):
        con.execute("BEGIN")

    def commit(self, con):
        con.execute("COMMIT")

    def rollback(self, con):
        con.execute("ROLLBACK")

    def execute(self, con, sql: str, params=None):
        return con.execute(sql, params) if params is not None else con.execute(sql)

    def stage(self, con, name: str, table: pa.Table) -> None:
        con.register(name, table)

    def unstage(self, con, name: str) -> None:
        con.unregister(name)

    def schema_in(self, con, name: str) -> Schema | None:
        schema, table = split_name(name)
        found = con.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                            [schema or "main", table]).fetchone()
        if not found:
            return None
        return Schema.from_arrow(self.fetch_arrow(con, f"SELECT * FROM {self.qualified(name)} LIMIT 0").schema)

    def fetch_arrow(self, con, sql: str) -> pa.Table:
        result = con.execute(sql)
        out = result.fetch_arrow_table() if hasattr(result, "fetch_arrow_table") else result.arrow()
        return out.read_all() if hasattr(out, "read_all") else out


_DUCK_INTS = {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint", "uinteger", "ubigint",
              "uhugeint"}


def _duck_type(t):
    """A DuckDB column type (DuckDBPyType) → IR type; types without an IR counterpart read as strings."""
    kind, text = t.id, str(t).upper()
    if kind in _DUCK_INTS:
        return INT
    if kind in ("double", "float"):
        return FLOAT
    if kind == "decimal":
        c = dict(t.children)
        return decimal(c["precision"], c["scale"])
    if kind == "list":
        return array_of(_duck_type(dict(t.children)["child"]))
    if text == "JSON":
        return JSON
    if kind.startswith("timestamp"):
        return TIMESTAMP
    return {"boolean": BOOL, "date": DATE}.get(kind, STRING)
