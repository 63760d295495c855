"""The stall watchdog of an idle-stopped streaming run on Flink (flow_beam.runners.stop_when_drained).

Beam's portable Flink runner (job server 2.70) now and then stops resuming a splittable reader that deferred its
remainder: the job then runs forever with nothing to do (seen here once in a dozen runs of the two-topic join of
tests/test_streaming_join.py; a CI run hung on it). That stall cannot be produced on demand, so these tests drive
the watchdog with the reader bookkeeping it reads (connectors.streams) and a fake job; the Flink REST calls are
recorded instead of sent. The real-cluster runs are in tests/test_streaming*.py."""
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
        warnings = runners.stop_when_drained(job, "127.0.0.1:1", ["--job_name=j1"], run, ["out"], readers=2,
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
        warnings = runners.stop_when_drained(job, "127.0.0.1:1", ["--job_name=j2"], run, ["out"], readers=2,
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
        warnings = runners.stop_when_drained(job, "127.0.0.1:1", ["--job_name=j3"], run, ["out"], readers=2,
                                             poll_s=0.01, stall_s=1.0)
    finally:
        streams.forget(run)
    assert calls == [("stop", "127.0.0.1:1", "j3")] and warnings == []
    assert streams.last_reader_call(run) is None  # forget() drops the run's bookkeeping
