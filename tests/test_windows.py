"""Event-time windows on bounded inputs: fixed and sliding windows group an aggregation by window_start /
window_end (the event time from the source's eventTime)."""
import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from conftest import write_csv
from flow_beam.running import RunOptions, run_document
from ir_compiler.check import check_document
from ir_compiler.errors import ValidationFailed
from ir_compiler.models.base import Window
from ir_compiler.propagate import SchemaContext
from ir_compiler.windows import assign_windows, to_timestamps


def test_assign_fixed_and_sliding_windows():
    t = pa.table({"ts": pa.array([dt.datetime(2026, 1, 1, 10, 7), dt.datetime(2026, 1, 1, 10, 59), None])})
    fixed = assign_windows(t, Window(type="fixed", size="1h"), "ts", None)
    assert fixed.column("window_start").to_pylist() == [dt.datetime(2026, 1, 1, 10), dt.datetime(2026, 1, 1, 10),
                                                         None]
    sliding = assign_windows(t.slice(0, 1), Window(type="sliding", size="30m", period="10m"), "ts", None)
    assert sorted(sliding.column("window_start").to_pylist()) == [
        dt.datetime(2026, 1, 1, 9, 40), dt.datetime(2026, 1, 1, 9, 50), dt.datetime(2026, 1, 1, 10, 0)]
    ms = to_timestamps(pa.array([1767261600000]), "epoch_ms").to_pylist()
    assert ms == [dt.datetime(2026, 1, 1, 10, 0)]


def doc(tmp_path, window, event_time=True):
    src = {"id": "clicks", "kind": "source", "connector": "local_fs",
           "config": {"path": str(tmp_path / "in"), "format": "csv"}}
    if event_time:
        src["eventTime"] = {"field": "ts", "format": "epoch_s"}
    return {"kind": "pipeline", "version": "1.0", "id": "windows", "nodes": [
        src,
        {"id": "agg", "kind": "transform", "input": "clicks", "ops": [
            {"op": "aggregate", "groupBy": ["page"], "window": window,
             "aggregations": [{"fn": "count", "as": "clicks"}, {"field": "ms", "fn": "sum", "as": "ms"}]}]},
        {"id": "out", "kind": "target", "input": "agg", "schema": "public.clicks", "lineage": False}]}


def test_fixed_window_aggregation_end_to_end(tmp_path):
    (tmp_path / "in").mkdir()
    base = 1767261600  # 2026-01-01 10:00:00 UTC
    write_csv(tmp_path / "in" / "c.csv", ["page", "ts", "ms"],
              [["a", base + 5, 1], ["a", base + 250, 2], ["a", base + 310, 4], ["b", base + 20, 8]])
    result = run_document(doc(tmp_path, {"type": "fixed", "size": "5m"}),
                          RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "completed", result.error
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    rows = con.execute("select window_start, window_end, page, clicks, ms from public.clicks order by 1, 3").fetchall()
    con.close()
    t0 = dt.datetime(2026, 1, 1, 10, 0)
    five = dt.timedelta(minutes=5)
    assert rows == [(t0, t0 + five, "a", 2, 3), (t0, t0 + five, "b", 1, 8), (t0 + five, t0 + 2 * five, "a", 1, 4)]


def test_window_needs_event_time_and_session_is_not_available(tmp_path):
    d = doc(tmp_path, {"type": "fixed", "size": "5m"}, event_time=False)
    d["nodes"][0]["schema"] = [{"name": "page", "type": "string"}, {"name": "ts", "type": "int"},
                               {"name": "ms", "type": "int"}]
    with pytest.raises(ValidationFailed) as info:
        check_document(d, ctx=SchemaContext())
    assert info.value.issues[0].path == "nodes[1].ops[0].window" and "eventTime" in info.value.issues[0].message
    d = doc(tmp_path, {"type": "session", "gap": "10m"})
    d["nodes"][0]["schema"] = [{"name": "page", "type": "string"}, {"name": "ts", "type": "int"},
                               {"name": "ms", "type": "int"}]
    with pytest.raises(ValidationFailed, match="session"):
        check_document(d, ctx=SchemaContext())
