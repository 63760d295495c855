"""cdc_mirror: apply Debezium change events (``op`` c/r/u/d, ``before``/``after`` row images, ``source.lsn`` or
``ts_ms``) to a mirror table. Events are ordered by LSN (else ``ts_ms``, else input order) and the last event of
each key decides: a delete removes the row, anything else leaves its ``after`` image; an update whose ``before``
key differs from its ``after`` key also deletes the row of the old key. The position that decided each key is
kept (``_flow_cdc_positions``), so an event replayed in a later load never rolls the mirror back. Applying the same events
again gives the same table (idempotent), and one transaction applies them all."""
from __future__ import annotations

import json

import pyarrow as pa

from ir_compiler.errors import LoadError

_OPS = {"c", "r", "u", "d"}


def _obj(value):
    if value is None or isinstance(value, dict):
        return value
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def _order(event: dict, index: int) -> tuple:
    src = _obj(event.get("source")) or {}
    lsn = _position(src.get("lsn", event.get("lsn")))
    ts = _position(event.get("ts_ms", src.get("ts_ms")))
    return (lsn if lsn is not None else -1, ts if ts is not None else -1, index)


def _position(value):
    """A position as a number when it is one written as text ("10" after "9", not before it as text compares)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _payload(event: dict) -> dict:
    """The envelope, also when it is wrapped as ``{"payload": {...}}`` (Debezium with schemas enabled)."""
    inner = _obj(event.get("payload"))
    return inner if inner and "op" in inner else event


def final_images(events: pa.Table, keys: list[str], applied: dict | None = None):
    """(every key touched, the rows that exist after the events, key → the (lsn, ts_ms) position that decided it,
    how many events were before a key's applied position) — deletes are touched keys with no row.

    ``applied``: key → the position of the event that decided the key in an earlier load. An event with a
    position at or before it was applied already (a replay, or an older event arriving late) and is skipped:
    else a replayed old event would roll the mirror back."""
    rows = [_payload(e) for e in events.to_pylist()]
    latest: dict[tuple, tuple] = {}
    replayed = 0
    for i, event in enumerate(rows):
        op = event.get("op")
        if op not in _OPS:
            raise LoadError(f"change event {i + 1} has op {op!r}; a Debezium envelope has op c, r, u or d")
        image = _obj(event.get("before")) if op == "d" else _obj(event.get("after"))
        if image is None:
            raise LoadError(f"change event {i + 1} (op {op}) has no {'before' if op == 'd' else 'after'} image")
        missing = [k for k in keys if k not in image]
        if missing:
            raise LoadError(f"change event {i + 1} has no key column(s) {missing} in its row image")
        key = tuple(image[k] for k in keys)
        rank = _order(event, i)
        touched = [(key, op, image)]
        before = _obj(event.get("before")) if op == "u" else None
        if before is not None and all(k in before for k in keys) and tuple(before[k] for k in keys) != key:
            touched.append((tuple(before[k] for k in keys), "d", before))  # the key changed: the old row goes
        for k, o, img in touched:
            if applied and k in applied and rank[:2] != (-1, -1):
                try:
                    seen = rank[:2] <= tuple(applied[k])
                except TypeError:
                    raise LoadError(f"change event {i + 1}: its position {rank[0]!r} cannot be ordered against the "
                                    f"position {applied[k][0]!r} this key was applied at (numbers and text mixed "
                                    f"in source.lsn or ts_ms); make them one type") from None
                if seen:  # counted when strictly older: an exact replay (at-least-once delivery) is routine
                    replayed += o == op and rank[:2] != tuple(applied[k])
                    continue
            try:
                newer = k not in latest or rank >= latest[k][0]
            except TypeError:
                raise LoadError(f"change event {i + 1}: its position {rank[0]!r} cannot be ordered against "
                                f"{latest[k][0][0]!r} of an earlier event (numbers and text mixed in source.lsn or "
                                f"ts_ms); make them one type") from None
            if newer:
                latest[k] = (rank, o, img)
    alive = [image for _, op, image in latest.values() if op != "d"]
    positions = {k: list(r[:2]) for k, (r, _, _) in latest.items() if r[:2] != (-1, -1)}
    return list(latest), alive, positions, replayed


def images_table(images: list[dict]) -> pa.Table:
    """The surviving row images as a table; a column whose images disagree on its type (``1`` in one event,
    ``"2"`` in another) is a clear error naming the column and both values, not Arrow's conversion message."""
    try:
        return pa.Table.from_pylist(images)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        pass
    names = list(dict.fromkeys(n for img in images for n in img))
    for name in names:
        values = [img.get(name) for img in images]
        try:
            pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
            first = next((v for v in values if v is not None), None)
            other = next((v for v in values if v is not None and type(v) is not type(first)), None)
            seen = f"{first!r} ({type(first).__name__}) and {other!r} ({type(other).__name__})" \
                if other is not None else str(exc).splitlines()[0]
            raise LoadError(f"cdc_mirror: column '{name}' has values of different types in the change events' row "
                            f"images: {seen}; a mirror column holds one type — fix the producer, or convert the "
                            f"images upstream") from None
    return pa.Table.from_pylist(images)
