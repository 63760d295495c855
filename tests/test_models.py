"""Model layer: tagged unions, strictness, JSON Schema, the seed's example documents."""
import json
import typing

import pytest

from ir_compiler.errors import ValidationFailed
from ir_compiler.loader import load_document
from ir_compiler.models import NODE_KINDS, Pipeline
from ir_compiler.models.nodes import Node
from ir_compiler.models.ops import MODEL_OPS, ROW_OPS, SET_OPS, Op
from ir_compiler.ops import OPS

SEED_DOC = {  # the seed's top-level shape and source node example, as written
    "kind": "pipeline", "version": "1.0", "id": "starbucks-daily-orders",
    "metadata": {"name": "Daily orders ingestion", "owner": "data-team", "tags": ["batch", "orders"]},
    "schedule": {"kind": "cron", "expression": "0 2 * * *", "timezone": "America/Los_Angeles"},
    "nodes": [{
        "id": "src", "kind": "source", "connector": "local_fs",
        "config": {
            "path": "/data/orders/", "pattern": {"type": "glob", "value": "orders_*.csv"},
            "ordering": "latest_by_mtime",
            "waitPolicy": {"maxRetries": 6, "intervalMinutes": 10, "onMissAction": "alert"},
            "atomicity": {"stagingFolder": ".processing/", "successFolder": ".archive/{YYYY-MM-DD}/",
                          "failureFolder": ".failed/"},
            "format": "csv"}}],
    "errorHandling": {"dlq": {"enabled": False}, "retry": {"maxAttempts": 3, "backoff": "exponential"}},
}


def issues_of(doc, params=None):
    with pytest.raises(ValidationFailed) as info:
        load_document(doc, params)
    return info.value.issues


def test_seed_example_loads_as_written():
    pipeline, _ = load_document(SEED_DOC)
    assert pipeline.nodes[0].connector == "local_fs"
    assert pipeline.schedule.timezone == "America/Los_Angeles"


def test_unknown_kind_is_one_error_at_the_node():
    doc = json.loads(json.dumps(SEED_DOC))
    doc["nodes"][0]["kind"] = "sourc"
    issues = issues_of(doc)
    assert len(issues) == 1
    assert issues[0].path == "nodes[0]" and "expected one of" in issues[0].message


def test_typo_in_op_field_points_into_the_op():
    doc = json.loads(json.dumps(SEED_DOC))
    doc["nodes"].append({"id": "t", "kind": "transform", "input": "src",
                         "ops": [{"op": "rename", "from": "a", "too": "b"}]})
    paths = {i.path for i in issues_of(doc)}
    assert "nodes[1].ops[0].too" in paths and "nodes[1].ops[0].to" in paths


def test_connector_config_is_validated_with_its_path():
    doc = json.loads(json.dumps(SEED_DOC))
    doc["nodes"][0]["config"]["ordering"] = "newest"
    issues = issues_of(doc)
    assert [i.path for i in issues] == ["nodes[0].config.ordering"]
    assert issues[0].node_id == "src"


def test_params_substitute_typed_and_report_unknown():
    doc = json.loads(json.dumps(SEED_DOC))
    doc["params"] = {"dir": {"type": "string", "default": "/in/"}, "retries": {"type": "int", "default": 2}}
    doc["nodes"][0]["config"]["path"] = "${params.dir}"
    doc["nodes"][0]["config"]["waitPolicy"]["maxRetries"] = "${params.retries}"
    p, _ = load_document(doc, {"retries": "5"})
    assert p.nodes[0].config.path == "/in/" and p.nodes[0].config.waitPolicy.maxRetries == 5  # typed configs
    doc["nodes"][0]["config"]["path"] = "${params.nope}"
    assert any("unknown param" in i.message and i.path == "nodes[0].config.path" for i in issues_of(doc))
    assert any(i.path == "params.bogus" for i in issues_of(SEED_DOC, {"bogus": "1"}))


def test_bad_json_reports_line_and_column(tmp_path):
    from ir_compiler.errors import DocumentError
    f = tmp_path / "p.json"
    f.write_text('{\n  "kind": "pipeline",\n  "id": oops\n}')
    with pytest.raises(DocumentError) as info:
        load_document(str(f))
    assert "line 3" in str(info.value) and str(f) in str(info.value)


def _members(union) -> list:
    """The model classes of a (nested, Annotated) union: sources and targets are unions per connector."""
    if typing.get_origin(union) is typing.Annotated:
        return _members(typing.get_args(union)[0])
    if typing.get_origin(union) is typing.Union:
        return [m for arm in typing.get_args(union) for m in _members(arm)]
    return [union]


def test_kind_registry_matches_the_node_union():
    members = _members(Node)
    assert {m.model_fields["kind"].default for m in members} == set(NODE_KINDS)


def test_op_registry_covers_every_op_model():
    members = typing.get_args(typing.get_args(Op)[0])
    names = {m.model_fields["op"].default for m in members}
    assert names == set(OPS) == ROW_OPS | SET_OPS | MODEL_OPS
    assert len(names - MODEL_OPS) == 15


def test_json_schema_has_discriminators():
    schema = Pipeline.model_json_schema(by_alias=True)
    text = json.dumps(schema)
    assert '"discriminator"' in text and '"lookup_join"' in text and '"cdc_mirror"' in text


@pytest.mark.parametrize("schedule, path, words", [
    ({"kind": "cron", "expression": "61 * * * *"}, "schedule.expression", "out of range"),
    ({"kind": "cron", "expression": "0 2 * *"}, "schedule.expression", "five fields"),
    ({"kind": "cron", "expression": "0 0 2 * * * *"}, "schedule.expression", "five fields"),
    ({"kind": "cron", "expression": "0 2 * * *", "timezone": "Mars/Olympus"}, "schedule.timezone", "IANA"),
    ({"kind": "rrule", "rrule": "FREQ=SOMETIMES"}, "schedule.rrule", "invalid rrule"),
    ({"kind": "rrule", "rrule": "FREQ=DAILY", "timezone": "Nowhere/X"}, "schedule.timezone", "IANA"),
])
def test_a_schedule_that_cannot_run_does_not_validate(schedule, path, words):
    """Found by a probe: these validated (exit 0) and only `flow-beam schedule next` refused them, with no path."""
    from ir_compiler.check import check_document
    doc = json.loads(json.dumps(SEED_DOC))
    doc["schedule"] = schedule
    with pytest.raises(ValidationFailed) as info:
        check_document(doc)
    assert [(i.path, words in i.message) for i in info.value.issues if i.severity == "error"] == [(path, True)]
