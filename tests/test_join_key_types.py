"""Joins of keys of different types (int with decimal or float, date with timestamp, decimals of different
scales) store exactly the planned column types and DuckDB's rows. Found by a probe: keys were matched in their
common type and kept it, so an inner join of int with decimal(10,2) keys wrote DECIMAL(38,2) where `plan` said
int (and per-input keys both became the common type), and a right/full join on a shared key of two types failed
at the load. A right/full join's shared key holds either side's values: planned (and stored) in
the common type; every other key keeps its input's type."""
import datetime as dt
import decimal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flow_beam.running import RunOptions, run_document
from ir_compiler.check import check_document
from ir_compiler.propagate import SchemaContext

PAIRS = {  # left type, right type, left values, right values
    "int-decimal": ("int", "decimal(10,2)", pa.int64(), pa.decimal128(10, 2), [1, 2, 3, None],
                    [decimal.Decimal("1.00"), decimal.Decimal("2.50"), decimal.Decimal("4.00"), None]),
    "int-float": ("int", "float", pa.int64(), pa.float64(), [1, 2, 3, None], [1.0, 2.5, 4.0, None]),
    "date-timestamp": ("date", "timestamp", pa.date32(), pa.timestamp("us"),
                       [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None],
                       [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2, 5), dt.datetime(2024, 1, 3), None]),
    "decimal-decimal": ("decimal(10,2)", "decimal(12,4)", pa.decimal128(10, 2), pa.decimal128(12, 4),
                        [decimal.Decimal("1.50"), decimal.Decimal("2.00"), None],
                        [decimal.Decimal("1.5000"), decimal.Decimal("2.0001"), None]),
}


def _doc(tmp_path, pair, join_type, strategy, shared):
    lt, rt, la, ra, lv, rv = PAIRS[pair]
    for name, t, vals, other in (("a", la, lv, "x"), ("b", ra, rv, "y")):
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        pq.write_table(pa.table({"k": pa.array(vals, t), other: pa.array(range(len(vals)), pa.int64())}),
                       folder / "p.parquet")
    on = ["k"] if shared else [{"a": "k", "b": "k"}]
    join = {"id": "j", "kind": "join", "inputs": ["a", "b"], "type": join_type, "on": on, "strategy": strategy}
    if not shared:
        join["prefixes"] = {"b": "r_"}
    return {"kind": "pipeline", "version": "1.0", "id": "jk", "nodes": [
        {"id": "a", "kind": "source", "connector": "local_fs", "config": {"path": str(tmp_path / "a"),
                                                                          "format": "parquet"},
         "schema": [{"name": "k", "type": lt}, {"name": "x", "type": "int"}]},
        {"id": "b", "kind": "source", "connector": "local_fs", "config": {"path": str(tmp_path / "b"),
                                                                          "format": "parquet"},
         "schema": [{"name": "k", "type": rt}, {"name": "y", "type": "int"}]},
        join,
        {"id": "t", "kind": "target", "input": "j", "schema": "public.t", "loadMode": "append", "lineage": False}]}


DUCK = {"int": "BIGINT", "float": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMP", "string": "VARCHAR"}


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("join_type", ["inner", "left", "right", "full"])
@pytest.mark.parametrize("strategy, shared", [("shuffle", True), ("broadcast", True), ("shuffle", False)])
def test_stored_types_are_the_planned_ones_and_rows_are_duckdbs(tmp_path, pair, join_type, strategy, shared):
    doc = _doc(tmp_path, pair, join_type, strategy, shared)
    planned = check_document(doc, ctx=SchemaContext()).types.of("j")
    db = tmp_path / "w.duckdb"
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{db}"))
    assert result.status in ("completed", "completed_with_errors"), result.error
    con = duckdb.connect(str(db))
    try:
        stored = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 't' "
                             "ORDER BY ordinal_position").fetchall()
        want = [(f.name, DUCK.get(f.type.name) or str(f.type).upper().replace(" ", "")) for f in planned]
        assert [(n, t.replace(" ", "")) for n, t in stored] == want
        got = con.execute("SELECT * FROM public.t").fetchall()
        a, b = (f"read_parquet('{tmp_path / n / 'p.parquet'}')" for n in ("a", "b"))
        jt = join_type.upper()
        if shared:
            sql = f"SELECT {'COALESCE(a.k, b.k)' if join_type in ('right', 'full') else 'a.k'} AS k, a.x, b.y " \
                  f"FROM {a} a {jt} JOIN {b} b ON a.k = b.k"
        else:
            sql = f"SELECT a.k, a.x, b.k AS r_k, b.y FROM {a} a {jt} JOIN {b} b ON a.k = b.k"
        oracle = con.execute(sql).fetchall()
    finally:
        con.close()
    norm = (lambda rows: sorted((tuple(str(v) if v is not None else "" for v in r) for r in rows)))
    if pair in ("int-float", "int-decimal", "decimal-decimal", "date-timestamp") and \
            join_type in ("right", "full") and shared:
        got, oracle = [(float(r[0]) if isinstance(r[0], (int, float, decimal.Decimal)) else r[0], *r[1:])
                       for r in got], [(float(r[0]) if isinstance(r[0], (int, float, decimal.Decimal)) else r[0],
                                        *r[1:]) for r in oracle]
    assert norm(got) == norm(oracle)
