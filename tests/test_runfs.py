"""The run folder works on local paths and through Beam's FileSystems for other schemes. gs:// is not
reachable here, so a small in-memory Beam FileSystem (scheme ``memtest``, defined below) stands in for it."""
import io

import pyarrow as pa
from apache_beam.io.filesystem import FileMetadata, FileSystem

from connectors.warehouse.loading import read_staged
from ir_compiler.lower import runfs
from ir_compiler.lower.context import read_reports, write_report

_STORE: dict[str, bytes] = {}


class _Writer(io.BytesIO):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def close(self):
        _STORE[self.path] = self.getvalue()
        super().close()


class MemTestFileSystem(FileSystem):
    """An object store in a dict: enough of the FileSystem API for the run folder."""

    @classmethod
    def scheme(cls):
        return "memtest"

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *paths])

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, prefix):
        for path, data in sorted(_STORE.items()):
            if path.startswith(prefix):
                yield FileMetadata(path, len(data))

    def create(self, path, mime_type=None, compression_type=None):
        return _Writer(path)

    def open(self, path, mime_type=None, compression_type=None):
        return io.BytesIO(_STORE[path])

    def copy(self, sources, destinations):
        for s, d in zip(sources, destinations):
            _STORE[d] = _STORE[s]

    def rename(self, sources, destinations):
        for s, d in zip(sources, destinations):
            _STORE[d] = _STORE.pop(s)

    def exists(self, path):
        return path in _STORE

    def size(self, path):
        return len(_STORE[path])

    def last_updated(self, path):
        return 0.0

    def checksum(self, path):
        return str(hash(_STORE[path]))

    def metadata(self, path):
        return FileMetadata(path, len(_STORE[path]))

    def delete(self, paths):
        for p in paths:
            _STORE.pop(p, None)


def test_local_and_object_storage_run_folders(tmp_path):
    for root in (str(tmp_path / "run"), "memtest://bucket/run"):
        write_report(root, "targets", "t", {"status": "loaded", "rowsLoaded": 3})
        write_report(root, "targets", "u", {"status": "aborted"})
        assert read_reports(root, "targets") == {"t": {"status": "loaded", "rowsLoaded": 3},
                                                 "u": {"status": "aborted"}}
        assert read_reports(root, "nothing") == {}
        table = pa.table({"a": [1, 2]})
        buf = pa.BufferOutputStream()
        with pa.ipc.new_file(buf, table.schema) as writer:
            writer.write_table(table)
        path = runfs.join(root, "staging", "x.arrow")
        runfs.write_bytes(path, buf.getvalue().to_pybytes())
        assert read_staged(path).to_pylist() == [{"a": 1}, {"a": 2}]
    assert "memtest://bucket/run/targets/t.json" in _STORE


def test_a_pipeline_stages_and_reports_through_object_storage(tmp_path, spec_doc):
    from conftest import doc_with_path, write_csv
    from flow_beam.running import RunOptions, run_document

    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "orders.csv", ["order_id", "amount"], [[1, 5], [2, -1], [3, 7]])
    result = run_document(doc_with_path(spec_doc, folder),
                          RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}", run_dir="memtest://bucket/r"))
    assert result.status == "completed_with_errors", result.error
    assert result.nodes["tgt"].rowsLoaded == 2
    assert any(p.startswith("memtest://bucket/r/staging/tgt/") and p.endswith(".arrow") for p in _STORE)
    assert "memtest://bucket/r/targets/tgt.json" in _STORE
