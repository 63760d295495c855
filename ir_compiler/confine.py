"""Path confinement: every path a document names stays inside a root folder (SPEC §6).

With a root (``--root DIR``, ``$FLOW_BEAM_ROOT``, ``RunOptions.root``; the service sets one for every document
submitted to it), each of these must resolve inside it — ``realpath``, so ``..`` and symlinks are resolved — else
a validation error at the field's JSON path:

- a ``local_fs`` source ``config.path`` and its atomicity folders (``stagingFolder``, ``successFolder``,
  ``failureFolder``; relative ones resolve against the source path), date tokens expanded;
- a ``local_fs`` sink ``config.path``;
- an archive node's ``destination`` (relative: against the path of each ``local_fs`` source upstream), date
  tokens expanded;
- the ``config.path`` of a ``local_fs`` lookup (``lookup_join``) and the ``path`` of an enrich ``lookup``
  provider.

Without a root the same places are not confined, with three exceptions that are never intended: atomicity folders
and archive destinations given as RELATIVE paths must stay inside the source folder (no ``..`` out of it), a sink
``prefix`` is a file-name prefix (no ``/``, no ``..``), and none of these paths may hold ``://`` (a URL given where
a local path is read: ``/a/x://y`` would be the folder ``/a/x:/y``; it once skipped the root check).

Limits: the check runs at validation (and again when ``run`` validates); a symlink created inside the root after
validation, or a file inside an input folder that is itself a symlink to elsewhere, is not re-checked per file.
"""
from __future__ import annotations

import os

from ir_compiler.errors import Issue

ENV = "FLOW_BEAM_ROOT"


def effective_root(root: str | None) -> str | None:
    """``root`` if given, else ``$FLOW_BEAM_ROOT`` (empty = none)."""
    return root or os.environ.get(ENV) or None


def _expand(template: str) -> str:
    from connectors.local_fs.files import expand_date_tokens
    try:
        return expand_date_tokens(template)
    except Exception:  # noqa: BLE001 - a bad timezone is reported elsewhere; tokens expand to digits only
        return template


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([folder, path]) == folder
    except ValueError:  # different drives
        return False


def _upstream_sources(pipeline, node) -> list:
    """The source nodes feeding ``node`` (through any chain of inputs)."""
    by_id = {n.id: n for n in pipeline.nodes}
    seen, todo, out = set(), [node], []
    while todo:
        n = todo.pop()
        refs = n.upstream_refs() if hasattr(n, "upstream_refs") else []
        for ref in refs:
            up = by_id.get(str(ref).split(".", 1)[0])
            if up is None or up.id in seen:
                continue
            seen.add(up.id)
            (out.append(up) if up.kind == "source" else todo.append(up))
    return out


class _Checker:
    def __init__(self, root: str | None):
        self.root = os.path.realpath(root) if root else None
        self.issues: list[Issue] = []

    def add(self, path: str, node_id: str | None, message: str) -> None:
        self.issues.append(Issue(path, message, node_id, "rules"))

    def confined(self, value, where: str, node_id: str | None, what: str, base: str | None = None) -> None:
        """``value`` (a document path; relative ones resolve against ``base`` or the working folder)."""
        if not isinstance(value, str) or not value:
            return
        if "://" in value:  # every place checked here is a local path: the OS would read `/a/x://y` as the folder
            self.add(where, node_id, f"{what} {value!r} looks like a URL, but it is a local path here (the file "
                                     f"system would read it as {os.path.normpath(value)!r}); give the folder itself, "
                                     f"or use the store's connector (s3, gcs, azure_blob, sftp, ftp, http_pull)")
            return
        expanded = _expand(value)
        if "\0" in expanded:
            self.add(where, node_id, f"{what} contains a NUL byte")
            return
        if base is not None and "\0" in base:  # the base path's own NUL byte is reported at the base
            return
        if base is not None and not os.path.isabs(expanded):
            real_base = os.path.realpath(base)
            full = os.path.realpath(os.path.join(real_base, expanded))
            if not _inside(full, real_base):  # never intended, root or not
                self.add(where, node_id, f"{what} {value!r} leaves the source folder {base!r} (it resolves to "
                                         f"{full}); name a folder inside it, or an absolute path")
                return
        else:
            full = os.path.realpath(expanded)
        if self.root is not None and not _inside(full, self.root):
            self.add(where, node_id, f"{what} {value!r} resolves to {full}, outside the confinement root "
                                     f"{self.root}; use a path inside the root")


def confinement_issues(pipeline, root: str | None) -> list[Issue]:
    """Every path of ``pipeline`` that escapes ``root`` (or, without a root, its source folder; see above)."""
    c = _Checker(root)
    for i, node in enumerate(pipeline.nodes):
        at = f"nodes[{i}]"
        if node.kind == "source" and _local(node):
            path = node.config.path
            c.confined(path, f"{at}.config.path", node.id, "source path")
            atom = node.config.atomicity
            if atom is not None:
                for key in ("stagingFolder", "successFolder", "failureFolder"):
                    c.confined(getattr(atom, key), f"{at}.config.atomicity.{key}", node.id, key, base=path)
        elif node.kind == "target" and _local(node):
            c.confined(node.config.path, f"{at}.config.path", node.id, "sink path")
            prefix = node.config.prefix
            if isinstance(prefix, str) and ("/" in prefix or "\\" in prefix or prefix in (".", "..")
                                            or "\0" in prefix):
                c.add(f"{at}.config.prefix", node.id, f"prefix {prefix!r} must be a file-name prefix (no '/', "
                                                      f"no '..'): files are written directly in config.path")
        elif node.kind == "archive" and node.destination:
            sources = [s for s in _upstream_sources(pipeline, node) if _local(s) and s.config.path]
            if os.path.isabs(_expand(node.destination)) or not sources:
                c.confined(node.destination, f"{at}.destination", node.id, "archive destination")
            for s in sources:
                c.confined(node.destination, f"{at}.destination", node.id, "archive destination",
                           base=s.config.path)
        elif node.kind == "transform":
            for j, op in enumerate(node.ops):
                lk = getattr(op, "lookup", None)
                if op.op == "lookup_join" and lk is not None and lk.connector == "local_fs":
                    c.confined((lk.config or {}).get("path"), f"{at}.ops[{j}].lookup.config.path", node.id,
                               "lookup path")
        elif node.kind == "enrich" and node.provider.kind == "lookup":
            c.confined(node.provider.model_dump().get("path"), f"{at}.provider.path", node.id, "lookup path")
    return _dedupe(c.issues)


def _local(node) -> bool:
    """A source or sink whose config.path is on this machine (capability ``local_paths``)."""
    from connectors.registry import SINKS, SOURCES
    connector = (SOURCES if node.kind == "source" else SINKS).get(node.connector or "")
    return connector is not None and connector.capabilities.local_paths


def _dedupe(issues: list[Issue]) -> list[Issue]:
    return list(dict.fromkeys(issues))
