"""The driver's side of a remote file source (s3, gcs, azure_blob, sftp, ftp, http_pull): list the files before
the run (pattern, ordering, wait policy), claim them into the run's own staging folder on the store (atomicity,
:mod:`.claims`), fingerprint them (SHA-256 of the bytes, streamed: the ``_flow_files`` identity), leave out files
every table downstream already holds, and after the run move them to the success or failure folder.

Moves never overwrite: a name taken at the destination makes the file ``a.1.csv`` (``a.2.csv``…), unless the file
there has the same bytes (a crash between a move's copy and its delete left it there): then the staged copy is
dropped."""
from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
from dataclasses import dataclass, field

from connectors.base import Finished, Prepared, RunInfo
from connectors.fileledger import skip_loaded
from connectors.filematch import DEFAULT_ATOMICITY, matcher, order, wait_for
from connectors.remote.claims import RemoteClaim, folder
from ir_compiler.errors import ConnectorError, FlowError


def open_store(connector: str, cfg):
    from connectors.remote.fs import open_fs
    return open_fs(connector, cfg)


@dataclass
class PreparedRemote(Prepared):
    """The files of one run: ``paths`` (store paths) are read; ``claim`` holds them in the run's staging folder;
    ``origins`` maps a staged path to where it was listed; ``loaded`` are staged files not read (already loaded,
    or the same bytes as another file); ``identities`` the fingerprint of each path read."""

    claim: RemoteClaim | None = None
    origins: dict = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)
    identities: dict = field(default_factory=dict)
    fs: object = None

    def release(self) -> None:
        if self.claim is not None:
            self.claim.release()
        if self.fs is not None:
            self.fs.close()
            self.fs = None


def atomicity_of(cfg) -> dict | None:
    atom = getattr(cfg, "atomicity", None)
    return None if atom is None else {**DEFAULT_ATOMICITY, **atom.model_dump()}


def relative(fs, base: str, path: str) -> str:
    """``path`` relative to the folder ``base`` (``/`` separators), from the store URLs of both."""
    b, p = fs.url(base).rstrip("/"), fs.url(path)
    return p[len(b) + 1:] if p.startswith(b + "/") else p.rsplit("/", 1)[-1]


def list_matching(fs, cfg, now=None) -> list:
    """The FileInfos of the files under ``cfg.path`` the pattern takes, in ``cfg.ordering`` (hidden files and the
    atomicity folders are never listed)."""
    pattern = cfg.pattern.model_dump() if cfg.pattern else None
    match, recursive = matcher(pattern, now)
    atom = atomicity_of(cfg) or {}
    exclude = [folder("", atom[k].split("{", 1)[0]).strip("/") + "/" for k in atom]
    exclude = [e for e in exclude if e.strip("./")]
    out = []
    for info in fs.list(cfg.path, recursive=recursive):
        rel = relative(fs, cfg.path, info.path)
        if any(rel.startswith(e) for e in exclude):
            continue
        if match(rel):
            out.append(info)
    return order(out, cfg.ordering, path=lambda f: f.path,
                 mtime=lambda f: f.mtime.timestamp() if f.mtime is not None else 0.0)


def identity(fs, path: str) -> dict:
    """``{hash, size}``: SHA-256 of the file's bytes (streamed from the store, not stored locally), its size."""
    digest, size = hashlib.sha256(), 0
    with fs.open_read(path) as fh:
        while True:
            block = fh.read(1 << 20)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return {"hash": digest.hexdigest(), "size": size}


def prepare_remote(connector: str, node, run: RunInfo) -> PreparedRemote:
    cfg = node.config
    fs = open_store(connector, cfg)  # a ConnectorError names the endpoint: nothing was touched
    out = PreparedRemote(fs=fs)
    try:
        where = fs.url(cfg.path)
        listing = wait_for(lambda: list_matching(fs, cfg), where, cfg.pattern.model_dump() if cfg.pattern else None,
                           cfg.waitPolicy.model_dump() if cfg.waitPolicy else None)
        out.warnings += listing.warnings
        out.warnings += [w for w in getattr(fs, "warnings", []) if w not in out.warnings]  # e.g. dead links
        atom = atomicity_of(cfg)
        if atom is None:
            out.paths = [f.path for f in listing.files]
            if getattr(fs, "read_only", False):  # http_pull: no staging, but the ledger still skips loaded files
                _fingerprint(fs, [(f.path, f) for f in listing.files], out)
                skip_loaded(node, run, out)
            return out
        _claim(connector, node, run, fs, atom, listing.files, out)
        if not listing.files and (out.paths or out.loaded):  # "0 rows read" is not true: files were recovered
            out.warnings = [w for w in out.warnings if w not in listing.warnings]
        skip_loaded(node, run, out)
    except BaseException:
        out.release()
        raise
    return out


def _claim(connector, node, run, fs, atom, files, out: PreparedRemote) -> None:
    from ir_compiler.faults import fault

    cfg = node.config
    out.claim = RemoteClaim(fs, lambda: open_store(connector, cfg), cfg.path, atom["stagingFolder"], run.run_id,
                            run.pipeline_id, node.id, getattr(cfg, "claimLeaseSeconds", 300))
    leftover, notes = out.claim.adopt()  # their loads may have committed: the ledger decides
    out.warnings += notes
    staged = [(p, None) for p in leftover] + out.claim.stage(files)
    fault("after_claim")
    _fingerprint(fs, staged, out)


def _fingerprint(fs, staged: list, out: PreparedRemote) -> None:
    """Identity of every file; the same bytes twice in one run are read once."""
    seen, read, ids = {}, [], []
    for path, info in staged:
        origin = fs.url(info.path) if info is not None else fs.url(path)
        out.origins[path] = origin
        ident = {**identity(fs, path), "path": origin,
                 "mtime": info.mtime.timestamp() if info is not None and info.mtime is not None else None}
        first = seen.setdefault((ident["hash"], ident["size"]), path)
        if first != path:
            out.loaded.append(path)
            out.warnings.append(f"file {posixpath.basename(path)} has the same content as "
                                f"{posixpath.basename(first)}; read once")
            continue
        read.append(path)
        ids.append(ident)
        out.identities[path] = ident
    out.paths = read
    out.ledger = [{"index": i, **ident} for i, ident in enumerate(ids)]


def _same_bytes(fs, path: str, ident: dict | None) -> bool:
    if not ident:
        return False
    try:
        info = fs.info(path)
        return info.size == ident["size"] and identity(fs, path)["hash"] == ident["hash"]
    except ConnectorError:
        return False


def place(fs, src: str, dest_folder: str, name: str, ident: dict | None = None) -> str:
    """Move the staged ``src`` into ``dest_folder`` as ``name`` (``stem.1.ext``… when taken); never overwrites."""
    from connectors.remote.fs import unique_name

    for n in range(10000):
        dest = posixpath.join(dest_folder, unique_name(name, n)) if dest_folder else unique_name(name, n)
        try:
            return fs.move(src, dest)
        except ConnectorError as exc:
            if getattr(exc, "kind", "") != "exists":
                raise
            if _same_bytes(fs, dest, ident):  # an earlier move of this very file was cut short after its copy
                fs.delete(src, missing_ok=True)
                return dest
    raise ConnectorError(f"no free name for {name} in {fs.url(dest_folder)}")


def finish_remote(node, prepared: PreparedRemote | None, ok: bool, run: RunInfo) -> Finished:
    """Claimed files → success folder (failure folder: a failed run's files and unreadable files; files loaded by
    an earlier run always go to success). A file that cannot be moved stays in staging: a warning, and the next
    run moves it on (``_flow_files`` says it is loaded, so it is not loaded twice)."""
    from connectors.runtime import read_reports
    from ir_compiler.faults import fault

    done = Finished()
    if prepared is None or prepared.claim is None:
        if prepared is not None:
            prepared.release()
        return done
    cfg, fs = node.config, prepared.fs
    atom = atomicity_of(cfg)
    failed = {rep["path"] for rep in read_reports(run.run_dir, "files").values()} if run.run_dir else set()
    fault("before_move")
    now = dt.datetime.now(dt.timezone.utc)
    staged = list(prepared.paths) + list(prepared.loaded)
    loaded = set(prepared.loaded)
    moved, key = [], None
    try:
        for path in staged:
            to_failure = (not ok and path not in loaded) or path in failed
            key = "failureFolder" if to_failure else "successFolder"
            dest = folder(cfg.path, atom[key], now)
            name = posixpath.basename(prepared.origins.get(path, path).rstrip("/"))
            try:
                out = place(fs, path, dest, name, prepared.identities.get(path))
            except ConnectorError as exc:
                if getattr(exc, "kind", "") == "missing":  # already moved on (or taken over by a recovering run)
                    continue
                raise
            if not to_failure:
                moved.append(fs.url(out))
                fault("after_first_move")
        prepared.paths = moved
    except (OSError, FlowError) as exc:
        tables, _ = run.table_targets.get(node.id, ([], False))
        ledger = " (their loads are recorded in _flow_files, so they are not loaded twice)" if tables else ""
        done.warnings.append(f"node '{node.id}': could not move input files to {atom[key or 'successFolder']}: "
                             f"{str(exc).strip() or type(exc).__name__}; they stay in the staging folder "
                             f"{fs.url(prepared.claim.folder)} and the next run moves them on{ledger}")
        done.degraded = True
    finally:
        prepared.release()
    return done
