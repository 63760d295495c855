"""local_fs connector on real files: patterns, orderings, wait policy, atomic staging, every format."""
import datetime as dt
import gzip
import json
import os
import re
import time

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.local_fs.files import StagedFiles, expand_date_tokens, list_files, recover_staged, wait_for_files
from connectors.formats import infer_schema, read_file, write_table
from ir_compiler.errors import ConnectorError
from ir_compiler.types import Field, Schema, parse_type

# 03:30 UTC on Nov 22 is still Nov 21 in Los Angeles
NOW = dt.datetime(2026, 11, 22, 3, 30, tzinfo=dt.timezone.utc)


def touch(folder, name, text="a\n1\n", mtime=None):
    path = folder / name
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


def test_date_template_uses_the_timezone(tmp_path):
    touch(tmp_path, "orders_2026-11-21.csv")
    touch(tmp_path, "orders_2026-11-22.csv")
    la = {"type": "date_template", "value": "orders_{YYYY-MM-DD}.csv", "timezone": "America/Los_Angeles"}
    utc = {"type": "date_template", "value": "orders_{YYYYMMDD}*", "timezone": "UTC"}
    assert [os.path.basename(f) for f in list_files(str(tmp_path), la, now=NOW)] == ["orders_2026-11-21.csv"]
    assert list_files(str(tmp_path), utc, now=NOW) == []  # {YYYYMMDD} has no dashes
    assert expand_date_tokens("{YYYY}/{MM}/{DD}/{HH}{mm}{ss}", NOW, "UTC") == "2026/11/22/033000"


def test_glob_regex_and_orderings(tmp_path):
    base = time.time() - 100
    touch(tmp_path, "b.csv", mtime=base + 1)
    touch(tmp_path, "a.csv", mtime=base + 5)
    touch(tmp_path, "c.txt", mtime=base + 3)
    (tmp_path / ".processing").mkdir()
    touch(tmp_path / ".processing", "z.csv")
    names = lambda files: [os.path.basename(f) for f in files]  # noqa: E731
    glob = {"type": "glob", "value": "*.csv"}
    assert names(list_files(str(tmp_path), glob, "fifo_by_name")) == ["a.csv", "b.csv"]
    assert names(list_files(str(tmp_path), glob, "process_all")) == ["b.csv", "a.csv"]
    assert names(list_files(str(tmp_path), glob, "latest_by_mtime")) == ["a.csv"]
    assert names(list_files(str(tmp_path), None, "lexicographic")) == ["a.csv", "b.csv", "c.txt"]
    assert names(list_files(str(tmp_path), {"type": "regex", "value": r"[bc]\.(csv|txt)"}, "lexicographic")) == [
        "b.csv", "c.txt"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConnectorError, match="does not exist"):
        list_files(str(tmp_path / "nope"))


@pytest.mark.parametrize("action", ["alert", "skip", "fail"])
def test_wait_policy_retries_then_acts(tmp_path, action):
    sleeps = []
    policy = {"maxRetries": 3, "intervalMinutes": 2, "onMissAction": action}
    if action == "fail":
        with pytest.raises(ConnectorError, match="3 retries"):
            wait_for_files(str(tmp_path), {"value": "*.csv"}, "process_all", policy, sleep=sleeps.append)
    else:
        listing = wait_for_files(str(tmp_path), {"value": "*.csv"}, "process_all", policy, sleep=sleeps.append)
        assert listing.files == [] and bool(listing.warnings) == (action == "alert")
    assert sleeps == [120.0] * 3


def test_staging_success_failure_and_never_overwrite(tmp_path):
    f1, f2 = touch(tmp_path, "a.csv"), touch(tmp_path, "b.csv")
    atom = {"stagingFolder": ".processing/", "successFolder": ".archive/{YYYY-MM-DD}/", "failureFolder": ".failed/"}
    staged = StagedFiles.stage([f1, f2], str(tmp_path), atom)
    assert not os.path.exists(f1) and all(".processing" in p for p in staged.paths)
    assert recover_staged(str(tmp_path), atom) == sorted(staged.paths)
    done = staged.commit(now=NOW, failed={staged.paths[1]})
    assert done == [str(tmp_path / ".archive" / "2026-11-22" / "a.csv")]
    assert os.listdir(tmp_path / ".failed") == ["b.csv"]
    f3 = touch(tmp_path, "a.csv", "new\n")
    again = StagedFiles.stage([f3], str(tmp_path), atom).commit(now=NOW)
    assert again == [str(tmp_path / ".archive" / "2026-11-22" / "a.1.csv")]  # the first a.csv is kept
    assert StagedFiles.from_json(staged.to_json()).paths == staged.paths


def read_all(path, fmt, options=None, schema=None):
    chunks = list(read_file(path, fmt, options, schema))
    table = pa.Table.from_batches([c.batch for c in chunks if c.batch.num_rows]) if any(
        c.batch.num_rows for c in chunks) else None
    return table, [b for c in chunks for b in c.bad_rows]


SCHEMA = Schema([Field("id", parse_type("int")), Field("amount", parse_type("decimal(10,2)")),
                 Field("day", parse_type("date"))])


def test_csv_with_schema_routes_bad_rows_with_line_numbers(tmp_path):
    path = touch(tmp_path, "x.csv", "id,amount,day,extra\n1,2.50,2024-01-02,z\n2,oops,2024-01-03,z\n3,1,2024-13-01,z\n"
                                    "4,5,2024-01-04,z,TOO,MANY\n5,,2024-01-05,z\n")
    table, bad = read_all(path, "csv", {}, SCHEMA)
    assert table.column_names == ["id", "amount", "day"]  # extra column dropped
    assert table.column("id").to_pylist() == [1, 5]
    assert table.schema.field("amount").type == pa.decimal128(10, 2)
    reasons = sorted(b.reason for b in bad)
    assert any("expected 4 fields" in r for r in reasons)
    assert any("'amount'" in r and "oops" in r for r in reasons)
    assert any("'day'" in r for r in reasons)
    assert any(b.line == 5 for b in bad)


def test_csv_missing_declared_column(tmp_path):
    path = touch(tmp_path, "x.csv", "id\n1\n")
    with pytest.raises(ConnectorError, match="amount"):
        read_all(path, "csv", {}, SCHEMA)


def test_tsv_gzip_latin1_and_inference(tmp_path):
    (tmp_path / "t.tsv").write_text("id\tname\n1\tÅsa\n")
    table, _ = read_all(str(tmp_path / "t.tsv"), "tsv")
    assert table.to_pylist() == [{"id": 1, "name": "Åsa"}]
    with gzip.open(tmp_path / "g.csv.gz", "wt") as fh:
        fh.write("id,v\n1,2.5\n")
    table, _ = read_all(str(tmp_path / "g.csv.gz"), "csv")
    assert table.to_pylist() == [{"id": 1, "v": 2.5}]
    (tmp_path / "l.csv").write_bytes("id,name\n1,Jos\xe9\n".encode("latin-1"))
    table, _ = read_all(str(tmp_path / "l.csv"), "csv", {"encoding": "latin-1"})
    assert table.column("name").to_pylist() == ["José"]
    schema = infer_schema([str(tmp_path / "g.csv.gz")], "csv")
    assert str(schema["v"].type) == "float" and str(schema["id"].type) == "int"


def test_jsonl_bad_line_and_json_array(tmp_path):
    path = touch(tmp_path, "x.jsonl", '{"id": 1, "v": "a"}\n{"id": 2, oops}\n{"id": 3, "v": "c"}\n')
    table, bad = read_all(path, "jsonl")
    assert table.column("id").to_pylist() == [1, 3]
    assert [b.line for b in bad] == [2] and "invalid JSON" in bad[0].reason
    path = touch(tmp_path, "x.json", json.dumps([{"id": 1}, {"id": 2}]))
    table, _ = read_all(path, "json")
    assert table.column("id").to_pylist() == [1, 2]


def test_parquet_and_avro_read_and_unreadable_file(tmp_path):
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int32())}), tmp_path / "x.parquet")
    table, _ = read_all(str(tmp_path / "x.parquet"), "parquet")
    assert table.schema.field("id").type == pa.int64()
    with open(tmp_path / "x.avro", "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema({"type": "record", "name": "r", "fields": [
            {"name": "id", "type": "long"}]}), [{"id": 7}])
    table, _ = read_all(str(tmp_path / "x.avro"), "avro")
    assert table.to_pylist() == [{"id": 7}]
    touch(tmp_path, "bad.parquet", "not parquet")
    with pytest.raises(ConnectorError, match="bad.parquet"):
        read_all(str(tmp_path / "bad.parquet"), "parquet")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "avro"])
def test_write_formats_keep_types(tmp_path, fmt):
    table = pa.table({"id": [1, 2], "amount": [1.5, 2.0], "day": pa.array([dt.date(2024, 1, 2)] * 2),
                      "name": ["a", None]})
    path = write_table(table, str(tmp_path / "out"), fmt, prefix="p")
    assert os.path.basename(path).startswith("p-") and not [f for f in os.listdir(tmp_path / "out")
                                                             if f.endswith(".tmp")]
    if fmt == "jsonl":
        rows = [json.loads(x) for x in open(path)]
        assert rows[0] == {"id": 1, "amount": 1.5, "day": "2024-01-02", "name": "a"}
    back, _ = read_all(path, fmt)
    assert back.column("id").to_pylist() == [1, 2] and back.column("amount").to_pylist() == [1.5, 2.0]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_sinks_print_decimals_and_timestamps_one_way(tmp_path, fmt):
    """Found by a probe: the csv and jsonl sinks wrote decimals in exponent form (-1E-10, 0E-10) and the csv sink
    timestamps with a .000000 fraction the jsonl sink omitted. Both now print as PostgreSQL's text output does:
    positional decimals with every digit of the scale, timestamps ISO with a fraction only when it is not 0."""
    import decimal
    D = decimal.Decimal
    table = pa.table({
        "v": pa.array([D("-1E-10"), D("0E-10"), D("123.45"), None], pa.decimal128(38, 10)),
        "ts": pa.array([dt.datetime(2024, 1, 5), dt.datetime(2024, 1, 5, 1, 2, 3, 4500), None,
                        dt.datetime(1, 1, 1)], pa.timestamp("us"))})
    path = write_table(table, str(tmp_path / "out"), fmt, prefix="p")
    text = open(path).read()
    assert "E-" not in text and "E+" not in text
    for want in ("-0.0000000001", "0.0000000000", "123.4500000000", "2024-01-05T00:00:00",
                 "2024-01-05T01:02:03.004500", "0001-01-01T00:00:00"):
        assert want in text, (want, text)
    assert not re.search(r":\d\d\.000000", text)
    back, bad = read_all(path, fmt, None, Schema([Field("v", parse_type("decimal(38,10)")),
                                          Field("ts", parse_type("timestamp"))]))
    assert not bad and back.column("v").to_pylist() == table.column("v").to_pylist()
    assert back.column("ts").to_pylist() == table.column("ts").to_pylist()


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_columnar_row_errors_name_their_row(tmp_path, fmt):
    """Found by a probe: a Parquet/Avro value the declared type cannot hold went to the DLQ as `a.parquet: column
    'v': cannot convert ...` with no position. Now `row N` (1 = the file's first row), also for a range of a split
    file and for every batch after the first."""
    from connectors.runtime import bad_rows_table
    from connectors.splits import plan_file
    n = 3000
    values = [str(i) if i % 1000 != 1 else f"x{i}" for i in range(n)]  # bad at rows 2, 1002, 2002
    table = pa.table({"v": values, "pad": [f"{i:08d}" * 8 for i in range(n)]})
    path = str(tmp_path / f"a.{fmt}")
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=500, compression="none")
    else:
        with open(path, "wb") as fh:
            fastavro.writer(fh, fastavro.parse_schema({"type": "record", "name": "r", "fields": [
                {"name": "v", "type": "string"}, {"name": "pad", "type": "string"}]}),
                table.to_pylist(), sync_interval=20000)
    schema = Schema([Field("v", parse_type("int"))])
    parts = plan_file(path, fmt, size_limit=60_000)
    assert len(parts) > 2
    bad = []
    for part in parts:
        bad += [b for c in read_file(path, fmt, None, schema, batch_rows=300, part=part) for b in c.bad_rows]
    errors = bad_rows_table("src", bad).column("error").to_pylist()
    assert errors == [f"{path}, row {r}: column 'v': cannot convert 'x{r - 1}' to int" for r in (2, 1002, 2002)]


def test_avro_sink_keeps_nan_and_infinity(tmp_path):
    """Found by a probe: the avro sink wrote NaN and ±Infinity as null (Avro doubles hold them). JSON has neither:
    the jsonl sink writes them as null (documented)."""
    table = pa.table({"f": [float("nan"), float("inf"), -float("inf"), 1.5, None]})
    back, _ = read_all(write_table(table, str(tmp_path / "a"), "avro", prefix="p"), "avro")
    got = back.column("f").to_pylist()
    assert got[0] != got[0] and got[1:] == [float("inf"), -float("inf"), 1.5, None]
    rows = [json.loads(x) for x in open(write_table(table, str(tmp_path / "j"), "jsonl", prefix="p"))]
    assert [r["f"] for r in rows] == [None, None, None, 1.5, None]
