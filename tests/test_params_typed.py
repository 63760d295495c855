"""Params are typed (SPEC §2): a value or a default of the wrong type is an error at the param, reported once.
Found by a probe: `--param flag=on`/`ture`/`maybe` silently became false, an int param with default
"not-a-number" made a string column, and a bad value also said "param has no value" plus a follow-on type error."""
import pytest

from ir_compiler.check import check_document
from ir_compiler.errors import ValidationFailed
from ir_compiler.propagate import SchemaContext


def _doc(param):
    return {"kind": "pipeline", "version": "1.0", "id": "p", "params": {"x": param}, "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "/nowhere/", "format": "csv"},
         "schema": [{"name": "a", "type": "float"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [
            {"op": "add_field", "field": "x", "value": "${params.x}"}]},
        {"id": "v", "kind": "validate", "input": "t",
         "rowLevel": [{"id": "r", "field": "a", "rule": "gt:${params.x}", "onFail": "drop"}]},
        {"id": "tgt", "kind": "target", "input": "v", "schema": "public.out"}]}


def _errors(doc, params=None):
    with pytest.raises(ValidationFailed) as info:
        check_document(doc, params, ctx=SchemaContext())
    return [(i.path, i.message) for i in info.value.issues if i.severity == "error"]


@pytest.mark.parametrize("text, value", [("true", True), ("on", True), ("Y", True), ("1", True), ("off", False),
                                         ("f", False), ("NO", False), ("0", False)])
def test_bool_params_read_every_spelling_and_nothing_else(text, value):
    doc = _doc({"type": "bool", "default": False})
    doc["nodes"][2]["rowLevel"] = []
    checked = check_document(doc, {"x": text}, ctx=SchemaContext())
    (op,) = checked.pipeline.nodes[1].ops
    assert op.value is value


@pytest.mark.parametrize("kind, default, given", [
    ("bool", False, "ture"), ("bool", True, "maybe"), ("int", 1, "1.5"), ("int", 1, "abc"),
    ("float", 0, "abc"), ("float", 0, "nan")])
def test_a_bad_value_is_one_error_at_the_param(kind, default, given):
    errors = _errors(_doc({"type": kind, "default": default}), {"x": given})
    assert errors == [("params.x", errors[0][1])] and repr(given) in errors[0][1], errors


@pytest.mark.parametrize("kind, default", [("int", "not-a-number"), ("int", True), ("float", "x"),
                                           ("bool", "maybe"), ("string", {"a": 1})])
def test_a_default_of_the_wrong_type_is_an_error(kind, default):
    errors = _errors(_doc({"type": kind, "default": default}))
    assert [p for p, _ in errors] == ["params.x.default"], errors


def test_good_defaults_keep_their_type():
    checked = check_document(_doc({"type": "int", "default": 3}), ctx=SchemaContext())
    assert checked.pipeline.nodes[1].ops[0].value == 3
    assert checked.types.of("t")["x"].type.name == "int"
