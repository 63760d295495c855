"""Aggregates and joins checked differentially against DuckDB, the oracle, on generated inputs.

Each seed generates tables (skewed key domains with NULL keys and duplicates on both sides, ints, floats with
negative zero, decimals, unicode and empty strings, dates, NULLs everywhere), writes them as Parquet (so both
engines read the same typed values), runs one flow-beam document on DirectRunner with many aggregate / join
nodes and compares every target table with DuckDB's SQL over the same files, as multisets of rows.
Exact types (int, decimal, string, date, counts) must be equal; float sums and averages are compared to a
relative 1e-9 (the order of a float sum is not defined in SQL either).
"""
import datetime as dt
import decimal
import math
import os
import random
from collections import Counter

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flow_beam.running import RunOptions, run_document

# FLOW_BEAM_ORACLE_SEEDS=N runs N seeds (a longer search); CI runs three
SEEDS = list(range(11, 11 + int(os.environ.get("FLOW_BEAM_ORACLE_SEEDS", "3"))))
SCHEMA_A = [("k1", "string"), ("k2", "int"), ("i", "int"), ("f", "float"), ("d", "decimal(12,2)"),
            ("s", "string"), ("dt", "date")]
ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "decimal(12,2)": pa.decimal128(12, 2),
         "date": pa.date32()}
STRINGS = ["", "a", "A", "é", "ß", "日本", "a b", "z", "Z", "0", "10", "9", "ﬁ", "\u00e9"]


def gen_table(rng, n, key_domain):
    def maybe(v, p=0.15):
        return None if rng.random() < p else v
    rows = {
        "k1": [maybe(rng.choice(key_domain), 0.1) for _ in range(n)],
        "k2": [maybe(rng.randint(-2, 2), 0.1) for _ in range(n)],
        "i": [maybe(rng.choice([rng.randint(-10**12, 10**12), rng.randint(-5, 5), 0])) for _ in range(n)],
        "f": [maybe(rng.choice([rng.uniform(-1e6, 1e6), -0.0, 0.0, 1.5, rng.random()])) for _ in range(n)],
        "d": [maybe(decimal.Decimal(rng.randint(-10**9, 10**9)).scaleb(-2)) for _ in range(n)],
        "s": [maybe(rng.choice(STRINGS)) for _ in range(n)],
        "dt": [maybe(dt.date(1970, 1, 1) + dt.timedelta(days=rng.randint(-40000, 40000))) for _ in range(n)],
    }
    return pa.table({name: pa.array(rows[name], ARROW[t]) for name, t in SCHEMA_A})


def source(node_id, path, schema):
    return {"id": node_id, "kind": "source", "connector": "local_fs",
            "config": {"path": str(path), "format": "parquet"},
            "schema": [{"name": n, "type": t} for n, t in schema]}


def run_doc(tmp_path, nodes):
    wh = tmp_path / "w.duckdb"
    doc = {"kind": "pipeline", "version": "1.0", "id": "oracle", "nodes": nodes}
    result = run_document(doc, RunOptions(warehouse=f"duckdb://{wh}"))
    assert result.status == "completed", result.error
    return duckdb.connect(str(wh), read_only=True)


def norm(v):
    if isinstance(v, float):
        return ("float", v)
    if isinstance(v, (int, decimal.Decimal)) and not isinstance(v, bool):
        return ("num", decimal.Decimal(v).normalize() if v == v else v)
    return ("v", v)


def same_number(a, b):
    """Floats within a relative 1e-9; a decimal average (rounded to its scale) within half a unit of it."""
    if a is None or b is None:
        return a is None and b is None
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    tol = 1e-9 * max(abs(fa), abs(fb))
    for v in (a, b):
        if isinstance(v, decimal.Decimal):
            tol = max(tol, float(decimal.Decimal(1).scaleb(v.as_tuple().exponent)) / 2 * 1.000001)
    return abs(fa - fb) <= tol


def assert_same_rows(got, want, what):
    """Multisets of rows equal: columns holding a float on either side compared as numbers (same_number) after
    matching the rows on the exact columns, every other column exactly (ints and decimals by value)."""
    assert len(got) == len(want), f"{what}: {len(got)} rows, DuckDB {len(want)}"
    width = len(got[0]) if got else 0
    approx = {c for c in range(width) for r in got + want if isinstance(r[c], float)}

    def key(row):
        return tuple(repr(norm(x)) for c, x in enumerate(row) if c not in approx)
    exact_got, exact_want = Counter(key(r) for r in got), Counter(key(r) for r in want)
    assert exact_got == exact_want, f"{what}: rows only in flow-beam {list(exact_got - exact_want)[:3]}, " \
                                    f"only in DuckDB {list(exact_want - exact_got)[:3]}"
    if approx:
        def full(row):
            return key(row) + tuple(repr(norm(row[c])) if row[c] is not None else "" for c in sorted(approx))
        for g, w in zip(sorted(got, key=full), sorted(want, key=full)):
            for c in sorted(approx):
                assert same_number(g[c], w[c]), f"{what}: column {c}: {g} vs DuckDB {w}"


AGGS = [  # (node suffix, groupBy, [(field, fn, as)], DuckDB select list)
    ("by_k1", ["k1"], [(None, "count", "n"), ("i", "count", "ni"), ("i", "sum", "si"), ("i", "min", "mi"),
                       ("i", "max", "xi"), ("i", "avg", "ai"), ("d", "sum", "sd"), ("d", "min", "md"),
                       ("d", "max", "xd"), ("s", "min", "ms"), ("s", "max", "xs"), ("s", "count_distinct", "cs"),
                       ("dt", "min", "mdt"), ("dt", "max", "xdt"), ("f", "sum", "sf"), ("f", "min", "mf"),
                       ("f", "max", "xf"), ("f", "avg", "af")],
     "k1, count(*), count(i), sum(i), min(i), max(i), avg(i), sum(d), min(d), max(d), min(s), max(s), "
     "count(DISTINCT s), min(dt), max(dt), sum(f), min(f), max(f), avg(f)"),
    ("by_k1_k2", ["k1", "k2"], [(None, "count", "n"), ("d", "avg", "ad"), ("i", "count_distinct", "ci"),
                                ("dt", "count_distinct", "cdt"), ("d", "count_distinct", "cd")],
     "k1, k2, count(*), avg(d), count(DISTINCT i), count(DISTINCT dt), count(DISTINCT d)"),
    ("whole", [], [(None, "count", "n"), ("i", "sum", "si"), ("s", "count_distinct", "cs"), ("d", "sum", "sd"),
                   ("k2", "avg", "a2")],
     "count(*), sum(i), count(DISTINCT s), sum(d), avg(k2)"),
]


@pytest.mark.parametrize("seed", SEEDS)
def test_aggregates_equal_duckdb(tmp_path, seed):
    rng = random.Random(seed)
    (tmp_path / "a").mkdir()
    table = gen_table(rng, rng.randint(200, 900), ["x", "y", "é", "", "Y", "long key " * 3])
    # two files, so partial aggregates are combined across bundles
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), tmp_path / "a" / "part1.parquet")
    pq.write_table(table.slice(half), tmp_path / "a" / "part2.parquet")
    con = run_doc(tmp_path, aggregate_nodes(tmp_path / "a", SCHEMA_A, AGGS))
    assert_aggregates_equal(con, tmp_path / "a", AGGS, f"seed {seed}")


def aggregate_nodes(folder, schema, aggs_list) -> list[dict]:
    """A source of the Parquet files in ``folder`` and, per (name, groupBy, aggregations, _), an aggregate node
    and its table target public.<name>."""
    nodes = [source("a", folder, schema)]
    for name, group_by, aggs, _ in aggs_list:
        nodes.append({"id": f"agg_{name}", "kind": "transform", "input": "a", "ops": [
            {"op": "aggregate", "groupBy": group_by,
             "aggregations": [{**({"field": f} if f else {}), "fn": fn, "as": as_} for f, fn, as_ in aggs]}]})
        nodes.append({"id": f"t_{name}", "kind": "target", "input": f"agg_{name}", "schema": f"public.{name}",
                      "lineage": False})
    return nodes


def assert_aggregates_equal(con, folder, aggs_list, what, key=lambda k: k, row=lambda r: r) -> None:
    """Each public.<name> equals DuckDB's ``select <select> ... group by`` over the same files (closes ``con``);
    ``key`` writes a group key column as selected, ``row`` normalises a stored row."""
    oracle = duckdb.connect()
    files = str(folder / "*.parquet")
    try:
        for name, group_by, aggs, select in aggs_list:
            cols = [key(k) for k in group_by] + [a[2] for a in aggs]
            got = [row(r) for r in con.execute(f"select {', '.join(cols)} from public.{name}").fetchall()]
            group = f" GROUP BY {', '.join(group_by)}" if group_by else ""
            want = oracle.execute(f"select {select} from read_parquet('{files}'){group}").fetchall()
            assert_same_rows(got, want, f"{what} aggregate {name}")
    finally:
        con.close()


def test_aggregate_of_no_rows_equals_duckdb(tmp_path):
    """A filter that keeps nothing: the whole-input aggregate is one row (count 0, sums NULL) as in SQL; a grouped
    one has no rows."""
    (tmp_path / "a").mkdir()
    pq.write_table(gen_table(random.Random(1), 50, ["x"]), tmp_path / "a" / "p.parquet")
    nodes = [source("a", tmp_path / "a", SCHEMA_A),
             {"id": "none", "kind": "transform", "input": "a", "ops": [{"op": "filter", "condition": "1 = 0"}]}]
    for name, group_by in (("whole", []), ("grouped", ["k1"])):
        nodes.append({"id": f"agg_{name}", "kind": "transform", "input": "none", "ops": [
            {"op": "aggregate", "groupBy": group_by, "aggregations": [
                {"fn": "count", "as": "n"}, {"field": "i", "fn": "sum", "as": "si"},
                {"field": "s", "fn": "max", "as": "xs"}]}]})
        nodes.append({"id": f"t_{name}", "kind": "target", "input": f"agg_{name}", "schema": f"public.{name}",
                      "lineage": False})
    con = run_doc(tmp_path, nodes)
    oracle = duckdb.connect()
    files = str(tmp_path / "a" / "*.parquet")
    try:
        want = oracle.execute(f"select count(*), sum(i), max(s) from read_parquet('{files}') where 1 = 0").fetchall()
        assert_same_rows(con.execute("select n, si, xs from public.whole").fetchall(), want, "empty whole")
        want = oracle.execute(f"select k1, count(*), sum(i), max(s) from read_parquet('{files}') where 1 = 0 "
                              f"group by k1").fetchall()
        assert_same_rows(con.execute("select k1, n, si, xs from public.grouped").fetchall(), want, "empty grouped")
    finally:
        con.close()


def utc_naive(row):
    """Timestamps as naive UTC (the warehouse hands TIMESTAMPTZ back in its own zone)."""
    return tuple(v.astimezone(dt.timezone.utc).replace(tzinfo=None)
                 if isinstance(v, dt.datetime) and v.tzinfo else v for v in row)


FL_COLS = ["i", "d", "s", "dt", "f", "b", "ts"]
FL_AGGS = [  # (node suffix, groupBy, [(field, fn, as)], DuckDB select list); DuckDB orders first/last by rid
    ("fl_whole", [], [(c, fn, f"{fn}_{c}") for c in FL_COLS for fn in ("first", "last")],
     ", ".join(f"{fn}({c} ORDER BY rid)" for c in FL_COLS for fn in ("first", "last"))),
    ("fl_by_k1", ["k1"], [(c, fn, f"{fn}_{c}") for c in FL_COLS for fn in ("first", "last")],
     "k1, " + ", ".join(f"{fn}({c} ORDER BY rid)" for c in FL_COLS for fn in ("first", "last"))),
    ("by_dt", ["dt"], [(None, "count", "n"), ("i", "sum", "si"), ("d", "last", "ld")],
     "dt, count(*), sum(i), last(d ORDER BY rid)"),
    ("by_b_ts_d", ["b", "ts", "d"], [(None, "count", "n"), ("s", "first", "fs")],
     "b, ts, d, count(*), first(s ORDER BY rid)"),
    ("by_f", ["f"], [(None, "count", "n"), ("s", "count_distinct", "cs")],
     "f + 0.0, count(*), count(DISTINCT s)"),
    ("cd_f", [], [(None, "count", "n"), ("f", "count_distinct", "cf")], "count(*), count(DISTINCT f)"),
    ("cd_f_by_k2", ["k2"], [("f", "count_distinct", "cf")], "k2, count(DISTINCT f)"),
]


@pytest.mark.parametrize("seed", SEEDS)
def test_first_last_and_keys_of_every_type_equal_duckdb(tmp_path, seed):
    """first/last of every column type, NULLs included (DuckDB's first/last(x ORDER BY rid)), over three files
    whose last rows are NULL (the partials of the files are combined: a trailing NULL is the last value); group
    keys and count_distinct of dates, bools, timestamps, decimals and floats, where -0.0 and 0.0 are one value."""
    rng = random.Random(seed)
    (tmp_path / "a").mkdir()
    table = gen_table(rng, rng.randint(200, 600), ["x", "y", "é", ""])
    n = table.num_rows
    table = table.append_column("b", pa.array([None if rng.random() < 0.15 else rng.random() < 0.5
                                               for _ in range(n)], pa.bool_()))
    table = table.append_column("ts", pa.array([None if rng.random() < 0.15 else dt.datetime(2024, 1, 1)
                                                + dt.timedelta(seconds=rng.choice([0, 1, 3600, rng.randint(0, 10**8)]))
                                                for _ in range(n)], pa.timestamp("us")))
    table = table.append_column("rid", pa.array(range(n), pa.int64()))
    cuts = sorted(rng.sample(range(1, n - 1), 2))
    for j, (a, b) in enumerate(zip([0] + cuts, cuts + [n])):
        part = table.slice(a, b - a).to_pylist()
        part[-1].update({c: None for c in FL_COLS})  # every file ends with a NULL row
        pq.write_table(pa.Table.from_pylist(part, table.schema), tmp_path / "a" / f"part{j}.parquet")
    schema = SCHEMA_A + [("b", "bool"), ("ts", "timestamp"), ("rid", "int")]
    con = run_doc(tmp_path, aggregate_nodes(tmp_path / "a", schema, FL_AGGS))
    assert_aggregates_equal(con, tmp_path / "a", FL_AGGS, f"seed {seed}",
                            key=lambda k: f"{k} + 0.0" if k == "f" else k, row=utc_naive)


FLOAT_KEYS = [0.0, -0.0, float("nan"), 1.5, None, 2.0, -1.5]
DATE_KEYS = [dt.date(2024, 2, 29), dt.date(1969, 12, 31), dt.date(1970, 1, 1), None, dt.date(2001, 1, 1)]


@pytest.mark.parametrize("seed", SEEDS)
def test_float_and_date_keys_join_as_duckdb(tmp_path, seed):
    """Joins on a float key (-0.0 matches 0.0 as in SQL, NaN matches NaN as in DuckDB, NULL nothing), on a date
    key, and on both, of every type, shuffled and broadcast; the rows are told apart by their ids."""
    rng = random.Random(seed)
    sides = {}
    for name, n in (("l", rng.randint(30, 80)), ("r", rng.randint(10, 40))):
        sides[name] = pa.table({
            "id": pa.array(range(n), pa.int64()),
            "k": pa.array([rng.choice(FLOAT_KEYS) for _ in range(n)], pa.float64()),
            "dt": pa.array([rng.choice(DATE_KEYS) for _ in range(n)], pa.date32()),
            "v": pa.array([rng.randint(-9, 9) for _ in range(n)], pa.int64())})
        (tmp_path / name).mkdir()
        pq.write_table(sides[name], tmp_path / name / f"{name}.parquet")
    schema = [("id", "int"), ("k", "float"), ("dt", "date"), ("v", "int")]
    nodes = [source("l", tmp_path / "l", schema), source("r", tmp_path / "r", schema)]
    cases = add_joins(nodes, (["k"], ["dt"], ["k", "dt"]), lambda keys: "_".join(keys))
    con = run_doc(tmp_path, nodes)
    oracle = duckdb.connect()
    lf, rf = str(tmp_path / "l" / "l.parquet"), str(tmp_path / "r" / "r.parquet")
    try:
        for node, jtype, keys in cases:
            other = [c for c, _ in schema if c not in keys]
            cols, select = keys + other, keys + [f"l.{c}" for c in other]
            if jtype not in ("semi", "anti"):
                cols, select = cols + [f"r_{c}" for c in other], select + [f"r.{c}" for c in other]
            got = con.execute(f"select {', '.join(cols)} from public.{node}").fetchall()
            want = oracle.execute(f"select {', '.join(select)} from read_parquet('{lf}') l {JOIN_TYPES[jtype]} "
                                  f"read_parquet('{rf}') r USING ({', '.join(keys)})").fetchall()
            assert_same_rows(got, want, f"seed {seed} {node}")
    finally:
        con.close()


def add_joins(nodes, key_sets, suffix) -> list[tuple]:
    """A join of inputs l and r (prefix r_) and its table target for every join type, strategy and key set,
    appended to ``nodes``; returns (node id, join type, keys) per case."""
    cases = []
    for jtype in JOIN_TYPES:
        for strategy in ("shuffle", "broadcast"):
            for keys in key_sets:
                node = f"j_{jtype}_{strategy}_{suffix(keys)}"
                cases.append((node, jtype, keys))
                nodes.append({"id": node, "kind": "join", "inputs": ["l", "r"], "type": jtype, "on": keys,
                              "strategy": strategy, "prefixes": {"r": "r_"}})
                nodes.append({"id": f"t_{node}", "kind": "target", "input": node, "schema": f"public.{node}",
                              "lineage": False})
    return cases


SCHEMA_B = [("k1", "string"), ("k2", "int"), ("v", "decimal(12,2)"), ("label", "string")]
JOIN_TYPES = {"inner": "JOIN", "left": "LEFT JOIN", "right": "RIGHT JOIN", "full": "FULL JOIN",
              "semi": "SEMI JOIN", "anti": "ANTI JOIN"}


@pytest.mark.parametrize("seed", SEEDS)
def test_joins_equal_duckdb(tmp_path, seed):
    rng = random.Random(seed)
    domain = ["x", "y", "z", "é", "", "w"]
    left = gen_table(rng, rng.randint(100, 400), domain).select(["k1", "k2", "i", "s"])
    n = rng.randint(20, 120)
    right = pa.table({
        "k1": pa.array([None if rng.random() < 0.1 else rng.choice(domain + ["only-right"]) for _ in range(n)]),
        "k2": pa.array([None if rng.random() < 0.1 else rng.randint(-3, 3) for _ in range(n)], pa.int64()),
        "v": pa.array([decimal.Decimal(rng.randint(-10**6, 10**6)).scaleb(-2) for _ in range(n)],
                      pa.decimal128(12, 2)),
        "label": pa.array([rng.choice(STRINGS) for _ in range(n)])})
    for name, t in (("l", left), ("r", right)):
        (tmp_path / name).mkdir()
        pq.write_table(t, tmp_path / name / f"{name}.parquet")
    schema_l = [("k1", "string"), ("k2", "int"), ("i", "int"), ("s", "string")]
    nodes = [source("l", tmp_path / "l", schema_l), source("r", tmp_path / "r", SCHEMA_B)]
    cases = add_joins(nodes, (["k1"], ["k1", "k2"]), lambda keys: str(len(keys)))
    con = run_doc(tmp_path, nodes)
    oracle = duckdb.connect()
    lf, rf = str(tmp_path / "l" / "l.parquet"), str(tmp_path / "r" / "r.parquet")
    try:
        for node, jtype, keys in cases:
            other = [c for c, _ in schema_l if c not in keys]
            if jtype in ("semi", "anti"):
                cols, select = keys + other, ", ".join(keys + [f"l.{c}" for c in other])
            else:
                rcols = [c for c, _ in SCHEMA_B if c not in keys]
                cols = keys + other + [f"r_{c}" for c in rcols]
                select = ", ".join(keys + [f"l.{c}" for c in other] + [f"r.{c}" for c in rcols])
            got = con.execute(f"select {', '.join(cols)} from public.{node}").fetchall()
            want = oracle.execute(f"select {select} from read_parquet('{lf}') l {JOIN_TYPES[jtype]} "
                                  f"read_parquet('{rf}') r USING ({', '.join(keys)})").fetchall()
            assert_same_rows(got, want, f"seed {seed} {node}")
    finally:
        con.close()


DEDUPES = [  # (node suffix, keys, keep, orderBy, DuckDB ORDER BY of the row kept first)
    ("first_input", ["k1"], "first", None, "rid"),
    ("last_input", ["k1", "k2"], "last", None, "rid DESC"),
    ("first_by_i", ["k1"], "first", "i", "i ASC NULLS LAST, rid"),
    ("last_by_i", ["k2"], "last", "i", "i IS NULL DESC, i DESC, rid DESC"),
    ("first_by_desc_dt", ["k1"], "first", "-dt", "dt DESC NULLS LAST, rid"),
    ("first_by_f_s", ["k2"], "first", ["f", "-s"], "f ASC NULLS LAST, s DESC NULLS LAST, rid"),
]


@pytest.mark.parametrize("seed", SEEDS)
def test_deduplicate_equals_duckdb(tmp_path, seed):
    """deduplicate keeps the first/last row per key in `orderBy` order (NULLs last, as Arrow and DuckDB sort),
    ties broken by input order; DuckDB: row_number() over the same order, rows numbered in file order."""
    rng = random.Random(seed)
    (tmp_path / "a").mkdir()
    table = gen_table(rng, rng.randint(200, 600), ["x", "y", "é", ""])
    table = table.append_column("rid", pa.array(range(table.num_rows), pa.int64()))
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), tmp_path / "a" / "part1.parquet")
    pq.write_table(table.slice(half), tmp_path / "a" / "part2.parquet")
    nodes = [source("a", tmp_path / "a", SCHEMA_A + [("rid", "int")])]
    for name, keys, keep, order_by, _ in DEDUPES:
        nodes.append({"id": f"d_{name}", "kind": "transform", "input": "a", "ops": [
            {"op": "deduplicate", "keys": keys, "keep": keep, **({"orderBy": order_by} if order_by else {})}]})
        nodes.append({"id": f"t_{name}", "kind": "target", "input": f"d_{name}", "schema": f"public.{name}",
                      "lineage": False})
    con = run_doc(tmp_path, nodes)
    oracle = duckdb.connect()
    files = str(tmp_path / "a" / "*.parquet")
    cols = ", ".join(n for n, _ in SCHEMA_A) + ", rid"
    try:
        for name, keys, _, _, order in DEDUPES:
            got = con.execute(f"select {cols} from public.{name}").fetchall()
            want = oracle.execute(f"select {cols} from read_parquet('{files}') qualify row_number() over "
                                  f"(partition by {', '.join(keys)} order by {order}) = 1").fetchall()
            assert_same_rows(got, want, f"seed {seed} deduplicate {name}")
    finally:
        con.close()


WINDOWS = [  # (name, window, DuckDB query over rows(page, ts, ms) giving window_start, window_end, page, n, s)
    ("fixed", {"type": "fixed", "size": "5m"},
     "select w, w + 300, page, count(*), sum(ms) from (select *, ts // 300 * 300 as w from rows) group by all"),
    ("sliding", {"type": "sliding", "size": "30m", "period": "10m"},
     "select w, w + 1800, page, count(*), sum(ms) from (select *, ts // 600 * 600 - k * 600 as w "
     "from rows, range(0, 3) t(k)) group by all"),
    # Beam's sessions on DirectRunner: a row joins the session when it is less than `gap` after the previous one
    ("session", {"type": "session", "gap": "5m"},
     "select min(ts), max(ts) + 300, page, count(*), sum(ms) from (select *, sum(new) over (partition by page "
     "order by ts rows unbounded preceding) as sid from (select *, coalesce(ts - lag(ts) over (partition by page "
     "order by ts) >= 300, true)::int as new from rows)) group by page, sid"),
]


@pytest.mark.parametrize("seed", SEEDS)
def test_windowed_aggregates_equal_duckdb(tmp_path, seed):
    """Event-time windows on a bounded input (fixed, sliding, session) against DuckDB's GROUP BY over the same
    rows: event times in bursts and gaps around the window and gap sizes, NULL pages and values."""
    rng = random.Random(seed)
    (tmp_path / "in").mkdir()
    base, ts, rows = 1767261600, 1767261600, []
    for _ in range(rng.randint(150, 400)):
        ts += rng.choice([0, 1, rng.randint(1, 299), 299, 300, 301, 600, rng.randint(300, 4000)])
        rows.append({"page": rng.choice(["a", "b", "é", None]), "ts": ts,
                     "ms": None if rng.random() < 0.1 else rng.randint(-1000, 1000)})
    rng.shuffle(rows)  # event time is not file order
    table = pa.Table.from_pylist(rows, pa.schema([("page", pa.string()), ("ts", pa.int64()), ("ms", pa.int64())]))
    pq.write_table(table, tmp_path / "in" / "c.parquet")
    nodes = [{"id": "clicks", "kind": "source", "connector": "local_fs",
              "config": {"path": str(tmp_path / "in"), "format": "parquet"},
              "schema": [{"name": "page", "type": "string"}, {"name": "ts", "type": "int"},
                         {"name": "ms", "type": "int"}],
              "eventTime": {"field": "ts", "format": "epoch_s"}}]
    for name, window, _ in WINDOWS:
        nodes.append({"id": f"agg_{name}", "kind": "transform", "input": "clicks", "ops": [
            {"op": "aggregate", "groupBy": ["page"], "window": window,
             "aggregations": [{"fn": "count", "as": "n"}, {"field": "ms", "fn": "sum", "as": "s"}]}]})
        nodes.append({"id": f"t_{name}", "kind": "target", "input": f"agg_{name}", "schema": f"public.{name}",
                      "lineage": False})
    con = run_doc(tmp_path, nodes)
    oracle = duckdb.connect()
    oracle.register("rows", table)
    epoch = dt.datetime(1970, 1, 1)
    try:
        for name, _, query in WINDOWS:
            got = con.execute(f"select window_start, window_end, page, n, s from public.{name}").fetchall()
            want = [(epoch + dt.timedelta(seconds=a), epoch + dt.timedelta(seconds=b), *rest)
                    for a, b, *rest in oracle.execute(query).fetchall()]
            got = [(a.replace(tzinfo=None) if a else a, b.replace(tzinfo=None) if b else b, *rest)
                   for a, b, *rest in got]
            assert_same_rows(got, want, f"seed {seed} window {name}")
    finally:
        con.close()


def test_integer_sums_near_the_int64_limit(tmp_path):
    """Sums whose partials pass 2^63 but whose totals fit equal DuckDB's (Arrow's int64 sum would wrap around
    silently); a total that does not fit fails the run with an error naming the aggregation, never a wrapped
    value."""
    big = 2**62
    (tmp_path / "a").mkdir()
    schema = pa.schema([("k", pa.string()), ("v", pa.int64())])
    # file 1's partial sum of group x is 2^63 (beyond int64), the total over both files is 5
    pq.write_table(pa.table({"k": ["x", "x", "y"], "v": [big, big, 7]}, schema), tmp_path / "a" / "p1.parquet")
    pq.write_table(pa.table({"k": ["x", "x", "y"], "v": [-big, -big + 5, -big]}, schema),
                   tmp_path / "a" / "p2.parquet")
    nodes = [source("a", tmp_path / "a", [("k", "string"), ("v", "int")]),
             {"id": "agg", "kind": "transform", "input": "a", "ops": [
                 {"op": "aggregate", "groupBy": ["k"], "aggregations": [
                     {"field": "v", "fn": "sum", "as": "s"}, {"field": "v", "fn": "avg", "as": "a"}]}]},
             {"id": "t", "kind": "target", "input": "agg", "schema": "public.sums", "lineage": False}]
    con = run_doc(tmp_path, nodes)
    files = str(tmp_path / "a" / "*.parquet")
    try:
        want = duckdb.connect().execute(f"select k, sum(v), avg(v) from read_parquet('{files}') group by k").fetchall()
        assert_same_rows(con.execute("select k, s, a from public.sums").fetchall(), want, "sums near 2^63")
    finally:
        con.close()
    pq.write_table(pa.table({"k": ["x"], "v": [big]}, schema), tmp_path / "a" / "p3.parquet")  # x: 2^62 + 5
    pq.write_table(pa.table({"k": ["x"], "v": [big]}, schema), tmp_path / "a" / "p4.parquet")  # x: 2^63 + 5
    result = run_document({"kind": "pipeline", "version": "1.0", "id": "oracle", "nodes": nodes},
                          RunOptions(warehouse=f"duckdb://{tmp_path / 'w2.duckdb'}"))
    assert result.status == "failed" and result.nodes["agg"].status == "failed"
    assert "sum of 'v' as 's' does not fit a 64-bit int" in result.error and "decimal(38,0)" in result.error
