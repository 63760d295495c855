"""Message bytes ↔ rows for the stream connectors (Kafka, Pub/Sub, Kinesis, Pulsar): ``json`` (one object per
message), ``avro`` (Confluent wire format with a schema registry, or a bare body with ``avroSchema``), ``csv`` (one
line, columns ``c0``, ``c1``, ...) and ``raw`` (key, value, topic, partition, offset, timestamp); and a batch of
:class:`Record` → one Arrow table plus error rows (:func:`decode_records`), what every stream reader emits."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ir_compiler.errors import ConnectorError, FlowError

MESSAGE_FORMATS = ("json", "avro", "csv", "raw")


def decode(cfg, msg) -> dict:
    """One message as a row; raises ValueError with the reason for a malformed one."""
    value = msg.value
    if cfg.format == "raw":
        return {"key": msg.key.decode("utf-8", "replace") if msg.key else None,
                "value": value.decode("utf-8", "replace") if value is not None else None,
                "topic": msg.topic, "partition": msg.partition, "offset": msg.offset, "timestamp": msg.timestamp}
    if value is None:
        raise ValueError("empty message (tombstone)")
    if cfg.format == "json":
        from connectors.infer import loads_exact
        row = loads_exact(value)  # numbers exact: a decimal never goes through a float
        if not isinstance(row, dict):
            raise ValueError("a JSON message must be an object")
        return row
    if cfg.format == "avro":
        return _avro(cfg, value)
    import csv
    import io
    fields = next(csv.reader(io.StringIO(value.decode("utf-8"))))
    return {f"c{i}": v for i, v in enumerate(fields)}


_REGISTRY: dict[tuple[str, int], object] = {}  # (registry URL, schema id) -> parsed schema


def _registry_schema(url: str, schema_id: int):
    """A writer schema from a Confluent-compatible schema registry (GET /schemas/ids/{id}), cached."""
    import urllib.request

    import fastavro

    key = (url.rstrip("/"), schema_id)
    if key not in _REGISTRY:
        try:
            with urllib.request.urlopen(f"{key[0]}/schemas/ids/{schema_id}", timeout=10) as resp:
                body = json.loads(resp.read())
        except (OSError, ValueError) as exc:
            raise ConnectorError(f"schema registry {key[0]}: cannot fetch schema id {schema_id}: {exc}") from None
        _REGISTRY[key] = fastavro.parse_schema(json.loads(body["schema"]))
    return _REGISTRY[key]


def _avro(cfg, value: bytes) -> dict:
    """Avro: Confluent wire format (0x00 + schema id + body) or a bare body; the writer schema comes from the
    registry (``schemaRegistryUrl``) by the id in the message, else from ``avroSchema``."""
    import io

    import fastavro

    framed = value[:1] == b"\x00" and len(value) > 5
    if cfg.schemaRegistryUrl and framed:
        schema = _registry_schema(cfg.schemaRegistryUrl, int.from_bytes(value[1:5], "big"))
    elif cfg.avroSchema is not None:
        raw = cfg.avroSchema if isinstance(cfg.avroSchema, dict) else json.loads(cfg.avroSchema)
        schema = fastavro.parse_schema(raw)
    elif cfg.schemaRegistryUrl:
        raise ValueError("the message is not in the schema-registry wire format (magic byte 0 + schema id)")
    else:
        raise ValueError("format avro needs avroSchema or schemaRegistryUrl")
    data = value[5:] if framed else value
    return fastavro.schemaless_reader(io.BytesIO(data), schema)


def encode(cfg, row: dict) -> bytes:
    """One row as a message value in the producer's format."""
    if cfg.format == "json":
        from connectors.formats import _dumps
        return _dumps(row, separators=(",", ":")).encode("utf-8")  # decimals as exact JSON numbers
    if cfg.format == "avro":
        import io

        import fastavro
        if getattr(cfg, "avroSchema", None) is None:
            raise ConnectorError("a sink with format avro needs avroSchema")
        schema = cfg.avroSchema if isinstance(cfg.avroSchema, dict) else json.loads(cfg.avroSchema)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), row)
        return buf.getvalue()
    if cfg.format == "csv":
        import csv
        import io
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(["" if v is None else v for v in row.values()])
        return buf.getvalue().encode("utf-8")
    value = row.get("value") if "value" in row else next(iter(row.values()), None)
    return b"" if value is None else str(value).encode("utf-8")


# ---- records → tables ----------------------------------------------------------------------------------
EVENT_US = "__fb_event_us"  # the event time a stream reader used (eventTime.field, else the log's own time)


@dataclass
class Record:
    """One message of a stream (a Kafka/Pulsar partition, a Kinesis shard, a Pub/Sub subscription)."""

    position: int  # grows along the partition (offset, sequence number, packed message id, pull counter)
    value: bytes | None
    key: str | bytes | None
    time_us: int | None  # the log's own time (arrival/publish), the event time unless eventTime says otherwise
    where: dict = field(default_factory=dict)  # where it came from, for the DLQ (topic + offset, shard + sequence)
    label: str = ""  # the same, as text: "orders[0]@17", "orders/shardId-000000000000@4959..."
    raw: dict = field(default_factory=dict)  # the row of format "raw"
    origin: str = ""  # what a declared-column error names (the topic partition, the subscription)


def decode_records(node_id, cfg, schema, records: list[Record], ords, event_time=None):
    """(table with ORD and EVENT_US | None, kept record indexes, event µs per kept row, error table | None).
    Undecodable messages and values that do not convert become error rows saying where they came from; a
    FlowError (a schema registry that does not answer: not the message's fault) fails the run."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from connectors.formats import _columns_table, _conform, _json_fields, messages_table
    from connectors.runtime import ORD

    fast = json_batch(cfg, schema, [r.value for r in records])
    rows, keep, bad = [], [], []
    for i, r in enumerate(records if fast is None else ()):
        try:
            rows.append(dict(r.raw) if cfg.format == "raw" else decode(cfg, _Msg(r.value, r.key)))
            keep.append(i)
        except FlowError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure (fastavro raises several kinds) is a bad message
            raw = r.value.decode("utf-8", "replace")[:2000] if r.value else None
            bad.append((f"{r.label}: {exc}", json.dumps({**r.where, "raw": raw}, default=str)))
    table, micros = None, np.zeros(0, dtype=np.int64)
    if fast is not None:
        keep = list(range(len(records)))
    if rows or fast is not None:
        origin = records[0].origin or records[0].label.split("@")[0]
        if fast is None and cfg.format == "json":  # a declared json column holds JSON values: their JSON text
            rows = _json_fields(rows, schema)
        table, bad_rows = _conform(messages_table(fast if fast is not None else _columns_table(rows), schema),
                                   schema, origin,
                                   lambda j: keep[j] if j < len(keep) else None)
        rejected = {b.line for b in bad_rows}
        for b in bad_rows:
            r = records[b.line] if isinstance(b.line, int) and b.line < len(records) else None
            raw = r.value.decode("utf-8", "replace")[:2000] if r is not None and r.value else b.raw
            bad.append((f"{r.label if r else b.file}: {b.reason}",  # the DLQ keeps the message as it came
                        json.dumps({**(r.where if r else {}), "raw": raw}, default=str)))
        keep = [i for i in keep if i not in rejected]
        micros = np.array([records[i].time_us if records[i].time_us is not None else -1 for i in keep],
                          dtype=np.int64)
        if event_time is not None and event_time.field in table.column_names and table.num_rows:
            et = event_micros(table.column(event_time.field), event_time.format)
            micros = np.where(pc.is_valid(et).to_numpy(zero_copy_only=False),
                              et.fill_null(-1).to_numpy(zero_copy_only=False), micros)
        table = table.append_column(ORD, pa.array(ords[keep] if len(keep) else np.zeros(0, np.int64), pa.int64()))
        table = table.append_column(EVENT_US, pa.array(np.maximum(micros, 0), pa.int64()))
        if not table.num_rows:
            table = None
    errors = None
    if bad:
        errors = pa.table({"node_id": pa.array([node_id] * len(bad), pa.string()),
                           "error": pa.array([b[0] for b in bad], pa.string()),
                           "row": pa.array([b[1] for b in bad], pa.string())})
    return table, keep, micros, errors


_FAST_TYPES = ("string", "int", "float", "bool", "decimal", "date", "timestamp")


def json_batch(cfg, schema, values: list):
    """The values of a batch of JSON messages as one table read by Arrow's JSON reader (the reader of JSONL
    files, exact: :func:`connectors.formats._fast_json`), ~5× faster than one ``json.loads`` per message; None
    when a message needs the per-message path, which then decides and reports exactly as before: no declared
    schema, a declared column that is not a scalar (json, array, struct, map), a tombstone or a blank message,
    or a batch Arrow cannot read exactly or as one object per message (e.g. a message that is not a JSON object,
    or is not valid JSON), or a message holding a line break (pretty-printed; a raw line break inside a string
    is invalid JSON and must stay an error, so it is never rewritten)."""
    if cfg.format != "json" or schema is None or len(values) < 2 or any(
            f.type.name not in _FAST_TYPES for f in schema):
        return None
    if any(not v or not v.strip() for v in values):
        return None
    data = b"\n".join(values)
    if data.count(b"\n") != len(values) - 1 or b"\r" in data:
        return None
    from connectors.formats import _fast_json

    table = _fast_json(data, schema)
    return table if table is not None and table.num_rows == len(values) else None


@dataclass
class _Msg:  # the shape decode() reads
    value: bytes | None
    key_text: str | bytes | None

    @property
    def key(self):
        return self.key_text.encode() if isinstance(self.key_text, str) else self.key_text


def event_micros(col, fmt: str | None):
    """Event times as int64 µs, nulls where a value does not parse (the rules of ir_compiler.windows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    if pa.types.is_timestamp(t):
        out = col.cast(pa.timestamp("us", tz=t.tz)) if t.tz else col.cast(pa.timestamp("us"))
        return out.cast(pa.int64())
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us")).cast(pa.int64())
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        factor = {"epoch_ms": 1000, "epoch_us": 1}.get(fmt, 1_000_000)
        return pc.cast(pc.multiply(pc.cast(col, pa.float64()), float(factor)), pa.int64())
    text = col.cast(pa.string())
    if fmt and fmt not in ("epoch_s", "epoch_ms", "iso"):
        return pc.strptime(text, format=fmt, unit="us", error_is_null=True).cast(pa.int64())
    try:
        return pc.cast(text, pa.timestamp("us")).cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.nulls(len(text), pa.int64())
