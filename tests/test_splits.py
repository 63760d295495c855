"""Splittable reads (connectors/splits.py): a large file is read as several ranges — byte ranges aligned to
records for csv/tsv/jsonl, row groups for parquet, sync blocks for avro — and the ranges together give exactly
the rows, row errors (with their exact line numbers) and row order of one whole-file read; end to end, a split
run loads the same table as an unsplit one, and a file that breaks in one range loads none of its rows."""
import json
import os

import duckdb
import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.formats import read_file
from connectors.splits import first_row, plan_file
from flow_beam.running import RunOptions, run_document
from ir_compiler.types import ColumnType, Field, Schema

SCHEMA = Schema([Field("id", ColumnType("int")), Field("name", ColumnType("string")),
                 Field("amount", ColumnType("float"))])
LIMIT = 64 << 10  # 64 KiB ranges in the unit tests


def _csv(path, rows=20_000, crlf=False, header=True, blanks=True):
    nl = "\r\n" if crlf else "\n"
    with open(path, "w", newline="") as fh:
        if header:
            fh.write(f"id,name,amount{nl}")
        for i in range(rows):
            if blanks and i % 997 == 0:
                fh.write(nl)  # an empty line: pyarrow skips it (not a record)
            if i % 1009 == 0:
                fh.write(f"{i},n{i}{nl}")  # too few fields: a row error
            elif i % 1013 == 0:
                fh.write(f"{i},n{i},notanumber{nl}")  # a conversion error
            else:
                fh.write(f"{i},n{i},{i * 0.5}{nl}")


def _read(path, fmt, part=None, schema=SCHEMA, options=None):
    """(rows with their ORD, bad rows as (line, reason)) of one range, as the reader numbers them."""
    rows, bad, offset = [], [], first_row(part)
    for chunk in read_file(str(path), fmt, options or {}, schema, batch_rows=4096, verify=True, part=part):
        t = chunk.batch.to_pylist()
        rows += [(offset + k, r) for k, r in enumerate(t)]
        offset += len(t) + len(chunk.bad_rows)
        bad += [(b.line, b.reason) for b in chunk.bad_rows]
    return rows, bad


def _same_as_whole(path, fmt, parts, schema=SCHEMA, options=None):
    whole_rows, whole_bad = _read(path, fmt, None, schema, options)
    rows, bad = [], []
    for part in parts:
        r, b = _read(path, fmt, part, schema, options)
        rows += r
        bad += b
    assert [r for _, r in rows] == [r for _, r in whole_rows]
    assert sorted(bad) == sorted(whole_bad) and whole_bad  # same errors, same line numbers
    ords = [o for o, _ in rows]
    assert ords == sorted(ords) and len(set(ords)) == len(ords)  # file order, unique


@pytest.mark.parametrize("crlf", [False, True])
def test_csv_byte_ranges_give_the_whole_files_rows_errors_and_lines(tmp_path, crlf):
    path = tmp_path / "a.csv"
    _csv(path, crlf=crlf)
    parts = plan_file(str(path), "csv", {}, size_limit=LIMIT)
    assert len(parts) >= 5 and all(p["kind"] == "bytes" for p in parts)
    _same_as_whole(path, "csv", parts)


def test_csv_without_header_and_tsv(tmp_path):
    path = tmp_path / "a.csv"
    _csv(path, header=False)
    opts = {"header": False}
    _same_as_whole(path, "csv", plan_file(str(path), "csv", opts, size_limit=LIMIT), options=opts)
    tsv = tmp_path / "a.tsv"
    tsv.write_text(path.read_text().replace(",", "\t"))
    _same_as_whole(tsv, "tsv", plan_file(str(tsv), "tsv", opts, size_limit=LIMIT), options=opts)


def test_line_numbers_of_a_late_range_are_exact(tmp_path):
    path = tmp_path / "a.csv"
    lines = ["id,name,amount"] + [f"{i},n{i},{i}" for i in range(30_000)]
    lines[25_000] = "25000,only-two"  # physical line 25001 (1-based), record 25001
    path.write_text("\n".join(lines) + "\n")
    parts = plan_file(str(path), "csv", {}, size_limit=LIMIT)
    last = [p for p in parts if p["start"] <= os.path.getsize(path) * 0.9][-1]
    bad = [b for part in parts for b in _read(path, "csv", part)[1]]
    assert bad == [(25_001, "expected 3 fields, found 2")], bad
    assert last["start"] > 0


def test_jsonl_byte_ranges(tmp_path):
    path = tmp_path / "a.jsonl"
    with open(path, "w") as fh:
        for i in range(20_000):
            if i % 991 == 0:
                fh.write("\n")
            if i % 1009 == 0:
                fh.write('{"id": 1, "name": "broken\n')  # not JSON: a row error
            else:
                fh.write(json.dumps({"id": i, "name": f"n{i}", "amount": i / 4}) + "\n")
    parts = plan_file(str(path), "jsonl", {}, size_limit=LIMIT)
    assert len(parts) >= 5
    _same_as_whole(path, "jsonl", parts)


def test_parquet_row_groups_and_avro_blocks(tmp_path):
    n = 200_000
    table = pa.table({"id": pa.array(range(n), pa.int64()), "name": [f"n{i}" for i in range(n)],
                      "amount": pa.array([i / 2 for i in range(n)], pa.float64())})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=10_000)
    parts = plan_file(str(tmp_path / "a.parquet"), "parquet", {}, size_limit=LIMIT)
    assert len(parts) > 2 and sorted(g for p in parts for g in p["groups"]) == list(range(20))
    got = [r for p in parts for r in _read(tmp_path / "a.parquet", "parquet", p)[0]]
    assert got == list(enumerate(table.to_pylist()))  # ORD = row number in the file, as a whole read
    schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "id", "type": "long"}, {"name": "name", "type": "string"}, {"name": "amount", "type": "double"}]})
    with open(tmp_path / "a.avro", "wb") as fh:
        fastavro.writer(fh, schema, table.to_pylist())
    parts = plan_file(str(tmp_path / "a.avro"), "avro", {}, size_limit=LIMIT)
    assert len(parts) > 2
    got = [r for p in parts for r in _read(tmp_path / "a.avro", "avro", p)[0]]
    assert got == list(enumerate(table.to_pylist()))


def test_what_is_not_split(tmp_path):
    quoted = tmp_path / "q.csv"
    quoted.write_text("id,name,amount\n" + "".join(f'{i},"n\n{i}",1\n' for i in range(20_000)))
    assert plan_file(str(quoted), "csv", {}, size_limit=LIMIT) == [None]  # a quote anywhere: one range
    import gzip
    gz = tmp_path / "a.csv.gz"
    _csv(tmp_path / "a.csv")
    gz.write_bytes(gzip.compress((tmp_path / "a.csv").read_bytes(), compresslevel=0))
    assert plan_file(str(gz), "csv", {}, size_limit=LIMIT) == [None]
    assert plan_file(str(tmp_path / "a.csv"), "csv", {}, typed=False, size_limit=LIMIT) == [None]
    assert plan_file(str(tmp_path / "a.csv"), "csv", {}, size_limit=1 << 30) == [None]  # small: whole
    assert plan_file(str(tmp_path / "missing.csv"), "csv", {}, size_limit=LIMIT) == [None]


# ---- end to end -------------------------------------------------------------------------------------------------
def _doc(folder, ops=None, dlq=True):
    nodes = [{"id": "src", "kind": "source", "connector": "local_fs",
              "config": {"path": str(folder), "format": "csv",
                         "atomicity": {"stagingFolder": ".processing/", "successFolder": ".done/",
                                       "failureFolder": ".failed/"}},
              "schema": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"},
                         {"name": "amount", "type": "float"}]}]
    up = "src"
    if ops:
        nodes.append({"id": "t", "kind": "transform", "input": "src", "ops": ops})
        up = "t"
    nodes.append({"id": "tgt", "kind": "target", "input": up, "schema": "public.t", "loadMode": "append",
                  "lineage": False})
    doc = {"kind": "pipeline", "version": "1.0", "id": "splits", "nodes": nodes}
    if dlq:
        doc["errorHandling"] = {"dlq": {"enabled": True, "table": "dlq.s"}}
    return doc


def _tables(wh):
    con = duckdb.connect(str(wh), read_only=True)
    try:
        rows = con.execute("select * from public.t order by all").fetchall()
        dlq = sorted(r[0] for r in con.execute("select error from dlq.s").fetchall())
        return rows, [e.split("/in/", 1)[-1].split(".src/", 1)[-1] for e in dlq]
    finally:
        con.close()


def test_a_split_run_loads_what_an_unsplit_run_loads(tmp_path, monkeypatch):
    out = {}
    for mode, limit in (("whole", str(1 << 40)), ("split", str(1 << 20))):
        folder, wh = tmp_path / mode / "in", tmp_path / mode / "wh.duckdb"
        folder.mkdir(parents=True)
        _csv(folder / "a.csv", rows=250_000)  # ~5.5 MB: ranges of ~1 MiB
        _csv(folder / "b.csv", rows=1000)
        monkeypatch.setenv("FLOW_BEAM_SPLIT_BYTES", limit)
        if mode == "split":
            assert len(plan_file(str(folder / "a.csv"), "csv", {}, size_limit=1 << 20)) >= 3
        res = run_document(_doc(folder), RunOptions(warehouse=f"duckdb://{wh}"))
        assert res.status == "completed_with_errors", res.error
        out[mode] = (_tables(wh), res.nodes["src"].rowsIn, res.nodes["tgt"].rowsLoaded)
        assert sorted(os.listdir(folder / ".done")) == ["a.csv", "b.csv"]
    assert out["split"] == out["whole"]
    (rows, dlq), rows_in, loaded = out["split"]
    assert rows_in == 251_000 and loaded == len(rows) and any("a.csv, line " in e for e in dlq)


def test_a_file_breaking_in_one_range_loads_none_of_its_rows(tmp_path, monkeypatch):
    """Invalid UTF-8 in the last range of a split file: the other ranges' rows already went on; the target's
    commit drops every row of the file (row-wise), and an aggregate loads nothing."""
    monkeypatch.setenv("FLOW_BEAM_SPLIT_BYTES", str(1 << 20))
    for ops in (None, [{"op": "aggregate", "groupBy": [], "aggregations": [{"fn": "count", "as": "id"}]}]):
        base = tmp_path / ("agg" if ops else "rows")
        folder, wh = base / "in", base / "wh.duckdb"
        folder.mkdir(parents=True)
        _csv(folder / "good.csv", rows=100, blanks=False)
        _csv(folder / "bad.csv", rows=250_000)
        with open(folder / "bad.csv", "ab") as fh:
            fh.write(b"7,\xff\xfe,1\n8,x,2\n")
        assert len(plan_file(str(folder / "bad.csv"), "csv", {}, size_limit=1 << 20)) >= 3
        res = run_document(_doc(folder, ops), RunOptions(warehouse=f"duckdb://{wh}"))
        assert os.listdir(folder / ".failed") == ["bad.csv"]
        if ops is None:
            assert res.status == "completed_with_errors", res.error
            rows, dlq = _tables(wh)
            assert sorted(r[0] for r in rows) == [i for i in range(100) if i % 1009 and i % 1013]
            assert res.nodes["tgt"].rowsLoaded == len(rows) and res.nodes["tgt"].rowsIn == len(rows)
            assert any("bad.csv" in w and "left out" in w for w in res.nodes["tgt"].warnings)
            assert all("bad.csv, line" not in e for e in dlq)  # its row errors are dropped with it
        else:
            assert res.status == "failed" and "bad.csv" in res.nodes["tgt"].error
            assert os.listdir(folder) == [".failed", ".processing", "good.csv"] or "good.csv" in os.listdir(folder)


def test_splitting_pays_only_where_ranges_can_run_in_parallel(monkeypatch):
    from connectors.splits import splits_pay
    monkeypatch.delenv("FLOW_BEAM_SPLIT_BYTES", raising=False)
    assert not splits_pay("direct")  # one in-process worker: ranges only cost
    assert not splits_pay("direct", ["--direct_num_workers=1"])
    assert splits_pay("direct", ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert splits_pay("direct", ["--direct_num_workers", "0"])  # 0: one worker per core
    for runner in ("prism", "flink", "dataflow"):
        assert splits_pay(runner)
    monkeypatch.setenv("FLOW_BEAM_SPLIT_BYTES", str(1 << 20))
    assert splits_pay("direct")  # asked for explicitly


def test_a_default_direct_run_reads_a_large_file_as_one_range(tmp_path, monkeypatch):
    """Without FLOW_BEAM_SPLIT_BYTES a one-worker direct run never plans ranges; with two direct workers the
    same file is planned into ranges (the planner's size limit lowered to 1 MiB here) and both load every row."""
    import connectors.splits as splits
    monkeypatch.delenv("FLOW_BEAM_SPLIT_BYTES", raising=False)
    planned = []
    real = splits.plan_file

    def spy(*args, **kwargs):
        parts = real(*args, **{**kwargs, "size_limit": 1 << 20})
        planned.append(len(parts))
        return parts

    monkeypatch.setattr(splits, "plan_file", spy)
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    folder.mkdir()
    _csv(folder / "a.csv", rows=250_000)
    res = run_document(_doc(folder), RunOptions(warehouse=f"duckdb://{wh}"))
    assert res.status == "completed_with_errors", res.error
    assert planned == []  # never planned: one range
    assert res.nodes["src"].rowsIn == 250_000
    folder2 = tmp_path / "in2"  # the first run moved its file to .done
    folder2.mkdir()
    _csv(folder2 / "a.csv", rows=250_000)
    res2 = run_document(_doc(folder2), RunOptions(warehouse=f"duckdb://{tmp_path / 'w2.duckdb'}",
                                                  beam_args=["--direct_num_workers=2"]))
    assert planned and planned[0] >= 3  # two workers: the file is planned into ranges
    assert res2.nodes["src"].rowsIn == 250_000
