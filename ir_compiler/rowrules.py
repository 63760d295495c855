"""Validate-node row rules: parsing (``gt:0``, ``between:1,5``, ``in:a|b``, ``expr:<SQL>``) and type needs."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ir_compiler.types import ColumnType, is_valid_type

_NUMERIC = ("gt", "gte", "lt", "lte", "eq", "neq")
RULE_NAMES = ("not_null", *_NUMERIC, "between", "in", "regex", "email", "min_length", "max_length", "type", "expr")


@dataclass(frozen=True)
class RuleSpec:
    name: str
    args: tuple = ()
    text: str = ""


def _number(text: str):
    """An int, or a float that keeps its digits (``gt:123456789.123456789012`` compares exactly on a decimal)."""
    from ir_compiler.loader import JsonFloat
    try:
        n = int(text) if re.fullmatch(r"[+-]?\d+", text.strip()) else JsonFloat(text.strip())
    except ValueError:
        return None
    return n if n == n and n not in (float("inf"), float("-inf")) else None  # nan, inf: not a bound


def parse_rule(text: str) -> RuleSpec:
    """Parse a rule string; raises ValueError with the accepted forms."""
    name, sep, arg = text.partition(":")
    name = name.strip()
    if name not in RULE_NAMES:
        raise ValueError(f"unknown rule {name!r}; use one of {', '.join(RULE_NAMES)}")
    if name in ("not_null", "email"):
        if sep and arg.strip():
            raise ValueError(f"rule '{name}' takes no argument")
        return RuleSpec(name, (), text)
    if not sep or not arg.strip():
        raise ValueError(f"rule '{name}' needs an argument, e.g. {name}:{_EXAMPLE[name]}")
    if name in _NUMERIC:
        n = _number(arg)
        if n is None:
            return RuleSpec(name, (arg.strip(),), text)  # compared as string/date
        return RuleSpec(name, (n,), text)
    if name == "between":
        parts = [p.strip() for p in arg.split(",")]
        if len(parts) != 2:
            raise ValueError("between needs two bounds: between:<low>,<high>")
        lo, hi = (_number(p) if _number(p) is not None else p for p in parts)
        if all(isinstance(b, (int, float)) for b in (lo, hi)) and lo > hi:  # SQL's BETWEEN is not symmetric
            raise ValueError(f"between:{parts[0]},{parts[1]} has its low bound above its high one (no value is "
                             f"between them); write between:{parts[1]},{parts[0]}")
        return RuleSpec(name, (lo, hi), text)
    if name == "in":
        return RuleSpec(name, tuple(p for p in arg.split("|")), text)
    if name == "regex":
        try:
            re.compile(arg)
        except re.error as exc:
            raise ValueError(f"invalid regex {arg!r}: {exc}") from None
        _re2(arg)
        return RuleSpec(name, (arg,), text)
    if name in ("min_length", "max_length"):
        if not arg.strip().isdigit():
            raise ValueError(f"{name} needs a whole number, e.g. {name}:3")
        return RuleSpec(name, (int(arg),), text)
    if name == "type":
        if not is_valid_type(arg.strip()):
            raise ValueError(f"type rule names an unknown type {arg!r}")
        return RuleSpec(name, (arg.strip(),), text)
    return RuleSpec("expr", (arg,), text)


_EXAMPLE = {"gt": "0", "gte": "0", "lt": "100", "lte": "100", "eq": "1", "neq": "0", "between": "1,10",
            "in": "a|b", "regex": "^[A-Z]+$", "min_length": "1", "max_length": "255", "type": "int",
            "expr": "amount > 0"}


def _re2(pattern: str) -> None:
    """Rules run on Arrow's RE2, which has no lookaround or backreferences: refuse such a pattern now, not with
    the first batch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern=pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"regex {pattern!r} uses what the rule engine (RE2) does not support — lookaround "
                         f"((?=…), (?!…), (?<=…)) or backreferences (\\1): {str(exc).split(':')[-1].strip()}; "
                         f"rewrite it, or use an expr: rule") from None


def _bool_literal(value: str):
    from sqlglot import exp

    from ir_compiler.ops.cast import convert_value
    from ir_compiler.types import BOOL
    try:
        return exp.true() if convert_value(str(value), BOOL) else exp.false()
    except ValueError:
        raise ValueError(f"'{value}' is not a boolean (true/false, t/f, yes/no, on/off, 1/0)") from None


def rule_sql(spec: RuleSpec, column: str, ctype: ColumnType | None) -> str | None:
    """The SQL boolean a comparison, between or in rule stands for (``gt:0`` on ``amount`` → ``"amount" > 0``),
    compiled by the expression engine, so a rule means what SQL means (``in:1|2.5`` on a decimal column is
    ``amount IN (1, 2.5)``, never a text match); None for ``in`` on a text column (an exact text match)."""
    from sqlglot import exp

    def lit(value):
        if ctype is not None and ctype.name == "bool":
            return _bool_literal(value)
        if isinstance(value, (int, float)):
            return exp.Literal.number(getattr(value, "text", value))  # the digits as written in the rule
        return exp.Literal.string(str(value))

    col = exp.column(column, quoted=True)
    if spec.name == "in":
        if ctype is None or ctype.name in ("string", "json"):
            return None
        values = [_number(a) if ctype.is_numeric and _number(a) is not None else a for a in spec.args]
        if ctype.is_numeric and any(isinstance(v, str) for v in values):
            bad = next(v for v in values if isinstance(v, str))
            raise ValueError(f"`{spec.text}` lists '{bad}', which is not a number, but the column is {ctype}")
        node = exp.In(this=col, expressions=[lit(v) for v in values])
    elif spec.name == "between":
        node = exp.Between(this=col, low=lit(spec.args[0]), high=lit(spec.args[1]))
    elif spec.name in _NUMERIC:
        node = getattr(exp, _SQL_CMP[spec.name])(this=col, expression=lit(spec.args[0]))
    else:
        return None
    return node.sql(dialect="postgres")


_SQL_CMP = {"gt": "GT", "gte": "GTE", "lt": "LT", "lte": "LTE", "eq": "EQ", "neq": "NEQ"}  # sqlglot.exp classes


def type_problem(spec: RuleSpec, ctype: ColumnType) -> str | None:
    """Why this rule cannot apply to a column of this type (None if it can). A comparison, between or in rule
    is compiled here as it will run, so what validates runs."""
    problem = _type_problem(spec, ctype)
    if problem is None and spec.name in (*_NUMERIC, "between", "in"):
        from ir_compiler.errors import ExpressionError
        from ir_compiler.expressions import compile_expression
        from ir_compiler.types import Field, Schema
        try:
            sql = rule_sql(spec, "v", ctype)
            if sql is not None:
                compile_expression(sql, Schema([Field("v", ctype)]), boolean=True)
        except (ValueError, ExpressionError) as exc:
            return f"`{spec.text}` does not apply to a {ctype} column: {getattr(exc, 'message', None) or exc}"
    return problem


def _type_problem(spec: RuleSpec, ctype: ColumnType) -> str | None:
    if spec.name in _NUMERIC + ("between",):
        numeric_args = all(isinstance(a, (int, float)) for a in spec.args)
        if numeric_args and not ctype.is_numeric:
            return f"`{spec.text}` compares numbers but the column is {ctype}; add a cast"
        if not numeric_args and ctype.is_numeric:
            return f"`{spec.text}` compares with a non-number but the column is {ctype}"
    if spec.name in ("regex", "email", "min_length", "max_length") and ctype.name not in ("string", "json"):
        return f"`{spec.text}` applies to strings but the column is {ctype}; add a cast to string"
    return None
