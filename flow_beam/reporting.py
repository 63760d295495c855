"""The one place that turns results and errors into terminal output."""
from __future__ import annotations

import json
import os
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ir_compiler.errors import FlowError, Issue

def _console(stderr: bool) -> Console:
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else 160  # logs and pipes get a wide table
    return Console(stderr=stderr, highlight=False, emoji=False, width=width)  # user text is never markup


console = _console(False)
err_console = _console(True)


def print_issues(issues: list[Issue], *, header: str | None = None) -> None:
    errors = [i for i in issues if i.severity == "error"]
    notes = [i for i in issues if i.severity != "error"]
    if header:
        err_console.print(escape(header), soft_wrap=True)
    for label, group in (("[red]error[/red]", errors), ("[yellow]note[/yellow] ", notes)):
        for i in group:
            node = escape(f" [node {i.node_id}]") if i.node_id else ""
            err_console.print(f"  {label} {escape(i.path or '<document>')}{node}: {escape(i.message)}",
                              soft_wrap=True)


def _n(v: int) -> str:
    return f"{v:,}" if v else "·"


def print_result(result) -> None:
    table = Table(title=escape(f"run {result.runId[:12]} · {result.pipelineId} · {result.runner}"),
                  title_justify="left")
    for col in ("node", "kind", "in", "out", "quarantined", "filtered", "loaded", "status", "warnings / error"):
        table.add_column(col, justify="right" if col in ("in", "out", "quarantined", "filtered", "loaded")
                         else "left", overflow="fold", no_wrap=col not in ("warnings / error",),
                         ratio=1 if col == "warnings / error" else None)
    for node_id, r in result.nodes.items():
        notes = ([r.error] if r.error else []) + r.warnings
        style = {"failed": "red", "aborted": "red", "completed_with_errors": "yellow"}.get(r.status, "")
        table.add_row(escape(node_id), escape(r.kind), _n(r.rowsIn), _n(r.rowsOut), _n(r.rowsQuarantined),
                      _n(r.rowsFiltered), _n(r.rowsLoaded),
                      f"[{style}]{escape(r.status)}[/{style}]" if style else escape(r.status),
                      escape("; ".join(notes)[:400]))
    console.print(table)
    colour = {"completed": "green", "completed_with_errors": "yellow", "failed": "red"}[result.status]
    console.print(f"[{colour}]{result.status}[/{colour}] in {result.durationMs / 1000:.1f}s"
                  + (f" — {escape(result.error)}" if result.error else ""), soft_wrap=True)
    for w in result.warnings:
        console.print(f"[yellow]warning[/yellow] {escape(w)}", soft_wrap=True)


def dump_json(data, path: str | None, what: str = "--output") -> None:
    """JSON to stdout (``path`` None or ``-``) or to a file, written whole or not at all (see :func:`write_text`)."""
    text = json.dumps(data, indent=2, default=str)
    if path in (None, "-"):
        sys.stdout.write(text + "\n")
    else:
        write_text(path, text + "\n", what)


def check_writable(path: str, what: str = "--output") -> None:
    """Fail early, with the option's name, when ``path`` cannot be a file we write (missing folder, a folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FlowError(f"cannot write {what} {path}: the folder {folder} does not exist; create it first")
    if os.path.isdir(path):
        raise FlowError(f"cannot write {what} {path}: it is a folder; give a file path")


def write_text(path: str, text: str, what: str = "--output") -> None:
    """Write ``text`` to ``path`` whole or not at all: a regular file is written next to it and renamed over it
    (a full disk leaves the old file, or none, never half a file); a device or pipe is written directly.
    Every failure is a FlowError naming the option and the reason."""
    check_writable(path, what)
    regular = not os.path.exists(path) or os.path.isfile(path)
    tmp = f"{os.path.join(os.path.dirname(os.path.abspath(path)), '.' + os.path.basename(path))}." \
          f"{os.getpid()}.tmp" if regular else None
    try:
        with open(tmp or path, "x" if tmp else "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if tmp:
                os.fsync(fh.fileno())
        if tmp:
            os.replace(tmp, path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise FlowError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def print_runs(runs: list[dict]) -> None:
    if not runs:
        console.print("no runs recorded yet")
        return
    table = Table(title="recent runs", title_justify="left")
    for col in ("run id", "pipeline", "status", "runner", "started", "duration"):
        table.add_column(col, no_wrap=True)
    for r in runs:
        table.add_row(*(escape(str(v)) for v in (r["run_id"][:12], r["pipeline_id"], r["status"], r["runner"],
                                                  r["started_at"])), f"{(r['duration_ms'] or 0) / 1000:.1f}s")
    console.print(table)
