"""The cyclic garbage collector during a command's start-up.

Starting a run allocates ~260,000 long-lived objects that the collector tracks (counted by ``gc.freeze`` after a
10-row run's start-up: Beam's, pyarrow's, sqlglot's and pydantic's modules and schemas, then the pipeline graph) and
no cyclic garbage worth collecting; with the collector on, CPython runs repeated collections over that growing
heap (measured: 0.14–0.19 s of a 1.2 s ten-row run). ``flow-beam run``, ``test``, ``validate`` and ``plan``
therefore start with the collector paused; :func:`resume_gc` moves everything allocated so far into the permanent
generation (``gc.freeze``: later collections never scan it again) and turns the collector back on just before the
pipeline runs. Nothing changes for an in-process caller (the service, tests): only a pause made here is resumed
here."""
from __future__ import annotations

import gc

STARTUP_COMMANDS = ("run", "test", "validate", "plan")
_paused = False


def pause_gc(argv: list[str]) -> None:
    """Pause the collector when ``argv`` is a short command that builds a pipeline."""
    global _paused
    if argv and argv[0] in STARTUP_COMMANDS and gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """Freeze what start-up allocated and turn the collector back on (only after :func:`pause_gc`)."""
    global _paused
    if _paused:
        gc.freeze()
        gc.enable()
        _paused = False
