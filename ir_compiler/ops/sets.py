"""Set ops on Arrow tables: aggregate (partial + final), deduplicate, summarize, and key bucketing.

Each batch is pre-aggregated (or pre-deduplicated) with pyarrow; the compiler shuffles the small partial
tables by key bucket and finishes each bucket with pyarrow again, so Beam moves thousands of elements, not
millions of rows.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.expressions import pgvalues as pv
from ir_compiler.ops.common import ORD, OpTypeError, require
from ir_compiler.types import FLOAT, INT, Field, Schema, decimal, normal_key, normal_keys  # noqa: F401 (re-exported)

IDX = "__fb_idx"


# ---- bucketing -------------------------------------------------------------------------------------
def _column_hash(arr) -> np.ndarray:
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    arr = normal_key(arr)
    t = arr.type
    if pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_timestamp(t) or pa.types.is_duration(t):
        # date32 (and time32) do not cast to int64: the days (seconds, ...) as stored
        arr, t = arr.view(pa.int32() if t.bit_width == 32 else pa.int64()), pa.int64()
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        ints = pc.fill_null(arr.cast(pa.int64()) if not pa.types.is_boolean(t) else arr.cast(pa.int8()).cast(
            pa.int64()), 0).to_numpy(zero_copy_only=False)
        return np.abs(ints * 2654435761 % 4294967311)
    return _text_hash(arr.cast(pa.string()))


_B = 0x100000001B3  # odd, so invertible modulo 2**64
_B_INV = pow(_B, -1, 1 << 64)
_MIX = np.uint64(0xFF51AFD7ED558CCD)
_LEN = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_BYTES = 1 << 22


_POWERS: list = []  # [B**j], [B**-j] (wrapping uint64), grown on demand up to _CHUNK_BYTES + 1


def _powers(n: int):
    if not _POWERS or len(_POWERS[0]) < n:
        size = max(n, 1 << 16)
        pair = []
        for base in (_B, _B_INV):
            p = np.full(size, base, dtype=np.uint64)
            p[0] = 1
            pair.append(np.cumprod(p, dtype=np.uint64))
        _POWERS[:] = pair
    return _POWERS[0], _POWERS[1]


def _text_hash(arr: pa.Array) -> np.ndarray:
    """A 31-bit hash of each string's UTF-8 bytes (nulls: 0), vectorised with numpy: the polynomial
    sum(byte[j] * B**j) mod 2**64 of every string at once from prefix sums of the whole data buffer, then mixed.
    Deterministic in every process; no Python call per value."""
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    off = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    lo, hi = int(off[0]), int(off[-1])
    if hi - lo > _CHUNK_BYTES and n > 1:  # bound the temporary arrays (8 bytes per text byte)
        half = n // 2
        return np.concatenate([_text_hash(arr.slice(0, half)), _text_hash(arr.slice(half))])
    data = arr.buffers()[2]
    seg = (np.frombuffer(data, dtype=np.uint8)[lo:hi] if data is not None else np.zeros(0, np.uint8)).astype(
        np.uint64)
    m = hi - lo
    powers, inverse = _powers(m + 1)
    prefix = np.zeros(m + 1, dtype=np.uint64)
    np.cumsum(seg * powers[:m], out=prefix[1:])
    start, end = off[:-1] - lo, off[1:] - lo
    h = (prefix[end] - prefix[start]) * inverse[start]
    h ^= (end - start).astype(np.uint64) * _LEN
    h ^= h >> np.uint64(33)
    h *= _MIX
    h ^= h >> np.uint64(33)
    out = (h >> np.uint64(33)).astype(np.int64)
    if arr.null_count:
        out[arr.is_null().to_numpy(zero_copy_only=False)] = 0
    return out


def bucket_ids(table: pa.Table, keys: list[str], buckets: int) -> np.ndarray:
    """A deterministic bucket number per row (same key → same bucket, in every process)."""
    if not keys or buckets <= 1:
        return np.zeros(table.num_rows, dtype=np.int64)
    h = np.zeros(table.num_rows, dtype=np.int64)
    for k in keys:
        h = (h * 31 + _column_hash(table.column(k))) % 2147483647
    return h % buckets


def split_by_bucket(table: pa.Table, keys: list[str], buckets: int):
    """Yield (bucket, slice) pairs for the non-empty buckets."""
    ids = bucket_ids(table, keys, buckets)
    if buckets <= 1 or not keys:
        yield 0, table
        return
    for b in np.unique(ids):
        yield int(b), table.filter(pa.array(ids == b))


def ensure_ord(table: pa.Table) -> pa.Table:
    if ORD in table.column_names:
        return table
    return table.append_column(ORD, pa.array(np.arange(table.num_rows, dtype=np.int64)))


# ---- aggregate -------------------------------------------------------------------------------------
def aggregate_schema(op, schema: Schema | None) -> Schema | None:
    for i, k in enumerate(op.groupBy):
        require(schema, k, f"groupBy[{i}]")
    out = [schema[k] for k in op.groupBy] if schema is not None else []
    seen = set(op.groupBy)
    for i, a in enumerate(op.aggregations):
        if a.as_ in seen:
            raise OpTypeError(f"output column '{a.as_}' is produced twice", f"aggregations[{i}].as")
        seen.add(a.as_)
        f = require(schema, a.field, f"aggregations[{i}].field") if a.field else None
        if schema is None:
            continue
        if a.fn in ("sum", "avg") and not f.type.is_numeric:
            raise OpTypeError(f"{a.fn} needs a numeric column; '{a.field}' is {f.type}; add a cast",
                              f"aggregations[{i}].field")
        out.append(Field(a.as_, _agg_type(a.fn, f.type if f else None), a.fn not in ("count", "count_distinct")))
    return Schema(out) if schema is not None else None


def _agg_type(fn, t):
    if fn in ("count", "count_distinct"):
        return INT
    if fn == "avg":
        return FLOAT if t.name != "decimal" else decimal(38, max(t.scale, 6))
    if fn == "sum" and t.name == "decimal":
        return decimal(38, t.scale)
    return t


def _partial_specs(op):
    """(input column, pyarrow aggregation, partial column name) per aggregation."""
    specs = []
    for i, a in enumerate(op.aggregations):
        p = f"__fb_p{i}"
        if a.fn == "count":
            specs.append((a.field or [], "count_all" if a.field is None else "count", f"{p}_n"))
        elif a.fn == "avg":
            specs += [(a.field, "sum", f"{p}_s"), (a.field, "count", f"{p}_n")]
        elif a.fn == "count_distinct":
            specs.append((a.field, "distinct", f"{p}_d"))
        elif a.fn in ("first", "last"):
            specs.append((a.field, a.fn, f"{p}_v"))
        else:
            specs.append((a.field, a.fn, f"{p}_v"))
    return specs


def _run_aggs(table: pa.Table, keys: list[str], aggs: list[tuple], ordered: bool) -> pa.Table:
    """group_by with named outputs; ``aggs`` = (column or [], function, output name, options)."""
    if not keys and any(fn == "distinct" for _, fn, _, _ in aggs):
        return _run_whole_aggs(table, aggs)
    calls = [(col, fn, opts) if opts is not None else (col, fn) for col, fn, _, opts in aggs]
    grouped = table.group_by(keys, use_threads=not ordered).aggregate(calls)
    names = [out for _, _, out, _ in aggs]
    if keys and grouped.column_names[:len(keys)] == keys:  # pyarrow >= 15 puts the keys first
        return grouped.rename_columns(keys + names)
    return grouped.rename_columns(names + keys)


def _run_whole_aggs(table: pa.Table, aggs: list[tuple]) -> pa.Table:
    """One row for the whole input (no group keys) where an aggregation is ``distinct``: pyarrow has that
    function only for groups, so its one-row list (the input's distinct values) is built here."""
    rest = [a for a in aggs if a[1] != "distinct"]
    base = _run_aggs(table, [], rest or [([], "count_all", "__fb_rows", None)], ordered=False)
    cols = {}
    for col, fn, out, _ in aggs:
        if fn == "distinct":
            values = pc.unique(table.column(col).combine_chunks() if table.num_rows else
                               pa.array([], table.schema.field(col).type))
            cols[out] = pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values)
        else:
            cols[out] = base.column(out)
    return pa.table(cols)


def sort_by_keys(table: pa.Table, keys: list[str]) -> pa.Table:
    """Rows ordered by the key columns (works with list columns present, unlike Table.sort_by)."""
    if not keys or table.num_rows == 0:
        return table
    idx = pc.sort_indices(table.select(keys), sort_keys=[(k, "ascending") for k in keys], null_placement="at_end")
    return table.take(idx)


def _pick(table: pa.Table, keys: list[str], order_col: str, cols: list[tuple[str, str]], order_out: str,
          last: bool) -> pa.Table | None:
    """One row per group: the values of ``cols`` (input column, output name) at the group's first (or last) row
    in ``order_col`` order, NULLs included, plus that row's order as ``order_out``; result sorted by keys.
    By row position, so every column type works (Arrow's first/last kernels have none for decimals, and without
    group keys skip a trailing NULL). A row whose order is NULL (the partial of an empty batch) is picked only
    when its group has no other."""
    if not cols:
        return None
    t = table.take(pc.sort_indices(table, sort_keys=[(order_col, "ascending")],
                                   null_placement="at_start" if last else "at_end"))
    fn = "max" if last else "min"
    g = t.select(keys).append_column(IDX, pa.array(np.arange(t.num_rows, dtype=np.int64)))
    res = g.group_by(keys, use_threads=False).aggregate([(IDX, fn)])
    at = res.column(f"{IDX}_{fn}")
    out = {k: res.column(k) for k in keys}
    for col, name in cols + [(order_col, order_out)]:
        out[name] = t.column(col).take(at)
    return sort_by_keys(pa.table(out), keys)


def _combine(parts: list[pa.Table | None], keys: list[str]) -> pa.Table:
    parts = [p for p in parts if p is not None]
    base = parts[0]
    for p in parts[1:]:
        for name in p.column_names:
            if name not in keys:
                base = base.append_column(name, p.column(name))
    return base


WIDE_SUM = pa.decimal128(38, 0)


def _wide_sum_name(out: str) -> str:
    """The partial column of an integer sum, summed as decimal(38, 0) (``_wide`` in its name tells the final step)."""
    return f"{out}_wide"


def aggregate_partial(op, table: pa.Table) -> pa.Table:
    """Pre-aggregate one batch: group columns + partial columns (+ first/last ordinals).

    Integer sums (``sum`` and ``avg``'s sum) are summed as decimal(38, 0): Arrow's int64 sum wraps around
    silently on overflow; the final step checks that the total fits the output type (see :func:`_finish`)."""
    table = ensure_ord(table)
    keys = list(op.groupBy)
    table = normal_keys(table, keys)
    plain, firsts, lasts = [], [], []
    for col, fn, out in _partial_specs(op):
        if fn == "distinct" and table.schema.field(col).type in (pa.float32(), pa.float64()):
            norm = f"__fb_norm_{col}"  # -0.0 and 0.0: one value
            if norm not in table.column_names:
                table = table.append_column(norm, normal_key(table.column(col)))
            col = norm
        if fn == "sum" and pa.types.is_integer(table.schema.field(col).type):
            wide = f"__fb_wide_{col}"
            if wide not in table.column_names:
                table = table.append_column(wide, pc.cast(table.column(col), WIDE_SUM))
            col, out = wide, _wide_sum_name(out)
        if fn == "count_all":
            plain.append(([], "count_all", out, None))
        elif fn == "first":
            firsts.append((col, out))
        elif fn == "last":
            lasts.append((col, out))
        else:
            plain.append((col, fn, out, None))
    parts = [_pick(table, keys, ORD, firsts, "__fb_fo", last=False),
             _pick(table, keys, ORD, lasts, "__fb_lo", last=True)]
    if plain or not (firsts or lasts):
        res = _run_aggs(table, keys, plain or [([], "count_all", "__fb_rows", None)], ordered=False)
        parts.insert(0, sort_by_keys(res, keys))
    return _combine(parts, keys)


def aggregate_final(op, partials: pa.Table, out_schema: pa.Schema | None = None) -> pa.Table:
    """Combine partial tables (from any number of batches) into the final rows, one per group."""
    keys = list(op.groupBy)
    plain, firsts, lasts, distinct = [], [], [], []
    for col, fn, out in _partial_specs(op):
        if fn == "sum" and _wide_sum_name(out) in partials.column_names:
            out = _wide_sum_name(out)
        if fn in ("count", "count_all", "sum"):
            plain.append((out, "sum", out, None))
        elif fn in ("min", "max"):
            plain.append((out, fn, out, None))
        elif fn == "first":
            firsts.append((out, out))
        elif fn == "last":
            lasts.append((out, out))
        elif fn == "distinct":
            distinct.append(out)
    parts = [_pick(partials, keys, "__fb_fo", firsts, "__fb_fo", last=False),
             _pick(partials, keys, "__fb_lo", lasts, "__fb_lo", last=True)]
    base = _run_aggs(partials, keys, plain or [([], "count_all", "__fb_rows", None)], ordered=False)
    parts.insert(0, sort_by_keys(base, keys))
    for out in distinct:
        parts.append(_distinct_count(partials, keys, out))
    return _finish(op, _combine(parts, keys), out_schema)


def _distinct_count(partials, keys, col):
    lists = partials.column(col)
    parents = pc.list_parent_indices(lists)
    flat = pc.list_flatten(lists)
    if not keys:
        n = pc.count_distinct(flat).as_py() if len(flat) else 0
        return pa.table({col: pa.array([n], pa.int64())})
    # every group also gets one NULL value (not counted), so groups whose values were all NULL keep their
    # row with 0; no join back, which would lose the groups whose key is NULL (NULL keys never match)
    exploded = pa.concat_tables([
        partials.select(keys).take(parents).append_column(col, flat),
        partials.select(keys).append_column(col, pa.nulls(partials.num_rows, flat.type))])
    res = _run_aggs(exploded, keys, [(col, "count_distinct", col, None)], ordered=False)
    return sort_by_keys(res, keys)


def _finish(op, combined: pa.Table, out_schema: pa.Schema | None) -> pa.Table:
    cols = {k: combined.column(k) for k in op.groupBy}
    for i, a in enumerate(op.aggregations):
        p = f"__fb_p{i}"
        if a.fn == "avg":
            wide = _wide_sum_name(f"{p}_s") in combined.column_names
            s, n = combined.column(_wide_sum_name(f"{p}_s") if wide else f"{p}_s"), combined.column(f"{p}_n")
            if pa.types.is_decimal(s.type) and not wide:
                col = _decimal_avg(s, n, max(s.type.scale, 6))
            else:
                col = pc.divide(pc.cast(s, pa.float64()), pc.cast(n, pa.float64()))
            col = pc.if_else(pc.equal(n, 0), pa.scalar(None, col.type), col)
        elif a.fn == "count":
            col = pc.fill_null(combined.column(f"{p}_n"), 0)
        elif a.fn == "count_distinct":
            col = combined.column(f"{p}_d")
        elif a.fn == "sum" and _wide_sum_name(f"{p}_v") in combined.column_names:
            col = _int_sum(combined.column(_wide_sum_name(f"{p}_v")), a)
        else:
            col = combined.column(f"{p}_v")
        cols[a.as_] = col
    table = pa.table(cols)
    if out_schema is not None:
        table = table.cast(pa.schema([out_schema.field(n) for n in table.column_names]), safe=False)
    return table


def _int_sum(total, agg) -> pa.ChunkedArray:
    """An integer sum back to int64, or an error naming the aggregation when a total does not fit (PostgreSQL's
    sum(bigint) is numeric and DuckDB's a 128-bit int: never a wrapped-around value)."""
    try:
        return pc.cast(total, pa.int64())
    except pa.ArrowInvalid:
        from ir_compiler.errors import FlowError
        raise FlowError(f"sum of '{agg.field}' as '{agg.as_}' does not fit a 64-bit int in some group "
                        f"(|total| >= 2^63); cast '{agg.field}' to decimal(38,0) before the aggregate") from None


def _decimal_avg(s, n, scale: int):
    """sum / count of decimals, exact, rounded half away from zero to ``scale`` digits (the avg's type
    decimal(38, scale)); in decimal256 so the quotient's precision fits (Arrow's decimal128 division of a
    decimal(38, s) overflows its precision)."""
    s = pc.cast(s, pa.decimal256(50, s.type.scale))
    n = pc.cast(pc.if_else(pc.equal(n, 0), 1, n), pa.decimal256(19, 0))
    q = pc.round(pc.divide(s, n), scale, round_mode="half_towards_infinity")
    return pc.cast(pc.cast(q, pa.decimal256(q.type.precision, scale)), pa.decimal128(38, scale))


def empty_partial(op, in_schema: pa.Schema) -> pa.Table:
    """The partial of an empty input (so a global aggregate of 0 rows still yields its one row)."""
    return aggregate_partial(op, in_schema.empty_table())


# ---- deduplicate -----------------------------------------------------------------------------------
def dedupe_schema(op, schema):
    for i, k in enumerate(op.keys):
        require(schema, k, f"keys[{i}]")
    for i, col in enumerate(_order_by(op)):
        require(schema, col[0], "orderBy")
    return schema


def _order_by(op) -> list[tuple[str, str]]:
    cols = [op.orderBy] if isinstance(op.orderBy, str) else list(op.orderBy or [])
    return [(c[1:], "descending") if c.startswith("-") else (c, "ascending") for c in cols]


def _order_table(table: pa.Table, order: list[tuple[str, str]]) -> tuple[pa.Table, list[tuple[str, str]]]:
    """The sort columns and keys for ``order`` in SQL's order (DuckDB's and PostgreSQL's, NULLs last): a float
    column is sorted as a copy with -0.0 made 0.0 (equal, so a tie), and NaN is the greatest value, so a
    descending order puts it first (Arrow puts NaN last either way, next to the NULLs)."""
    cols, names, keys = [], [], []
    for j, (c, direction) in enumerate(order):
        col = table.column(c)
        if pa.types.is_floating(col.type):
            if direction == "descending":
                cols.append(pc.fill_null(pc.is_nan(col), False))
                names.append(f"__fb_nan{j}")
                keys.append((f"__fb_nan{j}", "descending"))
            col = normal_key(col)
        cols.append(col)
        names.append(f"__fb_o{j}")
        keys.append((f"__fb_o{j}", direction))
    return pa.table(cols, names=names), keys


def dedupe_table(op, table: pa.Table) -> pa.Table:
    """Keep one row per key: ``first``/``last`` by ``orderBy`` (then input order)."""
    if table.num_rows == 0:
        return table
    table = ensure_ord(table)
    t = table.take(pc.sort_indices(*_order_table(table, _order_by(op) + [(ORD, "ascending")])))
    t = t.append_column(IDX, pa.array(np.arange(t.num_rows, dtype=np.int64)))
    fn = "min" if op.keep == "first" else "max"
    g = normal_keys(t.select(list(op.keys) + [IDX]), op.keys)  # -0.0 and 0.0: one key (rows keep their values)
    idx = g.group_by(list(op.keys), use_threads=False).aggregate([(IDX, fn)]).column(f"{IDX}_{fn}")
    return t.take(pc.take(idx, pc.sort_indices(idx))).drop_columns([IDX])


# ---- summarize -------------------------------------------------------------------------------------
def summarize_schema(op, schema):
    for i, f in enumerate(op.fields):
        require(schema, f, f"fields[{i}]")
    from ir_compiler.types import STRING
    out = [Field("field", STRING, False)]
    types = {"count": INT, "nulls": INT, "min": STRING, "max": STRING, "mean": FLOAT, "distinct": INT}
    out += [Field(s, types[s]) for s in op.stats]
    return Schema(out)


_NAN = "NaN"  # stands for every NaN in a summarize ``distinct`` set (each float('nan') object is its own member)


def _float_key(v):
    """Sort key of a summarize min/max value: NaN above every number (PostgreSQL's order)."""
    return (1, 0.0) if isinstance(v, float) and v != v else (0, v)


def _exact_sum(col):
    """The sum of a numeric column, exact for ints (a Python int: Arrow's int64 sum wraps around silently on
    overflow; summed as decimal(38, 0) here) and decimals (decimal(38, s)); a float for floats."""
    if pa.types.is_integer(col.type):
        total = pc.sum(pc.cast(col, WIDE_SUM)).as_py()
        return None if total is None else int(total)
    return pc.sum(col).as_py()


def summarize_partial(op, table: pa.Table) -> dict:
    part = {}
    for f in op.fields:
        col = table.column(f)
        numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)
        mm = pc.min_max(col) if table.num_rows else None
        lo, hi = (mm["min"].as_py(), mm["max"].as_py()) if mm else (None, None)
        floating = pa.types.is_floating(col.type)
        nans = (pc.sum(pc.cast(pc.is_nan(col), pa.int64())).as_py() or 0) if floating and table.num_rows else 0
        if nans:  # min_max skips NaN; in PostgreSQL NaN is the greatest value
            hi = float("nan")
            lo = hi if lo is None else lo
        distinct = set()
        if "distinct" in op.stats:
            values = pc.unique(normal_key(col.drop_null()) if floating else col.drop_null()).to_pylist()
            distinct = {_NAN if isinstance(v, float) and v != v else v for v in values}
        part[f] = {
            "count": table.num_rows, "nulls": col.null_count, "min": lo, "max": hi,
            "sum": (_exact_sum(col) if numeric else None), "nonnull": table.num_rows - col.null_count,
            "distinct": distinct,
        }
    return part


def summarize_merge(a: dict, b: dict) -> dict:
    out = {}
    for f in a:
        x, y = a[f], b[f]
        pick = [v for v in (x["min"], y["min"]) if v is not None]
        pmax = [v for v in (x["max"], y["max"]) if v is not None]
        out[f] = {"count": x["count"] + y["count"], "nulls": x["nulls"] + y["nulls"],
                  "min": min(pick, key=_float_key) if pick else None,
                  "max": max(pmax, key=_float_key) if pmax else None,
                  "sum": None if x["sum"] is None and y["sum"] is None else (x["sum"] or 0) + (y["sum"] or 0),
                  "nonnull": x["nonnull"] + y["nonnull"], "distinct": x["distinct"] | y["distinct"]}
    return out


def _mean(total, n: int):
    """total / n as a float; an exact (int or Decimal) total is divided exactly first, then rounded once."""
    if total is None or not n:
        return None
    if isinstance(total, float):
        return total / n
    import decimal as _decimal
    with _decimal.localcontext() as ctx:
        ctx.prec = 60
        return float(_decimal.Decimal(total) / n)


def summarize_final(op, part: dict) -> pa.Table:
    rows = []
    for f in op.fields:
        p = part.get(f) or {"count": 0, "nulls": 0, "min": None, "max": None, "sum": None, "nonnull": 0,
                            "distinct": set()}
        full = {"field": f, "count": p["count"], "nulls": p["nulls"],  # count: rows; nulls: NULLs among them
                "min": None if p["min"] is None else pv.value_text(p["min"]),  # as PostgreSQL prints it (::text)
                "max": None if p["max"] is None else pv.value_text(p["max"]),
                "mean": _mean(p["sum"], p["nonnull"]),
                "distinct": len(p["distinct"])}
        rows.append({k: full[k] for k in ["field", *op.stats]})
    return pa.Table.from_pylist(rows, schema=_summary_arrow(op))


def _summary_arrow(op) -> pa.Schema:
    types = {"count": pa.int64(), "nulls": pa.int64(), "min": pa.string(), "max": pa.string(),
             "mean": pa.float64(), "distinct": pa.int64()}
    return pa.schema([pa.field("field", pa.string())] + [pa.field(s, types[s]) for s in op.stats])
