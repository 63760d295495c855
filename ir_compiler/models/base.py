"""Shared pieces of the IR models: the strict base model, durations, windows, schemas."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ir_compiler.types import is_valid_type

NODE_ID = r"^[a-z][a-z0-9_-]*$"
MAX_ID_LENGTH = 128  # node and pipeline ids become file, folder, metric and job names
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


Name = Annotated[str, Field(min_length=1)]  # a column, route or key name: never empty
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1


def scalar_problem(value) -> str | None:
    """Why ``value`` is not a column value (string, 64-bit int, finite float, bool or null), or None."""
    if value is None or isinstance(value, (str, bool)):
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else "is out of the int range (64-bit)"
    if isinstance(value, float):
        return None if value == value and abs(value) != float("inf") else "is not a finite number"
    return f"must be a string, number, boolean or null, not {'an object' if isinstance(value, dict) else 'an array'}"


class Strict(BaseModel):
    """Every IR model forbids unknown fields, so a typo is an error with its JSON path."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def duration_seconds(text: str | int | float) -> float:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` (86400 s), ``"250ms"``; a bare number is seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = _DURATION.match(str(text).strip())
    if not m:
        raise ValueError(f"invalid duration {text!r}; use a number and a unit: 250ms, 30s, 5m, 1h, 1d")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def _check_duration(v):
    if v is not None:
        duration_seconds(v)
    return v


Duration = Annotated[str | int, Field(description='A duration: "30s", "5m", "1h", "1d" or seconds.')]


class FieldSpec(Strict):
    """A declared column: ``{"name": "amount", "type": "decimal(10,2)", "nullable": true}``."""

    name: str = Field(min_length=1)
    type: str = Field(description="string, int, float, decimal(p,s), bool, date, timestamp, json, array<T>")
    nullable: bool = True
    description: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if not is_valid_type(v):
            raise ValueError(
                f"unknown type {v!r}; use string, int, float, decimal(p,s), bool, date, timestamp, json or array<T>")
        return v


class Trigger(Strict):
    """When a window's panes fire. ``afterWatermark`` (default) may add early/late firings."""

    type: Literal["after_watermark", "after_count", "after_processing_time", "repeatedly_after_count"] = (
        "after_watermark")
    count: int | None = Field(default=None, ge=1)
    delay: Duration | None = None
    earlyFirings: Duration | None = Field(default=None, description="processing-time delay between early panes")
    lateFirings: bool | int | None = Field(default=None, description="true: a pane per late element; n: per n")
    accumulation: Literal["discarding", "accumulating"] = Field(
        default="accumulating", description="accumulating (default): every pane holds the whole window so far, so an "
        "upsert by window converges; discarding: each pane only the rows since the previous one (load with append)")

    _d = field_validator("delay", "earlyFirings")(_check_duration)


class Window(Strict):
    """Windowing for aggregations and joins on unbounded inputs."""

    type: Literal["fixed", "sliding", "session", "global"]
    size: Duration | None = None
    period: Duration | None = None
    gap: Duration | None = None
    allowedLateness: Duration | None = None
    trigger: Trigger | None = None

    _d = field_validator("size", "period", "gap", "allowedLateness")(_check_duration)

    @model_validator(mode="after")
    def _needs(self) -> "Window":
        need = {"fixed": ["size"], "sliding": ["size", "period"], "session": ["gap"], "global": []}[self.type]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.type} window needs {', '.join(missing)}")
        return self


class Position(Strict):
    """Canvas position (ignored by the engine)."""

    x: float
    y: float


class NodeBase(Strict):
    """Fields every node has."""

    id: str = Field(pattern=NODE_ID, max_length=MAX_ID_LENGTH,
                    description="unique node id, [a-z][a-z0-9_-]*, at most 128 characters")
    description: str | None = None
    label: str | None = None
    position: Position | None = None

    def upstream_refs(self) -> list[str]:
        """The ``node`` or ``node.port`` references this node reads."""
        return []
