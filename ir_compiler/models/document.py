"""The top-level Pipeline document."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator

from ir_compiler.models.base import MAX_ID_LENGTH, Strict
from ir_compiler.models.nodes import Node


class Metadata(Strict):
    model_config = {**Strict.model_config, "extra": "allow"}
    name: str | None = None
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    description: str | None = None


def _timezone(name: str) -> str:
    from zoneinfo import ZoneInfo
    try:
        ZoneInfo(name)
    except Exception:  # noqa: BLE001 - zoneinfo raises several types for bad names
        raise ValueError(f"unknown timezone {name!r}; use an IANA name such as America/Los_Angeles") from None
    return name


class CronSchedule(Strict):
    kind: Literal["cron"] = "cron"
    expression: str = Field(description="five fields: minute hour day-of-month month day-of-week")
    timezone: str = "UTC"

    @field_validator("expression")
    @classmethod
    def _cron(cls, v: str) -> str:
        from croniter import croniter
        if len(v.split()) != 5:
            raise ValueError(f"a cron expression has five fields (minute hour day-of-month month day-of-week); "
                             f"{v!r} has {len(v.split())}")
        if not croniter.is_valid(v):
            raise ValueError(f"invalid cron expression {v!r} (a field is out of range or malformed)")
        return v

    _zone = field_validator("timezone")(classmethod(lambda cls, v: _timezone(v)))


class IntervalSchedule(Strict):
    kind: Literal["interval"] = "interval"
    minutes: int = Field(ge=1, le=1440)


class RRuleSchedule(Strict):
    kind: Literal["rrule"] = "rrule"
    rrule: str
    timezone: str = "UTC"

    @field_validator("rrule")
    @classmethod
    def _rule(cls, v: str) -> str:
        import datetime as dt

        from dateutil import rrule
        try:
            if "DTSTART" in v.upper():
                rrule.rrulestr(v, forceset=True)
            else:
                rrule.rrulestr(v.strip().removeprefix("RRULE:"), dtstart=dt.datetime(2000, 1, 1), forceset=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid rrule {v!r}: {exc}") from None
        return v

    _zone = field_validator("timezone")(classmethod(lambda cls, v: _timezone(v)))


Schedule = Annotated[Union[CronSchedule, IntervalSchedule, RRuleSchedule], Field(discriminator="kind")]


class ParamSpec(Strict):
    type: Literal["string", "int", "float", "bool"] = "string"
    default: Any = None
    description: str | None = None
    required: bool = False


class Dlq(Strict):
    enabled: bool = False
    table: str | None = None


class Retry(Strict):
    maxAttempts: int = Field(default=3, ge=1, le=20)
    backoff: Literal["fixed", "linear", "exponential"] = "exponential"
    initialDelaySeconds: float = Field(default=1, ge=0)
    maxDelaySeconds: float = Field(default=60, ge=0)


class ErrorHandling(Strict):
    dlq: Dlq | None = None
    retry: Retry | None = None


class TestCase(Strict):
    __test__ = False  # not a pytest class
    name: str
    inputs: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    expect: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    params: dict[str, Any] | None = None


class Pipeline(Strict):
    """A flow-beam pipeline document (IR version 1.0)."""

    kind: Literal["pipeline"] = "pipeline"
    version: Literal["1.0"] = "1.0"
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=MAX_ID_LENGTH,
                    description="lowercase slug, at most 128 characters")
    metadata: Metadata | None = None
    schedule: Schedule | None = None
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    nodes: list[Node] = Field(min_length=1)
    errorHandling: ErrorHandling | None = None
    tests: list[TestCase] = Field(default_factory=list)

    def node(self, node_id: str):
        return next(n for n in self.nodes if n.id == node_id)

    def index_of(self, node_id: str) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.id == node_id)

    @property
    def dlq_enabled(self) -> bool:
        return bool(self.errorHandling and self.errorHandling.dlq and self.errorHandling.dlq.enabled)
