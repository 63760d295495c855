"""connectors.files / connectors.formats on real files in tmp_path."""
import datetime as dt
import decimal
import gzip
import json
import os
import time

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.local_fs.files import (FileListing, StagedFiles, expand_date_tokens, list_files, recover_staged,
                              wait_for_files)
from connectors.formats import BadRow, infer_schema, read_file, write_table
from ir_compiler.errors import ConnectorError
from ir_compiler.types import Field, Schema, parse_type

# 02:15 UTC on 2025-03-01 is still 2025-02-28 in Los Angeles
NOW = dt.datetime(2025, 3, 1, 2, 15, 9, tzinfo=dt.timezone.utc)
ATOM = {"stagingFolder": ".processing/", "successFolder": ".archive/{YYYY-MM-DD}/", "failureFolder": ".failed/"}


def put(folder, name, text="id\n1\n", mtime=None, data=None):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data) if data is not None else path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


def names(files):
    return [os.path.basename(f) for f in files]


def schema(**types):
    return Schema([Field(n, parse_type(t)) for n, t in types.items()])


def read_all(path, fmt, options=None, declared=None, batch_rows=65536):
    chunks = list(read_file(path, fmt, options, declared, batch_rows=batch_rows))
    assert chunks and all(c.file == path for c in chunks)
    table = pa.Table.from_batches([c.batch for c in chunks], schema=chunks[0].batch.schema)
    return table, [b for c in chunks for b in c.bad_rows]


# ---- listing -------------------------------------------------------------------------------------------
def test_expand_date_tokens_in_timezone():
    assert expand_date_tokens("{YYYY}/{MM}/{DD} {HH}:{mm}:{ss}", NOW, None) == "2025/03/01 02:15:09"
    assert expand_date_tokens("{YYYY-MM-DD}|{YYYYMMDD}", NOW, "America/Los_Angeles") == "2025-02-28|20250228"
    assert expand_date_tokens("{YYYYMMDD}", NOW.replace(tzinfo=None), "UTC") == "20250301"  # naive = UTC
    with pytest.raises(ConnectorError, match="timezone"):
        expand_date_tokens("{YYYY}", NOW, "Mars/Base")


def test_date_template_listing_depends_on_timezone(tmp_path):
    put(tmp_path, "sales_20250228.csv")
    put(tmp_path, "sales_20250301.csv")
    pattern = {"type": "date_template", "value": "sales_{YYYYMMDD}.csv"}
    la = list_files(str(tmp_path), {**pattern, "timezone": "America/Los_Angeles"}, now=NOW)
    utc = list_files(str(tmp_path), {**pattern, "timezone": "UTC"}, now=NOW)
    assert names(la) == ["sales_20250228.csv"] and names(utc) == ["sales_20250301.csv"]
    assert all(os.path.isabs(f) for f in la + utc)


def test_glob_and_regex_and_exclusions(tmp_path):
    put(tmp_path, "a.csv")
    put(tmp_path, "b.CSV")
    put(tmp_path, "notes.txt")
    put(tmp_path, ".hidden.csv")
    put(tmp_path / ".processing", "staged.csv")
    put(tmp_path / "sub", "deep.csv")
    put(tmp_path / "done", "old.csv")
    assert names(list_files(str(tmp_path), {"type": "glob", "value": "*.csv"}, "lexicographic")) == ["a.csv"]
    assert names(list_files(str(tmp_path), {"type": "regex", "value": r"(?i).*\.csv"}, "lexicographic")) == [
        "a.csv", "b.CSV"]
    assert names(list_files(str(tmp_path), None, "lexicographic")) == ["a.csv", "b.CSV", "notes.txt"]
    deep = list_files(str(tmp_path), {"value": "**/*.csv"}, "lexicographic", exclude=["done"])
    assert names(deep) == ["a.csv", "deep.csv"]  # hidden folders and excluded folders are never listed
    with pytest.raises(ConnectorError, match="regular expression"):
        list_files(str(tmp_path), {"type": "regex", "value": "("})


def test_orderings(tmp_path):
    base = time.time() - 1000
    put(tmp_path, "c.csv", mtime=base + 1)
    put(tmp_path, "a.csv", mtime=base + 3)
    put(tmp_path, "b.csv", mtime=base + 2)
    glob = {"type": "glob", "value": "*.csv"}
    assert names(list_files(str(tmp_path), glob, "latest_by_mtime")) == ["a.csv"]
    assert names(list_files(str(tmp_path), glob, "fifo_by_name")) == ["a.csv", "b.csv", "c.csv"]
    assert names(list_files(str(tmp_path), glob, "lexicographic")) == ["a.csv", "b.csv", "c.csv"]
    assert names(list_files(str(tmp_path), glob, "process_all")) == ["c.csv", "b.csv", "a.csv"]
    assert names(list_files(str(tmp_path), glob)) == ["c.csv", "b.csv", "a.csv"]  # default process_all
    with pytest.raises(ConnectorError, match="ordering"):
        list_files(str(tmp_path), glob, "random")


def test_missing_folder_names_it(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(ConnectorError) as err:
        list_files(missing, {"value": "*.csv"})
    assert missing in str(err.value) and "create it" in str(err.value)
    with pytest.raises(ConnectorError, match="does not exist"):
        wait_for_files(missing, None, "process_all", {"maxRetries": 2}, sleep=lambda s: None)


# ---- wait policy ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["alert", "skip", "fail"])
def test_wait_policy_retries_then_acts(tmp_path, action):
    sleeps = []
    policy = {"maxRetries": 3, "intervalMinutes": 0.5, "onMissAction": action}
    pattern = {"type": "glob", "value": "*.csv"}
    if action == "fail":
        with pytest.raises(ConnectorError) as err:
            wait_for_files(str(tmp_path), pattern, "process_all", policy, sleep=sleeps.append)
        assert str(tmp_path) in str(err.value) and "*.csv" in str(err.value)
    else:
        listing = wait_for_files(str(tmp_path), pattern, "process_all", policy, sleep=sleeps.append)
        assert listing.files == [] and listing.waited_seconds == 90.0
        assert bool(listing.warnings) == (action == "alert")
    assert sleeps == [30.0, 30.0, 30.0]


def test_wait_policy_finds_a_file_that_arrives(tmp_path):
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            put(tmp_path, "late.csv")
    listing = wait_for_files(str(tmp_path), {"value": "*.csv"}, "process_all",
                             {"maxRetries": 5, "intervalMinutes": 1, "onMissAction": "fail"}, sleep=sleep)
    assert isinstance(listing, FileListing) and names(listing.files) == ["late.csv"] and len(sleeps) == 2
    assert listing.warnings == [] and listing.waited_seconds == 120.0


def test_no_wait_policy_alerts_without_sleeping(tmp_path):
    listing = wait_for_files(str(tmp_path), None, "process_all", None, sleep=lambda s: pytest.fail("slept"))
    assert listing.files == [] and listing.warnings


# ---- atomicity -----------------------------------------------------------------------------------------
def test_stage_then_commit_to_dated_success_folder(tmp_path):
    a, b = put(tmp_path, "a.csv", "id\n1\n"), put(tmp_path, "b.csv", "id\n2\n")
    staged = StagedFiles.stage([a, b], str(tmp_path), ATOM)
    assert staged.origins == [a, b] and not os.path.exists(a) and not os.path.exists(b)
    assert all(os.path.dirname(p) == str(tmp_path / ".processing") for p in staged.paths)
    assert list_files(str(tmp_path), {"value": "*.csv"}) == []  # staged files are not listed again
    done = staged.commit(now=NOW, timezone="America/Los_Angeles")
    assert done == [str(tmp_path / ".archive" / "2025-02-28" / n) for n in ("a.csv", "b.csv")]
    assert open(done[1]).read() == "id\n2\n" and os.listdir(tmp_path / ".processing") == []


def test_failed_run_goes_to_failure_folder_and_unreadable_files_too(tmp_path):
    staged = StagedFiles.stage([put(tmp_path, "a.csv")], str(tmp_path), {"failureFolder": "/" + str(
        tmp_path / "bad").lstrip("/")})
    assert staged.fail() == [str(tmp_path / "bad" / "a.csv")]
    staged = StagedFiles.stage([put(tmp_path, "x.csv"), put(tmp_path, "y.csv")], str(tmp_path), ATOM)
    done = staged.commit(now=NOW, failed={staged.paths[0]})
    assert names(done) == ["y.csv"] and os.listdir(tmp_path / ".failed") == ["x.csv"]


def test_moves_never_overwrite(tmp_path):
    put(tmp_path / ".archive" / "2025-03-01", "a.csv", "old")
    put(tmp_path / ".archive" / "2025-03-01", "a.1.csv", "older")
    put(tmp_path / ".processing", "a.csv", "left by a crash")
    staged = StagedFiles.stage([put(tmp_path, "a.csv", "new")], str(tmp_path), ATOM)
    assert names(staged.paths) == ["a.1.csv"]  # the crashed run's staged a.csv is kept
    done = staged.commit(now=NOW)
    assert names(done) == ["a.2.csv"] and open(done[0]).read() == "new"
    folder = tmp_path / ".archive" / "2025-03-01"
    assert {n: (folder / n).read_text() for n in os.listdir(folder)} == {"a.csv": "old", "a.1.csv": "older",
                                                                         "a.2.csv": "new"}


def test_vanished_file_is_not_staged_and_json_round_trip(tmp_path):
    a = put(tmp_path, "a.csv")
    staged = StagedFiles.stage([a, str(tmp_path / "gone.csv")], str(tmp_path), ATOM)
    assert names(staged.paths) == ["a.csv"] and staged.origins == [a]
    again = StagedFiles.from_json(staged.to_json())
    assert again.paths == staged.paths and again.origins == staged.origins
    assert names(again.commit(now=NOW)) == ["a.csv"]


def test_recover_staged_after_a_crash(tmp_path):
    assert recover_staged(str(tmp_path), ATOM) == []
    staged = StagedFiles.stage([put(tmp_path, "b.csv"), put(tmp_path, "a.csv")], str(tmp_path), ATOM)
    del staged  # the run crashed before commit: the files stay in staging, never lost
    leftover = recover_staged(str(tmp_path), ATOM)
    assert names(leftover) == ["a.csv", "b.csv"]
    table, _ = read_all(leftover[0], "csv")
    assert table.num_rows == 1
    assert names(StagedFiles(str(tmp_path), ATOM, leftover, leftover).commit(now=NOW)) == ["a.csv", "b.csv"]
    assert recover_staged(str(tmp_path), ATOM) == []


# ---- reading -------------------------------------------------------------------------------------------
ORDERS = ("id,amount,day,ts,ok,note\n1,2.50,2024-01-02,2024-01-02 03:04:05,true,x\n"
          "2,-3,2024-02-29,2024-02-29T12:00:00+02:00,no,\n")
ORDERS_SCHEMA = schema(id="int", amount="decimal(10,2)", day="date", ts="timestamp", ok="bool", note="string")


def check_orders(table):
    assert table.schema == ORDERS_SCHEMA.to_arrow()
    assert table.to_pylist() == [
        {"id": 1, "amount": decimal.Decimal("2.50"), "day": dt.date(2024, 1, 2), "ts": dt.datetime(2024, 1, 2, 3, 4, 5),
         "ok": True, "note": "x"},
        {"id": 2, "amount": decimal.Decimal("-3.00"), "day": dt.date(2024, 2, 29),
         "ts": dt.datetime(2024, 2, 29, 10), "ok": False, "note": None}]


def test_csv_with_and_without_schema(tmp_path):
    path = put(tmp_path, "o.csv", ORDERS)
    table, bad = read_all(path, "csv", {}, ORDERS_SCHEMA)
    assert bad == []
    check_orders(table)
    table, _ = read_all(path, "csv")
    assert table.schema.types == [pa.int64(), pa.float64(), pa.date32(), pa.string(), pa.string(), pa.string()]
    assert table.column("amount").to_pylist() == [2.5, -3.0]


def test_tsv_headerless_quote_and_null_values(tmp_path):
    path = put(tmp_path, "o.tsv", "1\t'a\tb'\tNA\n2\tc\t7\n")
    declared = schema(id="int", name="string", n="int")
    table, bad = read_all(path, "tsv", {"header": False, "quote": "'", "nullValues": ["NA", ""]}, declared)
    assert bad == [] and table.to_pylist() == [{"id": 1, "name": "a\tb", "n": None}, {"id": 2, "name": "c", "n": 7}]
    table, _ = read_all(path, "tsv", {"header": False, "quote": "'"})
    assert table.column_names == ["f0", "f1", "f2"] and table.column("f0").to_pylist() == [1, 2]


def test_gzip_and_latin1_csv(tmp_path):
    gz = put(tmp_path, "o.csv.gz", data=gzip.compress(ORDERS.encode()))
    check_orders(read_all(gz, "csv", {}, ORDERS_SCHEMA)[0])
    plain_name = put(tmp_path, "o.dat", data=gzip.compress(ORDERS.encode()))
    check_orders(read_all(plain_name, "csv", {"compression": "gzip"}, ORDERS_SCHEMA)[0])
    latin = put(tmp_path, "l.csv", data="id,name\n1,Jos\xe9\n2,Mu\xf1oz\n".encode("latin-1"))
    table, _ = read_all(latin, "csv", {"encoding": "latin-1"})
    assert table.column("name").to_pylist() == ["José", "Muñoz"]
    with pytest.raises(ConnectorError, match="l.csv"):
        read_all(latin, "csv")  # not UTF-8: the whole file is unreadable, named in the error


def test_csv_malformed_rows_become_bad_rows_with_lines(tmp_path):
    path = put(tmp_path, "m.csv", "id,v\n1,a\n2,b,EXTRA\n3,c\n4\n5,e\n")
    for declared in (None, schema(id="int", v="string")):
        table, bad = read_all(path, "csv", {}, declared)
        assert table.column("id").to_pylist() == [1, 3, 5]
        assert [(b.line, b.raw) for b in bad] == [(3, "2,b,EXTRA"), (5, "4")]
        assert all(isinstance(b, BadRow) and b.file == path and "expected 2 fields" in b.reason for b in bad)


def test_conversion_failures_become_bad_rows(tmp_path):
    path = put(tmp_path, "c.csv", "id,amount,day,extra\n1,2.505,2024-01-02,z\n2,oops,2024-01-03,z\nbad,1,2024-01-04,z\n"
                                  "4,1,2024-02-30,z,MANY\n5,1,2024-02-30,z\n6,123456789.5,2024-01-06,z\n7,,,z\n")
    declared = schema(id="int", amount="decimal(10,2)", day="date")
    table, bad = read_all(path, "csv", {}, declared, batch_rows=2)
    assert table.column_names == ["id", "amount", "day"]  # the undeclared column is dropped
    assert table.to_pylist() == [{"id": 1, "amount": decimal.Decimal("2.51"), "day": dt.date(2024, 1, 2)},
                                 {"id": 7, "amount": None, "day": None}]
    by_line = {b.line: b.reason for b in bad}
    assert by_line == {3: "column 'amount': cannot convert 'oops' to decimal(10,2)",
                       4: "column 'id': cannot convert 'bad' to int",
                       5: "expected 4 fields, found 5",
                       6: "column 'day': cannot convert '2024-02-30' to date",
                       7: "column 'amount': cannot convert '123456789.5' to decimal(10,2)"}
    assert json.loads(next(b.raw for b in bad if b.line == 3))["amount"] == "oops"


def test_not_null_fields_and_missing_columns(tmp_path):
    path = put(tmp_path, "n.csv", "id,name\n1,a\n,b\n")
    declared = Schema([Field("id", parse_type("int"), nullable=False), Field("name", parse_type("string"))])
    table, bad = read_all(path, "csv", {}, declared)
    assert table.column("id").to_pylist() == [1] and "declared not null" in bad[0].reason
    with pytest.raises(ConnectorError) as err:
        read_all(path, "csv", {}, schema(id="int", amount="float", day="date"))
    assert "n.csv" in str(err.value) and "'amount', 'day'" in str(err.value)


def test_empty_and_header_only_files(tmp_path):
    for text in ("", "id,amount\n"):
        path = put(tmp_path, "e.csv", text)
        table, bad = read_all(path, "csv", {}, schema(id="int", amount="float"))
        assert table.num_rows == 0 and bad == [] and table.column_names == ["id", "amount"]


def test_jsonl_with_bad_lines_and_schema(tmp_path):
    path = put(tmp_path, "x.jsonl", '{"id": 1, "v": "2024-01-02", "n": {"a": 1}}\n\n{"id": 2, oops}\n[1]\n'
                                    '{"id": "3", "v": "2024-01-03"}\n{"id": 4.5, "v": "2024-01-04"}\n')
    table, bad = read_all(path, "jsonl", {}, schema(id="int", v="date", n="json"))
    assert table.to_pylist() == [{"id": 1, "v": dt.date(2024, 1, 2), "n": '{"a": 1}'},
                                 {"id": 3, "v": dt.date(2024, 1, 3), "n": None}]
    assert [(b.line, "invalid JSON" in b.reason) for b in bad] == [(3, True), (4, True), (6, False)]
    good = put(tmp_path, "g.jsonl.gz", data=gzip.compress(b'{"id": 1, "v": 1.5}\n\n{"id": 2, "v": null}\n'))
    table, bad = read_all(good, "jsonl", {}, schema(id="int", v="date"))
    assert bad[0].line == 1 and "cannot convert 1.5" in bad[0].reason and table.column("id").to_pylist() == [2]
    table, _ = read_all(good, "jsonl")
    assert table.schema.types == [pa.int64(), pa.float64()]


def test_json_array_single_object_and_latin1(tmp_path):
    path = put(tmp_path, "a.json", json.dumps([{"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}, 3]))
    table, bad = read_all(path, "json")
    assert table.to_pylist() == [{"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}]
    assert [(b.line, b.raw) for b in bad] == [(3, "3")]
    one = put(tmp_path, "o.json", data='{"name": "Jos\xe9", "n": 1}'.encode("latin-1"))
    table, _ = read_all(one, "json", {"encoding": "latin-1"}, schema(name="string", n="float"))
    assert table.to_pylist() == [{"name": "José", "n": 1.0}]
    with pytest.raises(ConnectorError, match="o.json"):
        read_all(one, "json")


def test_parquet_with_and_without_schema(tmp_path):
    path = str(tmp_path / "p.parquet")
    pq.write_table(pa.table({"id": pa.array([1, 2, 3], pa.int32()), "v": ["1", "x", "3"],
                             "ts": pa.array([0, 1, 2], pa.timestamp("ms", "UTC"))}), path)
    table, _ = read_all(path, "parquet", batch_rows=2)
    assert table.schema.types == [pa.int64(), pa.string(), pa.timestamp("us")]
    table, bad = read_all(path, "parquet", None, schema(v="int", id="string"))
    assert table.to_pylist() == [{"v": 1, "id": "1"}, {"v": 3, "id": "3"}] and "'x'" in bad[0].reason


def test_avro_with_and_without_schema(tmp_path):
    avro = {"type": "record", "name": "r", "fields": [
        {"name": "id", "type": "long"}, {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                                                    "precision": 9, "scale": 2}},
        {"name": "day", "type": ["null", {"type": "int", "logicalType": "date"}]}]}
    path = str(tmp_path / "x.avro")
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(avro), [
            {"id": 7, "amount": decimal.Decimal("1.25"), "day": dt.date(2024, 5, 6)},
            {"id": 8, "amount": decimal.Decimal("-2.00"), "day": None}])
    table, _ = read_all(path, "avro")
    assert table.schema.types == [pa.int64(), pa.decimal128(9, 2), pa.date32()]
    assert table.column("amount").to_pylist() == [decimal.Decimal("1.25"), decimal.Decimal("-2.00")]
    table, _ = read_all(path, "avro", None, schema(id="string", amount="float"))
    assert table.to_pylist() == [{"id": "7", "amount": 1.25}, {"id": "8", "amount": -2.0}]


@pytest.mark.parametrize("fmt", ["parquet", "avro", "json", "jsonl", "csv"])
def test_unreadable_file_names_the_file(tmp_path, fmt):
    path = put(tmp_path, f"garbage.{fmt}", data=b"\x1f\x8b\x00\x00garbage\xff\xfe" * 10)
    with pytest.raises(ConnectorError, match="garbage"):
        read_all(path, fmt)


def test_infer_schema_unifies_files(tmp_path):
    a = put(tmp_path, "a.csv", "id,v\n1,2\n")
    b = put(tmp_path, "b.csv", "id,v,w\n2,2.5,x\n")
    inferred = infer_schema([a, b, put(tmp_path, "c.csv", "")], "csv")
    assert [(f.name, str(f.type)) for f in inferred] == [("id", "int"), ("v", "float"), ("w", "string")]
    with pytest.raises(ConnectorError):
        infer_schema([put(tmp_path, "bad.parquet", "nope")], "parquet")


# ---- writing -------------------------------------------------------------------------------------------
TYPED = pa.table({
    "id": pa.array([1, 2], pa.int64()), "amount": pa.array([1.5, None], pa.float64()),
    "price": pa.array([decimal.Decimal("12345678901234.56"), decimal.Decimal("-0.10")], pa.decimal128(16, 2)),
    "day": pa.array([dt.date(2024, 1, 2), None], pa.date32()),
    "ts": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 600000), None], pa.timestamp("us")),
    "ok": [True, False], "name": ["a", None]})


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "avro"])
def test_write_and_read_back_keeps_types(tmp_path, fmt):
    path = write_table(TYPED, str(tmp_path / "out" / "new"), fmt, prefix="orders", shard=3)
    assert os.path.basename(path) == f"orders-00003.{fmt}"
    assert os.listdir(tmp_path / "out" / "new") == [os.path.basename(path)]  # no temp file left
    declared = Schema.from_arrow(TYPED.schema)
    back, bad = read_all(path, fmt, None, declared)
    assert bad == [] and back.to_pylist() == TYPED.to_pylist()
    if fmt in ("parquet", "avro"):  # self-describing formats keep the types without a declared schema
        assert read_all(path, fmt)[0].schema == TYPED.schema


@pytest.mark.parametrize("prefix,name", [("orders", "orders-00000.csv"), ("orders-", "orders-00000.csv"),
                                         ("orders_", "orders_00000.csv"), ("day.", "day.00000.csv")])
def test_a_prefix_ending_in_a_separator_gets_no_second_one(tmp_path, prefix, name):
    assert os.path.basename(write_table(TYPED, str(tmp_path), "csv", prefix=prefix)) == name


def test_jsonl_numbers_stay_numbers_and_dates_are_iso(tmp_path):
    path = write_table(TYPED, str(tmp_path), "jsonl")
    first = json.loads(open(path).readline(), parse_float=decimal.Decimal)
    assert first == {"id": 1, "amount": decimal.Decimal("1.5"), "price": decimal.Decimal("12345678901234.56"),
                     "day": "2024-01-02", "ts": "2024-01-02T03:04:05.600000", "ok": True, "name": "a"}


def test_csv_dates_iso_and_gzip_and_never_overwrite(tmp_path):
    first = write_table(TYPED, str(tmp_path), "csv", compression="gzip")
    second = write_table(TYPED, str(tmp_path), "csv", compression="gzip")
    assert first.endswith("part-00000.csv.gz") and second != first and second.endswith(".csv.gz")
    lines = gzip.decompress(open(first, "rb").read()).decode().splitlines()
    assert lines[1].startswith('1,1.5,12345678901234.56,2024-01-02,"2024-01-02T03:04:05.600000"')
    assert read_all(second, "csv")[0].column("id").to_pylist() == [1, 2]
    with pytest.raises(ConnectorError, match="format"):
        write_table(TYPED, str(tmp_path), "xml")


def test_avro_field_names_made_valid(tmp_path):
    path = write_table(pa.table({"order id": [1], "2nd": ["x"]}), str(tmp_path), "avro")
    assert read_all(path, "avro")[0].to_pylist() == [{"order_id": 1, "_2nd": "x"}]


@pytest.mark.parametrize("ordering", ["process_all", "latest_by_mtime", "fifo_by_name"])
def test_a_file_another_run_takes_during_the_listing_is_left_out(tmp_path, monkeypatch, ordering):
    """Two runs on one folder: a file listed by this run and moved by the other before its mtime is read is not
    this run's (the race that made one of two concurrent runs fail with FileNotFoundError under load)."""
    import connectors.local_fs.files as files
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / "b.csv").write_text("x\n")
    real = files._walk

    def walk_then_lose_b(path, recursive, exclude):
        listed = list(real(path, recursive, exclude))
        os.unlink(tmp_path / "b.csv")  # the other run's move, right after this run's listing
        yield from listed

    monkeypatch.setattr(files, "_walk", walk_then_lose_b)
    got = list_files(str(tmp_path), None, ordering)
    assert [os.path.basename(f) for f in got] == (["a.csv"] if ordering != "fifo_by_name" else ["a.csv", "b.csv"])
