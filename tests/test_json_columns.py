"""Columns declared `json` keep being JSON on the way out: nested values in JSONL files and JSON messages (not
strings holding JSON), exact decimals in JSON messages."""
from __future__ import annotations

import decimal
import json
import types

from connectors.codecs import encode
from flow_beam.running import RunOptions, run_document


def test_a_json_message_carries_decimals_as_exact_numbers():
    got = encode(types.SimpleNamespace(format="json"),
                 {"d": decimal.Decimal("12345678901234567890.123456789"), "n": None, "s": "é"})
    assert json.loads(got, parse_float=decimal.Decimal) == {
        "d": decimal.Decimal("12345678901234567890.123456789"), "n": None, "s": "é"}
    assert b"\\u0000" not in got


def test_a_json_column_is_written_as_json_values_to_jsonl_files(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text('{"id": 1, "meta": {"a": [1, 2.50], "b": null}}\n{"id": 2, "meta": null}\n'
                                 '{"id": 3, "meta": "text"}\n')
    out = tmp_path / "out"
    doc = {"kind": "pipeline", "version": "1.0", "id": "jsonout", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(src), "format": "jsonl"},
         "schema": [{"name": "id", "type": "int"}, {"name": "meta", "type": "json"}]},
        {"id": "t", "kind": "transform", "input": "src",
         "ops": [{"op": "expression", "field": "label", "expr": "meta->>'b'"}]},
        {"id": "out", "kind": "target", "input": "t", "connector": "local_fs",
         "config": {"path": str(out), "format": "jsonl"}}]}
    res = run_document(doc, RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert res.status == "completed", res.error
    lines = [json.loads(line, parse_float=decimal.Decimal) for f in sorted(out.iterdir())
             for line in f.read_text().splitlines()]
    by_id = {r["id"]: r for r in lines}
    assert by_id[1]["meta"] == {"a": [1, decimal.Decimal("2.50")], "b": None}  # an object, numbers exact
    assert by_id[2]["meta"] is None
    assert by_id[3]["meta"] == "text"  # a JSON string stays a string
    assert by_id[1]["label"] is None


def test_a_json_column_of_a_json_message_holds_the_json_value():
    import numpy as np

    from connectors.codecs import Record, decode_records
    from ir_compiler.types import INT, JSON, Field, Schema
    schema = Schema([Field("id", INT), Field("meta", JSON)])
    values = [b'{"id": 1, "meta": {"a": [1, 2]}}', b'{"id": 2, "meta": "text"}', b'{"id": 3, "meta": null}',
              b'{"id": 4, "meta": 7}']
    records = [Record(position=i, value=v, key=None, time_us=0, label=f"t[0]@{i}") for i, v in enumerate(values)]
    table, keep, _micros, errors = decode_records("src", types.SimpleNamespace(format="json"), schema, records,
                                                  np.arange(4, dtype=np.int64))
    assert errors is None and keep == [0, 1, 2, 3]
    got = table.column("meta").to_pylist()
    assert [None if v is None else json.loads(v) for v in got] == [{"a": [1, 2]}, "text", None, 7]
    assert got[1] == '"text"'
