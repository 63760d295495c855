"""A table source reads PostgreSQL types Arrow has no type for (uuid, interval, bytea, time, inet, money) as
PostgreSQL's own text, and json/jsonb as their exact JSON text (a JSON string value keeps its quotes) —
before, a uuid column failed the read and a bytea value was mangled."""
import json

import psycopg
import pytest

from flow_beam.running import RunOptions, run_document
from pg_util import fresh_database

pytestmark = pytest.mark.infra


def test_odd_postgresql_types_read_as_their_text(tmp_path):
    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE TABLE public.src (id int, u uuid, iv interval, b bytea, t time, ip inet, m money, "
                        "j jsonb, js json, tags text[])")
            con.execute("INSERT INTO public.src VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:00', "
                        "'\\x00ff', '10:15:30', '10.0.0.1/32', 1.5, '{\"k\": [1, 2.50]}', '\"text\"', '{a,NULL}'), "
                        "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
            want = con.execute("SELECT format('%s', u), format('%s', iv), format('%s', b), format('%s', t), "
                               "format('%s', ip), format('%s', m) FROM public.src "
                               "WHERE id = 1").fetchone()
        out = tmp_path / "out"
        doc = {"kind": "pipeline", "version": "1.0", "id": "pgtypes", "nodes": [
            {"id": "src", "kind": "source", "connector": "table", "config": {"table": "public.src"}},
            {"id": "out", "kind": "target", "input": "src", "connector": "local_fs",
             "config": {"path": str(out), "format": "jsonl"}}]}
        res = run_document(doc, RunOptions(warehouse=url))
        assert res.status == "completed", res.error
    rows = {r["id"]: r for f in out.iterdir() for r in map(json.loads, f.read_text().splitlines())}
    one = rows[1]
    assert (one["u"], one["iv"], one["b"], one["t"], one["ip"], one["m"]) == want
    assert one["j"] == {"k": [1, 2.5]} and one["js"] == "text"  # JSON values, the string one unquoted by JSON
    assert one["tags"] == ["a", None]
    assert all(v is None for k, v in rows[2].items() if k != "id")


def test_a_numeric_nan_is_a_clear_error_and_wide_numerics_stay_exact(tmp_path):
    """An unconstrained numeric column reads exactly (41 digits, 1e-30); a NaN in it has no decimal value: the run
    fails naming the column and the two ways out (was Arrow's "The string 'NaN' is not a valid decimal256")."""
    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE TABLE public.src (id int, n numeric)")
            con.execute("INSERT INTO public.src VALUES (1, 12345678901234567890.123456789012345678901), "
                        "(2, 0.000000000000000000000000000001)")
        out = tmp_path / "out"
        doc = {"kind": "pipeline", "version": "1.0", "id": "pgnum", "nodes": [
            {"id": "src", "kind": "source", "connector": "table", "config": {"table": "public.src"}},
            {"id": "out", "kind": "target", "input": "src", "connector": "local_fs",
             "config": {"path": str(out), "format": "jsonl"}}]}
        res = run_document(doc, RunOptions(warehouse=url))
        assert res.status == "completed", res.error
        got = {r["id"]: r["n"] for f in out.iterdir() for r in
               (json.loads(line, parse_float=str) for line in f.read_text().splitlines())}
        from decimal import Decimal
        assert Decimal(got[1]) == Decimal("12345678901234567890.123456789012345678901")
        assert Decimal(got[2]) == Decimal("1e-30")
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("INSERT INTO public.src VALUES (3, 'NaN')")
        res = run_document(doc, RunOptions(warehouse=url))
        assert res.status == "failed"
        assert "column 'n' holds the numeric NaN" in res.error and "n::float8" in res.error


def test_array_columns_are_planned_with_their_element_type(tmp_path):
    """Found by a probe: every PostgreSQL array column was planned array<string> (the element's udt name, `int8`,
    was looked up among information_schema names), so `ia[1] + 1` on an int8[] was refused at validation while
    the table written held bigint[]."""
    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE TABLE public.src (id int, ia bigint[], fa float8[], ta text[])")
            con.execute("INSERT INTO public.src VALUES (1, '{5,6}', '{1.5}', '{x}')")
        doc = {"kind": "pipeline", "version": "1.0", "id": "pgarr", "nodes": [
            {"id": "src", "kind": "source", "connector": "table", "config": {"table": "public.src"}},
            {"id": "t", "kind": "transform", "input": "src", "ops": [
                {"op": "expression", "field": "next", "expr": "ia[1] + 1"},
                {"op": "expression", "field": "half", "expr": "fa[1] / 2"}]},
            {"id": "out", "kind": "target", "input": "t", "schema": "public.out"}]}
        from ir_compiler.check import check_document, default_context
        from connectors.warehouse import open_warehouse
        wh = open_warehouse(url)
        types = check_document(doc, ctx=default_context(wh)).types.of("src").types()
        assert (str(types["ia"]), str(types["fa"]), str(types["ta"])) == (
            "array<int>", "array<float>", "array<string>")
        res = run_document(doc, RunOptions(warehouse=url))
        assert res.status == "completed", res.error
        with psycopg.connect(url) as con:
            assert con.execute("SELECT next, half FROM public.out").fetchone() == (6, 0.75)
