"""Documents submitted to the service may only name local paths inside the service root, and carry secrets only
as references (``env:VAR``).

This is the service's own minimal check, behind :func:`document_issues`; when the product's confinement
(``ir_compiler.confine``) lands, this function delegates to it.
"""
from __future__ import annotations

import os
import re

from ir_compiler.errors import Issue

# keys whose string value names a local file or folder
PATH_KEYS = {"path", "destination", "stagingFolder", "successFolder", "failureFolder", "folder", "directory",
             "dir", "file", "sinkRoot"}
# a source/target/lookup with one of these connectors names a remote location in ``config.path``
REMOTE_CONNECTORS = {"s3", "gcs", "azure_blob", "sftp", "ftp", "http_pull", "kafka_consumer", "kafka_producer",
                     "pubsub_subscription", "pubsub_topic", "kinesis_consumer", "pulsar_consumer"}
SECRET_KEY = re.compile(r"(?i)(secret|password|passwd|token|api_?key|credentials?|private_?key)$")
SECRET_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "cookie"}
REFERENCE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|secret:.+|\$\{params\.[A-Za-z_][A-Za-z0-9_]*\})$")


def document_issues(raw: dict, root: str) -> list[Issue]:
    """Every local path outside ``root`` and every literal secret in the (params-resolved) document."""
    root = os.path.realpath(root)
    issues: list[Issue] = []
    nodes = raw.get("nodes") if isinstance(raw.get("nodes"), list) else []
    source_dirs = [n["config"]["path"] for n in nodes if isinstance(n, dict) and n.get("kind") == "source"
                   and n.get("connector") == "local_fs" and isinstance(n.get("config"), dict)
                   and isinstance(n["config"].get("path"), str)]
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            continue
        node_id = node.get("id") if isinstance(node.get("id"), str) else None
        remote = node.get("connector") in REMOTE_CONNECTORS
        for path, key, value in _walk(node, f"nodes[{i}]"):
            if isinstance(value, str) and key in PATH_KEYS:
                if remote and path == f"nodes[{i}].config.path":
                    continue
                bases = _bases(node, key, root, source_dirs)
                bad = [b for b in bases if not _inside(_resolve(value, b, root), root)]
                if bad:
                    issues.append(Issue(path, f"'{value}' resolves outside the service root {root}; documents "
                                              f"submitted to the service may only name paths inside it",
                                        node_id, "confinement"))
        issues += _secret_issues(node, f"nodes[{i}]", node_id)
    for key in ("errorHandling", "metadata"):
        if isinstance(raw.get(key), dict):
            issues += _secret_issues(raw[key], key, None)
    return issues


def _bases(node: dict, key: str, root: str, source_dirs: list[str]) -> list[str]:
    """Folders a relative value is taken from: atomicity folders from the source folder, an archive destination
    from every source folder (it follows the files that fed the target), anything else from the root."""
    if key in ("stagingFolder", "successFolder", "failureFolder"):
        cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
        return [_resolve(cfg["path"], root, root)] if isinstance(cfg.get("path"), str) else [root]
    if key == "destination" and node.get("kind") == "archive":
        return [_resolve(d, root, root) for d in source_dirs] or [root]
    return [root]


def _resolve(value: str, base: str, root: str) -> str:
    if value.startswith("file://"):
        value = value[7:]
    value = os.path.expanduser(value) if value.startswith("~") else value
    return os.path.realpath(value if os.path.isabs(value) else os.path.join(base, value))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(value, path: str, key: str | None = None):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}", k)
    elif isinstance(value, list):
        for j, v in enumerate(value):
            yield from _walk(v, f"{path}[{j}]", key)
    else:
        yield path, key, value


def _secret_issues(obj, base: str, node_id: str | None) -> list[Issue]:
    out = []
    for path, key, value in _walk(obj, base):
        if not isinstance(value, str) or not value or key is None:
            continue
        header = ".headers." in path and key.lower() in SECRET_HEADERS
        if (SECRET_KEY.search(key) or header) and not REFERENCE.match(value):
            out.append(Issue(path, f"'{key}' holds a literal secret; give a reference such as \"env:VAR\" (the "
                                   f"service never stores secrets)", node_id, "secrets"))
    return out
