"""Archive nodes when something goes wrong (found by a probe: a move with no destination validated, then crashed
after the load committed with "internal error (TypeError ...)", no run result written — a re-run loaded the rows
again; an archive whose target's run failed said `completed`)."""
import os

import pytest

from conftest import write_csv
from flow_beam.running import RunOptions, run_document
from ir_compiler.check import check_document
from ir_compiler.errors import ValidationFailed
from ir_compiler.propagate import SchemaContext


def _doc(folder, archive, amount_type="int"):
    return {"kind": "pipeline", "version": "1.0", "id": "arch", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(folder), "format": "csv"},
         "schema": [{"name": "id", "type": "int"}, {"name": "amount", "type": amount_type}]},
        {"id": "tgt", "kind": "target", "input": "src", "schema": "public.t", "loadMode": "append"},
        {"id": "arc", "kind": "archive", "input": "tgt", **archive}]}


@pytest.mark.parametrize("archive, path, words", [
    ({"action": "move"}, "nodes[2].destination", "needs a 'destination'"),
    ({"action": "copy", "compress": "gzip"}, "nodes[2].destination", "needs a 'destination'"),
    ({"action": "delete", "destination": "x/"}, "nodes[2].destination", "takes no 'destination'"),
])
def test_an_archive_that_cannot_run_is_a_validation_error(tmp_path, archive, path, words):
    with pytest.raises(ValidationFailed) as info:
        check_document(_doc(tmp_path, archive), ctx=SchemaContext())
    (e,) = [i for i in info.value.issues if i.severity == "error"]
    assert e.path == path and words in e.message


def test_an_archive_that_fails_after_the_commit_is_reported_and_leaves_the_file(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a.csv", ["id", "amount"], [[1, 10], [2, 20]])
    (folder / "blocker").write_text("a file where the destination folder would be")
    wh = f"duckdb://{tmp_path / 'w.duckdb'}"
    result = run_document(_doc(folder, {"action": "move", "destination": "blocker/{YYYY}/", "compress": "gzip"}),
                          RunOptions(warehouse=wh))
    arc = result.nodes["arc"]
    assert result.status == "completed_with_errors" and result.nodes["tgt"].rowsLoaded == 2
    assert arc.status == "failed" and "could not move" in arc.error and "a.csv" in arc.error, arc.error
    assert sorted(os.listdir(folder)) == ["a.csv", "blocker"]  # the file stays whole where it was


def test_a_failed_run_archives_nothing_and_says_so(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a.csv", ["id", "amount"], [[1, 10]])
    doc = _doc(folder, {"action": "delete"})
    doc["nodes"][1]["preHook"] = {"type": "sql", "statement": "SELECT * FROM no_such_table"}
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "failed"
    arc = result.nodes["arc"]
    assert arc.status == "skipped" and any("nothing archived" in w for w in arc.warnings), arc
    assert os.listdir(folder) == ["a.csv"]


def test_archive_writes_under_a_temporary_name_so_a_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    from flow_beam import archive
    src = tmp_path / "a.csv"
    src.write_text("id\n1\n" * 1000)
    dest = tmp_path / "out"

    def broken(fsrc, fdst, length=0):
        fdst.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(archive.shutil, "copyfileobj", broken)
    with pytest.raises(OSError):
        archive.archive_file(str(src), "move", str(dest), "gzip")
    assert os.listdir(dest) == [] and src.exists()
