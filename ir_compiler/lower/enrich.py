"""Enrich nodes → Beam: a ParDo over Arrow tables that calls the provider for each row, batchSize rows at a
time with ``concurrency`` threads, a shared rate limit, retry with backoff and an in-run cache; lookups are a
broadcast Arrow join. Failed calls follow ``onError`` (null / quarantine → errors port / fail)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
import pyarrow as pa

from ir_compiler.errors import FlowError, NotAvailableError
from ir_compiler.lower.context import counter, to_error_table
from ir_compiler.ops.common import ERROR, user_columns

ERRORS = "errors"


def _text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def output_values(node, answer) -> dict:
    """Column → value from one provider answer (``output`` is a column name or {column: response path})."""
    from connectors.enrich.providers import extract

    if isinstance(node.output, str):
        return {node.output: _text(answer)}
    return {col: _text(extract(answer, path) if answer is not None else None) for col, path in node.output.items()}


class _EnrichFn(beam.DoFn):
    def __init__(self, node, retry):
        self.node, self.retry = node, retry

    def setup(self):
        from connectors.enrich.client import HttpClient
        from connectors.enrich.providers import make_provider
        from flow_beam.hooks import backoff_delays

        n = self.node
        cache = (n.cache or {}).get("enabled", True)
        self.client = HttpClient(n.timeoutSeconds, backoff_delays(self.retry), n.rateLimitPerSecond, cache)
        self.provider = make_provider(n.provider.model_dump())
        self.pool = ThreadPoolExecutor(max_workers=n.concurrency, thread_name_prefix=f"enrich-{n.id}")
        self.c = {k: counter(n.id, k) for k in ("rows_errored", "note:rows enriched with null after a failed call",
                                                 "note:llm provider without credentials; output left null",
                                                 "note:cache hits")}

    def teardown(self):
        self.pool.shutdown(wait=False)

    def _one(self, row):
        from connectors.enrich.client import CallError
        from ir_compiler.secrets import scrub_text
        try:
            values = output_values(self.node, self.provider.call(self.client, row))
            return {k: scrub_text(v) for k, v in values.items()}, None  # an echoed credential is not data
        except CallError as exc:
            return None, str(exc)

    def process(self, table):
        n = self.node
        cols = user_columns(table)
        rows = table.select(cols).to_pylist()
        if getattr(self.provider, "available", True) is False:
            self.c["note:llm provider without credentials; output left null"].inc(len(rows))
            results = [(output_values(n, None), None)] * len(rows)
        else:
            missing = getattr(self.provider, "missing", None)
            if missing:
                counter(n.id, f"note:{missing}").inc(len(rows))
            hits = self.client.stats["cache_hits"]
            results = []
            for start in range(0, len(rows), n.batchSize):
                results += list(self.pool.map(self._one, rows[start:start + n.batchSize]))
            self.c["note:cache hits"].inc(self.client.stats["cache_hits"] - hits)
        good, bad, reasons = [], [], []
        names = [n.output] if isinstance(n.output, str) else list(n.output)
        for i, (values, error) in enumerate(results):
            if error is None:
                good.append((i, values))
            elif n.onError == "fail":
                raise FlowError(f"enrich call failed and onError is fail: {error}", node_id=n.id)
            elif n.onError == "null":
                self.c["note:rows enriched with null after a failed call"].inc(1)
                good.append((i, {k: None for k in names}))
            else:
                bad.append(i)
                reasons.append(f"enrich: {error}")
        if bad:
            self.c["rows_errored"].inc(len(bad))
            err = table.take(bad).append_column(ERROR, pa.array(reasons, pa.string()))
            yield beam.pvalue.TaggedOutput(ERRORS, to_error_table(n.id, err))
        if good:
            out = table.take([i for i, _ in good])
            for name in names:
                out = out.append_column(name, pa.array([v[name] for _, v in good], pa.string()))
            yield out


class _LookupEnrichFn(beam.DoFn):
    """provider lookup: the lookup table (read once, one row per key) joined to each batch with pyarrow."""

    def __init__(self, node, lookup: pa.Table):
        self.node, self.lookup = node, lookup

    def process(self, table):
        p = self.node.provider.model_dump()
        on = p["on"]
        pairs = list(on.items()) if isinstance(on, dict) else [(on, on)] if isinstance(on, str) else [(k, k) for k in on]
        out_map = {self.node.output: p.get("field")} if isinstance(self.node.output, str) else dict(self.node.output)
        right_cols = {f"__fb_k{i}": r for i, (_, r) in enumerate(pairs)}
        right = pa.table({**{k: self.lookup.column(r) for k, r in right_cols.items()},  # outputs are text
                          **{col: self.lookup.column(src).cast(pa.string()) for col, src in out_map.items()}})
        for i, (left, _) in enumerate(pairs):
            want = table.schema.field(left).type
            if right.schema.field(f"__fb_k{i}").type != want:
                right = right.set_column(i, f"__fb_k{i}", right.column(i).cast(want))
        joined = table.join(right, keys=[l for l, _ in pairs], right_keys=list(right_cols), join_type="left outer",
                            use_threads=False)
        yield joined.drop_columns([c for c in joined.column_names if c.startswith("__fb_k")])


def lower_enrich(pcoll, node, ctx, label, lookup: pa.Table | None):
    kind = node.provider.kind
    if kind == "model":
        raise NotAvailableError("enrich provider 'model' validates but has no runtime in this build; use http "
                                "(a model server) or llm", node_id=node.id)
    if kind == "lookup":
        main = pcoll | f"{label}/LookupJoin" >> beam.ParDo(_LookupEnrichFn(node, lookup))
        return main, None
    out = pcoll | f"{label}/Call{kind.capitalize()}" >> beam.ParDo(_EnrichFn(node, ctx.retry)).with_outputs(
        ERRORS, main="main")
    return out.main, out[ERRORS]
