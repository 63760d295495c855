"""Transform nodes → Beam: consecutive row ops fused into one ParDo over Arrow tables; set ops
(aggregate, deduplicate, summarize) pre-combine per batch, shuffle by key bucket, finish with pyarrow."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam import typehints

from ir_compiler.lower.arrow_coder import tables
from ir_compiler.lower.context import RunContext, counter, to_error_table
from ir_compiler.ops import OPS, sets
from ir_compiler.ops.lookup import lookup_apply

ERRORS = "errors"


@beam.typehints.with_output_types(pa.Table)  # declared: Beam skips inferring it from the bytecode
class _RowOpsFn(beam.DoFn):
    """Applies a run of row ops to each Arrow table; failing rows leave through ``errors``."""

    def __init__(self, node_id: str, ops: list, lookups: dict[int, pa.Table]):
        self.node_id, self.ops, self.lookups = node_id, ops, lookups

    def setup(self):
        self.filtered = counter(self.node_id, "rows_filtered")
        self.errored = counter(self.node_id, "rows_errored")

    def process(self, table):
        for i, op in enumerate(self.ops):
            # Ops never raise for a row: failing rows come back in ``res.errors`` and the others go on (an op
            # raising here would lose the whole batch, the bug cast onError=fail had).
            res = lookup_apply(op, table, self.lookups[i]) if op.op == "lookup_join" \
                else OPS[op.op].apply(op, table)
            if res.filtered:
                self.filtered.inc(res.filtered)
            for note, n in res.notes.items():  # "note:..." counters become warnings in the run result
                if n:
                    counter(self.node_id, f"note:{note}").inc(n)
            for err in res.errors:
                if err.num_rows:
                    self.errored.inc(err.num_rows)
                    yield beam.pvalue.TaggedOutput(ERRORS, to_error_table(self.node_id, err))
            table = res.table
        if table.num_rows:
            yield table


def _segments(ops):
    """Split ops into runs: ("row", [ops...]) or ("set", op)."""
    out, run = [], []
    for i, op in enumerate(ops):
        kind = OPS[op.op].kind
        if kind in ("row", "lookup"):
            run.append((i, op))
            continue
        if run:
            out.append(("row", run))
            run = []
        out.append(("set", (i, op)))
    if run:
        out.append(("row", run))
    return out


def lower_transform(pcoll, node, ctx: RunContext, label: str, lookups: dict[int, pa.Table], event_time=None,
                    op_inputs=None):
    """``op_inputs``: the propagated schema each op reads (ops[i] reads op_inputs[i]), where known."""
    errors = []
    for seg_no, (kind, payload) in enumerate(_segments(node.ops)):
        step = f"{label}/{seg_no}"
        if kind == "row":
            idx = [i for i, _ in payload]
            ops = [op for _, op in payload]
            out = pcoll | f"{step}-row-ops" >> beam.ParDo(
                _RowOpsFn(node.id, ops, {k: lookups[i] for k, i in enumerate(idx) if i in lookups})
            ).with_outputs(ERRORS, main="main")
            pcoll = tables(out.main)
            errors.append(tables(out[ERRORS]))
        else:
            i, op = payload
            if op.op in ("aggregate", "deduplicate") and op.window is not None and (
                    ctx.streaming or op.window.type == "session"):  # bounded sessions: Beam merges them too
                from ir_compiler.lower.streaming import lower_windowed
                partial, final = ((sets.aggregate_partial, sets.aggregate_final) if op.op == "aggregate"
                                  else (sets.dedupe_table, sets.dedupe_table))
                pcoll, errs = lower_windowed(pcoll, node.id, op, op.window, event_time, f"{step}-{op.op}",
                                             partial, final, window_columns=op.op == "aggregate", ctx=ctx)
                errors += errs
                continue
            if op.op == "aggregate" and op.window is not None and op.window.type != "global":
                pcoll = pcoll | f"{step}-windows" >> beam.Map(_assign_windows, op.window, event_time)
                if node.id in ctx.drain_frontiers:  # a drain after runs that closed windows: late rows
                    from ir_compiler.lower.drain import DropClosedWindowsFn
                    out = pcoll | f"{step}-closed" >> beam.ParDo(DropClosedWindowsFn(
                        node.id, op.window, ctx.drain_frontiers[node.id], ctx.dlq_enabled)).with_outputs(
                        ERRORS, main="main")
                    pcoll = out.main
                    errors.append(out[ERRORS])
                op = op.model_copy(update={"groupBy": ["window_start", "window_end", *op.groupBy], "window": None})
            if op.op == "aggregate" and not op.groupBy:
                schema = op_inputs[i] if op_inputs is not None and i < len(op_inputs) else None
                pcoll = tables(pcoll | f"{step}-{op.op}/Combine" >> beam.CombineGlobally(
                    _GlobalPartials(op, schema.to_arrow() if schema is not None else None)))
                continue
            pcoll = tables(_SET_LOWERING[op.op](pcoll, node.id, op, ctx, f"{step}-{op.op}"))
    return pcoll, errors


def _assign_windows(table, window, event_time):
    from ir_compiler.windows import assign_windows
    return assign_windows(table, window, event_time.field, event_time.format)


# ---- aggregate -------------------------------------------------------------------------------------
class _PartialFn(beam.DoFn):
    def __init__(self, node_id, op, buckets):
        self.node_id, self.op, self.buckets = node_id, op, buckets

    def process(self, table):
        part = sets.aggregate_partial(self.op, table)
        yield from sets.split_by_bucket(part, list(self.op.groupBy), self.buckets)


@beam.typehints.with_output_types(pa.Table)  # declared: Beam skips inferring it from the bytecode
class _FinalFn(beam.DoFn):
    def __init__(self, node_id, op):
        self.node_id, self.op = node_id, op

    def process(self, item):
        _, parts = item
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return
        yield sets.aggregate_final(self.op, pa.concat_tables(parts, promote_options="permissive"))


class _GlobalPartials(beam.CombineFn):
    """groupBy [] : combine every partial into one table; an empty input still gives its one row."""

    def __init__(self, op, in_schema: pa.Schema | None = None):
        self.op, self.in_schema = op, in_schema

    def create_accumulator(self):
        return []

    def add_input(self, acc, table):
        acc.append(sets.aggregate_partial(self.op, table))
        if len(acc) > 64:
            acc = [pa.concat_tables(acc, promote_options="permissive")]
        return acc

    def merge_accumulators(self, accs):
        return [t for acc in accs for t in acc]

    def extract_output(self, acc):
        if not acc:  # no rows: the one row, typed as the aggregate of rows would be (a NULL column was text)
            if self.in_schema is not None:
                return sets.aggregate_final(self.op, sets.empty_partial(self.op, self.in_schema))
            return _empty_global(self.op)
        return sets.aggregate_final(self.op, pa.concat_tables(acc, promote_options="permissive"))


def _empty_global(op) -> pa.Table:
    cols = {}
    for a in op.aggregations:
        cols[a.as_] = pa.array([0], pa.int64()) if a.fn in ("count", "count_distinct") else pa.nulls(1)
    return pa.table(cols)




def _aggregate(pcoll, node_id, op, ctx, label):
    if not op.groupBy:
        return pcoll | f"{label}/Combine" >> beam.CombineGlobally(_GlobalPartials(op))
    return (pcoll | f"{label}/Partial" >> beam.ParDo(_PartialFn(node_id, op, ctx.buckets)).with_output_types(
                typehints.Tuple[int, pa.Table])
            | f"{label}/ShuffleByKey" >> beam.GroupByKey()
            | f"{label}/Final" >> beam.ParDo(_FinalFn(node_id, op)))


# ---- deduplicate -----------------------------------------------------------------------------------
class _LocalDedupeFn(beam.DoFn):
    def __init__(self, node_id, op, buckets):
        self.node_id, self.op, self.buckets = node_id, op, buckets

    def setup(self):
        self.filtered = counter(self.node_id, "rows_filtered")

    def process(self, table):
        out = sets.dedupe_table(self.op, table)
        self.filtered.inc(table.num_rows - out.num_rows)
        yield from sets.split_by_bucket(out, list(self.op.keys), self.buckets)


class _BucketDedupeFn(beam.DoFn):
    def __init__(self, node_id, op):
        self.node_id, self.op = node_id, op

    def setup(self):
        self.filtered = counter(self.node_id, "rows_filtered")

    def process(self, item):
        _, parts = item
        table = pa.concat_tables(list(parts), promote_options="permissive")
        out = sets.dedupe_table(self.op, table)
        self.filtered.inc(table.num_rows - out.num_rows)
        if out.num_rows:
            yield out


def _deduplicate(pcoll, node_id, op, ctx, label):
    return (pcoll | f"{label}/Local" >> beam.ParDo(_LocalDedupeFn(node_id, op, ctx.buckets)).with_output_types(
                typehints.Tuple[int, pa.Table])
            | f"{label}/ShuffleByKey" >> beam.GroupByKey()
            | f"{label}/Final" >> beam.ParDo(_BucketDedupeFn(node_id, op)))


# ---- summarize -------------------------------------------------------------------------------------
class _SummarizeFn(beam.CombineFn):
    def __init__(self, op):
        self.op = op

    def create_accumulator(self):
        return None

    def add_input(self, acc, table):
        part = sets.summarize_partial(self.op, table)
        return part if acc is None else sets.summarize_merge(acc, part)

    def merge_accumulators(self, accs):
        out = None
        for a in accs:
            if a is not None:
                out = a if out is None else sets.summarize_merge(out, a)
        return out

    def extract_output(self, acc):
        return sets.summarize_final(self.op, acc or {})


def _summarize(pcoll, node_id, op, ctx, label):
    return pcoll | f"{label}/Combine" >> beam.CombineGlobally(_SummarizeFn(op))


_SET_LOWERING = {"aggregate": _aggregate, "deduplicate": _deduplicate, "summarize": _summarize}
