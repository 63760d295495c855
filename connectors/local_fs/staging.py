"""The driver's side of a local_fs source: list the files before the run and claim them into the run's own
staging folder (atomicity), leave out files every table downstream already holds (the ``_flow_files`` ledger),
and after the run move them to the success or failure folder."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from connectors.base import Finished, Prepared, RunInfo
from connectors.fileledger import skip_loaded
from ir_compiler.errors import FlowError


@dataclass
class PreparedFiles(Prepared):
    """The files of one run: ``paths`` are read; ``staged``/``claim`` hold them in the run's staging folder;
    ``loaded`` are staged files not read (already loaded, or the same bytes as another file)."""

    staged: object = None  # connectors.local_fs.files.StagedFiles (atomicity)
    claim: object = None  # connectors.local_fs.files.Claim (atomicity)
    loaded: list[str] = field(default_factory=list)

    def release(self) -> None:
        if self.claim is not None:  # the files stay in the run's folder; the next run recovers them
            self.claim.release()


def prepare_files(node, run: RunInfo) -> PreparedFiles:
    from connectors.local_fs.files import DEFAULT_ATOMICITY, wait_for_files

    if run.runner == "dataflow":
        return PreparedFiles(warnings=["local_fs files are not read on Dataflow workers (gcs sources are planned)"])
    cfg = node.config
    dump = (lambda m: m.model_dump() if m is not None else None)
    folders = {**DEFAULT_ATOMICITY, **(dump(cfg.atomicity) or {})}
    exclude = [folders[k].split("{", 1)[0] or "." for k in ("stagingFolder", "successFolder", "failureFolder")]
    listing = wait_for_files(cfg.path, dump(cfg.pattern), cfg.ordering, dump(cfg.waitPolicy),
                             exclude=[e for e in exclude if e.strip("./")])
    out = PreparedFiles(warnings=list(listing.warnings))
    if cfg.atomicity is None:
        out.paths = list(listing.files)
        return out
    try:
        _claim(node, cfg, run, listing.files, out)
        skip_loaded(node, run, out)
    except BaseException:
        out.release()
        raise
    return out


def _claim(node, cfg, run: RunInfo, files: list[str], out: PreparedFiles) -> None:
    """Claim the files for this run (its own staging folder + a lock that dies with it), take over the files
    of runs that are provably gone, and fingerprint every file (content identity for ``_flow_files``)."""
    from connectors.local_fs.files import Claim, file_identity
    from ir_compiler.faults import fault

    out.claim = Claim(cfg.path, cfg.atomicity.model_dump(), run.run_id, run.pipeline_id, node.id)
    leftover, notes = out.claim.adopt()  # their loads may have committed: the ledger decides below
    out.warnings += notes
    staged = out.claim.stage(files)
    staged.paths = leftover + staged.paths
    out.staged = staged
    fault("after_claim")
    seen, read, ids = {}, [], []
    for path in staged.paths:
        ident = {**file_identity(path), "path": staged._origin.get(path, path)}
        first = seen.setdefault((ident["hash"], ident["size"]), path)
        if first != path:  # the same bytes twice in one run: one file
            out.loaded.append(path)
            out.warnings.append(f"file {os.path.basename(path)} has the same content as "
                                f"{os.path.basename(first)}; read once")
            continue
        read.append(path)
        ids.append(ident)
    out.paths = read
    out.ledger = [{"index": i, **ident} for i, ident in enumerate(ids)]


def finish_files(node, prepared: PreparedFiles | None, ok: bool, run: RunInfo) -> Finished:
    """Claimed files → success folder (failure folder: a failed run's files and unreadable files; files loaded
    by an earlier run always go to success). When the run failed because a target whose rows combine files
    refused to load (a file broke part-way, see ir_compiler.lower.targets), only the broken files fail: the
    others go back to the input folder, so the next run loads them. A file that cannot be moved stays in
    staging: a warning, and the next run moves it on (``_flow_files`` says it is loaded, so it is not loaded twice)."""
    from connectors.runtime import read_reports
    from ir_compiler.faults import fault

    done = Finished()
    if prepared is None or prepared.staged is None:
        return done
    staged = prepared.staged
    failed_paths = {rep["path"] for rep in read_reports(run.run_dir, "files").values()} if run.run_dir else set()
    fault("before_move")
    loaded = set(prepared.loaded)
    targets = read_reports(run.run_dir, "targets") if run.run_dir else {}
    held = any(node.id in (rep.get("heldBack") or []) for rep in targets.values())
    try:
        if not ok and held:  # a target refused to load because a file broke part-way: that file fails, the
            # others go back to the input folder for the next run (tables that loaded them hold them in the ledger)
            rest = [p for p in staged.paths if p not in loaded and p not in failed_paths]
            staged.put_back(rest)
            staged.commit(failed=failed_paths | (set(staged.paths) - loaded - set(rest)))
            prepared.paths = []
        elif not ok:
            staged.commit(failed=set(staged.paths) - loaded)
            prepared.paths = []
        else:
            prepared.paths = staged.commit(failed=failed_paths, after_each=lambda: fault("after_first_move"))
    except (OSError, FlowError) as exc:
        where = staged.atomicity["successFolder" if ok else "failureFolder"]
        tables, _ = run.table_targets.get(node.id, ([], False))
        ledger = " (their loads are recorded in _flow_files, so they are not loaded twice)" if tables else ""
        done.warnings.append(f"node '{node.id}': could not move input files to {where}: "
                             f"{str(exc).strip() or type(exc).__name__}; they stay in the staging folder and "
                             f"the next run moves them on{ledger}")
        done.degraded = True
    finally:
        prepared.release()
    return done
