"""Warehouses: where table targets load. Chosen at run time by URL, never in the IR.

``duckdb:///path/file.duckdb`` (default ``./flow_warehouse.duckdb`` or ``$FLOW_WAREHOUSE``) or
``postgresql://user@host:port/db``.
"""
from __future__ import annotations

import os

from ir_compiler.errors import ConnectorError

DEFAULT_URL = "duckdb://flow_warehouse.duckdb"


def warehouse_url(url: str | None) -> str:
    url = url or os.environ.get("FLOW_WAREHOUSE") or DEFAULT_URL
    if "://" not in url:  # a bare path means a DuckDB file
        url = f"duckdb://{url}"
    return url


def open_warehouse(url: str | None):
    """A Warehouse for the URL; raises ConnectorError for an unknown scheme."""
    url = warehouse_url(url)
    scheme = url.split("://", 1)[0]
    if scheme == "duckdb":
        from connectors.warehouse.duckdb import DuckDBWarehouse
        return DuckDBWarehouse(url)
    if scheme in ("postgresql", "postgres"):
        from connectors.warehouse.postgres import PostgresWarehouse
        return PostgresWarehouse(url)
    raise ConnectorError(f"unknown warehouse URL scheme '{scheme}://'; use duckdb:///path/file.duckdb or "
                         f"postgresql://user@host:port/db")


def redact_url(url: str) -> str:
    """The URL without a password (for logs and run results)."""
    import re
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
