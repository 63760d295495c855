"""Property test: on generated data and generated expressions, the per-row back-end and the vectorised Arrow
back-end give identical results, NULLs included."""
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir_compiler.expressions import compile_expression
from ir_compiler.types import BOOL, FLOAT, INT, STRING, Field, Schema  # noqa: F401

SCHEMA = Schema([Field("i", INT), Field("j", INT), Field("x", FLOAT), Field("s", STRING), Field("t", STRING),
                 Field("b", BOOL)])

ints = st.one_of(st.none(), st.integers(-1000, 1000))
floats = st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3)))
texts = st.one_of(st.none(), st.text(alphabet="abcXYZ %_ ", max_size=6))
bools = st.one_of(st.none(), st.booleans())
rows = st.lists(st.fixed_dictionaries({"i": ints, "j": ints, "x": floats, "s": texts, "t": texts, "b": bools}),
                min_size=1, max_size=25)

int_leaf = st.sampled_from(["i", "j", "0", "1", "7", "-3", "NULL"])
str_leaf = st.sampled_from(["s", "t", "'a'", "'XY'", "''"])


def int_expr():
    return st.recursive(int_leaf, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"abs({e})"),
        st.tuples(inner, inner).map(lambda t: f"coalesce({t[0]}, {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"greatest({t[0]}, {t[1]})"),
        str_expr_leafish().map(lambda e: f"length({e})"),
    ), max_leaves=6)


def str_expr_leafish():
    return st.one_of(str_leaf, st.tuples(str_leaf, str_leaf).map(lambda t: f"({t[0]} || {t[1]})"),
                     str_leaf.map(lambda e: f"upper({e})"), str_leaf.map(lambda e: f"lower({e})"),
                     st.tuples(str_leaf, str_leaf).map(lambda t: f"coalesce({t[0]}, {t[1]})"))


def bool_expr():
    cmp = st.tuples(int_expr(), st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), int_expr()).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}")
    scmp = st.tuples(str_expr_leafish(), st.sampled_from(["=", "<>", "<"]), str_expr_leafish()).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}")
    leaf = st.one_of(cmp, scmp, st.just("b"), st.sampled_from(["i IS NULL", "s IS NOT NULL", "x > 1.5",
                                                               "i IN (1, 2, NULL)", "s IN ('a', 'XY')",
                                                               "i BETWEEN -5 AND 5", "s LIKE '%a%'"]))
    return st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"NOT ({e})"),
    ), max_leaves=5)


def case_expr():
    return st.tuples(bool_expr(), int_expr(), int_expr()).map(
        lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END")


def check(text, data):
    compiled = compile_expression(text, SCHEMA)
    table = pa.Table.from_pylist(data, schema=SCHEMA.to_arrow())
    by_row = [compiled.eval_row(r) for r in table.to_pylist()]
    assert by_row == compiled.eval_arrow(table).to_pylist(), text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(int_expr(), rows)
def test_integer_expressions_agree(text, data):
    check(text, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bool_expr(), rows)
def test_boolean_expressions_agree(text, data):
    check(text, data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_expr(), rows)
def test_case_expressions_agree(text, data):
    check(text, data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["x * 2", "x + i", "x / 4", "round(x, 1)", "floor(x)", "coalesce(x, i)", "-x", "x % 3",
                        "CAST(i AS float) / 3"]), rows)
def test_float_expressions_agree(text, data):
    check(text, data)


