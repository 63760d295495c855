"""add_field with a decimal type takes the constant from its digits as written (PostgreSQL's text-to-numeric
rounding), never through a float: 1234567890.12345678901 as decimal(38,11) was stored as 1234567890.12345671654."""
import decimal
import json

import pyarrow as pa
import pytest

from ir_compiler.ops.common import OpTypeError
from ir_compiler.loader import JsonFloat
from ir_compiler.ops import columns


class _Op:
    op, field = "add_field", "p"

    def __init__(self, value, type_):
        self.value, self.type = value, type_


@pytest.mark.parametrize("raw,type_,want", [
    ("1234567890.12345678901", "decimal(38,11)", "1234567890.12345678901"),
    ("0.125", "decimal(5,2)", "0.13"),  # PostgreSQL rounds half away from zero
    ("-0.125", "decimal(5,2)", "-0.13"),
    ("1e-3", "decimal(10,4)", "0.0010"),
    ("12345678901234567890123456789012345678", "decimal(38,0)", "12345678901234567890123456789012345678"),
    ('"99999999999999999999.99"', "decimal(22,2)", "99999999999999999999.99"),  # a string: exact too
])
def test_a_decimal_constant_is_exact(raw, type_, want):
    value = json.loads(raw, parse_float=JsonFloat)
    op = _Op(value, type_)
    got = columns.add_field_apply(op, pa.table({"x": [1, 2]})).table.column("p").to_pylist()
    assert got == [decimal.Decimal(want)] * 2


def test_a_decimal_constant_that_does_not_fit_is_refused_at_the_value():
    with pytest.raises(OpTypeError) as info:
        columns.add_field_schema(_Op(json.loads("123456.7", parse_float=JsonFloat), "decimal(5,2)"), None)
    assert info.value.field == "value"
