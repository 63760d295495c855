"""The run folder's storage: local paths use the OS directly; ``gs://`` and other schemes (a Dataflow run's
folder under its temp location) go through Beam's FileSystems, so workers anywhere share staged rows and
reports."""
from __future__ import annotations

import os
import uuid


def is_local(path: str) -> bool:
    return "://" not in path


def join(folder: str, *parts: str) -> str:
    if is_local(folder):
        return os.path.join(folder, *parts)
    return "/".join([folder.rstrip("/"), *parts])


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole object (local: temp file + atomic rename)."""
    if is_local(path):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.create(path) as fh:
        fh.write(data)


def read_bytes(path: str) -> bytes:
    if is_local(path):
        with open(path, "rb") as fh:
            return fh.read()
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(path) as fh:
        return fh.read()


def list_names(folder: str) -> list[str]:
    """File names directly in ``folder`` (empty when it does not exist)."""
    if is_local(folder):
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    from apache_beam.io.filesystems import FileSystems
    matches = FileSystems.match([join(folder, "*")])[0].metadata_list
    return sorted(m.path.rsplit("/", 1)[-1] for m in matches)
