"""The SQL allowlist for hooks and table queries (layer 2 of 3; the read-only transaction is layer 1 and lives in
``connectors/warehouse``; layer 3 is that validation never executes user SQL).

A statement passes when it is exactly one of:

- a query: SELECT (WITH, UNION/INTERSECT/EXCEPT, VALUES included) whose every function is on the allowlist below,
  that reads only plainly named tables (no ``pg_*`` / ``duckdb_*`` catalogs, no file names), with no
  ``SELECT … INTO``, no ``FOR UPDATE``/``FOR SHARE`` and no data-modifying statement anywhere inside (a CTE
  with ``DELETE … RETURNING`` is rejected);
- ``EXPLAIN [ANALYZE] [VERBOSE] <query>`` (EXPLAIN of anything else is rejected; ``ANALYZE`` executes the query,
  which is read-only);
- ``SHOW <setting>`` (a plain name);
- hooks only, maintenance verbs: ``ANALYZE [table, …]``, ``VACUUM [ANALYZE] [table, …]`` (never ``FULL``) and
  ``CHECKPOINT``. They change no row or schema (statistics, free space, the write-ahead log).

What runs is never the user's text: a query is re-generated from the checked syntax tree (comments dropped, so
a tokenizer difference between sqlglot and the database cannot smuggle a second statement), and a maintenance
verb is re-built from the table names it names, quoted.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

DIALECTS = ("postgres", "duckdb")


class SqlRejected(ValueError):
    """The statement is not on the allowlist (the message says what to change)."""


@dataclass(frozen=True)
class SafeSql:
    kind: str  # "query" (runs in a read-only transaction) | "maintenance" (ANALYZE / VACUUM / CHECKPOINT)
    sql: str  # what to execute: re-generated from the checked tree, or built from quoted names


# Functions sqlglot does not type (it parses them as anonymous calls) that are allowed, by lower-case name.
# Everything not listed here is rejected: file readers (read_*, pg_read_file, pg_ls_dir…), large objects (lo_*),
# admin (pg_terminate_backend, pg_cancel_backend, pg_reload_conf, set_config…), network (dblink*, http*),
# sequences (nextval/setval), sleeps, query/query_table, getenv…
SAFE_FUNCTIONS = frozenset("""
abs acos age any_value array_agg array_append array_cat array_contains array_distinct array_length array_position
array_prepend array_remove array_to_string array_upper array_lower asin atan atan2 avg bit_length bool_and bool_or
btrim cardinality cbrt ceil ceiling char_length character_length chr coalesce concat concat_ws contains corr cos
count covar_pop covar_samp cume_dist current_date current_time current_timestamp date date_add date_diff date_part
date_sub date_trunc datediff datepart datetrunc day dayname dayofmonth dayofweek dayofyear decade degrees
dense_rank div epoch epoch_ms epoch_us era even every exp extract factorial first first_value flatten floor
format gamma gcd generate_series generate_subscripts greatest hash hour icu_sort_key ifnull initcap instr
isfinite isinf isnan isodow isoyear json_array_length json_build_array json_build_object json_extract
json_extract_path json_extract_path_text json_extract_string json_keys json_object json_type json_typeof
json_valid jsonb_array_length jsonb_build_array jsonb_build_object jsonb_extract_path jsonb_extract_path_text
jsonb_object_keys jsonb_typeof justify_days justify_hours justify_interval kurtosis lag last last_day last_value
lcm lead least left len length levenshtein lgamma list list_aggregate list_concat list_contains list_distinct
list_extract list_has list_position list_slice list_sort list_value ln localtime localtimestamp log log10 log2 lower
lpad ltrim make_date make_interval make_time make_timestamp max md5 median microsecond millennium millisecond min
minute mod mode month monthname nanosecond now nth_value ntile nullif octet_length overlay percent_rank
percentile_cont percentile_disc pi position pow power quantile quantile_cont quantile_disc quarter radians range
rank regexp_count regexp_extract regexp_full_match regexp_like regexp_match regexp_matches regexp_replace
regexp_split_to_array regexp_split_to_table regr_slope regr_intercept repeat replace reverse right round
row_number rpad rtrim second sha256 sign signbit sin skewness split split_part sqrt starts_with statement_timestamp
stddev stddev_pop stddev_samp str_split strftime string_agg string_split string_to_array strip_accents strpos
strptime struct_extract struct_pack substr substring sum tan to_char to_date to_hex to_json to_jsonb to_number
to_timestamp today transaction_timestamp translate trim trunc try_cast typeof unnest upper variance var_pop
var_samp week weekday weekofyear width_bucket xor year yearweek
""".split())

# sqlglot-typed functions that are still not allowed (they read files or generate side effects).
_DENIED_TYPED = tuple(getattr(exp, n) for n in ("ReadCSV", "ReadParquet", "ToFile", "Secret", "NextValueFor",
                                                "OpenJSON") if hasattr(exp, n))
# Statement shapes that never belong inside a query.
_DENIED_NODES = tuple(getattr(exp, n) for n in (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Grant", "Revoke", "Copy",
    "Command", "Into", "Lock", "Set", "SetItem", "Transaction", "Commit", "Rollback", "Pragma", "Use", "Attach",
    "Detach", "Install", "Load", "Cache", "Uncache", "Refresh", "Kill", "Analyze", "Describe", "Comment", "Export",
    "LoadData", "Summarize") if hasattr(exp, n))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery) if hasattr(exp, "SetOperation") else \
    (exp.Select, exp.Union, exp.Values, exp.Subquery)
_DENIED_NAME_PREFIXES = ("pg_", "duckdb_", "sqlite_")
_DENIED_SCHEMAS = ("pg_catalog", "pg_toast")


def check_sql(statement: str | None, dialect: str, *, maintenance: bool = True, query_only: bool = False) -> SafeSql:
    """The statement as it will run (see the module docstring); raises SqlRejected with the reason.

    ``maintenance``: ANALYZE / VACUUM / CHECKPOINT allowed (hooks). ``query_only``: only a query (table sources,
    which must return rows: no SHOW, no EXPLAIN)."""
    if not statement or not statement.strip():
        raise SqlRejected("the statement is empty")
    text = statement.strip()
    if maintenance and not query_only:
        built = _maintenance(text, dialect)
        if built is not None:
            return SafeSql("maintenance", built)
    show = _SHOW.match(text)
    if show and not query_only:
        return SafeSql("query", "SHOW " + " ".join(w for w in show.groups() if w))
    if re.match(r"^SHOW\b", text, re.IGNORECASE):
        raise SqlRejected("SHOW takes one plain setting or table name (SHOW search_path, SHOW TABLES)")
    trees = _parse(text, dialect)
    if len(trees) != 1:
        raise SqlRejected(f"one statement only ({len(trees)} found); split it or use a single SELECT")
    tree = trees[0]
    if isinstance(tree, exp.Command) and not query_only:
        return SafeSql("query", _command(tree, dialect))
    if not isinstance(tree, _QUERY_ROOTS):  # named by its own first word (the parser's class may be another)
        word = re.match(r"[A-Za-z]+", text)
        raise SqlRejected(f"{word.group(0).upper() if word else _verb(tree)} is not allowed; only a read-only "
                          f"query (SELECT) is")
    return SafeSql("query", _query(tree, dialect))


def sql_problem(statement: str | None, *, maintenance: bool = True, query_only: bool = False,
                dialect: str | None = None) -> str | None:
    """Why ``statement`` is not allowed (None when it is). Without ``dialect`` (validation: the warehouse is
    chosen at run time) it must be allowed in every dialect that parses it, and parse in at least one."""
    problems = []
    for d in ([dialect] if dialect else DIALECTS):
        try:
            check_sql(statement, d, maintenance=maintenance, query_only=query_only)
        except SqlRejected as exc:
            problems.append((d, str(exc)))
    parsed = [p for p in problems if not p[1].startswith("cannot parse")]
    if parsed:
        return parsed[0][1]
    if len(problems) == (1 if dialect else len(DIALECTS)):
        return problems[0][1]
    return None


def sql_hook_problem(statement: str | None, dialect: str | None = None) -> str | None:
    """Why a SQL hook statement is not allowed (None when it is)."""
    problem = sql_problem(statement, dialect=dialect)
    return f"{problem}; hooks may run a read-only query (SELECT, SHOW, EXPLAIN of a SELECT) or ANALYZE, VACUUM, " \
           f"CHECKPOINT" if problem else None


def query_problem(query: str | None, dialect: str | None = None) -> str | None:
    """Why a table source ``query`` is not allowed (None when it is)."""
    problem = sql_problem(query, maintenance=False, query_only=True, dialect=dialect)
    return f"{problem}; a table source query must be one read-only SELECT" if problem else None


# ---- parsing ------------------------------------------------------------------------------------------------------
def _parse(text: str, dialect: str) -> list:
    log = logging.getLogger("sqlglot")
    level = log.level
    log.setLevel(logging.CRITICAL)  # "falling back to parsing as a Command" is our business, not the user's
    try:
        trees = [t for t in sqlglot.parse(text, dialect=dialect) if t is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        detail = exc.errors[0]["description"] if getattr(exc, "errors", None) else str(exc).splitlines()[0]
        raise SqlRejected(f"cannot parse the SQL ({dialect}): {detail}") from None
    except RecursionError:
        raise SqlRejected("cannot parse the SQL: it is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - a parser bug on odd input is a rejection, never a traceback
        raise SqlRejected(f"cannot parse the SQL ({dialect}): {type(exc).__name__}") from None
    finally:
        log.setLevel(level)
    if not trees:
        raise SqlRejected("the statement is empty")
    return trees


def _query(tree, dialect: str) -> str:
    if not isinstance(tree, _QUERY_ROOTS):
        raise SqlRejected(f"{_verb(tree)} is not allowed; only a read-only query (SELECT) is")
    for node in tree.walk():
        if isinstance(node, _DENIED_NODES):
            raise SqlRejected(f"{_verb(node)} is not allowed inside a query")
        if isinstance(node, exp.Dot) and not isinstance(node.this, (exp.Column, exp.Identifier, exp.Dot)):
            raise SqlRejected(f"field selection '{node.sql(dialect)}' is not allowed: PostgreSQL reads "
                              f"(value).name as the call name(value), which would bypass the function allowlist")
        if isinstance(node, exp.Func):
            _function(node)
        elif isinstance(node, exp.Table):
            _table(node)
        elif isinstance(node, exp.Placeholder) or isinstance(node, exp.Parameter):
            raise SqlRejected("parameters are not allowed")
    try:
        return tree.sql(dialect, comments=False)
    except (sqlglot.errors.UnsupportedError, ValueError) as exc:
        raise SqlRejected(f"cannot re-generate the SQL: {exc}") from None


def _verb(node) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    if isinstance(node, exp.Into):
        return "SELECT … INTO"
    if isinstance(node, exp.Lock):
        return "SELECT … FOR UPDATE/SHARE"
    return type(node).__name__.upper()


def _function(node) -> None:
    if isinstance(node.parent, exp.Dot) and node.parent.expression is node:
        raise SqlRejected(f"qualified function call '{node.parent.sql()}' is not allowed (user-defined functions "
                          f"could do anything); call built-in functions by their plain name")
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name not in SAFE_FUNCTIONS:
            raise SqlRejected(f"function {name}() is not on the allowlist of read-only functions")
        return
    if isinstance(node, _DENIED_TYPED):
        raise SqlRejected(f"function {node.sql_name().lower()}() is not allowed (it reads files or has side "
                          f"effects)")


def _table(node) -> None:
    name = node.this
    if not isinstance(name, exp.Identifier):
        if isinstance(name, exp.Func):
            return  # a table function (generate_series, unnest…): checked as a function by the walk
        raise SqlRejected(f"'{node.sql()}' is not a plain table name")
    parts = [p for p in (node.args.get("catalog"), node.args.get("db"), name) if p is not None]
    for part in parts:
        text = part.name if isinstance(part, exp.Identifier) else str(part)
        if not _NAME.match(text):
            raise SqlRejected(f"table name '{node.sql()}' must be letters, digits and _ (a quoted name that looks "
                              f"like a file or URL is not allowed)")
    table = name.name.lower()
    schema = node.args.get("db").name.lower() if node.args.get("db") is not None else None
    catalog = node.args.get("catalog").name.lower() if node.args.get("catalog") is not None else None
    if schema in _DENIED_SCHEMAS or catalog in ("system", "temp") or (
            table.startswith(_DENIED_NAME_PREFIXES) and schema in (None, "main", "information_schema")):
        raise SqlRejected(f"system catalog '{node.sql()}' is not readable from a hook or query")


def table_name_problem(name: str | None) -> str | None:
    """Why a table NAME (a table source's ``table``, a lookup's ``table``) may not be read (None when it may): the
    rules of tables named inside a query — plain names, no system catalog (``pg_catalog.pg_authid`` holds
    password hashes)."""
    if not isinstance(name, str) or not name:
        return None
    parts = name.split(".")
    if len(parts) > 3 or not all(_NAME.match(p) for p in parts):
        return f"'{name}' is not a plain table name (schema.table: letters, digits and _)"
    ids = [exp.to_identifier(p) for p in parts]
    table = exp.Table(this=ids[-1], db=ids[-2] if len(ids) > 1 else None, catalog=ids[-3] if len(ids) > 2 else None)
    try:
        _table(table)
    except SqlRejected as exc:
        return str(exc)
    return None


_SHOW = re.compile(r"^SHOW\s+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*"
                   r"([A-Za-z_][A-Za-z0-9_]*)?\s*;?\s*$", re.IGNORECASE)
_EXPLAIN_OPTS = {"ANALYZE", "ANALYSE", "VERBOSE"}


def _command(tree, dialect: str) -> str:
    verb = str(tree.this).upper()
    rest = tree.expression
    rest = (rest.name if isinstance(rest, exp.Literal) else rest.sql(dialect) if isinstance(rest, exp.Expression)
            else str(rest or "")).strip()
    if verb == "EXPLAIN":
        words = rest.split(None, 1)
        opts = []
        while words and words[0].upper() in _EXPLAIN_OPTS:
            opts.append("ANALYZE" if words[0].upper() == "ANALYSE" else words[0].upper())
            rest = words[1] if len(words) > 1 else ""
            words = rest.split(None, 1)
        if not rest.strip():
            raise SqlRejected("EXPLAIN needs a SELECT")
        trees = _parse(rest, dialect)
        if len(trees) != 1 or isinstance(trees[0], exp.Command):
            raise SqlRejected("EXPLAIN is allowed only of one SELECT")
        try:
            inner = _query(trees[0], dialect)
        except SqlRejected as exc:
            raise SqlRejected(f"EXPLAIN is allowed only of a read-only SELECT: {exc}") from None
        return " ".join(["EXPLAIN", *dict.fromkeys(opts), inner])
    raise SqlRejected(f"{verb} is not allowed")


_MAINT = re.compile(r"^(ANALYZE|ANALYSE|VACUUM|CHECKPOINT)\b(.*?);?\s*$", re.IGNORECASE | re.DOTALL)
_QNAME = re.compile(r'^(?:([A-Za-z_][A-Za-z0-9_]*|"[A-Za-z_][A-Za-z0-9_]*")\.)?'
                    r'([A-Za-z_][A-Za-z0-9_]*|"[A-Za-z_][A-Za-z0-9_]*")$')


def _maintenance(text: str, dialect: str) -> str | None:
    """ANALYZE / VACUUM / CHECKPOINT re-built from their parts (None when ``text`` is not one of them)."""
    m = _MAINT.match(text)
    if not m:
        return None
    verb = "ANALYZE" if m.group(1).upper() == "ANALYSE" else m.group(1).upper()
    rest = m.group(2).strip()
    if verb == "CHECKPOINT":
        if rest:
            raise SqlRejected("CHECKPOINT takes no arguments here")
        return "CHECKPOINT"
    words = rest.split(None)
    opts = []
    allowed_opts = {"VERBOSE"} if verb == "ANALYZE" else {"ANALYZE", "ANALYSE", "VERBOSE"}
    while words and words[0].upper() in allowed_opts:
        opts.append("ANALYZE" if words[0].upper() == "ANALYSE" else words[0].upper())
        words = words[1:]
    if words and words[0].upper() in ("FULL", "FREEZE") or rest.startswith("("):
        raise SqlRejected(f"{verb} options other than {', '.join(sorted(allowed_opts))} are not allowed "
                          f"(VACUUM FULL rewrites tables)")
    names = [w.strip() for w in " ".join(words).split(",")] if words else []
    quoted = []
    for name in names:
        q = _QNAME.match(name)
        if not q:
            raise SqlRejected(f"{verb} takes plain table names (schema.table); got {name!r}")
        parts = [p.strip('"') for p in q.groups() if p]
        if parts[-1].lower().startswith(_DENIED_NAME_PREFIXES):
            raise SqlRejected(f"{verb} of system catalog '{name}' is not allowed")
        quoted.append(".".join(exp.to_identifier(p, quoted=True).sql(dialect) for p in parts))
    if dialect == "duckdb" and verb == "VACUUM" and len(quoted) > 1:
        raise SqlRejected("VACUUM takes one table on DuckDB (and a document may run on either warehouse): "
                          "name one table, or none")
    return " ".join([verb, *dict.fromkeys(opts)]) + (" " + ", ".join(quoted) if quoted else "")
