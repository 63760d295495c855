"""One NUL byte in a text value must not fail a whole PostgreSQL load (issue 11): the row goes to the DLQ (or the
target's errors consumer) with the reason, the rest load. Real PostgreSQL, a fresh database per test."""
import json

from connectors.warehouse import open_warehouse
from flow_beam.running import RunOptions, run_document
from pg_util import fresh_database


def nul_doc(tmp_path, dlq=True):
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    rows = [{"id": 1, "name": "ok", "tags": ["a"]}, {"id": 2, "name": "bad\u0000name", "tags": ["b"]},
            {"id": 3, "name": "fine", "tags": ["x\u0000y"]}, {"id": 4, "name": "last", "tags": None}]
    (folder / "r.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    d = {"kind": "pipeline", "version": "1.0", "id": "nul", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(folder), "format": "jsonl"},
         "schema": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"},
                    {"name": "tags", "type": "array<string>"}]},
        {"id": "tgt", "kind": "target", "input": "src", "schema": "public.people", "lineage": False}]}
    if dlq:
        d["errorHandling"] = {"dlq": {"enabled": True, "table": "dlq.errors"}}
    return d


def test_nul_byte_rows_go_to_the_dlq_and_the_rest_load(tmp_path):
    with fresh_database() as url:
        result = run_document(nul_doc(tmp_path), RunOptions(warehouse=url))
        assert result.status == "completed_with_errors", result.error
        tgt = result.nodes["tgt"]
        assert (tgt.status, tgt.rowsIn, tgt.rowsLoaded, tgt.rowsErrored) == ("loaded", 4, 2, 2)
        assert not any("balance" in w for w in tgt.warnings)
        wh = open_warehouse(url)
        assert wh.read(None, "SELECT id, name FROM public.people ORDER BY id").to_pylist() == [
            {"id": 1, "name": "ok"}, {"id": 4, "name": "last"}]
        dlq = wh.read(None, "SELECT node_id, error, row FROM dlq.errors ORDER BY row").to_pylist()
        assert [d["node_id"] for d in dlq] == ["tgt", "tgt"]
        assert all(d["error"] == "text contains a NUL byte, which PostgreSQL text cannot store" for d in dlq)
        assert sorted(json.loads(d["row"])["id"] for d in dlq) == [2, 3]


def test_without_a_dlq_the_rest_still_loads_and_the_run_says_why(tmp_path):
    with fresh_database() as url:
        result = run_document(nul_doc(tmp_path, dlq=False), RunOptions(warehouse=url))
        assert result.nodes["tgt"].rowsLoaded == 2
        assert "NUL byte" in (result.error or "") + " ".join(result.nodes["tgt"].warnings)
        assert open_warehouse(url).read("public.people").num_rows == 2


def test_duckdb_keeps_such_rows(tmp_path):
    url = f"duckdb://{tmp_path / 'w.duckdb'}"
    result = run_document(nul_doc(tmp_path), RunOptions(warehouse=url))
    assert result.status == "completed", result.error
    assert open_warehouse(url).read("public.people").num_rows == 4
