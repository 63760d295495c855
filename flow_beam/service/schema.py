"""The JSON Schema of the whole IR (``flow-beam schema``, ``GET /api/v1/schema``, the MCP ``ir_schema`` tool)."""
from __future__ import annotations


def ir_json_schema() -> dict:
    from ir_compiler.models import Pipeline

    schema = Pipeline.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "flow-beam pipeline IR 1.0"
    return schema
