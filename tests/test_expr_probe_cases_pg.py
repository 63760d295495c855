"""Expression cases a probe of 2026-12-03 found silently different from PostgreSQL, each checked against the server
on the same rows through both back-ends (per-row closures and Arrow; a batch with a failing row falls back to the
row back-end, so a back-end disagreement is a value that depends on its neighbours)."""
import datetime as dt
import decimal

import pytest

from expr_oracle import Oracle, arrow_table, compare, evaluate_ours
from pg_util import fresh_database

D = decimal.Decimal
INT_MIN = -(2 ** 63)


def _row(**values):
    row = {"i": None, "j": None, "f": None, "m": None, "s": None, "t": None, "b": None, "d": None, "ts": None,
           "tz": None, "js": None}
    row.update(values)
    return row


ROWS = [
    _row(i=1, j=2, f=float("nan"), m=D("2.000"), s="ΣΑΣ", b=True, d=dt.date(2024, 2, 29),
         ts=dt.datetime(2024, 2, 29, 12, 30, 45, 500000)),
    _row(i=0, j=-1, f=0.5, m=D("1.250"), s="İstanbul", b=False, d=dt.date(2000, 1, 1),
         ts=dt.datetime(1969, 12, 31, 23, 59, 59, 999999)),
    _row(i=INT_MIN, j=-1, f=-1.5, m=D("123.457"), s="straße ǅ", b=None, d=dt.date(1, 1, 1),
         ts=dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
    _row(i=10, j=3, f=float("-inf"), m=D("-0.001"), s="abc", b=True, d=dt.date(9999, 12, 31),
         ts=dt.datetime(2000, 1, 1)),
    _row(i=3, j=None, f=None, m=None, s=None, b=False, ts=dt.datetime(1000, 1, 1, 0, 0, 0, 1)),
]

CASES = [
    "i BETWEEN SYMMETRIC 10 AND 0", "i NOT BETWEEN SYMMETRIC 5 AND 0", "i BETWEEN SYMMETRIC j AND 2",
    "i IN (1.5, 2, 3)", "i IN (0.5, 1)", "i NOT IN (1.5, 2)", "i IN (1, 2.0)", "f IN (0.5, 1)",
    "lower(s)", "upper(s)", "s ILIKE 'σας'", "s ILIKE 'istanbul'", "initcap(s)",
    "mod(i, -1)", "mod(i, j)", "i % -1",
    "CAST(ts - TIMESTAMP '1000-01-01' AS text)", "extract(day FROM ts - TIMESTAMP '1000-01-01')",
    "extract(hour FROM ts - TIMESTAMP '1000-01-01')", "extract(julian FROM ts)", "date_part('julian', ts)",
    "extract(julian FROM d)",
    "concat('flag=', b)", "concat_ws(',', s, b, i)", "CAST(b AS text)", "s || b",
    "to_char(ts, 'HH24:MI:SS.FF3|FF1|FF6|FMFF6')", "to_char(ts, 'TMDay, DD TMMonth|tmmonth|TMMon')",
    "to_char(ts, '')", "to_char(ts, 'FXFMDD|FMFXDD|FMFMDD|Tmmonth|tMmonth')",
    "greatest(f, 0.25)", "least(f, 0.25)", "greatest(f, NULL, 2.0)", "least(f, f)",
    "sign(f)", "log10(m)", "power(f, 0)", "power(-0.5, f)",
    "i = '1'", "'3' = i", "b = 't'", "m = '2'", "m = '2.0001'", "f = '0.5'", "i IN ('1', '10')",
    "CASE i WHEN '10' THEN 'ten' ELSE 'other' END",
]


@pytest.fixture(scope="module")
def oracle():
    with fresh_database() as url:
        o = Oracle(url)
        o.load(ROWS)
        yield o
        o.close()


@pytest.mark.parametrize("sql", CASES)
def test_probe_case_agrees_with_postgresql(oracle, sql):
    assert compare(oracle.run(sql), evaluate_ours(sql, ROWS, arrow_table(ROWS))) is None, (
        oracle.run(sql), evaluate_ours(sql, ROWS))


@pytest.mark.parametrize("sql", ["i = '1.5'", "b = 'maybe'", "m = 'abc'"])
def test_a_quoted_literal_the_other_type_cannot_read_is_refused_as_postgresql_refuses_it(oracle, sql):
    kind, message = evaluate_ours(sql, ROWS)
    assert kind == "rejected" and "invalid input syntax" in message, (kind, message)
    assert oracle.run(sql)[0] == "error"
