"""Parsing with sqlglot; syntax errors become ExpressionError with a position."""
from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from ir_compiler.errors import ExpressionError
from sqlglot.dialects.postgres import Postgres

# Functions whose arguments sqlglot would rewrite (format strings to strftime, log's default base, flags):
# parsed as plain calls so the compiler sees exactly what the user wrote.
_KEEP_AS_CALLS = ("TO_CHAR", "TO_DATE", "TO_TIMESTAMP", "LOG", "LOG10", "DIV", "REGEXP_REPLACE", "REGEXP_LIKE", "TO_NUMBER",
                  "JSON_EXTRACT_PATH_TEXT", "JSON_EXTRACT_PATH", "INITCAP", "DATE_PART", "GENERATE_SERIES")


class UnaryPlus(exp.Unary):
    """PostgreSQL's unary ``+``: sqlglot drops it while parsing; kept so that its operand is type-checked
    (PostgreSQL: ``+'abc'::text``, ``+true``, ``+DATE '2020-01-01'`` are errors, not the operand)."""


class FlowPostgres(Postgres):
    """PostgreSQL as sqlglot parses it, minus the rewrites listed in ``_KEEP_AS_CALLS``."""

    class Generator(Postgres.Generator):
        TRANSFORMS = {**Postgres.Generator.TRANSFORMS, UnaryPlus: lambda self, e: f"+{self.sql(e, 'this')}"}

    class Parser(Postgres.Parser):
        UNARY_PARSERS = {**Postgres.Parser.UNARY_PARSERS,
                         TokenType.PLUS: lambda self: self.expression(UnaryPlus(this=self._parse_unary()))}
        FUNCTIONS = {k: v for k, v in Postgres.Parser.FUNCTIONS.items() if k not in _KEEP_AS_CALLS}
        FUNCTION_PARSERS = {k: v for k, v in Postgres.Parser.FUNCTION_PARSERS.items() if k != "DATE_PART"}

        def _parse_interval_span(self, this, parse_function_unit=True):
            """INTERVAL '1 day 02:03:04' keeps its text whole (sqlglot would keep only '1' DAY)."""
            if this is not None and this.is_string:
                unit = None
                if self._curr is not None and self._curr.text.upper() in self.dialect.VALID_INTERVAL_UNITS:
                    unit = self._parse_var(any_token=True, upper=True)
                return self.expression(exp.Interval(this=this, unit=unit))
            return super()._parse_interval_span(this, parse_function_unit)

_NOT_SCALAR = (exp.Select, exp.Subquery, exp.Union, exp.Window, exp.Star, exp.AggFunc, exp.Insert, exp.Update,
               exp.Delete, exp.Create, exp.Drop)


MAX_EXPRESSION_CHARS = 20_000
MAX_EXPRESSION_DEPTH = 64  # nesting of the parsed tree (a chain of 60 ANDs is 60 deep)


_OPERATORS = {"GT": ">", "GTE": ">=", "LT": "<", "LTE": "<=", "EQ": "=", "NEQ": "<>", "Add": "+", "Sub": "-",
              "Mul": "*", "Div": "/", "Mod": "%", "And": "AND", "Or": "OR", "Like": "LIKE", "ILike": "ILIKE",
              "In": "IN", "Between": "BETWEEN", "Is": "IS", "Not": "NOT", "DPipe": "||", "Neg": "-",
              "UnaryPlus": "+"}
_MISSING = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]+\.(\w+)'>")


def _readable(description: str) -> str:
    """sqlglot's 'Required keyword: 'expression' missing for <class '...GT'>' → what the user wrote wrong."""
    m = _MISSING.search(description)
    if not m:
        return description
    keyword, node = m.groups()
    what = f"'{_OPERATORS[node]}'" if node in _OPERATORS else node.upper()
    side = {"expression": "its right-hand side", "this": "its left-hand side", "low": "its lower bound",
            "high": "its upper bound"}.get(keyword, f"its {keyword}")
    return f"{what} is missing {side} (the expression ends too early or an operand is missing)"


def parse_expression(text: str) -> exp.Expression:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty", expr=str(text))
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"the expression is {len(text):,} characters; at most {MAX_EXPRESSION_CHARS:,}",
                              expr=text[:60] + "…")
    try:
        tokens = _check_tokens(text)
        tree = sqlglot.parse_one(text, dialect=FlowPostgres)
        if tree is not None:
            _nothing_dropped(text, tokens, tree)
    except RecursionError:
        raise ExpressionError(f"the expression nests deeper than {MAX_EXPRESSION_DEPTH} levels; split it into "
                              f"several expression ops", expr=text[:60] + "…") from None
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        raise ExpressionError(f"cannot parse SQL: {_readable(err.get('description', str(exc)))}", expr=text,
                              position=err.get("col")) from None
    except TokenError as exc:
        raise ExpressionError(f"cannot tokenize SQL: {exc}", expr=text) from None
    if tree is None:
        raise ExpressionError("the expression is empty", expr=text)
    if _depth(tree) > MAX_EXPRESSION_DEPTH:
        raise ExpressionError(f"the expression nests deeper than {MAX_EXPRESSION_DEPTH} levels; split it into "
                              f"several expression ops (or use IN (…) for long OR chains)", expr=text[:60] + "…")
    for node in tree.walk():
        if isinstance(node, _NOT_SCALAR):
            what = "an aggregate function" if isinstance(node, exp.AggFunc) else type(node).__name__.upper()
            raise ExpressionError(f"{what} is not allowed in a row expression (use a transform op such as "
                                  f"aggregate for that)", expr=text, position=_pos(text, node))
    return tree


def _check_tokens(text: str) -> list:
    """The text's tokens, after refusing what sqlglot would repair where PostgreSQL says syntax error: an unclosed
    or unopened ( or [ (sqlglot closed ``substring(s`` itself), adjacent string constants not separated by a line
    break (sqlglot made ``'x' 'y'`` a CONCAT), an empty list element (``IN (3, , 4)``), ``NOT IS``,
    ``FROM FOR`` and a FROM/FOR right before ``)``."""
    from sqlglot.tokens import TokenType as T
    tokens = FlowPostgres().tokenize(text)
    pairs = {T.R_PAREN: T.L_PAREN, T.R_BRACKET: T.L_BRACKET}
    opened = []
    for tok in tokens:
        if tok.token_type in (T.L_PAREN, T.L_BRACKET):
            opened.append(tok)
        elif tok.token_type in pairs:
            if not opened or opened[-1].token_type != pairs[tok.token_type]:
                raise ExpressionError(f"cannot parse SQL: '{tok.text}' closes nothing", expr=text, position=tok.col)
            opened.pop()
    if opened:
        raise ExpressionError(f"cannot parse SQL: '{opened[-1].text}' is never closed", expr=text,
                              position=opened[-1].col)
    for a, b in zip(tokens, tokens[1:]):
        pair = (a.token_type, b.token_type)
        if pair == (T.STRING, T.STRING) and "\n" not in text[a.end + 1:b.start]:
            raise ExpressionError("cannot parse SQL: two string constants in a row (join them with ||)", expr=text,
                                  position=b.col)
        if pair in ((T.COMMA, T.COMMA), (T.L_PAREN, T.COMMA), (T.COMMA, T.R_PAREN), (T.NOT, T.IS),
                    (T.FROM, T.FOR), (T.FROM, T.R_PAREN), (T.FOR, T.R_PAREN)):
            raise ExpressionError(f"cannot parse SQL: '{a.text} {b.text}' (something is missing between them, or "
                                  f"NOT is misplaced: x IS NOT NULL)", expr=text, position=b.col)
    return tokens


# keywords sqlglot never adds or drops for a well-formed expression (AND, THEN), or never drops (FROM, FOR: it
# adds them when it writes ltrim(s, 'a') as TRIM(LEADING 'a' FROM s))
_KEPT = {"AND": "both", "THEN": "both", "FROM": "drop", "FOR": "drop"}


def _nothing_dropped(text: str, tokens: list, tree: exp.Expression) -> None:
    """Refuse a reading that sqlglot repaired: ``x BETWEEN 1 3`` gained an AND, ``CASE WHEN c 'x' END`` a THEN,
    ``substring(s from from 1)`` lost a FROM — PostgreSQL says syntax error to each."""
    from sqlglot.tokens import TokenType
    again = FlowPostgres().tokenize(tree.sql(dialect=FlowPostgres))
    for word, rule in _KEPT.items():
        kind = getattr(TokenType, word)
        before, after = (sum(t.token_type == kind for t in ts) for ts in (tokens, again))
        if after < before or (rule == "both" and after > before):
            raise ExpressionError(f"cannot parse SQL: {word} {'is missing' if after > before else 'is misplaced'} "
                                  f"(PostgreSQL would say syntax error)", expr=text)


def _depth(tree: exp.Expression) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack += [(child, depth + 1) for child in node.iter_expressions()]
    return deepest


def _pos(text: str, node: exp.Expression) -> int | None:
    needle = node.sql(dialect="postgres").split("(")[0].split(" ")[0]
    idx = text.lower().find(needle.lower()) if needle else -1
    return idx + 1 if idx >= 0 else None


def position_of(text: str, node: exp.Expression) -> int | None:
    return _pos(text, node)
