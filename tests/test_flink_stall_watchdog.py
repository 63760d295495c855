"""The stall watchdog of an idle-stopped streaming run on Flink (flow_beam.runners.stop_when_drained).

Beam's portable Flink runner (job server 2.70) started a streaming job that never invoked its readers now and then
(2 of 6 runs of the two-topic join of tests/test_streaming_join.py here; CI runs failed on it): the cause, a
bundle's output buffered during a checkpoint, is removed by --finish_bundle_before_checkpointing
(tests/test_flink_checkpoint_buffer.py). The watchdog stays as a second line of defence; these tests drive it with
the reader bookkeeping it reads (connectors.streams) and a fake job, the Flink REST calls recorded instead of sent;
the last tests declare a real job on the real cluster not started and check the cancel-and-resubmit loads every
row once."""
import time

import pytest

from connectors import streams
from flow_beam import runners


pytestmark = pytest.mark.timeout(60)  # without the watchdog the first test would wait forever


class FakeJob:
    """A Beam PipelineResult that stays RUNNING until stopped."""
    def __init__(self):
        self.state = "RUNNING"

    def wait_until_finish(self):
        self.state = "DONE"

    def cancel(self):
        self.state = "CANCELLED"


@pytest.fixture
def rest(monkeypatch):
    calls = []

    def stop(master, name, folder=None):
        calls.append(("stop", master, name))
        job.state = "DONE"
        return ["jid"]

    def cancel(master, job_name=None, job_id=None):
        calls.append(("cancel", master, job_name))
        job.state = "CANCELLED"
        return ["jid"]

    job = FakeJob()
    monkeypatch.setattr(runners, "flink_stop", stop)
    monkeypatch.setattr(runners, "flink_cancel", cancel)
    return job, calls


def test_a_stalled_reader_stops_the_job_with_a_drain_and_says_so(rest):
    job, calls = rest
    run = "stall-run"
    try:
        with streams._LOCK:
            streams._LAST_CALL[run] = time.monotonic() - 5.0  # the readers were last resumed 5 s ago
        streams.reader_done(run, ("orders", "t:0"))  # one of two readers ended
        warnings = runners.stop_when_drained(job, "127.0.0.1:1", ["--environment_type=LOOPBACK", "--job_name=j1"], run, ["out"], readers=2,
                                             poll_s=0.01, stall_s=1.0)
    finally:
        streams.forget(run)
    assert calls == [("stop", "127.0.0.1:1", "j1")]
    assert len(warnings) == 1 and "1 of 2 stream readers were not resumed" in warnings[0]
    assert "read again by the next run" in warnings[0]


def test_readers_still_being_resumed_are_not_a_stall(rest):
    job, calls = rest
    run = "busy-run"
    try:
        with streams._LOCK:
            streams._LAST_CALL[run] = time.monotonic()
        # nothing ended, the readers were resumed just now: the watchdog must leave the job alone
        import threading
        stopper = threading.Timer(0.5, lambda: setattr(job, "state", "DONE"))
        stopper.start()
        warnings = runners.stop_when_drained(job, "127.0.0.1:1", ["--environment_type=LOOPBACK", "--job_name=j2"], run, ["out"], readers=2,
                                             poll_s=0.01, stall_s=30.0)
        stopper.join()
    finally:
        streams.forget(run)
    assert calls == [] and warnings == []


def test_every_reader_ended_stops_without_a_warning(rest):
    job, calls = rest
    run = "ended-run"
    try:
        with streams._LOCK:
            streams._LAST_CALL[run] = time.monotonic() - 500.0  # long ago, but every reader ended: no stall
        streams.reader_done(run, ("orders", "t:0"))
        streams.reader_done(run, ("orders", "t:1"))
        warnings = runners.stop_when_drained(job, "127.0.0.1:1", ["--environment_type=LOOPBACK", "--job_name=j3"], run, ["out"], readers=2,
                                             poll_s=0.01, stall_s=1.0)
    finally:
        streams.forget(run)
    assert calls == [("stop", "127.0.0.1:1", "j3")] and warnings == []
    assert streams.last_reader_call(run) is None  # forget() drops the run's bookkeeping


def test_a_job_whose_readers_never_start_raises_job_did_not_start(rest):
    job, calls = rest
    run = "never-run"
    try:  # no reader of the run was ever invoked
        with pytest.raises(runners.JobDidNotStart, match="none of the run's 2 stream readers within"):
            runners.stop_when_drained(job, "127.0.0.1:1", ["--environment_type=LOOPBACK", "--job_name=j4"], run, ["out"], readers=2,
                                      poll_s=0.01, stall_s=1.0, start_s=0.2)
    finally:
        streams.forget(run)
    assert calls == []  # the caller cancels and resubmits (tested on the real cluster below)


@pytest.mark.infra
@pytest.mark.slow
@pytest.mark.timeout(300)  # a later submission may itself stall for FLOW_BEAM_FLINK_START_S
def test_a_job_that_did_not_start_is_cancelled_and_submitted_again_on_the_cluster(tmp_path, monkeypatch):
    """The real cluster: the first submission is declared not started at once (start_s=0: its readers cannot have
    been invoked yet), so flow-beam cancels it, waits until Flink has no unfinished job of that name, submits the
    pipeline again, and that run loads the join exactly once (no row missing, none twice)."""
    from test_streaming_join import need, orders_payments_join

    from flow_beam.running import RunOptions, run_document
    servers, master = need("flink")
    real = runners.stop_when_drained
    calls = []

    def first_declared_not_started(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            kwargs["start_s"] = 0.0
        return real(*args, **kwargs)

    monkeypatch.setattr(runners, "stop_when_drained", first_declared_not_started)
    orders = [{"order_id": i, "customer": f"c{i % 3}", "amount": i, "ts": 1767225600 + i} for i in range(20)]
    payments = [{"order_id": i, "paid": 10 * i, "ts": 1767225600 + i + 1} for i in range(20)]
    doc = orders_payments_join("resubmit", servers, orders, payments)
    db = tmp_path / "w.duckdb"
    result = run_document(doc, RunOptions(runner="flink", warehouse=f"duckdb://{db}", stop_after_idle_s=3,
                                          flink_master=master))
    assert result.status == "completed", result.error
    assert len(calls) >= 2  # a second submission may stall on its own (then a third is made)
    assert any("cancelled and submitted again" in w for w in result.warnings), result.warnings
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = sorted(con.execute("SELECT order_id, amount, paid FROM public.paid").fetchall())
    finally:
        con.close()
    assert got == [(i, i, 10 * i) for i in range(20)]
    jobs = [j for j in runners.flink_rest(master, "GET", "/jobs/overview")["jobs"]
            if j["name"].startswith("flowbeam-resubmit-") and j["state"] not in ("FINISHED", "CANCELED", "FAILED")]
    assert jobs == []


@pytest.mark.infra
@pytest.mark.slow
@pytest.mark.timeout(300)  # a later submission may itself stall for FLOW_BEAM_FLINK_START_S
def test_a_job_that_never_starts_fails_clearly_after_the_last_submission(tmp_path, monkeypatch):
    """Every submission declared not started (start_s=0): after FLOW_BEAM_FLINK_START_ATTEMPTS submissions the run
    fails with an error saying how many were made and what to do, nothing is loaded, and no job is left on Flink."""
    from test_streaming_join import need, source, topic_with

    from flow_beam.running import RunOptions, run_document
    servers, master = need("flink")
    real = runners.stop_when_drained
    calls = []

    def never_started(*args, **kwargs):
        calls.append(1)
        kwargs["start_s"] = 0.0
        return real(*args, **kwargs)

    monkeypatch.setattr(runners, "stop_when_drained", never_started)
    monkeypatch.setenv("FLOW_BEAM_FLINK_START_ATTEMPTS", "2")
    rows = [{"order_id": i, "ts": 1767225600 + i} for i in range(5)]
    doc = {"kind": "pipeline", "version": "1.0", "id": "neverstarts", "nodes": [
        source("orders", servers, topic_with(servers, rows), [("order_id", "int"), ("ts", "int")]),
        {"id": "out", "kind": "target", "input": "orders", "schema": "public.orders", "loadMode": "append"}]}
    db = tmp_path / "w.duckdb"
    result = run_document(doc, RunOptions(runner="flink", warehouse=f"duckdb://{db}", stop_after_idle_s=3,
                                          flink_master=master))
    assert result.status == "failed"
    assert len(calls) == 2
    assert "2 submissions" in result.error and "FLOW_BEAM_FLINK_START_ATTEMPTS" in result.error, result.error
    assert sum("submitted again" in w for w in result.warnings) == 1, result.warnings
    if db.exists():
        import duckdb
        con = duckdb.connect(str(db), read_only=True)
        try:
            tables = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'"
                                 ).fetchone()[0]
            loaded = con.execute("SELECT count(*) FROM public.orders").fetchone()[0] if tables else 0
        finally:
            con.close()
        assert loaded == 0
    jobs = [j for j in runners.flink_rest(master, "GET", "/jobs/overview")["jobs"]
            if j["name"].startswith("flowbeam-neverstarts-") and j["state"] not in ("FINISHED", "CANCELED", "FAILED")]
    assert jobs == []


def test_without_a_reader_in_this_process_the_watchdogs_stay_off(rest):
    """An external worker pool runs the readers elsewhere: no reader call is ever seen here, which is not a stall."""
    job, calls = rest
    run = "external-run"
    import threading
    stopper = threading.Timer(0.6, lambda: setattr(job, "state", "DONE"))
    stopper.start()
    try:
        warnings = runners.stop_when_drained(job, "127.0.0.1:1", ["--environment_type=EXTERNAL", "--job_name=j5"],
                                             run, ["out"], readers=2, poll_s=0.01, stall_s=0.1, start_s=0.1)
    finally:
        stopper.join()
        streams.forget(run)
    assert calls == [] and warnings == []


def test_wait_started_returns_at_the_first_reader_call_and_raises_without_one():
    job = FakeJob()
    run = "start-run"
    try:
        with pytest.raises(runners.JobDidNotStart):
            runners.wait_started(job, run, readers=1, poll_s=0.01, start_s=0.2)
        with streams._LOCK:
            streams._LAST_CALL[run] = time.monotonic()
        runners.wait_started(job, run, readers=1, poll_s=0.01, start_s=0.2)  # returns: a reader was invoked
    finally:
        streams.forget(run)
