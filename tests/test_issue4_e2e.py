"""The warehouse issue's end-to-end pipeline on real PostgreSQL: source → transform → validate → enrich (a local
HTTP server) → join → blue_green target → archive; plus archive actions and the enrich rate limit."""
import gzip
import json
import os
import time

import pytest

from conftest import write_csv
from connectors.warehouse import open_warehouse
from flow_beam.running import RunOptions, run_document
from http_util import http_server
from pg_util import fresh_database


def pipeline(tmp_path, base, archive):
    return {"kind": "pipeline", "version": "1.0", "id": "pg-e2e", "nodes": [
        {"id": "orders", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "orders"), "pattern": {"type": "glob", "value": "*.csv"},
                    "format": "csv", "atomicity": {"stagingFolder": ".processing/", "successFolder": ".done/",
                                                   "failureFolder": ".failed/"}},
         "schema": [{"name": "order_id", "type": "int"}, {"name": "customer_id", "type": "string"},
                    {"name": "amount", "type": "float"}]},
        {"id": "regions", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "regions"), "format": "jsonl"}},
        {"id": "prep", "kind": "transform", "input": "orders", "ops": [
            {"op": "expression", "field": "amount_cents", "expr": "CAST(round(amount * 100) AS int)"}]},
        {"id": "v", "kind": "validate", "input": "prep",
         "rowLevel": [{"id": "positive", "field": "amount", "rule": "gt:0", "onFail": "quarantine"}],
         "quarantine": {"table": "dlq.pg_quarantine"}},
        {"id": "score", "kind": "enrich", "input": "v",
         "provider": {"kind": "http", "url": f"{base}/score/{{customer_id}}"},
         "output": {"risk": "risk"}, "onError": "quarantine", "batchSize": 2, "concurrency": 2},
        {"id": "j", "kind": "join", "inputs": ["score", "regions"], "type": "left", "on": ["customer_id"]},
        {"id": "tgt", "kind": "target", "input": "j", "schema": "analytics.orders", "loadMode": "blue_green"},
        {"id": "arch", "kind": "archive", "input": "tgt", **archive}],
        "errorHandling": {"dlq": {"enabled": True, "table": "dlq.pg_errors"},
                          "retry": {"maxAttempts": 2, "backoff": "fixed", "initialDelaySeconds": 0.01}}}


def inputs(tmp_path):
    (tmp_path / "orders").mkdir()
    (tmp_path / "regions").mkdir()
    write_csv(tmp_path / "orders" / "o1.csv", ["order_id", "customer_id", "amount"],
              [[1, "C1", 10.5], [2, "C2", -1], [3, "C3", 7.25], [4, "CX", 3]])
    (tmp_path / "regions" / "r.jsonl").write_text('{"customer_id": "C1", "region": "EU"}\n'
                                                  '{"customer_id": "C3", "region": "US"}\n')


def risk_api(path, body, n):
    cid = path.rsplit("/", 1)[1]
    if cid == "CX":
        return 200, b"garbage", 0
    return 200, {"risk": {"C1": "low", "C3": "high"}.get(cid, "none")}, 0


def test_postgres_end_to_end(tmp_path):
    inputs(tmp_path)
    with fresh_database() as url, http_server(risk_api) as (base, _):
        doc = pipeline(tmp_path, base, {"action": "move", "destination": str(tmp_path / "archive" / "{YYYY}"),
                                        "compress": "gzip"})
        result = run_document(doc, RunOptions(warehouse=url))
        assert result.status == "completed_with_errors", result.error
        wh = open_warehouse(url)
        rows = wh.read(None, "select order_id, amount_cents, risk, region, _flow_lineage from analytics.orders "
                             "order by order_id").to_pylist()
        assert [(r["order_id"], r["amount_cents"], r["risk"], r["region"]) for r in rows] == [
            (1, 1050, "low", "EU"), (3, 725, "high", "US")]
        lineage = [json.loads(r["_flow_lineage"]) for r in rows]
        assert {x["runId"] for x in lineage} == {result.runId} and lineage[0]["sourceNodeId"] == "orders,regions"
        assert sorted(x["writeOrder"] for x in lineage) == [1, 2]
        q = wh.read(None, "select rule_id, row from dlq.pg_quarantine").to_pylist()
        assert [(r["rule_id"], json.loads(r["row"])["order_id"]) for r in q] == [("positive", 2)]
        errs = wh.read(None, "select node_id, error from dlq.pg_errors").to_pylist()
        assert [e["node_id"] for e in errs] == ["score"] and "not JSON" in errs[0]["error"]
        assert wh.table_schema("analytics.orders_new") is None and wh.table_schema("analytics.orders_old") is None
        year = time.strftime("%Y", time.gmtime())
        archived = sorted(os.listdir(tmp_path / "archive" / year))
        assert archived == ["o1.csv.gz", "r.jsonl.gz"]
        assert gzip.open(tmp_path / "archive" / year / "o1.csv.gz").read().startswith(b"order_id")
        assert os.listdir(tmp_path / "orders" / ".done") == []  # moved on to the archive


@pytest.mark.parametrize("action", ["copy", "delete"])
def test_archive_copy_and_delete(tmp_path, action):
    inputs(tmp_path)
    with http_server(risk_api) as (base, _):
        doc = pipeline(tmp_path, base, {"action": action, **({"destination": "arch/"} if action == "copy" else {})})
        result = run_document(doc, RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.nodes["tgt"].status == "loaded", result.error
    done = os.listdir(tmp_path / "orders" / ".done")
    if action == "copy":
        assert done == ["o1.csv"] and os.listdir(tmp_path / "orders" / "arch") == ["o1.csv"]
    else:
        assert done == [] and not (tmp_path / "orders" / "arch").exists()


def test_enrich_rate_limit_spaces_requests(tmp_path):
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "c.csv", ["id"], [[f"C{i}"] for i in range(5)])
    stamps = []

    def api(path, body, n):
        stamps.append(time.monotonic())
        return 200, {"v": 1}, 0
    with http_server(api) as (base, _):
        doc = {"kind": "pipeline", "version": "1.0", "id": "rl", "nodes": [
            {"id": "src", "kind": "source", "connector": "local_fs",
             "config": {"path": str(tmp_path / "in"), "format": "csv"}},
            {"id": "e", "kind": "enrich", "input": "src", "provider": {"kind": "http", "url": f"{base}/{{id}}"},
             "output": "v", "concurrency": 5, "rateLimitPerSecond": 10},
            {"id": "t", "kind": "target", "input": "e", "schema": "public.t"}]}
        result = run_document(doc, RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "completed", result.error
    gaps = [b - a for a, b in zip(sorted(stamps), sorted(stamps)[1:])]
    assert len(stamps) == 5 and min(gaps) > 0.05  # 10/s → starts at least ~0.1 s apart despite 5 threads
