#!/usr/bin/env bash
# Set up flow-beam and run the shipped example end to end: CSV files → transform → validate → branch →
# aggregate → DuckDB tables + a JSONL file, printing the per-node result table.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/bootstrap.sh" | tail -n 1)"
WORK="${1:-$(mktemp -d -t flow-beam-demo-XXXX)}"
mkdir -p "$WORK"
rm -rf "$WORK/data" && cp -r "$ROOT/examples/orders/data" "$WORK/data"
cd "$WORK"
echo "== validate"
"$VENV/bin/flow-beam" validate "$ROOT/examples/orders/pipeline.json" --param "input_dir=$WORK/data/"
echo "== plan"
"$VENV/bin/flow-beam" plan "$ROOT/examples/orders/pipeline.json" --param "input_dir=$WORK/data/"
echo "== run"
set +e
"$VENV/bin/flow-beam" run "$ROOT/examples/orders/pipeline.json" --param "input_dir=$WORK/data/" \
  --warehouse "duckdb://$WORK/warehouse.duckdb" --result-file "$WORK/result.json"
code=$?
set -e
echo "== tables in $WORK/warehouse.duckdb"
"$VENV/bin/python" - "$WORK/warehouse.duckdb" <<'PY'
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
for (schema, table) in con.execute("select table_schema, table_name from information_schema.tables order by 1, 2").fetchall():
    n = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
    print(f"  {schema}.{table}: {n} rows")
print(con.execute('select country, orders, revenue from "public"."country_revenue" order by revenue desc').fetchall())
PY
echo "run result: $WORK/result.json (exit code $code: 0 completed, 2 completed_with_errors, 1 failed)"
[ "$code" -ne 1 ]
