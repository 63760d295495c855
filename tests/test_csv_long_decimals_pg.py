"""A CSV/TSV text with more fraction digits than the declared decimal's scale is rounded as PostgreSQL's numeric
input rounds it, however many digits it has; found by a probe: `1.2349999999999999999` into decimal(10,2) and
`0.00000000005` into decimal(38,10) went to the DLQ (the vectorised parse holds 18 extra digits)."""
import os

import pyarrow as pa
import pytest

from connectors.formats import convert_column
from ir_compiler.types import parse_type

CASES = [("decimal(10,2)", ["1.2349999999999999999", "1.235", "-1.235", "1.225", "0.005", "-0.0049999999999999999999"]),
         ("decimal(38,10)", ["0.00000000005", "-0.00000000005", "0.12345678901234567890123",
                             "1234567890123456789012345678.12345678905", "99999999999999999999999999999999999999",
                             "12345678901234567890123456789.123"])]


@pytest.mark.parametrize("type_text, texts", CASES)
def test_rounded_as_postgresql_numeric_input(type_text, texts):
    out, failed = convert_column(pa.array(texts), parse_type(type_text))
    ours = [None if failed is not None and failed[i].as_py() else str(out[i].as_py()) for i in range(len(texts))]
    url = os.environ.get("FLOW_BEAM_PG_URL")
    if not url:
        pytest.skip("PostgreSQL not running: bash scripts/postgres.sh start")
    import psycopg
    pg = []
    with psycopg.connect(url, autocommit=True) as con:
        for t in texts:
            try:
                pg.append(str(con.execute(f"SELECT %s::{type_text.replace('decimal', 'numeric')}", [t]).fetchone()[0]))
            except psycopg.Error:
                pg.append(None)
    from decimal import Decimal
    assert [None if v is None else Decimal(v) for v in ours] == [None if v is None else Decimal(v) for v in pg]
