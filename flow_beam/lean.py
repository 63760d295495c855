"""Importing Apache Beam without the cloud SDKs a local run does not use.

``import apache_beam`` imports, inside ``try/except ImportError``, every optional IO it finds installed: the Google
Cloud clients (BigQuery, Pub/Sub, GCS, Dataflow), Azure, AWS, MongoDB and aiohttp. Here that is most of Beam's
import time (measured: 1,055 modules instead of 2,114, 0.6 s instead of 1.6 s). For a run on the direct or prism
runner of a document that mentions no cloud resource, :func:`import_beam` makes those optional imports fail once,
so Beam skips them exactly as it does when the extras are not installed. Nothing else changes: the blocker is
removed right after Beam's import, so our own connectors (e.g. ``google.cloud.pubsub``) still import normally
later. Set ``FLOW_BEAM_FULL_IMPORT=1`` to turn this off."""
from __future__ import annotations

import importlib.abc
import logging
import os
import sys

SKIPPED = ("google.cloud", "google.pubsub", "google.pubsub_v1", "google.api_core", "google.auth", "googleapiclient",
           "google_auth_httplib2", "apitools", "oauth2client", "azure", "pymongo", "aiohttp", "boto3", "botocore",
           "apache_beam.io.gcp", "apache_beam.io.azure", "apache_beam.io.aws")
CLOUD_MARKERS = ("gs://", "pubsub", "bigquery", "gcs", "dataflow", "s3://", "azure")
LOCAL_RUNNERS = ("direct", "prism")  # flink: a JVM job server dominates its start-up anyway


class _SkipCloud(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in SKIPPED or name.startswith(tuple(s + "." for s in SKIPPED)):
            raise ImportError(f"{name} is not needed by this run")
        return None


def needs_cloud(runner: str, document_text: str) -> bool:
    """Whether a run may use Beam's cloud IO (conservative: any mention of a cloud resource counts)."""
    text = document_text.lower()
    return runner not in LOCAL_RUNNERS or any(m in text for m in CLOUD_MARKERS)


def import_beam(runner: str, document_path: str | None, params: list[str] = ()) -> None:
    """Import Apache Beam, without its cloud IO when this run is local and neither the document nor a ``--param``
    value names a cloud resource."""
    if "apache_beam" in sys.modules or os.environ.get("FLOW_BEAM_FULL_IMPORT"):
        return
    try:
        with open(document_path or "", encoding="utf-8", errors="replace") as fh:
            text = fh.read() + "\n".join(params)
    except OSError:
        return  # the run reports the unreadable document; Beam is imported normally later
    if needs_cloud(runner, text):
        return
    finder = _SkipCloud()
    # the warnings Beam logs for what it skipped: "Failed to import GCSFileSystem ...", "... compatible bson ..."
    quiet = [logging.getLogger(f"apache_beam.io.{m}") for m in ("filesystems", "mongodbio")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    sys.meta_path.insert(0, finder)
    _lazy_beartype()
    try:
        import apache_beam  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def _lazy_beartype() -> None:
    """Beam's type hints import beartype (``from beartype.door import is_subhint``, ~50-70 ms of start-up) for
    ``is_subhint``, which a run of ours never calls (checked: 0 calls in a run). Until something uses it, the two
    modules Beam imports are stand-ins: calling ``is_subhint`` or reading any other name of them imports the real
    beartype, puts it in their place (in ``sys.modules`` and in Beam's module) and answers from it; so
    ``except BeartypeDoorException`` in Beam catches the real exception from then on."""
    if any(name == "beartype" or name.startswith("beartype.") for name in sys.modules):
        return
    import types

    door, roar = types.ModuleType("beartype.door"), types.ModuleType("beartype.roar")

    def real():
        for name, stand_in in (("beartype.door", door), ("beartype.roar", roar)):
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
        import beartype.door as real_door
        import beartype.roar as real_roar
        hints = sys.modules.get("apache_beam.typehints.typehints")
        if hints is not None:
            hints.is_subhint = real_door.is_subhint
            hints.BeartypeDoorException = real_roar.BeartypeDoorException
        return real_door, real_roar

    class BeartypeDoorException(Exception):  # a stand-in: nothing raises it before the real one is loaded
        pass

    def is_subhint(*args, **kwargs):
        return real()[0].is_subhint(*args, **kwargs)

    def forward(which):
        def attribute(name):
            if name.startswith("__"):  # the import system asks for __path__ & co.: a plain module has none
                raise AttributeError(name)
            return getattr(real()[which], name)
        return attribute

    door.is_subhint, roar.BeartypeDoorException = is_subhint, BeartypeDoorException
    door.__getattr__, roar.__getattr__ = forward(0), forward(1)
    sys.modules["beartype.door"], sys.modules["beartype.roar"] = door, roar
