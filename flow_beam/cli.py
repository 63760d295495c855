"""``flow-beam`` command line: validate, plan, run, test, schema."""
from __future__ import annotations

import argparse
import os
import sys

from flow_beam import __version__
from rich.markup import escape

from flow_beam.reporting import (check_writable, console, dump_json, err_console, print_issues, print_result,
                                 write_text)
from ir_compiler.errors import FlowError, ValidationFailed


def _params(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FlowError(f"--param takes name=value, got {pair!r}")
        out[key] = value
    return out


def _check(args, warehouse=None):
    from connectors.warehouse import open_warehouse
    from ir_compiler.check import check_document, default_context

    from ir_compiler.confine import effective_root

    wh = open_warehouse(warehouse) if warehouse is not False else None
    return check_document(args.file, _params(args.param), default_context(wh),
                          root=effective_root(getattr(args, "root", None)))


def cmd_validate(args) -> int:
    try:
        checked = _check(args, args.warehouse)
    except ValidationFailed as exc:
        n = len([i for i in exc.issues if i.severity == "error"])
        if args.format == "json":
            dump_json({"valid": False, "error": f"{n} validation error(s)",
                       "issues": [i.__dict__ for i in exc.issues]}, None)
        else:
            print_issues(exc.issues, header=f"{args.file}: {n} error(s)")
        return 1
    if args.format == "json":
        dump_json({"valid": True, "issues": [i.__dict__ for i in checked.issues]}, None)
    else:
        console.print(f"{escape(args.file)}: valid ({len(checked.pipeline.nodes)} nodes)", soft_wrap=True)
        print_issues(checked.notes)
    return 0


def cmd_plan(args) -> int:
    from ir_compiler.plan import render_dot, render_mermaid, render_text

    try:
        checked = _check(args, args.warehouse)
    except ValidationFailed as exc:
        print_issues(exc.issues, header=f"{args.file}: invalid")
        return 1
    render = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}[args.format]
    print(render(checked))
    return 0


def _seconds(text: str) -> float:
    from ir_compiler.models import duration_seconds
    try:
        return float(duration_seconds(text))
    except (ValueError, TypeError):
        raise FlowError(f"--stop-after-idle {text!r}: use a duration like 30s, 5m or 1h") from None


def cmd_run(args) -> int:
    from flow_beam.lean import import_beam
    import_beam(args.runner, args.file, args.param)  # before anything imports Beam: skip unused cloud IO
    from flow_beam.running import RunOptions, run_document

    try:
        checked = _check(args, args.warehouse)
    except ValidationFailed as exc:
        print_issues(exc.issues, header=f"{args.file}: invalid, nothing ran")
        return 1
    opts = RunOptions(runner=args.runner, warehouse=args.warehouse, params=_params(args.param),
                      beam_args=args.beam_args, flink_master=args.flink_master,
                      streaming=True if args.streaming else (False if args.drain else None),
                      stop_after_idle_s=_seconds(args.stop_after_idle) if args.stop_after_idle else None,
                      root=args.root)
    if args.runner == "dataflow":
        from flow_beam.runners import DataflowProfile
        renames = dict(pair.split("=", 1) for pair in args.rename_node if "=" in pair)
        opts.dataflow = DataflowProfile(
            project=args.project, region=args.region, temp_location=args.temp_location,
            staging_location=args.staging_location, service_account=args.service_account, network=args.network,
            subnetwork=args.subnetwork, machine_type=args.machine_type, max_workers=args.max_workers,
            job_name=args.job_name, streaming=args.streaming, update=args.update, renames=renames,
            dry_run=args.dry_run)
        opts.job_file = args.job_file
    elif args.dry_run:
        raise FlowError("--dry-run is for --runner dataflow (it writes the job graph without submitting)")
    if args.result_file:
        check_writable(args.result_file, "--result-file")
    with console.status(f"running {checked.pipeline.id} on {args.runner}…", spinner="dots"):
        result = run_document(args.file, opts, checked=checked)
    print_result(result)
    if args.result_file:
        try:  # the run is over: a result file we cannot write is a warning, never the run's outcome
            dump_json(result.to_json(), args.result_file, "--result-file")
        except FlowError as exc:
            err_console.print(f"[yellow]warning[/yellow] {escape(str(exc))} (the run's outcome is above)",
                              soft_wrap=True)
    return result.exit_code


def cmd_test(args) -> int:
    from flow_beam.lean import import_beam
    import_beam("direct", args.file, args.param)
    from flow_beam.testing import run_embedded_tests

    from ir_compiler.confine import effective_root

    outcomes = run_embedded_tests(args.file, _params(args.param), root=effective_root(args.root))
    failed = 0
    for o in outcomes:
        mark = "[green]PASS[/green]" if o.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {escape(o.name)}", soft_wrap=True)
        for line in o.details:
            console.print(f"      {line}", soft_wrap=True, markup=False)
        failed += not o.passed
    console.print(f"{len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed or not outcomes else 0


def cmd_runs(args) -> int:
    from connectors.warehouse import redact_url, warehouse_url
    from flow_beam.history import get_run, list_runs
    from flow_beam.reporting import print_runs

    url = warehouse_url(args.warehouse)
    if args.action == "show":
        if not args.run_id:
            raise FlowError("usage: flow-beam runs show RUN_ID")
        run = get_run(url, args.run_id)
        if run is None:
            raise FlowError(f"no run {args.run_id!r} in {redact_url(url)}")
        dump_json(run, None)
        return 0
    print_runs(list_runs(url, args.pipeline, args.limit))
    return 0


def cmd_template(args) -> int:
    from flow_beam import templates

    if args.action == "build":
        if bool(args.file) == bool(args.generic):
            raise FlowError("template build takes a pipeline FILE or --generic")
        if args.output:
            check_writable(args.output)
        spec = templates.build_spec(args.image, None if args.generic else args.file, java=args.java)
        dump_json(spec, args.output)
        if args.output:
            console.print(f"wrote {escape(args.output)}: upload it to gs://… and run `flow-beam template run`",
                          soft_wrap=True)
        return 0
    if not args.file:
        raise FlowError("usage: flow-beam template run SPEC.json [--param k=v …]")
    cmd = templates.run_command(args.file, _params(args.param), job_name=args.job_name, region=args.region,
                                project=args.project, extra=args.beam_args)
    print(templates.shell_line(cmd))
    return templates.submit(cmd) if args.submit else 0


def cmd_init(args) -> int:
    from flow_beam import templates

    if args.list or not args.template:
        for name, description in templates.catalog().items():
            console.print(escape(f"{name:24s} {description}"), soft_wrap=True)
        return 0
    if not args.folder:
        raise FlowError("usage: flow-beam init TEMPLATE DIR")
    path = templates.init(args.template, args.folder)
    console.print(escape(f"created {path}; try: cd {args.folder} && flow-beam test pipeline.json && flow-beam run "
                         f"pipeline.json"), soft_wrap=True)
    return 0


def cmd_schedule(args) -> int:
    from flow_beam import scheduling

    if args.action == "next":
        pipeline = scheduling.schedule_of(args.target)
        for t in scheduling.next_times(pipeline.schedule, args.n):
            print(t.isoformat())
        return 0
    if args.action == "serve":
        import os
        if not os.path.isdir(args.target):
            raise FlowError(f"{args.target} is not a folder of pipeline documents")
        sched = scheduling.Scheduler(args.target, args.warehouse, args.runner)
        console.print(escape(f"serving schedules of {args.target} (Ctrl-C to stop)"), soft_wrap=True)
        sched.serve(max_ticks=args.ticks, interval=args.interval)
        sched.join()
        return 0
    pipeline = scheduling.schedule_of(args.target)
    if args.format == "cloud-scheduler":
        if not (args.template_spec and args.project and args.region):
            raise FlowError("cloud-scheduler export needs --template-spec gs://…, --project and --region")
        dump_json(scheduling.cloud_scheduler_job(pipeline, args.template_spec, args.project, args.region,
                                                 args.service_account, _params(args.param)), args.output)
    else:
        text = scheduling.airflow_dag(pipeline, args.ir_file or args.target)
        if args.output:
            write_text(args.output, text)
        else:
            print(text)
    return 0


def cmd_schema(args) -> int:
    from flow_beam.service.schema import ir_json_schema

    dump_json(ir_json_schema(), args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="flow-beam", description="Typed JSON pipelines compiled to Apache Beam.")
    parser.add_argument("--version", action="version", version=f"flow-beam {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Beam's own logs")
    sub = parser.add_subparsers(dest="command", required=True)

    def doc_command(name, help_text, fn):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("file", help="pipeline JSON document")
        p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="IR param value")
        p.add_argument("--warehouse", default=None, help="duckdb:///path/file.duckdb or postgresql://user@host/db "
                                                         "(default $FLOW_WAREHOUSE or ./flow_warehouse.duckdb)")
        p.add_argument("--root", default=None, metavar="DIR",
                       help="confinement root: every path the document names must resolve inside DIR "
                            "(default $FLOW_BEAM_ROOT)")
        p.set_defaults(fn=fn)
        return p

    p = doc_command("validate", "check a document (models, graph, rules, types); exit 1 on errors", cmd_validate)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p = doc_command("plan", "show each node, its Beam primitives and its output schema", cmd_plan)
    p.add_argument("--format", choices=("text", "mermaid", "dot"), default="text")
    p = doc_command("run", "run a pipeline and print the per-node result", cmd_run)
    p.add_argument("--runner", choices=("direct", "prism", "flink", "dataflow"), default="direct")
    p.add_argument("--result-file", default=None, help="write the run result JSON here")
    p.add_argument("--flink-master", default=None, help="host:port of a remote Flink cluster")
    g = p.add_argument_group("dataflow")
    g.add_argument("--project")
    g.add_argument("--region")
    g.add_argument("--temp-location")
    g.add_argument("--staging-location")
    g.add_argument("--service-account")
    g.add_argument("--network")
    g.add_argument("--subnetwork")
    g.add_argument("--machine-type")
    g.add_argument("--max-workers", type=int)
    g.add_argument("--job-name")
    p.add_argument("--streaming", action="store_true",
                   help="run unbounded (the default for stream sources on prism, flink and dataflow)")
    p.add_argument("--drain", action="store_true",
                   help="stream sources: read what the topics hold now as a bounded run (the direct runner's mode)")
    p.add_argument("--stop-after-idle", default=None, metavar="DURATION",
                   help="streaming: end the run once no partition got a message for DURATION (e.g. 30s)")
    g.add_argument("--update", action="store_true", help="replace a running job (same job name)")
    g.add_argument("--rename-node", action="append", default=[], metavar="OLD=NEW",
                   help="with --update: a node renamed since the running job (maps its Beam steps)")
    g.add_argument("--dry-run", action="store_true", help="build the Dataflow job graph offline, do not submit")
    g.add_argument("--job-file", default=None, help="where --dry-run writes the job graph JSON")
    p.set_defaults(beam_args=[])
    doc_command("test", "run the document's embedded tests on DirectRunner", cmd_test)
    p = sub.add_parser("runs", help="list recent runs recorded in the warehouse, or show one (runs show RUN_ID)")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("run_id", nargs="?")
    p.add_argument("--warehouse", default=None)
    p.add_argument("--pipeline", default=None, help="only this pipeline id")
    p.add_argument("-n", "--limit", type=int, default=20)
    p.set_defaults(fn=cmd_runs)
    p = sub.add_parser("template", help="Dataflow Flex Template: build a spec file, or print/submit the run command")
    p.add_argument("action", choices=("build", "run"))
    p.add_argument("file", nargs="?", help="build: a pipeline document; run: the spec file")
    p.add_argument("--generic", action="store_true", help="build the generic template (any IR at launch)")
    p.add_argument("--image", help="container image built from templates/dataflow/Dockerfile")
    p.add_argument("--java", action="store_true", help="the image carries a JDK for cross-language transforms")
    p.add_argument("--output", default=None)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--job-name", default="flow-beam-job")
    p.add_argument("--region", default=None)
    p.add_argument("--project", default=None)
    p.add_argument("--submit", action="store_true", help="run the gcloud command instead of only printing it")
    p.set_defaults(fn=cmd_template, beam_args=[])
    p = sub.add_parser("init", help="copy a catalog pipeline template with its sample data (init --list)")
    p.add_argument("template", nargs="?")
    p.add_argument("folder", nargs="?")
    p.add_argument("--list", action="store_true")
    p.set_defaults(fn=cmd_init)
    p = sub.add_parser("schedule", help="next fire times, serve a folder of scheduled pipelines, or export")
    p.add_argument("action", choices=("next", "serve", "export"))
    p.add_argument("target", help="next/export: a pipeline document; serve: a folder of documents")
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--warehouse", default=None)
    p.add_argument("--runner", default="direct")
    p.add_argument("--interval", type=float, default=20.0, help="serve: seconds between checks")
    p.add_argument("--ticks", type=int, default=None, help="serve: stop after this many checks")
    p.add_argument("--format", choices=("cloud-scheduler", "airflow"), default="airflow")
    p.add_argument("--template-spec", default=None)
    p.add_argument("--project", default=None)
    p.add_argument("--region", default=None)
    p.add_argument("--service-account", default=None)
    p.add_argument("--ir-file", default=None, help="airflow: the gs:// path of the IR the DAG runs")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--output", default=None)
    p.set_defaults(fn=cmd_schedule)
    p = sub.add_parser("schema", help="print the JSON Schema of the IR")
    p.add_argument("--output", default=None)
    p.set_defaults(fn=cmd_schema)
    from flow_beam.service.commands import add_commands  # serve, mcp
    add_commands(sub)
    return parser


def _quiet_logs(verbose: bool) -> None:
    import logging
    import warnings

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # worker errors reach the run result; Beam's own traceback logs stay out of the table
        logging.getLogger().setLevel(logging.ERROR)
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore")


class UsageError(FlowError):
    """Arguments argparse refused (printed as one error line, or as JSON for ``--format json``)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit(2) with usage, but as a FlowError the caller formats
        raise UsageError(f"{message}; see `{self.prog} --help`")


def _wants_json(argv: list[str]) -> bool:
    """``validate --format json``: every outcome, errors included, is one JSON object on stdout."""
    command = next((a for a in argv if not a.startswith("-")), None)
    flat = " ".join(argv[:argv.index("--")] if "--" in argv else argv)
    return command == "validate" and ("--format json" in flat or "--format=json" in flat)


def _fail(message: str, as_json: bool, issues=(), code: int = 1) -> int:
    from ir_compiler.secrets import scrub_text
    message = scrub_text(message)  # known secret values never reach the terminal
    if as_json:
        dump_json({"valid": False, "error": message, "issues": [i.__dict__ for i in issues]}, None)
    else:
        err_console.print(f"[red]error[/red] {escape(message)}", soft_wrap=True)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(argv)
    beam_args = []
    if "--" in argv:  # everything after -- goes to Beam's PipelineOptions
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1:]
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return _fail(str(exc), as_json, code=2)
    if hasattr(args, "beam_args"):
        args.beam_args = beam_args
    verbose = getattr(args, "verbose", False)
    _quiet_logs(verbose)
    try:
        return args.fn(args)
    except ValidationFailed as exc:
        if as_json:
            return _fail(f"{len([i for i in exc.issues if i.severity == 'error'])} validation error(s)", True,
                         exc.issues)
        print_issues(exc.issues, header="invalid document")
        return 1
    except FlowError as exc:
        return _fail(str(exc), as_json)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except BrokenPipeError:  # `flow-beam … | head`: the reader left; nothing more to say
        return 1
    except OSError as exc:  # disk full, permission denied, … on a path the command wrote or read
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", as_json)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if verbose:
            import traceback
            traceback.print_exc()
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        return _fail(f"internal error ({type(exc).__name__}: {text}); this is a bug in flow-beam, please report "
                     f"it{'' if verbose else ' (-v shows the traceback)'}", as_json)


def entry() -> None:
    """The ``flow-beam`` console command: :func:`main`, then a quick exit (see :func:`_exit_now`)."""
    from flow_beam.startup import pause_gc
    pause_gc(sys.argv[1:])  # start-up without full collections over the growing heap (flow_beam/startup.py)
    code = main()
    _exit_now(code)


def _exit_now(code: int) -> None:
    """Leave without Python's interpreter teardown (finalizing ~1,100 imported modules and the heap: measured
    0.2–0.4 s after every run) when this process has nothing left to wind down: only the main thread, no child
    process (a Prism or Flink job server, Beam worker processes). Output is flushed and logging shut down first;
    otherwise it exits normally."""
    import logging
    import threading

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. `flow-beam … | head`: the reader left
        pass
    if threading.active_count() == 1 and _no_children():
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


def _no_children() -> bool:
    import glob

    files = glob.glob(f"/proc/{os.getpid()}/task/*/children") if sys.platform == "linux" else []
    if not files:
        return False  # cannot tell: exit normally
    try:
        return all(not open(f).read().strip() for f in files)
    except OSError:
        return False
