"""Exactly once per file (SPEC §6): the ``_flow_files`` ledger commits with the rows, claims are atomic and
owned, and a file is loaded whole or not at all. Crashes are real: SIGKILL at named points
(``FLOW_BEAM_FAULT``, see ir_compiler/faults.py) and at random times, of a ``python -m flow_beam run``
subprocess; overlapping runs are two real subprocesses on one folder."""
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time

import duckdb
import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flow_beam.running import RunOptions, run_document

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATOM = {"stagingFolder": ".processing/", "successFolder": ".done/", "failureFolder": ".failed/"}
SCHEMA = [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]


def make_doc(folder, targets=(("tgt", "public.t", None),), fmt="csv", atomicity=None, dlq=False, pid="eo"):
    """local_fs source → one node per target: (id, table, transform ops or None)."""
    nodes = [{"id": "src", "kind": "source", "connector": "local_fs",
              "config": {"path": str(folder), "format": fmt, "atomicity": atomicity or ATOM}, "schema": SCHEMA}]
    for tid, table, ops in targets:
        up = "src"
        if ops:
            nodes.append({"id": f"{tid}_prep", "kind": "transform", "input": "src", "ops": ops})
            up = f"{tid}_prep"
        nodes.append({"id": tid, "kind": "target", "input": up, "schema": table, "loadMode": "append",
                      "lineage": False})
    doc = {"kind": "pipeline", "version": "1.0", "id": pid, "nodes": nodes}
    if dlq:
        doc["errorHandling"] = {"dlq": {"enabled": True, "table": "dlq.eo"}}
    return doc


def write_files(folder, n_files, rows_per_file, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for f in range(n_files):
        lo = start + f * rows_per_file
        with open(folder / f"part-{lo:07d}.csv", "w") as fh:
            fh.write("id,name\n")
            fh.writelines(f"{i},n{i}\n" for i in range(lo, lo + rows_per_file))
        ids += range(lo, lo + rows_per_file)
    return ids


def ids_in(wh_path, table="public.t"):
    if not os.path.exists(wh_path):
        return []
    con = duckdb.connect(str(wh_path), read_only=True)
    try:
        return sorted(r[0] for r in con.execute(f"select id from {table}").fetchall())
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(r, n), folder) for r, _, ns in os.walk(folder) for n in ns
                  if not n.startswith("."))


def run_cli(doc_path, wh, env=None, wait=True):
    cmd = [sys.executable, "-m", "flow_beam", "run", str(doc_path), "--warehouse", str(wh)]
    full_env = {**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "200", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def assert_each_file_accounted(folder, n_files):
    """Every input file ended in the success folder, once; nothing in the input or staging folders."""
    left = [f for f in files_under(folder) if not f.startswith(".done")]
    assert left == [], left
    done = sorted(os.listdir(folder / ".done"))
    assert len(done) == n_files, done
    staging = folder / ".processing"
    assert not staging.exists() or [n for n in os.listdir(staging) if not n.endswith(".lock-new")] == []


def assert_each_file_in_one_place(folder, n_files):
    """After a crash: each input file is in exactly one of input / staging / success / failure."""
    names = [os.path.basename(f) for f in files_under(folder)]
    assert len(names) == n_files and len(set(names)) == n_files, files_under(folder)


def run(doc, wh):
    return run_document(doc, RunOptions(warehouse=f"duckdb://{wh}"))


# ---- the ledger -----------------------------------------------------------------------------------------
def test_a_committed_file_left_in_staging_is_not_loaded_again(tmp_path):
    """The state a kill between the warehouse commit and the move leaves: the file loaded AND in staging."""
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    ids = write_files(folder, 2, 1000)
    first = run(make_doc(folder), wh)
    assert first.status == "completed" and ids_in(wh) == ids
    moved = folder / ".done" / "part-0000000.csv"
    (folder / ".processing").mkdir(exist_ok=True)
    os.rename(moved, folder / ".processing" / "part-0000000.csv")  # as if the run died before moving it
    second = run(make_doc(folder), wh)
    assert ids_in(wh) == ids  # not loaded twice
    assert second.status == "completed_with_errors", second.error
    assert any("already loaded" in w for w in second.nodes["src"].warnings)
    assert second.nodes["src"].rowsIn == 0 and second.nodes["tgt"].rowsLoaded == 0
    assert_each_file_accounted(folder, 2)
    led = duckdb.connect(str(wh), read_only=True).execute(
        "select table_name, file_size, rows_loaded, run_id from _flow_files order by path").fetchall()
    assert [(t, rows) for t, _, rows, _ in led] == [("public.t", 1000), ("public.t", 1000)]
    assert {r[3] for r in led} == {first.runId}


def test_identity_is_the_content(tmp_path):
    """A renamed copy of a loaded file (same bytes) is the same file; a changed file is a new one."""
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    write_files(folder, 1, 10)
    assert run(make_doc(folder), wh).status == "completed"
    (folder / "copy.csv").write_bytes((folder / ".done" / "part-0000000.csv").read_bytes())
    (folder / "other.csv").write_text("id,name\n100,x\n")
    again = run(make_doc(folder), wh)
    assert ids_in(wh) == list(range(10)) + [100]
    assert any("copy.csv was already loaded" in w for w in again.nodes["src"].warnings)
    assert sorted(os.listdir(folder / ".done")) == ["copy.csv", "other.csv", "part-0000000.csv"]
    from connectors.local_fs.files import file_identity
    ident = file_identity(str(folder / ".done" / "other.csv"))
    assert ident["size"] == len("id,name\n100,x\n") and len(ident["hash"]) == 64


FAULTS = ["after_claim", "before_commit", "after_commit", "before_move", "after_first_move"]


@pytest.mark.parametrize("point", FAULTS)
def test_kill_at_each_point_then_recover_loads_every_row_once(tmp_path, point):
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    ids = write_files(folder, 3, 2000)
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps(make_doc(folder)))
    code, out = run_cli(doc, wh, {"FLOW_BEAM_FAULT": point})
    assert code == -signal.SIGKILL, out  # really killed at that point
    assert ids_in(wh) in ([], ids)  # as before or as after, never half
    assert_each_file_in_one_place(folder, 3)
    code, out = run_cli(doc, wh)
    assert code in (0, 2), out
    assert ids_in(wh) == ids
    assert_each_file_accounted(folder, 3)


@pytest.mark.parametrize("second_kind", ["row_wise", "aggregate"])
def test_kill_between_two_targets_loads_each_target_once(tmp_path, second_kind):
    """One source, two targets: the first target committed, then the run died. The rerun loads the files only
    into the target that lacks them (row-wise: rows filtered by file; an aggregate: all or nothing)."""
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    ids = write_files(folder, 3, 500)
    ops = [{"op": "aggregate", "groupBy": [], "aggregations": [{"fn": "count", "as": "id"}]}] \
        if second_kind == "aggregate" else [{"op": "add_field", "field": "tag", "value": "b"}]
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps(make_doc(folder, [("ta", "public.ta", None), ("tb", "public.tb", ops)])))
    code, out = run_cli(doc, wh, {"FLOW_BEAM_FAULT": "after_commit@1"})
    assert code == -signal.SIGKILL, out
    loaded = [t for t in ("public.ta", "public.tb") if ids_in(wh, t)]
    assert len(loaded) == 1  # exactly one target committed
    code, out = run_cli(doc, wh)
    assert code in (0, 2), out
    assert ids_in(wh, "public.ta") == ids
    assert ids_in(wh, "public.tb") == (ids if second_kind == "row_wise" else [1500])
    assert_each_file_accounted(folder, 3)
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select table_name, count(*) from _flow_files group by 1 order by 1").fetchall() == [
        ("public.ta", 3), ("public.tb", 3)]


@pytest.mark.slow
def test_random_sigkills_never_lose_or_double_a_row(tmp_path):
    """SIGKILL at random times (6 trials), then a recovery run: every row exactly once, every file accounted."""
    rng = random.Random(11)
    for trial in range(6):
        folder, wh = tmp_path / f"in{trial}", tmp_path / f"wh{trial}.duckdb"
        ids = write_files(folder, 4, 20000)
        doc = tmp_path / f"p{trial}.json"
        doc.write_text(json.dumps(make_doc(folder)))
        proc = run_cli(doc, wh, wait=False)
        time.sleep(rng.uniform(1.0, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert ids_in(wh) in ([], ids), f"trial {trial}: a half load"
        assert_each_file_in_one_place(folder, 4)
        code, out = run_cli(doc, wh)
        assert code in (0, 2), out
        got = ids_in(wh)
        assert len(got) == len(ids) and got == ids, f"trial {trial}: {len(got)} rows for {len(ids)}"
        assert_each_file_accounted(folder, 4)


# ---- a full success folder ------------------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB file system (tmpfs) for the success folder: needs root to mount, else the test skips."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_success_folder_is_a_clear_warning_and_nothing_is_loaded_twice(tmp_path, tiny_disk):
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    ids = write_files(folder, 1, 100_000)  # ~1.3 MB: does not fit in 64 KiB
    doc = make_doc(folder, atomicity={**ATOM, "successFolder": str(tiny_disk / "done")})
    first = run(doc, wh)
    assert ids_in(wh) == ids
    assert first.status == "completed_with_errors"
    msg = " ".join(first.warnings)
    assert "could not move input files" in msg and "No space left" in msg and "not loaded twice" in msg
    assert os.listdir(tiny_disk / "done") == []  # no half-copied file left behind
    second = run(doc, wh)  # the disk is still full
    assert ids_in(wh) == ids and second.nodes["tgt"].rowsLoaded == 0
    subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_disk)], check=True)
    third = run(doc, wh)
    assert ids_in(wh) == ids and third.status == "completed_with_errors"  # says: already loaded
    assert os.listdir(tiny_disk / "done") == ["part-0000000.csv"]
    assert files_under(folder) == []


# ---- claims ---------------------------------------------------------------------------------------------
_HOLDER = """
import sys, time
from connectors.local_fs.files import Claim
c = Claim(sys.argv[1], None, "deadbeef" * 4, "p", "src")
c.stage([sys.argv[2]])
print("claimed", flush=True)
time.sleep(120)
"""


def test_a_live_runs_files_are_never_taken_and_a_dead_runs_are(tmp_path):
    from connectors.local_fs.files import Claim
    (tmp_path / "a.csv").write_text("id\n1\n")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path), str(tmp_path / "a.csv")],
                              env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        other = Claim(str(tmp_path), None, "1" * 32, "p", "src")
        assert other.adopt() == ([], [])  # its owner is alive: hands off
        owner = json.loads(open(tmp_path / ".processing" / f".{'deadbeef' * 4}.src.lock").read())
        assert owner["pid"] == holder.pid and owner["nodeId"] == "src"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    taken, notes = other.adopt()  # the kernel dropped the dead owner's lock
    assert [os.path.basename(p) for p in taken] == ["a.csv"] and "recovered" in notes[0]
    assert os.path.dirname(taken[0]) == other.folder
    other.stage([])
    assert sorted(os.listdir(tmp_path / ".processing")) == [f".{'1' * 32}.src.lock", f"{'1' * 32}.src"]
    os.remove(taken[0])
    other.release()
    assert os.listdir(tmp_path / ".processing") == []


def test_another_sources_dead_folder_is_left_alone(tmp_path):
    from connectors.local_fs.files import Claim
    mine = Claim(str(tmp_path), None, "2" * 32, "p", "orders")
    (tmp_path / "b.csv").write_text("id\n1\n")
    theirs = Claim(str(tmp_path), None, "3" * 32, "p", "customers")
    theirs.stage([str(tmp_path / "b.csv")])
    os.close(theirs._fd)  # as if its process died
    theirs._fd = None
    assert mine.adopt() == ([], [])
    assert os.listdir(theirs.folder) == ["b.csv"]


@pytest.mark.slow
@pytest.mark.infra
def test_two_runs_on_one_folder_load_every_row_once(tmp_path):
    """Two `flow-beam run` processes started together on one input folder, 6 times: every row exactly once."""
    from pg_util import fresh_database
    import psycopg

    with fresh_database() as url:
        for trial in range(6):
            folder = tmp_path / f"in{trial}"
            ids = write_files(folder, 6, 5000)
            doc = tmp_path / f"p{trial}.json"
            doc.write_text(json.dumps(make_doc(folder, [("tgt", f"public.t{trial}", None)])))
            procs = [run_cli(doc, url, wait=False) for _ in range(2)]
            outs = [p.communicate(timeout=600)[0] for p in procs]
            assert all(p.returncode in (0, 2) for p in procs), \
                [(p.returncode, out[-3000:]) for p, out in zip(procs, outs)]  # the end: the error is there
            with psycopg.connect(url) as con:
                got = sorted(r[0] for r in con.execute(f"select id from public.t{trial}").fetchall())
            assert got == ids, f"trial {trial}: {len(got)} rows for {len(ids)} ({len(got) - len(set(got))} doubled)"
            assert_each_file_accounted(folder, 6)


# ---- whole file or nothing ------------------------------------------------------------------------------
def _cut(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def _broken_gzip_csv(folder):
    with gzip.open(folder / "bad.csv.gz", "wt") as fh:
        fh.write("id,name\n")
        fh.writelines(f"{i},n{i}\n" for i in range(10_000, 410_000))
    _cut(folder / "bad.csv.gz", 0.7)


def _broken_avro(folder):
    schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]})
    with open(folder / "bad.avro", "wb") as fh:
        fastavro.writer(fh, schema, ({"id": i, "name": f"n{i}"} for i in range(10_000, 210_000)))
    _cut(folder / "bad.avro", 0.6)


def _broken_parquet(folder):
    table = pa.table({"id": pa.array(range(10_000, 130_000), pa.int64()),
                      "name": [f"n{i}" for i in range(10_000, 130_000)]})
    pq.write_table(table, folder / "bad.parquet", row_group_size=20_000, compression="snappy")
    data = bytearray((folder / "bad.parquet").read_bytes())
    mid = len(data) * 2 // 3
    data[mid:mid + 20_000] = b"\xff" * 20_000  # a damaged row group in the middle
    (folder / "bad.parquet").write_bytes(bytes(data))


def _broken_jsonl(folder):
    with open(folder / "bad.jsonl", "w") as fh:
        fh.writelines(json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(10_000, 12_000))
    data = (folder / "bad.jsonl").read_bytes()
    (folder / "bad.jsonl").write_bytes(data[:data.index(b"\n", len(data) // 2) + 12])  # cut inside a line


def _good(folder, fmt):
    rows = [{"id": i, "name": f"n{i}"} for i in range(100)]
    if fmt == "csv":
        with gzip.open(folder / "good.csv.gz", "wt") as fh:
            fh.write("id,name\n" + "".join(f"{r['id']},{r['name']}\n" for r in rows))
    elif fmt == "avro":
        with open(folder / "good.avro", "wb") as fh:
            fastavro.writer(fh, fastavro.parse_schema({"type": "record", "name": "R", "fields": [
                {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]}), rows)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), folder / "good.parquet")
    else:
        (folder / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


BROKEN = {"csv": _broken_gzip_csv, "avro": _broken_avro, "parquet": _broken_parquet, "jsonl": _broken_jsonl}


@pytest.mark.parametrize("fmt", sorted(BROKEN))
def test_a_file_that_breaks_part_way_is_loaded_not_at_all(tmp_path, fmt):
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    folder.mkdir()
    _good(folder, fmt)
    BROKEN[fmt](folder)
    result = run(make_doc(folder, fmt=fmt, dlq=True), wh)
    assert ids_in(wh) == list(range(100))  # only the whole file
    src, tgt = result.nodes["src"], result.nodes["tgt"]
    assert tgt.rowsLoaded == 100
    assert (src.rowsIn, src.rowsOut, src.rowsQuarantined) == (101, 100, 1)  # the broken file counts as one
    assert any("unreadable file bad." in w for w in src.warnings)
    assert result.status == "completed_with_errors"
    assert os.listdir(folder / ".failed") == [f"bad.{'csv.gz' if fmt == 'csv' else fmt}"]
    assert len(os.listdir(folder / ".done")) == 1
    con = duckdb.connect(str(wh), read_only=True)
    dlq = con.execute("select error from dlq.eo").fetchall()
    assert len(dlq) == 1 and dlq[0][0].startswith("unreadable file")  # no row errors from the broken part
    files = con.execute("select path from _flow_files").fetchall()
    assert [os.path.basename(p) for (p,) in files] == [f"good.{'csv.gz' if fmt == 'csv' else fmt}"]


def test_moves_cut_short_by_a_crash_are_finished_once(tmp_path):
    """What a kill in the middle of a move leaves: the renamed-but-unplaced file, a placed file still under its
    temporary name too, an unfinished copy, and a file linked into the success folder but still staged."""
    from connectors.local_fs.files import Claim, StagedFiles

    dead = tmp_path / ".processing" / f"{'4' * 32}.src"
    dead.mkdir(parents=True)
    (dead / f".{'a' * 32}.moving.a.csv").write_text("id\n1\n")  # renamed, not placed
    (dead / "b.csv").write_text("id\n2\n")
    os.link(dead / "b.csv", dead / f".{'b' * 32}.moving.b.csv")  # placed, temporary name not yet dropped
    (dead / f".{'c' * 32}.copying").write_text("id\n")  # a copy cut short (its original is elsewhere)
    claim = Claim(str(tmp_path), ATOM, "5" * 32, "p", "src")
    taken, _ = claim.adopt()
    assert sorted(os.path.basename(p) for p in taken) == ["a.csv", "b.csv"]
    assert sorted(os.listdir(claim.folder)) == ["a.csv", "b.csv"] and not dead.exists()
    staged = StagedFiles(str(tmp_path), ATOM, taken, taken)
    done = tmp_path / ".done"
    done.mkdir()
    os.link(taken[0], done / "a.csv")  # the crash came between the link into success and the unlink
    assert sorted(os.path.basename(p) for p in staged.commit()) == ["a.csv", "b.csv"]
    assert sorted(os.listdir(done)) == ["a.csv", "b.csv"] and os.listdir(claim.folder) == []
    claim.release()
    assert os.listdir(tmp_path / ".processing") == []


# ---- a file that breaks part-way AFTER its rows streamed on (no barrier: the targets' commit drops them) ----------
def _breaks_mid_file(folder, rows=700_000):
    """A plain CSV that passes every up-front check (ends with a line break, whole last record) but holds invalid
    UTF-8 after ~9 MB: the reader has emitted rows (and a row error) of it before it breaks."""
    with open(folder / "b_bad.csv", "wb") as fh:
        fh.write(b"id,name\n1000,x,extra\n")  # a row error before the break: it must not reach the DLQ
        fh.writelines(f"{i},n{i}\n".encode() for i in range(10_000, 10_000 + rows))
        fh.write(b"5,\xff\xfe\n")
        fh.writelines(f"{i},n{i}\n".encode() for i in range(900_000, 900_100))


def _good_csv(folder, name="a_good.csv", n=100):
    (folder / name).write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(n)))


def test_a_file_breaking_after_rows_streamed_is_left_out_of_a_row_wise_target(tmp_path):
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    folder.mkdir()
    _good_csv(folder)
    _breaks_mid_file(folder)
    result = run(make_doc(folder, dlq=True), wh)
    assert ids_in(wh) == list(range(100))
    src, tgt = result.nodes["src"], result.nodes["tgt"]
    assert (src.rowsIn, src.rowsOut, src.rowsQuarantined) == (101, 100, 1)
    assert tgt.status == "loaded" and (tgt.rowsIn, tgt.rowsLoaded) == (100, 100)  # balance holds
    assert any("left out" in w and "b_bad.csv" in w and "broke part-way" in w for w in tgt.warnings)
    assert result.status == "completed_with_errors"
    assert os.listdir(folder / ".failed") == ["b_bad.csv"] and os.listdir(folder / ".done") == ["a_good.csv"]
    con = duckdb.connect(str(wh), read_only=True)
    dlq = con.execute("select error from dlq.eo").fetchall()
    assert len(dlq) == 1 and dlq[0][0].startswith("unreadable file") and "invalid UTF8" in dlq[0][0]
    assert [os.path.basename(p) for (p,) in con.execute("select path from _flow_files").fetchall()] == ["a_good.csv"]


def test_a_file_breaking_after_rows_streamed_stops_a_target_that_mixes_files(tmp_path):
    """Aggregate (rows of several files in one row) + a row-wise target: the aggregate loads nothing, with an
    error naming the file; the row-wise target loads the good file; the broken file fails, the good one goes
    back to the input folder, and the next run loads it into the aggregate only (the ledger)."""
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    folder.mkdir()
    _good_csv(folder)
    _breaks_mid_file(folder)
    agg = [{"op": "aggregate", "groupBy": [], "aggregations": [{"fn": "count", "as": "id"}]}]
    doc = make_doc(folder, [("rows", "public.t", None), ("agg", "public.agg", agg)], dlq=True)
    first = run(doc, wh)
    assert first.status == "failed"
    err = first.nodes["agg"].error
    assert first.nodes["agg"].status == "failed" and "b_bad.csv" in err and "broke part-way" in err
    assert "nothing was loaded" in err and "the next run loads the other files" in err
    assert ids_in(wh, "public.agg") == [] and ids_in(wh, "public.t") == list(range(100))
    assert os.listdir(folder / ".failed") == ["b_bad.csv"]
    assert files_under(folder) == [".failed/b_bad.csv", "a_good.csv"]  # back in the input folder
    second = run(doc, wh)
    assert second.status in ("completed", "completed_with_errors"), second.error
    assert ids_in(wh, "public.agg") == [100] and ids_in(wh, "public.t") == list(range(100))
    assert second.nodes["rows"].rowsLoaded == 0  # already loaded: left out by the ledger
    assert files_under(folder) == [".done/a_good.csv", ".failed/b_bad.csv"]


def test_a_file_failing_its_up_front_check_does_not_stop_an_aggregate(tmp_path):
    """A truncated gzip/Avro file is found before any row of it is emitted: an aggregate loads the rest."""
    folder, wh = tmp_path / "in", tmp_path / "wh.duckdb"
    folder.mkdir()
    _good(folder, "avro")
    _broken_avro(folder)
    agg = [{"op": "aggregate", "groupBy": [], "aggregations": [{"fn": "count", "as": "id"}]}]
    result = run(make_doc(folder, [("agg", "public.agg", agg)], fmt="avro", dlq=True), wh)
    assert result.status == "completed_with_errors", result.error
    assert ids_in(wh, "public.agg") == [100]
    assert any("bad.avro" in w and "cut off" in w for w in result.nodes["src"].warnings)
    assert os.listdir(folder / ".failed") == ["bad.avro"]


def test_verify_file_checks_each_format_without_reading_rows(tmp_path):
    from connectors.formats import avro_blocks, verify_file, verify_gzip
    from ir_compiler.errors import ConnectorError

    for fmt, make in BROKEN.items():
        folder = tmp_path / fmt
        folder.mkdir()
        _good(folder, fmt)
        make(folder)
        good = next(folder.glob("good.*"))
        verify_file(str(good), fmt, {})
        bad = next(folder.glob("bad.*"))
        if fmt == "parquet":  # a damaged page inside a whole file: only reading finds it (the commit drops it)
            verify_file(str(bad), fmt, {})
            continue
        with pytest.raises(ConnectorError, match="bad"):
            verify_file(str(bad), fmt, {})
    gz = tmp_path / "multi.csv.gz"
    first, second = gzip.compress(b"id\n1\n"), gzip.compress(b"2\n")
    gz.write_bytes(first + second + b"\x00" * 8)  # two members and zero padding
    assert verify_gzip(str(gz)) == len(b"id\n1\n2\n")
    damaged = bytearray(first)
    damaged[-6] ^= 0xFF  # the first member's CRC-32
    gz.write_bytes(bytes(damaged) + second)
    with pytest.raises(ConnectorError, match="gzip.*incorrect data check"):
        verify_file(str(gz), "csv", {})
    gz.write_bytes(first + second[:-3])
    with pytest.raises(ConnectorError, match="cut off"):
        verify_file(str(gz), "csv", {})
    assert [b.count for b in avro_blocks(str(tmp_path / "avro" / "good.avro"))] == [100]


@pytest.mark.parametrize("text, whole", [
    ('id,name,amount\n1,"a",1\n3,"carol","1234', False),  # cut inside a quoted value (probe: loaded 1234.00)
    ('id,name,amount\n1,"a",1\n3,"car', False),
    ('id,name,amount\n1,"a ""q""",1\n2,"multi\nline",5', True),  # the last record spans lines: whole
    ('id,name,amount\n1,"a",1\n2,"b",7', True),
    ('id,name,amount\n1,"a",1\n2,"b"', False),  # too few fields
])
def test_a_csv_cut_inside_a_quoted_value_is_not_whole(tmp_path, text, whole):
    """Found by a probe: a file whose last line ended inside an unclosed quote passed as whole (any quote in the
    last line meant "no guess") and its cut value loaded. An odd number of quote characters now means cut off."""
    from connectors.formats import check_complete
    from ir_compiler.errors import ConnectorError
    path = tmp_path / "a.csv"
    path.write_text(text)
    if whole:
        check_complete(str(path), "csv", {})
    else:
        with pytest.raises(ConnectorError, match="cut off"):
            check_complete(str(path), "csv", {})
