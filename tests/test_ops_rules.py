"""Transform ops and row rules on Arrow tables (no pipeline), plus summarize, table sources and freshness
end to end."""
import datetime as dt
import json

import duckdb
import pyarrow as pa
import pytest

from conftest import write_csv
from flow_beam.running import RunOptions, run_document
from ir_compiler.lower.validate import evaluate_checks, rule_failures
from ir_compiler.models.nodes import DatasetLevel
from ir_compiler.models.ops import Cast, Hash, MapValues, MaskPii, Split
from ir_compiler.ops import OPS
from ir_compiler.rowrules import parse_rule

T = pa.table({"s": ["a@b.io", "bad", None, "xy"], "n": [1, 5, None, 12], "code": ["1", "x", "3", None]})


@pytest.mark.parametrize("rule,column,expected", [
    ("not_null", "n", [False, False, True, False]),
    ("gt:2", "n", [True, False, False, False]),
    ("between:2,10", "n", [True, False, False, True]),
    ("in:a@b.io|xy", "s", [False, True, False, False]),
    ("email", "s", [False, True, False, True]),
    ("regex:^[a-z]+$", "s", [True, False, False, False]),
    ("min_length:3", "s", [False, False, False, True]),
    ("max_length:2", "s", [True, True, False, False]),
    ("type:int", "code", [False, True, False, False]),
    ("expr:n < 10", None, [False, False, True, True]),
])
def test_row_rules(rule, column, expected):
    assert rule_failures(parse_rule(rule), column, T).to_pylist() == expected


def test_column_ops():
    t = pa.table({"email": ["ann@x.io", None], "card": ["4111222233334444", "12"], "status": ["paid", "new"],
                  "full": ["a b c", "d"]})
    out = OPS["mask_pii"].apply(MaskPii(field="email", strategy="email"), t).table
    assert out.column("email").to_pylist() == ["a***@x.io", None]
    out = OPS["mask_pii"].apply(MaskPii(field="card", strategy="partial", keepLast=4), t).table
    assert out.column("card").to_pylist() == ["************4444", "**"]  # never the clear value
    out = OPS["map_values"].apply(MapValues(field="status", mapping={"paid": "P"}), t).table
    assert out.column("status").to_pylist() == ["P", "new"]
    out = OPS["split"].apply(Split(field="full", delimiter=" ", into=["first", "rest"]), t).table
    assert out.column("first").to_pylist() == ["a", "d"] and out.column("rest").to_pylist() == ["b c", None]
    out = OPS["split"].apply(Split(field="full", delimiter=" ", output="parts"), t).table
    assert out.column("parts").to_pylist() == [["a", "b", "c"], ["d"]]
    h1 = OPS["hash"].apply(Hash(fields=["status"], output="h", algorithm="sha256", salt="s"), t).table
    h2 = OPS["hash"].apply(Hash(fields=["status"], output="h", algorithm="xxhash64"), t).table
    assert len(h1.column("h")[0].as_py()) == 64 and len(h2.column("h")[0].as_py()) == 16


def test_cast_routes_per_on_error():
    t = pa.table({"d": ["21/11/2026", "nope", None]})
    res = OPS["cast"].apply(Cast(field="d", to="date", format="%d/%m/%Y", onError="quarantine"), t)
    assert res.table.column("d").to_pylist() == [dt.date(2026, 11, 21), None]
    assert res.errors[0].column("d").to_pylist() == ["nope"]
    res = OPS["cast"].apply(Cast(field="d", to="date", format="%d/%m/%Y", onError="null"), t)
    assert res.table.column("d").to_pylist() == [dt.date(2026, 11, 21), None, None] and not res.errors


def test_freshness_check():
    dl = DatasetLevel.model_validate({"freshness": {"field": "ts", "maxAgeMinutes": 60, "onFail": "warn"}})
    now = dt.datetime(2026, 11, 22, 12, 0)
    fresh = {"rows": 1, "nulls": 0, "fresh": dt.datetime(2026, 11, 22, 11, 30), "columns": {"ts"}}
    stale = {**fresh, "fresh": dt.datetime(2026, 11, 22, 9, 0)}
    assert evaluate_checks(dl, fresh, 0, None, now)[0][1] is True
    (name, ok, msg, on_fail), = evaluate_checks(dl, stale, 0, None, now)
    assert (name, ok, on_fail) == ("freshness", False, "warn") and "180 min" in msg


def test_summarize_and_table_source(tmp_path):
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", ["id", "amount"], [[1, 10], [2, None], [3, 30], [3, 30]])
    url = f"duckdb://{tmp_path / 'w.duckdb'}"
    load = {"kind": "pipeline", "version": "1.0", "id": "load", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "in"), "format": "csv"}},
        {"id": "t", "kind": "target", "input": "src", "schema": "raw.orders"}]}
    assert run_document(load, RunOptions(warehouse=url)).status == "completed"
    profile = {"kind": "pipeline", "version": "1.0", "id": "profile", "nodes": [
        {"id": "tbl", "kind": "source", "connector": "table", "config": {"table": "raw.orders"}},
        {"id": "q", "kind": "source", "connector": "table",
         "config": {"table": "raw.orders", "query": "SELECT id FROM raw.orders WHERE id > 1"}},
        {"id": "s", "kind": "transform", "input": "tbl", "ops": [{"op": "summarize", "fields": ["id", "amount"]}]},
        {"id": "out", "kind": "target", "input": "s", "schema": "public.profile", "lineage": False},
        {"id": "out2", "kind": "target", "input": "q", "schema": "public.ids", "lineage": False}]}
    result = run_document(profile, RunOptions(warehouse=url))
    assert result.status == "completed", result.error
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    rows = con.execute('select field, count, nulls, min, max, mean, "distinct" from public.profile order by 1').fetchall()
    assert rows == [("amount", 4, 1, "10", "30", pytest.approx(70 / 3), 2), ("id", 4, 0, "1", "3", 2.25, 3)]
    assert sorted(con.execute("select id from public.ids").fetchall()) == [(2,), (3,), (3,)]
    con.close()
    assert json.dumps(result.to_json())


def test_a_lookup_with_repeated_keys_uses_the_first_row_and_says_so(tmp_path):
    """lookup_join and an enrich lookup take the first row of a repeated key; the run says how many rows were
    left out (before: silently)."""
    import json

    from flow_beam.running import RunOptions, run_document
    data = tmp_path / "in"
    data.mkdir()
    (data / "x.csv").write_text("id,v\n1,a\n2,b\n")
    doc = {"kind": "pipeline", "version": "1.0", "id": "lk", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(data), "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
         "schema": [{"name": "id", "type": "int"}, {"name": "v", "type": "string"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [{"op": "lookup_join", "lookup": {"rows": [
            {"k": 1, "name": "one"}, {"k": 1, "name": "uno"}, {"k": 2, "name": "two"}, {"k": 2, "name": "dos"}]},
            "on": {"id": "k"}, "fields": ["name"]}]},
        {"id": "out", "kind": "target", "input": "t", "connector": "local_fs",
         "config": {"path": str(tmp_path / "out"), "format": "jsonl"}}]}
    res = run_document(doc, RunOptions(warehouse=f"duckdb:///{tmp_path}/w.duckdb"))
    assert res.status == "completed", res.error
    assert "node t ops[0] (lookup_join): 2 lookup row(s) repeated a key; the first row of each key was used" \
        in res.warnings
    rows = [json.loads(line) for f in (tmp_path / "out").iterdir() for line in f.read_text().splitlines()]
    assert sorted((r["id"], r["name"]) for r in rows) == [(1, "one"), (2, "two")]


def test_split_into_a_name_twice_is_refused():
    from ir_compiler.ops.common import OpTypeError
    from ir_compiler.types import STRING, Field, Schema
    with pytest.raises(OpTypeError, match="named twice"):
        OPS["split"].schema(Split(field="full", delimiter=" ", into=["x", "x"]), Schema([Field("full", STRING)]))


@pytest.mark.parametrize("value, keep, want", [("abcd", 4, "****"), ("a", 4, "*"), ("abcde", 4, "*bcde"),
                                               ("4111", 100, "****"), ("", 4, "")])
def test_partial_mask_never_writes_the_clear_value(value, keep, want):
    t = pa.table({"card": [value]})
    out = OPS["mask_pii"].apply(MaskPii(field="card", strategy="partial", keepLast=keep), t).table
    assert out.column("card").to_pylist() == [want]
