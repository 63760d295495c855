"""A bundle's window panes written together (connectors.warehouse.streaming._load_together) store exactly what
writing them one after the other stores: the same table rows (lineage included), the same commit keys, the same
reports — on DuckDB and on a real PostgreSQL, over generated bundles with replays, stale and out-of-order
panes, panes of windows already final, keys shared across panes, and a second bundle replaying part of the
first. Each case loads into two warehouses, one pane at a time in one and batched in the other."""
import random

import pyarrow as pa
import pytest

from connectors.warehouse import open_warehouse
from connectors.warehouse import streaming as st
from connectors.warehouse.base import LoadRequest

LINEAGE = {"runId": "r1", "pipelineId": "p", "sourceNodeId": "src"}


@pytest.fixture(params=["duckdb", "postgresql"])
def two(request, tmp_path):
    if request.param == "duckdb":
        yield [open_warehouse(f"duckdb://{tmp_path / f'w{i}.duckdb'}") for i in range(2)]
        return
    from pg_util import fresh_database
    with fresh_database() as a, fresh_database() as b:
        yield [open_warehouse(a), open_warehouse(b)]


def _bundle(rnd, mode, accumulating, lineage):
    panes = []
    for _ in range(rnd.randint(2, 12)):
        w = rnd.randrange(4)
        rows = pa.table({"user": [f"u{rnd.randrange(5)}" for _ in range(rnd.randint(0, 6))]})
        n = rows.num_rows
        rows = rows.append_column("window_start", pa.array([w * 60] * n, pa.int64())) \
            .append_column("total", pa.array([rnd.randint(1, 100) for _ in range(n)], pa.int64())) \
            .append_column("__fb_ord", pa.array(range(n), pa.int64()))
        req = LoadRequest(table="public.agg", mode=mode, files=[], schema=rows.schema,
                          keys=["user", "window_start"] if mode == "upsert" else [], pipeline_id="p",
                          node_id="tgt", lineage=lineage)
        index = rnd.randrange(-1, 3)  # -1: the runner gave no pane index (Prism's session windows)
        panes.append((req, rows, f"{w * 60}:{w * 60 + 60}", f"run/{rnd.randrange(2)}", index,
                      w * 60_000_000 + 60_000_000, None, accumulating))
    return panes


def _state(wh):
    with wh.session() as con:
        table = wh.fetch_arrow(con, "SELECT * FROM public.agg") if wh.schema_in(con, "public.agg") else None
        commits = wh.execute(con, "SELECT pipeline_id, node_id, window_key, shard, pane_index, rows_written "
                                  "FROM _flow_commits").fetchall()
    rows = sorted(map(str, table.to_pylist())) if table is not None else []
    return rows, sorted(commits)


@pytest.mark.parametrize("mode", ["append", "upsert"])
@pytest.mark.parametrize("accumulating", [True, False])
@pytest.mark.parametrize("lineage", [LINEAGE, None])
def test_batched_panes_store_what_one_at_a_time_stores(two, mode, accumulating, lineage):
    one, batched = two
    for seed in range(6):
        rnd = random.Random(seed * 7 + (mode == "upsert") * 3 + accumulating)
        first = _bundle(rnd, mode, accumulating, lineage)
        again = first[: len(first) // 2] + _bundle(rnd, mode, accumulating, lineage)  # a replayed half
        for bundle in (first, again):
            if seed == 3:  # windows before 2 minutes are final: their panes are skipped
                st.advance_frontier(one, "p", "tgt", 120_000_000)
                st.advance_frontier(batched, "p", "tgt", 120_000_000)
            assert st._together(bundle)
            seq = [st.load_panes(one, [pane])[0] for pane in bundle]
            together = st.load_panes(batched, bundle)
            assert [(r.rows_loaded, r.rows_skipped, r.warnings) for r in together] == \
                   [(r.rows_loaded, r.rows_skipped, r.warnings) for r in seq]
            assert _state(batched) == _state(one)
    assert _state(one)[1]  # something was written


def test_panes_of_other_modes_or_targets_load_one_by_one():
    req = LoadRequest(table="public.agg", mode="truncate", files=[], schema=pa.schema([]))
    pane = (req, pa.table({"a": [1]}), "0:60", "s", 0, 60, None, True)
    assert not st._together([pane, pane])
    other = LoadRequest(table="public.other", mode="append", files=[], schema=pa.schema([]))
    mine = LoadRequest(table="public.agg", mode="append", files=[], schema=pa.schema([]))
    assert not st._together([(mine, *pane[1:]), (other, *pane[1:])])
    assert st._together([(mine, *pane[1:]), (mine, *pane[1:])])
    assert not st._together([(mine, pane[1], None, "s", 0, None, {}, True)] * 2)  # unwindowed: one at a time
