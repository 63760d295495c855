"""A local_fs source whose config.path names one existing file reads exactly that file (its folder with a
pattern matching only its name); the document itself is left as written."""
from __future__ import annotations

import duckdb

from flow_beam.running import RunOptions, run_document
from ir_compiler.check import check_document, default_context


def _doc(path, atomicity=None):
    cfg = {"path": str(path), "format": "csv"}
    if atomicity is not None:
        cfg["atomicity"] = atomicity
    return {"kind": "pipeline", "version": "1.0", "id": "onefile", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": cfg,
         "schema": [{"name": "id", "type": "int"}, {"name": "v", "type": "string"}]},
        {"id": "out", "kind": "target", "input": "src", "schema": "public.t", "loadMode": "append",
         "lineage": False}]}


def test_a_file_path_reads_that_file_only_and_moves_only_it(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a[1].csv").write_text("id,v\n1,x\n2,y\n")  # glob characters in the name: matched literally
    (folder / "a1.csv").write_text("id,v\n10,other\n")
    (folder / "b.csv").write_text("id,v\n20,other\n")
    wh = tmp_path / "w.duckdb"
    atom = {"stagingFolder": ".processing/", "successFolder": ".done/", "failureFolder": ".failed/"}
    res = run_document(_doc(folder / "a[1].csv", atom), RunOptions(warehouse=f"duckdb://{wh}"))
    assert res.status == "completed", res.error
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert sorted(con.execute("SELECT id, v FROM public.t").fetchall()) == [(1, "x"), (2, "y")]
    finally:
        con.close()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["a1.csv", "b.csv"]
    assert [p.name for p in (folder / ".done").iterdir()] == ["a[1].csv"]
    again = run_document(_doc(folder / "a[1].csv", atom), RunOptions(warehouse=f"duckdb://{wh}"))
    assert again.status == "failed"  # the file was loaded and moved: never read twice
    assert "config.path" in again.error


def test_checking_leaves_the_document_as_written(tmp_path):
    (tmp_path / "a.csv").write_text("id,v\n1,x\n")
    doc = _doc(tmp_path / "a.csv")
    checked = check_document(doc, {}, default_context(None))
    node = checked.pipeline.node("src") if hasattr(checked.pipeline, "node") else \
        next(n for n in checked.pipeline.nodes if n.id == "src")
    assert node.config.path == str(tmp_path)
    assert node.config.pattern.type == "regex"
    assert doc["nodes"][0]["config"] == {"path": str(tmp_path / "a.csv"), "format": "csv"}
