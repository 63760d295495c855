"""The ``_flow_files`` ledger as a file source sees it before the run: which of the files it is about to read
every table target downstream already holds (loaded by an earlier run that crashed before moving them on, or the
same bytes under another name), so they are not read again. Shared by local_fs and the remote file sources."""
from __future__ import annotations

import posixpath

from connectors.base import RunInfo


def skip_loaded(node, run: RunInfo, out) -> None:
    """Files that every (table) target downstream already holds in ``_flow_files`` — a crashed run committed
    them but did not move them on — are not read again; they go on to the success folder. ``out`` is the
    source's Prepared with ``paths`` (read these), ``ledger`` (their identities, in the same order), ``loaded``
    and ``warnings``; the files left out move from ``paths`` to ``loaded``."""
    tables, only_tables = run.table_targets.get(node.id, ([], False))
    ids = [e for e in out.ledger if e["index"] >= 0]
    if not tables or not only_tables or not ids:
        return
    from connectors.warehouse import open_warehouse
    from connectors.warehouse.ledger import held, key

    holds = held(open_warehouse(run.warehouse_url), sorted(set(tables)), ids)
    keep = [i for i, ident in enumerate(ids) if not all(key(ident) in h for h in holds.values())]
    if len(keep) == len(ids):
        return
    paths = out.paths
    for i in sorted(set(range(len(ids))) - set(keep)):
        out.loaded.append(paths[i])
        runs = sorted({h[key(ids[i])][:8] for h in holds.values()})
        out.warnings.append(f"file {posixpath.basename(paths[i].rstrip('/'))} was already loaded (run "
                            f"{', '.join(runs)}, recorded in _flow_files); not read again")
    skipped = [{**ids[i], "index": -1} for i in range(len(ids)) if i not in keep]
    out.paths = [paths[i] for i in keep]
    out.ledger = [{**ids[i], "index": k} for k, i in enumerate(keep)] + skipped
