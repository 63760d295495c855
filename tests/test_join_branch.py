"""Joins (every type, shuffle and broadcast, three inputs) and branch modes, end to end on DirectRunner."""
import json

import duckdb
import pytest

from conftest import write_csv
from flow_beam.running import RunOptions, run_document

ORDERS = [[1, "C1", 10], [2, "C2", 20], [3, "C9", 30], [4, None, 40]]
CUSTOMERS = [["C1", "FR"], ["C2", "DE"], ["C3", "US"]]
EXPECTED = {  # (order_id, customer_id, country) sets per join type
    "inner": {(1, "C1", "FR"), (2, "C2", "DE")},
    "left": {(1, "C1", "FR"), (2, "C2", "DE"), (3, "C9", None), (4, None, None)},
    "right": {(1, "C1", "FR"), (2, "C2", "DE"), (None, "C3", "US")},
    "full": {(1, "C1", "FR"), (2, "C2", "DE"), (3, "C9", None), (4, None, None), (None, "C3", "US")},
    "semi": {(1, "C1", None), (2, "C2", None)},
    "anti": {(3, "C9", None), (4, None, None)},
}


def make_doc(tmp_path, join):
    return {"kind": "pipeline", "version": "1.0", "id": "joins", "nodes": [
        {"id": "orders", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "o"), "format": "csv"},
         "schema": [{"name": "order_id", "type": "int"}, {"name": "customer_id", "type": "string"},
                    {"name": "amount", "type": "int"}]},
        {"id": "customers", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "c"), "format": "csv"},
         "schema": [{"name": "customer_id", "type": "string"}, {"name": "country", "type": "string"}]},
        {"id": "j", "kind": "join", "inputs": ["orders", "customers"], **join},
        {"id": "out", "kind": "target", "input": "j", "schema": "public.joined", "lineage": False}]}


def setup_files(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "c").mkdir()
    write_csv(tmp_path / "o" / "o.csv", ["order_id", "customer_id", "amount"], ORDERS)
    write_csv(tmp_path / "c" / "c.csv", ["customer_id", "country"], CUSTOMERS)


def run(tmp_path, doc):
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "completed", result.error
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        return con.execute("select * from public.joined").fetch_arrow_table().to_pylist(), result
    finally:
        con.close()


@pytest.mark.parametrize("strategy", ["shuffle", "broadcast", "auto", "auto-too-big"])
@pytest.mark.parametrize("jtype", list(EXPECTED))
def test_join_types(tmp_path, monkeypatch, jtype, strategy):
    setup_files(tmp_path)
    if strategy == "auto-too-big":  # auto, with a 1-byte broadcast limit: the customers are shuffled
        monkeypatch.setenv("FLOW_BEAM_BROADCAST_BYTES", "1")
        strategy = "auto"
    rows, result = run(tmp_path, make_doc(tmp_path, {"type": jtype, "on": ["customer_id"], "strategy": strategy}))
    got = {(r["order_id"], r["customer_id"], r.get("country")) for r in rows}
    assert got == EXPECTED[jtype]
    assert result.nodes["j"].rowsIn == len(ORDERS) + len(CUSTOMERS)
    assert result.nodes["j"].rowsOut == len(EXPECTED[jtype])
    if strategy == "broadcast" and jtype in ("right", "full"):
        assert any("cannot broadcast" in w for w in result.warnings)


def test_per_input_keys_keep_both_columns_and_three_inputs(tmp_path):
    setup_files(tmp_path)
    (tmp_path / "r").mkdir()
    write_csv(tmp_path / "r" / "r.csv", ["code", "region"], [["C1", "EU"], ["C2", "EU"]])
    doc = make_doc(tmp_path, {"type": "inner", "on": [
        {"orders": "customer_id", "customers": "customer_id", "regions": "code"}],
        "prefixes": {"customers": "c_"}})
    doc["nodes"].insert(2, {"id": "regions", "kind": "source", "connector": "local_fs",
                            "config": {"path": str(tmp_path / "r"), "format": "csv"}})
    doc["nodes"][3]["inputs"] = ["orders", "customers", "regions"]
    rows, _ = run(tmp_path, doc)
    assert sorted((r["order_id"], r["c_customer_id"], r["c_country"], r["code"], r["region"]) for r in rows) == [
        (1, "C1", "FR", "C1", "EU"), (2, "C2", "DE", "C2", "EU")]


def test_branch_all_matches_and_first_match(tmp_path):
    (tmp_path / "o").mkdir()
    write_csv(tmp_path / "o" / "o.csv", ["order_id", "amount"], [[1, 5], [2, 50], [3, 500]])

    def doc(mode):
        return {"kind": "pipeline", "version": "1.0", "id": "br", "nodes": [
            {"id": "src", "kind": "source", "connector": "local_fs",
             "config": {"path": str(tmp_path / "o"), "format": "csv"}},
            {"id": "b", "kind": "branch", "input": "src", "mode": mode,
             "routes": [{"name": "over10", "condition": "amount > 10"},
                        {"name": "over100", "condition": "amount > 100"}]},
            {"id": "t1", "kind": "target", "input": "b.over10", "schema": f"public.{mode}_over10"},
            {"id": "t2", "kind": "target", "input": "b.over100", "schema": f"public.{mode}_over100"}]}

    all_result = run_document(doc("all_matches"), RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    first_result = run_document(doc("first_match"), RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert all_result.nodes["b"].routes == {"over10": 2, "over100": 1}
    assert first_result.nodes["b"].routes == {"over10": 2, "over100": 0}  # a route no row took is listed with 0
    assert first_result.nodes["b"].rowsFiltered == 1  # amount 5 matches no route and there is no otherwise
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from public.all_matches_over100").fetchone() == (1,)
    assert con.execute("select count(*) from information_schema.tables where table_name = "
                       "'first_match_over100'").fetchone() == (1,)
    assert con.execute("select count(*) from public.first_match_over100").fetchone() == (0,)
    con.close()
    json.dumps(all_result.to_json())
