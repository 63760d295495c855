"""Message bytes ↔ rows for the stream connectors (Kafka, Pub/Sub; Kinesis and Pulsar next): ``json`` (one object
per message), ``avro`` (Confluent wire format with a schema registry, or a bare body with ``avroSchema``), ``csv``
(one line, columns ``c0``, ``c1``, ...) and ``raw`` (key, value, topic, partition, offset, timestamp)."""
from __future__ import annotations

import json

from ir_compiler.errors import ConnectorError

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
        row = json.loads(value)
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
        from connectors.formats import _json_default
        return json.dumps(row, default=_json_default, separators=(",", ":")).encode("utf-8")
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
