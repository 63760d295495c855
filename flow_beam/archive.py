"""The ``archive`` node: after its target committed, move, copy or delete the files that fed it
(date-templated destination relative to the source folder, optional gzip)."""
from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil


def _unique(path: str) -> str:
    base, n = path, 1
    while os.path.exists(path):
        stem, ext = os.path.splitext(base)
        path, n = f"{stem}.{n}{ext}", n + 1
    return path


def archive_file(path: str, action: str, folder: str | None, compress: str | None) -> str | None:
    """Move, copy or delete one file; the copy is written under a temporary name and renamed, so a failure (disk
    full) never leaves a partial file at the destination, and a move removes the source only after that."""
    if action == "delete":
        os.remove(path)
        return None
    os.makedirs(folder, exist_ok=True)
    dest = _unique(os.path.join(folder, os.path.basename(path) + (".gz" if compress == "gzip" else "")))
    if action == "move" and compress != "gzip":
        try:
            os.rename(path, dest)  # same file system: atomic
            return dest
        except OSError:
            pass
    tmp = dest + ".part"
    try:
        if compress == "gzip":
            with open(path, "rb") as src, gzip.open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
        else:
            shutil.copy2(path, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if action == "move":
        os.remove(path)
    return dest


def run_archives(checked, result, inputs) -> None:
    from connectors.local_fs.files import expand_date_tokens
    from connectors.registry import get_source

    graph = checked.graph
    for node in checked.pipeline.nodes:
        if node.kind != "archive":
            continue
        r = result.nodes[node.id]
        target = result.nodes.get(node.input)
        if target is None or target.status != "loaded":
            r.status = "skipped"
            r.warnings.append(f"target '{node.input}' did not commit; nothing archived")
            continue
        moved = []
        for src in sorted(u for u in graph.upstream(node.input) if graph.nodes[u].kind == "source"):
            if not get_source(graph.nodes[src].connector).capabilities.reads_files:
                continue
            if not get_source(graph.nodes[src].connector).capabilities.local_paths:
                r.warnings.append(f"source '{src}' reads a remote store: archive acts on local files only (its "
                                  f"atomicity folders move its files on the store); nothing archived for it")
                continue
            cfg = graph.nodes[src].config
            folder = None
            if node.destination:
                dest = expand_date_tokens(node.destination, dt.datetime.now(dt.timezone.utc), None)
                folder = dest if os.path.isabs(dest) else os.path.join(cfg.path, dest)
            for path in inputs.paths.get(src, []):
                if not os.path.exists(path):
                    continue
                try:
                    out = archive_file(path, node.action, folder, node.compress)
                except OSError as exc:  # the load committed: the rows stay; the file stays where it is
                    r.status = "failed"
                    r.error = (f"could not {node.action} {path}: {exc.strerror or exc}; the load committed and the "
                               f"file is still where it was (a re-run reads it again unless the source uses "
                               f"atomicity): archive it by hand or fix the destination")
                    break
                moved.append(out or path)
            if r.status == "failed":
                break
        r.rowsIn = r.rowsOut = 0
        r.files = moved
        if r.status == "failed" and result.status == "completed":
            result.status = "completed_with_errors"


def skip_archives(checked, result) -> None:
    """A failed run archives nothing (a re-run must find every file), each archive node saying so."""
    for node in checked.pipeline.nodes:
        if node.kind == "archive":
            r = result.nodes[node.id]
            r.status = "skipped"
            r.warnings.append("the run failed: nothing archived (a re-run reads the files again)")
