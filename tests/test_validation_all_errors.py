"""Validation reports every independent error at once: a broken node does not hide the graph, rule and type
errors of the others, and a duplicate node id does not move other errors to wrong JSON paths."""
import copy

import pytest

from ir_compiler.check import check_document
from ir_compiler.errors import ValidationFailed
from ir_compiler.propagate import SchemaContext

SCHEMA = [{"name": "id", "type": "int"}, {"name": "amount", "type": "string"}]
DOC = {"kind": "pipeline", "version": "1.0", "id": "p", "nodes": [
    {"id": "a", "kind": "source", "connector": "local_fs", "config": {"path": "/nowhere/", "format": "csv"},
     "schema": SCHEMA},
    {"id": "b", "kind": "source", "connector": "local_fs", "config": {"path": "/nowhere/", "format": "csv"},
     "schema": SCHEMA},
    {"id": "ta", "kind": "transform", "input": "a", "ops": [{"op": "expression", "field": "x", "expr": "id + 1"}]},
    {"id": "tb", "kind": "transform", "input": "b", "ops": [{"op": "expression", "field": "y", "expr": "id * 2"}]},
    {"id": "out_a", "kind": "target", "input": "ta", "schema": "public.a"},
    {"id": "out_b", "kind": "target", "input": "tb", "schema": "public.b", "loadMode": "upsert", "upsertKey": "id"},
]}


def doc():
    return copy.deepcopy(DOC)


def found(d) -> set[tuple]:
    with pytest.raises(ValidationFailed) as info:
        check_document(d, ctx=SchemaContext())
    return {(i.path, i.layer, i.node_id) for i in info.value.issues if i.severity == "error"}


def test_the_document_is_valid():
    check_document(doc(), ctx=SchemaContext())


def test_a_model_error_does_not_hide_graph_rule_and_type_errors_elsewhere():
    d = doc()
    d["nodes"][2]["ops"][0]["exprr"] = "typo"  # model error in ta
    d["nodes"][3]["ops"][0]["expr"] = "nope * 2"  # type error in tb
    d["nodes"][5]["upsertKey"] = None  # rule error in out_b
    d["nodes"].append({"id": "dangling", "kind": "target", "input": "ghost", "schema": "public.c"})  # graph error
    assert found(d) == {("nodes[2].ops[0].exprr", "model", "ta"), ("nodes[3].ops[0].expr", "types", "tb"),
                        ("nodes[5].upsertKey", "rules", "out_b"), ("nodes[6].input", "graph", "dangling")}


def test_readers_of_a_broken_node_get_no_follow_on_errors():
    d = doc()
    d["nodes"][0]["kind"] = "sourc"  # a is broken: ta reads it, out_a reads ta
    d["nodes"][3]["ops"][0]["expr"] = "nope * 2"
    assert found(d) == {("nodes[0]", "model", "a"), ("nodes[3].ops[0].expr", "types", "tb")}


def test_a_connector_config_error_and_a_top_level_error_do_not_hide_the_rest():
    d = doc()
    d["nodes"][0]["config"]["format"] = "xls"
    d["schedule"] = {"kind": "cron"}
    d["nodes"][3]["ops"][0]["expr"] = "nope * 2"
    paths = {(p, layer) for p, layer, _ in found(d)}
    assert ("nodes[0].config.format", "model") in paths and ("schedule.expression", "model") in paths
    assert ("nodes[3].ops[0].expr", "types") in paths


def test_errors_after_a_broken_node_keep_their_document_paths():
    d = doc()
    d["nodes"][1] = {"id": "b", "kind": "source"}  # b broken (no connector/config): nodes shift in the checked part
    d["nodes"][2]["ops"][0]["expr"] = "nope + 1"
    d["nodes"][4]["input"] = "ta.quarantine"
    result = found(d)
    assert ("nodes[2].ops[0].expr", "types", "ta") in result and ("nodes[4].input", "graph", "out_a") in result
    assert not any(p.startswith("nodes[3]") for p, _, _ in result)  # tb reads the broken b: no follow-on


def test_a_duplicate_id_does_not_move_other_errors():
    d = doc()
    twin = copy.deepcopy(d["nodes"][2])
    twin["input"] = "ghost"
    d["nodes"].insert(3, twin)  # a second 'ta' with a dangling input of its own
    d["nodes"][5]["input"] = "ghost2"  # out_a, now at nodes[5]
    result = found(d)
    assert ("nodes[3].id", "graph", "ta") in result and ("nodes[5].input", "graph", "out_a") in result
    assert ("nodes[3].input", "graph", "ta") in result
    assert not any(p.startswith("nodes[2]") for p, _, _ in result), result  # the first 'ta' is fine
    twin["ops"][0]["exprr"] = "x"  # a model error in the duplicate is reported at the duplicate
    assert ("nodes[3].ops[0].exprr", "model", "ta") in found(d)
