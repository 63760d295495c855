"""Shared pieces of the op implementations: the op result, internal columns, type errors."""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from connectors.runtime import (ERROR, INTERNAL_PREFIX, ORD, RULE, strip_internal,  # noqa: F401 (re-exported)
                                user_columns)


class OpTypeError(Exception):
    """An op does not fit its input schema; ``field`` is the op field the problem is in."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


@dataclass
class OpResult:
    table: pa.Table
    errors: list[pa.Table] = field(default_factory=list)  # rows with an ERROR column
    filtered: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # counted per node, reported as run-result warnings


def require(schema, name: str, field_name: str = "field"):
    """The schema field ``name`` or an OpTypeError listing what exists."""
    if schema is None:
        return None
    f = schema.get(name)
    if f is None:
        raise OpTypeError(f"column '{name}' does not exist; available: {', '.join(schema.names) or 'none'}",
                          field_name)
    return f


def error_rows(table: pa.Table, mask, reasons) -> pa.Table:
    """Rows of ``table`` where ``mask`` is true, with a reason column (a string or an array aligned to table)."""
    mask = pc.fill_null(mask, False)
    rows = table.filter(mask)
    if isinstance(reasons, str):
        col = pa.array([reasons] * rows.num_rows, pa.string())
    else:
        col = pc.filter(reasons, mask)
    return rows.append_column(ERROR, col)
