"""A run's claim on a remote source's files: its own staging folder ``<staging>/<run id>.<node id>/`` and a lease
object ``<staging>/.<run id>.<node id>.lease`` naming the owner (pid, the pid's start time, host, run, pipeline,
source node) and when it last renewed it. A heartbeat thread renews the lease every third of
``claimLeaseSeconds`` while the run lives; :meth:`RemoteClaim.release` stops it and deletes the lease.

Remote stores have no lock that dies with a process (local_fs uses ``flock``), so "the owner is provably gone"
is decided from the lease: the owner ran on this host and its process is dead (or its pid now belongs to another
process: the start times differ) — known at once, however it died — or it is this very process and no longer
holds that claim, or else the lease was not renewed for ``claimLeaseSeconds`` (the hosts' clocks must agree to well within that; use NTP). A folder without a
lease belongs to a run that is over (the lease is written before the first file is claimed and deleted last).

:meth:`RemoteClaim.adopt` takes over the files of gone runs of the same pipeline and source, one ``claim`` per
file (atomic on every store: of two runs recovering one folder each file goes to exactly one), completing what
the dead run left half done: a file caught mid-rename (``.<name>.<hex>.claiming`` on sftp/ftp) gets its name
back; a claim marker it left (object stores' ``<staging>/.claims/``, shared by all runs; each marker names its run) is
dropped, so the input file it guarded can be claimed again.
A live run's folder is never touched. If a lease wrongly looks expired (a driver frozen for longer than the
lease), the files of that run may be taken over while it still reads them: its reads of them then fail (the files
are set aside as unreadable in that run) and the ``_flow_files`` ledger keeps the tables exactly-once.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import posixpath
import socket
import tempfile
import threading

from ir_compiler.errors import ConnectorError

log = logging.getLogger(__name__)

LEASE = ".lease"
CLAIMS = ".claims"  # object stores' claim markers, shared by every run of the staging folder


def proc_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid`` on this host, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"


_ACTIVE: set[str] = set()  # "<run id>.<node id>" of the claims this process holds now
_ACTIVE_LOCK = threading.Lock()


def owner_gone(owner: dict, now: dt.datetime | None = None, mtime: dt.datetime | None = None) -> bool:
    """Whether the run described by a lease is provably over (see the module docstring)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    pid = owner.get("pid")
    if owner.get("host") == socket.gethostname() and isinstance(pid, int):
        start = proc_start(pid)
        if start is None or (start != "?" and owner.get("pidStart") not in (None, start)):
            return True  # its process is dead (or the pid is another process's now)
        if pid == os.getpid():  # this very process: is that claim still held (a long-lived service runs many)?
            with _ACTIVE_LOCK:
                return f"{owner.get('runId')}.{owner.get('nodeId')}" not in _ACTIVE
        # another live process: its heartbeat says whether that run still holds the claim
    lease = float(owner.get("leaseSeconds") or 300)
    try:
        renewed = dt.datetime.fromisoformat(owner["renewedAt"])
    except (KeyError, TypeError, ValueError):
        renewed = mtime
    return renewed is None or now > renewed + dt.timedelta(seconds=lease)


def folder(base: str, sub: str, now=None) -> str:
    """A staging/success/failure folder: ``sub`` (date tokens expanded) relative to ``base`` unless absolute."""
    from connectors.filematch import expand_date_tokens
    sub = expand_date_tokens(sub, now)
    full = sub if sub.startswith("/") else posixpath.join(base or "", sub)
    out = posixpath.normpath(full) if full else ""
    return "" if out == "." else out


def hidden_claiming_name(name: str) -> str | None:
    """``a.csv`` for ``.a.csv.<32 hex>.claiming`` (a rename that a dead run left half done), else None."""
    if name.startswith(".") and name.endswith(".claiming"):
        stem = name[1:-len(".claiming")]
        original, _, tag = stem.rpartition(".")
        if original and len(tag) == 32:
            return original
    return None


class RemoteClaim:
    """A run's hold on one remote source's staging folder (see the module docstring). ``opener()`` opens a new
    store connection (the heartbeat thread uses its own)."""

    def __init__(self, fs, opener, base: str, staging_folder: str, run_id: str, pipeline_id: str, node_id: str,
                 lease_seconds: float = 300):
        self.fs, self.opener = fs, opener
        self.staging = folder(base, staging_folder)
        self.node_id, self.pipeline_id, self.run_id = node_id, pipeline_id, run_id
        self.name = f"{run_id}.{node_id}"
        self.folder = posixpath.join(self.staging, self.name)
        self.lease_path = posixpath.join(self.staging, f".{self.name}{LEASE}")
        # one marker folder for all runs: of two runs claiming one file version, exactly one creates its marker
        self.claims_dir = posixpath.join(self.staging, CLAIMS)
        self._tag = {"run": self.name, "runId": run_id, "pipelineId": pipeline_id, "nodeId": node_id}
        self.lease_seconds = float(lease_seconds)
        self.owner = {"pid": os.getpid(), "pidStart": proc_start(os.getpid()), "host": socket.gethostname(),
                      "runId": run_id, "pipelineId": pipeline_id, "nodeId": node_id, "path": fs.url(base),
                      "leaseSeconds": self.lease_seconds,
                      "startedAt": dt.datetime.now(dt.timezone.utc).isoformat()}
        self._stop = threading.Event()
        with _ACTIVE_LOCK:
            _ACTIVE.add(self.name)
        try:
            self._write_lease(fs)  # before any file is claimed: a folder without a lease is a finished run's
        except BaseException:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self.name)
            raise
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease-{self.name}", daemon=True)
        self._beat.start()

    # ---- the lease -------------------------------------------------------------------------------------------
    def _write_lease(self, fs) -> None:
        body = {**self.owner, "renewedAt": dt.datetime.now(dt.timezone.utc).isoformat()}
        with tempfile.TemporaryDirectory(prefix="fb-lease-") as tmp:
            local = os.path.join(tmp, "lease.json")
            with open(local, "w") as fh:
                json.dump(body, fh)
            fs.write(self.lease_path, local, overwrite=True)

    def _heartbeat(self) -> None:
        fs = None
        try:
            while not self._stop.wait(max(self.lease_seconds / 3, 0.5)):
                try:
                    fs = fs or self.opener()
                    self._write_lease(fs)
                except Exception as exc:  # noqa: BLE001 - a missed renewal is retried; the lease says how long
                    log.warning("could not renew the claim lease %s: %s", self.lease_path, exc)
                    fs = None
        finally:
            if fs is not None:
                fs.close()

    def release(self) -> None:
        """Stop renewing and delete the lease: files still in the run's folder are recovered by the next run."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._beat.join(timeout=60)
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self.name)
        try:
            self.fs.delete(self.lease_path, missing_ok=True)
            if self.fs.connector in ("sftp", "ftp"):
                try:
                    self.fs.fs.rmdir(self.folder)
                except Exception:  # noqa: BLE001 - not empty (the next run recovers it) or never made
                    pass
        except ConnectorError as exc:
            log.warning("could not delete the claim lease %s: %s (it expires by itself)", self.lease_path, exc)

    # ---- taking files -------------------------------------------------------------------------------------------
    def stage(self, infos: list) -> list[tuple[str, object]]:
        """(staged path, listed FileInfo) of each file this run got; files another run took first (or that
        vanished) are left out."""
        out = []
        for info in infos:
            staged = self._claim(info.path)
            if staged is not None:
                out.append((staged, info))
        return out

    def _mine(self, owner: dict, folder_name: str) -> bool:
        node = owner.get("nodeId") or folder_name.partition(".")[2]
        return node == self.node_id and owner.get("pipelineId", self.pipeline_id) == self.pipeline_id

    def _read_lease(self, info) -> dict:
        try:
            with self.fs.open_read(info.path) as fh:
                owner = json.loads(fh.read(1 << 20).decode())
            return owner if isinstance(owner, dict) else {}
        except ConnectorError as exc:
            if getattr(exc, "kind", "") == "missing":
                return {"gone": True}
            raise
        except ValueError:
            return {}

    def adopt(self) -> tuple[list[str], list[str]]:
        """(files taken over from runs that are gone, notes)."""
        try:
            entries = self.fs.list(self.staging, recursive=True, include_hidden=True)
        except ConnectorError as exc:
            if getattr(exc, "kind", "") == "missing":
                return [], []
            raise
        prefix = self.staging.strip("/")
        leases, folders, loose = {}, {}, []
        for info in entries:
            rel = info.path.strip("/")[len(prefix):].lstrip("/") if prefix else info.path.strip("/")
            head, _, rest = rel.partition("/")
            if not rest:
                if head.startswith(".") and head.endswith(LEASE):
                    leases[head[1:-len(LEASE)]] = info
                elif not head.startswith("."):
                    loose.append(info)
            else:
                folders.setdefault(head, []).append((rest, info))
        markers = [info for rest, info in folders.pop(CLAIMS, []) if "/" not in rest]
        gone: set[str] = set()
        taken, notes = [], []
        now = dt.datetime.now(dt.timezone.utc)
        for name in sorted(set(folders) | set(leases)):
            if name == self.name:
                continue
            lease = leases.get(name)
            owner = self._read_lease(lease) if lease is not None else {}
            if not self._mine(owner, name):
                continue  # another source's folder: that source recovers it
            if lease is not None and not owner.get("gone") and not owner_gone(owner, now, lease.mtime):
                continue  # its run is alive
            gone.add(name)
            got = self._take_all(folders.get(name, []))
            if got:
                who = (f" (pid {owner.get('pid', '?')} on {owner.get('host', '?')})" if owner else "")
                notes.append(f"{len(got)} file(s) of interrupted run {name.split('.')[0][:8]}{who} recovered")
            taken += got
            if lease is not None:
                self.fs.delete(lease.path, missing_ok=True)
            if self.fs.connector in ("sftp", "ftp"):
                try:
                    self.fs.fs.rmdir(posixpath.join(self.staging, name))
                except Exception:  # noqa: BLE001 - not empty: another recoverer is taking it right now
                    pass
        for info in loose:  # a file left directly in the staging folder
            got = self._claim(info.path)
            if got:
                taken.append(got)
                notes.append(f"file {info.name} left in the staging folder by an interrupted run recovered")
        self._drop_markers(markers, gone, leases)
        return taken, notes

    def _drop_markers(self, markers: list, gone: set, leases: dict) -> None:
        """Remove the shared claim markers that runs which are over left behind (a run that died mid-claim, or
        whose last marker delete failed), so the input files they guarded can be claimed again. A marker of a
        live run is kept."""
        for info in markers:
            body = self._read_lease(info)
            run = body.get("run")
            if not isinstance(run, str) or run == self.name or body.get("gone"):
                continue
            if run not in gone:
                if run in leases or not self._mine(body, run):
                    continue  # a live run's (its lease was checked above), or another source's
                if self.fs.exists(posixpath.join(self.staging, f".{run}{LEASE}")):
                    continue  # a run that began after the listing
            self.fs.delete(info.path, missing_ok=True)

    def _claim(self, path: str, name: str | None = None):
        return self.fs.claim(path, self.folder, name=name, claims_dir=self.claims_dir, owner=self._tag)

    def _take_all(self, files: list) -> list[str]:
        out = []
        for rest, info in sorted(files, key=lambda f: f[0]):
            if rest.startswith(".claims/"):  # a claim the dead run never finished: its input file is claimable again
                self.fs.delete(info.path, missing_ok=True)
                continue
            if "/" in rest:
                continue
            name = hidden_claiming_name(rest)
            if name is None and rest.startswith("."):
                continue  # an upload's temp file: never a whole input file
            got = self._claim(info.path, name=name or rest)
            if got:
                out.append(got)
        return out
