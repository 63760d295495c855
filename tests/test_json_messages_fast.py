"""JSON messages of a stream batch (Kafka, Pub/Sub, Kinesis, Pulsar) are read by Arrow's JSON reader in one go
(connectors.codecs.json_batch); the per-message exact path (one exact ``json.loads`` per message) defines the
answer. Differential over generated batches: the same table, values and types, and the same error rows, with the
fast path taken wherever it applies. Also the finding that led here: a decimal in a JSON message went through a
float (12345678901234567.123456789012 stored as 12345678901234568)."""
import decimal
import json
import random
import types

import numpy as np
import pytest

from connectors import codecs
from connectors.codecs import Record, decode_records
from ir_compiler.types import Field, Schema, parse_type

CFG = types.SimpleNamespace(format="json")
SCHEMA = Schema([Field("id", parse_type("int")), Field("name", parse_type("string")),
                 Field("amount", parse_type("decimal(38,12)")), Field("score", parse_type("float")),
                 Field("ok", parse_type("bool")), Field("day", parse_type("date")),
                 Field("at", parse_type("timestamp"))])


def _value(rnd, kind, friendly):
    if rnd.random() < 0.1:
        return None
    if kind == "id":
        return rnd.choice([rnd.randint(-10**6, 10**6), rnd.randint(2**53, 2**62), -2**63, 0])
    if kind == "name":
        return rnd.choice(["plain", "ünïcödé 名前", 'quo"te', "back\\slash", "line\nbreak", "tab\tx", "",
                           "2026-01-02", "2026-01-02T03:04:05", "123", "null", "\u2028sep", "emoji 🙂"])
    if kind == "amount":
        return rnd.choice(["12345678901234567.123456789012", "0.000000000001", "-1.5", "1e-12", "3", "2.50"] + (
            [] if friendly else ["99999999999999999999999999.999999999999"]))  # beyond Arrow's decimal128(38, 18)
    if kind == "score":
        return rnd.choice(["0.1", "-2.5e-7", "-0.0", "3", "123456.789"] + ([] if friendly else ["1e300"]))
    if kind == "ok":
        return rnd.choice([True, False])
    if kind == "day":
        return rnd.choice(["2026-01-02", "1999-12-31", "2000-02-29"])
    return rnd.choice(["2026-01-02T03:04:05", "2026-01-02 03:04:05.123456", "1970-01-01T00:00:00"])


def _message(rnd, i, friendly) -> bytes:
    """A JSON object; ``friendly``: without the values the fast path declines (a float ≥ 2^53 such as 1e300,
    a decimal wider than decimal128(38, 18), an array mixing numbers and objects), so it must take them."""
    parts = []
    for f in SCHEMA:
        if rnd.random() < 0.05:
            continue  # a missing field is null
        v = _value(rnd, f.name, friendly)
        text = "null" if v is None else (v if f.name in ("amount", "score") else json.dumps(v))
        parts.append(f'"{f.name}": {text}')
    if rnd.random() < 0.2:
        parts.append('"extra": {"nested": [1, 2, 3], "x": "y"}' if friendly else
                     '"extra": {"nested": [1, 2, {"x": "y"}]}')
    rnd.shuffle(parts)
    sep = rnd.choice([", ", ","] + ([] if friendly else [",\n  ", " ,\r\n"]))  # pretty-printed: per message
    return ("{" + sep.join(parts) + "}").encode()


def _both(records):
    ords = np.arange(len(records), dtype=np.int64)
    fast = decode_records("src", CFG, SCHEMA, records, ords)
    original = codecs.json_batch
    codecs.json_batch = lambda *a: None
    try:
        exact = decode_records("src", CFG, SCHEMA, records, ords)
    finally:
        codecs.json_batch = original
    return fast, exact


def _rows(table):
    return None if table is None else (table.schema, table.to_pylist())


@pytest.mark.parametrize("seed", range(60))
def test_fast_batches_equal_the_exact_per_message_path(seed):
    rnd = random.Random(seed)
    friendly = seed % 3 != 0
    records = [Record(i, _message(rnd, i, friendly), None, 1000 * i, {"offset": i}, f"t[0]@{i}", {}, "t[0]")
               for i in range(rnd.randint(2, 60))]
    if friendly:
        assert codecs.json_batch(CFG, SCHEMA, [r.value for r in records]) is not None  # the fast path applies
    (t1, k1, m1, e1), (t2, k2, m2, e2) = _both(records)
    assert _rows(t1) == _rows(t2)
    assert k1 == k2 and list(m1) == list(m2)
    assert _rows(e1) == _rows(e2)


@pytest.mark.parametrize("bad", [b"not json", b"[1, 2]", b"5", b"", b"   ", b'{"id": 1}{"id": 2}', b'{"id": "x"}',
                                 b'{"id": 1.5}', b'{"id": 99999999999999999999}', b"\xff\xfe",
                                 b'{"id": 3, "name": "raw\nline break"}', b'{"id": 3, "name": "cr\rx"}'])
def test_a_batch_with_a_bad_message_is_decided_exactly(bad):
    """A message that is not one valid JSON object (or a value that does not convert) gives the same rows and
    the same error rows as the per-message path, naming the message."""
    good = [b'{"id": 1, "name": "a", "amount": 1.25}', b'{"id": 2, "name": "b", "amount": 12345678901234567.5}']
    records = [Record(i, v, None, 0, {"offset": i}, f"t[0]@{i}", {}, "t[0]") for i, v in enumerate(good + [bad])]
    (t1, k1, _, e1), (t2, k2, _, e2) = _both(records)
    assert _rows(t1) == _rows(t2) and k1 == k2 and _rows(e1) == _rows(e2)
    assert [r["id"] for r in t1.to_pylist()][:2] == [1, 2]
    if e1 is not None:
        assert all("t[0]@2" in r["error"] for r in e1.to_pylist())
    if b"break" in bad or b"cr" in bad:  # a raw control character inside a string: invalid JSON, never rewritten
        assert e1 is not None and [r["id"] for r in t1.to_pylist()] == [1, 2]


def test_a_decimal_in_a_json_message_stays_exact():
    records = [Record(i, v, None, 0, {"offset": i}, f"t[0]@{i}", {}, "t[0]") for i, v in enumerate([
        b'{"id": 1, "amount": 12345678901234567.123456789012}', b'{"id": 2, "amount": 1e-12}'])]
    for (table, _, _, errors) in _both(records):
        assert errors is None
        assert table.column("amount").to_pylist() == [decimal.Decimal("12345678901234567.123456789012"),
                                                       decimal.Decimal("0.000000000001")]
    one = decode_records("src", CFG, SCHEMA, records[:1], np.arange(1, dtype=np.int64))[0]  # the per-message path
    assert one.column("amount").to_pylist() == [decimal.Decimal("12345678901234567.123456789012")]
