"""connectors/streams.py without a runner: what the one reader core of every stream connector commits (cumulative
logs: up to the first record not durable yet; single acknowledgements: exactly the durable ones), how it reads the
targets through the StreamPlan it is handed, and the source-wide watermark. The connectors' own suites
(test_streaming*, test_pubsub_pipelines, test_kinesis, test_pulsar) run it against the real servers."""
import numpy as np
import pytest

from connectors import streams
from connectors.codecs import Record
from connectors.streams import NEVER_FINAL, LogSpec, Partition, PartitionLog, SourceClock, StreamPlan


class Targets:
    """What the compiler hands a reader about its targets (ir_compiler.lower.streaming.TargetProgress)."""

    def __init__(self, frontier=None, written=None):
        self._frontier, self._written = frontier, written or {}

    def frontier(self):
        return self._frontier

    def written(self):
        return dict(self._written)

    def highest_written(self, topic_index, partition):
        return self._written.get((topic_index, partition))


class Log(PartitionLog):
    def __init__(self, part):
        self.part = part


class Spec(LogSpec):
    def __init__(self, cumulative=True, ord_by_position=False):
        self.cumulative, self.ord_by_position = cumulative, ord_by_position
        self.commits_made = []

    def open(self, part):
        return Log(part)

    def commit(self, batch):
        self.commits_made.append({n: q for n, (_, _, q) in batch.items()})


@pytest.fixture
def reader(request):
    made = []

    def make(plan, spec, run="run-core"):
        fn = streams.StreamReadFn("src", None, spec, None, None, 1000, plan, None, run)
        fn.setup()
        made.append(run)
        return fn
    yield make
    for run in made:
        streams.forget(run)


def pend(fn, part, positions, counters, times):
    fn._log(part)
    key = fn.run_key
    streams._PENDING.setdefault(key, {}).setdefault(part.name, []).append(
        (list(positions), np.array(counters, dtype=np.int64), np.array(times, dtype=np.int64)))


PART = Partition("p0", 0, 3)


def test_a_cumulative_log_commits_up_to_the_first_record_whose_window_is_not_final(reader):
    spec = Spec()
    fn = reader(StreamPlan(windowed=("t",), retention_us=10, targets=Targets(frontier=100)), spec)
    pend(fn, PART, [5, 6, 7, 8], [0, 1, 2, 3], [50, 90, 95, 20])  # 95 + 10 > 100: the third is still open
    fn._maybe_commit(force=True)
    assert spec.commits_made == [{"p0": 6}]
    assert streams._PENDING[fn.run_key]["p0"][0][0] == [7, 8]  # what is committed is forgotten
    fn._maybe_commit(force=True)
    assert spec.commits_made == [{"p0": 6}]  # nothing newer is durable: no second commit


def test_single_acknowledgements_ack_exactly_the_durable_records(reader):
    spec = Spec(cumulative=False)
    fn = reader(StreamPlan(windowed=("t",), retention_us=10, targets=Targets(frontier=100)), spec)
    pend(fn, PART, [5, 6, 7, 8], [0, 1, 2, 3], [50, 90, 95, -1])  # -1: an undecodable message, done
    fn._maybe_commit(force=True)
    assert spec.commits_made == [{"p0": [5, 6, 8]}]
    assert streams._PENDING[fn.run_key]["p0"][0][0] == [7]


def test_unwindowed_targets_gate_commits_by_the_counters_every_one_recorded(reader):
    spec = Spec()
    fn = reader(StreamPlan(plain=("a", "b"), targets=Targets(written={(0, 3): 2})), spec)
    pend(fn, PART, [100, 101, 102], [0, 1, 2], [0, 0, 0])
    fn._maybe_commit(force=True)
    assert spec.commits_made == [{"p0": 101}]  # counters 0 and 1 are written, 2 is not


def test_nothing_is_committed_before_the_targets_have_a_frontier_or_when_windows_never_close(reader):
    spec = Spec()
    fn = reader(StreamPlan(windowed=("t",), retention_us=10, targets=Targets(frontier=None)), spec)
    pend(fn, PART, [1], [0], [0])
    fn._maybe_commit(force=True)
    session = reader(StreamPlan(windowed=("t",), retention_us=NEVER_FINAL, targets=Targets(frontier=10 ** 12)),
                     spec, "run-core-2")
    assert not session._gated()  # session/global windows: never final while streaming, nothing is held
    assert spec.commits_made == []


def test_a_log_ordered_by_position_puts_the_position_in_the_order_column(reader):
    spec = Spec(ord_by_position=True)

    class Json:
        format = "json"
    fn = reader(StreamPlan(), spec)
    fn.cfg = Json()
    records = [Record(40 + i, b'{"v": %d}' % i, None, 1_000_000 * i, {}, f"p0@{40 + i}") for i in range(3)]
    out = list(fn._emit(PART, fn._log(PART), records))
    table = out[0].value
    assert table.column("v").to_pylist() == [0, 1, 2]
    assert table.column("__fb_ord").to_pylist() == [streams.ord_base(0, 3) + 40 + i for i in range(3)]
    assert streams.event_cap("run-core") == 2_000_000  # the latest event read caps the targets' frontier


def test_the_source_watermark_waits_for_unread_partitions_and_follows_caught_up_ones():
    clock = SourceClock(["a", "b"])
    clock.update("a", state="reading", progress=500, latest=900)
    assert clock.watermark() is None  # b has not read yet: it holds the source at the start of time
    clock.update("b", state="reading", progress=300, latest=400)
    assert clock.watermark() == 300
    clock.update("b", state="caught_up")
    assert clock.watermark() == 500
    clock.update("a", state="caught_up")
    assert clock.watermark() == 900  # all caught up: the latest event read
    clock.update("a", state="reading", progress=100)
    assert clock.watermark() == 900  # never moves back
