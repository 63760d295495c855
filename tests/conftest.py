import copy
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

def pytest_report_header(config):
    """Which real components the infra tests run against."""
    kind = os.environ.get("FLOW_BEAM_PUBSUB_KIND")
    host = os.environ.get("FLOW_BEAM_PUBSUB")
    if not host:
        return "pubsub: not running (its tests skip)"
    what = "Google's Pub/Sub emulator" if kind == "google" else "the in-repo Pub/Sub stand-in (emulator missing)"
    return f"pubsub: {what} at {host}"


@pytest.fixture(autouse=True)
def _no_flink_job_outlives_its_test(request):
    """A Flink job a test leaves running (a failed assertion before its cancel, a timeout) holds the cluster's two
    task slots, and the next Flink test then waits for slots (and restarts) until CI's time runs out. After every
    test that ran with the cluster up, cancel the jobs that started during it and are still unfinished."""
    master = os.environ.get("FLOW_BEAM_FLINK_MASTER")
    before = _flink_jobs(master) if master else None
    yield
    if before is None:
        return
    from flow_beam.runners import flink_rest
    for jid, state in (_flink_jobs(master) or {}).items():
        if jid not in before and state not in ("FINISHED", "CANCELED", "FAILED"):
            try:
                flink_rest(master, "PATCH", f"/jobs/{jid}?mode=cancel")
            except Exception as exc:  # the cluster went away: nothing to hold its slots
                print(f"could not cancel Flink job {jid}: {exc}", file=sys.stderr)


def _flink_jobs(master):
    """{job id: state} of the cluster, or None when it is not reachable."""
    from flow_beam.runners import flink_rest
    try:
        return {j["jid"]: j.get("state") for j in flink_rest(master, "GET", "/jobs/overview").get("jobs", [])}
    except Exception:
        return None


# The SPEC's validate example (source → validate → target), completed with a source and a target.
SPEC_VALIDATE_DOC = {
    "kind": "pipeline", "version": "1.0", "id": "spec-validate",
    "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": "IN", "pattern": {"type": "glob", "value": "*.csv"}, "format": "csv"}},
        {"id": "v", "kind": "validate", "input": "src",
         "rowLevel": [{"id": "amt-positive", "field": "amount", "rule": "gt:0", "onFail": "quarantine"}],
         "datasetLevel": {"rowCount": {"min": 1, "onFail": "abort"}},
         "quarantine": {"table": "dlq.orders"}},
        {"id": "tgt", "kind": "target", "input": "v", "schema": "public.ds_orders", "loadMode": "append"},
    ],
}


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse(request, tmp_path):
    """A warehouse URL: a DuckDB file, then a fresh PostgreSQL database (skipped without scripts/postgres.sh)."""
    if request.param == "duckdb":
        yield f"duckdb://{tmp_path / 'w.duckdb'}"
        return
    from pg_util import fresh_database
    with fresh_database() as url:
        yield url


@pytest.fixture
def spec_doc():
    return copy.deepcopy(SPEC_VALIDATE_DOC)


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(",".join(header) + "\n")
        for r in rows:
            fh.write(",".join("" if v is None else str(v) for v in r) + "\n")


def doc_with_path(doc, folder):
    text = json.dumps(doc).replace('"IN"', json.dumps(str(folder)))
    return json.loads(text)
