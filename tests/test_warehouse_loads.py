"""Warehouses (DuckDB file and real PostgreSQL): every batch load mode, each one transaction; a failed load
leaves the table unchanged. PostgreSQL cases need scripts/postgres.sh (FLOW_BEAM_PG_URL) and use a fresh
database each."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.warehouse import open_warehouse
from connectors.warehouse.base import LoadRequest
from ir_compiler.errors import LoadError


@pytest.fixture(params=["duckdb", "postgresql"])
def wh(request, tmp_path):
    if request.param == "duckdb":
        yield open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
        return
    from pg_util import fresh_database
    with fresh_database() as url:
        yield open_warehouse(url)


def stage(tmp_path, rows, name="s"):
    t = pa.Table.from_pylist(rows)
    t = t.append_column("__fb_ord", pa.array(range(t.num_rows), pa.int64()))
    path = tmp_path / f"{name}.parquet"
    pq.write_table(t, path)
    return [str(path)], t.schema


def load(wh, tmp_path, rows, mode="append", name="s", table="public.t", **kw):
    files, schema = stage(tmp_path, rows, name) if rows else ([], pa.schema([("id", pa.int64())]))
    req = LoadRequest(table=table, mode=mode, files=files, schema=schema, pipeline_id="p", node_id="tgt",
                      lineage={"runId": "r1", "pipelineId": "p", "sourceNodeId": "src"}, **kw)
    return wh.load(req)


def rows(wh, cols="id, v"):
    return sorted(wh.read(None, f"SELECT {cols} FROM public.t").to_pylist(), key=lambda r: r["id"])


def test_append_creates_table_with_lineage(wh, tmp_path):
    rep = load(wh, tmp_path, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    assert rep.rows_loaded == 2
    lineage = wh.read(None, "SELECT _flow_lineage FROM public.t ORDER BY id").column(0).to_pylist()
    import json
    assert [json.loads(x)["writeOrder"] for x in lineage] == [1, 2]
    assert json.loads(lineage[0])["runId"] == "r1"


def test_truncate_replaces_and_guards_zero_rows(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    load(wh, tmp_path, [{"id": 3, "v": "c"}], mode="truncate", name="s2")
    assert rows(wh) == [{"id": 3, "v": "c"}]
    with pytest.raises(LoadError, match="0 rows"):
        load(wh, tmp_path, [], mode="truncate")
    assert rows(wh) == [{"id": 3, "v": "c"}]


def test_upsert_updates_inserts_and_last_duplicate_wins(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], mode="upsert", keys=["id"])
    rep = load(wh, tmp_path, [{"id": 2, "v": "B1"}, {"id": 3, "v": "c"}, {"id": 2, "v": "B2"}], mode="upsert",
               name="s2", keys=["id"])
    assert rows(wh) == [{"id": 1, "v": "a"}, {"id": 2, "v": "B2"}, {"id": 3, "v": "c"}]
    assert rep.warnings and "last in input order" in rep.warnings[0]
    # idempotent re-run
    load(wh, tmp_path, [{"id": 2, "v": "B1"}, {"id": 3, "v": "c"}, {"id": 2, "v": "B2"}], mode="upsert",
         name="s3", keys=["id"])
    assert len(rows(wh)) == 3


def test_upsert_null_key_fails_and_leaves_table(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": "a"}], mode="upsert", keys=["id"])
    with pytest.raises(LoadError, match="null"):
        load(wh, tmp_path, [{"id": None, "v": "x"}, {"id": 1, "v": "changed"}], mode="upsert", name="s2",
             keys=["id"])
    assert rows(wh) == [{"id": 1, "v": "a"}]


def test_blue_green_swaps_and_guards(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": "a"}])
    load(wh, tmp_path, [{"id": 5, "v": "e"}, {"id": 6, "v": "f"}], mode="blue_green", name="s2")
    assert rows(wh) == [{"id": 5, "v": "e"}, {"id": 6, "v": "f"}]
    assert wh.table_schema("public.t_new") is None and wh.table_schema("public.t_old") is None
    with pytest.raises(LoadError):
        load(wh, tmp_path, [], mode="blue_green")
    assert len(rows(wh)) == 2


def test_blue_green_never_drops_a_table_it_did_not_make(wh, tmp_path):
    """Found by a probe: a user's tables named <table>_old and <table>_new were dropped with their data by the
    swap. The swap is one transaction, so flow-beam never leaves those names behind: an existing one is the
    user's, and the load stops before writing anything."""
    load(wh, tmp_path, [{"id": 1, "v": "a"}])
    for other in ("public.t_old", "public.t_new"):
        load(wh, tmp_path, [{"id": 42, "v": "precious"}], name=f"u{other[-3:]}", table=other)
        with pytest.raises(LoadError, match=f"{other} already exists.*nothing was dropped"):
            load(wh, tmp_path, [{"id": 5, "v": "e"}], mode="blue_green", name="s2")
        assert rows(wh) == [{"id": 1, "v": "a"}]
        assert wh.read(None, f"SELECT v FROM {other}").to_pylist() == [{"v": "precious"}]
        with wh.session() as con:
            wh.execute(con, f"DROP TABLE {other}")
            if hasattr(con, "commit"):
                con.commit()
    load(wh, tmp_path, [{"id": 5, "v": "e"}], mode="blue_green", name="s3")
    assert rows(wh) == [{"id": 5, "v": "e"}]


def test_incremental_watermark_loads_only_newer_rows(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], mode="incremental_watermark", watermark="id")
    rep = load(wh, tmp_path, [{"id": 2, "v": "b"}, {"id": 3, "v": "c"}], mode="incremental_watermark", name="s2",
               watermark="id")
    assert rep.rows_loaded == 1 and rep.rows_skipped == 1
    assert rep.warnings == ["1 row(s) with id at or below the high-water mark 2 were not loaded "
                            "(incremental_watermark)"]  # never a silent skip
    assert [r["id"] for r in rows(wh)] == [1, 2, 3]
    hwm = wh.read(None, "SELECT hwm FROM _flow_watermarks").column(0).to_pylist()
    assert hwm == ["3"]


def test_incremental_watermark_never_loads_a_row_without_a_mark(wh, tmp_path):
    """A NULL watermark cannot be placed against the mark: not loaded on the first run either (else every later
    run that reads it again would skip it, or an always-load rule would load it again each time), counted."""
    for n, batch in enumerate([[{"ts": 1, "v": "a"}, {"ts": None, "v": "n1"}],
                               [{"ts": None, "v": "n1"}, {"ts": 2, "v": "b"}, {"ts": 1, "v": "a"}]]):
        rep = load(wh, tmp_path, batch, mode="incremental_watermark", name=f"s{n}", watermark="ts")
        assert rep.rows_loaded == 1 and rep.rows_skipped == len(batch) - 1
        assert any(w.startswith("1 row(s) with no ts (NULL) were not loaded") for w in rep.warnings)
    assert sorted(r["v"] for r in wh.read(None, "SELECT v FROM public.t").to_pylist()) == ["a", "b"]


def test_incremental_watermark_refuses_a_mark_kept_for_another_column(wh, tmp_path):
    """Found by a probe: after watermarkColumn changed from a to b, b's values were compared with a's mark (1000)
    and every row skipped. Now a clear error, nothing written; the old column still loads."""
    load(wh, tmp_path, [{"a": 1000, "b": 1, "v": "x"}], mode="incremental_watermark", watermark="a")
    with pytest.raises(LoadError, match="kept for column 'a'.*nothing was written"):
        load(wh, tmp_path, [{"a": 1001, "b": 2, "v": "y"}], mode="incremental_watermark", name="s2", watermark="b")
    assert [r["v"] for r in wh.read(None, "SELECT v FROM public.t").to_pylist()] == ["x"]
    rep = load(wh, tmp_path, [{"a": 1001, "b": 2, "v": "y"}], mode="incremental_watermark", name="s3", watermark="a")
    assert rep.rows_loaded == 1


def test_schema_mismatch_is_clear_and_writes_nothing(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": "a"}])
    with pytest.raises(LoadError, match="nothing was written"):
        load(wh, tmp_path, [{"id": 2, "v": "b", "extra": 1}], name="s2")
    assert rows(wh) == [{"id": 1, "v": "a"}]


def test_failed_load_in_the_middle_rolls_back(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": "a"}])
    with pytest.raises(LoadError, match="rolled back"):  # a post hook that fails after the insert
        load(wh, tmp_path, [{"id": 2, "v": "b"}], name="s2", post_sql="SELECT * FROM no_such_table")
    assert rows(wh) == [{"id": 1, "v": "a"}]


def test_identifiers_are_quoted(wh, tmp_path):
    files, schema = stage(tmp_path, [{"id": 1, "select": "x", "we\"ird": 2}])
    wh.load(LoadRequest(table="public.t", mode="append", files=files, schema=schema))
    assert wh.read(None, 'SELECT "select", "we""ird" FROM public.t').to_pylist() == [{"select": "x", 'we"ird': 2}]


def test_awkward_column_names_round_trip_exactly(wh, tmp_path):
    """Every name the engine accepts as a delimited identifier comes back exactly: case, quotes, backslashes,
    dots, spaces, unicode, reserved words, leading digits, SQL comment and statement characters."""
    names = ['Mixed Case', 'a"b""c', "it's", "back\\slash", "dot.ted", "  spaced  ", "ünï 名前", "order", "1st",
             "x--y", "semi;colon", "$dollar", "per%cent", "tab\there"]
    row = {n: i for i, n in enumerate(names)}
    files, schema = stage(tmp_path, [row])
    wh.load(LoadRequest(table="public.awkward", mode="append", files=files, schema=schema))
    got = wh.read(None, "SELECT * FROM public.awkward").to_pylist()
    assert got == [row]
    assert [wh.ident(n) for n in names[:2]] == ['"Mixed Case"', '"a""b""""c"']


@pytest.mark.parametrize("mode", ["append", "truncate", "upsert", "blue_green", "incremental_watermark"])
def test_every_mode_rolls_back_a_failure_in_the_middle(wh, tmp_path, mode):
    """A statement failing after the rows were written (a killed commit) leaves the table exactly as before;
    then the same load succeeds, and re-running it is idempotent where the mode promises it."""
    kw = {"keys": ["id"]} if mode == "upsert" else {"watermark": "id"} if mode == "incremental_watermark" else {}
    load(wh, tmp_path, [{"id": 1, "v": "a"}], mode=mode, name="s0", **kw)
    before = rows(wh)
    with pytest.raises(LoadError, match="rolled back"):
        load(wh, tmp_path, [{"id": 2, "v": "b"}, {"id": 1, "v": "z"}], mode=mode, name="s1",
             post_sql="SELECT * FROM no_such_table", **kw)
    assert rows(wh) == before
    load(wh, tmp_path, [{"id": 2, "v": "b"}], mode=mode, name="s2", **kw)
    once = rows(wh)
    load(wh, tmp_path, [{"id": 2, "v": "b"}], mode=mode, name="s3", **kw)
    if mode in ("truncate", "upsert", "blue_green", "incremental_watermark"):
        assert rows(wh) == once  # idempotent re-run
    else:
        assert len(rows(wh)) == len(once) + 1  # append appends again, by definition


def test_constraint_violation_rolls_back(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": "a"}])
    with wh.session() as con:
        wh.begin(con)
        wh.execute(con, 'CREATE TABLE "public"."strict" (id BIGINT NOT NULL, v TEXT)')
        wh.execute(con, "INSERT INTO \"public\".\"strict\" VALUES (1, 'keep')")
        wh.commit(con)
    files, schema = stage(tmp_path, [{"id": 2, "v": "ok"}, {"id": None, "v": "violates not null"}], "c")
    with pytest.raises(LoadError):
        wh.load(LoadRequest(table="public.strict", mode="append", files=files, schema=schema))
    assert wh.read(None, "SELECT id, v FROM public.strict").to_pylist() == [{"id": 1, "v": "keep"}]


def test_empty_string_and_null_survive_the_load(wh, tmp_path):
    load(wh, tmp_path, [{"id": 1, "v": ""}, {"id": 2, "v": None}, {"id": 3, "v": 'a,"b"\nc'}])
    assert rows(wh) == [{"id": 1, "v": ""}, {"id": 2, "v": None}, {"id": 3, "v": 'a,"b"\nc'}]


# ---- columns declared `json` -----------------------------------------------------------------------------------
JSON_ROWS = [{"id": 1, "v": "a", "doc": '{"k": [1, 2], "s": "é"}'}, {"id": 2, "v": "b", "doc": None},
             {"id": 3, "v": "c", "doc": "[]"}]


@pytest.mark.parametrize("mode", ["append", "truncate", "upsert", "blue_green"])
def test_a_json_column_makes_a_json_table_column_queryable_as_json(wh, tmp_path, mode):
    """A text column the pipeline declares `json` is created as JSONB (PostgreSQL) / JSON (DuckDB), in every mode
    that creates a table, and a second load into the existing table works."""
    kw = {"keys": ["id"]} if mode == "upsert" else {}
    load(wh, tmp_path, JSON_ROWS, mode=mode, json_columns=["doc"], **kw)
    load(wh, tmp_path, [{"id": 4, "v": "d", "doc": '{"k": [3]}'}], mode=mode, name="s2", json_columns=["doc"], **kw)
    if wh.dialect == "postgres":
        got = wh.read(None, "SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' "
                            "AND table_name = 't' AND column_name = 'doc'").column(0).to_pylist()
        assert got == ["jsonb"]
        firsts = wh.read(None, "SELECT id, (doc->'k'->>0) AS first FROM public.t ORDER BY id").to_pylist()
    else:
        got = wh.read(None, "SELECT data_type FROM information_schema.columns WHERE table_name = 't' "
                            "AND column_name = 'doc'").column(0).to_pylist()
        assert got == ["JSON"]
        firsts = wh.read(None, "SELECT id, (doc->>'$.k[0]') AS first FROM public.t ORDER BY id").to_pylist()
    want = {1: "1", 2: None, 3: None, 4: "3"}
    if mode in ("truncate", "blue_green"):
        want = {4: "3"}
    assert {r["id"]: r["first"] for r in firsts} == want


def test_json_rows_still_load_into_an_existing_text_column(wh, tmp_path):
    load(wh, tmp_path, JSON_ROWS)  # created before: no json marking, a text column
    load(wh, tmp_path, [{"id": 4, "v": "d", "doc": '{"k": [3]}'}], name="s2", json_columns=["doc"])
    assert [r["doc"] for r in rows(wh, "id, doc")] == [JSON_ROWS[0]["doc"], None, "[]", '{"k": [3]}']
