"""Loads into one table serialize (SPEC §6): two overlapping loads give the result of some serial order, on
real PostgreSQL for every load mode; runs that share a DuckDB file wait for it (bounded) and lose no run-history
or DLQ row."""
import json
import os
import subprocess
import sys
import threading

import duckdb
import pyarrow as pa
import pytest

from connectors.warehouse import open_warehouse
from connectors.warehouse.base import LoadRequest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 40_000
MODES = ["append", "truncate", "upsert", "blue_green", "incremental_watermark", "cdc_mirror"]


def _rows(mode, lo, hi, tag):
    ids = list(range(lo, hi))
    if mode == "cdc_mirror":
        return pa.table({"op": ["u"] * len(ids), "after": [json.dumps({"id": i, "v": tag}) for i in ids],
                         "ts_ms": ids})
    return pa.table({"id": pa.array(ids, pa.int64()), "v": [tag] * len(ids)})


def _staged(tmp_path, name, table):
    path = str(tmp_path / f"{name}.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def _request(mode, table_name, path, schema):
    return LoadRequest(table=table_name, mode=mode, files=[path], schema=schema, keys=["id"], watermark="id",
                       pipeline_id="conc", node_id="tgt", lineage=None)


def _contents(url, table_name):
    wh = open_warehouse(url)
    return sorted(tuple(r.values()) for r in wh.read(table_name).to_pylist())


def _serial_results(url, mode, loads, first=None):
    """The table after A then B, and after B then A (each after ``first`` when given)."""
    out = []
    for order, name in ((loads, "ab"), (loads[::-1], "ba")):
        table_name = f"public.serial_{mode}_{name}_{first is not None}"
        for path, schema in ([first] if first else []) + order:
            open_warehouse(url).load(_request(mode, table_name, path, schema))
        out.append(_contents(url, table_name))
    return out


@pytest.mark.infra
@pytest.mark.parametrize("mode", MODES)
def test_two_overlapping_loads_into_one_postgres_table_serialize(tmp_path, mode):
    from pg_util import fresh_database

    a, b, c = _rows(mode, 0, N, "a"), _rows(mode, N // 2, N + N // 2, "b"), _rows(mode, -100, 10, "c")
    loads = [(_staged(tmp_path, "a", a), a.schema), (_staged(tmp_path, "b", b), b.schema)]
    first = (_staged(tmp_path, "c", c), c.schema)
    with fresh_database() as url:
        serials = [_serial_results(url, mode, loads), _serial_results(url, mode, loads, first)]
        for trial in range(6):  # even trials: a new table (the CREATE races too); odd: a table with rows
            table_name = f"public.t{trial}"
            serial = serials[trial % 2]
            if trial % 2:
                open_warehouse(url).load(_request(mode, table_name, *first))
            start, errors = threading.Barrier(2), []

            def load(path, schema, table_name=table_name, start=start, errors=errors):
                start.wait()
                try:
                    open_warehouse(url).load(_request(mode, table_name, path, schema))
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(exc)
            threads = [threading.Thread(target=load, args=ld) for ld in loads]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            got = _contents(url, table_name)
            keys = [r[0] for r in got]
            assert got in serial, (f"trial {trial}: {len(got)} rows, {len(keys) - len(set(keys))} duplicate keys; "
                                   f"serial orders give {len(serial[0])} or {len(serial[1])}")


# ---- DuckDB: one writing process per file ---------------------------------------------------------------
def _doc(folder, n):
    return {"kind": "pipeline", "version": "1.0", "id": f"par-{n}",
            "nodes": [{"id": "src", "kind": "source", "connector": "local_fs",
                       "config": {"path": str(folder), "format": "csv"},
                       "schema": [{"name": "id", "type": "int"}, {"name": "run", "type": "int"}]},
                      {"id": "tgt", "kind": "target", "input": "src", "schema": "public.t", "loadMode": "append"}],
            "errorHandling": {"dlq": {"enabled": True, "table": "dlq.par"}}}


@pytest.mark.slow
def test_parallel_runs_on_one_duckdb_file_all_succeed_and_keep_every_history_and_dlq_row(tmp_path):
    wh = tmp_path / "wh.duckdb"
    results = []
    for wave in range(2):
        procs = []
        for n in range(4):
            folder = tmp_path / f"in{wave}{n}"
            folder.mkdir()
            run = wave * 4 + n
            (folder / "a.csv").write_text("id,run\n" + "".join(f"{run * 1000 + i},{run}\n" for i in range(1000))
                                          + "notanumber,x\n")  # one row for the DLQ
            doc = tmp_path / f"p{run}.json"
            doc.write_text(json.dumps(_doc(folder, run)))
            out = tmp_path / f"r{run}.json"
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "flow_beam", "run", str(doc), "--warehouse", f"duckdb://{wh}",
                 "--result-file", str(out)], env={**os.environ, "PYTHONPATH": ROOT},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), out))
        for proc, out in procs:
            text = proc.communicate(timeout=600)[0]
            assert proc.returncode == 2, text  # completed_with_errors: the DLQ row, nothing else
            results.append(json.loads(out.read_text()))
    assert all(not r["warnings"] for r in results), [r["warnings"] for r in results]
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select count(*), count(distinct id) from public.t").fetchone() == (8000, 8000)
    runs = {r[0] for r in con.execute("select run_id from _flow_runs").fetchall()}
    assert runs == {r["runId"] for r in results}
    dlq = sorted(r[0] for r in con.execute("select run_id from dlq.par").fetchall())
    assert dlq == sorted(r["runId"] for r in results)


_HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(60)
"""


def test_a_duckdb_file_held_too_long_fails_clearly(tmp_path, monkeypatch):
    from connectors.warehouse.duckdb import LOCK_WAIT_ENV
    from ir_compiler.errors import ConnectorError

    wh = str(tmp_path / "wh.duckdb")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, wh], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        monkeypatch.setenv(LOCK_WAIT_ENV, "1.5")
        with pytest.raises(ConnectorError) as err:
            open_warehouse(f"duckdb://{wh}").append_rows("t", pa.table({"x": [1]}))
        msg = str(err.value)
        assert f"locked by another process (pid {holder.pid})" in msg and "serialize" in msg
        assert "PostgreSQL" in msg and LOCK_WAIT_ENV in msg
    finally:
        holder.kill()
        holder.wait()
    assert open_warehouse(f"duckdb://{wh}").append_rows("t", pa.table({"x": [1]})) == 1  # free again
