"""Sources → Beam: in-document rows for embedded tests here; everything else is the connector's own read step
(``connectors.registry.get_source(node.connector).read``: files, warehouse tables, streams)."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from connectors.runtime import ERRORS, ORD, bad_rows_table, counter, ords
from ir_compiler.lower.context import RunContext
from ir_compiler.propagate import declared_schema

def test_rows_table(rows: list[dict], schema, strict: bool = True, fmt: str | None = None):
    """In-document rows as one Arrow table and their bad rows, read the way the source reads its data: converted
    to the declared (``strict``) or inferred schema like file values are; without a schema, typed by the rules of
    the source's format (text rules for csv/tsv, JSON rules otherwise). Every key of every row is a column."""
    from connectors.formats import _conform
    from connectors.infer import infer_text_schema, rows_table

    table = rows_table(rows)
    if schema is None and fmt in ("csv", "tsv"):
        table = as_text(table)
        schema, strict = infer_text_schema(table), False
    if schema is not None:
        table, bad = _conform(table, schema, "test rows", lambda i: i + 1, strict=strict)
    else:
        bad = []
    return table.append_column(ORD, ords(0, 0, table.num_rows)), bad


def as_text(table: pa.Table) -> pa.Table:
    """Every column as the text a CSV file would hold (JSON for nested values)."""
    from connectors.infer import json_text
    return pa.table({n: pa.array([None if v is None else v if isinstance(v, str) else
                                  ("true" if v else "false") if isinstance(v, bool) else json_text(v)
                                  for v in table.column(n).to_pylist()], pa.string())
                     for n in table.column_names})


def lower_source(p, node, ctx: RunContext, label: str, schema=None):
    """{port: PCollection} of a source node. ``schema``: its propagated schema (declared, or inferred from a
    sample at validation), which every value read is converted to."""
    from connectors.base import not_available
    from connectors.registry import get_source

    declared = declared_schema(node)
    hint = None if declared is not None else schema
    if ctx.test_inputs is not None and node.id in ctx.test_inputs:
        rows = ctx.test_inputs[node.id]
        table, bad = test_rows_table(rows, declared or hint, declared is not None, getattr(node.config, "format", None))
        main = p | f"{label}/TestRows" >> beam.Create([table]) | f"{label}/CountIn" >> beam.ParDo(_CountIn(node.id))
        errors = p | f"{label}/TestRowErrors" >> beam.Create([bad_rows_table(node.id, bad)] if bad else [])
        if bad:
            errors = (errors | f"{label}/CountBad" >> beam.ParDo(_CountIn(node.id, "rows_errored"))
                      | f"{label}/CountBadIn" >> beam.ParDo(_CountIn(node.id)))
        return {"main": main, ERRORS: errors}
    source = get_source(node.connector)
    if source.available() is not None:
        raise not_available(source, node.id)
    return source.read(p, node, ctx, ctx.prepared.get(node.id), declared if declared is not None else schema)


class _CountIn(beam.DoFn):
    def __init__(self, node_id, name="rows_in"):
        self.node_id, self.name = node_id, name

    def process(self, table):
        counter(self.node_id, self.name).inc(table.num_rows)
        yield table
