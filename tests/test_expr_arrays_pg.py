"""Array expressions against a real PostgreSQL: subscripts, cardinality, array_length, array_to_string,
array_position and `= ANY(...)` over generated arrays (NULL arrays, empty arrays, NULL elements, repeats) give
PostgreSQL's values, NULLs included, in both back-ends."""
import random

import pyarrow as pa
import pytest

from ir_compiler.expressions import compile_expression
from ir_compiler.types import INT, STRING, Field, Schema, parse_type
from pg_util import fresh_database

pytestmark = pytest.mark.infra

SCHEMA = Schema([Field("xs", parse_type("array<string>")), Field("n", parse_type("array<int>")),
                 Field("i", INT), Field("s", STRING)])
EXPRESSIONS = ["xs[1]", "xs[2]", "xs[0]", "xs[i]", "n[i]", "n[3] + 1", "cardinality(xs)", "cardinality(n)",
               "array_length(xs, 1)", "array_length(n, 1)", "array_length(n, 2)", "array_to_string(xs, ',')",
               "array_to_string(n, '-')", "array_to_string(xs, '|', '?')", "array_to_string(n, ',', NULL)",
               "array_position(xs, s)", "array_position(n, i)", "array_position(n, NULL)", "s = ANY(xs)",
               "i = ANY(n)", "2 = ANY(n)", "NULL = ANY(n)", "coalesce(xs[1], 'none')"]


def _rows(seed, count=60):
    rnd = random.Random(seed)
    words = ["a", "b", "", "é", "x y", "NULL"]

    def arr(pick):
        k = rnd.choice([None, 0, 1, 2, 3, 5])
        return None if k is None else [None if rnd.random() < 0.2 else pick() for _ in range(k)]
    return [{"xs": arr(lambda: rnd.choice(words)), "n": arr(lambda: rnd.randint(-3, 3)),
             "i": rnd.choice([None, -1, 0, 1, 2, 3, 6]), "s": rnd.choice(words + [None])} for _ in range(count)]


@pytest.fixture(scope="module")
def pg():
    import psycopg
    with fresh_database() as url:
        con = psycopg.connect(url, autocommit=True)
        yield con
        con.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_array_expressions_agree_with_postgresql(pg, seed):
    rows = _rows(seed)
    pg.execute("DROP TABLE IF EXISTS t")
    pg.execute("CREATE TABLE t (rowid int, xs text[], n bigint[], i bigint, s text)")
    with pg.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s)",
                        [(k, r["xs"], r["n"], r["i"], r["s"]) for k, r in enumerate(rows)])
    table = pa.Table.from_pylist(rows, schema=pa.schema([("xs", pa.list_(pa.string())), ("n", pa.list_(pa.int64())),
                                                         ("i", pa.int64()), ("s", pa.string())]))
    problems = []
    for text in EXPRESSIONS:
        want = [r[0] for r in pg.execute(f"SELECT {text} FROM t ORDER BY rowid").fetchall()]
        compiled = compile_expression(text, SCHEMA)
        arrow = compiled.eval_arrow(table).to_pylist()
        per_row = [compiled.eval_row(r) for r in rows]
        for k, (w, a, p) in enumerate(zip(want, arrow, per_row)):
            if not (w == a == p):
                problems.append(f"{text} on {rows[k]}: PostgreSQL {w!r}, arrow {a!r}, row {p!r}")
    assert not problems, "\n".join(problems[:15])
