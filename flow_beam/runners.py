"""Runner profiles → Beam PipelineOptions. Local components are found through the env vars the repo's
scripts print (scripts/*.sh env) or their default cache paths; a missing one names the script to run."""
from __future__ import annotations

import os
import shutil

from ir_compiler.errors import FlowError

CACHE = os.environ.get("FLOW_BEAM_CACHE", os.path.expanduser("~/.cache/flow-beam"))
RUNNERS = ("direct", "prism", "flink", "dataflow")


class RunnerError(FlowError):
    """A runner cannot be used as configured (missing component or option)."""


class JobDidNotStart(RunnerError):
    """A streaming job on Flink whose readers were never invoked: nothing was read, nothing committed."""


def _prism_binary() -> str:
    path = os.environ.get("FLOW_BEAM_PRISM") or os.path.join(CACHE, "bin", "prism")
    if not os.path.exists(path):
        raise RunnerError("the prism runner needs Beam's Prism binary; run `bash scripts/prism.sh install` "
                          "(or set FLOW_BEAM_PRISM to its path)")
    return path


FLINK_SCRIPT = "bash scripts/flink.sh"
JVM_OPENS = ["--add-opens=java.base/java.lang=ALL-UNNAMED", "--add-opens=java.base/java.nio=ALL-UNNAMED",
             "--add-opens=java.base/java.util=ALL-UNNAMED", "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED"]


def flink_jar() -> str:
    """The job-server jar scripts/flink.sh builds (versions: flow_beam/flink_pins.py)."""
    from flow_beam import flink_pins as pins
    return os.environ.get("FLOW_BEAM_FLINK_JAR") or os.path.join(
        CACHE, "flink", f"flow-beam-flink-job-server-{pins.BEAM_JAVA}-flink{pins.FLINK}.jar")


def flink_local_conf() -> str:
    """FLINK_CONF_DIR for Beam's embedded `[local]` MiniCluster: every listener on 127.0.0.1, ephemeral ports."""
    return os.environ.get("FLOW_BEAM_FLINK_CONF_DIR") or os.path.join(CACHE, "flink", "conf-local")


def _flink_master_answers(master: str) -> bool:
    import json
    import urllib.request
    url = (master if master.startswith(("http://", "https://")) else f"http://{master}").rstrip("/")
    try:
        with urllib.request.urlopen(f"{url}/overview", timeout=5) as resp:
            return "flink-version" in json.loads(resp.read().decode())
    except (OSError, ValueError):
        return False


def _flink_args(flink_master: str | None) -> list[str]:
    from flow_beam import flink_pins as pins
    jar = flink_jar()
    if not os.path.exists(jar) or not shutil.which("java"):
        raise RunnerError(f"the flink runner needs the Beam Flink job server jar {jar} (and java): run "
                          f"`{FLINK_SCRIPT} install` (or `{FLINK_SCRIPT} start` for a local cluster)")
    master = flink_master or "[local]"
    if master == "[local]":
        conf = flink_local_conf()
        if not os.path.exists(os.path.join(conf, "config.yaml")):
            raise RunnerError(f"no Flink configuration at {conf} (its listeners must be on 127.0.0.1): run "
                              f"`{FLINK_SCRIPT} install`")
    else:
        endpoint = os.environ.get("FLOW_BEAM_FLINK_JOB_ENDPOINT")
        if not _flink_master_answers(master):
            raise RunnerError(f"no Flink cluster answers at {master} (its REST API, e.g. 127.0.0.1:8081): start "
                              f"the local one with `{FLINK_SCRIPT} start`, or pass the JobManager's host:port "
                              f"(a Flink {pins.FLINK_MINOR}.x cluster) to --flink-master")
        if endpoint and os.environ.get("FLOW_BEAM_FLINK_MASTER") == master:
            # the job server scripts/flink.sh started for this cluster: no job-server JVM per run
            return ["--runner=PortableRunner", f"--job_endpoint={endpoint}", "--environment_type=LOOPBACK"]
    return ["--runner=FlinkRunner", f"--flink_master={master}", f"--flink_version={pins.FLINK_MINOR}",
            f"--flink_job_server_jar={jar}", "--environment_type=LOOPBACK"] + [
        f"--job_server_jvm_properties={o}" for o in JVM_OPENS]


def beam_args(runner: str, extra: list[str] | None = None, flink_master: str | None = None) -> list[str]:
    """Beam command-line options for the runner (user options after ``--`` come last and win)."""
    extra = list(extra or [])
    if runner == "direct":
        base = []
    elif runner == "prism":
        base = ["--runner=PrismRunner", f"--prism_location={_prism_binary()}", "--environment_type=LOOPBACK"]
    elif runner == "flink":
        base = _flink_args(flink_master)
    elif runner == "dataflow":
        raise RunnerError("the dataflow runner needs its profile: use dataflow_args(DataflowProfile(...))")
    else:
        raise RunnerError(f"unknown runner '{runner}'; use one of {', '.join(RUNNERS)}")
    return base + extra


def streaming_args(runner: str, idle_stop: bool = False) -> list[str]:
    """Beam options a streaming run adds on this runner."""
    if runner != "flink":
        return ["--streaming"]
    # Flink checkpoints (every 10 s) hold the SDF restrictions. With checkpointing on, Beam's Flink Impulse
    # sources never shut down, so an idle-stopped run never finishes by itself; Beam's remedy,
    # --shutdown_sources_after_idle_ms, ends the reader stage with restrictions still pending (measured here:
    # 73,000 of 200,000 events read, none loaded, job FINISHED; and no checkpoint completes after it). So it is
    # never set: an idle-stopped run is stopped by stop_when_drained once every row is loaded.
    # --finish_bundle_before_checkpointing: without it Beam's DoFnOperator finishes a bundle in flight after the
    # barrier went downstream and buffers its output until the operator's next bundle or watermark. The stage fed
    # by Impulse has neither (one element, then the final watermark): a checkpoint during its one bundle kept the
    # readers' restrictions in that buffer for ever, a job that RUNS and reads nothing (the "stalled" jobs;
    # tests/test_flink_checkpoint_buffer.py makes that race the rule).
    # --max_bundle_time_mills=20 (Beam's default 1000): a reader hands its remainder back to Flink at the end of
    # each bundle and an operator closes a bundle of few elements (one Arrow batch each) only after that time, so
    # every resume of a reader waited up to 1 s (bench/streaming_kafka.py on the cluster: 25-27 s -> 18.5 s).
    return ["--streaming", "--checkpointing_interval=10000", "--finish_bundle_before_checkpointing",
            "--max_bundle_time_mills=20"]


def stop_when_drained(beam_result, flink_master: str | None, args: list[str], run_id: str, targets: list[str],
                      readers: int, poll_s: float = 0.5, grace_s: float = 120.0,
                      stall_s: float | None = None, start_s: float | None = None) -> list[str]:
    """An idle-stopped streaming run on Flink, once every reader has ended (idle stop): on a cluster, Flink's
    stop-with-savepoint and drain (the end-of-time watermark flushes every window and pane, then the job
    FINISHES and Beam gets its metrics); on [local], Beam's cancel once every target has also passed the
    end-of-time watermark (ir_compiler.lower.streaming.drained), or after ``grace_s`` more. Returns warnings.

    Stalls: Beam's portable Flink runner (2.70) started a streaming job that never invoked its readers now and
    then (a bundle's output buffered during a checkpoint; removed by --finish_bundle_before_checkpointing, see
    streaming_args). As a second line of defence, such a job raises JobDidNotStart (see check_started). Should a reader stop being resumed later, a watchdog acts: when no reader
    of the run was invoked for ``stall_s`` seconds (FLOW_BEAM_FLINK_STALL_S, default 60) before every reader
    ended, the job is stopped the same way (drain: every window read so far is loaded) and the run says so:
    positions not committed are read again by the next run, whose loads skip what is already in the table."""
    import time

    from apache_beam.runners.runner import PipelineState

    from ir_compiler.lower.streaming import drained, reader_stalled_for
    if stall_s is None:
        stall_s = float(os.environ.get("FLOW_BEAM_FLINK_STALL_S", "60"))
    submitted = time.monotonic()
    watch = readers_in_this_process(args)  # reader calls are only seen when the readers run in this process
    names = _job_names(args)
    ended_at = None
    warnings: list[str] = []
    while not PipelineState.is_terminal(beam_result.state):
        done, ended = drained(run_id)
        if watch:
            check_started(run_id, readers, submitted, start_s)
        stalled = reader_stalled_for(run_id)
        if watch and ended < readers and stalled > stall_s:
            warnings = [f"{readers - ended} of {readers} stream readers were not resumed by the Flink runner for "
                        f"{stalled:.0f} s (a Beam portable-runner stall); the job was stopped with a drain: what "
                        f"was read is loaded, what was not committed is read again by the next run"]
            ended = readers
        if ended >= readers:
            ended_at = ended_at or time.monotonic()
            local = not flink_master or flink_master == "[local]"
            master = local_flink_master(names[-1]) if local and names else flink_master
            if master and names:
                import shutil
                import tempfile
                folder = tempfile.mkdtemp(prefix="flow-beam-savepoint-") if local else None
                try:  # [local] has no savepoint folder configured: a throw-away one
                    flink_stop(master, names[-1], folder)
                    if folder:
                        beam_result.wait_until_finish()
                    return warnings
                except OSError:
                    pass
                finally:
                    if folder:
                        shutil.rmtree(folder, ignore_errors=True)
            if set(targets) <= done:
                cancel_run(beam_result, "flink", flink_master, args)
                return warnings
            if time.monotonic() - ended_at > grace_s:
                cancel_run(beam_result, "flink", flink_master, args)
                return warnings + [f"the readers ended but not every target reported its last pane within "
                                   f"{grace_s:.0f} s; the job was cancelled (the next run re-reads what was not "
                                   f"committed)"]
        time.sleep(poll_s)
    return warnings


def readers_in_this_process(args: list[str]) -> bool:
    """Whether the run's Python work (its readers) runs in this process: Beam's LOOPBACK environment, the
    default here. With an external worker pool the start and stall watchdogs see no reader call and stay off."""
    env = [a.split("=", 1)[1] for a in args if a.startswith("--environment_type=")]
    return bool(env) and env[-1].upper() == "LOOPBACK"


def check_started(run_id: str, readers: int, submitted: float, start_s: float | None = None) -> bool:
    """Whether a reader of the run was invoked in this process; raises JobDidNotStart when none was within
    ``start_s`` (FLOW_BEAM_FLINK_START_S, default 60) of ``submitted`` (time.monotonic()): such a job read and
    committed nothing, so the caller may cancel it and submit it again."""
    import time

    from ir_compiler.lower.streaming import last_reader_call
    if not readers or last_reader_call(run_id) is not None:
        return True
    if start_s is None:
        start_s = float(os.environ.get("FLOW_BEAM_FLINK_START_S", "60"))
    if time.monotonic() - submitted > start_s:
        raise JobDidNotStart(f"Flink started none of the run's {readers} stream readers within {start_s:.0f} s "
                             f"of the submission")
    return False


def wait_started(beam_result, run_id: str, readers: int, poll_s: float = 0.5,
                 start_s: float | None = None) -> None:
    """A streaming job on Flink that runs until stopped: return once one of its readers was invoked (or the job
    ended); JobDidNotStart as in check_started."""
    import time

    from apache_beam.runners.runner import PipelineState
    submitted = time.monotonic()
    while not PipelineState.is_terminal(beam_result.state):
        if check_started(run_id, readers, submitted, start_s):
            return
        time.sleep(poll_s)


def wait_job_gone(beam_result, flink_master: str | None, args: list[str], timeout_s: float = 60.0) -> None:
    """After cancel_run: wait until Beam's result is terminal and, on a cluster, no unfinished job of this name
    is left (a resubmission under the same name must not meet the old job)."""
    import time

    from apache_beam.runners.runner import PipelineState
    names = _job_names(args)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = []
        if flink_master and flink_master != "[local]" and names:
            try:
                left = _unfinished_jobs(flink_master, names[-1])
            except OSError:
                left = []
        try:
            terminal = PipelineState.is_terminal(beam_result.state)
        except Exception:  # noqa: BLE001 - the job service forgot the job: it is gone
            terminal = True
        if terminal and not left:
            return
        time.sleep(0.5)


def job_name_args(runner: str, pipeline_id: str, run_id: str, extra: list[str]) -> list[str]:
    """Flink: name the job after the pipeline and run (lowercase, so Flink's REST API can find it to cancel)."""
    if runner != "flink" or any(a.startswith("--job_name") for a in extra):
        return []
    import re
    return [f"--job_name={re.sub(r'[^a-z0-9-]+', '-', f'flowbeam-{pipeline_id}-{run_id}'.lower())}"]


def cancel_run(beam_result, runner: str, flink_master: str | None, args: list[str]) -> None:
    """Stop a running job: Beam's cancel, and on a Flink cluster also Flink's REST cancel (Beam's alone leaves the
    job running there). Best effort: the job is going away either way."""
    try:
        beam_result.cancel()
    except Exception:  # noqa: BLE001
        pass
    if runner == "flink" and flink_master and flink_master != "[local]":
        names = _job_names(args)
        try:
            if names:
                flink_cancel(flink_master, job_name=names[-1])
        except OSError:
            pass


def flink_rest(master: str, method: str, path: str) -> dict:
    """One call to a Flink cluster's REST API (127.0.0.1:8081 for the local one)."""
    import json
    import urllib.request
    url = (master if master.startswith(("http://", "https://")) else f"http://{master}").rstrip("/")
    req = urllib.request.Request(f"{url}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read().decode()
    return json.loads(body) if body.strip() else {}


LOCAL_REST_PORTS = range(50100, 50200)  # the [local] MiniCluster's REST API (scripts/flink.sh conf-local)


def local_flink_master(job_name: str) -> str | None:
    """The 127.0.0.1 REST endpoint of the [local] MiniCluster running this job (ports LOCAL_REST_PORTS)."""
    import socket
    for port in LOCAL_REST_PORTS:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            continue
        try:
            jobs = flink_rest(f"127.0.0.1:{port}", "GET", "/jobs/overview").get("jobs", [])
        except (OSError, ValueError):
            continue
        if any(j.get("name") == job_name for j in jobs):
            return f"127.0.0.1:{port}"
    return None


def flink_stop(master: str, job_name: str, target_dir: str | None = None) -> list[str]:
    """Stop the running jobs with this name with a savepoint and drain (Flink's REST API; into ``target_dir`` or
    the cluster's state.savepoints.dir): the job ends FINISHED. Returns the ids stopped."""
    import json
    import urllib.request
    url = (master if master.startswith(("http://", "https://")) else f"http://{master}").rstrip("/")
    jobs = flink_rest(master, "GET", "/jobs/overview").get("jobs", [])
    ids = [j["jid"] for j in jobs if j.get("name") == job_name and j.get("state") == "RUNNING"]
    for jid in ids:
        body = {"drain": True, **({"targetDirectory": f"file://{target_dir}"} if target_dir else {})}
        req = urllib.request.Request(f"{url}/jobs/{jid}/stop", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
    return ids


def _unfinished_jobs(master: str, job_name: str) -> list[dict]:
    """The cluster's jobs of this name that have not ended (REST /jobs/overview)."""
    return [j for j in flink_rest(master, "GET", "/jobs/overview").get("jobs", [])
            if j.get("name") == job_name and j.get("state") not in ("FINISHED", "CANCELED", "FAILED")]


def _job_names(args: list[str]) -> list[str]:
    """The --job_name values among Beam options (the last one wins)."""
    return [a.split("=", 1)[1] for a in args if a.startswith("--job_name=")]


def flink_cancel(master: str, job_name: str | None = None, job_id: str | None = None) -> list[str]:
    """Cancel running jobs on a Flink cluster through its REST API (Beam's result.cancel() does not stop a job on
    a real cluster): the job with this id, or every unfinished job with this name. Returns the ids cancelled."""
    if job_id:
        ids = [job_id]
    else:
        ids = [j["jid"] for j in _unfinished_jobs(master, job_name)]
    for jid in ids:
        flink_rest(master, "PATCH", f"/jobs/{jid}?mode=cancel")
    return ids


def make_pipeline(runner: str, args: list[str]):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(args)
    if runner == "flink":
        # Beam's embedded [local] MiniCluster (in the job-server JVM Beam starts) reads FLINK_CONF_DIR
        os.environ["FLINK_CONF_DIR"] = flink_local_conf()
    if runner == "direct":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


from dataclasses import dataclass, field  # noqa: E402


@dataclass
class DataflowProfile:
    """What a Dataflow submission needs, checked up front (``flow-beam run --runner dataflow``)."""

    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    staging_location: str | None = None
    service_account: str | None = None
    network: str | None = None
    subnetwork: str | None = None
    machine_type: str | None = None
    max_workers: int | None = None
    job_name: str | None = None
    streaming: bool = False
    update: bool = False
    renames: dict[str, str] = field(default_factory=dict)  # old node id -> new node id (for --update)
    dry_run: bool = False

    def problems(self) -> list[str]:
        out = []
        if not self.project:
            out.append("--project is required (the Google Cloud project to run in)")
        if not self.region:
            out.append("--region is required (e.g. us-central1)")
        if not self.temp_location and not self.dry_run:
            out.append("--temp-location is required (a gs:// folder for temporary files)")
        for name in ("temp_location", "staging_location"):
            value = getattr(self, name)
            if value and not value.startswith("gs://"):
                out.append(f"--{name.replace('_', '-')} must be a gs:// path, got {value!r}")
        if self.renames and not self.update:
            out.append("--rename-node only applies to a pipeline update; add --update")
        return out


def dataflow_args(profile: DataflowProfile, pipeline_id: str, extra: list[str] | None = None) -> list[str]:
    """Beam options for DataflowRunner; raises RunnerError listing every problem at once."""
    problems = profile.problems()
    if problems:
        raise RunnerError("the Dataflow profile is incomplete:\n  - " + "\n  - ".join(problems))
    try:
        import apache_beam.runners.dataflow.dataflow_runner  # noqa: F401
        import google.cloud.storage  # noqa: F401
    except ImportError:
        raise RunnerError("the dataflow runner needs Beam's GCP extras: pip install 'flow-beam[gcp]'") from None
    import json
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = ["--runner=DataflowRunner", f"--project={profile.project}", f"--region={profile.region}",
            f"--job_name={profile.job_name or pipeline_id}"]
    args.append(f"--temp_location={profile.temp_location or 'gs://dry-run-placeholder/tmp'}")
    opt = {"staging_location": profile.staging_location, "service_account_email": profile.service_account,
           "network": profile.network, "subnetwork": profile.subnetwork, "machine_type": profile.machine_type,
           "max_num_workers": profile.max_workers}
    args += [f"--{k}={v}" for k, v in opt.items() if v is not None]
    if os.path.exists(os.path.join(root, "setup.py")):
        args.append(f"--setup_file={os.path.join(root, 'setup.py')}")  # workers install flow-beam
    if profile.streaming:
        args.append("--streaming")
    if profile.update:
        args.append("--update")
        if profile.renames:
            args.append("--transform_name_mapping=" + json.dumps(profile.renames))
    if profile.dry_run:
        args.append("--dry_run=True")
    return args + list(extra or [])
