"""Branch (ParDo with a tagged output per route) and join (bucketed CoGroup of Arrow slices, or a
broadcast side input) → Beam."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam import typehints

from ir_compiler.joins import join_tables, keys_for
from ir_compiler.lower.arrow_coder import tables
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
            from ir_compiler.expressions import compile_expression

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
    return {name: tables(out[name]) for name in names}


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
    """Joins each batch of the first input with the other inputs, broadcast whole (side inputs). The sides are
    concatenated and their keys cast once per side-input value, not once per batch."""

    def __init__(self, node, schemas, key_types):
        self.node, self.schemas, self.key_types = node, schemas, key_types

    def setup(self):
        self._cached = None  # (the side lists themselves, prepared tables): same lists → same tables

    def _prepared(self, sides):
        if self._cached is not None and len(self._cached[0]) == len(sides) and all(
                a is b for a, b in zip(self._cached[0], sides)):
            return self._cached[1]
        prepared = []
        for i, side in enumerate(sides, 1):
            side = [t for t in side if t.num_rows]
            if not side:
                empty = self.schemas[i]
                prepared.append(None if empty is None else _cast_keys(empty.empty_table(), keys_for(self.node, i),
                                                                        self.key_types))
                continue
            prepared.append(_cast_keys(pa.concat_tables(side, promote_options="permissive"),
                                       keys_for(self.node, i), self.key_types))
        self._cached = (list(sides), prepared)
        return prepared

    def process(self, table, *sides):
        yield from self._join(table, self._prepared(sides))

    def _join(self, table, prepared):
        tables = [_cast_keys(table, keys_for(self.node, 0), self.key_types), *prepared]
        if any(t is None for t in tables[1:]):
            if self.node.type in ("inner", "semi"):
                return
            if self.node.type == "anti":
                yield table
                return
        out = join_tables(self.node, [t for t in tables if t is not None])
        if out.num_rows:
            yield out


# ---- strategy auto: broadcast when the other inputs turn out small, else shuffle -------------------------
SHUFFLE = "shuffle"
BROADCAST_BYTES = 64 << 20  # Arrow bytes of all non-first inputs together (FLOW_BEAM_BROADCAST_BYTES overrides)


def broadcast_limit() -> int:
    import os
    return int(os.environ.get("FLOW_BEAM_BROADCAST_BYTES", BROADCAST_BYTES))


class _TableBytes(beam.CombineFn):
    """Arrow bytes of a PCollection of tables (0 when empty)."""

    def create_accumulator(self):
        return 0

    def add_input(self, acc, table):
        return acc + table.nbytes

    def merge_accumulators(self, accs):
        return sum(accs)

    def extract_output(self, acc):
        return acc


class _AutoFirstFn(_BroadcastJoinFn):
    """First input of an ``auto`` join: side inputs are the sizes of the other inputs, then their tables. Small
    sides: join here (broadcast); else each batch leaves through ``shuffle`` as (bucket, (0, slice))."""

    def __init__(self, node, schemas, key_types, buckets, limit):
        super().__init__(node, schemas, key_types)
        self.buckets, self.limit = buckets, limit

    def process(self, table, *sides):
        n = len(sides) // 2
        if sum(sides[:n]) <= self.limit:
            yield from self._join(table, self._prepared(sides[n:]))
            return
        keys = keys_for(self.node, 0)
        table = _cast_keys(table, keys, self.key_types)
        for bucket, part in sets.split_by_bucket(table, keys, self.buckets):
            yield beam.pvalue.TaggedOutput(SHUFFLE, (bucket, (0, part)))


class _AutoOtherFn(_BucketInputFn):
    """Another input of an ``auto`` join: bucketed for the shuffle only when the inputs were too big to broadcast."""

    def __init__(self, index, keys, key_types, buckets, limit):
        super().__init__(index, keys, key_types, buckets)
        self.limit = limit

    def process(self, table, *sizes):
        if sum(sizes) > self.limit:
            yield from super().process(table)


_SIZE_FACTOR = {"parquet": 4, "avro": 3, "orc": 4}  # Arrow bytes per file byte, roughly, for compact formats
_COMPRESSED = (".gz", ".gzip", ".bz2", ".zst", ".zstd", ".snappy", ".lz4", ".xz")


def _local_files(node) -> bool:
    from connectors.registry import get_source
    return get_source(node.connector).capabilities.local_paths


def estimate_input_bytes(graph, ctx, refs) -> int | None:
    """An estimate of the Arrow bytes of the inputs ``refs`` from the local files their sources read (in-document
    test rows count 200 bytes a row), when every node on the way keeps or drops rows (transform, validate, branch);
    None when unknown (a table or stream source, a join or enrich on the way)."""
    import os

    total = 0
    for ref in refs:
        for node_id in graph.upstream(ref.node) | {ref.node}:
            node = graph.nodes[node_id]
            if node.kind in ("transform", "validate", "branch"):
                continue
            if node.kind != "source":
                return None
            if ctx.test_inputs is not None and node_id in ctx.test_inputs:
                total += 200 * len(ctx.test_inputs[node_id])
                continue
            if node_id not in ctx.files or not _local_files(node):
                return None
            cfg = node.config if isinstance(node.config, dict) else node.config.model_dump()
            factor = _SIZE_FACTOR.get(str(cfg.get("format") or "").lower(), 1)
            for path in ctx.files[node_id]:
                try:
                    size = os.path.getsize(path)
                except OSError:
                    return None
                total += size * (5 if path.lower().endswith(_COMPRESSED) or cfg.get("compression") else factor)
    return total


def _shuffle_join(keyed, node, label, schemas, key_types):
    return (keyed | f"{label}/FlattenInputs" >> beam.Flatten()
            | f"{label}/ShuffleByKey" >> beam.GroupByKey()
            | f"{label}/JoinBuckets" >> beam.ParDo(_JoinBucketFn(node, schemas, key_types)))


_KEYED = typehints.Tuple[int, typehints.Tuple[int, pa.Table]]


def lower_join(inputs: list, node, ctx, label, schemas, key_types, warnings: list[str],
               known_bytes: int | None = None):
    """``broadcast``: the other inputs as side inputs; ``shuffle``: every input bucketed by key, grouped, joined
    per bucket; ``auto``: broadcast when the other inputs are small (up to FLOW_BEAM_BROADCAST_BYTES, 64 MiB by
    default), else shuffle; right/full joins always shuffle. ``known_bytes`` (from the files read,
    :func:`estimate_input_bytes`) decides when given; otherwise the Arrow size is measured at run time."""
    strategy = node.strategy
    if strategy == "auto" and known_bytes is not None:
        strategy = "broadcast" if known_bytes <= broadcast_limit() and node.type not in ("right", "full") \
            else "shuffle"
    if strategy == "broadcast" and node.type in ("right", "full"):
        warnings.append(f"node '{node.id}': a {node.type} join cannot broadcast; it was shuffled")
        strategy = "shuffle"
    if strategy == "auto" and node.type in ("right", "full"):
        strategy = "shuffle"
    if strategy == "broadcast":
        sides = [beam.pvalue.AsList(pc_) for pc_ in inputs[1:]]
        return tables(inputs[0] | f"{label}/BroadcastJoin" >> beam.ParDo(
            _BroadcastJoinFn(node, schemas, key_types), *sides))
    if strategy == "shuffle":
        keyed = [pcoll | f"{label}/Bucket{i}" >> beam.ParDo(_BucketInputFn(i, keys_for(node, i), key_types,
                                                                             ctx.buckets)).with_output_types(_KEYED)
                 for i, pcoll in enumerate(inputs)]
        return tables(_shuffle_join(keyed, node, label, schemas, key_types))
    limit = broadcast_limit()
    sizes = [beam.pvalue.AsSingleton(pcoll | f"{label}/Size{i}" >> beam.CombineGlobally(_TableBytes()))
             for i, pcoll in enumerate(inputs[1:], 1)]
    first = inputs[0] | f"{label}/AutoJoin" >> beam.ParDo(
        _AutoFirstFn(node, schemas, key_types, ctx.buckets, limit), *sizes,
        *[beam.pvalue.AsList(pcoll) for pcoll in inputs[1:]]).with_outputs(SHUFFLE, main="main")
    first[SHUFFLE].element_type = _KEYED
    keyed = [first[SHUFFLE]] + [
        pcoll | f"{label}/Bucket{i}" >> beam.ParDo(_AutoOtherFn(i, keys_for(node, i), key_types, ctx.buckets, limit),
                                                   *sizes).with_output_types(_KEYED)
        for i, pcoll in enumerate(inputs[1:], 1)]
    shuffled = _shuffle_join(keyed, node, label, schemas, key_types)
    return tables((tables(first.main), tables(shuffled)) | f"{label}/Joined" >> beam.Flatten())


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
