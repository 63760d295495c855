"""Schedules: next fire times (cron with an IANA timezone, DST-correct; interval; rrule), a small scheduler
that runs every due pipeline of a folder, and exports for external schedulers.

Semantics chosen here (documented in the README):
- cron: evaluated in the schedule's timezone on wall-clock time (croniter on zone-aware datetimes), so
  "0 2 * * *" in America/Los_Angeles fires at 02:00 local time all year; a time skipped by a DST jump fires at
  the first existing minute after it, and a repeated hour fires once.
- interval: every N minutes on the UTC grid aligned to midnight UTC (minutes 15 → :00, :15, :30, :45).
- rrule: an RFC 5545 RRULE; DTSTART (if missing) is midnight of the current day in the timezone.
- serve: missed runs are not back-filled; a pipeline whose run is still going when it is due again is skipped
  (one run at a time per pipeline); each run lands in the warehouse's run history.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from zoneinfo import ZoneInfo

from ir_compiler.errors import FlowError


def _zone(name: str | None):
    try:
        return ZoneInfo(name or "UTC")
    except Exception:  # noqa: BLE001 - zoneinfo raises several types for bad names
        raise FlowError(f"unknown timezone {name!r}; use an IANA name such as America/Los_Angeles") from None


def next_times(schedule, n: int = 5, after: dt.datetime | None = None) -> list[dt.datetime]:
    """The next ``n`` fire times after ``after`` (aware datetimes in the schedule's timezone, or UTC)."""
    after = after or dt.datetime.now(dt.timezone.utc)
    if after.tzinfo is None:
        after = after.replace(tzinfo=dt.timezone.utc)
    if schedule.kind == "cron":
        return _cron(schedule, n, after)
    if schedule.kind == "interval":
        step = dt.timedelta(minutes=schedule.minutes)
        base = after.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        k = int((after.astimezone(dt.timezone.utc) - base) / step) + 1
        return [base + step * (k + i) for i in range(n)]
    return _rrule(schedule, n, after)


def _cron(schedule, n, after):
    from croniter import CroniterBadCronError, croniter

    zone = _zone(schedule.timezone)
    try:
        it = croniter(schedule.expression, after.astimezone(zone))
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise FlowError(f"invalid cron expression {schedule.expression!r}: {exc}") from None
    out: list[dt.datetime] = []
    while len(out) < n:
        t = it.get_next(dt.datetime)
        if not out or t > out[-1]:
            out.append(t)
    return out


def _rrule(schedule, n, after):
    from dateutil import rrule

    zone = _zone(schedule.timezone)
    text = schedule.rrule.strip()
    local_after = after.astimezone(zone)
    try:
        if "DTSTART" in text.upper():
            rule = rrule.rrulestr(text, forceset=True)
        else:
            start = local_after.replace(hour=0, minute=0, second=0, microsecond=0)
            rule = rrule.rrulestr(text.removeprefix("RRULE:"), dtstart=start, forceset=True)
    except (ValueError, TypeError) as exc:
        raise FlowError(f"invalid rrule {schedule.rrule!r}: {exc}") from None
    out, t = [], local_after
    while len(out) < n:
        try:
            nxt = rule.after(t)
        except TypeError:  # a DTSTART without a zone in the rule text: compare on wall-clock time
            nxt = rule.after(t.replace(tzinfo=None))
        if nxt is None:
            break
        nxt = nxt if nxt.tzinfo else nxt.replace(tzinfo=zone)
        out.append(nxt)
        t = nxt
    return out


def schedule_of(path: str):
    from ir_compiler.loader import load_document

    pipeline, _ = load_document(path)
    if pipeline.schedule is None:
        raise FlowError(f"{path} has no 'schedule'")
    return pipeline


# ---- serve ---------------------------------------------------------------------------------------------
class Scheduler:
    """Runs every scheduled pipeline of a folder at its times (one run at a time per pipeline)."""

    def __init__(self, folder: str, warehouse: str | None, runner: str = "direct", now=None, sleep=time.sleep,
                 log=print):
        self.folder, self.warehouse, self.runner = folder, warehouse, runner
        self.now = now or (lambda: dt.datetime.now(dt.timezone.utc))
        self.sleep, self.log = sleep, log
        self.running: dict[str, threading.Thread] = {}
        self.due: dict[str, dt.datetime] = {}
        self.results: list = []

    def documents(self) -> dict[str, object]:
        docs = {}
        for name in sorted(os.listdir(self.folder)):
            if name.endswith(".json"):
                path = os.path.join(self.folder, name)
                try:
                    p = schedule_of(path)
                    docs[path] = p
                except FlowError as exc:
                    self.log(f"skip {name}: {exc}")
        return docs

    def tick(self) -> list[str]:
        """Start every pipeline that is due now; returns the paths started."""
        now, started = self.now(), []
        for path, pipeline in self.documents().items():
            if path not in self.due:
                self.due[path] = next_times(pipeline.schedule, 1, now)[0]  # no back-fill of missed runs
                continue
            if self.due[path] > now:
                continue
            self.due[path] = next_times(pipeline.schedule, 1, now)[0]
            busy = self.running.get(path)
            if busy is not None and busy.is_alive():
                self.log(f"{pipeline.id}: still running, this run is skipped")
                continue
            thread = threading.Thread(target=self._run, args=(path,), daemon=True)
            self.running[path] = thread
            thread.start()
            started.append(path)
        return started

    def _run(self, path: str) -> None:
        from flow_beam.running import RunOptions, run_document

        result = run_document(path, RunOptions(runner=self.runner, warehouse=self.warehouse))
        self.results.append(result)
        self.log(f"{result.pipelineId}: {result.status} (run {result.runId[:12]})")

    def serve(self, max_ticks: int | None = None, interval: float = 20.0) -> None:
        ticks = 0
        while max_ticks is None or ticks < max_ticks:
            self.tick()
            ticks += 1
            self.sleep(interval)

    def join(self) -> None:
        for t in self.running.values():
            t.join()


# ---- export --------------------------------------------------------------------------------------------
def cron_for_export(schedule) -> tuple[str, str]:
    """(cron expression, timezone) for external schedulers; rrule has no cron equivalent."""
    if schedule.kind == "cron":
        return schedule.expression, schedule.timezone
    if schedule.kind == "interval":
        m = schedule.minutes
        if m < 60 and 60 % m == 0:
            return f"*/{m} * * * *", "UTC"
        if m % 60 == 0 and 24 % (m // 60) == 0:
            return f"0 */{m // 60} * * *", "UTC"
        raise FlowError(f"an interval of {m} minutes has no cron equivalent; use a cron schedule to export")
    raise FlowError("rrule schedules cannot be exported to cron-based schedulers; use a cron schedule")


def cloud_scheduler_job(pipeline, template_spec: str, project: str, region: str, service_account: str | None,
                        params: dict | None = None) -> dict:
    """A Cloud Scheduler job (HTTP target) that launches the Flex Template through the Dataflow API."""
    cron, tz = cron_for_export(pipeline.schedule)
    body = {"launchParameter": {"jobName": f"{pipeline.id}", "containerSpecGcsPath": template_spec,
                                "parameters": {k: str(v) for k, v in (params or {}).items()}}}
    target = {"uri": f"https://dataflow.googleapis.com/v1b3/projects/{project}/locations/{region}"
                     f"/flexTemplates:launch", "httpMethod": "POST",
              "headers": {"Content-Type": "application/json"},
              "body": __import__("base64").b64encode(json.dumps(body).encode()).decode()}
    if service_account:
        target["oauthToken"] = {"serviceAccountEmail": service_account,
                                "scope": "https://www.googleapis.com/auth/cloud-platform"}
    return {"name": f"projects/{project}/locations/{region}/jobs/flow-beam-{pipeline.id}",
            "description": f"flow-beam pipeline {pipeline.id}", "schedule": cron, "timeZone": tz,
            "httpTarget": target}


AIRFLOW_DAG = '''"""Airflow DAG generated by `flow-beam schedule export` for pipeline {pid}."""
import pendulum
from airflow import DAG
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

with DAG(
    dag_id={dag_id!r},
    schedule={cron!r},
    start_date=pendulum.datetime(2024, 1, 1, tz={tz!r}),
    catchup=False,
    max_active_runs=1,
    tags=["flow-beam"],
) as dag:
    run = BeamRunPythonPipelineOperator(
        task_id="run_pipeline",
        runner={runner!r},
        py_file="flow_beam.flex",
        py_options=["-m"],
        pipeline_options={options!r},
        py_requirements=["flow-beam"],
        py_interpreter="python3",
        py_system_site_packages=False,
    )
'''


def airflow_dag(pipeline, ir_file: str, runner: str = "DataflowRunner", options: dict | None = None) -> str:
    cron, tz = cron_for_export(pipeline.schedule)
    return AIRFLOW_DAG.format(pid=pipeline.id, dag_id=f"flow_beam_{pipeline.id.replace('-', '_')}", cron=cron,
                              tz=tz, runner=runner, options={"ir_file": ir_file, **(options or {})})
