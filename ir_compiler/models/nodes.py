"""The eight node kinds, a tagged union on ``kind``."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, create_model, field_validator, model_validator

from connectors.base import ConnectorConfig
from connectors.registry import SINKS, SOURCES
from ir_compiler.models.base import MAX_ID_LENGTH, FieldSpec, NodeBase, Strict, Window
from ir_compiler.models.ops import Op


class EventTime(Strict):
    field: str
    format: str | None = Field(default=None, description="strptime format, 'epoch_ms', 'epoch_s' or ISO (default)")
    maxOutOfOrderness: str | None = None


class SourceNode(NodeBase):
    """Reads files, a warehouse table or a stream.

    ``{"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "data/", "format": "csv"}}``

    The base of one model per source connector (``SourceNode_local_fs`` ...), whose ``config`` is that connector's
    typed config model; :data:`SourceNodes` is their union, tagged by ``connector``.
    """

    kind: Literal["source"] = "source"
    connector: str
    config: ConnectorConfig
    schema_: list[FieldSpec] | None = Field(default=None, alias="schema")
    eventTime: EventTime | None = None


class TransformNode(NodeBase):
    """Ordered column and set ops: ``{"id": "t", "kind": "transform", "input": "src", "ops": [...]}``."""

    kind: Literal["transform"] = "transform"
    input: str
    ops: list[Op] = Field(min_length=1)

    def upstream_refs(self):
        return [self.input]


class RowRule(Strict):
    id: str | None = None
    field: str | None = Field(default=None, description="the checked column (not needed for expr: rules)")
    rule: str = Field(min_length=1, description="not_null, gt:0, between:a,b, in:a|b, regex:re, email, "
                                                "min_length:n, max_length:n, type:t, expr:<SQL>")
    onFail: Literal["quarantine", "drop", "warn", "abort"] = "quarantine"
    message: str | None = None


class _DatasetCheck(Strict):
    onFail: Literal["abort", "warn"] = "abort"


class RowCountCheck(_DatasetCheck):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class UniqueCheck(_DatasetCheck):
    fields: list[str] = Field(min_length=1)


class NullRatioCheck(_DatasetCheck):
    field: str
    max: float = Field(ge=0, le=1)


class FreshnessCheck(_DatasetCheck):
    field: str
    maxAgeMinutes: float = Field(gt=0)


class ColumnsCheck(_DatasetCheck):
    required: list[str] = Field(min_length=1)


class DatasetLevel(Strict):
    rowCount: RowCountCheck | None = None
    unique: UniqueCheck | None = None
    nullRatio: NullRatioCheck | None = None
    freshness: FreshnessCheck | None = None
    columns: ColumnsCheck | None = None


class QuarantineTable(Strict):
    table: str | None = None


class ValidateNode(NodeBase):
    """Row rules and dataset checks; rejected rows leave through ``<id>.quarantine``."""

    kind: Literal["validate"] = "validate"
    input: str
    rowLevel: list[RowRule] = Field(default_factory=list)
    datasetLevel: DatasetLevel | None = None
    quarantine: QuarantineTable | None = None

    def upstream_refs(self):
        return [self.input]


class Route(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=MAX_ID_LENGTH)
    condition: str = Field(min_length=1)


class BranchNode(NodeBase):
    """Routes rows to ``<id>.<route>`` by SQL conditions."""

    kind: Literal["branch"] = "branch"
    input: str
    routes: list[Route] = Field(min_length=1)
    otherwise: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=MAX_ID_LENGTH)
    mode: Literal["first_match", "all_matches"] = "first_match"

    def upstream_refs(self):
        return [self.input]


class JoinNode(NodeBase):
    """Joins two or more inputs left to right on the same keys."""

    kind: Literal["join"] = "join"
    inputs: list[str] = Field(min_length=2)
    type: Literal["inner", "left", "right", "full", "semi", "anti"] = "inner"
    on: list[str] | list[dict[str, str]] = Field(min_length=1)
    select: dict[str, list[str] | dict[str, str]] | None = Field(
        default=None, description='per input: columns to keep, or {"column": "output_name"}')
    prefixes: dict[str, str] | None = Field(default=None, description="per input: prefix for its non-key columns")
    strategy: Literal["auto", "shuffle", "broadcast"] = "auto"
    window: Window | None = None

    def upstream_refs(self):
        return list(self.inputs)


class Provider(Strict):
    model_config = {**Strict.model_config, "extra": "allow"}
    kind: Literal["http", "llm", "geocode", "model", "lookup"]


class EnrichNode(NodeBase):
    """Per-row external call (HTTP API, LLM, geocoder, model, lookup)."""

    kind: Literal["enrich"] = "enrich"
    input: str
    provider: Provider
    output: str | dict[str, str]
    batchSize: int = Field(default=50, ge=1, le=10000)
    concurrency: int = Field(default=4, ge=1, le=256)
    timeoutSeconds: float = Field(default=30, gt=0)
    rateLimitPerSecond: float | None = Field(default=None, gt=0)
    cache: dict[str, Any] | None = None
    onError: Literal["null", "quarantine", "fail"] = "null"

    def upstream_refs(self):
        return [self.input]


class Hook(Strict):
    type: Literal["sql", "webhook"]
    statement: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _shape(self):
        if self.type == "sql" and not self.statement:
            raise ValueError("a sql hook needs 'statement'")
        if self.type == "webhook" and not self.url:
            raise ValueError("a webhook hook needs 'url'")
        return self


LOAD_MODES = ("append", "truncate", "upsert", "blue_green", "incremental_watermark", "cdc_mirror")


class TargetNode(NodeBase):
    """Loads into a warehouse table (``schema``) or a sink (``connector`` + ``config``).

    The base of :class:`TableTarget` (no connector) and of one model per sink connector (``TargetNode_local_fs``
    ...); :data:`TargetNodes` is their union, tagged by ``connector`` (absent: a warehouse table).
    """

    kind: Literal["target"] = "target"
    input: str
    schema_: str | None = Field(default=None, alias="schema", description='"schema.table" in the warehouse')
    connector: str | None = None
    config: ConnectorConfig | None = None
    loadMode: Literal[LOAD_MODES] = "append"  # type: ignore[valid-type]
    upsertKey: str | list[str] | None = None
    watermarkColumn: str | None = None
    cdcSource: str | None = None
    preHook: Hook | None = None
    postHook: Hook | None = None
    lineage: bool = True
    window: Window | None = None

    def upstream_refs(self):
        return [self.input]

    @property
    def upsert_keys(self) -> list[str]:
        if self.upsertKey is None:
            return []
        return [self.upsertKey] if isinstance(self.upsertKey, str) else list(self.upsertKey)


class TableTarget(TargetNode):
    """A target that loads into the warehouse table ``schema`` (no ``connector``)."""

    connector: None = None
    config: None = None

    @field_validator("config", mode="before")
    @classmethod
    def _no_config(cls, v):
        if v is not None:
            raise ValueError("a warehouse-table target takes no 'config'; a sink target names its 'connector' too")
        return v


def _per_connector(base: type, name: str, connector) -> type:
    """``base`` with ``connector: Literal[name]`` and ``config:`` the connector's config model."""
    return create_model(f"{base.__name__}_{name}", __base__=base, __module__=__name__,
                        __doc__=f"{base.__doc__.splitlines()[0]} ``{name}``: {connector.doc}",
                        connector=(Literal[name], ...), config=(connector.config, ...))


SOURCE_NODES = {name: _per_connector(SourceNode, name, c) for name, c in SOURCES.items()}
TARGET_NODES = {name: _per_connector(TargetNode, name, c) for name, c in SINKS.items()}
TABLE_TAG = "(table)"  # the union tag of a target without a connector (never a connector name)


def _target_tag(value) -> str:
    connector = value.get("connector") if isinstance(value, dict) else getattr(value, "connector", None)
    return TABLE_TAG if connector is None else connector if isinstance(connector, str) else repr(connector)


class _Named:
    """Names a union in the JSON Schema (``$defs/SourceNode``), so the ``kind`` mapping points at one definition."""

    def __init__(self, name: str):
        self.name = name

    def __get_pydantic_core_schema__(self, source, handler):
        schema = handler(source)
        schema["ref"] = self.name
        return schema


SourceNodes = Annotated[Union[tuple(SOURCE_NODES.values())], Field(discriminator="connector"), _Named("SourceNode")]
TargetNodes = Annotated[Union[tuple([Annotated[TableTarget, Tag(TABLE_TAG)]] + [
    Annotated[m, Tag(name)] for name, m in TARGET_NODES.items()])], Discriminator(_target_tag), _Named("TargetNode")]


class ArchiveNode(NodeBase):
    """Moves, copies or deletes the files that fed a target, after its load committed."""

    kind: Literal["archive"] = "archive"
    input: str
    action: Literal["move", "copy", "delete"] = "move"
    destination: str | None = None
    compress: Literal["gzip"] | None = None

    def upstream_refs(self):
        return [self.input]


Node = Annotated[
    Union[SourceNodes, TransformNode, ValidateNode, BranchNode, JoinNode, EnrichNode, TargetNodes, ArchiveNode],
    Field(discriminator="kind"),
]
NODE_ADAPTER = TypeAdapter(Node)  # one node on its own (validation reports every node, even next to a broken one)
NODE_KINDS = {m.model_fields["kind"].default: m for m in
              (SourceNode, TransformNode, ValidateNode, BranchNode, JoinNode, EnrichNode, TargetNode, ArchiveNode)}
