"""Fault injection for crash tests: ``FLOW_BEAM_FAULT=<point>`` (or ``<point>@<n>``: the n-th time the point is
reached in this process) kills the process with SIGKILL there, as a power cut or an OOM kill would.

The named points (where the engine calls :func:`fault`):

- ``after_claim``: the driver moved the input files into its run's staging folder; nothing read yet.
- ``before_commit``: a target's rows are written inside the warehouse transaction, not yet committed.
- ``after_commit``: a target's warehouse transaction committed (rows and ``_flow_files`` entries); with several
  targets ``after_commit@1`` kills after the first one.
- ``before_move``: the run finished; no input file has been moved to the success/failure folder yet.
- ``after_first_move``: one input file has been moved to the success folder, the others not yet.

Unset (the default) = no effect. A leaf module: anyone may import it.
"""
from __future__ import annotations

import os
import signal

POINTS = ("after_claim", "before_commit", "after_commit", "before_move", "after_first_move")
_HITS: dict[str, int] = {}


def fault(point: str) -> None:
    """Kill this process with SIGKILL if ``FLOW_BEAM_FAULT`` names ``point`` (and its hit count is reached)."""
    wanted = os.environ.get("FLOW_BEAM_FAULT")
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != point:
        return
    _HITS[point] = _HITS.get(point, 0) + 1
    if _HITS[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
