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


def _prism_binary() -> str:
    path = os.environ.get("FLOW_BEAM_PRISM") or os.path.join(CACHE, "bin", "prism")
    if not os.path.exists(path):
        raise RunnerError("the prism runner needs Beam's Prism binary; run `bash scripts/prism.sh install` "
                          "(or set FLOW_BEAM_PRISM to its path)")
    return path


def _flink_args() -> list[str]:
    endpoint = os.environ.get("FLOW_BEAM_FLINK_JOB_ENDPOINT")
    if endpoint:
        return ["--runner=PortableRunner", f"--job_endpoint={endpoint}", "--environment_type=LOOPBACK"]
    jar = os.environ.get("FLOW_BEAM_FLINK_JAR") or os.path.join(
        CACHE, "jars", "beam-runners-flink-1.20-job-server-2.77.0.jar")
    if not os.path.exists(jar) or not shutil.which("java"):
        raise RunnerError("the flink runner needs Beam's Flink job server; run `bash scripts/flink.sh start` "
                          "(it prints FLOW_BEAM_FLINK_JOB_ENDPOINT) or `bash scripts/flink.sh install`")
    return ["--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.20", f"--flink_job_server_jar={jar}",
            "--environment_type=LOOPBACK"]


def beam_args(runner: str, extra: list[str] | None = None, flink_master: str | None = None) -> list[str]:
    """Beam command-line options for the runner (user options after ``--`` come last and win)."""
    extra = list(extra or [])
    if runner == "direct":
        base = []
    elif runner == "prism":
        base = ["--runner=PrismRunner", f"--prism_location={_prism_binary()}", "--environment_type=LOOPBACK"]
    elif runner == "flink":
        base = _flink_args()
        if flink_master:
            base = [a for a in base if not a.startswith(("--flink_master", "--runner=Portable", "--job_endpoint"))]
            base = ["--runner=FlinkRunner", f"--flink_master={flink_master}"] + [
                a for a in base if not a.startswith("--runner")]
    elif runner == "dataflow":
        raise RunnerError("the dataflow runner needs its profile: use dataflow_args(DataflowProfile(...))")
    else:
        raise RunnerError(f"unknown runner '{runner}'; use one of {', '.join(RUNNERS)}")
    return base + extra


def make_pipeline(runner: str, args: list[str]):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(args)
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
