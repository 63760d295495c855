"""Parsing with sqlglot; syntax errors become ExpressionError with a position."""
from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from ir_compiler.errors import ExpressionError

_NOT_SCALAR = (exp.Select, exp.Subquery, exp.Union, exp.Window, exp.Star, exp.AggFunc, exp.Insert, exp.Update,
               exp.Delete, exp.Create, exp.Drop)


def parse_expression(text: str) -> exp.Expression:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty", expr=str(text))
    try:
        tree = sqlglot.parse_one(text, dialect="postgres")
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        raise ExpressionError(f"cannot parse SQL: {err.get('description', str(exc))}", expr=text,
                              position=err.get("col")) from None
    except TokenError as exc:
        raise ExpressionError(f"cannot tokenize SQL: {exc}", expr=text) from None
    if tree is None:
        raise ExpressionError("the expression is empty", expr=text)
    for node in tree.walk():
        if isinstance(node, _NOT_SCALAR):
            what = "an aggregate function" if isinstance(node, exp.AggFunc) else type(node).__name__.upper()
            raise ExpressionError(f"{what} is not allowed in a row expression (use a transform op such as "
                                  f"aggregate for that)", expr=text, position=_pos(text, node))
    return tree


def _pos(text: str, node: exp.Expression) -> int | None:
    needle = node.sql(dialect="postgres").split("(")[0].split(" ")[0]
    idx = text.lower().find(needle.lower()) if needle else -1
    return idx + 1 if idx >= 0 else None


def position_of(text: str, node: exp.Expression) -> int | None:
    return _pos(text, node)
