"""The cause of the "stalled" Flink streaming jobs, pinned on the real cluster.

Beam's Flink runner (DoFnOperator, Beam 2.70) by default finishes a bundle still in flight when a checkpoint's
barrier has already gone downstream (snapshotState) and *buffers* that bundle's output; the buffer is emitted
only when the operator next starts a bundle or receives a watermark. The stage fed by `Impulse` gets exactly one
element and then the final watermark: when a checkpoint falls while its one bundle is in the Python harness, the
bundle's output (the readers' restrictions) stays in that buffer for ever — the job RUNS, checkpoints complete,
no reader is invoked. Under load the harness takes seconds over that bundle, so a 10 s checkpoint interval hit it
now and then (2 of 6 runs of a two-topic join; CI runs failed on it). flow-beam sets Beam's
`--finish_bundle_before_checkpointing` on Flink (flow_beam.runners.streaming_args): the bundle is finished and
its output emitted *before* the barrier, nothing is buffered.

The test makes the race the rule: a checkpoint every 100 ms (so one falls inside the Impulse-fed bundles of both
sources), one submission only (no resubmission may hide a stall), and checks the join is loaded exactly.
Without `--finish_bundle_before_checkpointing` the same run fails with "Flink started none of the run's ... stream
readers"."""
import pytest

pytestmark = [pytest.mark.infra, pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_checkpoint_during_the_first_bundle_does_not_stall_the_readers(tmp_path, monkeypatch):
    from test_streaming_join import need, orders_payments_join

    from flow_beam.running import RunOptions, run_document
    servers, master = need("flink")
    monkeypatch.setenv("FLOW_BEAM_FLINK_START_ATTEMPTS", "1")
    monkeypatch.setenv("FLOW_BEAM_FLINK_START_S", "90")
    orders = [{"order_id": i, "amount": i, "ts": 1767225600 + i} for i in range(30)]
    payments = [{"order_id": i, "paid": 10 * i, "ts": 1767225600 + i + 1} for i in range(30)]
    doc = orders_payments_join("ckptrace", servers, orders, payments)
    db = tmp_path / "w.duckdb"
    result = run_document(doc, RunOptions(runner="flink", warehouse=f"duckdb://{db}", stop_after_idle_s=3,
                                          flink_master=master, beam_args=["--checkpointing_interval=100"]))
    assert result.status == "completed", result.error
    assert not any("submitted again" in w for w in result.warnings), result.warnings
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = sorted(con.execute("SELECT order_id, amount, paid FROM public.paid").fetchall())
    finally:
        con.close()
    assert got == [(i, i, 10 * i) for i in range(30)]
