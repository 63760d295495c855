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


# ---- 2, 6, 10. lookup_join matches as the join node (and SQL) does ------------------------------------------
def _lookup_op(on, fields, rows=None, type_="left"):
    from ir_compiler.models.ops import LookupJoin
    return LookupJoin(lookup={"rows": rows or [{"x": 1}]}, on=on, fields=fields, type=type_)


def _lookup(op, left: pa.Table, lookup: pa.Table):
    from ir_compiler.ops.lookup import lookup_apply, prepare_lookup
    return lookup_apply(op, left, prepare_lookup(op, lookup))


def _duck_lookup(left: pa.Table, lookup: pa.Table, lk: str, rk: str, field: str, type_="left"):
    """DuckDB's answer: (id, field) per input row, the first lookup row per key (lookup rows are unique here)."""
    con = duckdb.connect()
    con.register("la", left)
    con.register("lb", lookup)
    # DuckDB tables (a join straight over registered Arrow tables does not match -0.0 with 0.0 in DuckDB 1.5)
    con.execute("CREATE TABLE a AS SELECT * FROM la; CREATE TABLE b AS SELECT * FROM lb")
    try:
        return sorted(con.execute(f"SELECT a.id, b.{field} FROM a {type_} JOIN b ON a.{lk} = b.{rk}").fetchall(),
                      key=lambda r: r[0])
    finally:
        con.close()


@pytest.mark.parametrize("lookup_f", [0.0, -0.0])
@pytest.mark.parametrize("type_", ["left", "inner"])
def test_lookup_join_matches_minus_zero_with_zero(lookup_f, type_):
    left = pa.table({"id": [1, 2, 3], "f": [0.0, -0.0, 1.5]})
    lk = pa.table({"f": [lookup_f, float("nan")], "name": ["zero", "nan"]})
    res = _lookup(_lookup_op(["f"], ["name"], type_=type_), left, lk)
    got = sorted(zip(res.table.column("id").to_pylist(), res.table.column("name").to_pylist()))
    assert got == _duck_lookup(left, lk, "f", "f", "name", type_)
    assert res.filtered == (1 if type_ == "inner" else 0)
    # the input's key keeps its value (-0.0 stays -0.0)
    assert [math.copysign(1, v) for v in res.table.sort_by("id").column("f").to_pylist()[:2]] == [1, -1]


def test_lookup_first_row_per_key_treats_minus_zero_as_zero():
    from connectors.lookups import first_per_key
    t = pa.table({"f": [-0.0, 0.0, 1.0], "v": ["a", "b", "c"]})
    assert first_per_key(t, ["f"]).column("v").to_pylist() == ["a", "c"]


@pytest.mark.parametrize("left_col,right_col", [
    (pa.array([1, 2, 3, 4], pa.int64()), pa.array([1.5, 2.0, None], pa.float64())),
    (pa.array([1, 2, 3, 4], pa.int64()), pa.array(["1.2345", "2", "9"], pa.string()).cast(pa.decimal128(10, 4))),
    (pa.array(["1.20", "2.00", "3.10", "4"], pa.string()).cast(pa.decimal128(12, 2)),
     pa.array(["1.2345", "2", "3.1"], pa.string()).cast(pa.decimal128(10, 4))),
    (pa.array(["1.00", "2.50", "3", None], pa.string()).cast(pa.decimal128(12, 2)), pa.array([1, 2, 3], pa.int32())),
    (pa.array([1, 2, 3, 4], pa.int32()), pa.array([4, 2, 9], pa.int64())),
])
def test_lookup_join_matches_keys_in_their_common_type(left_col, right_col):
    """Before: the lookup key was cast to the input key's type (1.5 → int: an Arrow error; 1.2345 → decimal(12,2):
    a rescaling error); now both sides are compared in the common type, as the join node, DuckDB and PostgreSQL."""
    left = pa.table({"id": [1, 2, 3, 4], "k": left_col})
    lk = pa.table({"c": right_col, "name": ["a", "b", "c"]})
    res = _lookup(_lookup_op({"k": "c"}, ["name"]), left, lk)
    got = sorted(zip(res.table.column("id").to_pylist(), res.table.column("name").to_pylist()))
    assert got == _duck_lookup(left, lk, "k", "c", "name")


def _lookup_doc(rows, on, field_type="int"):
    return {"kind": "pipeline", "version": "1.0", "id": "p", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "/nowhere/", "format": "csv"},
         "schema": [{"name": "id", "type": "int"}, {"name": "k", "type": field_type}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [
            {"op": "lookup_join", "lookup": {"rows": rows}, "on": on, "fields": ["name"]}]},
        {"id": "tgt", "kind": "target", "input": "t", "schema": "public.out", "loadMode": "append"}]}


@pytest.mark.parametrize("field_type,rows,on,path", [
    ("int", [{"c": "x", "name": "a"}], {"k": "c"}, "nodes[1].ops[0].on.k"),
    ("string", [{"k": 7, "name": "a"}], ["k"], "nodes[1].ops[0].on[0]"),
    ("date", [{"k": 7, "name": "a"}], ["k"], "nodes[1].ops[0].on[0]"),
])
def test_lookup_join_key_types_are_checked_as_the_join_node_does(field_type, rows, on, path):
    from ir_compiler.check import check_document
    from ir_compiler.errors import ValidationFailed
    from ir_compiler.check import default_context

    with pytest.raises(ValidationFailed) as info:
        check_document(_lookup_doc(rows, on, field_type), ctx=default_context())
    (e,) = [i for i in info.value.issues if i.severity == "error"]
    assert e.path == path and "incompatible types; add a cast" in e.message, (e.path, e.message)


def test_lookup_join_carries_a_list_column():
    """Before: 'Data type list<item: string> is not supported in join non-key field arr'."""
    left = pa.table({"id": [1, 2, 3], "k": [1, 2, 5], "arr": pa.array([["a", "b"], None, []], pa.list_(pa.string()))})
    lk = pa.table({"k": [1, 2], "name": ["one", "two"], "tags": pa.array([["x"], ["y", "z"]])})
    res = _lookup(_lookup_op(["k"], ["name", "tags"]), left, lk)
    got = sorted(res.table.to_pylist(), key=lambda r: r["id"])
    assert got == [{"id": 1, "k": 1, "arr": ["a", "b"], "name": "one", "tags": ["x"]},
                   {"id": 2, "k": 2, "arr": None, "name": "two", "tags": ["y", "z"]},
                   {"id": 3, "k": 5, "arr": [], "name": None, "tags": None}]


# ---- 3. validate unique: duplicates as GROUP BY counts them (-0.0 = 0.0, NaN = NaN, NULLs one group) ---------
@pytest.mark.parametrize("fields", [["f"], ["f", "s"]])
def test_validate_unique_counts_minus_zero_as_a_duplicate_of_zero(fields):
    from ir_compiler.lower.validate import _DupCountFn
    t = pa.table({"f": [0.0, 1.0, -0.0, float("nan"), float("nan"), None, None],
                  "s": [None, "a", None, "b", "b", None, None]})
    got = sum(_DupCountFn(fields).process((0, [t.slice(0, 3), t.slice(3)])))
    con = duckdb.connect()
    con.register("lt", t)
    con.execute("CREATE TABLE t AS SELECT * FROM lt")
    cols = ", ".join(fields)
    want = con.execute(f"SELECT count(*) - (SELECT count(*) FROM (SELECT {cols} FROM t GROUP BY {cols})) FROM t"
                       ).fetchone()[0]
    assert got == want == 3


# ---- 4. deduplicate orderBy a float with NaN: NaN is the greatest value (first in descending order) -----------
@pytest.mark.parametrize("order_by", ["-o", "o", ["-o", "-p"], ["o", "-p"]])
@pytest.mark.parametrize("keep", ["first", "last"])
@pytest.mark.parametrize("seed", range(3))
def test_deduplicate_orders_nan_as_duckdb(order_by, keep, seed):
    import random

    from ir_compiler.models.ops import Deduplicate

    rnd = random.Random(seed)
    n = 60
    vals = [float("nan"), None, 0.0, -0.0, 1.5, -2.0, 3.5]
    t = pa.table({"rid": list(range(n)), "k": [rnd.randint(0, 6) for _ in range(n)],
                  "o": pa.array([rnd.choice(vals) for _ in range(n)], pa.float64()),
                  "p": pa.array([rnd.choice(vals) for _ in range(n)], pa.float64())})
    op = Deduplicate(keys=["k"], orderBy=order_by, keep=keep)
    got = sorted(sets.dedupe_table(op, t).column("rid").to_pylist())
    cols = [order_by] if isinstance(order_by, str) else order_by
    sql_order = ", ".join(f"{c.lstrip('-')} {'DESC' if c.startswith('-') else 'ASC'} NULLS LAST" for c in cols)
    if keep == "last":  # the last row in (orderBy, input order) = the first in the reversed order
        sql_order = ", ".join(f"{c.lstrip('-')} {'ASC' if c.startswith('-') else 'DESC'} NULLS FIRST" for c in cols)
        sql_order += ", rid DESC"
    else:
        sql_order += ", rid ASC"
    con = duckdb.connect()
    con.register("lt", t)
    con.execute("CREATE TABLE t AS SELECT * FROM lt")
    want = sorted(r[0] for r in con.execute(
        f"SELECT rid FROM (SELECT rid, row_number() OVER (PARTITION BY k ORDER BY {sql_order}) AS rn FROM t) "
        f"WHERE rn = 1").fetchall())
    assert got == want


def test_a_nan_with_its_sign_bit_set_is_the_same_key_as_nan():
    """Arrow groups floats by their bits: NaN and -NaN (e.g. from negating a NaN) were two keys; SQL has one NaN."""
    import numpy as np

    from ir_compiler.models.ops import Deduplicate

    f = pa.array(np.array([np.nan, -np.nan, 0.0, -0.0]))
    assert np.signbit(f.to_numpy()[1])
    t = pa.table({"k": [1, 1, 1, 1], "f": f, "v": ["a", "b", "c", "d"]})
    out = sets.dedupe_table(Deduplicate(keys=["k", "f"]), t)
    assert out.column("v").to_pylist() == ["a", "c"]
    assert sets.normal_keys(t, ["f"]).group_by(["k", "f"]).aggregate([]).num_rows == 2
