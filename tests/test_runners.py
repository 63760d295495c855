"""The same IR document with a bounded file source gives identical target tables and counts on every runner:
DirectRunner (FnApiRunner), Prism (Beam's Go runner, scripts/prism.sh), Flink `[local]` (Beam's embedded
MiniCluster in the job-server jar scripts/flink.sh builds) and the real Flink cluster scripts/flink.sh starts
(JobManager + TaskManager on 127.0.0.1:8081). Runners whose component is missing skip with the reason and the
script to run (CI starts them all: scripts/services.sh up)."""
import os

import duckdb
import pytest

from conftest import write_csv
from flow_beam.runners import RunnerError, beam_args
from flow_beam.running import RunOptions, run_document

DOC = {"kind": "pipeline", "version": "1.0", "id": "runners", "nodes": [
    {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "IN", "format": "csv"},
     "schema": [{"name": "id", "type": "int"}, {"name": "country", "type": "string"},
                {"name": "amount", "type": "float"}]},
    {"id": "t", "kind": "transform", "input": "src", "ops": [
        {"op": "filter", "condition": "amount > 0"},
        {"op": "expression", "field": "amount2", "expr": "amount * 2"}]},
    {"id": "v", "kind": "validate", "input": "t",
     "rowLevel": [{"id": "c", "field": "country", "rule": "not_null", "onFail": "quarantine"}]},
    {"id": "agg", "kind": "transform", "input": "v", "ops": [
        {"op": "aggregate", "groupBy": ["country"],
         "aggregations": [{"fn": "count", "as": "n"}, {"field": "amount2", "fn": "sum", "as": "total"}]}]},
    {"id": "rows", "kind": "target", "input": "v", "schema": "public.rows", "loadMode": "upsert", "upsertKey": "id",
     "lineage": False},
    {"id": "totals", "kind": "target", "input": "agg", "schema": "public.totals", "loadMode": "truncate",
     "lineage": False}]}


def tables(tmp_path, runner, flink_master=None):
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    write_csv(folder / "a.csv", ["id", "country", "amount"],
              [[i, None if i % 7 == 0 else ["FR", "DE", "US"][i % 3], (i % 5) - 1] for i in range(200)])
    import json
    doc = json.loads(json.dumps(DOC).replace('"IN"', json.dumps(str(folder))))
    db = tmp_path / f"{runner}.duckdb"
    result = run_document(doc, RunOptions(runner=runner, warehouse=f"duckdb://{db}",
                                                 flink_master=flink_master))
    assert result.status == "completed_with_errors", result.error  # the null countries are quarantined
    con = duckdb.connect(str(db), read_only=True)
    try:
        return (sorted(con.execute("select id, country, amount, amount2 from public.rows").fetchall()),
                sorted(con.execute("select country, n, total from public.totals").fetchall()),
                {k: (r.rowsIn, r.rowsOut, r.rowsQuarantined, r.rowsFiltered, r.rowsLoaded)
                 for k, r in result.nodes.items()})
    finally:
        con.close()


def _available(runner, flink_master=None):
    try:
        beam_args(runner, flink_master=flink_master)
    except RunnerError as exc:
        pytest.skip(str(exc))


def cluster_master():
    master = os.environ.get("FLOW_BEAM_FLINK_MASTER")
    if not master:
        pytest.skip("no Flink cluster: bash scripts/flink.sh start && eval \"$(bash scripts/flink.sh env)\"")
    return master


def test_direct_reference(tmp_path):
    rows, totals, counts = tables(tmp_path, "direct")
    kept = [i for i in range(200) if (i % 5) - 1 > 0]  # the filter keeps amount > 0
    valid = [i for i in kept if i % 7 != 0]  # validate quarantines the null countries
    assert [r[0] for r in rows] == valid
    assert counts["t"][:4] == (200, len(kept), 0, 200 - len(kept))
    assert counts["v"][:3] == (len(kept), len(valid), len(kept) - len(valid))
    assert sum(n for _, n, _ in totals) == len(valid)


@pytest.mark.infra
@pytest.mark.parametrize("runner", ["prism", "flink-local", "flink-cluster"])
def test_same_tables_on_other_runners(tmp_path, runner):
    master = cluster_master() if runner == "flink-cluster" else None
    name = runner.split("-")[0]
    _available(name, master)
    (tmp_path / "direct").mkdir()
    (tmp_path / runner).mkdir()
    assert tables(tmp_path / runner, name, master) == tables(tmp_path / "direct", "direct")


def test_missing_component_names_the_script(monkeypatch, tmp_path):
    monkeypatch.setenv("FLOW_BEAM_PRISM", str(tmp_path / "no-prism"))
    with pytest.raises(RunnerError, match="scripts/prism.sh"):
        beam_args("prism")
    monkeypatch.delenv("FLOW_BEAM_FLINK_JOB_ENDPOINT", raising=False)
    monkeypatch.setenv("FLOW_BEAM_FLINK_JAR", str(tmp_path / "no.jar"))
    with pytest.raises(RunnerError, match="scripts/flink.sh"):
        beam_args("flink")
    assert os.environ["FLOW_BEAM_PRISM"].endswith("no-prism")


def test_flink_cluster_that_does_not_answer_names_the_script(monkeypatch, tmp_path):
    jar = tmp_path / "job-server.jar"
    jar.write_bytes(b"")
    monkeypatch.setenv("FLOW_BEAM_FLINK_JAR", str(jar))
    import shutil
    if not shutil.which("java"):
        pytest.skip("no java on PATH")
    with pytest.raises(RunnerError, match=r"no Flink cluster answers at 127\.0\.0\.1:1 .*scripts/flink.sh start"):
        beam_args("flink", flink_master="127.0.0.1:1")
    monkeypatch.setenv("FLOW_BEAM_FLINK_CONF_DIR", str(tmp_path / "no-conf"))
    with pytest.raises(RunnerError, match=r"127\.0\.0\.1\): run `bash scripts/flink.sh install`"):
        beam_args("flink")


def test_flink_versions_are_pinned_once(monkeypatch):
    """scripts/flink.sh and runners.py read the same pins (flow_beam/flink_pins.py)."""
    import subprocess

    from flow_beam import flink_pins
    from flow_beam.runners import flink_jar
    monkeypatch.delenv("FLOW_BEAM_FLINK_JAR", raising=False)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(["bash", os.path.join(root, "scripts", "flink.sh"), "env"], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "FLOW_BEAM_FLINK_JAR"}, check=True).stdout
    assert f"export FLOW_BEAM_FLINK_JAR={flink_jar()}\n" in out
    assert f"-{flink_pins.BEAM_JAVA}-flink{flink_pins.FLINK}.jar" in flink_jar()
    args = beam_args("flink") if os.path.exists(flink_jar()) else None
    if args:
        assert f"--flink_version={flink_pins.FLINK_MINOR}" in args and "--flink_master=[local]" in args
