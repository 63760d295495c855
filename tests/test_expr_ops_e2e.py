"""The expression-related ops end to end on DirectRunner into DuckDB: merge after a left join (all fields NULL),
``cast … onError: null`` counted and surfaced as a warning, timestamp-vs-date filters and constant expressions."""
import duckdb
import pyarrow as pa

from conftest import write_csv
from flow_beam.running import RunOptions, run_document
from ir_compiler.models.ops import Cast, Merge
from ir_compiler.ops import OPS


def _doc(folder, ops, lookup=None):
    nodes = [{"id": "src", "kind": "source", "connector": "local_fs",
              "config": {"path": str(folder / "main"), "format": "csv"}}]
    first = "src"
    if lookup:
        nodes.append({"id": "other", "kind": "source", "connector": "local_fs",
                      "config": {"path": str(folder / "other"), "format": "csv"}})
        nodes.append({"id": "j", "kind": "join", "inputs": ["src", "other"], "type": "left",
                      "on": [{"src": "id", "other": "oid"}], "prefixes": {"other": "o_"}})
        first = "j"
    nodes.append({"id": "t", "kind": "transform", "input": first, "ops": ops})
    nodes.append({"id": "tgt", "kind": "target", "input": "t", "schema": "public.out"})
    return {"kind": "pipeline", "version": "1.0", "id": "expr-ops", "nodes": nodes}


def _run(tmp_path, doc):
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    return run_document(doc, RunOptions(warehouse=url))


def _query(tmp_path, sql):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_merge_of_all_null_fields_gives_empty_text_not_a_crash():
    t = pa.table({"a": pa.array([None, "x", None], pa.string()), "b": pa.array([None, None, 2], pa.int64())})
    out = OPS["merge"].apply(Merge(fields=["a", "b"], into="m", separator="-"), t).table
    assert out.column("m").to_pylist() == ["", "x", "2"]  # PostgreSQL concat_ws('-', a, b)
    allnull = pa.table({"a": pa.nulls(2, pa.string()), "b": pa.nulls(2, pa.string())})
    assert OPS["merge"].apply(Merge(fields=["a", "b"], into="m"), allnull).table.column("m").to_pylist() == ["", ""]


def test_cast_on_error_null_counts_the_nulled_values():
    t = pa.table({"amount": ["1", "x", " 2 ", "y", None, "3.5"]})
    res = OPS["cast"].apply(Cast(field="amount", to="int", onError="null"), t)
    assert res.table.column("amount").to_pylist() == [1, None, 2, None, None, None]
    assert res.notes == {"cast amount → int: value(s) set to NULL (onError null)": 3}


def test_merge_after_left_join_and_cast_null_warning_end_to_end(tmp_path):
    (tmp_path / "main").mkdir()
    (tmp_path / "other").mkdir()
    write_csv(tmp_path / "main" / "a.csv", ["id", "amount", "ts"],
              [[1, "10", "2026-06-01 08:00:00"], [2, "bad", "2026-05-31 23:00:00"], [3, "oops", "2026-07-01 00:00:00"],
               [4, "7", "2026-06-02 00:00:00"]])
    write_csv(tmp_path / "other" / "b.csv", ["oid", "city", "zip"], [[1, "Paris", "75001"]])
    ops = [{"op": "cast", "field": "amount", "to": "int", "onError": "null"},
           {"op": "cast", "field": "ts", "to": "timestamp"},
           {"op": "merge", "fields": ["o_city", "o_zip"], "into": "place", "separator": " "},
           {"op": "filter", "condition": "ts >= DATE '2026-06-01' AND current_date > DATE '2020-01-01'"},
           {"op": "expression", "field": "day", "expr": "DATE '2020-01-01'"},
           {"op": "expression", "field": "trimmed", "expr": "btrim('## x #', '# ')"}]
    result = _run(tmp_path, _doc(tmp_path, ops, lookup=True))
    assert result.error is None and result.status == "completed_with_errors"  # a warning: values were nulled
    assert result.nodes["t"].rowsFiltered == 1
    assert any("cast amount → int" in w and w.endswith(": 2") for w in result.nodes["t"].warnings), \
        result.nodes["t"].warnings
    rows = _query(tmp_path, "select id, amount, place, cast(day as varchar), trimmed from public.out order by id")
    assert rows == [(1, 10, "Paris 75001", "2020-01-01", "x"), (3, None, "", "2020-01-01", "x"),
                    (4, 7, "", "2020-01-01", "x")]


def test_cast_on_error_fail_with_a_dlq_loads_the_good_rows_and_sets_the_bad_ones_aside(tmp_path):
    """SPEC §2: a failed row goes to the DLQ when it is enabled, else it fails the run. The other rows of its
    batch go on through the next ops and load (they were all dropped with it: 999 of 1000 rows lost)."""
    (tmp_path / "main").mkdir()
    write_csv(tmp_path / "main" / "a.csv", ["id", "amount"],
              [[i, "oops" if i == 500 else str(i)] for i in range(1000)])
    ops = [{"op": "cast", "field": "amount", "to": "int", "onError": "fail"},
           {"op": "expression", "field": "twice", "expr": "amount * 2"}]
    doc = {**_doc(tmp_path, ops), "errorHandling": {"dlq": {"enabled": True, "table": "dlq.errs"}}}
    result = _run(tmp_path, doc)
    t = result.nodes["t"]
    assert result.error is None and result.status == "completed_with_errors", result.error
    assert (t.rowsIn, t.rowsOut, t.rowsQuarantined) == (1000, 999, 1) and not t.warnings, t.warnings
    assert result.nodes["tgt"].rowsLoaded == 999
    assert _query(tmp_path, "select count(*), sum(twice), min(id), max(id) from public.out") == \
        [(999, 2 * (sum(range(1000)) - 500), 0, 999)]
    (error, row), = _query(tmp_path, "select error, row from dlq.errs")
    assert "cannot cast 'oops' in column 'amount' to int" in error and '"id": 500' in str(row).replace("'", '"')

    del doc["errorHandling"]  # no DLQ: the run fails naming the value, and nothing loads
    (tmp_path / "wh.duckdb").unlink()
    result = _run(tmp_path, doc)
    assert result.status == "failed" and "cannot cast 'oops'" in result.error
    assert result.nodes["tgt"].rowsLoaded == 0
