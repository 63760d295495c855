"""Differential run: flow-beam expressions and casts against a real PostgreSQL server.

    eval "$(bash scripts/services.sh env)"        # FLOW_BEAM_PG_URL
    PYTHONPATH=. python bench/expr_differential.py --expressions 20000 --casts 5000 --seed 1

Random typed tables (NULLs, unicode, negative and huge numbers, decimals, dates, timestamps, timestamptz, JSON) and
random well-typed expressions over the whole supported grammar (tests/expr_oracle.py) are evaluated by PostgreSQL
(``SELECT expr FROM t ORDER BY rowid``, session TimeZone UTC) and by both flow-beam back-ends; every disagreement
(different values or NULLs, an error on one side only, a rejected expression) is printed and counted. Deliberate
differences (division by zero → NULL, decimal division in double precision) are encoded in the PostgreSQL side.
Exit status 1 when anything disagrees.
"""
from __future__ import annotations

import argparse
import collections
import os
import pathlib
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import expr_oracle as eo  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--expressions", type=int, default=20000)
    ap.add_argument("--casts", type=int, default=5000)
    ap.add_argument("--rows", type=int, default=12, help="rows per random table")
    ap.add_argument("--per-table", type=int, default=50, help="expressions per random table")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=40, help="disagreements printed in full")
    args = ap.parse_args(argv)
    base = os.environ.get("FLOW_BEAM_PG_URL")
    if not base:
        print("FLOW_BEAM_PG_URL is not set: eval \"$(bash scripts/services.sh env)\"", file=sys.stderr)
        return 2
    import psycopg
    name = f"fbexpr_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        oracle = eo.Oracle(base.rsplit("/", 1)[0] + "/" + name)
        try:
            return _run(oracle, args)
        finally:
            oracle.close()
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(oracle, args) -> int:
    rnd = eo.new_random(args.seed)
    gen = eo.Gen(rnd)
    started = time.monotonic()
    bad, kinds, outcomes, shown = 0, collections.Counter(), collections.Counter(), 0
    done, expr_documented = 0, 0
    while done < args.expressions:
        rows = gen.rows(args.rows)
        oracle.load(rows)
        table = eo.arrow_table(rows)
        for _ in range(min(args.per_table, args.expressions - done)):
            kind, ours, pg = gen.any_expr()
            pg_result = oracle.run(pg)
            our_result = eo.evaluate_ours(ours, rows, table)
            outcomes[(pg_result[0], our_result[0])] += 1
            why = eo.compare(pg_result, our_result)
            done += 1
            if why == "documented":
                expr_documented += 1
            elif why:
                bad += 1
                kinds[kind] += 1
                if shown < args.show:
                    shown += 1
                    print(f"DISAGREE [{kind}] {ours}\n   pg: {pg}\n   {why}\n   rows: {eo.json_safe(rows)[:600]}\n")
    expr_bad = bad
    cast_bad, documented = 0, 0
    targets = eo.CAST_TARGETS
    inputs = eo.cast_inputs(rnd)
    for k in range(args.casts):
        target, pg_type = targets[k % len(targets)]
        value = inputs[rnd.randint(0, len(inputs) - 1)]
        why = eo.check_cast(oracle, target, pg_type, value)
        if why == "documented":
            documented += 1
        elif why:
            cast_bad += 1
            if shown < args.show:
                shown += 1
                print(f"DISAGREE [cast] {why}")
    took = time.monotonic() - started
    print(f"expressions: {args.expressions}, disagreements: {expr_bad} {dict(kinds) if kinds else ''} "
          f"(plus {expr_documented} documented rejections)")
    print(f"  outcomes (PostgreSQL, flow-beam): {dict(outcomes)}")
    print(f"casts: {args.casts}, disagreements: {cast_bad} (plus {documented} documented rejections: non-ISO date "
          f"text, NaN/infinity into decimal)")
    print(f"total disagreements: {expr_bad + cast_bad} in {took:.0f}s")
    return 1 if expr_bad + cast_bad else 0


if __name__ == "__main__":
    sys.exit(main())
