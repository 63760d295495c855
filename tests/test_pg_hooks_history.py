"""PostgreSQL end to end, target hooks (SQL and webhooks against a real local HTTP server) and run history."""
import json

import pytest

from conftest import doc_with_path, write_csv
from connectors.warehouse import open_warehouse
from flow_beam.history import get_run, list_runs
from flow_beam.running import RunOptions, run_document
from http_util import http_server
from pg_util import fresh_database


def orders(tmp_path, rows=((1, 10.5), (2, -3), (3, 7))):
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    write_csv(folder / "orders.csv", ["order_id", "amount"], list(rows))
    return folder


def test_spec_example_on_postgresql(tmp_path, spec_doc):
    with fresh_database() as url:
        result = run_document(doc_with_path(spec_doc, orders(tmp_path)), RunOptions(warehouse=url))
        assert result.status == "completed_with_errors", result.error
        wh = open_warehouse(url)
        assert wh.read(None, "select order_id, amount from public.ds_orders order by 1").to_pylist() == [
            {"order_id": 1, "amount": 10.5}, {"order_id": 3, "amount": 7.0}]
        lineage = wh.read(None, "select _flow_lineage from public.ds_orders order by 1").column(0).to_pylist()
        assert json.loads(lineage[0])["runId"] == result.runId
        q = wh.read(None, "select rule_id, row from dlq.orders").to_pylist()
        assert [r["rule_id"] for r in q] == ["amt-positive"] and json.loads(q[0]["row"])["order_id"] == 2
        assert [r["run_id"] for r in list_runs(url)] == [result.runId]
        assert get_run(url, result.runId)["nodes"]["tgt"]["rowsLoaded"] == 2


def test_webhooks_and_sql_hooks(tmp_path, spec_doc):
    with http_server(lambda path, body, n: (200, {"ok": True}, 0)) as (base, requests):
        spec_doc["nodes"][2]["preHook"] = {"type": "webhook", "url": f"{base}/pre"}
        spec_doc["nodes"][2]["postHook"] = {"type": "webhook", "url": f"{base}/post"}
        result = run_document(doc_with_path(spec_doc, orders(tmp_path)),
                              RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.nodes["tgt"].status == "loaded"
    assert [r["path"] for r in requests] == ["/pre", "/post"]
    assert requests[1]["body"]["rowsLoaded"] == 2 and requests[1]["body"]["runId"] == result.runId
    spec_doc["nodes"][2]["postHook"] = {"type": "sql", "statement": "CHECKPOINT"}
    spec_doc["nodes"][2].pop("preHook")
    result = run_document(doc_with_path(spec_doc, orders(tmp_path)),
                          RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.nodes["tgt"].status == "loaded" and not result.nodes["tgt"].warnings


def test_failing_pre_webhook_is_retried_then_stops_the_load(tmp_path, spec_doc):
    spec_doc["errorHandling"] = {"retry": {"maxAttempts": 3, "backoff": "fixed", "initialDelaySeconds": 0}}
    with http_server(lambda path, body, n: (500, {"error": "down"}, 0)) as (base, requests):
        spec_doc["nodes"][2]["preHook"] = {"type": "webhook", "url": f"{base}/pre"}
        result = run_document(doc_with_path(spec_doc, orders(tmp_path)),
                              RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert len(requests) == 3
    assert result.status == "failed" and "HTTP 500" in result.nodes["tgt"].error
    assert open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}").table_schema("public.ds_orders") is None


@pytest.mark.parametrize("statement", ["DELETE FROM public.ds_orders", "DROP TABLE x", "INSERT INTO t VALUES (1)"])
def test_data_modifying_hooks_are_rejected_at_validation(spec_doc, statement):
    from ir_compiler.check import check_document
    from ir_compiler.errors import ValidationFailed
    from ir_compiler.propagate import SchemaContext

    spec_doc["nodes"][2]["preHook"] = {"type": "sql", "statement": statement}
    with pytest.raises(ValidationFailed) as info:
        check_document(spec_doc, ctx=SchemaContext())
    assert info.value.issues[0].path == "nodes[2].preHook.statement"


def test_unreachable_warehouse_is_retried_then_reported(tmp_path, spec_doc):
    spec_doc["errorHandling"] = {"retry": {"maxAttempts": 2, "backoff": "fixed", "initialDelaySeconds": 0}}
    result = run_document(doc_with_path(spec_doc, orders(tmp_path)),
                          RunOptions(warehouse="postgresql://postgres@127.0.0.1:9/none", record_history=False))
    assert result.status == "failed"
    assert "cannot connect" in result.nodes["tgt"].error and "Traceback" not in result.nodes["tgt"].error
