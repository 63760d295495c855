"""map_values: the column type the schema promises is the type the run writes, for every kind of mapping value,
and keys match the column's values as PostgreSQL prints them. Found by a probe: int/bool mapping values crashed
the run with Arrow's "Failed to parse string" (the unmapped values were cast to int), a mixed mapping crashed,
an int column mapped to floats was planned as text and stored as DOUBLE, and a timestamp key written as
PostgreSQL prints it ('2024-01-05 10:00:00') matched nothing (Arrow prints '2024-01-05 10:00:00.000000')."""
import datetime as dt
import os

import pyarrow as pa
import pytest

from ir_compiler.models.ops import MapValues
from ir_compiler.ops import OPS
from ir_compiler.types import FLOAT, INT, STRING, TIMESTAMP, Field, Schema, to_arrow

CASES = [  # column type, values, mapping, default, output
    (STRING, ["a", "b", "zzz", None, ""], {"a": 1, "b": 2}, None, None),
    (STRING, ["a", "b", "zzz", None, ""], {"a": 1, "b": 2}, None, "code"),
    (STRING, ["a", "b", "zzz", None], {"a": 1, "b": "x"}, None, None),
    (STRING, ["a", "b", "zzz", None], {"a": True, "b": False}, None, None),
    (STRING, ["a", "b", "zzz", None], {"a": True, "b": False}, False, None),
    (INT, [1, 2, 3, None], {"1": 1.5}, None, None),
    (INT, [1, 2, 3, None], {"1": 10, "2": 20}, None, None),
    (STRING, ["a", "b", "c", None], {"a": 1, "b": 2.5}, 0, None),
    (STRING, ["a", "b", "c"], {"a": None, "b": "y"}, "d", "o"),
]


@pytest.mark.parametrize("ftype, values, mapping, default, output", CASES)
def test_the_written_type_is_the_planned_type(ftype, values, mapping, default, output):
    op = MapValues(field="v", mapping=mapping, default=default, output=output)
    schema = OPS["map_values"].schema(op, Schema([Field("v", ftype)]))
    table = pa.table({"v": pa.array(values, to_arrow(ftype))})
    out = OPS["map_values"].apply(op, table).table.column(output or "v")
    planned = schema[output or "v"].type
    assert out.type == to_arrow(planned), (out.type, planned)
    got = out.to_pylist()
    for v, g in zip(values, got):
        key = None if v is None else (v if isinstance(v, str) else str(v))
        if key in mapping:
            want = mapping[key]
        elif default is not None:
            want = default
        else:
            want = v
        if planned == STRING and want is not None and not isinstance(want, str):
            want = {True: "true", False: "false"}.get(want, want) if isinstance(want, bool) else str(want)
        if planned == FLOAT and want is not None:
            want = float(want)
        assert g == want, (v, g, want)


def test_keys_match_the_postgresql_text_of_the_value():
    """The key is the value as PostgreSQL prints it (checked against PostgreSQL when it runs)."""
    table = pa.table({"ts": pa.array([dt.datetime(2024, 1, 5, 10), dt.datetime(2024, 1, 5, 10, 0, 0, 500000)],
                                     to_arrow(TIMESTAMP)),
                      "f": pa.array([1e-05, 1e16], to_arrow(FLOAT))})
    op = MapValues(field="ts", mapping={"2024-01-05 10:00:00": "hit", "2024-01-05 10:00:00.5": "half"},
                   default="miss")
    assert OPS["map_values"].apply(op, table).table.column("ts").to_pylist() == ["hit", "half"]
    op = MapValues(field="f", mapping={"1e-05": "small", "1e+16": "big"}, default="miss")
    assert OPS["map_values"].apply(op, table).table.column("f").to_pylist() == ["small", "big"]
    url = os.environ.get("FLOW_BEAM_PG_URL")
    if url:
        import psycopg
        with psycopg.connect(url) as con:
            row = con.execute("SELECT '2024-01-05 10:00:00'::timestamp::text, "
                              "'2024-01-05 10:00:00.5'::timestamp::text, 1e-05::float8::text, "
                              "1e16::float8::text").fetchone()
        assert list(row) == ["2024-01-05 10:00:00", "2024-01-05 10:00:00.5", "1e-05", "1e+16"]
