"""Transform ops: the 15 foundation ops and the 4 model ops, a tagged union on ``op``."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from ir_compiler.models.base import Name, Strict, Window, scalar_problem
from ir_compiler.types import is_valid_type


class Rename(Strict):
    op: Literal["rename"] = "rename"
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)


class Drop(Strict):
    op: Literal["drop"] = "drop"
    fields: list[str] = Field(min_length=1)


class AddField(Strict):
    op: Literal["add_field"] = "add_field"
    field: str = Field(min_length=1)
    value: Any = None
    type: str | None = None

    @field_validator("value")
    @classmethod
    def _in_range(cls, v):
        stack = [v]
        while stack:
            x = stack.pop()
            if isinstance(x, (dict, list)):
                stack += list(x.values()) if isinstance(x, dict) else x
            elif isinstance(x, (int, float)) and scalar_problem(x):
                raise ValueError(f"value {scalar_problem(x)}")
        return v

    @field_validator("type")
    @classmethod
    def _t(cls, v):
        if v is not None and not is_valid_type(v):
            raise ValueError(f"unknown type {v!r}")
        return v


CAST_TARGETS = "string, int, float, decimal(p,s), bool, date, timestamp"


class Cast(Strict):
    op: Literal["cast"] = "cast"
    field: str = Field(min_length=1)
    to: str = Field(description=CAST_TARGETS)
    format: str | None = Field(default=None, description="strptime format for date/timestamp, e.g. %d/%m/%Y")
    onError: Literal["fail", "null", "quarantine"] = "fail"

    @field_validator("to")
    @classmethod
    def _t(cls, v):
        if not is_valid_type(v) or v.split("(")[0].strip().lower() in ("json", "array", "null"):
            raise ValueError(f"cannot cast to {v!r}; use one of {CAST_TARGETS}")
        return v


class Expression(Strict):
    op: Literal["expression"] = "expression"
    field: str = Field(min_length=1)
    expr: str = Field(min_length=1, description="SQL expression (PostgreSQL flavour)")


class Hash(Strict):
    op: Literal["hash"] = "hash"
    fields: list[str] = Field(min_length=1)
    output: str = Field(min_length=1)
    algorithm: Literal["sha256", "md5", "xxhash64"] = "sha256"
    salt: str | None = None


class MaskPii(Strict):
    op: Literal["mask_pii"] = "mask_pii"
    field: str = Field(min_length=1)
    strategy: Literal["redact", "partial", "hash", "email", "null"] = "redact"
    keepLast: int | None = Field(default=None, ge=0)


class MapValues(Strict):
    op: Literal["map_values"] = "map_values"
    field: str = Field(min_length=1)
    mapping: dict[str, Any]
    default: Any = None
    output: str | None = Field(default=None, min_length=1, description="write to this column instead of in place")

    @field_validator("mapping")
    @classmethod
    def _scalar_values(cls, v):
        for key, value in v.items():
            problem = scalar_problem(value)
            if problem:
                raise ValueError(f"the value of {key!r} {problem}")
        return v

    @field_validator("default")
    @classmethod
    def _scalar_default(cls, v):
        problem = scalar_problem(v)
        if problem:
            raise ValueError(f"default {problem}")
        return v


class Split(Strict):
    op: Literal["split"] = "split"
    field: str = Field(min_length=1)
    delimiter: str = Field(min_length=1)
    into: list[Name] | None = Field(default=None, min_length=1)
    output: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self):
        if (self.into is None) == (self.output is None):
            raise ValueError("split needs exactly one of 'into' (column names) or 'output' (an array column)")
        return self


class Merge(Strict):
    op: Literal["merge"] = "merge"
    fields: list[str] = Field(min_length=1)
    into: str = Field(min_length=1)
    separator: str = ""


class Filter(Strict):
    op: Literal["filter"] = "filter"
    condition: str = Field(min_length=1, description="SQL boolean; rows where it is not true are dropped")


class Deduplicate(Strict):
    op: Literal["deduplicate"] = "deduplicate"
    keys: list[str] = Field(min_length=1)
    keep: Literal["first", "last"] = "first"
    orderBy: str | list[str] | None = Field(default=None, description="column(s); prefix '-' for descending")
    window: Window | None = None


class Aggregation(Strict):
    field: str | None = Field(default=None, min_length=1)
    fn: Literal["count", "sum", "avg", "min", "max", "count_distinct", "first", "last"]
    as_: str = Field(alias="as", min_length=1)

    @model_validator(mode="after")
    def _field(self):
        if self.field is None and self.fn != "count":
            raise ValueError(f"aggregation '{self.fn}' needs a 'field' (only count may omit it)")
        return self


class Aggregate(Strict):
    op: Literal["aggregate"] = "aggregate"
    groupBy: list[str] = Field(default_factory=list)
    aggregations: list[Aggregation] = Field(min_length=1)
    window: Window | None = None


class Lookup(Strict):
    connector: str | None = None
    config: dict[str, Any] | None = None
    table: str | None = None
    rows: list[dict[str, Any]] | None = Field(default=None, description="inline lookup rows")

    @model_validator(mode="after")
    def _one(self):
        if sum(x is not None for x in (self.connector, self.table, self.rows)) != 1:
            raise ValueError("lookup needs exactly one of 'table', 'connector' (+ 'config') or 'rows'")
        return self

    @field_validator("rows")
    @classmethod
    def _a_table(cls, rows):
        if rows:
            import pyarrow as pa
            try:
                pa.Table.from_pylist(rows)
            except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
                raise ValueError(f"the inline rows do not form a table (one type per column): {exc}") from None
        return rows


class LookupJoin(Strict):
    op: Literal["lookup_join"] = "lookup_join"
    lookup: Lookup
    on: list[str] | dict[str, str] = Field(description='["key"] or {"left_col": "lookup_col"}')
    fields: list[str] = Field(min_length=1, description="lookup columns to add")
    type: Literal["left", "inner"] = "left"


class Summarize(Strict):
    op: Literal["summarize"] = "summarize"
    fields: list[str] = Field(min_length=1)
    stats: list[Literal["count", "nulls", "min", "max", "mean", "distinct"]] = Field(
        default_factory=lambda: ["count", "nulls", "min", "max", "mean", "distinct"])


class _ModelOp(Strict):
    field: str = Field(min_length=1)
    output: str = Field(min_length=1)
    provider: dict[str, Any] | None = Field(default=None, description="HTTP provider instead of the local model")


class VectorEmbed(_ModelOp):
    op: Literal["vector_embed"] = "vector_embed"
    model: str | None = None


class GeoResolve(_ModelOp):
    op: Literal["geo_resolve"] = "geo_resolve"


class SentimentScore(_ModelOp):
    op: Literal["sentiment_score"] = "sentiment_score"


class LanguageDetect(_ModelOp):
    op: Literal["language_detect"] = "language_detect"


Op = Annotated[
    Union[Rename, Drop, AddField, Cast, Expression, Hash, MaskPii, MapValues, Split, Merge, Filter, Deduplicate,
          Aggregate, LookupJoin, Summarize, VectorEmbed, GeoResolve, SentimentScore, LanguageDetect],
    Field(discriminator="op"),
]

ROW_OPS = {"rename", "drop", "add_field", "cast", "expression", "hash", "mask_pii", "map_values", "split", "merge",
           "filter", "lookup_join"}
SET_OPS = {"deduplicate", "aggregate", "summarize"}
MODEL_OPS = {"vector_embed", "geo_resolve", "sentiment_score", "language_detect"}
