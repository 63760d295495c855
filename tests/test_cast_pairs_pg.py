"""A cast op between types no value converts between (bool to float, date to int, int to date, ...) is a
validation error naming the op's `to`, as PostgreSQL has no such cast; found by a probe: they validated and then
sent every row to the DLQ as "cannot convert". Every pair refused here is refused by PostgreSQL too, and every
pair of these types that PostgreSQL casts still validates."""
import os

import pytest

from ir_compiler.ops import OPS
from ir_compiler.ops.cast import _NO_CAST
from ir_compiler.ops.common import OpTypeError
from ir_compiler.models.ops import Cast
from ir_compiler.types import Field, Schema, parse_type

TYPES = {"int": "integer",  # PostgreSQL casts boolean to and from int4 only
         "float": "float8", "decimal": "numeric(10,2)", "bool": "boolean", "date": "date",
         "timestamp": "timestamp", "string": "text"}
IR = {"decimal": "decimal(10,2)"}
SAMPLE = {"int": "1", "float": "1.5::float8", "decimal": "1.50::numeric(10,2)", "bool": "true",
          "date": "DATE '2024-01-02'", "timestamp": "TIMESTAMP '2024-01-02 03:00'", "string": "'1'"}


@pytest.mark.parametrize("src", sorted(TYPES))
@pytest.mark.parametrize("dst", sorted(TYPES))
def test_refused_exactly_where_postgresql_has_no_cast(src, dst):
    op = Cast(field="v", to=IR.get(dst, dst), onError="fail")
    try:
        OPS["cast"].schema(op, Schema([Field("v", parse_type(IR.get(src, src)))]))
        ours = "ok"
    except OpTypeError as exc:
        assert exc.field == "to" and "no value of one is a value of the other" in str(exc)
        ours = "refused"
    assert ours == ("refused" if (src, dst) in _NO_CAST else "ok")
    url = os.environ.get("FLOW_BEAM_PG_URL")
    if not url:
        return
    import psycopg
    with psycopg.connect(url, autocommit=True) as con:
        try:
            con.execute(f"SELECT ({SAMPLE[src]})::{TYPES[dst]}")
            pg = "ok"
        except psycopg.errors.CannotCoerce:
            pg = "refused"
        except psycopg.Error:
            pg = "ok"  # a cast that exists but fails for this value (e.g. '1' as a date)
    assert ours == pg, (src, dst)
