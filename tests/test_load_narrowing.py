"""Rows that an existing table's column would silently change are refused before anything is written, on DuckDB
and PostgreSQL. Found by a probe: a timestamp appended into a DATE column lost its time, decimal(12,4) into
DECIMAL(5,2) was rounded (2.9999 -> 3.00), a float into a DuckDB BIGINT rounded (1.5 -> 2) — and an upsert whose
key column was narrower than the rows' key matched nothing on the next run, so every re-run doubled the rows."""
import json

import pytest

from connectors.warehouse import open_warehouse
from flow_beam.running import RunOptions, run_document

CASES = [  # declared source type, value, table column type, what the error says
    ("timestamp", "2024-05-01T13:45:00", "DATE", "time of day"),
    ("decimal(12,4)", "2.9999", "DECIMAL(5,2)", "rounded"),
    ("float", 1.5, "BIGINT", "rounded"),
    ("float", 1.23456, "DECIMAL(10,2)", "rounded"),
    ("decimal(12,2)", "2.5", "BIGINT", "rounded"),
]


def _doc(folder, ftype, mode):
    return {"kind": "pipeline", "version": "1.0", "id": "narrow", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(folder), "format": "jsonl"},
         "schema": [{"name": "k", "type": ftype}, {"name": "v", "type": "string"}]},
        {"id": "out", "kind": "target", "input": "src", "schema": "app.t", "loadMode": mode, "upsertKey": "k",
         "lineage": False}]}


def _create(url, column_type):
    wh = open_warehouse(url)
    with wh.session() as con:
        wh.execute(con, "CREATE SCHEMA IF NOT EXISTS app")
        wh.execute(con, f"CREATE TABLE app.t (k {column_type}, v TEXT)")
        wh.execute(con, "INSERT INTO app.t VALUES (NULL, 'before')")
        if hasattr(con, "commit"):
            con.commit()
    return wh


@pytest.mark.parametrize("ftype, value, column_type, says", CASES)
@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_a_narrowing_load_is_refused_and_the_table_is_unchanged(tmp_path, warehouse, ftype, value, column_type, says,
                                                                mode):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"k": value, "v": "new"}) + "\n")
    wh = _create(warehouse, column_type)
    result = run_document(_doc(folder, ftype, mode), RunOptions(warehouse=warehouse))
    assert result.status == "failed"
    assert "column 'k'" in result.error and says in result.error and "nothing was written" in result.error, \
        result.error
    assert wh.read(None, "SELECT v FROM app.t").to_pylist() == [{"v": "before"}]


def test_widening_loads_still_work(tmp_path, warehouse):
    """int into DECIMAL(20,2) or DOUBLE, decimal(5,2) into DECIMAL(10,4), date into TIMESTAMP keep every value."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"k": "1.25", "v": "new"}) + "\n")
    wh = _create(warehouse, "DECIMAL(10,4)")
    result = run_document(_doc(folder, "decimal(5,2)", "upsert"), RunOptions(warehouse=warehouse))
    assert result.status == "completed", result.error
    result = run_document(_doc(folder, "decimal(5,2)", "upsert"), RunOptions(warehouse=warehouse))
    assert result.status == "completed", result.error
    rows = wh.read(None, "SELECT CAST(k AS VARCHAR) AS k, v FROM app.t WHERE k IS NOT NULL").to_pylist()
    assert rows == [{"k": "1.2500", "v": "new"}]  # one row after two upserts
