"""Incomplete expressions against PostgreSQL: every prefix of a set of valid expressions (cut at each space and
at each character) is either an error in both PostgreSQL and flow-beam, or valid in both with the same values.
Found by this test: sqlglot closed an open call itself (`substring(s` ran as `substring(s)`), and `x IN` parsed
as an IN with no values (always false) — both silently wrong filters; PostgreSQL says syntax error."""
import os

import pyarrow as pa
import pytest

from ir_compiler.errors import ExpressionError
from ir_compiler.expressions import compile_expression
from ir_compiler.types import INT, STRING, Field, Schema

SCHEMA = Schema([Field("id", INT), Field("s", STRING)])
TABLE = pa.table({"id": [1, 2, None], "s": ["a", "ab", None]})
ROWS = "(VALUES (1, 'a'), (2, 'ab'), (NULL::int, NULL::text)) t(id, s)"
EXPRESSIONS = [
    "id IN (1, 2) AND s LIKE 'a%'", "CASE WHEN id > 1 THEN 'x' ELSE 'y' END", "coalesce(id, 0) + 1 BETWEEN 1 AND 3",
    "NOT (s IS NULL) OR id <> 2", "upper(s) || '-' || CAST(id AS text)", "id NOT IN (3, 4)",
    "s ILIKE '%A' AND id >= 1", "substring(s from 1 for 2) = 'a'", "id * 2 - 3 / 1", "s IS NOT DISTINCT FROM 'a'",
    "length(trim(both 'a' from s)) > 0", "abs(-id) % 2 = 1", "(id + 1) * (id - 1)",
]


def _prefixes(text):
    words = text.split(" ")
    out = {" ".join(words[:k]) for k in range(1, len(words))}
    return sorted(out | {text[:k] for k in range(1, len(text)) if text[:k].strip()})


def _ours(text):
    try:
        return [str(v) for v in compile_expression(text, SCHEMA).eval_arrow(TABLE).to_pylist()]
    except ExpressionError:
        return "error"


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_every_prefix_fails_or_agrees_with_postgresql(expression):
    if not os.environ.get("FLOW_BEAM_PG_URL"):
        pytest.skip("PostgreSQL not running: bash scripts/postgres.sh start")
    import psycopg

    wrong = []
    with psycopg.connect(os.environ["FLOW_BEAM_PG_URL"], autocommit=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for text in _prefixes(expression):
            try:
                pg = [str(r[0]) for r in con.execute(f"SELECT ({text}) FROM {ROWS}").fetchall()]
            except psycopg.Error:
                pg = "error"
            ours = _ours(text)
            if ours != pg and not (ours == "error" and pg == "error"):
                wrong.append((text, pg, ours))
    assert not wrong, wrong


MALFORMED = ["'x' 'y' = s", "id BETWEEN 1 3", "substring(s from from 1 for 2) = 'a'", "substring(s from for 2) = 'a'",
             "CASE WHEN id > 1 'x' ELSE 'y' END", "id NOT IN (3, , 4)", "id IN (, 3)", "id IN (3, )",
             "s NOT IS NULL", "s NOT IS DISTINCT FROM 'a'", "upper(s", "id)", "ARRAY[1, 2", "id IN", "id IN ()"]


@pytest.mark.parametrize("text", MALFORMED)
def test_what_postgresql_refuses_is_refused(text):
    """Input sqlglot would repair (join, add an AND or THEN, drop a FROM or an empty list element, close a call):
    PostgreSQL says syntax error, so does flow-beam, with where."""
    if not os.environ.get("FLOW_BEAM_PG_URL"):
        pytest.skip("PostgreSQL not running: bash scripts/postgres.sh start")
    import psycopg

    with psycopg.connect(os.environ["FLOW_BEAM_PG_URL"], autocommit=True) as con:
        with pytest.raises(psycopg.Error):  # in parentheses: a bare `id IN` would be a column label
            con.execute(f"SELECT ({text}) FROM {ROWS}")
    assert _ours(text) == "error"


def test_what_postgresql_accepts_stays_accepted():
    """The same checks leave valid forms alone: strings joined across a line break, ltrim/btrim (sqlglot writes
    them with FROM), trim(... FROM ...), position(... IN ...), nested calls and lists."""
    for text, want in [("'a'\n'b' = 'ab'", ["True"] * 3), ("ltrim(s, 'a') = ''", ["True", "False", "None"]),
                       ("btrim(s, 'b') = 'a'", ["True", "True", "None"]),
                       ("trim(both 'a' from s) = 'b'", ["False", "True", "None"]),
                       ("position('b' in s) = 2", ["False", "True", "None"]),
                       ("coalesce(id, (1 + 2)) IN (1, 3)", ["True", "False", "True"])]:
        assert _ours(text) == want, text


UNARY_PLUS = ["+s = 'a'", "+(s || 'x') = 'ax'", "+id + 1", "3 + + id", "+(id * 2)", "+ (id > 1)",
              "+DATE '2020-01-01' = DATE '2020-01-01'", "- + id", "+ - id", "+CAST(s AS text) = 'a'",
              "+2.5 * id", "+id::text = '1'"]


@pytest.mark.parametrize("text", UNARY_PLUS)
def test_unary_plus_is_type_checked_like_postgresql(text):
    """Unary + (sqlglot drops it while parsing): on a number it is the number, on text, a boolean or a date
    PostgreSQL refuses it ('operator does not exist: + text') — so does flow-beam, instead of ignoring it."""
    if not os.environ.get("FLOW_BEAM_PG_URL"):
        pytest.skip("PostgreSQL not running: bash scripts/postgres.sh start")
    import psycopg

    with psycopg.connect(os.environ["FLOW_BEAM_PG_URL"], autocommit=True) as con:
        try:
            pg = [str(r[0]) for r in con.execute(f"SELECT ({text}) FROM {ROWS}").fetchall()]
        except psycopg.Error:
            pg = "error"
    assert _ours(text) == pg
