"""Graph, kind-rule and type layers: every error has a JSON path and a node id; all are reported at once."""
import copy

import pytest

from ir_compiler.check import check_document
from ir_compiler.errors import ValidationFailed
from ir_compiler.propagate import SchemaContext

BASE = {
    "kind": "pipeline", "version": "1.0", "id": "p",
    "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "/nowhere/", "format": "csv"},
         "schema": [{"name": "id", "type": "int"}, {"name": "amount", "type": "string"},
                    {"name": "country", "type": "string"}, {"name": "ts", "type": "timestamp"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [
            {"op": "cast", "field": "amount", "to": "float", "onError": "null"},
            {"op": "expression", "field": "big", "expr": "amount > 100"}]},
        {"id": "tgt", "kind": "target", "input": "t", "schema": "public.out", "loadMode": "append"},
    ],
}


def check(doc):
    return check_document(doc, ctx=SchemaContext())


def errors(doc):
    with pytest.raises(ValidationFailed) as info:
        check(doc)
    return [i for i in info.value.issues if i.severity == "error"]


def doc():
    return copy.deepcopy(BASE)


def test_valid_document_propagates_types():
    checked = check(doc())
    schema = checked.types.of("t")
    assert str(schema["amount"].type) == "float" and str(schema["big"].type) == "bool"


def test_graph_errors_dangling_ref_duplicate_id_cycle_port():
    d = doc()
    d["nodes"][2]["input"] = "nope"
    d["nodes"].append({"id": "t", "kind": "transform", "input": "src", "ops": [{"op": "drop", "fields": ["id"]}]})
    found = {(e.path, e.layer) for e in errors(d)}
    assert ("nodes[2].input", "graph") in found and ("nodes[3].id", "graph") in found

    d = doc()
    d["nodes"][1]["input"] = "t2"
    d["nodes"].append({"id": "t2", "kind": "transform", "input": "t", "ops": [{"op": "drop", "fields": ["id"]}]})
    assert any("cycle" in e.message for e in errors(d))

    d = doc()
    d["nodes"][2]["input"] = "t.quarantine"
    (e,) = errors(d)
    assert e.path == "nodes[2].input" and "t.errors" in e.message


def test_kind_rules_upsert_key_and_rule_syntax():
    d = doc()
    d["nodes"][2]["loadMode"] = "upsert"
    d["nodes"].insert(2, {"id": "v", "kind": "validate", "input": "t",
                          "rowLevel": [{"field": "amount", "rule": "gtt:0"}, {"field": "amount", "rule": "between:1"}]})
    d["nodes"][3]["input"] = "v"
    paths = {e.path for e in errors(d)}
    assert {"nodes[3].upsertKey", "nodes[2].rowLevel[0].rule", "nodes[2].rowLevel[1].rule"} <= paths


def test_unbounded_aggregation_needs_a_window():
    d = doc()
    d["nodes"][0] = {"id": "src", "kind": "source", "connector": "kafka_consumer",
                     "config": {"bootstrapServers": "127.0.0.1:9092", "topics": "t", "groupId": "g"}}
    d["nodes"][1]["ops"] = [{"op": "aggregate", "groupBy": [], "aggregations": [{"fn": "count", "as": "n"}]}]
    (e,) = errors(d)
    assert e.path == "nodes[1].ops[0].window" and e.node_id == "t"


def test_type_errors_say_where_and_how_to_fix():
    d = doc()
    d["nodes"].insert(2, {"id": "v", "kind": "validate", "input": "src",
                          "rowLevel": [{"id": "r", "field": "amount", "rule": "gt:0"}]})
    d["nodes"][3]["input"] = "v"
    (e,) = errors(d)
    assert e.path == "nodes[2].rowLevel[0].rule" and "add a cast" in e.message and e.layer == "types"


def test_bad_expression_reports_op_path():
    d = doc()
    d["nodes"][1]["ops"][1]["expr"] = "amount >"
    (e,) = errors(d)
    assert e.path == "nodes[1].ops[1].expr"
    d["nodes"][1]["ops"][1]["expr"] = "upper(missing_col)"
    (e,) = errors(d)
    assert "missing_col" in e.message


def test_all_errors_at_once():
    d = doc()
    d["nodes"][2]["loadMode"] = "incremental_watermark"
    d["nodes"][2]["schema"] = "not a table"
    assert len(errors(d)) >= 2


def test_unknown_schema_is_a_note_not_an_error():
    d = doc()
    del d["nodes"][0]["schema"]
    checked = check(d)
    assert not checked.errors
    assert any("unknown" in n.message for n in checked.notes)


def test_hook_sql_rejects_data_modification():
    d = doc()
    d["nodes"][2]["postHook"] = {"type": "sql", "statement": "DELETE FROM public.out"}
    (e,) = errors(d)
    assert e.path == "nodes[2].postHook.statement"
    d["nodes"][2]["postHook"] = {"type": "sql", "statement": "ANALYZE"}
    assert check(d)


def test_join_key_and_clash_checks():
    d = doc()
    d["nodes"].insert(1, {"id": "src2", "kind": "source", "connector": "local_fs",
                          "config": {"path": "/x/", "format": "csv"},
                          "schema": [{"name": "id", "type": "int"}, {"name": "country", "type": "string"}]})
    d["nodes"].insert(2, {"id": "j", "kind": "join", "inputs": ["src", "src2"], "type": "left", "on": ["id"]})
    d["nodes"][3]["input"] = "j"
    (e,) = errors(d)
    assert e.path == "nodes[2].select" and "country" in e.message
    d["nodes"][2]["prefixes"] = {"src2": "c_"}
    schema = check(d).types.of("j")
    assert schema.names == ["id", "amount", "country", "ts", "c_country"]


def test_join_select_and_prefixes_name_real_inputs_and_columns():
    """Found by a probe: a select naming a column the input lacks (a typo) or an input the join does not have was
    silently ignored, dropping or keeping columns; now a validation error with its path."""
    d = doc()
    d["nodes"].insert(1, {"id": "src2", "kind": "source", "connector": "local_fs",
                          "config": {"path": "/x/", "format": "csv"},
                          "schema": [{"name": "id", "type": "int"}, {"name": "country", "type": "string"}]})
    d["nodes"].insert(2, {"id": "j", "kind": "join", "inputs": ["src", "src2"], "type": "left", "on": ["id"],
                          "select": {"src2": ["countyr"]}})
    d["nodes"][3]["input"] = "j"
    (e,) = errors(d)
    assert e.path == "nodes[2].select.src2" and "'countyr'" in e.message and "country" in e.message
    d["nodes"][2]["select"] = {"src2": {"country": "c"}, "zz": ["x"]}
    (e,) = errors(d)
    assert e.path == "nodes[2].select.zz" and "not an input" in e.message
    d["nodes"][2]["select"] = {"src2": {"country": "c"}}
    d["nodes"][2]["prefixes"] = {"src3": "p_"}
    (e,) = errors(d)
    assert e.path == "nodes[2].prefixes.src3"
    del d["nodes"][2]["prefixes"]
    assert check(d).types.of("j").names == ["id", "amount", "country", "ts", "c"]


def _stream_doc(**window_or_validate):
    src = {"id": "src", "kind": "source", "connector": "kafka_consumer",
           "config": {"bootstrapServers": "127.0.0.1:9", "topics": "t", "groupId": "g"},
           "schema": [{"name": "u", "type": "string"}, {"name": "ts", "type": "int"}],
           "eventTime": {"field": "ts", "format": "epoch_s"}}
    return {"kind": "pipeline", "version": "1.0", "id": "s", "nodes": [src, *window_or_validate["nodes"]]}


def _rule_errors(doc):
    from ir_compiler.check import check_document
    from ir_compiler.errors import ValidationFailed
    try:
        check_document(doc, {})
    except ValidationFailed as exc:
        return [(i.path, i.message) for i in exc.issues if i.severity == "error"]
    return []


def test_streaming_rules_reject_a_global_window_without_trigger_and_dataset_checks():
    agg = {"id": "a", "kind": "transform", "input": "src", "ops": [
        {"op": "aggregate", "groupBy": ["u"], "aggregations": [{"fn": "count", "as": "n"}],
         "window": {"type": "global"}}]}
    errors = _rule_errors(_stream_doc(nodes=[agg]))
    assert any(p == "nodes[1].ops[0].window.trigger" and "never closes" in m for p, m in errors), errors
    v = {"id": "v", "kind": "validate", "input": "src", "rowLevel": [],
         "datasetLevel": {"rowCount": {"min": 1, "onFail": "abort"}}}
    errors = _rule_errors(_stream_doc(nodes=[v]))
    assert any(p == "nodes[1].datasetLevel" and "bounded input" in m for p, m in errors), errors


def test_plan_shows_the_streaming_primitives():
    from ir_compiler.check import check_document
    from ir_compiler.plan import plan_rows
    agg = {"id": "a", "kind": "transform", "input": "src", "ops": [
        {"op": "aggregate", "groupBy": ["u"], "aggregations": [{"fn": "count", "as": "n"}],
         "window": {"type": "sliding", "size": "1m", "period": "30s", "allowedLateness": "5m"}}]}
    out = {"id": "o", "kind": "target", "input": "a", "schema": "public.n", "loadMode": "upsert",
           "upsertKey": ["u", "window_start"]}
    rows = {r["id"]: r for r in plan_rows(check_document(_stream_doc(nodes=[agg, out]), {}))}
    assert "splittable ParDo" in rows["src"]["primitives"][1]
    assert "WindowInto(IntervalWindows" in rows["a"]["primitives"][0] and "allowedLateness 5m" in rows["a"]["primitives"][0]
    assert any("_flow_frontier" in p for p in rows["o"]["primitives"])


@pytest.mark.parametrize("prefix", ["sub/x", "a\\b", ".hidden", ""])
def test_a_file_sink_prefix_is_a_plain_name(prefix):
    """A prefix with a folder in it (or a hidden/empty one) failed the run with FileNotFoundError when the sink
    wrote; it is a validation error at its JSON path."""
    d = doc()
    d["nodes"].append({"id": "files", "kind": "target", "input": "t", "connector": "local_fs",
                       "config": {"path": "/tmp/out", "format": "csv", "prefix": prefix}})
    (err,) = errors(d)
    assert err.path == "nodes[3].config.prefix" and "put folders in path" in err.message
    d["nodes"][3]["config"]["prefix"] = "orders-"
    check(d)


def test_a_between_rule_with_its_bounds_reversed_is_an_error():
    """between:5,1 would fail every row (SQL's BETWEEN is not symmetric): refused at its JSON path."""
    d = doc()
    d["nodes"].insert(2, {"id": "v", "kind": "validate", "input": "t",
                          "rowLevel": [{"id": "r", "field": "amount", "rule": "between:5,1", "onFail": "drop"}]})
    d["nodes"][3]["input"] = "v"
    (err,) = errors(d)
    assert err.path == "nodes[2].rowLevel[0].rule" and "write between:1,5" in err.message
    d["nodes"][2]["rowLevel"][0]["rule"] = "between:1,5"
    check(d)


def test_a_numeric_rule_bound_keeps_its_digits():
    """gt:123456789.123456789012 on a decimal column compares with the bound as written (it went through a
    float: 123456789.12345679); nan/inf are not bounds."""
    from ir_compiler.rowrules import parse_rule, rule_sql
    from ir_compiler.types import parse_type
    dec = parse_type("decimal(30,12)")
    assert rule_sql(parse_rule("gt:123456789.123456789012"), "m", dec) == '"m" > 123456789.123456789012'
    assert rule_sql(parse_rule("between:0.1,1e3"), "m", dec) == '"m" BETWEEN 0.1 AND 1e3'
    assert parse_rule("gt:nan").args == ("nan",) and parse_rule("lte:-inf").args == ("-inf",)


def test_cdc_source_must_be_what_the_target_reads():
    """Found by a probe: cdcSource was checked to name a node and then ignored (the target applied its input);
    naming another node, or the target itself, now is a validation error."""
    d = doc()
    d["nodes"][2].update({"loadMode": "cdc_mirror", "upsertKey": "id", "cdcSource": "tgt"})
    (e,) = errors(d)
    assert e.path == "nodes[2].cdcSource" and "upstream" in e.message
    for upstream in ("src", "t"):  # the source of the events or the target's input: valid
        d["nodes"][2]["cdcSource"] = upstream
        assert check(d)


def test_table_columns_differing_only_in_case_or_none_at_all_are_refused():
    """Found by a probe: `rename v -> W` beside a column `w` (or a derive of `Big` beside `big`) validated, then the
    load failed in DuckDB ("Column with name w already exists"); dropping every column validated, then failed with
    "Table must have at least one column". Both are validation errors at the target now; file sinks may keep both."""
    d = doc()
    d["nodes"][1]["ops"].append({"op": "rename", "from": "country", "to": "BIG"})
    (e,) = errors(d)
    assert e.path == "nodes[2]" and "'BIG' and 'big' differ only in case" in e.message
    d["nodes"][2] = {"id": "tgt", "kind": "target", "input": "t", "connector": "local_fs",
                     "config": {"path": "/out/", "format": "csv"}}
    check(d)  # a file sink keeps both columns
    d = doc()
    d["nodes"][1]["ops"].append({"op": "drop", "fields": ["id", "amount", "country", "ts", "big"]})
    (e,) = errors(d)
    assert e.path == "nodes[2]" and "no column reaches this table" in e.message


def test_discarding_panes_into_an_upsert_are_refused():
    """Found by a probe: discarding panes (each only the rows since the previous pane) upserted by window kept the
    last pane's rows only. Refused at validation; accumulating (the default) or append are fine."""
    agg = {"id": "a", "kind": "transform", "input": "src", "ops": [
        {"op": "aggregate", "groupBy": ["u"], "aggregations": [{"fn": "count", "as": "n"}],
         "window": {"type": "fixed", "size": "1m",
                    "trigger": {"type": "after_count", "count": 2, "accumulation": "discarding"}}}]}
    tgt = {"id": "t", "kind": "target", "input": "a", "schema": "public.t", "loadMode": "upsert",
           "upsertKey": ["u", "window_start"]}
    d = _stream_doc(nodes=[agg, tgt])
    (e,) = [(p, m) for p, m in _rule_errors(d)]
    assert e[0] == "nodes[2].loadMode" and "discarding panes" in e[1], e
    del agg["ops"][0]["window"]["trigger"]["accumulation"]
    assert _rule_errors(_stream_doc(nodes=[agg, tgt])) == []  # the default is accumulating
    agg["ops"][0]["window"]["trigger"]["accumulation"] = "discarding"
    tgt["loadMode"] = "append"
    del tgt["upsertKey"]
    assert _rule_errors(_stream_doc(nodes=[agg, tgt])) == []
