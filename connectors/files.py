"""local_fs source: listing (glob / regex / date_template), ordering, wait policy, and atomic staging.

Orderings (all return absolute paths):
- ``latest_by_mtime``: only the newest file (by modification time);
- ``fifo_by_name``: every file, oldest name first (file name ascending);
- ``lexicographic``: every file, by full path ascending;
- ``process_all``: every file, oldest modification time first.
Files inside the staging/success/failure folders and hidden folders are never listed.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ir_compiler.errors import ConnectorError

_TOKENS = {"{YYYY-MM-DD}": "%Y-%m-%d", "{YYYYMMDD}": "%Y%m%d", "{YYYY}": "%Y", "{MM}": "%m", "{DD}": "%d",
           "{HH}": "%H", "{mm}": "%M", "{ss}": "%S"}


def expand_date_tokens(template: str, now: dt.datetime | None = None, timezone: str | None = None) -> str:
    """Replace ``{YYYY}``-style tokens with ``now`` expressed in ``timezone`` (UTC by default)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    try:
        local = now.astimezone(ZoneInfo(timezone)) if timezone else now.astimezone(dt.timezone.utc)
    except ZoneInfoNotFoundError:
        raise ConnectorError(f"unknown timezone {timezone!r}; use an IANA name such as America/Los_Angeles") \
            from None
    for token, fmt in _TOKENS.items():
        template = template.replace(token, local.strftime(fmt))
    return template


def _matcher(pattern: dict | None, now):
    if not pattern:
        return lambda name: True
    kind, value = pattern.get("type", "glob"), pattern["value"]
    if kind == "regex":
        rx = re.compile(value)
        return lambda name: rx.fullmatch(name) is not None
    if kind == "date_template":
        value = expand_date_tokens(value, now, pattern.get("timezone"))
    return lambda name: fnmatch.fnmatchcase(name, value)


def list_files(path: str, pattern: dict | None = None, ordering: str = "process_all", *,
               now: dt.datetime | None = None) -> list[str]:
    """Matching files directly in ``path`` (not in sub-folders), in the order the ordering defines."""
    if not os.path.isdir(path):
        raise ConnectorError(f"input folder {path} does not exist; create it, fix config.path, or mount the "
                             f"storage that holds it")
    match = _matcher(pattern, now)
    files = [os.path.abspath(os.path.join(path, n)) for n in os.listdir(path)
             if not n.startswith(".") and os.path.isfile(os.path.join(path, n)) and match(n)]
    if ordering == "latest_by_mtime":
        return sorted(files, key=lambda f: (os.path.getmtime(f), f))[-1:]
    if ordering == "fifo_by_name":
        return sorted(files, key=lambda f: (os.path.basename(f), f))
    if ordering == "lexicographic":
        return sorted(files)
    return sorted(files, key=lambda f: (os.path.getmtime(f), f))


@dataclass(frozen=True)
class FileListing:
    files: list[str]
    warnings: list[str] = field(default_factory=list)
    waited_seconds: float = 0.0


def wait_for_files(path, pattern, ordering, wait_policy: dict | None, *, sleep=time.sleep, now=None) -> FileListing:
    """List files; when none match, retry per the wait policy, then alert (warn), skip or fail."""
    policy = wait_policy or {}
    retries, interval = int(policy.get("maxRetries", 0)), float(policy.get("intervalMinutes", 1)) * 60
    waited = 0.0
    for attempt in range(retries + 1):
        files = list_files(path, pattern, ordering, now=now)
        if files:
            return FileListing(files, [], waited)
        if attempt < retries:
            sleep(interval)
            waited += interval
    what = f"no file in {path} matches {pattern['value'] if pattern else '*'}"
    action = policy.get("onMissAction", "alert")
    if action == "fail":
        raise ConnectorError(f"{what} after {retries} retr{'y' if retries == 1 else 'ies'}; the wait policy "
                             f"says fail (use onMissAction alert or skip to finish with 0 rows)")
    return FileListing([], [f"{what}; 0 rows read"] if action == "alert" else [], waited)


def _unique_dest(folder: str, name: str) -> str:
    dest, n = os.path.join(folder, name), 1
    stem, ext = os.path.splitext(name)
    while os.path.exists(dest):
        dest = os.path.join(folder, f"{stem}.{n}{ext}")
        n += 1
    return dest


def _move(src: str, folder: str) -> str:
    os.makedirs(folder, exist_ok=True)
    dest = _unique_dest(folder, os.path.basename(src))
    os.replace(src, dest) if os.stat(src).st_dev == os.stat(folder).st_dev else shutil.move(src, dest)
    return dest


def _folder(base: str, sub: str, now=None) -> str:
    sub = expand_date_tokens(sub, now)
    return sub if os.path.isabs(sub) else os.path.join(base, sub)


class StagedFiles:
    """Files moved into the staging folder before any byte is read; then to success or failure.

    A manifest in the staging folder lists them, so a crashed run's files are found again (and, since that
    run never committed, read by the next run).
    """

    def __init__(self, base: str, atomicity: dict, paths: list[str], origins: list[str]):
        self.base, self.atomicity, self.paths, self.origins = base, atomicity, paths, origins

    @classmethod
    def stage(cls, files: list[str], base: str, atomicity: dict) -> "StagedFiles":
        staging = _folder(base, atomicity.get("stagingFolder", ".processing/"))
        paths = [_move(f, staging) for f in files]
        return cls(base, atomicity, paths, list(files))

    def _finish(self, key: str, default: str, paths: list[str], now=None) -> list[str]:
        folder = _folder(self.base, self.atomicity.get(key, default), now)
        return [_move(p, folder) for p in paths if os.path.exists(p)]

    def commit(self, now: dt.datetime | None = None, failed: set[str] | frozenset = frozenset()) -> list[str]:
        """Staged → success folder (unreadable files, given in ``failed``, → failure folder)."""
        self._finish("failureFolder", ".failed/", [p for p in self.paths if p in failed])
        return self._finish("successFolder", ".archive/{YYYY-MM-DD}/", [p for p in self.paths if p not in failed],
                            now)

    def fail(self) -> list[str]:
        return self._finish("failureFolder", ".failed/", self.paths)

    def to_json(self) -> str:
        return json.dumps({"base": self.base, "atomicity": self.atomicity, "paths": self.paths,
                           "origins": self.origins})

    @classmethod
    def from_json(cls, text: str) -> "StagedFiles":
        d = json.loads(text)
        return cls(d["base"], d["atomicity"], d["paths"], d["origins"])


def recover_staged(base: str, atomicity: dict) -> list[str]:
    """Files a crashed run left in staging: they were never committed, so the next run reads them."""
    staging = _folder(base, atomicity.get("stagingFolder", ".processing/"))
    if not os.path.isdir(staging):
        return []
    return sorted(os.path.join(staging, n) for n in os.listdir(staging) if os.path.isfile(os.path.join(staging, n)))
