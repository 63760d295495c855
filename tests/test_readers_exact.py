"""Readers keep values as they are (issue #10): strings stay strings, inference only picks a type that holds every
sampled value exactly, a declared type that cannot hold a value is a row error with the reason, inference reads a
bounded sample, and `flow-beam test` reads its rows the way `run` reads the data."""
import decimal
import gzip
import json
import os

import duckdb
import pyarrow as pa
import pytest

from connectors.formats import infer_schema, read_file
from flow_beam.running import RunOptions, run_document
from flow_beam.testing import run_embedded_tests
from ir_compiler.types import Field, Schema, parse_type


def schema(**cols):
    return Schema([Field(n, parse_type(t)) for n, t in cols.items()])


def read_all(path, fmt, declared=None, hint=None):
    rows, bad = [], []
    for chunk in read_file(str(path), fmt, {}, declared, hint=hint):
        rows += chunk.batch.to_pylist()
        bad += chunk.bad_rows
    return rows, bad


def put(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- JSON strings that look like dates ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_date_like_strings_stay_text(tmp_path, fmt):
    rows = [{"d": "2023-05-01", "t": "2023-05-01T10:00:00", "n": {"at": "2023-05-01"}},
            {"d": "2024-02-29", "t": "2024-02-29 12:00:00", "n": {"at": "x"}}]
    text = "\n".join(json.dumps(r) for r in rows) if fmt == "jsonl" else json.dumps(rows)
    path = put(tmp_path, f"a.{fmt}", text)
    got, bad = read_all(path, fmt)
    assert bad == []
    assert [(r["d"], r["t"]) for r in got] == [(r["d"], r["t"]) for r in rows]
    assert [json.loads(r["n"]) for r in got] == [r["n"] for r in rows]
    assert infer_schema([str(path)], fmt).types()["d"] == parse_type("string")
    got, _ = read_all(path, fmt, schema(d="string", t="string"))
    assert got == [{"d": "2023-05-01", "t": "2023-05-01T10:00:00"}, {"d": "2024-02-29", "t": "2024-02-29 12:00:00"}]
    got, _ = read_all(path, fmt, schema(d="date"))  # declared: converted
    assert [r["d"].isoformat() for r in got] == ["2023-05-01", "2024-02-29"]


def test_jsonl_dates_append_into_an_existing_text_column(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"id": 1, "d": "2023-05-01"}\n{"id": 2, "d": "2023-05-02"}\n')
    wh = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("create schema s; create table s.t (id bigint, d varchar); insert into s.t values (0, 'old')")
    con.close()
    doc = {"kind": "pipeline", "version": "1.0", "id": "json-dates", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(folder), "format": "jsonl"}},
        {"id": "tgt", "kind": "target", "input": "src", "schema": "s.t", "loadMode": "append", "lineage": False}]}
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{wh}", record_history=False))
    assert result.status == "completed", result.error
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select id, d from s.t order by id").fetchall() == [(0, "old"), (1, "2023-05-01"),
                                                                           (2, "2023-05-02")]
    con.close()


# ---- numbers ----------------------------------------------------------------------------------------------
def test_csv_leading_zeros_big_integers_and_overflow_stay_exact(tmp_path):
    path = put(tmp_path, "a.csv", "zip,id,big,f,x\n02134,9007199254740993,12345678901234567890,1e999,0.1\n"
                                  "10001,1,1,1.5,1.25\n")
    types = infer_schema([str(path)], "csv").types()
    assert {k: str(v) for k, v in types.items()} == {"zip": "string", "id": "int", "big": "decimal(38,0)",
                                                     "f": "string", "x": "float"}
    got, bad = read_all(path, "csv")
    assert bad == []
    assert got[0] == {"zip": "02134", "id": 9007199254740993, "big": decimal.Decimal("12345678901234567890"),
                      "f": "1e999", "x": 0.1}
    # declared types that cannot hold a value: row errors with the reason, the rest is read
    got, bad = read_all(path, "csv", schema(zip="int", f="float", big="int"))
    assert got == [{"zip": 10001, "f": 1.5, "big": 1}]
    assert len(bad) == 1 and bad[0].line == 2
    assert "'f'" in bad[0].reason and "1e999" in bad[0].reason


def test_csv_more_digits_than_a_float_holds_is_decimal(tmp_path):
    path = put(tmp_path, "a.csv", "v\n0.12345678901234567\n1.5\n")
    got, _ = read_all(path, "csv")
    assert [r["v"] for r in got] == [decimal.Decimal("0.12345678901234567"), decimal.Decimal("1.5")]


def test_json_numbers_stay_exact(tmp_path):
    lines = [{"a": 9007199254740993, "b": 12345678901234567890, "c": 1.5, "s": "02134"},
             {"a": 1.5, "b": 1, "c": 2, "s": "x"}]
    text = "\n".join(json.dumps(r) for r in lines) + '\n{"a": 2, "b": 3, "c": 1e999, "s": "y"}\n'
    path = put(tmp_path, "a.jsonl", text)
    got, bad = read_all(path, "jsonl")
    assert bad == []
    assert [r["a"] for r in got] == [decimal.Decimal("9007199254740993"), decimal.Decimal("1.5"), decimal.Decimal(2)]
    assert got[0]["b"] == decimal.Decimal("12345678901234567890")
    assert [r["c"] for r in got] == ["1.5", "2", "1e999"]  # Infinity is no number: text, as written
    assert got[0]["s"] == "02134"
    got, bad = read_all(path, "jsonl", schema(c="float"))
    assert [r["c"] for r in got] == [1.5, 2.0] and len(bad) == 1 and "1e999" in bad[0].reason


def test_declared_decimal_from_json_is_exact(tmp_path):
    path = put(tmp_path, "a.jsonl", '{"p": 1.005}\n{"p": 2.675}\n')
    got, bad = read_all(path, "jsonl", schema(p="decimal(10,2)"))
    assert bad == [] and [r["p"] for r in got] == [decimal.Decimal("1.01"), decimal.Decimal("2.68")]


# ---- inference reads a bounded sample -----------------------------------------------------------------------
def test_inference_reads_a_bounded_sample_of_a_big_csv(tmp_path):
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wt") as fh:  # ~14 MB decompressed; the tail is not even UTF-8
        fh.write("id,amount\n")
        for i in range(1_000_000):
            fh.write(f"{i},{i % 97}.5\n")
    with open(path, "ab") as fh:
        fh.write(gzip.compress(b"\xff\xfe,\xff\n"))
    types = infer_schema([str(path)], "csv").types()
    assert (str(types["id"]), str(types["amount"])) == ("int", "float")


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_inference_reads_a_bounded_sample_of_a_big_json_file(tmp_path, fmt):
    items = [json.dumps({"id": i, "name": f"n{i}"}) for i in range(400_000)]
    text = "\n".join(items) + "\n{broken" if fmt == "jsonl" else "[" + ",".join(items) + ", {broken"
    path = put(tmp_path, f"big.{fmt}", text)
    assert os.path.getsize(path) > 8 << 20
    types = infer_schema([str(path)], fmt).types()
    assert (str(types["id"]), str(types["name"])) == ("int", "string")


def test_a_value_beyond_the_sample_is_a_row_error_with_the_reason(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    with open(folder / "a.csv", "w") as fh:
        fh.write("id,qty\n")
        fh.writelines(f"{i},{i % 10}\n" for i in range(700_000))  # ~8 MB: more than the sample
        fh.write("700000,lots\n")
    doc = {"kind": "pipeline", "version": "1.0", "id": "sampled", "errorHandling": {"dlq": {"enabled": True}},
           "nodes": [{"id": "src", "kind": "source", "connector": "local_fs",
                      "config": {"path": str(folder), "format": "csv"}},
                     {"id": "tgt", "kind": "target", "input": "src", "schema": "s.t", "loadMode": "append"}]}
    wh = tmp_path / "wh.duckdb"
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{wh}", record_history=False))
    assert result.nodes["tgt"].rowsLoaded == 700_000 and result.nodes["src"].rowsErrored == 1
    con = duckdb.connect(str(wh), read_only=True)
    (error,) = con.execute("select error from dlq.sampled").fetchone()
    assert "line 700002" in error and "'lots'" in error and "declare" in error
    assert con.execute("select typeof(qty) from s.t limit 1").fetchone() == ("BIGINT",)
    con.close()


# ---- flow-beam test reads its rows like run reads the data ---------------------------------------------
def _test_doc(folder, fmt):
    return {"kind": "pipeline", "version": "1.0", "id": "typed-tests", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(folder), "format": fmt}},
        {"id": "t", "kind": "transform", "input": "src", "ops": [{"op": "filter", "condition": "id + 1 > 1"}]},
        {"id": "tgt", "kind": "target", "input": "t", "schema": "s.t", "loadMode": "append", "lineage": False}],
        "tests": [{"name": "typed", "inputs": {"src": [{"id": "1"}, {"id": "2", "extra": "x"}]},
                   "expect": {"tgt": [{"id": 1, "extra": None}, {"id": 2, "extra": "x"}]}}]}


def test_test_rows_are_converted_like_the_run_converts_the_data(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id,extra\n5,y\n")
    doc = _test_doc(folder, "csv")
    outcomes = run_embedded_tests(doc)
    assert [o.passed for o in outcomes] == [True], outcomes[0].details
    wh = tmp_path / "wh.duckdb"
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{wh}", record_history=False))
    assert result.status == "completed", result.error
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select id, extra from s.t").fetchall() == [(5, "y")]
    con.close()


def test_test_rows_without_data_follow_the_source_format(tmp_path):
    doc = _test_doc(tmp_path / "absent", "csv")  # csv: "1" is the number 1, as in a csv file
    assert [o.passed for o in run_embedded_tests(doc)] == [True]
    doc = _test_doc(tmp_path / "absent", "jsonl")  # jsonl: "1" is text, and `id + 1` is a type error
    outcome = run_embedded_tests(doc)[0]
    assert not outcome.passed and any("id" in d for d in outcome.details)


def test_test_rows_keep_fields_missing_from_the_first_row():
    from ir_compiler.lower.sources import test_rows_table
    table, bad = test_rows_table([{"a": 1}, {"a": 2, "b": "x"}], None, False, "jsonl")
    assert bad == [] and table.drop_columns(["__fb_ord"]).to_pylist() == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]
    table, bad = test_rows_table([{"a": "1"}, {"a": "x"}], Schema([Field("a", parse_type("int"))]), True)
    assert table.column("a").to_pylist() == [1] and len(bad) == 1 and "'x'" in bad[0].reason
    assert pa.types.is_int64(table.schema.field("a").type)


def test_an_all_null_parquet_column_keeps_the_type_the_file_declares(tmp_path):
    """Found by a probe: a Parquet timestamp column whose sampled values were all NULL was inferred as string
    (a freshness check on it then failed validation); Parquet and Avro state their types, text formats do not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from connectors.formats import infer_schema
    pq.write_table(pa.table({"id": [1, 2], "ts": pa.array([None, None], pa.timestamp("us")),
                             "n": pa.nulls(2)}), tmp_path / "a.parquet")
    schema = infer_schema([str(tmp_path / "a.parquet")], "parquet")
    assert str(schema["ts"].type) == "timestamp" and str(schema["n"].type) == "string"
    (tmp_path / "a.csv").write_text("id,ts\n1,\n2,\n")
    assert str(infer_schema([str(tmp_path / "a.csv")], "csv")["ts"].type) == "string"
