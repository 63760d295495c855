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

from connectors.warehouse import open_warehouse, redact_url, warehouse_url
from flow_beam.results import (NodeResult, RunResult, balance_problem, metric_counts, note_beam_result, now_iso,
                               partial_metrics)
from flow_beam.runners import beam_args, make_pipeline
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


def streaming_mode(checked: CheckedPipeline, opts: RunOptions) -> bool:
    """A pipeline with a (non-test) stream source runs unbounded on prism/flink/dataflow, or when asked;
    on the direct runner it drains what the topics hold now (a bounded run)."""
    from ir_compiler.models import STREAM_CONNECTORS

    streams = [n for n in checked.pipeline.nodes if n.kind == "source" and n.connector in STREAM_CONNECTORS
               and not (opts.test_inputs is not None and n.id in opts.test_inputs)]
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
    kafka: dict = field(default_factory=dict)  # kafka source id -> (config, offset ranges read by this run)
    kafka_starts: dict = field(default_factory=dict)  # streaming: kafka source id -> [(topic, partition, start)]
    staged: dict = field(default_factory=dict)  # source id -> StagedFiles | None
    paths: dict[str, list[str]] = field(default_factory=dict)  # source id -> files read (after: success paths)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    claims: dict = field(default_factory=dict)  # source id -> connectors.files.Claim (atomicity)
    identities: dict = field(default_factory=dict)  # source id -> [{hash, size, mtime, path}] per file read
    loaded: dict = field(default_factory=dict)  # source id -> staged files every target already holds (not read)
    skipped: dict = field(default_factory=dict)  # source id -> identities of those files
    ledger: dict = field(default_factory=dict)  # target id -> LoadRequest.ledger (files for _flow_files)


def _stage_inputs(checked: CheckedPipeline, opts: RunOptions, streaming: bool = False,
                  run_id: str | None = None) -> _Inputs:
    out = _Inputs()
    try:
        _stage_each(checked, opts, streaming, run_id or uuid.uuid4().hex, out)
    except BaseException:
        for claim in out.claims.values():  # the files stay in the run's folder; the next run recovers them
            claim.release()
        raise
    return out


def _stage_each(checked: CheckedPipeline, opts: RunOptions, streaming: bool, run_id: str, out: _Inputs) -> None:
    from connectors.files import DEFAULT_ATOMICITY, wait_for_files
    from ir_compiler.loader import connector_config

    for node in checked.pipeline.nodes:
        if streaming and node.kind == "source" and node.connector == "kafka_consumer" and not (
                opts.test_inputs is not None and node.id in opts.test_inputs):
            from connectors.kafka import start_positions
            try:
                out.kafka_starts[node.id] = start_positions(connector_config(node))
            except FlowError as exc:
                exc.node_id = exc.node_id or node.id
                raise
            continue
        if node.kind == "source" and node.connector == "kafka_consumer" and opts.runner != "dataflow" and not (
                opts.test_inputs is not None and node.id in opts.test_inputs):
            from connectors.kafka import plan_ranges
            cfg = connector_config(node)
            try:
                out.kafka[node.id] = (cfg, plan_ranges(cfg))
            except FlowError as exc:
                exc.node_id = exc.node_id or node.id
                raise
            continue
        if node.kind != "source" or node.connector != "local_fs":
            continue
        if opts.test_inputs is not None and node.id in opts.test_inputs:
            continue
        if opts.runner == "dataflow":
            out.warnings[node.id] = ["local_fs files are not read on Dataflow workers (gcs sources are planned)"]
            continue
        cfg = connector_config(node)
        dump = (lambda m: m.model_dump() if m is not None else None)
        folders = {**DEFAULT_ATOMICITY, **(dump(cfg.atomicity) or {})}
        exclude = [folders[k].split("{", 1)[0] or "." for k in ("stagingFolder", "successFolder", "failureFolder")]
        try:
            listing = wait_for_files(cfg.path, dump(cfg.pattern), cfg.ordering, dump(cfg.waitPolicy),
                                     exclude=[e for e in exclude if e.strip("./")])
        except FlowError as exc:
            exc.node_id = exc.node_id or node.id
            raise
        out.warnings[node.id] = list(listing.warnings)
        if cfg.atomicity is not None and opts.runner == "dataflow":
            out.warnings[node.id].append("atomicity (staging/success/failure folders) applies on local runners")
            out.paths[node.id] = list(listing.files)
        elif cfg.atomicity is not None:
            _claim(checked, node.id, cfg, run_id, listing.files, out)
        else:
            out.paths[node.id] = list(listing.files)
    _skip_loaded(checked, opts, out)
    _plan_ledger(checked, out, run_id)


def _claim(checked, node_id: str, cfg, run_id: str, files: list[str], out: _Inputs) -> None:
    """Claim the files for this run (its own staging folder + a lock that dies with it), take over the files
    of runs that are provably gone, and fingerprint every file (content identity for ``_flow_files``)."""
    from connectors.files import Claim, file_identity
    from ir_compiler.faults import fault

    claim = Claim(cfg.path, cfg.atomicity.model_dump(), run_id, checked.pipeline.id, node_id)
    out.claims[node_id] = claim
    leftover, notes = claim.adopt()  # their loads may have committed: the ledger decides below
    out.warnings[node_id] += notes
    staged = claim.stage(files)
    staged.paths = leftover + staged.paths
    out.staged[node_id] = staged
    fault("after_claim")
    seen, read, ids = {}, [], []
    for path in staged.paths:
        ident = {**file_identity(path), "path": staged._origin.get(path, path)}
        first = seen.setdefault((ident["hash"], ident["size"]), path)
        if first != path:  # the same bytes twice in one run: one file
            out.loaded.setdefault(node_id, []).append(path)
            out.warnings[node_id].append(f"file {os.path.basename(path)} has the same content as "
                                         f"{os.path.basename(first)}; read once")
            continue
        read.append(path)
        ids.append(ident)
    out.paths[node_id], out.identities[node_id] = read, ids


def _table_targets(checked, source_id: str) -> tuple[list, bool]:
    """(the table targets downstream of a source, whether every target downstream is a table)."""
    graph = checked.graph
    targets = [graph.nodes[n] for n in graph.order if graph.nodes[n].kind == "target"
               and source_id in graph.upstream(n)]
    tables = [t for t in targets if t.connector is None]
    return tables, len(tables) == len(targets)


def _skip_loaded(checked, opts: RunOptions, out: _Inputs) -> None:
    """Files that every (table) target downstream already holds in ``_flow_files`` — a crashed run committed
    them but did not move them on — are not read again; they go on to the success folder."""
    if not out.identities:
        return
    from connectors.warehouse import open_warehouse, warehouse_url
    from connectors.warehouse.ledger import held, key

    wh = open_warehouse(warehouse_url(opts.warehouse))
    for src, ids in out.identities.items():
        tables, only_tables = _table_targets(checked, src)
        if not tables or not only_tables or not ids:
            continue
        holds = held(wh, sorted({t.schema_ for t in tables}), ids)
        keep = [i for i, ident in enumerate(ids) if not all(key(ident) in h for h in holds.values())]
        if len(keep) == len(ids):
            continue
        paths = out.paths[src]
        for i in sorted(set(range(len(ids))) - set(keep)):
            out.loaded.setdefault(src, []).append(paths[i])
            runs = sorted({h[key(ids[i])][:8] for h in holds.values()})
            out.warnings[src].append(f"file {os.path.basename(paths[i])} was already loaded (run "
                                     f"{', '.join(runs)}, recorded in _flow_files); not read again")
        out.skipped[src] = [ids[i] for i in range(len(ids)) if i not in keep]
        out.paths[src] = [paths[i] for i in keep]
        out.identities[src] = [ids[i] for i in keep]


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
    """Per table target: the claimed files it loads (their identity commits with its rows)."""
    graph = checked.graph
    for tid in graph.order:
        node = graph.nodes[tid]
        if node.kind != "target" or node.connector is not None:
            continue
        srcs = [s for s in sorted(graph.upstream(tid)) if s in out.claims]
        if not srcs:
            continue
        files = [{"source": s, "index": i, **ident} for s in srcs for i, ident in enumerate(out.identities[s])]
        files += [{"source": s, "index": -1, **ident} for s in srcs for ident in out.skipped.get(s, [])]
        by_file = _by_file(checked, tid)
        out.ledger[tid] = {"files": files, "by_file": by_file if by_file in srcs else None, "run_id": run_id}


def _load_lookups(checked: CheckedPipeline, url: str) -> dict:
    from connectors.registry import read_enrich_lookup, read_lookup
    from ir_compiler.ops.lookup import prepare_lookup

    out: dict = {}
    for node in checked.pipeline.nodes:
        if node.kind == "enrich" and node.provider.kind == "lookup":
            out[("enrich", node.id)] = read_enrich_lookup(node.provider.model_dump(), url)
        if node.kind != "transform":
            continue
        for i, op in enumerate(node.ops):
            if op.op == "lookup_join":
                out.setdefault(node.id, {})[i] = prepare_lookup(op, read_lookup(op, url))
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
        inputs = _stage_inputs(checked, opts, streaming, result.runId)
        beam_result = _execute(checked, opts, url, run_dir, result, inputs, streaming)
        if opts.runner == "dataflow":  # submitted (or dry run): the job runs on Dataflow, not here
            result.status = "completed"
        else:
            _collect(checked, beam_result, run_dir, result, inputs, streaming)
    except FlowError as exc:
        result.status, result.error = "failed", str(exc)
        if exc.node_id and exc.node_id in result.nodes:
            result.nodes[exc.node_id].status, result.nodes[exc.node_id].error = "failed", exc.message
        _collect_partial(checked, partial, run_dir, result, inputs)
    except Exception as exc:  # noqa: BLE001 - a runner/worker failure becomes a failed result, not a traceback
        result.status, result.error = "failed", _short(exc)
        step = re.search(r"while running '([^/']+)", str(exc))
        if step and step.group(1) in result.nodes:
            node = result.nodes[step.group(1)]
            node.status, node.error = "failed", result.error
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
                     sink_root=opts.sink_root, kafka_ranges={k: v[1] for k, v in inputs.kafka.items()},
                     streaming=streaming, kafka_starts=inputs.kafka_starts, idle_stop_s=opts.stop_after_idle_s,
                     on_dataflow=opts.runner == "dataflow", ledger=inputs.ledger)
    lookups = _load_lookups(checked, url)
    if opts.runner == "dataflow":
        from flow_beam.runners import DataflowProfile, dataflow_args
        profile = opts.dataflow or DataflowProfile()
        profile.streaming = profile.streaming or streaming
        args = dataflow_args(profile, checked.pipeline.id, opts.beam_args)
    else:
        args = beam_args(opts.runner, opts.beam_args, opts.flink_master)
        if streaming:
            args.append("--streaming")
            if opts.runner == "flink":
                args.append("--checkpointing_interval=10000")  # Flink checkpoints hold SDF restrictions
    p = make_pipeline(opts.runner, args)
    lowered = build_pipeline(p, checked, ctx, lookups)
    result.warnings += lowered.warnings
    if opts.progress:
        opts.progress(f"running {checked.pipeline.id} on {opts.runner}" + (
            " (streaming: Ctrl-C stops it)" if streaming else ""))
    beam_result = p.run()
    note_beam_result(beam_result)  # a failure while waiting still has its metrics
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
        try:
            beam_result.cancel()
        except Exception:  # noqa: BLE001 - the job is going away either way
            pass
        result.warnings.append("streaming run stopped by the user (Ctrl-C); committed panes stay, the next run "
                               "resumes from the committed offsets")
    finally:  # (only when loaded: importing them just to find nothing to do cost ~0.2 s per run)
        import sys
        if "connectors.warehouse.duckdb" in sys.modules:
            sys.modules["connectors.warehouse.duckdb"].unpin_all()  # streaming pane commits kept the file open
        if "ir_compiler.lower.streaming" in sys.modules:
            sys.modules["ir_compiler.lower.streaming"].forget_run(result.runId)
    return beam_result


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
    failures = collect_failures(signals)
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
    _run_status(result, failures)


def _fill_counts(node, r: NodeResult, c: dict, inputs: _Inputs) -> None:
    r.rowsIn, r.rowsOut = c.get("rows_in", 0), c.get("rows_out", 0)
    r.rowsErrored = c.get("rows_errored", 0)
    r.rowsQuarantined = c.get("rows_quarantined", 0) + r.rowsErrored
    r.rowsFiltered, r.rowsLoaded = c.get("rows_filtered", 0), c.get("rows_loaded", 0)
    r.warnings += inputs.warnings.get(node.id, [])
    r.warnings += [f"rule {k[5:]}: {v} row(s) failed (onFail warn)" for k, v in c.items()
                   if k.startswith("warn:") and v]
    r.warnings += [f"{k[5:]}: {v}" for k, v in c.items() if k.startswith("note:") and v and "cache" not in k]
    if node.kind == "branch":
        r.routes = {k[6:]: v for k, v in c.items() if k.startswith("route:")}
    if node.kind == "transform" and any(op.op in ("aggregate", "summarize") for op in node.ops):
        r.rowsCombined = max(0, r.rowsIn - r.rowsOut - r.rowsFiltered - r.rowsQuarantined)


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
    """Staged input files → success folder, or failure folder on a failed run / for unreadable files."""
    if checked is None:
        return
    if any(n.kind == "source" and n.connector == "pubsub_subscription" for n in checked.pipeline.nodes):
        from ir_compiler.lower.pubsub import ack_drained
        result.warnings += ack_drained(run_dir, result.status != "failed")
    _lost_side_rows(result, run_dir)
    _move_inputs(result, inputs, run_dir)
    if result.status != "failed":
        from flow_beam.archive import run_archives
        run_archives(checked, result, inputs)
        _commit_offsets(result, inputs)


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


def _move_inputs(result: RunResult, inputs: _Inputs, run_dir: str) -> None:
    """Claimed files → success folder (failure folder: a failed run's files and unreadable files; files loaded
    by an earlier run always go to success). A file that cannot be moved stays in staging: a warning, and the
    next run moves it on (``_flow_files`` says it is loaded, so it is not loaded twice)."""
    from ir_compiler.faults import fault

    failed_paths = {rep["path"] for rep in read_reports(run_dir, "files").values()}
    if inputs.staged:
        fault("before_move")
    for node_id, staged in inputs.staged.items():
        loaded = set(inputs.loaded.get(node_id, []))
        try:
            if result.status == "failed":
                ok = staged.commit(failed=set(staged.paths) - loaded)
            else:
                ok = staged.commit(failed=failed_paths, after_each=lambda: fault("after_first_move"))
            inputs.paths[node_id] = ok if result.status != "failed" else []
        except (OSError, FlowError) as exc:
            where = staged.atomicity["failureFolder" if result.status == "failed" else "successFolder"]
            ledger = " (their loads are recorded in _flow_files, so they are not loaded twice)" if any(
                node_id in (e["source"] for e in led["files"]) for led in inputs.ledger.values()) else ""
            result.warnings.append(f"node '{node_id}': could not move input files to {where}: "
                                   f"{str(exc).strip() or type(exc).__name__}; they stay in the staging folder and "
                                   f"the next run moves them on{ledger}")
            if result.status == "completed":
                result.status = "completed_with_errors"
        finally:
            claim = inputs.claims.get(node_id)
            if claim is not None:
                claim.release()


def _commit_offsets(result: RunResult, inputs: _Inputs) -> None:
    """Kafka offsets are committed only now, after the loads committed (at-least-once end to end)."""
    from connectors.kafka import commit_ranges

    for node_id, (cfg, ranges) in inputs.kafka.items():
        if not cfg.commitOffsets:
            continue
        try:
            commit_ranges(cfg, ranges)
        except Exception as exc:  # noqa: BLE001 - the rows are loaded; the next run reads them again
            result.warnings.append(f"node '{node_id}': could not commit Kafka offsets ({exc}); the next run "
                                   f"re-reads those messages")


