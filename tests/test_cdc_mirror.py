"""cdc_mirror: Debezium change events (inserts, updates, deletes; two partitions read out of order) yield a
mirror table equal to the source state, on DuckDB and PostgreSQL; replaying the events changes nothing.
(The events come from JSONL files here: the Kafka source is not in this build.)"""
import json

from connectors.warehouse import open_warehouse
from flow_beam.running import RunOptions, run_document


def event(op, lsn, before=None, after=None):
    return {"op": op, "before": before, "after": after, "source": {"lsn": lsn, "table": "customers"},
            "ts_ms": 1767261600000 + lsn}


# partition 0 and partition 1 of the topic; lsn gives the source order across them
PART0 = [event("c", 1, after={"id": 1, "name": "Ann", "tier": "bronze"}),
         event("c", 2, after={"id": 2, "name": "Bob", "tier": "bronze"}),
         event("u", 5, before={"id": 1, "name": "Ann", "tier": "silver"}, after={"id": 1, "name": "Ann", "tier": "gold"}),
         event("d", 7, before={"id": 2, "name": "Bob", "tier": "bronze"})]
PART1 = [event("u", 4, before={"id": 1, "name": "Ann", "tier": "bronze"}, after={"id": 1, "name": "Ann", "tier": "silver"}),
         event("c", 3, after={"id": 3, "name": "Cy", "tier": "bronze"}),
         {"payload": event("c", 8, after={"id": 2, "name": "Bob", "tier": "platinum"})},  # with schemas enabled
         event("u", 6, before={"id": 3, "name": "Cy", "tier": "bronze"}, after={"id": 3, "name": "Cy", "tier": "gold"})]
SOURCE_STATE = [(1, "Ann", "gold"), (2, "Bob", "platinum"), (3, "Cy", "gold")]


def doc(folder):
    return {"kind": "pipeline", "version": "1.0", "id": "cdc", "nodes": [
        {"id": "events", "kind": "source", "connector": "local_fs",
         "config": {"path": str(folder), "format": "jsonl", "ordering": "lexicographic"}},
        {"id": "mirror", "kind": "target", "input": "events", "schema": "mirror.customers", "loadMode": "cdc_mirror",
         "cdcSource": "events", "upsertKey": "id"}]}


def write(folder, name, events):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join(json.dumps(e) + "\n" for e in events))


def test_cdc_mirror_equals_source_state(tmp_path, warehouse):
    folder = tmp_path / "events"
    write(folder, "p1.jsonl", PART1)  # read first, although it holds later changes of key 1
    write(folder, "p0.jsonl", PART0)
    for attempt in range(2):  # the second run replays the same events
        result = run_document(doc(folder), RunOptions(warehouse=warehouse))
        assert result.status == "completed", result.error
        wh = open_warehouse(warehouse)
        rows = wh.read(None, "select id, name, tier from mirror.customers order by id").to_pylist()
        assert [(r["id"], r["name"], r["tier"]) for r in rows] == SOURCE_STATE, attempt
        mirror = result.nodes["mirror"]  # the replay: every event at its key's applied position, skipped
        assert (mirror.rowsLoaded, mirror.rowsSkipped) == ((3, 5) if attempt == 0 else (0, 8))


def test_a_later_delete_removes_the_row(tmp_path, warehouse):
    folder = tmp_path / "events"
    write(folder, "a.jsonl", PART0 + PART1)
    run_document(doc(folder), RunOptions(warehouse=warehouse))
    write(folder, "a.jsonl", [event("d", 9, before={"id": 1, "name": "Ann", "tier": "gold"})])
    result = run_document(doc(folder), RunOptions(warehouse=warehouse))
    assert result.status == "completed", result.error
    rows = open_warehouse(warehouse).read(None, "select id from mirror.customers order by id").to_pylist()
    assert [r["id"] for r in rows] == [2, 3]


def test_malformed_event_fails_the_load_and_changes_nothing(tmp_path, warehouse):
    folder = tmp_path / "events"
    write(folder, "a.jsonl", PART0)
    run_document(doc(folder), RunOptions(warehouse=warehouse))
    write(folder, "a.jsonl", [{"op": "x", "after": {"id": 9}}])
    result = run_document(doc(folder), RunOptions(warehouse=warehouse))
    assert result.status == "failed" and "op 'x'" in result.nodes["mirror"].error
    rows = open_warehouse(warehouse).read(None, "select id, tier from mirror.customers order by id").to_pylist()
    assert rows == [{"id": 1, "tier": "gold"}]


def test_an_update_that_changes_the_key_removes_the_old_row(tmp_path, warehouse):
    """Found by a probe: the row of the old key stayed (a phantom row per key change). The source has no id 10
    after the update; a later re-insert of id 10 (higher LSN) still wins over the update's delete."""
    folder = tmp_path / "events"
    write(folder, "a.jsonl", [event("c", 1, after={"id": 10, "name": "K", "tier": "b"}),
                              event("c", 2, after={"id": 20, "name": "L", "tier": "b"}),
                              event("u", 3, before={"id": 10, "name": "K", "tier": "b"},
                                    after={"id": 50, "name": "K", "tier": "b"}),
                              event("u", 4, before={"id": 20, "name": "L", "tier": "b"},
                                    after={"id": 60, "name": "L", "tier": "b"}),
                              event("c", 5, after={"id": 20, "name": "M", "tier": "s"})])
    result = run_document(doc(folder), RunOptions(warehouse=warehouse))
    assert result.status == "completed", result.error
    rows = open_warehouse(warehouse).read(None, "select id, name from mirror.customers order by id").to_pylist()
    assert [(r["id"], r["name"]) for r in rows] == [(20, "M"), (50, "K"), (60, "L")]


def test_positions_written_as_text_are_ordered_as_numbers(tmp_path, warehouse):
    """Found by a probe: lsn "9" then "10" kept the older image ("9" > "10" as text); numbers and non-numeric
    text mixed is a clear error naming the event."""
    def ev(op, lsn, after):
        return {"op": op, "before": None, "after": after, "source": {"lsn": lsn}}
    folder = tmp_path / "events"
    write(folder, "a.jsonl", [ev("c", "9", {"id": 1, "name": "a", "tier": "x"}),
                              ev("u", "10", {"id": 1, "name": "b", "tier": "x"})])
    result = run_document(doc(folder), RunOptions(warehouse=warehouse))
    assert result.status == "completed", result.error
    rows = open_warehouse(warehouse).read(None, "select name from mirror.customers").to_pylist()
    assert rows == [{"name": "b"}]
    write(folder, "a.jsonl", [ev("c", 9, {"id": 2, "name": "a", "tier": "x"}),
                              ev("u", "0/16B3748", {"id": 2, "name": "b", "tier": "x"})])
    result = run_document(doc(folder), RunOptions(warehouse=warehouse))
    assert result.status == "failed"
    assert "change event 2" in result.error and "mixed" in result.error, result.error


def test_an_older_event_replayed_in_a_later_load_never_rolls_the_mirror_back(tmp_path, warehouse):
    """Found by a probe: after lsn 10 (v1) and 20 (v2) were applied, a later load holding a redelivery of lsn 10
    put v1 back. The position that decided each key is kept in the load's transaction: a replay is skipped (and
    counted), a genuinely newer event still applies, a delete is not undone by a replayed create."""
    folder = tmp_path / "events"
    write(folder, "a.jsonl", [event("c", 10, after={"id": 1, "name": "v1", "tier": "b"}),
                              event("u", 20, before={"id": 1, "name": "v1", "tier": "b"},
                                    after={"id": 1, "name": "v2", "tier": "b"}),
                              event("c", 11, after={"id": 2, "name": "x", "tier": "b"}),
                              event("d", 21, before={"id": 2, "name": "x", "tier": "b"})])
    assert run_document(doc(folder), RunOptions(warehouse=warehouse)).status == "completed"
    write(folder, "a.jsonl", [event("c", 10, after={"id": 1, "name": "v1", "tier": "b"}),
                              event("c", 11, after={"id": 2, "name": "x", "tier": "b"}),
                              event("c", 12, after={"id": 3, "name": "new", "tier": "b"})])
    result = run_document(doc(folder), RunOptions(warehouse=warehouse))
    assert result.status == "completed", result.error
    rows = open_warehouse(warehouse).read(None, "select id, name from mirror.customers order by id").to_pylist()
    assert [(r["id"], r["name"]) for r in rows] == [(1, "v2"), (3, "new")]
    r = result.nodes["mirror"]
    assert (r.rowsLoaded, r.rowsSkipped) == (1, 2)
    write(folder, "a.jsonl", [event("u", 30, before={"id": 1, "name": "v2", "tier": "b"},
                                    after={"id": 1, "name": "v3", "tier": "b"})])
    assert run_document(doc(folder), RunOptions(warehouse=warehouse)).status == "completed"
    rows = open_warehouse(warehouse).read(None, "select id, name from mirror.customers order by id").to_pylist()
    assert [(r["id"], r["name"]) for r in rows] == [(1, "v3"), (3, "new")]


def test_row_images_of_mixed_types_are_a_clear_error(tmp_path, warehouse):
    """Found by a probe: after-images {"id": 1} and {"id": "2"} failed the load with Arrow's "Could not convert
    '2' with type str: tried to convert to int64" — no column, no hint. Now the column and both values are named
    and the table is unchanged."""
    folder = tmp_path / "events"
    write(folder, "a.jsonl", PART0)
    run_document(doc(folder), RunOptions(warehouse=warehouse))
    write(folder, "a.jsonl", [event("c", 10, after={"id": 5, "name": "Di", "tier": "x"}),
                              event("c", 11, after={"id": 6, "name": "Ed", "tier": 7})])
    result = run_document(doc(folder), RunOptions(warehouse=warehouse))
    error = result.nodes["mirror"].error
    assert result.status == "failed" and "column 'tier'" in error and "'x' (str) and 7 (int)" in error, error
    rows = open_warehouse(warehouse).read(None, "select id, tier from mirror.customers order by id").to_pylist()
    assert rows == [{"id": 1, "tier": "gold"}]
