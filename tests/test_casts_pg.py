"""Type conversion against a real PostgreSQL server: every cast from text (to bigint, double precision,
numeric(p,s), boolean, date, timestamp, timestamptz, text) gives PostgreSQL's value or PostgreSQL's error, in both
flow-beam back-ends; values converted back to text are printed as PostgreSQL prints them. The only differences are
the documented rejections (flow-beam errors, never a different value): non-ISO date text, NaN/infinity into
decimal."""
import datetime as dt
import decimal
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expr_oracle import CAST_TARGETS, Oracle, cast_inputs, check_cast
from ir_compiler.expressions.pgvalues import value_text
from pg_util import fresh_database

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def oracle():
    with fresh_database() as url:
        o = Oracle(url)
        yield o
        o.close()


def test_every_cast_of_the_input_catalogue_agrees(oracle):
    inputs = cast_inputs(random.Random(0))
    problems, documented = [], 0
    for target, pg_type in CAST_TARGETS:
        for value in inputs:
            why = check_cast(oracle, target, pg_type, value)
            if why == "documented":
                documented += 1
            elif why:
                problems.append(why)
    assert not problems, "\n".join(problems[:20])
    assert documented < len(inputs)  # the documented rejections stay a small, known set


_NUMBERISH = st.from_regex(r"\A[ \t]{0,2}[+-]?[0-9]{0,22}(\.[0-9]{0,8})?([eE][+-]?[0-9]{1,3})?[ \t]{0,2}\Z")
_DATEISH = st.builds(lambda y, m, d, h, mi, s, f, sep, z: f"{y:04d}-{m:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{f}{z}",
                     st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
                     st.integers(0, 60), st.integers(0, 61), st.sampled_from(["", ".5", ".123456", ".1234567"]),
                     st.sampled_from([" ", "T"]), st.sampled_from(["", "Z", "+02", "-05:30", "+14:00"]))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_NUMBERISH, target=st.sampled_from(CAST_TARGETS[:4]))
def test_generated_numbers_cast_like_postgresql(oracle, value, target):
    why = check_cast(oracle, target[0], target[1], value)
    assert why in (None, "documented"), why


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_DATEISH, target=st.sampled_from(CAST_TARGETS[5:8]))
def test_generated_timestamps_cast_like_postgresql(oracle, value, target):
    why = check_cast(oracle, target[0], target[1], value)
    assert why in (None, "documented"), why


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.floats(allow_nan=False), st.integers(-2 ** 63, 2 ** 63 - 1),
                 st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10 ** 20,
                             max_value=10 ** 20), st.booleans(),
                 st.dates(), st.datetimes(min_value=dt.datetime(1, 1, 2))))
def test_values_print_as_postgresql_prints_them(oracle, value):
    pg_type = {bool: "boolean", int: "bigint", float: "float8", decimal.Decimal: "numeric", dt.date: "date",
               dt.datetime: "timestamp"}[type(value)]
    kind, text = oracle.scalar("{v}::text", value, pg_type)
    assert kind == "ok" and text == value_text(value), (value, text, value_text(value))


_PG_FORMATS = [("MM/DD/YYYY HH24:MI", "{m:02d}/{d:02d}/{y:04d} {h:02d}:{mi:02d}"),
               ("DD.MM.YYYY HH12:MI:SS AM", "{d:02d}.{m:02d}.{y:04d} {h12:02d}:{mi:02d}:{s:02d} {ampm}"),
               ("YYYYMMDD", "{y:04d}{m:02d}{d:02d}"),
               ("DD Mon YYYY", "{d} {mon} {y:04d}")]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(_PG_FORMATS), y=st.integers(1900, 2100), m=st.integers(1, 12), d=st.integers(1, 28),
       h=st.integers(0, 23), mi=st.integers(0, 59), s=st.integers(0, 59), to=st.sampled_from(["date", "timestamp"]))
def test_a_cast_with_a_postgresql_format_reads_as_to_date_and_to_timestamp_do(oracle, fmt, y, m, d, h, mi, s, to):
    """The cast op's `format` without `%` is a PostgreSQL pattern: the value is what PostgreSQL's to_date /
    to_timestamp give for the same text and pattern."""
    import pyarrow as pa

    from ir_compiler.ops.cast import cast_array
    from ir_compiler.types import parse_type
    pattern, shape = fmt
    text = shape.format(y=y, m=m, d=d, h=h, mi=mi, s=s, h12=(h % 12) or 12, ampm="PM" if h >= 12 else "AM",
                        mon=_MONTHS[m - 1])
    sql = "SELECT to_date(%s, %s)" if to == "date" else "SELECT to_timestamp(%s, %s)::timestamp"
    want = oracle.conn.execute(sql, (text, pattern)).fetchone()[0]
    got, failed = cast_array(pa.array([text]), parse_type(to), pattern)
    assert failed is None or not failed[0].as_py(), (text, pattern)
    assert got.to_pylist() == [want], (text, pattern)


def test_a_cast_format_that_is_no_pattern_is_refused_where_it_is_written():
    from ir_compiler.check import check_document, default_context
    from ir_compiler.errors import ValidationFailed
    doc = {"kind": "pipeline", "version": "1.0", "id": "fmt", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "/nonexistent", "format": "csv"},
         "schema": [{"name": "ts", "type": "string"}]},
        {"id": "t", "kind": "transform", "input": "src",
         "ops": [{"op": "cast", "field": "ts", "to": "timestamp", "format": "YYYY-MM-DD FXHH24"}]},
        {"id": "out", "kind": "target", "input": "t", "schema": "public.t", "loadMode": "append"}]}
    try:
        check_document(doc, {}, default_context(None))
    except ValidationFailed as exc:
        assert any("format" in i.path and i.node_id == "t" for i in exc.issues), exc.issues
    else:
        raise AssertionError("accepted a format PostgreSQL patterns do not support here")


# strptime format, the same format as a PostgreSQL pattern, the text shape
_STRPTIME_FORMATS = [("%d/%m/%Y", "DD/MM/YYYY", "{d:02d}/{m:02d}/{y:04d}", "date"),
                     ("%Y-%m-%d", "YYYY-MM-DD", "{y:04d}-{m:02d}-{d:02d}", "date"),
                     ("%Y-%m-%d %H:%M:%S", "YYYY-MM-DD HH24:MI:SS", "{y:04d}-{m:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}",
                      "timestamp")]


def _edge_fields(rnd):
    """Day/month/year/time fields around every limit (30 February, 31 April, :60, 24:00, month 13), valid or not."""
    out = [dict(y=y, m=m, d=d, h=12, mi=0, s=0) for y in (2023, 2024, 1900, 2000) for m in (2, 4, 12, 13)
           for d in (28, 29, 30, 31, 32)]
    out += [dict(y=2024, m=1, d=5, h=h, mi=mi, s=s) for h, mi, s in
            ((23, 59, 59), (10, 0, 60), (10, 0, 61), (10, 60, 0), (24, 0, 0), (0, 0, 0))]
    out += [dict(y=y, m=12, d=31, h=23, mi=59, s=59) for y in (1, 9999)]
    out += [dict(y=rnd.randint(1, 9999), m=rnd.randint(1, 13), d=rnd.randint(1, 32), h=rnd.randint(0, 24),
                 mi=rnd.randint(0, 60), s=rnd.randint(0, 60)) for _ in range(60)]
    return out


def test_a_strptime_format_gives_postgresqls_answer_whatever_else_is_in_the_batch(oracle):
    """The cast op's strptime ``format``: each text gives what PostgreSQL's to_date/to_timestamp give for it with the
    same pattern (a value, or an error for 30/02, 31/04, :60, 24:00, month 13), alone, in a batch of valid texts
    (Arrow's strptime, which rolls impossible fields forward: 30/02/2024 was loaded as 2024-03-01) and next to a text
    that does not parse (one value at a time)."""
    import pyarrow as pa

    from ir_compiler.ops.cast import cast_array
    from ir_compiler.types import parse_type
    rnd = random.Random(11)
    problems = []
    for fmt, pattern, shape, to in _STRPTIME_FORMATS:
        target = parse_type(to)
        sql = "to_date({v}, %s)" if to == "date" else "to_timestamp({v}, %s)::timestamp"
        texts = sorted({shape.format(**f) for f in _edge_fields(rnd)})
        wants = {}
        for text in texts:
            kind, value = oracle.scalar(sql.replace("%s", f"'{pattern}'"), text)
            wants[text] = value if kind == "ok" else "error"
        valid = [t for t in texts if wants[t] != "error"]
        assert valid and len(valid) < len(texts), fmt  # both kinds are exercised
        for text in texts:
            for batch in ([text], valid + [text], ["not a date", text]):
                got, failed = cast_array(pa.array(batch), target, fmt)
                ours = "error" if failed is not None and failed[-1].as_py() else got.to_pylist()[-1]
                if ours != wants[text]:
                    problems.append(f"{text!r} ({fmt}, batch of {len(batch)}): PostgreSQL {wants[text]!r}, "
                                    f"flow-beam {ours!r}")
    assert not problems, "\n".join(problems[:20])


def test_year_0000_and_a_dangling_t_are_errors_in_any_batch(oracle):
    """PostgreSQL refuses year 0000 (the README: dates before year 1 are errors) and '2024-01-05T'; the fast path
    (a batch of ISO texts) read year 0 and the per-value path read the dangling T as no time."""
    import pyarrow as pa

    from ir_compiler.ops.cast import cast_array
    from ir_compiler.types import parse_type
    for text, pg_type in (("0000-01-01", "date"), ("0000-01-01", "timestamp"), ("0000-12-31 23:59:59", "timestamp"),
                          ("2024-01-05T", "date"), ("2024-01-05T", "timestamp")):
        assert oracle.scalar("CAST({v} AS " + pg_type + ")", text)[0] == "error", text
        for batch in ([text], ["2024-01-05", text], ["not a date", text]):
            got, failed = cast_array(pa.array(batch), parse_type(pg_type), None)
            assert failed is not None and failed[-1].as_py() and got[-1].as_py() is None, (text, pg_type, batch)
