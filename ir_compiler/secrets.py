"""The one secret scrubber: known secret values never reach a stored or printed text.

A document names secrets by reference only (``"env:VAR"`` anywhere, or a ``…Env`` key such as ``apiKeyEnv``); the
values those references resolve to in this process are *known secrets*. Every exit that stores or prints text
scrubs them (replaced by ``***``, also their URL-encoded and JSON-escaped forms): rows appended to the DLQ,
quarantine and run-history tables (``Warehouse.append_rows``), the run result (errors, warnings — and so the
printed table, ``--result-file`` and the history row), enrich call errors and enrich output values, and errors
printed by the CLI.

Values shorter than 4 characters are not scrubbed (they would mangle ordinary text). A secret that a provider
transforms (hashes, base64-encodes…) before sending is not recognized.
"""
from __future__ import annotations

import json
import os
import threading
import urllib.parse

MASK = "***"
MIN_LENGTH = 4

_LOCK = threading.Lock()
_KNOWN: set[str] = set()  # secret values known to this process (registered by runs and providers)


def secret_env_names(doc) -> tuple[str, ...]:
    """Environment variable names the document references as secrets (``env:VAR`` values, ``…Env`` keys)."""
    names: list[str] = []

    def walk(obj, key=None):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, key)
        elif isinstance(obj, str):
            if obj.startswith("env:") and len(obj) > 4:
                names.append(obj[4:])
            elif isinstance(key, str) and key.endswith("Env") and obj:
                names.append(obj)

    walk(doc)
    return tuple(dict.fromkeys(names))


def register_value(value: str | None) -> None:
    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        with _LOCK:
            _KNOWN.add(value)


def register_env(names) -> None:
    """Resolve ``names`` in this process's environment and remember the values as secrets."""
    for name in names or ():
        register_value(os.environ.get(name))


def _forms(value: str) -> list[str]:
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value), json.dumps(value)[1:-1]}
    return sorted((f for f in forms if len(f) >= MIN_LENGTH), key=len, reverse=True)


def known() -> list[str]:
    with _LOCK:
        values = list(_KNOWN)
    return [f for v in sorted(values, key=len, reverse=True) for f in _forms(v)]


def scrub_text(text, values: list[str] | None = None):
    """``text`` with every known secret replaced by ``***`` (non-strings are returned as they are)."""
    if not isinstance(text, str) or not text:
        return text
    for v in known() if values is None else values:
        if v in text:
            text = text.replace(v, MASK)
    return text


def scrub_obj(obj, values: list[str] | None = None):
    """Strings inside dicts/lists (and dataclass-like objects with ``__dict__``) scrubbed in place; returned."""
    values = known() if values is None else values
    if not values:
        return obj
    if isinstance(obj, str):
        return scrub_text(obj, values)
    if isinstance(obj, list):
        obj[:] = [scrub_obj(v, values) for v in obj]
        return obj
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = scrub_obj(obj[k], values)
        return obj
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        for k, v in vars(obj).items():
            setattr(obj, k, scrub_obj(v, values))
    return obj


def scrub_table(table):
    """A pyarrow table whose string columns have every known secret replaced (same schema)."""
    values = known()
    if not values or table.num_rows == 0:
        return table
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, f in enumerate(table.schema):
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            continue
        col = table.column(i)
        changed = False
        for v in values:
            if pc.any(pc.match_substring(col, v)).as_py():
                col = pc.replace_substring(col, v, MASK)
                changed = True
        if changed:
            table = table.set_column(i, f, col)
    return table
