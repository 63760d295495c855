"""End to end on DirectRunner with a real DuckDB file: the SPEC's validate example, a pipeline using every
batch node kind, and bad input (each gives a clear error or quarantined rows, and failed loads change
nothing)."""
import json
import os

import duckdb

from conftest import doc_with_path, write_csv
from flow_beam.running import RunOptions, run_document


def run(doc, tmp_path, **kw):
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    return run_document(doc, RunOptions(warehouse=url, **kw)), url


def query(tmp_path, sql):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def balanced(result):
    for node_id, r in result.nodes.items():
        assert not any("row balance" in w for w in r.warnings), (node_id, r.warnings)


def test_spec_validate_example(tmp_path, spec_doc):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "orders.csv", ["order_id", "amount"], [[1, 10.5], [2, -3], [3, 7], [4, 0]])
    result, _ = run(doc_with_path(spec_doc, folder), tmp_path)
    assert result.status == "completed_with_errors", result.error
    v = result.nodes["v"]
    assert (v.rowsIn, v.rowsOut, v.rowsQuarantined) == (4, 2, 2)
    assert result.nodes["tgt"].rowsLoaded == 2 and result.nodes["tgt"].status == "loaded"
    assert query(tmp_path, "select order_id, amount from public.ds_orders order by 1") == [(1, 10.5), (3, 7.0)]
    q = query(tmp_path, "select node_id, rule_id, error, row, run_id from dlq.orders order by row")
    assert [(r[0], r[1]) for r in q] == [("v", "amt-positive")] * 2
    assert sorted(json.loads(r[3])["order_id"] for r in q) == [2, 4]
    assert all(r[4] == result.runId for r in q)
    lineage = json.loads(query(tmp_path, "select _flow_lineage from public.ds_orders limit 1")[0][0])
    assert lineage["runId"] == result.runId and lineage["sourceNodeId"] == "src"
    balanced(result)


def test_dataset_abort_stops_the_load(tmp_path, spec_doc):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "orders.csv", ["order_id", "amount"], [[1, -1], [2, -3]])  # nothing valid: rowCount < 1
    result, _ = run(doc_with_path(spec_doc, folder), tmp_path)
    assert result.status == "failed"
    assert result.nodes["tgt"].status == "aborted" and "rowCount" in result.nodes["tgt"].error
    assert query(tmp_path, "select count(*) from information_schema.tables where table_name = 'ds_orders'") == [(0,)]
    assert query(tmp_path, "select count(*) from dlq.orders") == [(2,)]


def test_missing_input_folder_is_a_clear_failure(tmp_path, spec_doc):
    result, _ = run(doc_with_path(spec_doc, tmp_path / "does-not-exist"), tmp_path)
    assert result.status == "failed"
    assert "does-not-exist" in result.error and "Traceback" not in result.error


def test_malformed_csv_rows_go_to_the_dlq(tmp_path, spec_doc):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "orders.csv").write_text("order_id,amount\n1,5\n2,6,EXTRA\n3,7\n")
    spec_doc["errorHandling"] = {"dlq": {"enabled": True, "table": "dlq.errors"}}
    result, _ = run(doc_with_path(spec_doc, folder), tmp_path)
    assert result.status == "completed_with_errors", result.error
    src = result.nodes["src"]
    assert (src.rowsIn, src.rowsOut, src.rowsQuarantined) == (3, 2, 1)
    (row,) = query(tmp_path, "select node_id, error, row from dlq.errors")
    assert row[0] == "src" and "line" in row[1] and "EXTRA" in row[2]
    assert query(tmp_path, "select count(*) from public.ds_orders") == [(2,)]


def test_unrouted_row_errors_fail_the_run_and_block_loads(tmp_path, spec_doc):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "orders.csv").write_text("order_id,amount\n1,5\n2,6,EXTRA\n")
    result, _ = run(doc_with_path(spec_doc, folder), tmp_path)  # no DLQ, nothing reads src.errors
    assert result.status == "failed"
    assert "src" in result.error and "EXTRA" in result.error
    assert result.nodes["tgt"].status == "aborted"


def test_target_with_mismatched_columns_is_unchanged(tmp_path, spec_doc):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "orders.csv", ["order_id", "amount"], [[1, 5]])
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute("create schema public; create table public.ds_orders(order_id bigint, other varchar)")
    con.execute("insert into public.ds_orders values (9, 'keep')")
    con.close()
    result, _ = run(doc_with_path(spec_doc, folder), tmp_path)
    assert result.status == "failed"
    assert "amount" in result.nodes["tgt"].error and "nothing was written" in result.nodes["tgt"].error
    assert query(tmp_path, "select * from public.ds_orders") == [(9, "keep")]


EVERY_KIND = {
    "kind": "pipeline", "version": "1.0", "id": "every-kind",
    "nodes": [
        {"id": "orders", "kind": "source", "connector": "local_fs",
         "config": {"path": "IN/orders", "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv",
                    "atomicity": {"stagingFolder": ".processing/", "successFolder": ".done/",
                                  "failureFolder": ".failed/"}}},
        {"id": "customers", "kind": "source", "connector": "local_fs",
         "config": {"path": "IN/customers", "format": "jsonl"}},
        {"id": "prep", "kind": "transform", "input": "orders", "ops": [
            {"op": "rename", "from": "amt", "to": "amount"},
            {"op": "cast", "field": "amount", "to": "float", "onError": "quarantine"},
            {"op": "add_field", "field": "source_system", "value": "shop"},
            {"op": "expression", "field": "amount_eur", "expr": "round(amount * 0.5, 2)"},
            {"op": "filter", "condition": "status <> 'test'"},
            {"op": "hash", "fields": ["customer_id"], "output": "customer_hash", "algorithm": "sha256"},
            {"op": "merge", "fields": ["status", "source_system"], "into": "tag", "separator": "/"},
            {"op": "split", "field": "tag", "delimiter": "/", "into": ["tag_status", "tag_system"]},
            {"op": "map_values", "field": "status", "mapping": {"paid": "P"}, "default": "X"},
            {"op": "drop", "fields": ["tag"]},
            {"op": "deduplicate", "keys": ["order_id"], "keep": "first"}]},
        {"id": "v", "kind": "validate", "input": "prep",
         "rowLevel": [{"id": "pos", "field": "amount", "rule": "gt:0", "onFail": "quarantine"},
                      {"id": "known", "field": "customer_id", "rule": "regex:^C[0-9]+$", "onFail": "drop"}],
         "datasetLevel": {"rowCount": {"min": 1}, "unique": {"fields": ["order_id"]},
                          "nullRatio": {"field": "amount", "max": 0.5, "onFail": "warn"},
                          "columns": {"required": ["order_id", "amount"]}},
         "quarantine": {"table": "dlq.every_kind_quarantine"}},
        {"id": "j", "kind": "join", "inputs": ["v", "customers"], "type": "left",
         "on": [{"v": "customer_id", "customers": "id"}], "prefixes": {"customers": "cust_"}},
        {"id": "route", "kind": "branch", "input": "j", "mode": "first_match",
         "routes": [{"name": "big", "condition": "amount >= 100"}], "otherwise": "small"},
        {"id": "agg", "kind": "transform", "input": "route.small", "ops": [
            {"op": "aggregate", "groupBy": ["cust_country"], "aggregations": [
                {"fn": "count", "as": "n"}, {"field": "amount", "fn": "sum", "as": "total"},
                {"field": "amount", "fn": "avg", "as": "mean"}, {"field": "order_id", "fn": "first", "as": "first_id"},
                {"field": "order_id", "fn": "last", "as": "last_id"},
                {"field": "customer_id", "fn": "count_distinct", "as": "customers"}]}]},
        {"id": "big_orders", "kind": "target", "input": "route.big", "schema": "public.big_orders",
         "loadMode": "upsert", "upsertKey": "order_id"},
        {"id": "small_by_country", "kind": "target", "input": "agg", "schema": "public.small_by_country",
         "loadMode": "truncate"},
        {"id": "bad_rows", "kind": "target", "input": "prep.errors", "schema": "public.bad_rows"},
        {"id": "small_file", "kind": "target", "input": "route.small", "connector": "local_fs",
         "config": {"path": "OUT/small", "format": "jsonl"}},
        {"id": "arch", "kind": "archive", "input": "big_orders", "action": "copy", "destination": "ARCH"},
    ],
}


def every_kind_doc(tmp_path):
    text = json.dumps(EVERY_KIND).replace("IN/", f"{tmp_path}/in/").replace("OUT/", f"{tmp_path}/out/")
    return json.loads(text.replace('"ARCH"', json.dumps(str(tmp_path / "archive"))))


def test_every_node_kind_end_to_end(tmp_path):
    (tmp_path / "in" / "orders").mkdir(parents=True)
    (tmp_path / "in" / "customers").mkdir(parents=True)
    write_csv(tmp_path / "in" / "orders" / "a.csv", ["order_id", "customer_id", "amt", "status"], [
        [1, "C1", "150", "paid"], [2, "C2", "20", "paid"], [3, "C1", "30", "open"], [4, "C3", "-5", "paid"],
        [5, "C2", "oops", "paid"], [6, "C9", "40", "test"], [2, "C2", "21", "paid"], [7, "zz", "10", "paid"]])
    (tmp_path / "in" / "customers" / "c.jsonl").write_text(
        '{"id": "C1", "country": "FR"}\n{"id": "C2", "country": "DE"}\n')
    result, _ = run(every_kind_doc(tmp_path), tmp_path)
    assert result.status == "completed_with_errors", result.error
    n = result.nodes
    assert (n["orders"].rowsIn, n["orders"].rowsOut) == (8, 8)
    assert n["prep"].rowsQuarantined == 1 and n["prep"].rowsFiltered == 2  # 'oops' cast; test row + dup id 2
    assert (n["v"].rowsQuarantined, n["v"].rowsFiltered, n["v"].rowsOut) == (1, 1, 3)
    assert n["route"].routes == {"big": 1, "small": 2}
    assert query(tmp_path, "select order_id, status, cust_country, amount_eur, tag_status, tag_system "
                           "from public.big_orders") == [(1, "P", "FR", 75.0, "paid", "shop")]
    assert query(tmp_path, "select cust_country, n, total, mean, first_id, last_id, customers "
                           "from public.small_by_country order by 1") == [
        ("DE", 1, 20.0, 20.0, 2, 2, 1), ("FR", 1, 30.0, 30.0, 3, 3, 1)]
    (bad,) = query(tmp_path, "select node_id, error from public.bad_rows")
    assert bad[0] == "prep" and "amount" in bad[1]
    assert query(tmp_path, "select rule_id from dlq.every_kind_quarantine") == [("pos",)]
    files = os.listdir(tmp_path / "out" / "small")
    lines = [json.loads(x) for f in files for x in open(tmp_path / "out" / "small" / f)]
    assert sorted(r["order_id"] for r in lines) == [2, 3] and isinstance(lines[0]["amount"], float)
    assert os.listdir(tmp_path / "in" / "orders" / ".done") == ["a.csv"]
    assert sorted(os.listdir(tmp_path / "archive")) == ["a.csv", "c.jsonl"]  # both inputs fed the target
    checks = {c["check"]: c["passed"] for c in n["v"].checks}
    assert checks == {"rowCount": True, "unique": True, "nullRatio": True, "columns": True}
    balanced(result)


def test_failed_run_moves_files_to_failure_folder(tmp_path):
    (tmp_path / "in" / "orders").mkdir(parents=True)
    (tmp_path / "in" / "customers").mkdir(parents=True)
    write_csv(tmp_path / "in" / "orders" / "a.csv", ["order_id", "customer_id", "amt", "status"],
              [[4, "C3", "-5", "paid"]])  # every row quarantined → rowCount check aborts
    (tmp_path / "in" / "customers" / "c.jsonl").write_text('{"id": "C1", "country": "FR"}\n')
    result, _ = run(every_kind_doc(tmp_path), tmp_path)
    assert result.status == "failed"
    assert os.listdir(tmp_path / "in" / "orders" / ".failed") == ["a.csv"]
    assert not (tmp_path / "archive").exists()
    assert result.nodes["big_orders"].status == "aborted"
