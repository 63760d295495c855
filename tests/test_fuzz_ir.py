"""Hostile and fuzzed documents: the validator answers every one with issues that carry a JSON path (or a
DocumentError saying where), never with an uncaught exception. ``scripts/fuzz_ir.py`` runs the large version."""
import copy
import json
import os
import random
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir_compiler.check import check_document
from ir_compiler.errors import DocumentError, FlowError, ValidationFailed
from ir_compiler.loader import MAX_DEPTH, read_json
from ir_compiler.propagate import SchemaContext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fuzz_ir  # noqa: E402

DOC = {"kind": "pipeline", "version": "1.0", "id": "p", "nodes": [
    {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "/nowhere/", "format": "csv"},
     "schema": [{"name": "id", "type": "int"}, {"name": "status", "type": "string"}]},
    {"id": "t", "kind": "transform", "input": "src", "ops": [
        {"op": "map_values", "field": "status", "mapping": {"a": "A"}},
        {"op": "expression", "field": "x", "expr": "id + 1"}]},
    {"id": "tgt", "kind": "target", "input": "t", "schema": "public.out"}]}


def doc():
    return copy.deepcopy(DOC)


def issues(source):
    """The issues of an invalid document (the test fails on any other outcome, an uncaught exception included)."""
    with pytest.raises(ValidationFailed) as info:
        check_document(source, ctx=SchemaContext())
    found = info.value.issues
    assert all(i.path for i in found), [str(i) for i in found if not i.path]
    return found


def document_error(source) -> str:
    with pytest.raises(DocumentError) as info:
        check_document(source, ctx=SchemaContext())
    return str(info.value)


def test_the_base_document_is_valid():
    check_document(doc(), ctx=SchemaContext())


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 200_000])
def test_deep_nesting_as_text_and_as_a_dict(depth):
    text = '{"kind": "pipeline", "metadata": {"x": ' + "[" * depth + "1" + "]" * depth + "}}"
    try:
        found = issues(text)
        assert any(i.path.startswith("metadata.x") and "deeper than" in i.message for i in found)
    except Exception:  # the parser itself refuses the nesting: a DocumentError naming the limit
        assert "deeper than" in document_error(text)
    d = doc()
    value = 1
    for _ in range(depth):
        value = {"a": value}
    d["metadata"] = {"x": value}
    (issue,) = issues(d)
    assert issue.path.startswith("metadata.x.a.a") and "deeper than" in issue.message


def test_a_5000_digit_integer_is_an_issue_at_its_path():
    text = json.dumps(doc()).replace('"path": "/nowhere/"', '"path": "/nowhere/", "n": ' + "9" * 5000)
    (issue,) = issues(text)
    assert issue.path == "nodes[0].config.n" and "out of range" in issue.message
    d = doc()
    d["nodes"][1]["ops"][0]["mapping"]["a"] = 10 ** 5000
    assert any(i.path == "nodes[1].ops[0].mapping.a" for i in issues(d))


def test_non_utf8_file_says_where(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(json.dumps(doc(), indent=1).encode().replace(b'"status"', b'"st\xffatus"', 1))
    message = document_error(str(path))
    assert str(path) in message and "line " in message and "not UTF-8" in message and "0xff" in message
    path.write_bytes(json.dumps(doc()).encode("utf-16"))
    assert "UTF-16" in document_error(str(path))


def test_map_values_needs_column_values():
    for bad in ([1, [2]], {"x": 1}, 2 ** 70):
        d = doc()
        d["nodes"][1]["ops"][0]["mapping"]["a"] = bad
        (issue,) = issues(d)
        assert issue.path.startswith("nodes[1].ops[0].mapping") and issue.node_id == "t"
    d = doc()
    d["nodes"][1]["ops"][0]["default"] = [1, "x"]
    assert issues(d)[0].path == "nodes[1].ops[0].default"


def test_empty_string_field_names_get_a_path():
    d = doc()
    d[""] = 1
    d["nodes"][1]["ops"][1][""] = "x"
    paths = {i.path for i in issues(d)}
    assert paths == {'[""]', 'nodes[1].ops[1][""]'}
    d = doc()
    d["nodes"][0]["config"]["path"] = "${params.}"
    d["params"] = {"": {"type": "string"}}
    for i in issues(d):
        assert i.path


def test_long_node_id_is_refused_by_the_model():
    d = doc()
    d["nodes"][2]["id"] = "a" * 5000
    found = issues(d)
    assert [(i.path, i.layer) for i in found] == [("nodes[2].id", "model")]
    assert "128" in found[0].message and len(found[0].node_id) < 100
    d["nodes"][2]["id"] = "a" * 128
    check_document(d, ctx=SchemaContext())


def test_duplicate_keys_surrogates_nan_and_size():
    text = json.dumps(doc()).replace('"id": "tgt"', '"id": "tgt", "id": "tgt2"')
    (issue,) = issues(text)
    assert issue.path == "nodes[2].id" and "more than once" in issue.message
    d = doc()
    d["nodes"][1]["ops"][1]["field"] = "x\ud800"
    (issue,) = issues(d)
    assert issue.path == "nodes[1].ops[1].field" and "surrogate" in issue.message
    assert "NaN" in document_error(json.dumps(doc()).replace('"/nowhere/"', "NaN"))
    assert "at most" in document_error('{"x": "' + "a" * 11_000_000 + '"}')


def test_deep_or_long_expressions_are_expression_errors():
    for expr in ["(" * 500 + "1" + ")" * 500, " AND ".join(["id = 1"] * 2000), "NOT " * 3000 + "true",
                 "id + " + "9" * 60, "'" + "x" * 30_000 + "'"]:
        d = doc()
        d["nodes"][1]["ops"][1]["expr"] = expr
        (issue,) = issues(d)
        assert issue.path == "nodes[1].ops[1].expr" and issue.node_id == "t", issue


def test_folder_or_odd_argument_as_the_document(tmp_path):
    assert "is a folder" in document_error(str(tmp_path))
    assert "file not found" in document_error(str(tmp_path / "nope.json"))
    assert "neither a JSON object nor the path" in document_error("x" * 10_000)
    assert "JSON object, got an array" in document_error("[1, 2]")
    assert read_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # a UTF-8 byte order mark is fine


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


def _answer(source):
    try:
        check_document(source, ctx=SchemaContext())
    except ValidationFailed as exc:
        assert all(i.path for i in exc.issues), [str(i) for i in exc.issues if not i.path]
    except FlowError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2 ** 32))
def test_fuzzed_corpus_documents_never_escape(seed):
    rng = random.Random(seed)
    docs = fuzz_ir.corpus()
    for _ in range(5):
        _answer(fuzz_ir.fuzzed(rng, docs))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(JSON, st.sampled_from(["metadata", "nodes", "params", "schedule", "tests", "errorHandling"]))
def test_random_json_in_any_top_level_field(value, key):
    d = doc()
    d[key] = value
    _answer(d)
    _answer(json.dumps(d).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(JSON, st.integers(0, 2), st.sampled_from(["config", "ops", "input", "schema", "mapping", "expr", "id"]))
def test_random_json_inside_a_node(value, node, key):
    d = doc()
    target = d["nodes"][node]
    if key in ("mapping", "expr"):
        target = d["nodes"][1]["ops"][0 if key == "mapping" else 1]
    target[key] = value
    _answer(d)


def test_fuzz_script_small_run(capsys):
    assert fuzz_ir.main(["-n", "1500", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "1,500 fuzzed documents" in out and "0 uncaught exceptions, 0 with path-less issues" in out


def test_nul_in_a_source_folder_and_huge_exponent_literals():
    d = doc()
    d["nodes"][0]["config"].update({"path": "/in\u0000x/", "atomicity": {"stagingFolder": ".s/"}})
    assert any(i.path == "nodes[0].config.path" and "NUL" in i.message for i in issues(d))
    d = doc()
    d["nodes"][1]["ops"][1]["expr"] = "id + 1e308"
    (issue,) = issues(d)
    assert issue.path == "nodes[1].ops[1].expr" and "38 digits" in issue.message
