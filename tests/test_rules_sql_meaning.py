"""Row rules mean what SQL means, checked against DuckDB: `in:` on a non-text column is `col IN (...)` (it
compared Arrow's text of the value with the literal: `in:1|2.5` quarantined every row of a decimal(12,2) column
holding 1.00 and 2.50, a timestamp never matched, `in:t` never matched true); `eq:true` on a bool column, which
validated, failed the run; a regex RE2 cannot run (lookahead, backreferences) validated and failed the run."""
import datetime as dt
import decimal

import duckdb
import pyarrow as pa
import pytest

from ir_compiler.lower.validate import rule_failures
from ir_compiler.rowrules import parse_rule, type_problem
from ir_compiler.types import from_arrow

COLUMNS = {
    "decimal(12,2)": (pa.array([decimal.Decimal("1.00"), decimal.Decimal("2.50"), decimal.Decimal("3.10"), None],
                               pa.decimal128(12, 2)), ["in:1|2.5|3.1", "in:1|7", "in:2.50", "eq:2.5", "neq:1"]),
    "timestamp": (pa.array([dt.datetime(2024, 1, 1, 10), dt.datetime(2024, 1, 1, 11), None], pa.timestamp("us")),
                  ["in:2024-01-01 10:00:00", "in:2024-01-01 10:00:00|2024-01-01T11:00:00", "eq:2024-01-01 10:00"]),
    "float": (pa.array([-0.0, 1e20, 2.5, None]), ["in:0|100000000000000000000", "in:2.5", "eq:0"]),
    "int": (pa.array([1, 3, 7, None]), ["in:1.0|7", "in:01|3", "in:1", "neq:7"]),
    "bool": (pa.array([True, False, None]), ["in:t", "in:true|false", "eq:true", "neq:false", "eq:f", "in:no"]),
    "date": (pa.array([dt.date(2024, 1, 1), dt.date(2024, 2, 29), None]), ["in:2024-01-01", "gt:2024-01-31"]),
    "string": (pa.array(["a", "B", "", None]), ["in:a|b", "in:B|c", "eq:B"]),
}
DUCK_TYPE = {"decimal(12,2)": "DECIMAL(12,2)", "timestamp": "TIMESTAMP", "float": "DOUBLE", "int": "BIGINT",
             "bool": "BOOLEAN", "date": "DATE", "string": "VARCHAR"}


def _duck_predicate(rule, ctype):
    name, _, arg = rule.partition(":")
    quote = ctype in ("timestamp", "date", "string", "bool")
    lit = (lambda v: f"'{v}'::{DUCK_TYPE[ctype]}") if quote else (lambda v: v)
    if name == "in":
        return f"v IN ({', '.join(lit(a) for a in arg.split('|'))})"
    op = {"eq": "=", "neq": "<>", "gt": ">"}[name]
    return f"v {op} {lit(arg)}"


@pytest.mark.parametrize("ctype", sorted(COLUMNS))
def test_a_rule_passes_the_rows_sqls_predicate_passes(ctype):
    values, rules = COLUMNS[ctype]
    table = pa.table({"v": values})
    for rule in rules:
        spec = parse_rule(rule)
        assert type_problem(spec, from_arrow(values.type)) is None, rule
        ours = [not f for f in rule_failures(spec, "v", table).to_pylist()]
        con = duckdb.connect()
        con.register("t", table)
        oracle = [r[0] is not False for r in con.execute(f"SELECT {_duck_predicate(rule, ctype)} FROM t").fetchall()]
        assert ours == oracle, (rule, ours, oracle)  # a NULL value passes (rules other than not_null/expr)


@pytest.mark.parametrize("ctype, rule, says", [
    ("bool", "eq:maybe", "not a boolean"), ("int", "in:1|x", "not a number"),
    ("string", "regex:foo(?=1)", "RE2"), ("string", "regex:(o)\\1", "RE2")])
def test_what_cannot_run_does_not_validate(ctype, rule, says):
    values, _ = COLUMNS[ctype]
    try:
        spec = parse_rule(rule)
    except ValueError as exc:
        assert says in str(exc)
        return
    problem = type_problem(spec, from_arrow(values.type))
    assert problem is not None and says in problem, problem
