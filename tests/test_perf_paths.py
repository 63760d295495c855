"""The speed paths keep outputs identical: the Arrow coder, the vectorised key hash, join strategy auto (decided
from file sizes or measured at run time), the load's ordinal check, and the lean Beam import of local CLI runs."""
import json
import os
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from conftest import ROOT, write_csv
from flow_beam.running import RunOptions, run_document
from test_join_branch import CUSTOMERS, EXPECTED, ORDERS


# ---- Arrow coder ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("table", [
    pa.table({"a": [1, 2, 3], "s": ["x", None, "z"]}),
    pa.table({"a": [1, 2, 3]}).select([]),  # rows, no columns
    pa.table({"a": pa.array([], pa.int64())}),
    pa.table({"a": list(range(10)), "l": [[1, 2]] * 10, "d": pa.array([1.5] * 10).cast(pa.decimal128(9, 2))}
             ).slice(3, 4),
    pa.concat_tables([pa.table({"d": pa.array(["x", "y"]).dictionary_encode()}),
                      pa.table({"d": pa.array(["z"]).dictionary_encode()})]),
])
def test_arrow_coder_round_trip(table):
    from apache_beam.coders import TupleCoder, VarIntCoder

    from ir_compiler.lower.arrow_coder import ArrowTableCoder

    coder = ArrowTableCoder()
    back = coder.decode(coder.encode(table))
    assert back.num_rows == table.num_rows and back.schema == table.schema and back.to_pylist() == table.to_pylist()
    kv = TupleCoder([VarIntCoder(), coder])
    assert kv.decode(kv.encode((7, table)))[1].to_pylist() == table.to_pylist()
    assert coder.get_impl().estimate_size(table) == table.nbytes  # sized without encoding


def test_table_pcollections_use_the_arrow_coder():
    import apache_beam as beam

    from ir_compiler.lower.arrow_coder import ArrowTableCoder, tables
    from ir_compiler.lower.context import count

    p = beam.Pipeline()
    src = p | beam.Create([pa.table({"a": [1]})])
    out = count(src, "n", "rows_in", "Count")
    assert isinstance(beam.coders.registry.get_coder(out.element_type), ArrowTableCoder)
    untyped = p | "Other" >> beam.Create([1, 2])
    assert tables(untyped).element_type == int  # only untyped collections are marked


# ---- key hash -----------------------------------------------------------------------------------------------
def test_text_hash_is_positional_and_process_independent():
    from ir_compiler.ops import sets

    values = ["C1", "C2", None, "", "héllo", "x" * 300, "C1"]
    h = sets._text_hash(pa.array(values))
    assert h[0] == h[6] and h[2] == 0 and (h >= 0).all() and (h < 2 ** 31).all()
    assert list(sets._text_hash(pa.array(values).slice(4, 3))) == list(h[4:7])  # offsets of a slice
    assert list(sets._text_hash(pa.array(values, pa.large_string()).cast(pa.string()))) == list(h)
    code = ("import pyarrow as pa; from ir_compiler.ops import sets; "
            f"print(sets._text_hash(pa.array({values!r})).tolist())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(other.stdout) == [int(x) for x in h]
    old = sets._CHUNK_BYTES
    try:  # the chunked path (long texts) gives the same hashes
        sets._CHUNK_BYTES = 8
        assert list(sets._text_hash(pa.array(values))) == list(h)
    finally:
        sets._CHUNK_BYTES = old


def test_buckets_spread_and_agree_between_inputs():
    from ir_compiler.ops.sets import bucket_ids

    keys = [f"C{i}" for i in range(20000)]
    a = bucket_ids(pa.table({"k": keys}), ["k"], 8)
    b = bucket_ids(pa.table({"k": list(reversed(keys))}), ["k"], 8)
    assert (a == b[::-1]).all()
    counts = np.bincount(a, minlength=8)
    assert counts.min() > 2000  # ~2500 each


# ---- join strategy auto ---------------------------------------------------------------------------------
def _join_doc(tmp_path, jtype, customers_source):
    return {"kind": "pipeline", "version": "1.0", "id": "auto-join", "nodes": [
        {"id": "orders", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "o"), "format": "csv"},
         "schema": [{"name": "order_id", "type": "int"}, {"name": "customer_id", "type": "string"},
                    {"name": "amount", "type": "int"}]},
        customers_source,
        {"id": "j", "kind": "join", "inputs": ["orders", "customers"], "type": jtype, "on": ["customer_id"]},
        {"id": "out", "kind": "target", "input": "j", "schema": "public.joined", "lineage": False}]}


@pytest.mark.parametrize("limit", [None, "1"])  # measured small → broadcast; a 1-byte limit → shuffled
@pytest.mark.parametrize("jtype", ["inner", "left", "anti", "full"])
def test_auto_join_measured_at_run_time(tmp_path, monkeypatch, jtype, limit):
    """A table source has no file size: auto measures the customers' Arrow size while the job runs."""
    if limit:
        monkeypatch.setenv("FLOW_BEAM_BROADCAST_BYTES", limit)
    (tmp_path / "o").mkdir()
    write_csv(tmp_path / "o" / "o.csv", ["order_id", "customer_id", "amount"], ORDERS)
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA raw; CREATE TABLE raw.customers (customer_id TEXT, country TEXT)")
    con.executemany("INSERT INTO raw.customers VALUES (?, ?)", CUSTOMERS)
    con.close()
    doc = _join_doc(tmp_path, jtype, {"id": "customers", "kind": "source", "connector": "table",
                                      "config": {"table": "raw.customers"}})
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{db}"))
    assert result.status == "completed", result.error
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("select * from public.joined").fetch_arrow_table().to_pylist()
    con.close()
    assert {(r["order_id"], r["customer_id"], r.get("country")) for r in rows} == EXPECTED[jtype]
    assert result.nodes["j"].rowsOut == len(EXPECTED[jtype])


def test_auto_join_estimate_from_files(tmp_path):
    from ir_compiler.check import check_document, default_context
    from ir_compiler.lower.branch_join import estimate_input_bytes
    from ir_compiler.lower.context import RunContext

    (tmp_path / "o").mkdir()
    (tmp_path / "c").mkdir()
    write_csv(tmp_path / "o" / "o.csv", ["order_id", "customer_id", "amount"], ORDERS)
    write_csv(tmp_path / "c" / "c.csv", ["customer_id", "country"], CUSTOMERS)
    files = {"customers": [str(tmp_path / "c" / "c.csv")], "orders": [str(tmp_path / "o" / "o.csv")]}
    doc = _join_doc(tmp_path, "inner", {"id": "customers", "kind": "source", "connector": "local_fs",
                                        "config": {"path": str(tmp_path / "c"), "format": "csv"}})
    doc["nodes"].insert(2, {"id": "fr", "kind": "transform", "input": "customers",
                            "ops": [{"op": "filter", "condition": "country = 'FR'"}]})
    doc["nodes"][3]["inputs"] = ["orders", "fr"]
    checked = check_document(doc, {}, default_context(None))
    ctx = RunContext(run_id="r", pipeline_id="p", run_dir=str(tmp_path), warehouse_url="", files=files)
    refs = checked.graph.inputs["j"][1:]
    assert estimate_input_bytes(checked.graph, ctx, refs) == os.path.getsize(files["customers"][0])
    ctx.files = {}  # a source whose files are unknown → measured at run time instead
    assert estimate_input_bytes(checked.graph, ctx, refs) is None


# ---- load: staged files come back in input order -------------------------------------------------------
def test_staged_rows_in_input_order_without_a_full_sort(tmp_path):
    from connectors.warehouse.base import LoadRequest
    from connectors.warehouse.loading import staged_rows

    paths = []
    for k, (start, n) in enumerate([(100, 3), (0, 5), (50, 2)]):  # files staged out of order
        t = pa.table({"v": list(range(start, start + n)), "__fb_ord": list(range(start, start + n))})
        paths.append(str(tmp_path / f"{k}.arrow"))
        with pa.OSFile(paths[-1], "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
            w.write_table(t)
    rows = staged_rows(LoadRequest(table="t", mode="append", files=paths, schema=None))
    assert rows.column("v").to_pylist() == [0, 1, 2, 3, 4, 50, 51, 100, 101, 102]
    t = pa.table({"v": [3, 1, 2], "__fb_ord": [3, 1, 2]})  # not increasing inside a file: sorted
    with pa.OSFile(paths[0], "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
        w.write_table(t)
    rows = staged_rows(LoadRequest(table="t", mode="append", files=paths[:1], schema=None))
    assert rows.column("v").to_pylist() == [1, 2, 3]


# ---- lean Beam import -----------------------------------------------------------------------------------
def _probe(tmp_path, runner, doc_text):
    doc = tmp_path / "doc.json"
    doc.write_text(doc_text)
    code = ("import sys; from flow_beam.lean import import_beam; "
            f"import_beam({runner!r}, {str(doc)!r}); "
            "import apache_beam; skipped = 'google.cloud.storage' not in sys.modules; "
            "import google.cloud.pubsub_v1; "  # still importable afterwards
            "print(skipped, 'google.cloud.pubsub_v1' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "FLOW_BEAM_FULL_IMPORT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         check=True)
    return out.stdout.split()


def test_lean_import_only_for_local_runs_without_cloud_resources(tmp_path):
    local = json.dumps({"nodes": [{"config": {"path": "/data/in"}}]})
    assert _probe(tmp_path, "direct", local) == ["True", "True"]
    assert _probe(tmp_path, "direct", local.replace("/data/in", "gs://bucket/in")) == ["False", "True"]
    assert _probe(tmp_path, "dataflow", local) == ["False", "True"]


def test_cli_run_with_lean_import(tmp_path):
    """A whole `flow-beam run` process on the lean import: the rows and the run result are the usual ones."""
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", ["k", "v"], [["a", 1], ["b", 2], ["a", 3]])
    doc = {"kind": "pipeline", "version": "1.0", "id": "lean", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "in"), "format": "csv"},
         "schema": [{"name": "k", "type": "string"}, {"name": "v", "type": "int"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [
            {"op": "aggregate", "groupBy": ["k"], "aggregations": [{"field": "v", "fn": "sum", "as": "total"}]}]},
        {"id": "out", "kind": "target", "input": "t", "schema": "public.totals"}]}
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    db = tmp_path / "w.duckdb"
    env = {k: v for k, v in os.environ.items() if k != "FLOW_BEAM_FULL_IMPORT"}
    env["PYTHONPATH"] = ROOT
    proc = subprocess.run([sys.executable, "-m", "flow_beam", "run", str(tmp_path / "doc.json"), "--warehouse",
                           f"duckdb://{db}", "--result-file", str(tmp_path / "r.json")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bson" not in proc.stderr and "GCSFileSystem" not in proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "completed"
    con = duckdb.connect(str(db), read_only=True)
    assert sorted(con.execute("select k, total from public.totals").fetchall()) == [("a", 4), ("b", 2)]
    assert con.execute("select count(*) from _flow_runs").fetchone()[0] == 1
    con.close()


def test_cli_quick_exit_keeps_exit_code_and_output(tmp_path):
    """`python -m flow_beam` leaves through os._exit after a direct run: the exit code and the printed result are
    still those of the run (here a failed one)."""
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", ["k"], [["a"]])
    doc = {"kind": "pipeline", "version": "1.0", "id": "bad", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "in"), "format": "csv"},
         "schema": [{"name": "missing", "type": "string"}]},
        {"id": "out", "kind": "target", "input": "src", "schema": "public.x"}]}
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "flow_beam", "run", str(tmp_path / "doc.json"), "--warehouse",
                           f"duckdb://{tmp_path / 'w.duckdb'}"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert proc.returncode == 1
    assert "failed in" in proc.stdout and "missing" in proc.stdout


# ---- PostgreSQL binary COPY: the same stored values as the CSV COPY ------------------------------------
def _edge_table(n_repeat: int = 1) -> pa.Table:
    import datetime as dt

    base = {
        "i": pa.array([0, -1, 2 ** 62, None, 42], pa.int64()),
        "i32": pa.array([1, None, -7, 2 ** 31 - 1, 0], pa.int32()),
        "f": pa.array([0.1, -2.5e300, float("inf"), float("nan"), None], pa.float64()),
        "b": pa.array([True, False, None, True, False]),
        "s": pa.array(["", "héllo ☃", None, 'quote " and , comma\nnewline', "x" * 5000]),
        "d": pa.array([dt.date(2000, 1, 1), dt.date(1969, 12, 31), None, dt.date(2999, 12, 31),
                       dt.date(1970, 1, 1)]),
        "ts": pa.array([dt.datetime(2000, 1, 1), dt.datetime(1960, 5, 6, 7, 8, 9, 123456), None,
                        dt.datetime(2026, 12, 2, 23, 59, 59, 999999), dt.datetime(1970, 1, 1)], pa.timestamp("us")),
        "tsms": pa.array([0, 1_700_000_000_123, None, -5, 86_400_000], pa.timestamp("ms")),
        "_flow_lineage": pa.array(['{"runId": "r", "writeOrder": 1}', '{"a": [1, 2]}', None, "{}", '{"é": "☃"}']),
    }
    t = pa.table(base)
    return pa.concat_tables([t] * n_repeat)


def test_binary_copy_stores_what_csv_copy_stores():
    from connectors.warehouse import open_warehouse, pgcopy
    from connectors.warehouse.modes import ensure_table
    from pg_util import fresh_database

    table = _edge_table(3)
    with fresh_database() as url:
        wh = open_warehouse(url)
        with wh.session() as con:
            ensure_table(wh, con, "public.bin", table.schema)
            ensure_table(wh, con, "public.txt", table.schema)
            types = wh._column_types(con, "public.bin", table.column_names)
            assert all(pgcopy.encode_column(pa.array([], f.type), t) is not None for f, t in zip(table.schema, types))
            wh._copy(con, wh.qualified("public.bin"), table, types)  # binary
            wh._copy(con, wh.qualified("public.txt"), table, None)  # CSV
            wh.stage(con, "__fb_stage", table)  # binary through the DDL types of a temp table
            con.commit()
            cols = ", ".join(f'"{c}"::text' for c in table.column_names)
            got = {name: con.execute(f"SELECT {cols} FROM {name} ORDER BY 1, 2, 5").fetchall()
                   for name in ("public.bin", "public.txt")}
        assert got["public.bin"] == got["public.txt"]
        assert len(got["public.bin"]) == 15


def test_binary_copy_falls_back_to_csv_for_other_types():
    from connectors.warehouse import pgcopy

    assert pgcopy.encode_column(pa.array([1.5], pa.float32()), "double precision") is None  # float32 → CSV text
    assert pgcopy.encode_column(pa.array([1], pa.int64()), "integer") is None  # narrower column
    assert pgcopy.encode_column(pa.array([1], pa.timestamp("ns")), "timestamp without time zone") is None
    assert pgcopy.encode_column(pa.array([1], pa.timestamp("us", "UTC")), "timestamp without time zone") is None
    assert pgcopy.encode_column(pa.array([[1]]), "ARRAY") is None
    assert pgcopy.encode_column(pa.array(["1.5"]).cast(pa.decimal128(5, 2)), "numeric") is None


def test_untyped_collections_carry_tables_as_aligned_ipc():
    """The fallback coder of untyped PCollections: tables round-trip as Arrow IPC whose buffers stay 8-byte
    aligned (Acero warns and copies otherwise); other values are Beam's fast primitives or pickle."""
    import apache_beam as beam
    from apache_beam import typehints

    from ir_compiler.lower.arrow_coder import FastArrowCoder

    coder = beam.coders.registry.get_coder(typehints.Any)
    assert isinstance(coder, FastArrowCoder)
    table = pa.table({"a": list(range(1000)), "s": [f"v{i}" for i in range(1000)], "f": [0.5] * 1000})
    for value in (table, (3, table), (1, (2, table))):
        back = coder.decode(coder.encode(value))
        got = back if isinstance(back, pa.Table) else (back[1] if isinstance(back[1], pa.Table) else back[1][1])
        assert got.equals(table)
        for col in got.columns:
            for buf in col.chunk(0).buffers():
                assert buf is None or buf.address % 8 == 0
    for value in (5, "x", {"a": [1, 2]}, None, 1.5, ("k", 2), {1, 2}):
        assert coder.decode(coder.encode(value)) == value
    assert coder.get_impl().estimate_size(table) == table.nbytes  # sized from the buffers
