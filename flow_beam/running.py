"""Running a document: check → stage input files → build the Beam pipeline → run → collect the result →
move input files to success/failure folders → archive. The only module that owns a beam.Pipeline run."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from connectors.splits import splits_pay
from connectors.warehouse import open_warehouse, redact_url, warehouse_url
from flow_beam.results import (NodeResult, RunResult, balance_problem, metric_counts, note_beam_result, now_iso,
                               partial_metrics)
from flow_beam.runners import beam_args, make_pipeline
from flow_beam.startup import resume_gc
from ir_compiler.check import CheckedPipeline, check_document, default_context
from ir_compiler.errors import FlowError
from ir_compiler.lower.build import build_pipeline
from ir_compiler.lower.context import RunContext, read_reports


@dataclass
class RunOptions:
    runner: str = "direct"
    warehouse: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    beam_args: list[str] = field(default_factory=list)
    flink_master: str | None = None
    test_inputs: dict[str, list[dict]] | None = None
    capture: tuple[str, ...] = ()
    keep_run_dir: bool = False
    run_dir: str | None = None
    progress: Callable[[str], None] | None = None
    buckets: int = 8
    record_history: bool = True
    dataflow: object = None  # flow_beam.runners.DataflowProfile for --runner dataflow
    job_file: str | None = None  # dry runs write the Dataflow job graph here
    sink_root: str | None = None  # embedded tests: file sinks write under this folder
    streaming: bool | None = None  # None: streaming when a stream source runs on prism, flink or dataflow
    stop_after_idle_s: float | None = None  # streaming: end the run once no partition got a message this long
    root: str | None = None  # confinement root for every path of the document (default $FLOW_BEAM_ROOT)
    run_id: str | None = None  # set by a caller that must know the id before the run starts (the service)


def _tested(opts: RunOptions, node) -> bool:
    return opts.test_inputs is not None and node.id in opts.test_inputs


def streaming_mode(checked: CheckedPipeline, opts: RunOptions) -> bool:
    """A pipeline with a (non-test) unbounded source runs unbounded on prism/flink/dataflow, or when asked;
    on the direct runner it drains what the streams hold now (a bounded run)."""
    from connectors.registry import get_source

    streams = [n for n in checked.pipeline.nodes if n.kind == "source" and not _tested(opts, n)
               and not get_source(n.connector).capabilities.bounded]
    if not streams:
        return False
    if opts.streaming is None:
        return opts.runner in ("prism", "flink", "dataflow")
    if opts.streaming and opts.runner == "direct":
        from flow_beam.runners import RunnerError
        raise RunnerError("streaming runs need --runner prism, flink or dataflow (the direct runner drains the "
                          "topics as a bounded run; drop --streaming or pick another runner)")
    return opts.streaming


@dataclass
class _Inputs:
    run: Any = None  # connectors.base.RunInfo: what the connectors' prepare/finish see of the run
    prepared: dict = field(default_factory=dict)  # source id -> connectors.base.Prepared (files, offsets...)
    ledger: dict = field(default_factory=dict)  # target id -> LoadRequest.ledger (files for _flow_files)

    @property
    def paths(self) -> dict[str, list[str]]:
        """source id -> the input files it reads (after the run: where they went)."""
        return {k: v.paths for k, v in self.prepared.items() if v is not None and v.paths}


def _stage_inputs(checked: CheckedPipeline, opts: RunOptions, streaming: bool = False,
                  run_id: str | None = None, url: str = "", run_dir: str = "") -> _Inputs:
    """Every source's driver-side preparation (``Source.prepare``: list and claim files, plan offsets), then the
    ledger of every table target (the input identities its load records in ``_flow_files``)."""
    from connectors.base import RunInfo
    from connectors.registry import get_source

    out = _Inputs(run=RunInfo(run_id or uuid.uuid4().hex, checked.pipeline.id, opts.runner,
                              url or warehouse_url(opts.warehouse), run_dir, streaming,
                              {n.id: _table_targets(checked, n.id) for n in checked.pipeline.nodes
                               if n.kind == "source"}))
    try:
        for node in checked.pipeline.nodes:
            if node.kind != "source" or _tested(opts, node):
                continue
            source = get_source(node.connector)
            if not source.capabilities.prepares:
                continue
            try:
                out.prepared[node.id] = source.prepare(node, out.run)
            except FlowError as exc:
                exc.node_id = exc.node_id or node.id
                raise
    except BaseException:
        for prepared in out.prepared.values():  # the files stay in the run's folder; the next run recovers them
            if prepared is not None:
                prepared.release()
        raise
    _plan_ledger(checked, out, out.run.run_id)
    return out


def _table_targets(checked, source_id: str) -> tuple[list, bool]:
    """(the table names of the table targets downstream of a source, whether every target downstream is a
    table)."""
    graph = checked.graph
    targets = [graph.nodes[n] for n in graph.order if graph.nodes[n].kind == "target"
               and source_id in graph.upstream(n)]
    tables = [t.schema_ for t in targets if t.connector is None]
    return tables, len(tables) == len(targets)


_ROW_WISE = {"source", "validate", "branch", "enrich", "target"}


def _by_file(checked, target_id: str) -> str | None:
    """The one source whose file index the target's rows still carry (every node between them keeps rows as
    they are: no aggregation, deduplication or join), else None."""
    graph = checked.graph
    ups = graph.upstream(target_id)
    sources = [n for n in ups if graph.nodes[n].kind == "source"]
    if len(sources) != 1:
        return None
    for n in ups:
        node = graph.nodes[n]
        if node.kind == "transform" and any(op.op in ("aggregate", "summarize", "deduplicate") for op in node.ops):
            return None
        if node.kind not in _ROW_WISE and node.kind != "transform":
            return None
    return sources[0]


def _plan_ledger(checked, out: _Inputs, run_id: str) -> None:
    """Per table target: the input identities of the sources it loads (they commit with its rows)."""
    graph = checked.graph
    for tid in graph.order:
        node = graph.nodes[tid]
        if node.kind != "target" or node.connector is not None:
            continue
        srcs = [s for s in sorted(graph.upstream(tid)) if s in out.prepared and out.prepared[s] is not None
                and out.prepared[s].ledger is not None]
        if not srcs:
            continue
        files = [{**entry, "source": s} for s in srcs for entry in out.prepared[s].ledger]
        files = [{"source": f["source"], "index": f["index"], **{k: v for k, v in f.items()
                                                                 if k not in ("source", "index")}} for f in files]
        by_file = _by_file(checked, tid)
        out.ledger[tid] = {"files": files, "by_file": by_file if by_file in srcs else None, "run_id": run_id}


def _load_lookups(checked: CheckedPipeline, url: str, warnings: list | None = None) -> dict:
    """Every lookup table, read once on the driver: one row per key, the first wins; rows that repeated a key are
    counted in a run warning (never dropped without a word)."""
    from connectors.lookups import read_enrich_lookup, read_lookup
    from ir_compiler.ops.lookup import prepare_lookup

    out: dict = {}
    repeated = []
    for node in checked.pipeline.nodes:
        if node.kind == "enrich" and node.provider.kind == "lookup":
            out[("enrich", node.id)], dropped = read_enrich_lookup(node.provider.model_dump(), url)
            repeated.append((f"node {node.id} (enrich lookup)", dropped))
        if node.kind != "transform":
            continue
        for i, op in enumerate(node.ops):
            if op.op == "lookup_join":
                raw = read_lookup(op, url)
                out.setdefault(node.id, {})[i] = prepare_lookup(op, raw)
                repeated.append((f"node {node.id} ops[{i}] (lookup_join)", raw.num_rows - out[node.id][i].num_rows))
    if warnings is not None:
        warnings += [f"{where}: {n} lookup row(s) repeated a key; the first row of each key was used"
                     for where, n in repeated if n]
    return out


def run_document(source, opts: RunOptions | None = None, checked: CheckedPipeline | None = None) -> RunResult:
    """Run a pipeline document and return its RunResult (never raises for run-time failures)."""
    opts = opts or RunOptions()
    url = warehouse_url(opts.warehouse)
    started, t0 = now_iso(), time.monotonic()
    result = RunResult(runId=opts.run_id or uuid.uuid4().hex, pipelineId="?", status="failed", runner=opts.runner,
                       startedAt=started, warehouse=redact_url(url))
    run_dir = opts.run_dir or _run_dir(opts, result.runId)
    inputs = _Inputs()
    recording = partial_metrics()  # the counters of the work that finished, for a run that fails midway
    partial = recording.__enter__()
    try:
        if opts.runner == "dataflow":  # every missing Dataflow option at once, before anything is touched
            from flow_beam.runners import DataflowProfile, RunnerError
            problems = (opts.dataflow or DataflowProfile()).problems()
            if problems:
                raise RunnerError("the Dataflow profile is incomplete: " + "; ".join(problems))
        if checked is None:
            from ir_compiler.confine import effective_root
            checked = check_document(source, opts.params, default_context(open_warehouse(url)),
                                     root=effective_root(opts.root))
        from ir_compiler.secrets import register_env, secret_env_names
        register_env(secret_env_names(checked.raw))  # scrubbed from every text this run stores or prints
        result.pipelineId = checked.pipeline.id
        result.nodes = {n.id: NodeResult(kind=n.kind) for n in checked.pipeline.nodes}
        streaming = streaming_mode(checked, opts)
        inputs = _stage_inputs(checked, opts, streaming, result.runId, url, run_dir)
        beam_result = _execute(checked, opts, url, run_dir, result, inputs, streaming)
        if opts.runner == "dataflow":  # submitted (or dry run): the job runs on Dataflow, not here
            result.status = "completed"
        else:
            _collect(checked, beam_result, run_dir, result, inputs, streaming)
    except FlowError as exc:
        result.status, result.error = "failed", str(exc)
        if exc.node_id and exc.node_id in result.nodes:
            result.nodes[exc.node_id].status, result.nodes[exc.node_id].error = "failed", exc.message
        else:  # raised by a worker step (an aggregate's overflow...): the step's name starts with its node id
            _fail_step_node(exc, result)
        _collect_partial(checked, partial, run_dir, result, inputs)
    except Exception as exc:  # noqa: BLE001 - a runner/worker failure becomes a failed result, not a traceback
        result.status, result.error = "failed", _short(exc)
        _fail_step_node(exc, result)
        _collect_partial(checked, partial, run_dir, result, inputs)
    finally:
        recording.__exit__(None, None, None)
        _finish_files(checked, result, inputs, run_dir)
        if not opts.keep_run_dir and opts.run_dir is None and "://" not in run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        from ir_compiler.secrets import scrub_obj
        scrub_obj(result)  # errors and warnings may quote an answer that echoed a secret
        result.finishedAt = now_iso()
        result.durationMs = int((time.monotonic() - t0) * 1000)
        if checked is not None and opts.record_history and opts.runner != "dataflow":
            from flow_beam.history import record_run
            record_run(result, url)
    return result


def _run_dir(opts: RunOptions, run_id: str) -> str:
    """Where workers stage rows and write reports: a temp folder, or under the temp location on Dataflow."""
    temp = getattr(opts.dataflow, "temp_location", None) if opts.runner == "dataflow" else None
    if temp:
        return f"{temp.rstrip('/')}/flow-beam/{run_id}"
    return tempfile.mkdtemp(prefix=f"flow-beam-{run_id[:8]}-")


def _fail_step_node(exc: Exception, result: RunResult) -> None:
    """The node whose Beam step raised ``exc`` (``[while running 'node/…']``) is marked failed with the error."""
    step = re.search(r"while running '([^/']+)", str(exc))
    if step and step.group(1) in result.nodes:
        node = result.nodes[step.group(1)]
        node.status, node.error = "failed", result.error


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    flow = [ln for ln in lines if "FlowError" in ln or "LoadError" in ln or "ConnectorError" in ln]
    return (flow[-1] if flow else lines[-1] if lines else text)[:2000]


def _execute(checked, opts: RunOptions, url: str, run_dir: str, result: RunResult, inputs: _Inputs,
             streaming: bool = False):
    ctx = RunContext(run_id=result.runId, pipeline_id=checked.pipeline.id, run_dir=run_dir, warehouse_url=url,
                     test_inputs=opts.test_inputs, capture=opts.capture, files=inputs.paths, buckets=opts.buckets,
                     retry=checked.pipeline.errorHandling.retry if checked.pipeline.errorHandling else None,
                     sink_root=opts.sink_root, prepared=inputs.prepared,
                     streaming=streaming, idle_stop_s=opts.stop_after_idle_s,
                     on_dataflow=opts.runner == "dataflow", ledger=inputs.ledger,
                     split_files=splits_pay(opts.runner, opts.beam_args))
    lookups = _load_lookups(checked, url, result.warnings)
    if opts.runner == "dataflow":
        from flow_beam.runners import DataflowProfile, dataflow_args
        profile = opts.dataflow or DataflowProfile()
        profile.streaming = profile.streaming or streaming
        args = dataflow_args(profile, checked.pipeline.id, opts.beam_args)
    else:
        from flow_beam.runners import job_name_args, streaming_args
        extra = (streaming_args(opts.runner, opts.stop_after_idle_s is not None) if streaming else []) + \
            job_name_args(opts.runner, checked.pipeline.id, result.runId, opts.beam_args) + list(opts.beam_args)
        args = beam_args(opts.runner, extra, opts.flink_master)
    p = make_pipeline(opts.runner, args)
    lowered = build_pipeline(p, checked, ctx, lookups)
    result.warnings += lowered.warnings
    if opts.progress:
        opts.progress(f"running {checked.pipeline.id} on {opts.runner}" + (
            " (streaming: Ctrl-C stops it)" if streaming else ""))
    resume_gc()  # start-up is over: the run itself collects as usual (flow_beam/startup.py)
    beam_result = p.run()
    note_beam_result(beam_result)  # a failure while waiting still has its metrics
    if streaming and opts.runner == "flink":
        from flow_beam.runners import readers_in_this_process
        if opts.stop_after_idle_s is not None or readers_in_this_process(args):
            return _await_streaming_on_flink(checked, opts, ctx, lookups, args, result, inputs, beam_result)
    if opts.runner == "dataflow" and getattr(opts.dataflow, "dry_run", False):
        _write_job_graph(beam_result, opts.job_file or f"{checked.pipeline.id}-dataflow-job.json", result)
        return beam_result
    if opts.runner == "dataflow":  # like a Flex Template launcher: submitted, not awaited
        result.warnings.append(f"submitted to Dataflow as job {getattr(beam_result, 'job_id', lambda: '?')()}; "
                               f"follow it in the Dataflow console")
        return beam_result
    try:
        beam_result.wait_until_finish()
    except KeyboardInterrupt:
        if not streaming:
            raise
        from flow_beam.runners import cancel_run
        cancel_run(beam_result, opts.runner, opts.flink_master, args)
        result.warnings.append(STOPPED_BY_USER)
    finally:
        _release_streaming_state(result.runId)
    return beam_result


def _await_streaming_on_flink(checked, opts: RunOptions, ctx, lookups, args, result: RunResult, inputs: _Inputs,
                              beam_result):
    """A streaming run on Flink: an idle-stopped one is stopped once every row is loaded
    (runners.stop_when_drained); one without an idle stop runs until stopped. A job whose readers Flink never
    started (seen now and then with Beam's portable Flink runner before --finish_bundle_before_checkpointing:
    the job stays RUNNING with no record moved) read and committed nothing: it is cancelled and submitted again (FLOW_BEAM_FLINK_START_ATTEMPTS submissions
    at most, default 3)."""
    from flow_beam.runners import JobDidNotStart, cancel_run, stop_when_drained, wait_job_gone, wait_started
    targets = [n.id for n in checked.pipeline.nodes if n.kind == "target"]
    readers = _stream_readers(checked, opts, inputs)
    attempts = max(1, int(os.environ.get("FLOW_BEAM_FLINK_START_ATTEMPTS", "3")))
    try:
        for attempt in range(1, attempts + 1):
            try:
                if opts.stop_after_idle_s is not None:
                    result.warnings += stop_when_drained(beam_result, opts.flink_master, args, result.runId,
                                                         targets, readers)
                else:
                    wait_started(beam_result, result.runId, readers)
                break
            except JobDidNotStart as exc:
                cancel_run(beam_result, "flink", opts.flink_master, args)
                wait_job_gone(beam_result, opts.flink_master, args)
                if attempt == attempts:
                    raise JobDidNotStart(f"{exc} ({attempts} submissions; FLOW_BEAM_FLINK_START_ATTEMPTS): the "
                                         f"jobs read and committed nothing; run again") from None
                result.warnings.append(f"{exc}; the job read nothing: cancelled and submitted again "
                                       f"(submission {attempt + 1} of at most {attempts})")
                _release_streaming_state(result.runId)
                p = make_pipeline(opts.runner, args)
                build_pipeline(p, checked, ctx, lookups)
                beam_result = p.run()
                note_beam_result(beam_result)
        beam_result.wait_until_finish()
    except KeyboardInterrupt:
        cancel_run(beam_result, opts.runner, opts.flink_master, args)
        result.warnings.append(STOPPED_BY_USER)
    finally:
        _release_streaming_state(result.runId)
    return beam_result


def _release_streaming_state(run_id: str) -> None:
    """After a run (or a cancelled submission): unpin DuckDB files kept open by streaming pane commits and drop
    the run's process-wide reader/target state (only when loaded: importing them just to find nothing to do cost
    ~0.2 s per run)."""
    import sys
    if "connectors.warehouse.duckdb" in sys.modules:
        sys.modules["connectors.warehouse.duckdb"].unpin_all()
    if "ir_compiler.lower.streaming" in sys.modules:
        sys.modules["ir_compiler.lower.streaming"].forget_run(run_id)


STOPPED_BY_USER = ("streaming run stopped by the user (Ctrl-C); committed panes stay, the next run resumes from the "
                   "committed offsets")


def _stream_readers(checked, opts: RunOptions, inputs: _Inputs) -> int:
    """How many unbounded readers a streaming run starts (each reports when it ends: the run may then stop)."""
    from connectors.registry import get_source

    total = 0
    for n in checked.pipeline.nodes:
        if n.kind != "source" or _tested(opts, n):
            continue
        source = get_source(n.connector)
        if source.capabilities.streams:
            total += source.stream_readers(n, inputs.prepared.get(n.id))
    return total


def _write_job_graph(beam_result, path: str, result: RunResult) -> None:
    """The job request and the Beam pipeline graph (every transform, named after its node), offline."""
    import json

    from google.protobuf.json_format import MessageToDict

    job = getattr(beam_result, "job", None)
    if job is None:
        raise FlowError("this Beam version returned no job graph for a dry run")
    graph = MessageToDict(job.proto_pipeline)
    steps = sorted(t.get("uniqueName", "") for t in graph.get("components", {}).get("transforms", {}).values())
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"job": json.loads(job.json()), "steps": steps, "pipeline": graph}, fh, indent=1)
    result.warnings.append(f"dry run: the Dataflow job graph was written to {path}; nothing was submitted")


def _collect(checked, beam_result, run_dir: str, result: RunResult, inputs: _Inputs, streaming=False) -> None:
    counts = metric_counts(beam_result)
    targets = read_reports(run_dir, "targets")
    checks = read_reports(run_dir, "checks")
    signals = read_reports(run_dir, "signals")
    failed_files = read_reports(run_dir, "files")
    side = read_reports(run_dir, "side_tables")
    from ir_compiler.lower.gates import collect_failures
    failures = _abort_totals(collect_failures(signals), counts)
    for node in checked.pipeline.nodes:
        r, c = result.nodes[node.id], counts.get(node.id, {})
        _fill_counts(node, r, c, inputs)
        if node.id in checks:
            r.checks = checks[node.id]["checks"]
            r.warnings += [f"dataset check {x['check']}: {x['message']}" for x in r.checks
                           if not x["passed"] and x["onFail"] == "warn"]
        for key, rep in side.items():
            if rep.get("error") and key.endswith(node.id):
                r.warnings.append(f"could not write {rep['table']}: {rep['error']}")
        for rep in failed_files.values():
            if node.kind == "source" and rep["path"] in inputs.paths.get(node.id, []):
                r.warnings.append(f"unreadable file {os.path.basename(rep['path'])}: {rep['error']}")
        _node_status(node, r, targets.get(node.id), [m for m in failures if m.startswith(f"node '{node.id}'")])
        problem = None if streaming else balance_problem(node, r)  # panes re-emit and replays skip rows
        if problem:
            r.warnings.append(f"row balance does not hold: {problem}")
        kept_nowhere = _quarantined_nowhere(checked, node, r)
        if kept_nowhere:
            r.warnings.append(kept_nowhere)
            if r.status == "completed":
                r.status = "completed_with_errors"
        if r.error:  # a gated target's reasons: each abort rule once, with all its rows
            r.error = "; ".join(_abort_totals(r.error.split("; "), counts))
    _run_status(result, failures)


def _abort_totals(failures: list[str], counts: dict) -> list[str]:
    """An abort rule reports per batch (and each gated target sees the report): one message per rule, with the
    rows of every batch (the rule's ``abort:<id>`` counter), and each other reason once."""
    import re
    out = []
    for f in failures:
        m = re.match(r"^node '(?P<node>[^']+)': rule (?P<rid>\S+) \((?P<why>.*)\) failed on \d+ row\(s\) and its "
                     r"onFail is abort$", f, re.DOTALL)
        total = counts.get(m["node"], {}).get(f"abort:{m['rid']}") if m else None
        if total:
            f = f"node '{m['node']}': rule {m['rid']} ({m['why']}) failed on {total} row(s) and its onFail is abort"
        if f not in out:
            out.append(f)
    return out


def _quarantined_nowhere(checked, node, r: NodeResult) -> str | None:
    """A validate node's quarantined rows with no table, no reader of its quarantine port and no DLQ are counted
    but stored nowhere: say so (SPEC: row errors are never silently lost)."""
    quarantined = r.rowsQuarantined - r.rowsErrored
    if node.kind != "validate" or quarantined <= 0 or checked.pipeline.dlq_enabled:
        return None
    if node.quarantine is not None and getattr(node.quarantine, "table", None):
        return None
    port = f"{node.id}.quarantine"
    for other in checked.pipeline.nodes:
        refs = [getattr(other, "input", None), *(getattr(other, "inputs", None) or [])]
        if port in refs:
            return None
    return (f"{quarantined} quarantined row(s) were counted but kept nowhere: set quarantine.table, read "
            f"'{port}' from a node, or enable errorHandling.dlq to keep them")


def _fill_counts(node, r: NodeResult, c: dict, inputs: _Inputs) -> None:
    r.rowsIn, r.rowsOut = c.get("rows_in", 0), c.get("rows_out", 0)
    r.rowsErrored = c.get("rows_errored", 0)
    r.rowsQuarantined = c.get("rows_quarantined", 0) + r.rowsErrored
    r.rowsFiltered, r.rowsLoaded = c.get("rows_filtered", 0), c.get("rows_loaded", 0)
    if node.kind == "target":  # streaming: rows of replayed or stale panes, and upsert keys repeated in a pane
        r.rowsSkipped = c.get("rows_replay_skipped", 0)
    prepared = inputs.prepared.get(node.id)
    r.warnings += prepared.warnings if prepared is not None else []
    r.warnings += [f"rule {k[5:]}: {v} row(s) failed (onFail warn)" for k, v in c.items()
                   if k.startswith("warn:") and v]
    r.warnings += [f"{k[5:]}: {v}" for k, v in c.items() if k.startswith("note:") and v and "cache" not in k]
    if node.kind == "branch":
        names = [x.name for x in node.routes] + ([node.otherwise] if node.otherwise else [])
        r.routes = {name: c.get(f"route:{name}", 0) for name in names}  # a route no row took: 0, not absent
    if node.kind == "transform" and any(op.op in ("aggregate", "summarize") for op in node.ops):
        r.rowsCombined = max(0, r.rowsIn - r.rowsOut - r.rowsFiltered - r.rowsQuarantined - c.get("rows_late", 0))
    r.rowsLate = c.get("rows_late", 0)
    if r.rowsLate:
        r.warnings.append(f"{r.rowsLate} late row(s): their window had closed (beyond allowedLateness); not in the "
                          f"table (written to the DLQ when the pipeline has one)")


def _collect_partial(checked, partial, run_dir: str, result: RunResult, inputs: _Inputs) -> None:
    """A run that failed midway: every node that ran keeps its counts (the runner's metrics of the work that
    finished) and every target its report from the run folder; a node with no trace stays ``not_run``."""
    if checked is None or not result.nodes:
        return
    try:
        counts = partial.counts()
        targets = read_reports(run_dir, "targets")
    except Exception:  # noqa: BLE001 - the run already failed; its counts are a best effort
        counts, targets = {}, {}
    for node in checked.pipeline.nodes:
        r, c = result.nodes[node.id], counts.get(node.id, {})
        if not c and node.id not in targets:
            continue
        _fill_counts(node, r, c, inputs)
        if node.kind == "target" and node.id in targets and r.status == "not_run":
            _node_status(node, r, targets[node.id], [])
        elif r.status == "not_run":
            r.status = "completed_with_errors" if r.rowsQuarantined or r.warnings else "completed"


def _node_status(node, r: NodeResult, target_report: dict | None, failures: list[str]) -> None:
    if node.kind == "target":
        if target_report is None:
            r.status = "skipped"
        else:
            r.status = target_report["status"]
            r.error = target_report.get("error")
            r.warnings += target_report.get("warnings", [])
            r.table, r.files = target_report.get("table"), target_report.get("files")
            r.rowsSkipped += int(target_report.get("rowsSkipped") or 0)
        return
    if failures:
        r.status, r.error = "failed", "; ".join(failures)
    elif r.rowsQuarantined or r.warnings:
        r.status = "completed_with_errors"
    else:
        r.status = "completed"


def _run_status(result: RunResult, failures: list[str]) -> None:
    nodes = result.nodes.values()
    bad = [r for r in nodes if r.status in ("failed", "aborted")]
    if bad or failures:
        result.status = "failed"
        result.error = result.error or "; ".join(dict.fromkeys(
            [r.error for r in bad if r.error] + failures))
    elif any(r.status == "completed_with_errors" or r.warnings for r in nodes):
        result.status = "completed_with_errors"  # rows set aside or data warnings; plan notes do not count
    else:
        result.status = "completed"


def _finish_files(checked, result: RunResult, inputs: _Inputs, run_dir: str) -> None:
    """Every source's driver-side end (``Source.finish``: move input files to success/failure, ack messages,
    commit offsets — only once the loads committed), then the archive nodes."""
    if checked is None:
        return
    _lost_side_rows(result, run_dir)
    _finish_sources(checked, result, inputs, run_dir)
    from flow_beam.archive import run_archives, skip_archives
    if result.status != "failed":
        run_archives(checked, result, inputs)
    else:
        skip_archives(checked, result)


def _finish_sources(checked, result: RunResult, inputs: _Inputs, run_dir: str) -> None:
    from connectors.base import RunInfo
    from connectors.registry import get_source

    ok = result.status != "failed"
    run = inputs.run or RunInfo(result.runId, checked.pipeline.id, result.runner, "", run_dir)
    run.run_dir = run_dir
    for node in checked.pipeline.nodes:
        if node.kind != "source" or not get_source(node.connector).capabilities.finishes:
            continue
        if node.id not in inputs.prepared and get_source(node.connector).capabilities.prepares:
            continue  # never prepared (a test input, or the run failed before): nothing to finish
        done = get_source(node.connector).finish(node, inputs.prepared.get(node.id), ok, run)
        result.warnings += done.warnings
        if done.degraded and result.status == "completed":
            result.status = "completed_with_errors"


def _lost_side_rows(result: RunResult, run_dir: str) -> None:
    """DLQ rows that could not be written are said loudly (a run warning; a completed run exits 2)."""
    if "://" in run_dir or not os.path.isdir(run_dir):
        return
    for name, rep in read_reports(run_dir, "side_tables").items():
        if rep.get("error") and name == "dlq":
            result.warnings.append(f"{rep.get('lost', '?')} row(s) could not be written to the DLQ table "
                                   f"{rep['table']} and are lost: {rep['error']}")
            if result.status == "completed":
                result.status = "completed_with_errors"
