"""Quarantine and DLQ tables keep `row` as JSON (SPEC §3: `row (JSON)`): JSONB in PostgreSQL, JSON in DuckDB, so
`row->>'amount'` works; numbers exact (a decimal is a JSON number, not a string); a float NaN is PostgreSQL's
text of it; a row whose text is not JSON is kept as a JSON string. Before: text columns, decimals as strings."""
import decimal
import json

from flow_beam.running import RunOptions, run_document


def _doc(data):
    return {"kind": "pipeline", "version": "1.0", "id": "side", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(data), "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"},
         "schema": [{"name": "id", "type": "int"}, {"name": "amount", "type": "decimal(20,10)"},
                    {"name": "score", "type": "float"}, {"name": "n", "type": "string"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [
            {"op": "cast", "field": "n", "to": "int", "onError": "quarantine"}]},
        {"id": "v", "kind": "validate", "input": "t", "quarantine": {"table": "dlq.quarantined"},
         "rowLevel": [{"id": "positive", "field": "amount", "rule": "gt:0", "onFail": "quarantine"}]},
        {"id": "out", "kind": "target", "input": "v", "schema": "public.ok", "loadMode": "append"}],
        "errorHandling": {"dlq": {"enabled": True, "table": "dlq.errors"}}}


def test_quarantine_and_dlq_rows_are_json(tmp_path, warehouse):
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_text("id,amount,score,n\n1,1234567890.0123456789,1.5,7\n2,-0.5,NaN,8\n3,2,0.25,x\n")
    res = run_document(_doc(data), RunOptions(warehouse=warehouse))
    assert res.status == "completed_with_errors", res.error
    from connectors.warehouse import open_warehouse
    wh = open_warehouse(warehouse)
    q = wh.read(None, "SELECT row FROM dlq.quarantined").column(0).to_pylist()
    e = wh.read(None, "SELECT row FROM dlq.errors").column(0).to_pylist()
    (quarantined,) = [json.loads(r, parse_float=decimal.Decimal) for r in q]
    assert quarantined == {"id": 2, "amount": decimal.Decimal("-0.5000000000"), "score": "NaN", "n": 8}
    assert any(json.loads(r).get("n") == "x" for r in e)  # the cast error's row, to the DLQ
    types = {r["table_name"]: r["data_type"] for r in wh.read(None, (
        "SELECT table_name, data_type FROM information_schema.columns WHERE column_name = 'row'")).to_pylist()}
    assert {types["quarantined"], types["errors"]} <= {"jsonb", "JSON"}
    got = wh.read(None, "SELECT row->>'amount' AS a FROM dlq.quarantined").column(0).to_pylist()
    assert [decimal.Decimal(v) for v in got] == [decimal.Decimal("-0.5")]
    ok = wh.read(None, "SELECT amount FROM public.ok").column(0).to_pylist()
    assert ok == [decimal.Decimal("1234567890.0123456789")]


def test_text_that_is_not_json_is_kept_as_a_json_string():
    from ir_compiler.lower.context import json_text_column
    assert json_text_column(['{"a": 1}', "not json", '{"x": NaN}', None, "7"]).to_pylist() == \
        ['{"a": 1}', '"not json"', '"{\\"x\\": NaN}"', None, "7"]
    nul = json_text_column([json.dumps({"a": "x\x00y", "b": "back\\u0000slash"})]).to_pylist()[0]
    assert json.loads(nul) == {"a": "x\\u0000y", "b": "back\\u0000slash"}  # NUL shown, JSONB can store it
