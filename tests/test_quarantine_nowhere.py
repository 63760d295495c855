"""A validate node whose quarantined rows have no table, no reader of its quarantine port and no DLQ says so in
the run result (found by a probe: the rows were counted and stored nowhere, with no word)."""
import json

import pytest

from flow_beam.running import RunOptions, run_document


def _doc(folder, **validate):
    return {"kind": "pipeline", "version": "1.0", "id": "qn", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(folder), "format": "jsonl"},
         "schema": [{"name": "id", "type": "int"}, {"name": "a", "type": "int"}]},
        {"id": "v", "kind": "validate", "input": "src",
         "rowLevel": [{"id": "pos", "field": "a", "rule": "gt:0", "onFail": "quarantine"}], **validate},
        {"id": "t", "kind": "target", "input": "v", "schema": "app.t", "loadMode": "append"}]}


@pytest.mark.parametrize("where, warned", [({}, True), ({"quarantine": {"table": "dlq.q"}}, False)])
def test_rows_kept_nowhere_are_named(tmp_path, where, warned):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in
                                            [{"id": 1, "a": 1}, {"id": 2, "a": None}, {"id": 3, "a": -5}]))
    result = run_document(_doc(folder, **where), RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    v = result.nodes["v"]
    assert v.rowsQuarantined == 1 and result.nodes["t"].rowsLoaded == 2
    assert any("kept nowhere" in w for w in v.warnings) is warned, v.warnings
