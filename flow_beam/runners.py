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
        raise RunnerError("the dataflow runner is not available yet in this build (planned with the Flex "
                          "Template work); run locally with --runner direct, prism or flink")
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
