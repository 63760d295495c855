"""Read-ahead (connectors.formats.read_file(read_ahead=True)): the next chunks of a file are parsed and converted
in background threads, and nothing else changes — the same chunks, rows, row errors with their line numbers and
the same read errors, in the same order, for whole files and for ranges; closing the reader early stops its
threads. Also: filter/expression ops compiled once per column layout give the same answers when the layout
changes, and the PostgreSQL NUL-byte pre-check finds exactly the rows the per-row check finds."""
import threading

import pyarrow as pa
import pytest

from connectors.formats import read_file
from connectors.splits import plan_file
from ir_compiler.errors import ConnectorError
from ir_compiler.types import ColumnType, Field, Schema

SCHEMA = Schema([Field("id", ColumnType("int")), Field("name", ColumnType("string")),
                 Field("amount", ColumnType("float"))])


def _csv(path, rows=30_000):
    with open(path, "w", newline="") as fh:
        fh.write("id,name,amount\n")
        for i in range(rows):
            if i % 997 == 0:
                fh.write("\n")  # a blank line (not a record)
            if i % 1009 == 0:
                fh.write(f"{i},n{i}\n")  # too few fields
            elif i % 1013 == 0:
                fh.write(f"{i},n{i},notanumber\n")  # a conversion error
            else:
                fh.write(f"{i},n{i},{i * 0.5}\n")


def _chunks(path, read_ahead, part=None, schema=SCHEMA, options=None):
    """(the rows of every chunk, every row error as (line, raw, reason), sorted). pyarrow reports a malformed row
    from its own thread, possibly while it parses the block after the one being returned: serial reads too
    attach a malformed row to the chunk before its own now and then, so the errors are compared as a set."""
    rows, bad = [], []
    for chunk in read_file(str(path), "csv", {"_block_size": 1 << 14, **(options or {})}, schema,
                           batch_rows=1000, verify=True, part=part, read_ahead=read_ahead):
        rows.append(chunk.batch.to_pylist())
        bad += [(b.line, b.raw, b.reason) for b in chunk.bad_rows]
    return rows, sorted(bad)


@pytest.mark.parametrize("schema", [SCHEMA, None])
def test_same_chunks_and_errors_as_a_serial_read(tmp_path, schema):
    path = tmp_path / "a.csv"
    _csv(path)
    serial, ahead = _chunks(path, False, schema=schema), _chunks(path, True, schema=schema)
    assert ahead == serial
    rows, bad = serial
    assert len(rows) > 20 and len(bad) >= 29  # many chunks, with row errors
    assert sum(map(len, rows)) + len(bad) == 30_000  # every record is a row or an error, none lost


def test_same_for_every_range_of_a_split_file(tmp_path):
    path = tmp_path / "a.csv"
    _csv(path, 60_000)
    parts = plan_file(str(path), "csv", {}, typed=True, size_limit=200 << 10)
    assert len(parts) > 2
    rows = errors = 0
    for part in parts:
        ahead = _chunks(path, True, part)
        assert ahead == _chunks(path, False, part)
        rows += sum(map(len, ahead[0]))
        errors += len(ahead[1])
    assert rows + errors == 60_000


def test_a_read_error_surfaces_after_the_same_chunks(tmp_path):
    path = tmp_path / "a.csv"
    _csv(path)
    data = path.read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    path.write_bytes(data[:cut] + b"1,\xff\xfe,2.5\n" + data[cut:])  # invalid UTF-8 mid-file

    def attempt(read_ahead):
        got = []
        with pytest.raises(ConnectorError) as err:
            for chunk in read_file(str(path), "csv", {"_block_size": 1 << 14}, SCHEMA, batch_rows=1000,
                                   read_ahead=read_ahead):
                got.append(chunk.batch.num_rows)
        return got, str(err.value)
    assert attempt(True) == attempt(False)


def test_closing_early_stops_the_threads(tmp_path):
    path = tmp_path / "a.csv"
    _csv(path)
    before = threading.active_count()
    chunks = read_file(str(path), "csv", {"_block_size": 1 << 14}, SCHEMA, batch_rows=1000, read_ahead=True)
    next(chunks)
    assert threading.active_count() > before
    chunks.close()
    assert threading.active_count() == before


def test_compiled_expressions_follow_the_column_types():
    from ir_compiler.models.ops import Expression, Filter
    from ir_compiler.ops.exprs import expression_apply, filter_apply

    op = Expression(op="expression", field="y", expr="x / 2")
    ints = expression_apply(op, pa.table({"x": pa.array([3, 5], pa.int64())})).table
    floats = expression_apply(op, pa.table({"x": pa.array([3.0, 5.0])})).table
    assert ints.column("y").to_pylist() == [1, 2]  # integer division, as PostgreSQL
    assert floats.column("y").to_pylist() == [1.5, 2.5]
    cond = Filter(op="filter", condition="x > 4")
    assert filter_apply(cond, pa.table({"x": [3, 5]})).table.column("x").to_pylist() == [5]
    assert filter_apply(cond, pa.table({"x": [4.5, 3.5]})).table.column("x").to_pylist() == [4.5]


def test_nul_precheck_matches_the_row_check():
    from ir_compiler.lower.targets import nul_rows

    t = pa.table({"a": ["x", "y\x00", None, "z"], "b": ["1", "2", "3", "4"]})
    assert nul_rows(t).tolist() == [False, True, False, False]
    assert nul_rows(t.slice(2)) is None  # the NUL lies in the shared buffer, outside the slice
    assert nul_rows(t.select(["b"])) is None
    assert nul_rows(pa.table({"a": pa.chunked_array([["ok"], ["\x00"]])})).tolist() == [False, True]
