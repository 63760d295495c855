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


def type_problem(spec: RuleSpec, ctype: ColumnType) -> str | None:
    """Why this rule cannot apply to a column of this type (None if it can)."""
    if spec.name in _NUMERIC + ("between",):
        numeric_args = all(isinstance(a, (int, float)) for a in spec.args)
        if numeric_args and not ctype.is_numeric:
            return f"`{spec.text}` compares numbers but the column is {ctype}; add a cast"
        if not numeric_args and ctype.is_numeric:
            return f"`{spec.text}` compares with a non-number but the column is {ctype}"
    if spec.name in ("regex", "email", "min_length", "max_length") and ctype.name not in ("string", "json"):
        return f"`{spec.text}` applies to strings but the column is {ctype}; add a cast to string"
    return None
