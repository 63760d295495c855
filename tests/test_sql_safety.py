"""Nothing executed (SPEC §6): hooks and table queries run read-only, and validation never runs user SQL.

A corpus of hostile statements (the classes the issue-11 probe used) is
1. rejected at validation (the sqlglot allowlist, ir_compiler/hooks.py), at the JSON path of the hook/query;
2. refused by the run-time entry point (``Warehouse.run_hook`` re-checks the allowlist);
3. blocked by the read-only layer ALONE — ``Warehouse.query_read_only`` is called with the raw text, bypassing the
   allowlist — on a real DuckDB file and a real PostgreSQL server: afterwards the table, the table list, the
   sequence, the large objects, a victim connection and a world-writable folder are exactly as before.
"""
import os
import shutil
import tempfile

import pytest

from conftest import doc_with_path, write_csv
from connectors.warehouse import open_warehouse
from ir_compiler.errors import LoadError, ValidationFailed
from ir_compiler.hooks import check_sql, query_problem, sql_hook_problem

HOSTILE = [
    # DML
    "DELETE FROM t", "UPDATE t SET a = 0", "INSERT INTO t VALUES (9)", "INSERT INTO t SELECT * FROM t",
    "MERGE INTO t USING (SELECT 1 AS a) s ON t.a = s.a WHEN MATCHED THEN DELETE", "TRUNCATE t", "TRUNCATE TABLE t",
    "dElEtE FROM t", "DELETE/**/FROM t",
    # DDL
    "DROP TABLE t", "CREATE TABLE u (a int)", "CREATE TABLE u AS SELECT * FROM t", "ALTER TABLE t ADD COLUMN b int",
    "ALTER TABLE t RENAME TO t2", "CREATE INDEX i ON t (a)", "CREATE VIEW v AS SELECT * FROM t",
    "CREATE SCHEMA evil", "DROP SCHEMA public CASCADE", "COMMENT ON TABLE t IS 'x'", "GRANT ALL ON t TO PUBLIC",
    "REVOKE ALL ON t FROM PUBLIC", "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
    "CREATE SEQUENCE s2", "VACUUM FULL t", "LOCK TABLE t",
    # EXPLAIN ANALYZE of anything but a SELECT
    "EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN ANALYZE UPDATE t SET a = 0", "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
    "explain analyse delete from t", "EXPLAIN (ANALYZE) DELETE FROM t", "EXPLAIN ANALYZE CREATE TABLE u AS SELECT 1",
    "EXPLAIN DELETE FROM t",
    # CTEs with DML, SELECT INTO, locking reads
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "WITH u AS (UPDATE t SET a = 0 RETURNING a) SELECT 1",
    "WITH i AS (INSERT INTO t VALUES (5) RETURNING a) SELECT a FROM i", "SELECT * INTO u FROM t",
    "SELECT * FROM t FOR UPDATE", "SELECT * FROM t FOR SHARE", "SELECT * FROM t FOR NO KEY UPDATE",
    # file, large-object, admin, sequence, sleep functions (also nested)
    "SELECT pg_read_file('/etc/hostname')", "SELECT pg_read_binary_file('/etc/hostname')", "SELECT pg_ls_dir('.')",
    "SELECT pg_stat_file('/etc/hostname')", "SELECT lo_import('/etc/hostname')",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '{dir}/lo.txt')", "SELECT lo_create(0)",
    "SELECT pg_terminate_backend({pid})", "SELECT pg_cancel_backend({pid})", "SELECT pg_reload_conf()",
    "SELECT set_config('search_path', 'evil', false)", "SELECT nextval('s')", "SELECT setval('s', 100)",
    "SELECT pg_sleep(0.01)", "SELECT pg_advisory_lock(1)", "SELECT dblink_exec('dbname=x', 'DROP TABLE t')",
    "SELECT pg_catalog.pg_read_file('/etc/hostname')", "SELECT \"pg_read_file\"('/etc/hostname')",
    "SELECT PG_READ_FILE('/etc/hostname')", "SELECT evil.lower('x')",
    "SELECT * FROM t WHERE a IN (SELECT lo_import('/etc/hostname'))", "SELECT * FROM t ORDER BY pg_terminate_backend({pid})",
    "SELECT (SELECT pg_read_file('/etc/hostname'))", "SELECT coalesce(pg_read_file('/etc/hostname'), 'x')",
    "SELECT * FROM t WHERE EXISTS (SELECT set_config('a.b', 'c', false))",
    "SELECT * FROM generate_series(1, 2) g, LATERAL (SELECT lo_create(0)) x",
    "VALUES (pg_read_file('/etc/hostname'))",
    # DuckDB file/URL readers and table functions
    "SELECT * FROM read_csv('/etc/hostname')", "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('/x.parquet')", "SELECT * FROM '/etc/hostname'", "SELECT * FROM \"/etc/hostname\"",
    "SELECT * FROM glob('/etc/*')", "SELECT * FROM query('DELETE FROM t')", "SELECT * FROM query_table('t')",
    "SELECT getenv('HOME')", "SELECT * FROM duckdb_secrets()", "SELECT * FROM duckdb_settings()",
    # catalogs
    "SELECT * FROM pg_authid", "SELECT * FROM pg_catalog.pg_shadow",
    # COPY, DO, CALL, SET, transactions, extensions, prepared statements
    "COPY t TO '{dir}/copy.csv'", "COPY (SELECT 1) TO '{dir}/copy2.csv'", "COPY t FROM '/etc/hostname'",
    "DO $$ BEGIN DELETE FROM t; END $$", "CALL p()", "SET ROLE postgres", "RESET ROLE", "SET search_path = evil",
    "SET default_transaction_read_only = off", "BEGIN", "COMMIT", "ROLLBACK", "PRAGMA enable_profiling",
    "ATTACH '{dir}/x.duckdb' AS x", "INSTALL httpfs", "LOAD httpfs", "PREPARE p AS DELETE FROM t", "EXECUTE p",
    "LISTEN x", "NOTIFY x",
    # several statements, comment and quoting tricks
    "SELECT 1; DELETE FROM t", "SELECT 1;DELETE FROM t;", "SELECT 1 /* x */; DELETE FROM t",
    "SELECT 1 -- x\n; DELETE FROM t", "SELECT 1 /* /* */ ; DELETE FROM t; /* */", "SELECT $$x$$; DELETE FROM t",
    "SELECT E'\\''; DELETE FROM t; --'", "SELECT * FROM U&\"\\0070g_authid\"", "ANALYZE t; DELETE FROM t",
    "SHOW search_path; DELETE FROM t", "EXPLAIN SELECT 1; DELETE FROM t",
    # (value).name is PostgreSQL's functional notation name(value): found by a probe to pass the allowlist
    "SELECT (x).pg_terminate_backend FROM (VALUES ({pid})) v(x)", "SELECT (x).pg_sleep FROM (VALUES (0.01)) v(x)",
    "SELECT (x).nextval FROM (VALUES ('s'::regclass)) v(x)", "SELECT (a).lo_create FROM t",
]
SAFE = ["SELECT 1", "SELECT a, count(*) FROM t GROUP BY a ORDER BY 2", "SELECT coalesce(a, 1)::int FROM t",
        "WITH x AS (SELECT a FROM t) SELECT a FROM x UNION ALL SELECT 2", "EXPLAIN SELECT * FROM t",
        "EXPLAIN ANALYZE SELECT a FROM t", "ANALYZE", "ANALYZE t", "VACUUM", "VACUUM ANALYZE public.t",
        "CHECKPOINT", "SHOW search_path", "SELECT * FROM generate_series(1, 3)",
        "SELECT lower(x) FROM (VALUES ('A')) v(x)", 'SELECT "a" FROM "public"."t"']


def test_corpus_is_big_enough():
    assert len(HOSTILE) >= 70 and len(set(HOSTILE)) == len(HOSTILE)


@pytest.mark.parametrize("statement", HOSTILE)
def test_hostile_statement_is_rejected_at_validation(statement):
    sql = statement.format(dir="/tmp/x", pid=1)
    assert sql_hook_problem(sql) is not None, sql
    assert query_problem(sql) is not None, sql
    for dialect in ("postgres", "duckdb"):  # the run-time re-check in the warehouse's own dialect
        assert sql_hook_problem(sql, dialect) is not None, (dialect, sql)


@pytest.mark.parametrize("statement", SAFE)
def test_read_only_and_maintenance_statements_pass(statement):
    assert sql_hook_problem(statement) is None


@pytest.mark.parametrize("statement, verb", [("TRUNCATE hk.victim", "TRUNCATE"), ("NOTIFY ch", "NOTIFY"),
                                              ("DELETE FROM t", "DELETE"), ("grant select on t to x", "GRANT")])
def test_a_refused_statement_is_named_by_its_own_verb(statement, verb):
    """Found by a probe: TRUNCATE was refused as "TRUNCATETABLE", NOTIFY as "ALIAS" (the parser's class names)."""
    assert sql_hook_problem(statement).startswith(f"{verb} is not allowed")


def test_what_runs_is_regenerated_from_the_checked_tree():
    assert check_sql("select a /* hi */ from t -- bye", "postgres").sql == "SELECT a FROM t"
    assert check_sql('analyze public.t', "postgres").sql == 'ANALYZE "public"."t"'
    assert check_sql("vacuum analyze t", "duckdb").sql == 'VACUUM ANALYZE "t"'


def test_validation_reports_the_hook_and_query_paths(spec_doc):
    from ir_compiler.check import check_document
    from ir_compiler.propagate import SchemaContext

    spec_doc["nodes"][2]["preHook"] = {"type": "sql", "statement": "EXPLAIN ANALYZE DELETE FROM t"}
    spec_doc["nodes"][2]["postHook"] = {"type": "sql", "statement": "SELECT lo_export(1, '/tmp/x')"}
    spec_doc["nodes"][0] = {"id": "src", "kind": "source", "connector": "table",
                            "config": {"table": "public.t", "query": "SELECT pg_read_file('/etc/passwd')"}}
    with pytest.raises(ValidationFailed) as info:
        check_document(spec_doc, ctx=SchemaContext())
    paths = {i.path for i in info.value.issues if i.severity == "error"}
    assert {"nodes[2].preHook.statement", "nodes[2].postHook.statement", "nodes[0].config.query"} <= paths


# ---- the run-time layer, bypassing validation ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_dir():
    """A folder the database server could write into (world-writable, reachable), to catch file writes."""
    d = tempfile.mkdtemp(prefix="fb-sqlsafety-", dir="/tmp")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _seed_duckdb(path):
    import duckdb
    con = duckdb.connect(path)
    con.execute("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2); CREATE SEQUENCE s; "
                "CREATE TABLE j (a INTEGER, doc JSON); INSERT INTO j VALUES (1, '{\"k\": 1}')")
    con.close()


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def target(request, tmp_path_factory):
    """(warehouse, state function, victim pid or 0)."""
    if request.param == "duckdb":
        path = str(tmp_path_factory.mktemp("duck") / "w.duckdb")
        _seed_duckdb(path)
        wh = open_warehouse(f"duckdb://{path}")

        def state():
            import duckdb
            con = duckdb.connect(path, read_only=True)
            try:
                return (con.execute("SELECT a FROM t ORDER BY a").fetchall(),
                        con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                                    "ORDER BY 1, 2").fetchall(),
                        con.execute("SELECT schema_name FROM information_schema.schemata ORDER BY 1").fetchall(),
                        con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 't'")
                        .fetchall())
            finally:
                con.close()
        yield wh, state, 0
        return
    from pg_util import fresh_database
    import psycopg
    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); CREATE SEQUENCE s")
        victim = psycopg.connect(url, autocommit=True)
        pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]

        def state():
            with psycopg.connect(url, autocommit=True) as con:
                return (con.execute("SELECT a FROM t ORDER BY a").fetchall(),
                        con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                                    "ORDER BY 1, 2").fetchall(),
                        con.execute("SELECT nspname FROM pg_namespace ORDER BY 1").fetchall(),
                        con.execute("SELECT last_value, is_called FROM s").fetchall(),
                        con.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchall(),
                        con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 't'")
                        .fetchall(),
                        con.execute("SELECT obj_description('t'::regclass)").fetchall(),
                        victim.execute("SELECT 1").fetchall())  # raises if the victim was terminated
        try:
            yield open_warehouse(url), state, pid
        finally:
            victim.close()


@pytest.mark.parametrize("statement", HOSTILE)
def test_read_only_layer_alone_blocks_every_hostile_statement(target, shared_dir, statement):
    wh, state, pid = target
    sql = statement.format(dir=shared_dir, pid=pid or 1)
    before = state()
    try:
        wh.query_read_only(sql)  # no allowlist: only the read-only transaction/connection stands in the way
    except Exception:  # noqa: BLE001 - refused by the database is the expected outcome for most
        pass
    assert state() == before, sql
    assert os.listdir(shared_dir) == [], sql


@pytest.mark.parametrize("statement", HOSTILE)
def test_run_time_hook_entry_refuses_every_hostile_statement(target, shared_dir, statement):
    wh, state, pid = target
    sql = statement.format(dir=shared_dir, pid=pid or 1)
    before = state()
    with pytest.raises(LoadError, match="refused"):
        wh.run_hook(sql, "preHook")
    assert state() == before


def test_file_and_admin_functions_are_denied_to_the_read_only_role(target):
    """PostgreSQL: inside the read-only layer the hook runs as pg_read_all_data, so even a superuser warehouse
    URL cannot read server files or signal backends; DuckDB: external access is off."""
    wh, _, pid = target
    probes = ["SELECT pg_read_file('/etc/hostname')", f"SELECT pg_terminate_backend({pid})"] if pid else \
        ["SELECT * FROM read_text('/etc/hostname')", "SELECT * FROM read_csv('/etc/hostname')"]
    for sql in probes:
        with pytest.raises(Exception, match="(?i)permission|denied|disabled|must be a superuser"):
            wh.query_read_only(sql)


def test_reads_still_work_read_only(target):
    wh, _, _ = target
    assert wh.read("public.t" if target[2] else "t").column("a").to_pylist() == [1, 2]
    assert wh.read(None, "SELECT a FROM t WHERE a > 1").to_pylist() == [{"a": 2}]
    wh.run_hook("SELECT count(*) FROM t")
    wh.run_hook("ANALYZE t")
    wh.run_hook("VACUUM")


def test_describe_learns_columns_without_running(target, shared_dir):
    wh, state, _ = target
    schema = wh.describe_query("SELECT a, CAST(a AS DOUBLE PRECISION) AS f, 'x' AS s, CAST(a AS DECIMAL(10, 2)) AS d, "
                               "a > 1 AS b FROM t")
    assert [(f.name, str(f.type)) for f in schema] == [("a", "int"), ("f", "float"), ("s", "string"),
                                                       ("d", "decimal(10,2)"), ("b", "bool")]
    before = state()
    with pytest.raises(LoadError):  # refused before anything reaches the database
        wh.describe_query(f"SELECT lo_export(lo_from_bytea(0, 'x'), '{shared_dir}/d.txt')")
    assert state() == before and os.listdir(shared_dir) == []


def test_pre_hook_runs_read_only_but_the_load_still_writes(tmp_path, spec_doc):
    """The preHook's read-only transaction is its own: the load after it still writes."""
    from flow_beam.running import RunOptions, run_document

    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "o.csv", ["order_id", "amount"], [(1, 5), (2, 6)])
    spec_doc["nodes"][2]["preHook"] = {"type": "sql", "statement": "SELECT count(*) FROM information_schema.tables"}
    spec_doc["nodes"][2]["postHook"] = {"type": "sql", "statement": "ANALYZE public.ds_orders"}
    url = f"duckdb://{tmp_path / 'w.duckdb'}"
    result = run_document(doc_with_path(spec_doc, folder), RunOptions(warehouse=url))
    assert result.nodes["tgt"].status == "loaded" and not result.nodes["tgt"].warnings, result.nodes["tgt"]
    assert open_warehouse(url).read("public.ds_orders").num_rows == 2


def test_validate_with_a_hostile_query_changes_nothing_on_the_server(tmp_path, shared_dir):
    """`flow-beam validate` of a table source whose query would write a file on the server: exit 1 with the
    query's JSON path, no file, no change; a safe query's columns are learned without running it."""
    import json
    import subprocess
    import sys
    from pg_util import fresh_database
    import psycopg

    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE TABLE t (a int, b text); INSERT INTO t VALUES (1, 'x')")
        doc = {"kind": "pipeline", "version": "1.0", "id": "q", "nodes": [
            {"id": "src", "kind": "source", "connector": "table",
             "config": {"table": "public.t", "query": f"SELECT lo_export(lo_from_bytea(0, 'x'), '{shared_dir}/v.txt')"}},
            {"id": "tgt", "kind": "target", "input": "src", "schema": "public.out"}]}
        path = tmp_path / "p.json"
        path.write_text(json.dumps(doc))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run([sys.executable, "-m", "flow_beam", "validate", str(path), "--warehouse", url,
                              "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 1, out.stdout + out.stderr
        issues = json.loads(out.stdout)["issues"]
        assert any(i["path"] == "nodes[0].config.query" for i in issues)
        assert os.listdir(shared_dir) == []
        with psycopg.connect(url, autocommit=True) as con:
            assert con.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)
        doc["nodes"][0]["config"]["query"] = "SELECT a, b, a + 1 AS c FROM public.t"
        doc["nodes"][1]["loadMode"] = "upsert"
        doc["nodes"][1]["upsertKey"] = "zz"
        path.write_text(json.dumps(doc))
        out = subprocess.run([sys.executable, "-m", "flow_beam", "validate", str(path), "--warehouse", url,
                              "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
        # the schema came from describing the query: the upsert key is checked against a, b, c
        assert "zz" in out.stdout and "c" in out.stdout, out.stdout



@pytest.mark.parametrize("where", ["source", "lookup_join", "enrich"])
def test_system_catalogs_cannot_be_read_by_table_name(tmp_path, where):
    """Found by a probe: `{"table": "pg_catalog.pg_authid"}` as a table source or a lookup table passed (queries
    were checked, plain names were not) and loaded password hashes into a table."""
    from ir_compiler.check import check_document
    from ir_compiler.propagate import SchemaContext
    name = "pg_catalog.pg_authid"
    src = {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(tmp_path), "format": "csv"},
           "schema": [{"name": "rolname", "type": "string"}]}
    mid, path = None, None
    if where == "source":
        src = {"id": "src", "kind": "source", "connector": "table", "config": {"table": name},
               "schema": [{"name": "rolname", "type": "string"}]}
        path = "nodes[0].config.table"
    elif where == "lookup_join":
        mid = {"id": "m", "kind": "transform", "input": "src", "ops": [
            {"op": "lookup_join", "lookup": {"table": name}, "on": ["rolname"], "fields": ["rolpassword"]}]}
        path = "nodes[1].ops[0].lookup.table"
    else:
        mid = {"id": "m", "kind": "enrich", "input": "src", "output": "pw",
               "provider": {"kind": "lookup", "table": name, "on": "rolname", "field": "rolpassword"}}
        path = "nodes[1].provider.table"
    nodes = [src] + ([mid] if mid else []) + [{"id": "t", "kind": "target", "input": mid["id"] if mid else "src",
                                               "schema": "public.out"}]
    with pytest.raises(ValidationFailed) as info:
        check_document({"kind": "pipeline", "version": "1.0", "id": "cat", "nodes": nodes}, ctx=SchemaContext())
    assert any(i.path == path and "system catalog" in i.message for i in info.value.issues), info.value.issues
    import duckdb
    duckdb.connect(str(tmp_path / "w.duckdb")).close()
    wh = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    with pytest.raises(LoadError, match="system catalog"):
        wh.read(name)  # the run-time entry refuses it too


def test_a_runaway_hook_is_cancelled_after_the_timeout(target, monkeypatch):
    """Found by a probe: a recursive CTE without an end (PostgreSQL) or a huge range (DuckDB) hung the run, and the
    server kept executing after the client died. Reads of the read-only surface are cancelled after
    $FLOW_BEAM_SQL_TIMEOUT_S seconds."""
    import time
    wh, state, _ = target
    monkeypatch.setenv("FLOW_BEAM_SQL_TIMEOUT_S", "1")
    statement = ("SELECT count(*) FROM range(100000000000)" if wh.dialect == "duckdb" else
                 "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r")
    start = time.monotonic()
    with pytest.raises(LoadError, match="cancelled after 1 s"):
        wh.run_hook(statement, "preHook")
    assert time.monotonic() - start < 15
    assert wh.query_read_only("SELECT 1 AS one").column("one").to_pylist() == [1]  # the warehouse still answers
