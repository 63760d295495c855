"""``table``: rows of a warehouse table or a read-only query over the warehouse.

``{"connector": "table", "config": {"table": "public.orders"}}`` or ``{"table": "public.orders", "query": "SELECT
..."}``; the schema is learned from the warehouse at validation (a query is described, not run).
"""
from __future__ import annotations

from pydantic import Field

from connectors.base import Capabilities, ConnectorConfig, Source


class TableSourceConfig(ConnectorConfig):
    table: str = Field(min_length=1, description='"schema.table" in the warehouse')
    query: str | None = Field(default=None, description="a read-only SELECT over the warehouse")


class TableSource(Source):
    name = "table"
    config = TableSourceConfig
    capabilities = Capabilities(samples_schema=True)
    doc = "a warehouse table or a read-only SELECT over the warehouse"

    def infer_schema(self, node, warehouse=None):
        if warehouse is None:
            return None
        cfg = node.config
        if cfg.query:
            return warehouse.describe_query(cfg.query)  # learned without running the query
        return warehouse.table_schema(cfg.table)

    def describe(self, node, unbounded=False):
        return ["Create", "ParDo(read warehouse table → Arrow tables)"]

    def read(self, p, node, ctx, prepared, schema):
        import apache_beam as beam

        from connectors.table.reader import ReadTableFn
        cfg = node.config
        main = p | f"{node.id}/Start" >> beam.Create([None]) | f"{node.id}/ReadTable" >> beam.ParDo(
            ReadTableFn(node.id, ctx.warehouse_url, cfg.table, cfg.query, ctx.batch_rows))
        return {"main": main, "errors": p | f"{node.id}/NoErrors" >> beam.Create([])}
