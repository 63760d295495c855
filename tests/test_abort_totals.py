"""An abort rule failing in several batches (files) is reported once, with every failing row counted; found by a
probe: "failed on 1 row(s)" appeared once per batch and per gated target, never the total."""
import json

from flow_beam.running import RunOptions, run_document


def test_one_message_with_the_total(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for n, rows in enumerate([[{"id": 1, "k": None}, {"id": 2, "k": "x"}], [{"id": 3, "k": None}],
                              [{"id": 4, "k": None}, {"id": 5, "k": "y"}]]):
        (folder / f"f{n}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    doc = {"kind": "pipeline", "version": "1.0", "id": "ab", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(folder), "format": "jsonl"},
         "schema": [{"name": "id", "type": "int"}, {"name": "k", "type": "string"}]},
        {"id": "v", "kind": "validate", "input": "src",
         "rowLevel": [{"id": "knn", "field": "k", "rule": "not_null", "onFail": "abort"}]},
        {"id": "t1", "kind": "target", "input": "v", "schema": "app.t1", "loadMode": "append"},
        {"id": "t2", "kind": "target", "input": "v", "schema": "app.t2", "loadMode": "append"}]}
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "failed"
    for text in [result.error, result.nodes["v"].error, result.nodes["t1"].error, result.nodes["t2"].error]:
        assert text.count("rule knn") == 1 and "failed on 3 row(s)" in text, text
    assert result.nodes["t1"].status == result.nodes["t2"].status == "aborted"
