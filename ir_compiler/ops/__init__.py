"""THE op registry: each transform op's schema rule and Arrow implementation, in one place."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ir_compiler.ops import cast, columns, exprs, models, sets
from ir_compiler.ops.common import OpTypeError  # noqa: F401
from ir_compiler.types import FLOAT, JSON, STRING, Field, array_of


@dataclass(frozen=True)
class OpSpec:
    schema: Callable  # (op, Schema | None) -> Schema | None ; raises OpTypeError
    apply: Callable | None  # (op, pa.Table) -> OpResult for row ops; None for set ops
    kind: str  # "row" | "set" | "lookup" | "model"


def _model_schema(out_type):
    def schema(op, s):
        from ir_compiler.ops.common import require
        if op.op == "vector_embed" and op.provider is None and models.embed_dims(op.model) is None:
            raise OpTypeError(f"model {op.model!r} is not a local model: use 'hash-ngram-N' (8 <= N <= 4096; "
                              f"default hash-ngram-256)", "model")
        require(s, op.field)
        return s.with_field(Field(op.output, out_type)) if s is not None else None
    return schema


OPS: dict[str, OpSpec] = {
    "rename": OpSpec(columns.rename_schema, columns.rename_apply, "row"),
    "drop": OpSpec(columns.drop_schema, columns.drop_apply, "row"),
    "add_field": OpSpec(columns.add_field_schema, columns.add_field_apply, "row"),
    "cast": OpSpec(cast.cast_schema, cast.apply_cast, "row"),
    "expression": OpSpec(exprs.expression_schema, exprs.expression_apply, "row"),
    "hash": OpSpec(columns.hash_schema, columns.hash_apply, "row"),
    "mask_pii": OpSpec(columns.mask_schema, columns.mask_apply, "row"),
    "map_values": OpSpec(columns.map_values_schema, columns.map_values_apply, "row"),
    "split": OpSpec(columns.split_schema, columns.split_apply, "row"),
    "merge": OpSpec(columns.merge_schema, columns.merge_apply, "row"),
    "filter": OpSpec(exprs.filter_schema, exprs.filter_apply, "row"),
    "lookup_join": OpSpec(None, None, "lookup"),  # schema needs the lookup's schema: see propagate
    "deduplicate": OpSpec(sets.dedupe_schema, None, "set"),
    "aggregate": OpSpec(sets.aggregate_schema, None, "set"),
    "summarize": OpSpec(sets.summarize_schema, None, "set"),
    # the model ops run per row on local models shipped by PyPI packages (ir_compiler/ops/models.py)
    "vector_embed": OpSpec(_model_schema(array_of(FLOAT)), models.embed_apply, "row"),
    "geo_resolve": OpSpec(_model_schema(JSON), models.geo_apply, "row"),
    "sentiment_score": OpSpec(_model_schema(FLOAT), models.sentiment_apply, "row"),
    "language_detect": OpSpec(_model_schema(STRING), models.language_apply, "row"),
}
