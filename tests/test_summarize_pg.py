"""The summarize op against PostgreSQL over generated columns (NULLs, negatives, decimals, dates, timestamps with
fractions, unicode text, booleans): count = rows, nulls = NULLs among them, min/max printed as PostgreSQL prints
them (text compared in byte order: COLLATE "C"), mean over the non-NULL values, distinct = distinct non-NULL
values. The table is split into several batches, so partials are merged as on a real run."""
import datetime as dt
import decimal
import random

import pyarrow as pa
import pytest

from ir_compiler.ops import sets

COLUMNS = {
    "i": ("bigint", pa.int64(), lambda r: r.randint(-10**12, 10**12)),
    "f": ("double precision", pa.float64(), lambda r: r.choice([0.1, -2.5, 1e20, 3.0, r.uniform(-1e6, 1e6)])),
    "d": ("numeric(12,3)", pa.decimal128(12, 3),
          lambda r: decimal.Decimal(r.randint(-10**9, 10**9)) / 1000),
    "day": ("date", pa.date32(), lambda r: dt.date(2000, 1, 1) + dt.timedelta(days=r.randint(0, 20000))),
    "ts": ("timestamp", pa.timestamp("us"), lambda r: dt.datetime(2020, 1, 1) + dt.timedelta(
        microseconds=r.choice([0, 500000, 123456]) + 10**6 * r.randint(0, 10**8))),
    "s": ("text", pa.string(), lambda r: r.choice(["Alice", "bob", "émile", "Zoë", "名前", "", "a b", "10"])),
    "b": ("boolean", pa.bool_(), lambda r: r.random() < 0.5),
}


class _Op:
    fields = list(COLUMNS)
    stats = ["count", "nulls", "min", "max", "mean", "distinct"]


@pytest.mark.parametrize("seed", range(4))
def test_summarize_equals_postgresql(seed):
    from pg_util import fresh_database
    import psycopg

    rnd = random.Random(seed)
    n = rnd.randint(1, 40)
    data = {c: [None if rnd.random() < 0.2 else gen(rnd) for _ in range(n)] for c, (_, _, gen) in COLUMNS.items()}
    table = pa.table({c: pa.array(data[c], COLUMNS[c][1]) for c in COLUMNS})
    cuts = sorted({0, n, *(rnd.randint(0, n) for _ in range(2))})
    parts = [sets.summarize_partial(_Op, table.slice(a, b - a)) for a, b in zip(cuts, cuts[1:])]
    merged = parts[0]
    for p in parts[1:]:
        merged = sets.summarize_merge(merged, p)
    ours = {r["field"]: r for r in sets.summarize_final(_Op, merged).to_pylist()}
    with fresh_database() as url, psycopg.connect(url) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TABLE t (" + ", ".join(f"{c} {t}" for c, (t, _, _) in COLUMNS.items()) + ")")
        with con.cursor().copy("COPY t FROM STDIN") as copy:
            for row in zip(*data.values()):
                copy.write_row(row)
        for c, (pg_type, _, _) in COLUMNS.items():
            text = f'{c}::text COLLATE "C"' if pg_type != "boolean" else f"{c}::int"
            mn, mx = (f"min({text})", f"max({text})")
            avg = f"avg({c})" if pg_type not in ("date", "timestamp", "text", "boolean") else "NULL"
            got = con.execute(f"SELECT count(*), count(*) - count({c}), {mn}, {mx}, {avg}::float8, "
                              f"count(DISTINCT {c}) FROM t").fetchone()
            count, nulls, lo, hi, mean, distinct = got
            if pg_type == "boolean":  # PostgreSQL has no min/max of boolean: false < true as 0 < 1
                lo, hi = (None if v is None else ("true" if v else "false") for v in (lo, hi))
            elif pg_type not in ("text",):  # PostgreSQL's order of the values, printed as text
                lo, hi = con.execute(f"SELECT min({c})::text, max({c})::text FROM t").fetchone()
            mine = ours[c]
            assert (mine["count"], mine["nulls"], mine["distinct"]) == (count, nulls, distinct), c
            assert (mine["min"], mine["max"]) == (lo, hi), c
            if mean is None:
                assert mine["mean"] is None, c
            else:
                assert mine["mean"] == pytest.approx(mean, rel=1e-12), c
