"""What every file source shares, wherever its files are (local_fs, s3, gcs, azure_blob, sftp, ftp, http_pull):
patterns, date tokens, orderings and the wait policy. The stores list files; this module decides which of them
a run takes and in which order.

Matching: the pattern is matched against the file NAME of files directly in the folder; a pattern whose value
contains ``/`` is matched against the path relative to the folder (``/`` separators) over all sub-folders (a glob
``*`` does not cross ``/``; ``**/`` matches any depth). ``date_template`` expands the date tokens at ``now`` in
``pattern.timezone`` (UTC by default), then globs. No pattern = every file.

Orderings: ``latest_by_mtime`` (only the single newest file; ties → greatest path), ``fifo_by_name`` (every file
by file name ascending; ties by full path), ``lexicographic`` (every file by full path), ``process_all`` (every
file, oldest modification time first; ties by path).
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import posixpath
import re
import time
from dataclasses import dataclass, field
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ir_compiler.errors import ConnectorError

log = logging.getLogger(__name__)

ORDERINGS = ("latest_by_mtime", "fifo_by_name", "lexicographic", "process_all")
MISS_ACTIONS = ("alert", "skip", "fail")
DEFAULT_ATOMICITY = {"stagingFolder": ".processing/", "successFolder": ".archive/{YYYY-MM-DD}/",
                     "failureFolder": ".failed/"}
TOKENS = {"{YYYY-MM-DD}": "%Y-%m-%d", "{YYYYMMDD}": "%Y%m%d", "{YYYY}": "%Y", "{MM}": "%m", "{DD}": "%d",
          "{HH}": "%H", "{mm}": "%M", "{ss}": "%S"}


def expand_date_tokens(template: str, now: dt.datetime | None = None, timezone: str | None = None) -> str:
    """Replace ``{YYYY}``-style tokens with ``now`` (default: the current time; naive = UTC) in ``timezone``.

    Tokens: ``{YYYY} {MM} {DD} {HH} {mm} {ss} {YYYY-MM-DD} {YYYYMMDD}`` (``MM`` month, ``mm`` minute).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    try:
        local = now.astimezone(ZoneInfo(timezone)) if timezone else now.astimezone(dt.timezone.utc)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConnectorError(f"unknown timezone {timezone!r}; use an IANA name such as America/Los_Angeles") \
            from None
    for token, fmt in TOKENS.items():
        template = template.replace(token, local.strftime(fmt))
    return template


def glob_regex(glob: str) -> re.Pattern:
    """A glob as a regex over relative paths: ``*``/``?``/``[..]`` stay inside one folder, ``**/`` any depth."""
    parts = re.split(r"(\*\*/|\*|\?)", glob)
    tr = {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    body = "".join(tr.get(p) or fnmatch.translate(p)[4:-3] for p in parts if p)
    return re.compile(body)


def matcher(pattern: dict | None, now=None) -> tuple[Callable[[str], bool], bool]:
    """(function of the relative path, whether sub-folders are searched)."""
    if not pattern:
        return (lambda rel: True), False
    kind, value = pattern.get("type", "glob"), pattern.get("value") or "*"
    if kind not in ("glob", "regex", "date_template"):
        raise ConnectorError(f"unknown pattern type {kind!r}; use glob, regex or date_template")
    if kind == "date_template":
        value = expand_date_tokens(value, now, pattern.get("timezone"))
    try:
        rx = re.compile(value) if kind == "regex" else glob_regex(value)
    except re.error as exc:
        raise ConnectorError(f"pattern {value!r} is not a valid regular expression: {exc}") from None
    return (lambda rel: rx.fullmatch(rel) is not None), "/" in value


def order(items: list, ordering: str, path: Callable, mtime: Callable) -> list:
    """``items`` (files of any store: ``path(item)`` a ``/``-separated path, ``mtime(item)`` a number) in
    ``ordering`` (see the module docstring)."""
    if ordering not in ORDERINGS:
        raise ConnectorError(f"unknown ordering {ordering!r}; use one of {', '.join(ORDERINGS)}")
    if ordering == "latest_by_mtime":
        return sorted(items, key=lambda f: (mtime(f), path(f)))[-1:]
    if ordering == "fifo_by_name":
        return sorted(items, key=lambda f: (posixpath.basename(path(f)), path(f)))
    if ordering == "lexicographic":
        return sorted(items, key=path)
    return sorted(items, key=lambda f: (mtime(f), path(f)))


@dataclass(frozen=True)
class FileListing:
    files: list
    warnings: list[str] = field(default_factory=list)
    waited_seconds: float = 0.0


def wait_for(list_once: Callable[[], list], where: str, pattern: dict | None, wait_policy: dict | None, *,
             sleep=time.sleep) -> FileListing:
    """``list_once()``; when nothing matches, again up to ``maxRetries`` times, sleeping ``intervalMinutes``
    between attempts; then ``onMissAction``: alert (default; a warning, 0 rows), skip (0 rows, logged at info)
    or fail (ConnectorError naming ``where`` and the pattern)."""
    policy = wait_policy or {}
    retries, interval = int(policy.get("maxRetries") or 0), float(policy.get("intervalMinutes") or 0) * 60
    action = policy.get("onMissAction") or "alert"
    if action not in MISS_ACTIONS:
        raise ConnectorError(f"unknown onMissAction {action!r}; use alert, skip or fail")
    waited = 0.0
    for attempt in range(retries + 1):
        files = list_once()
        if files:
            return FileListing(files, [], waited)
        if attempt < retries:
            sleep(interval)
            waited += interval
    what = (f"no file in {where} matches {(pattern or {}).get('type', 'glob')} pattern "
            f"{(pattern or {}).get('value', '*')!r} after {retries} retr{'y' if retries == 1 else 'ies'}")
    if action == "fail":
        raise ConnectorError(f"{what}; the wait policy says fail (use onMissAction alert or skip to finish "
                             f"with 0 rows)")
    if action == "alert":
        log.warning("%s; 0 rows read", what)
        return FileListing([], [f"{what}; 0 rows read"], waited)
    log.info("%s; skipped (0 rows)", what)
    return FileListing([], [], waited)
