"""local_fs source: listing (glob / regex / date_template), ordering, wait policy, and atomic staging.

Matching: the pattern is matched against the file NAME of files directly in ``path``. A pattern whose value
contains ``/`` is matched against the path relative to ``path`` (``/`` separators) over all sub-folders
(a glob ``*`` does not cross ``/``; ``**/`` matches any depth). Hidden files and folders (``.name``) and the
folders given in ``exclude`` (the staging/success/failure folders) are never listed. No pattern = every file.
``date_template`` expands the date tokens at ``now`` in ``pattern.timezone`` (UTC by default), then globs.

Orderings (all return absolute paths):
- ``latest_by_mtime``: only the single newest file (modification time; ties → greatest path);
- ``fifo_by_name``: every file, by file name ascending (oldest-named first; ties by full path);
- ``lexicographic``: every file, by full path ascending;
- ``process_all``: every file, oldest modification time first (ties by path).

Atomicity (:class:`StagedFiles`): files are MOVED into the staging folder before any byte is read, then to the
success folder (date tokens expanded at commit time) or, on a failed run, to the failure folder. Relative
folders are relative to ``path``. A move never overwrites: an existing ``a.csv`` at the destination makes the
file ``a.1.csv`` (``a.2.csv``…). The move out of the input folder is an atomic rename to a unique name, so
when two runs race for one file exactly one gets it. Moves across file systems fall back to copy + delete.

Claims (:class:`Claim`): a run stages a source's files into its OWN folder ``<staging>/<run id>.<node id>/``
and holds an exclusive ``flock`` on ``<staging>/.<run id>.<node id>.lock`` (which also names the owner: pid,
host, start time) while it runs. The kernel releases the lock when the process dies, however it dies, so a
later run recovers a folder's files only when its lock can be taken: the owner is provably gone. A live run's
files are never touched. The lock file is created under a temporary name, locked, then renamed into place, so
a visible lock file is always locked by a live owner or by nobody. Needs ``flock`` that works across the
processes sharing the folder (a local file system; on NFS use one host per input folder).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
import uuid

from connectors.filematch import (DEFAULT_ATOMICITY, MISS_ACTIONS, ORDERINGS, FileListing,  # noqa: F401
                                  expand_date_tokens, glob_regex, matcher, wait_for)
from ir_compiler.errors import ConnectorError

log = logging.getLogger(__name__)

# the store-independent parts (patterns, date tokens, orderings, the wait loop) are shared with the remote stores
_glob_regex, _matcher = glob_regex, matcher


def _walk(path: str, recursive: bool, exclude: set[str]):
    """(relative path with / separators, absolute path) of the visible files under ``path``."""
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.abspath(os.path.join(root, d)) not in exclude) if recursive else []
        for name in names:
            full = os.path.abspath(os.path.join(root, name))
            if not name.startswith(".") and os.path.isfile(full):
                yield os.path.relpath(full, os.path.abspath(path)).replace(os.sep, "/"), full


def _order(files: list[str], ordering: str) -> list[str]:
    mtime = {}
    if ordering in ("latest_by_mtime", "process_all"):
        for f in files:
            try:
                mtime[f] = os.path.getmtime(f)
            except FileNotFoundError:  # another run took it between the listing and now: not ours to read
                pass
        files = [f for f in files if f in mtime]
    if ordering == "latest_by_mtime":
        return sorted(files, key=lambda f: (mtime[f], f))[-1:]
    if ordering == "fifo_by_name":
        return sorted(files, key=lambda f: (os.path.basename(f), f))
    if ordering == "lexicographic":
        return sorted(files)
    return sorted(files, key=lambda f: (mtime[f], f))


def list_files(path: str, pattern: dict | None = None, ordering: str = "process_all", *,
               now: dt.datetime | None = None, exclude: list[str] | tuple = ()) -> list[str]:
    """Absolute paths of the matching files in ``path``, in ``ordering`` (see the module docstring)."""
    if ordering not in ORDERINGS:
        raise ConnectorError(f"unknown ordering {ordering!r}; use one of {', '.join(ORDERINGS)}")
    if not os.path.isdir(path):
        raise ConnectorError(f"input folder {path} does not exist (or is not a folder); create it, fix "
                             f"config.path (a folder, or one existing file), or mount the storage that holds it")
    match, recursive = _matcher(pattern, now)
    skip = {os.path.abspath(e if os.path.isabs(e) else os.path.join(path, e)) for e in exclude}
    files = [full for rel, full in _walk(path, recursive, skip) if match(rel)]
    return _order(files, ordering)


def wait_for_files(path, pattern, ordering, wait_policy: dict | None, *, sleep=time.sleep, now=None,
                   exclude=()) -> FileListing:
    """List files; when none match, list again up to ``maxRetries`` times, sleeping ``intervalMinutes``
    between attempts; then ``onMissAction``: alert (default; a warning, 0 rows), skip (0 rows, logged at
    info) or fail (ConnectorError naming the folder and pattern). A missing folder fails at once.
    """
    return wait_for(lambda: list_files(path, pattern, ordering, now=now, exclude=exclude), path, pattern,
                    wait_policy, sleep=sleep)


def _unique_dest(folder: str, name: str) -> str:
    stem, ext = os.path.splitext(name)
    if ext == ".gz":  # a.csv.gz → a.1.csv.gz
        stem, inner = os.path.splitext(stem)
        ext = inner + ext
    dest, n = os.path.join(folder, name), 1
    while os.path.lexists(dest):
        dest, n = os.path.join(folder, f"{stem}.{n}{ext}"), n + 1
    return dest


def _place(src: str, folder: str, name: str) -> str:
    """Give ``src`` (already in ``folder``) the first free name ``name``, ``stem.1.ext``…; never overwrites."""
    while True:
        dest = _unique_dest(folder, name)
        try:
            os.link(src, dest)  # fails if dest appeared meanwhile: try the next free name
        except FileExistsError:
            continue
        except OSError:  # no hard links here: checked rename
            os.replace(src, dest)
            return dest
        os.unlink(src)
        return dest


_MOVING = ".moving."  # ``.<uuid>.moving.<name>``: a file whose move was cut short, complete, adoptable


def _move(src: str, folder: str, name: str | None = None) -> str | None:
    """Take ``src`` into ``folder`` (as ``name``, default its own name) without overwriting; None if ``src``
    vanished (another run took it). The first step is an atomic rename to a hidden ``.<uuid>.moving.<name>``:
    of several racing runs exactly one gets the file, and a crash right after it leaves a complete file that
    :meth:`Claim.adopt` recognises. Across file systems: copy to ``.<uuid>.copying``, rename, delete the
    original (a crash during the copy leaves the original where it was)."""
    os.makedirs(folder, exist_ok=True)
    name = name or os.path.basename(src)
    tmp = os.path.join(folder, f".{uuid.uuid4().hex}{_MOVING}{name}")
    try:
        os.rename(src, tmp)  # atomic: exactly one of several racing runs gets the file
    except FileNotFoundError:
        return None
    except OSError:  # another file system: copy, then delete the original
        part = os.path.join(folder, f".{uuid.uuid4().hex}.copying")
        try:
            shutil.copy2(src, part)
        except FileNotFoundError:
            _unlink(part)
            return None
        except OSError:  # e.g. the destination is full: nothing half-copied stays behind
            _unlink(part)
            raise
        os.rename(part, tmp)
        os.unlink(src)
    return _place(tmp, folder, name)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _same_file(a: str, b: str) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
        if os.path.getsize(a) != os.path.getsize(b):
            return False
    except OSError:
        return False
    return file_identity(a)["hash"] == file_identity(b)["hash"]


def _finish_move(src: str, folder: str, name: str) -> str:
    """A staged file (only its run touches it) → ``folder`` as ``name`` (``stem.1.ext``… when taken), never
    overwriting: hard-link, then drop the staged name. A crash between the two leaves the file under both
    names; moving it again then only drops the staged name (the file already there is the same file)."""
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(name)
    if ext == ".gz":
        stem, inner = os.path.splitext(stem)
        ext = inner + ext
    n = 0
    while True:
        dest = os.path.join(folder, name if n == 0 else f"{stem}.{n}{ext}")
        n += 1
        if os.path.lexists(dest):
            if _same_file(src, dest):
                os.unlink(src)
                return dest
            continue
        try:
            os.link(src, dest)
        except FileExistsError:
            continue
        except OSError:  # another file system (or no hard links): copy under a hidden name, then place it
            part = os.path.join(folder, f".{uuid.uuid4().hex}.copying")
            try:
                shutil.copy2(src, part)
            except OSError:
                _unlink(part)
                raise
            dest = _place(part, folder, name)
        os.unlink(src)
        return dest


def _folder(base: str, sub: str, now=None, timezone=None) -> str:
    sub = expand_date_tokens(sub, now, timezone)
    return os.path.abspath(sub if os.path.isabs(sub) else os.path.join(base, sub))


class StagedFiles:
    """Input files moved into staging; :meth:`commit` → success folder, :meth:`fail` → failure folder.

    ``paths`` are the staged files (read these), ``origins`` where each came from. Persist :meth:`to_json`
    to recover a crashed run's files with :meth:`from_json` (or find them with :func:`recover_staged`).
    """

    def __init__(self, base: str, atomicity: dict | None, paths: list[str], origins: list[str]):
        self.base, self.atomicity = base, {**DEFAULT_ATOMICITY, **(atomicity or {})}
        self.paths, self.origins = paths, origins
        self._origin = dict(zip(paths, origins))  # fixed now: callers may prepend recovered paths to .paths

    @classmethod
    def stage(cls, files: list[str], base: str, atomicity: dict | None, into: str | None = None) -> "StagedFiles":
        """Move ``files`` into the staging folder (or ``into``, a run's own folder in it); files that vanished
        meanwhile (another run took them) are left out."""
        atom = {**DEFAULT_ATOMICITY, **(atomicity or {})}
        staging = into or _folder(base, atom["stagingFolder"])
        moved = [(_move(f, staging), f) for f in files]
        return cls(base, atom, [m for m, _ in moved if m], [f for m, f in moved if m])

    def _finish(self, key: str, paths: list[str], now=None, timezone=None, after_each=None) -> list[str]:
        folder = _folder(self.base, self.atomicity[key], now, timezone)
        moved = []
        for p in paths:
            if os.path.exists(p):
                moved.append(_finish_move(p, folder, os.path.basename(self._origin.get(p, p))))  # name before staging
                if after_each is not None:
                    after_each()
        return moved

    def commit(self, now: dt.datetime | None = None, failed=frozenset(), timezone: str | None = None,
               after_each=None) -> list[str]:
        """Staged → success folder (date tokens at ``now`` in ``timezone``, UTC by default); returns the new
        paths. Staged files listed in ``failed`` (unreadable ones) go to the failure folder instead.
        ``after_each`` is called after each file moved to the success folder.
        """
        failed = set(failed)
        self._finish("failureFolder", [p for p in self.paths if p in failed], now, timezone)
        return self._finish("successFolder", [p for p in self.paths if p not in failed], now, timezone, after_each)

    def put_back(self, paths) -> list[str]:
        """Staged files → back where each came from (the input folder), for the next run to read; returns the
        new paths. A crash half-way leaves a file under both names: the next run reads one (same content)."""
        out = []
        for p in paths:
            if os.path.exists(p):
                origin = self._origin.get(p, p)
                out.append(_finish_move(p, os.path.dirname(origin), os.path.basename(origin)))
        return out

    def fail(self, now: dt.datetime | None = None) -> list[str]:
        """Staged → failure folder (a failed run); returns the new paths."""
        return self._finish("failureFolder", self.paths, now)

    def to_json(self) -> str:
        return json.dumps({"base": self.base, "atomicity": self.atomicity, "paths": self.paths,
                           "origins": self.origins})

    @classmethod
    def from_json(cls, text: str) -> "StagedFiles":
        d = json.loads(text)
        return cls(d["base"], d["atomicity"], d["paths"], d["origins"])


def recover_staged(base: str, atomicity: dict | None) -> list[str]:
    """Files a crashed run left in the staging folder, by name.

    That run never committed, so its output is not trusted as done: the next run reads these files again
    (at-least-once for a crash between writing output and committing) and then commits or fails them.
    """
    atom = {**DEFAULT_ATOMICITY, **(atomicity or {})}
    staging = _folder(base, atom["stagingFolder"])
    if not os.path.isdir(staging):
        return []
    return sorted(os.path.join(staging, n) for n in os.listdir(staging)
                  if not n.startswith(".") and os.path.isfile(os.path.join(staging, n)))


# ---- claims: a run's own staging folder, held by a lock that dies with the run ------------------------------
def file_identity(path: str) -> dict:
    """``{hash, size, mtime}`` of a file: SHA-256 of its bytes (read in 1 MiB blocks), its size in bytes."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 20)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return {"hash": digest.hexdigest(), "size": size, "mtime": os.path.getmtime(path)}


def _try_lock(path: str):
    """An fd holding an exclusive flock on ``path``, or None when another live process holds it (or it is gone)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _owner(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 65536).decode() or "{}")
    except (OSError, ValueError):
        return {}


class Claim:
    """A run's hold on one source's staging folder: its own folder ``<staging>/<run id>.<node id>/`` and an
    exclusive ``flock`` on ``<staging>/.<run id>.<node id>.lock`` for as long as the run lives.

    :meth:`stage` moves input files into the run's folder (an atomic rename: of several racing runs exactly
    one gets a file); :meth:`adopt` takes over the files of runs that are provably gone (their lock is free)
    and loose files left in the staging folder by older versions; :meth:`release` drops the lock and the
    (empty) folder once the files are moved on.
    """

    def __init__(self, base: str, atomicity: dict | None, run_id: str, pipeline_id: str, node_id: str):
        import fcntl
        import socket

        self.base, self.atomicity = base, {**DEFAULT_ATOMICITY, **(atomicity or {})}
        self.staging = _folder(base, self.atomicity["stagingFolder"])
        self.node_id, self.pipeline_id = node_id, pipeline_id
        self.name = f"{run_id}.{node_id}"
        self.folder = os.path.join(self.staging, self.name)
        self.lock_path = os.path.join(self.staging, f".{self.name}.lock")
        os.makedirs(self.staging, exist_ok=True)
        tmp = os.path.join(self.staging, f".{uuid.uuid4().hex}.lock-new")
        self._fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
        os.write(self._fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "runId": run_id,
                                       "pipelineId": pipeline_id, "nodeId": node_id, "path": os.path.abspath(base),
                                       "startedAt": dt.datetime.now(dt.timezone.utc).isoformat()}).encode())
        os.rename(tmp, self.lock_path)  # visible only once locked
        os.makedirs(self.folder, exist_ok=True)

    def stage(self, files: list[str]) -> StagedFiles:
        return StagedFiles.stage(files, self.base, self.atomicity, into=self.folder)

    def _mine(self, owner: dict, folder_name: str) -> bool:
        node = owner.get("nodeId") or folder_name.partition(".")[2]
        return node == self.node_id and owner.get("pipelineId", self.pipeline_id) == self.pipeline_id

    def _take_all(self, folder: str) -> list[str]:
        out = []
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        visible = {os.stat(os.path.join(folder, n)).st_ino for n in names if not n.startswith(".")}
        for name in names:
            src = os.path.join(folder, name)
            if not os.path.isfile(src):
                continue
            if name.startswith(".") and _MOVING in name:  # its move into that folder was cut short
                if os.stat(src).st_ino in visible:  # ... after it got its final name too: drop the extra name
                    _unlink(src)
                    continue
                name = name.split(_MOVING, 1)[1]
            elif name.endswith(".copying"):  # an unfinished copy: its original is still where it was
                _unlink(src)
                continue
            elif name.startswith("."):
                continue
            moved = _move(src, self.folder, name)
            if moved:
                out.append(moved)
        return out

    def adopt(self) -> tuple[list[str], list[str]]:
        """(files taken over from runs that are gone, notes). A folder whose lock is held is left alone."""
        taken, notes = [], []
        for entry in sorted(os.listdir(self.staging)):
            full = os.path.join(self.staging, entry)
            if entry.startswith(".") and entry.endswith(".lock") and full != self.lock_path:
                fd = _try_lock(full)
                if fd is None:
                    continue  # its run is alive (or another run is recovering it right now)
                try:
                    folder = os.path.join(self.staging, entry[1:-5])
                    owner = _owner(fd)
                    if not self._mine(owner, entry[1:-5]):
                        continue  # another source's folder: that source recovers it
                    got = self._take_all(folder)
                    if got:
                        notes.append(f"{len(got)} file(s) of interrupted run {owner.get('runId', '?')[:8]} "
                                     f"(pid {owner.get('pid', '?')} on {owner.get('host', '?')}) recovered")
                    taken += got
                    _rmdir(folder)
                    if not os.path.isdir(folder):
                        os.unlink(full)
                finally:
                    os.close(fd)
            elif not entry.startswith(".") and os.path.isdir(full) and full != self.folder:
                if not os.path.exists(os.path.join(self.staging, f".{entry}.lock")) and self._mine({}, entry):
                    got = self._take_all(full)  # a folder whose lock is gone: its run is over
                    taken += got
                    _rmdir(full)
            elif not entry.startswith(".") and os.path.isfile(full):
                moved = _move(full, self.folder)  # a loose file left by an older version's interrupted run
                if moved:
                    taken.append(moved)
                    notes.append(f"file {entry} left in the staging folder by an interrupted run recovered")
        return taken, notes

    def release(self) -> None:
        """Drop the run's folder (when empty) and its lock. Files still in the folder stay there, and the next
        run recovers them (the lock dies with this process)."""
        if self._fd is None:
            return
        try:
            _rmdir(self.folder)
            if not os.path.isdir(self.folder):
                try:
                    os.unlink(self.lock_path)
                except FileNotFoundError:
                    pass
        finally:
            os.close(self._fd)
            self._fd = None


def _rmdir(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:  # not empty or gone
        pass
