"""An aggregate with an empty groupBy over no rows gives its one row (count 0, the rest NULL, as DuckDB) with the
planned output types. Found by a probe: every min/max/sum/avg/first/last column of that row was an untyped NULL,
so the target table was created with VARCHAR columns (and the next run with rows failed or stored text)."""
import datetime as dt
import decimal

import pyarrow as pa
import pyarrow.parquet as pq

from flow_beam.running import RunOptions, run_document

TYPES = {"i": ("int", pa.int64()), "f": ("float", pa.float64()), "d": ("decimal(10,2)", pa.decimal128(10, 2)),
         "s": ("string", pa.string()), "dt": ("date", pa.date32()), "ts": ("timestamp", pa.timestamp("us")),
         "b": ("bool", pa.bool_())}
FNS = {"i": ["sum", "avg", "min", "max", "first", "last", "count_distinct"], "f": ["sum", "avg", "max"],
       "d": ["sum", "avg", "min", "first"], "s": ["min", "last", "count"], "dt": ["max", "first"],
       "ts": ["min", "last"], "b": ["first", "max"]}


def _doc(folder):
    aggs = [{"fn": "count", "as": "n"}] + [{"field": c, "fn": fn, "as": f"{fn}_{c}"} for c, fns in FNS.items()
                                           for fn in fns]
    return {"kind": "pipeline", "version": "1.0", "id": "emptyagg", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(folder), "format": "parquet"},
         "schema": [{"name": c, "type": t} for c, (t, _) in TYPES.items()]},
        {"id": "agg", "kind": "transform", "input": "src", "ops": [
            {"op": "filter", "condition": "i > 100"},
            {"op": "aggregate", "groupBy": [], "aggregations": aggs}]},
        {"id": "out", "kind": "target", "input": "agg", "schema": "app.agg", "loadMode": "append", "lineage": False}]}


def _types(db, table):
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                           "'app' AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
        rows = con.execute(f"SELECT * FROM app.{table}").fetchall()
    finally:
        con.close()
    return dict(cols), rows


def test_the_row_of_no_rows_has_the_types_of_the_row_of_rows(tmp_path):
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    row = {"i": 1, "f": 1.5, "d": decimal.Decimal("2.50"), "s": "x", "dt": dt.date(2024, 1, 2),
           "ts": dt.datetime(2024, 1, 2, 3), "b": True}
    schema = pa.schema([(c, t) for c, (_, t) in TYPES.items()])
    pq.write_table(pa.Table.from_pylist([row], schema), empty / "a.parquet")  # filtered out: no rows reach it
    pq.write_table(pa.Table.from_pylist([{**row, "i": 101}], schema), full / "a.parquet")
    result = run_document(_doc(empty), RunOptions(warehouse=f"duckdb://{tmp_path / 'e.duckdb'}"))
    assert result.status == "completed", result.error
    got_types, got_rows = _types(tmp_path / "e.duckdb", "agg")
    result = run_document(_doc(full), RunOptions(warehouse=f"duckdb://{tmp_path / 'f.duckdb'}"))
    assert result.status == "completed", result.error
    want_types, _ = _types(tmp_path / "f.duckdb", "agg")
    assert got_types == want_types
    assert "VARCHAR" not in {t for c, t in got_types.items() if not c.endswith("_s")}
    # DuckDB's answer over no rows: count and count_distinct 0, everything else NULL
    import duckdb
    sql = {"n": "count(*)"}
    for c, fns in FNS.items():
        for fn in fns:
            sql[f"{fn}_{c}"] = f"count(DISTINCT {c})" if fn == "count_distinct" else f"{fn}({c})"
    oracle = duckdb.sql("SELECT " + ", ".join(sql[n] for n in got_types)
                        + " FROM (SELECT 1 AS i, 1.5 AS f, 2.5::DECIMAL(10,2) AS d, 'x' AS s, DATE '2024-01-02' AS dt,"
                          " TIMESTAMP '2024-01-02 03:00:00' AS ts, true AS b) WHERE i > 100").fetchall()
    assert got_rows == oracle
