"""Service fixes found by a probe of the REST/MCP surfaces (SPEC §7, §6): secret references in credential headers,
broader literal-secret detection, RFC 6901 issue paths, MCP argument validation, 405 Allow, runs ?limit."""
import json

import pytest
from fastapi.testclient import TestClient

from flow_beam.service.app import create_app
from flow_beam.service.core import PipelineService, ServiceConfig
from flow_beam.service.issues import ServiceError
from tests.service_util import orders_doc


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe-fixes")
    root = tmp / "root"
    root.mkdir()
    svc = PipelineService(ServiceConfig(warehouse=f"duckdb://{tmp}/wh.duckdb", root=str(root), allow_writes=True))
    yield svc
    svc.close()


def with_provider(provider: dict, pid: str = "sec") -> dict:
    doc = orders_doc(pid)
    doc["nodes"].insert(1, {"id": "en", "kind": "enrich", "input": "src", "output": "resp", "onError": "null",
                            "provider": provider})
    doc["nodes"][2]["input"] = "en"
    return doc


def secret_paths(service, doc) -> set[str]:
    return {i["path"] for i in service.validate(doc).issues if i["layer"] == "secrets"}


def http_pull_doc(headers: dict) -> dict:
    doc = orders_doc("hp")
    doc["nodes"][0] = {"id": "src", "kind": "source", "connector": "http_pull",
                       "config": {"url": "https://example.invalid/exports/", "headers": headers, "format": "csv"},
                       "schema": doc["nodes"][0]["schema"]}
    return doc


# ---- finding 2: "Bearer env:VAR" is the documented reference form of a credential header -------------------------
@pytest.mark.parametrize("value", ["Bearer env:API_TOKEN", "env:API_TOKEN", "Token env:A"])
def test_credential_header_with_a_scheme_word_and_a_reference_passes(service, value):
    assert secret_paths(service, http_pull_doc({"Authorization": value})) == set()
    assert secret_paths(service, with_provider({"kind": "http", "url": "http://127.0.0.1:9/s",
                                                "headers": {"Authorization": value}})) == set()


@pytest.mark.parametrize("value", ["Bearer abc", "Bearer", "Bearer env:A extra", "env:A"[:-2]])
def test_credential_header_literals_still_fail(service, value):
    doc = with_provider({"kind": "http", "url": "http://127.0.0.1:9/s", "headers": {"Authorization": value}})
    assert secret_paths(service, doc) == {"/nodes/1/provider/headers/Authorization"}


# ---- finding 3: literal secrets under other spellings, in URLs and query parameters ------------------------------
@pytest.mark.parametrize("provider,where", [
    ({"headers": {"X-Goog-Api-Key": "L3"}}, "/headers/X-Goog-Api-Key"),
    ({"headers": {"api-key": "L4"}}, "/headers/api-key"),
    ({"headers": {"x-auth-token": "L"}}, "/headers/x-auth-token"),
    ({"headers": {"Cookie": "session=abc"}}, "/headers/Cookie"),
    ({"accessKey": "L7"}, "/accessKey"),
    ({"api_key": "L"}, "/api_key"),
    ({"client-secret": "L"}, "/client-secret"),
    ({"url": "http://user:L6@127.0.0.1:1/x"}, "/url"),
    ({"url": "http://127.0.0.1:1/x?api_key=L5"}, "/url"),
    ({"url": "http://127.0.0.1:1/x?id={order_id}&token=L"}, "/url"),
    ({"url": "http://127.0.0.1:1/x?KEY=L"}, "/url"),
])
def test_more_literal_secrets_are_issues(service, provider, where):
    doc = with_provider({"kind": "http", "url": "http://127.0.0.1:9/s", **provider})
    assert secret_paths(service, doc) == {"/nodes/1/provider" + where}


@pytest.mark.parametrize("provider", [
    {"headers": {"X-Goog-Api-Key": "env:GKEY", "Accept": "application/json"}},
    {"accessKey": "env:AK", "apiKey": "secret:vault/x"},
    {"url": "http://127.0.0.1:1/x?id={order_id}&keyword=abc&monkey=1&key={country}&page=2"},
    {"url": "http://user@127.0.0.1:1/x"},
    {"apiKeyEnv": "OPENAI_API_KEY"},
])
def test_references_and_ordinary_fields_are_not_secrets(service, provider):
    doc = with_provider({"kind": "http", "url": "http://127.0.0.1:9/s", **provider})
    assert secret_paths(service, doc) == set()


def test_a_param_reference_in_a_header_passes(service):
    doc = with_provider({"kind": "http", "url": "http://127.0.0.1:9/s", "headers": {"X-Api-Key": "${params.k}"}})
    doc["params"] = {"k": {"type": "string", "default": "env:K"}}
    assert secret_paths(service, doc) == set()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe-fixes-app")
    root = tmp / "root"
    root.mkdir()
    app = create_app(ServiceConfig(warehouse=f"duckdb://{tmp}/wh.duckdb", root=str(root)))
    with TestClient(app) as c:
        yield c


# ---- finding 4: issue paths are RFC 6901 pointers whatever the keys hold -------------------------------------------
@pytest.mark.parametrize("key,expected", [("a.b", "/metadata/a.b"), ("a/b", "/metadata/a~1b"), ("m~n", "/metadata/m~0n"),
                                          ("x[0]", "/metadata/x[0]"), ("sp ace", "/metadata/sp ace"),
                                          ('q"uote', '/metadata/q"uote'), ("plain", "/metadata/plain")])
def test_model_issue_paths_are_json_pointers(client, key, expected):
    doc = orders_doc("ptr")
    doc["metadata"] = {key: float("nan")}
    body = json.dumps({"ir": doc})  # NaN: a model-layer error at that key
    r = client.post("/api/v1/validate", content=body, headers={"Content-Type": "application/json"})
    paths = [i["path"] for i in r.json()["issues"]]
    assert expected in paths, paths


def test_secret_issue_path_with_a_dotted_header_name(service):
    doc = with_provider({"kind": "http", "url": "http://127.0.0.1:9/s", "headers": {"X.Token": "literal"}})
    assert secret_paths(service, doc) == {"/nodes/1/provider/headers/X.Token"}


def test_json_pointer_parses_engine_paths():
    from flow_beam.service.issues import json_pointer
    assert json_pointer("nodes[2].rowLevel[0].rule") == "/nodes/2/rowLevel/0/rule"
    assert json_pointer('params["my param"].default') == "/params/my param/default"
    assert json_pointer('metadata["a/b~c"]') == "/metadata/a~1b~0c"
    assert json_pointer(("nodes", 0, "a.b")) == "/nodes/0/a.b"
    assert json_pointer("$") == "" and json_pointer("") == "" and json_pointer("/a/b") == "/a/b"


# ---- finding 6: a 405 names the methods of the path ----------------------------------------------------------------
@pytest.mark.parametrize("method,path,allow", [("DELETE", "/api/v1/pipelines", "GET, POST"),
                                               ("OPTIONS", "/api/v1/pipelines/p1", "GET, PUT, PATCH"),
                                               ("GET", "/api/v1/pipelines/p1/run", "POST")])
def test_405_carries_allow(client, method, path, allow):
    r = client.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow


# ---- finding 9: a body that is not JSON is reported at the document, not at a character offset ---------------------
def test_non_json_body_is_a_clear_issue(client):
    r = client.post("/api/v1/pipelines", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    [only] = r.json()["issues"]
    assert only["path"] == "" and "not valid JSON" in only["message"]


# ---- finding 7: ?limit=N answers at most N runs, live runs first --------------------------------------------------
def test_pipeline_runs_respects_limit(service, monkeypatch):
    if service.store.get("lim") is None:
        doc = orders_doc("lim")
        doc["nodes"][0]["config"]["path"] = service.root + "/in"
        service.create("lim", doc)
    live = [{"runId": f"r{n}", "pipelineId": "lim", "status": "queued", "runner": "direct", "startedAt": None,
             "durationMs": None} for n in range(10)]
    monkeypatch.setattr(service.runs, "in_flight", lambda pid: [dict(r) for r in live])
    got = service.pipeline_runs("lim", 3)
    assert [r["runId"] for r in got] == ["r0", "r1", "r2"]
    assert len(service.pipeline_runs("lim", 20)) == 10


# ---- finding 5: MCP tool arguments are checked against the advertised inputSchema ---------------------------------
def mcp_call(service, name, args):
    from flow_beam.service.mcp import _call
    return _call(service, True, name, args)


def stored(service, pid):
    if service.store.get(pid) is None:
        doc = orders_doc(pid)
        doc["nodes"][0]["config"]["path"] = service.root + "/in"
        service.create(pid, doc)
        service.patch(pid, [{"op": "replace", "path": "/metadata/name", "value": "v2"}], 1)


@pytest.mark.parametrize("name,args,where", [
    ("get_pipeline", {"id": "mv", "version": "1"}, "/version"),
    ("get_pipeline", {"id": "mv", "version": True}, "/version"),
    ("get_pipeline", {"id": "mv", "version": 0}, "/version"),
    ("get_pipeline", {"id": "mv", "extra": 1}, "/extra"),
    ("get_pipeline", {}, ""),
    ("plan_pipeline", {"id": "mv", "version": "2"}, "/version"),
    ("run_pipeline", {"id": "mv", "wait": "no"}, "/wait"),
    ("create_pipeline", {"name": "", "ir": orders_doc("mv-empty")}, "/name"),
    ("create_pipeline", {"name": "x", "ir": [1]}, "/ir"),
    ("patch_pipeline", {"id": "mv", "patch": [], "expectedVersion": "2"}, "/expectedVersion"),
    ("validate_pipeline", {"ir": {}, "params": {"x": [1]}}, "/params/x"),
    ("list_pipelines", {"all": True}, "/all"),
])
def test_mcp_arguments_violating_the_schema_are_tool_errors(service, name, args, where):
    stored(service, "mv")
    with pytest.raises(ServiceError) as exc:
        mcp_call(service, name, args)
    assert exc.value.status == 422 and "invalid arguments" in exc.value.error
    assert where in [i["path"] for i in exc.value.issues], exc.value.issues
    assert service.store.get("mv-empty") is None and service.store.get("mv").version == 2


def test_mcp_valid_arguments_still_work(service):
    stored(service, "mv")
    assert mcp_call(service, "get_pipeline", {"id": "mv", "version": 1})["version"] == 1
    assert mcp_call(service, "get_pipeline", {"id": "mv", "version": 1.0})["version"] == 1
    assert mcp_call(service, "get_pipeline", {"id": "mv"})["version"] == 2
    assert "nodes" in mcp_call(service, "plan_pipeline", {"id": "mv", "version": 1, "params": {}})
    assert mcp_call(service, "validate_pipeline", {"ir": [1, 2]})["valid"] is False  # as REST: a 200 with issues
    with pytest.raises(ServiceError) as exc:
        mcp_call(service, "no_such_tool", {})
    assert exc.value.status == 404


# ---- finding 9: a failed JSON Patch test says what differs, without Python types or the whole document ------------
def test_failed_patch_tests_are_clear():
    from flow_beam.service.core import apply_patch
    doc = {"id": "x", "nodes": [{"a": "Z"}], "secretish": "y" * 500}
    cases = {"/nodes/0/a": ('"Z"', '"nope"'), "": ("whole document",), "/nodes/-": ("end of an array",)}
    for path, words in cases.items():
        with pytest.raises(ServiceError) as exc:
            apply_patch(doc, [{"op": "test", "path": path, "value": "nope"}])
        text = exc.value.error + json.dumps(exc.value.issues)
        assert all(w in text for w in words), text
        assert "class" not in text and "yyyy" not in text and exc.value.issues[0]["path"] == path
