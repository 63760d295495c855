"""Target hooks: SQL hooks are restricted to read-only and admin verbs (parsed with sqlglot)."""
from __future__ import annotations

import sqlglot
from sqlglot import exp

_FORBIDDEN = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable,
              exp.Grant, exp.Copy)
_ALLOWED_COMMANDS = {"ANALYZE", "VACUUM", "CHECKPOINT", "REFRESH", "SET", "SHOW", "EXPLAIN", "COMMENT"}


def sql_hook_problem(statement: str | None) -> str | None:
    """Why a SQL hook statement is not allowed (None when it is)."""
    if not statement or not statement.strip():
        return "the hook statement is empty"
    try:
        trees = sqlglot.parse(statement, dialect="postgres")
    except sqlglot.errors.ParseError as exc:
        return f"cannot parse the hook SQL: {exc.errors[0]['description'] if exc.errors else exc}"
    except (sqlglot.errors.TokenError, RecursionError) as exc:
        return f"cannot parse the hook SQL: {exc if isinstance(exc, sqlglot.errors.TokenError) else 'nested too deep'}"
    for tree in trees:
        if tree is None:
            continue
        if isinstance(tree, exp.Command):
            verb = str(tree.this).upper()
            if verb not in _ALLOWED_COMMANDS:
                return f"hook verb {verb} is not allowed; hooks may only read or run admin verbs " \
                       f"({', '.join(sorted(_ALLOWED_COMMANDS))})"
            continue
        bad = next((n for n in tree.walk() if isinstance(n, _FORBIDDEN)), None)
        if bad is not None:
            return f"hooks may not modify data or schema ({type(bad).__name__.upper()} found); " \
                   f"use SELECT or admin verbs such as ANALYZE"
    return None
