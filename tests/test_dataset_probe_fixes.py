"""Fixes for discrepancies a probe found against DuckDB / PostgreSQL (summarize, lookup_join, validate unique,
deduplicate): each test takes DuckDB (or PostgreSQL) as the oracle where the answer is theirs."""
import math

import duckdb
import pyarrow as pa
import pytest

from ir_compiler.ops import sets

INT64_MAX = 2**63 - 1


def _summarize(op, parts):
    merged = None
    for p in parts:
        part = sets.summarize_partial(op, p)
        merged = part if merged is None else sets.summarize_merge(merged, part)
    return {r["field"]: r for r in sets.summarize_final(op, merged).to_pylist()}


class _SumOp:
    fields = ["i", "f"]
    stats = ["count", "nulls", "min", "max", "mean", "distinct"]


def _duck(table: pa.Table, sql: str):
    con = duckdb.connect()
    con.register("t", table)
    try:
        return con.execute(sql).fetchone()
    finally:
        con.close()


# ---- 1. summarize mean of an int column: exact sum, no int64 wrap-around -------------------------------------
@pytest.mark.parametrize("values", [
    [1, None, INT64_MAX, INT64_MAX, -3],
    [INT64_MAX] * 5,
    [-INT64_MAX - 1, -INT64_MAX - 1, 7],
    [3, 4, None],
])
def test_summarize_int_mean_does_not_wrap(values):
    t = pa.table({"i": pa.array(values, pa.int64()), "f": pa.array([1.0] * len(values))})
    got = _summarize(_SumOp, [t.slice(0, 2), t.slice(2)])["i"]
    want = _duck(t, "SELECT avg(i::hugeint)::double FROM t")[0]
    assert got["mean"] == pytest.approx(want, rel=1e-15)


# ---- 5. summarize floats: max is NaN when one is present, distinct counts NaN (and -0.0/0.0) once ------------
@pytest.mark.parametrize("files", [
    [[float("nan"), -0.0], [0.0, float("nan")], [2.5]],
    [[1.0, None], [float("nan")], [float("nan"), float("nan"), -1.0]],
    [[float("nan")], [None], [float("nan")]],
    [[3.0, -0.0], [0.0], [None]],
])
def test_summarize_float_nan_max_and_distinct(files):
    parts = [pa.table({"i": pa.array([1] * len(f), pa.int64()), "f": pa.array(f, pa.float64())}) for f in files]
    got = _summarize(_SumOp, parts)["f"]
    whole = pa.concat_tables(parts)
    lo, hi, distinct = _duck(whole, "SELECT min(f), max(f), count(DISTINCT f) FROM t")
    assert got["distinct"] == distinct
    for ours, theirs in ((got["min"], lo), (got["max"], hi)):
        if theirs is None:
            assert ours is None
        elif math.isnan(theirs):
            assert ours == "NaN"  # PostgreSQL's max(f)::text
        else:
            assert float(ours) == theirs
