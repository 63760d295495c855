"""Pipelines and every IR version, in the warehouse (DuckDB or PostgreSQL).

``_flow_pipelines (id, name, latest_version, created_at, updated_at)`` and
``_flow_pipeline_ir_versions (pipeline_id, version, ir, author, message, created_at)``. A new version is written
in one transaction guarded by a conditional update of ``latest_version``: of two writers that read the same
version, exactly one commits.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from connectors.warehouse import open_warehouse, warehouse_url

PIPELINES = "_flow_pipelines"
VERSIONS = "_flow_pipeline_ir_versions"


class Conflict(Exception):
    """The pipeline exists already (create) or moved past the expected version (update)."""


@dataclass
class Version:
    pipeline_id: str
    name: str
    version: int
    ir: dict
    author: str | None = None
    message: str | None = None
    created_at: str = ""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def iso(value) -> str:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    return str(value) if value is not None else ""


class PipelineStore:
    def __init__(self, url: str | None):
        self.url = warehouse_url(url)
        self.wh = open_warehouse(self.url)
        self.ensure_tables()

    # ---- SQL helpers ----------------------------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        """``{p}`` → the pipelines table, ``{v}`` → the versions table, ``?`` → the driver's placeholder."""
        return text.format(p=self.wh.ident(PIPELINES), v=self.wh.ident(VERSIONS)).replace("?", self.wh.ph)

    def _q(self, name: str) -> str:
        return self.wh.ident(name)

    def _rows(self, sql: str, params=()) -> list[tuple]:
        with self.wh.session() as con:
            try:
                return list(self.wh.execute(con, self._sql(sql), list(params)).fetchall())
            finally:
                if self.wh.dialect == "postgres":
                    con.rollback()

    def ensure_tables(self) -> None:
        q = self._q
        stmts = [
            f"CREATE TABLE IF NOT EXISTS {{p}} ({q('id')} TEXT PRIMARY KEY, {q('name')} TEXT NOT NULL, "
            f"{q('latest_version')} BIGINT NOT NULL, {q('created_at')} TIMESTAMP NOT NULL, "
            f"{q('updated_at')} TIMESTAMP NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {{v}} ({q('pipeline_id')} TEXT NOT NULL, {q('version')} BIGINT NOT NULL, "
            f"{q('ir')} JSON NOT NULL, {q('author')} TEXT, {q('message')} TEXT, {q('created_at')} TIMESTAMP NOT NULL, "
            f"PRIMARY KEY ({q('pipeline_id')}, {q('version')}))",
        ]
        with self.wh.session() as con:
            self.wh.begin(con)
            try:
                for sql in stmts:
                    self.wh.execute(con, self._sql(sql), [])
                self.wh.commit(con)
            except self.wh.db_errors as exc:
                self.wh.rollback(con)
                if "already exists" not in str(exc) and "duplicate key" not in str(exc):  # a racing creator
                    raise

    # ---- reads ----------------------------------------------------------------------------------------------
    def list(self) -> list[dict]:
        q = self._q
        rows = self._rows(f"SELECT {q('id')}, {q('name')}, {q('latest_version')}, {q('updated_at')} FROM {{p}} "
                          f"ORDER BY {q('id')}")
        return [{"id": r[0], "name": r[1], "version": int(r[2]), "updatedAt": iso(r[3])} for r in rows]

    def get(self, pipeline_id: str, version: int | None = None) -> Version | None:
        q = self._q
        head = self._rows(f"SELECT {q('name')}, {q('latest_version')} FROM {{p}} WHERE {q('id')} = ?", [pipeline_id])
        if not head:
            return None
        name, latest = head[0][0], int(head[0][1])
        rows = self._rows(f"SELECT {q('ir')}, {q('author')}, {q('message')}, {q('created_at')} FROM {{v}} "
                          f"WHERE {q('pipeline_id')} = ? AND {q('version')} = ?",
                          [pipeline_id, latest if version is None else version])
        if not rows:
            return None
        ir, author, message, created = rows[0]
        return Version(pipeline_id, name, latest if version is None else version,
                       json.loads(ir) if isinstance(ir, str) else ir, author, message, iso(created))

    def versions(self, pipeline_id: str) -> list[dict]:
        q = self._q
        rows = self._rows(f"SELECT {q('version')}, {q('author')}, {q('message')}, {q('created_at')} FROM {{v}} "
                          f"WHERE {q('pipeline_id')} = ? ORDER BY {q('version')} DESC", [pipeline_id])
        return [{"version": int(r[0]), "author": r[1], "message": r[2], "createdAt": iso(r[3])} for r in rows]

    # ---- writes ---------------------------------------------------------------------------------------------
    def create(self, pipeline_id: str, name: str, ir: dict, author: str | None, message: str | None) -> Version:
        q, now = self._q, _now()
        with self.wh.session() as con:
            self.wh.begin(con)
            try:
                self.wh.execute(con, self._sql(
                    f"INSERT INTO {{p}} ({q('id')}, {q('name')}, {q('latest_version')}, {q('created_at')}, "
                    f"{q('updated_at')}) VALUES (?, ?, 1, ?, ?)"), [pipeline_id, name, now, now])
                self._insert_version(con, pipeline_id, 1, ir, author, message, now)
                self.wh.commit(con)
            except self.wh.db_errors as exc:
                self.wh.rollback(con)
                if _is_unique_violation(exc):
                    raise Conflict(f"pipeline '{pipeline_id}' exists already") from None
                raise
        return Version(pipeline_id, name, 1, ir, author, message, iso(now))

    def add_version(self, pipeline_id: str, expected: int, ir: dict, author: str | None, message: str | None,
                    name: str | None = None) -> Version:
        """Store ``ir`` as version ``expected + 1``; raises Conflict when the latest version is not ``expected``
        (another writer got there first) — in that case nothing is written."""
        q, now = self._q, _now()
        with self.wh.session() as con:
            self.wh.begin(con)
            try:
                sets = f"{q('latest_version')} = ?, {q('updated_at')} = ?" + (f", {q('name')} = ?" if name else "")
                params = [expected + 1, now] + ([name] if name else []) + [pipeline_id, expected]
                won = self.wh.execute(con, self._sql(
                    f"UPDATE {{p}} SET {sets} WHERE {q('id')} = ? AND {q('latest_version')} = ? "
                    f"RETURNING {q('name')}"), params).fetchall()
                if not won:
                    self.wh.rollback(con)
                    raise Conflict(f"pipeline '{pipeline_id}' is no longer at version {expected}")
                self._insert_version(con, pipeline_id, expected + 1, ir, author, message, now)
                self.wh.commit(con)
            except self.wh.db_errors as exc:
                self.wh.rollback(con)
                if _is_unique_violation(exc) or _is_serialization_failure(exc):
                    raise Conflict(f"pipeline '{pipeline_id}' is no longer at version {expected}") from None
                raise
        return Version(pipeline_id, won[0][0], expected + 1, ir, author, message, iso(now))

    def _insert_version(self, con, pipeline_id, version, ir, author, message, now) -> None:
        q = self._q
        self.wh.execute(con, self._sql(
            f"INSERT INTO {{v}} ({q('pipeline_id')}, {q('version')}, {q('ir')}, {q('author')}, {q('message')}, "
            f"{q('created_at')}) VALUES (?, ?, CAST(? AS JSON), ?, ?, ?)"),
            [pipeline_id, version, json.dumps(ir), author, message, now])


def _is_unique_violation(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "unique" in text or "duplicate key" in text or "primary key" in text or "constraint" in text


def _is_serialization_failure(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "serializ" in text or "conflict" in text
