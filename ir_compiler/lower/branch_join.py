"""Branch (ParDo with a tagged output per route) and join (bucketed CoGroup of Arrow slices, or a
broadcast side input) → Beam."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.expressions import compile_expression
from ir_compiler.joins import join_tables, keys_for
from ir_compiler.lower.context import counter, mask_count
from ir_compiler.ops import sets
from ir_compiler.ops.exprs import table_schema


class _BranchFn(beam.DoFn):
    def __init__(self, node):
        self.node = node

    def setup(self):
        n = self.node
        self.filtered = counter(n.id, "rows_filtered")
        self.routed = counter(n.id, "rows_out")
        self.per_route = {r: counter(n.id, f"route:{r}") for r in [x.name for x in n.routes] + [n.otherwise]
                          if r}
        self.compiled = {}

    def _cond(self, route, table):
        key = (route.name, tuple(table.schema.names), tuple(str(t) for t in table.schema.types))
        if key not in self.compiled:
            self.compiled[key] = compile_expression(route.condition, table_schema(table), boolean=True)
        return pc.fill_null(self.compiled[key].eval_arrow(table), False)

    def process(self, table):
        n = self.node
        remaining = pa.array([True] * table.num_rows)
        for route in n.routes:
            hit = self._cond(route, table)
            if n.mode == "first_match":
                hit = pc.and_(hit, remaining)
            k = mask_count(hit)
            if k:
                self.per_route[route.name].inc(k)
                yield beam.pvalue.TaggedOutput(route.name, table.filter(hit))
            remaining = pc.and_(remaining, pc.invert(hit))
        left = mask_count(remaining)
        self.routed.inc(table.num_rows - left)
        if left and n.otherwise:
            self.per_route[n.otherwise].inc(left)
            self.routed.inc(left)
            yield beam.pvalue.TaggedOutput(n.otherwise, table.filter(remaining))
        elif left:
            self.filtered.inc(left)


def lower_branch(pcoll, node, label):
    names = [r.name for r in node.routes] + ([node.otherwise] if node.otherwise else [])
    out = pcoll | f"{label}/Route" >> beam.ParDo(_BranchFn(node)).with_outputs(*names)
    return {name: out[name] for name in names}


# ---- join ------------------------------------------------------------------------------------------
def _cast_keys(table: pa.Table, keys: list[str], key_types: list | None) -> pa.Table:
    if not key_types:
        return table
    for k, t in zip(keys, key_types):
        if t is not None and table.schema.field(k).type != t:
            table = table.set_column(table.column_names.index(k), k, table.column(k).cast(t))
    return table


class _BucketInputFn(beam.DoFn):
    def __init__(self, index, keys, key_types, buckets):
        self.index, self.keys, self.key_types, self.buckets = index, keys, key_types, buckets

    def process(self, table):
        table = _cast_keys(table, self.keys, self.key_types)
        for bucket, part in sets.split_by_bucket(table, self.keys, self.buckets):
            yield bucket, (self.index, part)


class _JoinBucketFn(beam.DoFn):
    def __init__(self, node, schemas: list[pa.Schema | None], key_types):
        self.node, self.schemas, self.key_types = node, schemas, key_types

    def process(self, item):
        _, parts = item
        by_input: dict[int, list[pa.Table]] = {}
        for i, t in parts:
            by_input.setdefault(i, []).append(t)
        tables = []
        for i in range(len(self.node.inputs)):
            got = by_input.get(i)
            if got:
                tables.append(pa.concat_tables(got, promote_options="permissive"))
            elif self.schemas[i] is not None:
                tables.append(_cast_keys(self.schemas[i].empty_table(), keys_for(self.node, i), self.key_types))
            else:
                tables = None  # an input with no rows at all and an unknown schema: no match possible
                break
        out = join_tables(self.node, tables) if tables else None
        if out is not None and out.num_rows:
            yield out


class _BroadcastJoinFn(beam.DoFn):
    def __init__(self, node, schemas, key_types):
        self.node, self.schemas, self.key_types = node, schemas, key_types

    def process(self, table, *sides):
        tables = [_cast_keys(table, keys_for(self.node, 0), self.key_types)]
        for i, side in enumerate(sides, 1):
            side = [t for t in side if t.num_rows] or []
            if not side:
                empty = self.schemas[i]
                tables.append(None if empty is None else _cast_keys(empty.empty_table(), keys_for(self.node, i),
                                                                      self.key_types))
                continue
            tables.append(_cast_keys(pa.concat_tables(side, promote_options="permissive"),
                                     keys_for(self.node, i), self.key_types))
        if any(t is None for t in tables[1:]):
            if self.node.type in ("inner", "semi"):
                return
            if self.node.type == "anti":
                yield table
                return
        out = join_tables(self.node, [t for t in tables if t is not None])
        if out.num_rows:
            yield out


def lower_join(inputs: list, node, ctx, label, schemas, key_types, warnings: list[str]):
    strategy = node.strategy
    if strategy == "broadcast" and node.type in ("right", "full"):
        warnings.append(f"node '{node.id}': a {node.type} join cannot broadcast; it was shuffled")
        strategy = "shuffle"
    if strategy == "broadcast":
        sides = [beam.pvalue.AsList(pc_) for pc_ in inputs[1:]]
        return inputs[0] | f"{label}/BroadcastJoin" >> beam.ParDo(_BroadcastJoinFn(node, schemas, key_types), *sides)
    keyed = [pcoll | f"{label}/Bucket{i}" >> beam.ParDo(_BucketInputFn(i, keys_for(node, i), key_types,
                                                                         ctx.buckets))
             for i, pcoll in enumerate(inputs)]
    return (keyed | f"{label}/FlattenInputs" >> beam.Flatten()
            | f"{label}/ShuffleByKey" >> beam.GroupByKey()
            | f"{label}/JoinBuckets" >> beam.ParDo(_JoinBucketFn(node, schemas, key_types)))


# ---- windowed join of streams --------------------------------------------------------------------------
def _join_part(table: pa.Table, index: int) -> pa.Table:
    """A window part of one input, ready to join: no window columns (the Beam window is the window), no internal
    columns but the first input's row order."""
    from ir_compiler.ops.common import INTERNAL_PREFIX, ORD
    drop = [c for c in table.column_names if c in ("window_start", "window_end")
            or (c.startswith(INTERNAL_PREFIX) and not (c == ORD and index == 0))]
    return table.drop_columns(drop)


class _StreamJoinFn(_JoinBucketFn):
    """One pane of one key bucket of one window: the join of every row of the window so far (accumulating
    panes), with the bucket as the pane's shard (its commit key: panes of other buckets are other shards)."""

    def process(self, item):
        from ir_compiler.lower.streaming import SHARD
        for out in super().process(item):
            yield out.append_column(SHARD, pa.array([f"b{item[0]}"] * out.num_rows, pa.string()))


def lower_stream_join(inputs: list, node, ctx, label, schemas, key_types, event_times: list):
    """A windowed join of unbounded inputs → (joined tables, errors). Each input is split by window (stamped at
    the window start, late rows counted like a windowed aggregate's), bucketed by the join key; every (bucket,
    window) pane joins all the rows of that window so far: only rows of the same key AND the same window meet."""
    from apache_beam.utils.timestamp import Duration

    from ir_compiler.lower.streaming import ERRORS, _Late, _SplitByWindowFn, lateness_s, trigger_of, window_fn
    window = node.window
    late = _Late(node.id, window, ctx.run_id, ctx.dlq_enabled)
    errors, keyed = [], []
    schemas = [None if s is None else _join_part(s.empty_table(), i).schema for i, s in enumerate(schemas)]
    for i, pcoll in enumerate(inputs):
        split = pcoll | f"{label}/SplitByWindow{i}" >> beam.ParDo(
            _SplitByWindowFn(node.id, window, event_times[i], late)).with_outputs(ERRORS, main="main")
        errors.append(split[ERRORS])
        parts = split.main | f"{label}/Part{i}" >> beam.Map(_join_part, i)
        keyed.append(parts | f"{label}/Bucket{i}" >> beam.ParDo(_BucketInputFn(i, keys_for(node, i), key_types,
                                                                                  ctx.buckets)))
    trig, acc = trigger_of(window)
    joined = (keyed | f"{label}/FlattenInputs" >> beam.Flatten()
              | f"{label}/Window" >> beam.WindowInto(window_fn(window), trigger=trig, accumulation_mode=acc,
                                                      allowed_lateness=Duration.of(lateness_s(window)))
              | f"{label}/GroupPane" >> beam.GroupByKey()
              | f"{label}/JoinPane" >> beam.ParDo(_StreamJoinFn(node, schemas, key_types)))
    return joined, errors
