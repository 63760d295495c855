"""The pipeline service over HTTP (a real `flow-beam serve` subprocess): store, versions, JSON Patch, validation,
plan, runs, safety. DuckDB and PostgreSQL warehouses."""
import json
import os
import subprocess
import threading
from types import SimpleNamespace

import httpx
import jsonpointer
import pytest

from tests.pg_util import fresh_database
from tests.service_util import (REPO, child_env, free_port, orders_doc, running_service, serve_command, wait_for_run,
                                write_orders)

PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.infra)])
def svc(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"svc-{request.param}")
    root = tmp / "root"
    root.mkdir()
    if request.param == "duckdb":
        wh = f"duckdb://{tmp}/wh.duckdb"
        with running_service(root, wh) as base, httpx.Client(base_url=base, timeout=300) as client:
            yield SimpleNamespace(client=client, root=root, warehouse=wh, backend="duckdb")
    else:
        with fresh_database() as wh, running_service(root, wh) as base, \
                httpx.Client(base_url=base, timeout=300) as client:
            yield SimpleNamespace(client=client, root=root, warehouse=wh, backend="postgres")


def create(svc, pid, name=None, doc=None):
    r = svc.client.post("/api/v1/pipelines", json={"name": name or pid, "irVersion": "1.0",
                                                   "ir": doc or orders_doc(pid)})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_list_get_versions(svc):
    c = svc.client
    body = create(svc, "p-create", "Orders")
    assert body["id"] == "p-create" and body["version"] == 1 and body["name"] == "Orders"
    assert body["ir"] == orders_doc("p-create")
    listed = c.get("/api/v1/pipelines").json()["pipelines"]
    mine = [p for p in listed if p["id"] == "p-create"]
    assert mine and mine[0]["version"] == 1 and mine[0]["name"] == "Orders" and mine[0]["updatedAt"].endswith("Z")
    got = c.get("/api/v1/pipelines/p-create")
    assert got.status_code == 200 and got.json()["ir"] == orders_doc("p-create") and got.headers["etag"] == '"1"'
    assert c.get("/api/v1/pipelines/p-create?version=1").json()["version"] == 1
    assert c.get("/api/v1/pipelines/p-create?version=7").status_code == 404
    missing = c.get("/api/v1/pipelines/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "no pipeline 'nope'", "issues": []}
    again = c.post("/api/v1/pipelines", json={"name": "x", "irVersion": "1.0", "ir": orders_doc("p-create")})
    assert again.status_code == 409 and "exists" in again.json()["error"]
    versions = c.get("/api/v1/pipelines/p-create/versions").json()["versions"]
    assert [v["version"] for v in versions] == [1]


def test_create_invalid_gives_json_pointers(svc):
    doc = orders_doc("p-invalid")
    doc["nodes"][0]["schema"][1]["type"] = "string"  # gt:0 on a string column: a type error
    doc["nodes"][2]["input"] = "nowhere"  # a graph error
    r = svc.client.post("/api/v1/pipelines", json={"name": "bad", "irVersion": "1.0", "ir": doc})
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"error", "issues"}
    paths = {i["path"]: i for i in body["issues"]}
    assert "/nodes/2/input" in paths and paths["/nodes/2/input"]["nodeId"] == "tgt"
    assert paths["/nodes/2/input"]["layer"] == "graph"
    assert svc.client.get("/api/v1/pipelines/p-invalid").status_code == 404
    doc = orders_doc("p-invalid")
    doc["nodes"][0]["schema"][1]["type"] = "string"
    r = svc.client.post("/api/v1/pipelines", json={"name": "bad", "irVersion": "1.0", "ir": doc})
    issue = next(i for i in r.json()["issues"] if i["layer"] == "types")
    assert issue["path"] == "/nodes/1/rowLevel/0/rule" and issue["nodeId"] == "v"
    bad_version = svc.client.post("/api/v1/pipelines", json={"name": "x", "irVersion": "2.0", "ir": orders_doc("q")})
    assert bad_version.status_code == 422 and bad_version.json()["issues"][0]["path"] == "/irVersion"
    model = orders_doc("p-model")
    model["nodes"][1]["rowLevel"][0]["onFail"] = "explode"
    r = svc.client.post("/api/v1/pipelines", json={"name": "x", "irVersion": "1.0", "ir": model})
    assert r.status_code == 422
    assert any(i["path"] == "/nodes/1/rowLevel/0/onFail" and i["layer"] == "model" for i in r.json()["issues"])


def test_patch_versions_and_guards(svc):
    c = svc.client
    create(svc, "p-patch")
    ops = [{"op": "replace", "path": "/nodes/1/rowLevel/0/rule", "value": "gt:5"},
           {"op": "add", "path": "/metadata/owner", "value": "team-a"}]
    r = c.patch("/api/v1/pipelines/p-patch", content=json.dumps(ops), headers={**PATCH, "If-Match": "1"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["ir"]["nodes"][1]["rowLevel"][0]["rule"] == "gt:5"
    assert r.headers["etag"] == '"2"'
    assert c.get("/api/v1/pipelines/p-patch").json()["ir"]["metadata"]["owner"] == "team-a"
    assert c.get("/api/v1/pipelines/p-patch?version=1").json()["ir"] == orders_doc("p-patch")
    # missing If-Match → 428; stale → 409
    r = c.patch("/api/v1/pipelines/p-patch", content=json.dumps(ops), headers=PATCH)
    assert r.status_code == 428 and r.json()["error"].startswith("PATCH needs If-Match")
    r = c.patch("/api/v1/pipelines/p-patch", content=json.dumps(ops), headers={**PATCH, "If-Match": "1"})
    assert r.status_code == 409 and "version 2" in r.json()["error"]
    # ETag form accepted
    r = c.patch("/api/v1/pipelines/p-patch", content="[]", headers={**PATCH, "If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["version"] == 3
    # a patch yielding an invalid document: 422, every issue a pointer into the patched document; nothing stored
    bad = [{"op": "replace", "path": "/nodes/0/schema/1/type", "value": "string"},
           {"op": "replace", "path": "/nodes/2/input", "value": "ghost"},
           {"op": "add", "path": "/nodes/-", "value": {"id": "extra", "kind": "target", "input": "v",
                                                       "schema": "public.x", "loadMode": "upsert"}}]
    r = c.patch("/api/v1/pipelines/p-patch", content=json.dumps(bad), headers={**PATCH, "If-Match": "3"})
    assert r.status_code == 422
    issues = r.json()["issues"]
    assert all(i["path"].startswith("/") for i in issues)
    paths = {i["path"] for i in issues}
    assert "/nodes/2/input" in paths
    assert any(p.startswith("/nodes/3") for p in paths)  # the added node: upsert without upsertKey
    patched = _patched(c, "p-patch", bad)
    for i in issues:  # every pointer names a place in the patched document (a missing field: its parent exists)
        parent = i["path"].rsplit("/", 1)[0]
        assert jsonpointer.resolve_pointer(patched, i["path"], None) is not None or \
            isinstance(jsonpointer.resolve_pointer(patched, parent, None), dict), i
    got = c.get("/api/v1/pipelines/p-patch").json()
    assert got["version"] == 3 and got["ir"]["nodes"][2]["input"] == "v" and len(got["ir"]["nodes"]) == 3
    # a patch that does not apply: 422, pointer of the failing operation
    r = c.patch("/api/v1/pipelines/p-patch", content=json.dumps([{"op": "remove", "path": "/nodes/9"}]),
                headers={**PATCH, "If-Match": "3"})
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "/nodes/9"
    assert r.json()["issues"][0]["layer"] == "patch"
    r = c.patch("/api/v1/pipelines/p-patch", content=json.dumps([{"op": "test", "path": "/id", "value": "x"}]),
                headers={**PATCH, "If-Match": "3"})
    assert r.status_code == 422
    r = c.patch("/api/v1/pipelines/p-patch", content=json.dumps([{"op": "replace", "path": "/id", "value": "zz"}]),
                headers={**PATCH, "If-Match": "3"})
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "/id"
    r = c.patch("/api/v1/pipelines/p-patch", content="{not json", headers={**PATCH, "If-Match": "3"})
    assert r.status_code == 422
    r = c.patch("/api/v1/pipelines/p-patch", content="[]", headers={"Content-Type": "text/plain", "If-Match": "3"})
    assert r.status_code == 415
    assert c.patch("/api/v1/pipelines/ghost", content="[]", headers={**PATCH, "If-Match": "1"}).status_code == 404
    assert [v["version"] for v in c.get("/api/v1/pipelines/p-patch/versions").json()["versions"]] == [3, 2, 1]


def _patched(c, pid, ops):
    import jsonpatch
    return jsonpatch.apply_patch(c.get(f"/api/v1/pipelines/{pid}").json()["ir"], ops)


def test_put_new_version(svc):
    c = svc.client
    create(svc, "p-put")
    doc = orders_doc("p-put")
    doc["metadata"]["name"] = "renamed"
    r = c.put("/api/v1/pipelines/p-put", json={"ir": doc, "message": "rename"})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert c.get("/api/v1/pipelines/p-put/versions").json()["versions"][0]["message"] == "rename"
    assert c.put("/api/v1/pipelines/p-put", json={"ir": doc}, headers={"If-Match": "1"}).status_code == 409
    assert c.put("/api/v1/pipelines/p-put", json={"ir": orders_doc("other")}).status_code == 422
    assert c.put("/api/v1/pipelines/missing", json={"ir": orders_doc("missing")}).status_code == 404


def test_concurrent_patches_exactly_one_wins(svc):
    """Two writers patch the same version at the same moment: exactly one gets 200, the other 409."""
    c = svc.client
    for round_ in range(4):
        pid = f"p-race-{round_}"
        create(svc, pid)
        barrier = threading.Barrier(2)
        codes = []

        def writer(owner):
            with httpx.Client(base_url=str(c.base_url), timeout=120) as own:
                barrier.wait()
                r = own.patch(f"/api/v1/pipelines/{pid}", headers={**PATCH, "If-Match": "1"},
                              content=json.dumps([{"op": "add", "path": "/metadata/owner", "value": owner}]))
                codes.append((r.status_code, owner))

        threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(code for code, _ in codes) == [200, 409], codes
        winner = next(owner for code, owner in codes if code == 200)
        got = c.get(f"/api/v1/pipelines/{pid}").json()
        assert got["version"] == 2 and got["ir"]["metadata"]["owner"] == winner
        assert len(c.get(f"/api/v1/pipelines/{pid}/versions").json()["versions"]) == 2


def test_store_guard_two_threads_direct(svc):
    """The store's conditional update with two threads on two connections (no HTTP in between)."""
    from flow_beam.service.store import Conflict, PipelineStore

    store = PipelineStore(svc.warehouse)
    store.create("p-store-race", "x", orders_doc("p-store-race"), "t", None)
    barrier, outcome = threading.Barrier(2), []

    def writer(n):
        barrier.wait()
        try:
            store.add_version("p-store-race", 1, {**orders_doc("p-store-race"), "metadata": {"name": str(n)}}, "t",
                              None)
            outcome.append("won")
        except Conflict:
            outcome.append("conflict")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(outcome) == ["conflict", "won"]
    assert [v["version"] for v in store.versions("p-store-race")] == [2, 1]


def test_validate_endpoint_confinement_and_secrets(svc):
    c = svc.client
    r = c.post("/api/v1/validate", json={"ir": orders_doc("v-ok")})
    assert r.status_code == 200 and r.json()["valid"] is True
    doc = orders_doc("v-escape")
    doc["nodes"][0]["config"]["path"] = "../../outside"
    doc["nodes"].append({"id": "arch", "kind": "archive", "input": "tgt", "action": "move",
                         "destination": "/etc/flow-beam-archive"})
    r = c.post("/api/v1/validate", json={"ir": doc}).json()
    assert r["valid"] is False
    confined = {i["path"] for i in r["issues"] if "confinement root" in i["message"]}
    assert {"/nodes/0/config/path", "/nodes/3/destination"} <= confined
    # a param that points outside the root is caught after substitution
    doc = orders_doc("v-param")
    doc["params"] = {"dir": {"type": "string", "default": "in"}}
    doc["nodes"][0]["config"]["path"] = "${params.dir}"
    assert c.post("/api/v1/validate", json={"ir": doc}).json()["valid"] is True
    r = c.post("/api/v1/validate", json={"ir": doc, "params": {"dir": "/tmp"}}).json()
    assert not r["valid"] and r["issues"][0]["path"] == "/nodes/0/config/path"
    assert "outside the confinement root" in r["issues"][0]["message"]
    # secrets only as references
    doc = orders_doc("v-secret")
    doc["nodes"].insert(1, {"id": "geo", "kind": "enrich", "input": "src", "output": "score",
                            "provider": {"kind": "http", "url": "http://127.0.0.1:9/s", "apiKey": "sk-live-123",
                                         "headers": {"Authorization": "Bearer abc"}}})
    r = c.post("/api/v1/validate", json={"ir": doc}).json()
    secret_paths = {i["path"] for i in r["issues"] if i["layer"] == "secrets"}
    assert secret_paths == {"/nodes/1/provider/apiKey", "/nodes/1/provider/headers/Authorization"}
    doc["nodes"][1]["provider"] = {"kind": "http", "url": "http://127.0.0.1:9/s", "apiKey": "env:SCORE_KEY"}
    r = c.post("/api/v1/validate", json={"ir": doc}).json()
    assert not [i for i in r["issues"] if i["layer"] == "secrets"]
    # not a document at all
    r = c.post("/api/v1/validate", json={"ir": [1, 2]})
    assert r.status_code == 200 and r.json()["valid"] is False and r.json()["issues"][0]["path"] == ""


def test_stored_validate_and_plan(svc):
    c = svc.client
    create(svc, "p-plan")
    r = c.post("/api/v1/pipelines/p-plan/validate")
    assert r.status_code == 200 and r.json()["valid"] is True
    plan = c.post("/api/v1/pipelines/p-plan/plan").json()
    assert [n["id"] for n in plan["nodes"]] == ["src", "v", "tgt"]
    assert [n["kind"] for n in plan["nodes"]] == ["source", "validate", "target"]
    assert any("ParDo" in p for p in plan["nodes"][1]["primitives"])
    assert [f["name"] for f in plan["nodes"][1]["schema"]] == ["order_id", "amount", "country"]
    assert plan["nodes"][2]["inputs"] == ["v"]
    assert plan["mermaid"].startswith("flowchart LR") and "n0 --> n1" in plan["mermaid"]
    assert 'n0["src (source)"]' in plan["mermaid"]
    assert c.post("/api/v1/pipelines/ghost/plan").status_code == 404


def test_run_wait_and_async(svc):
    c = svc.client
    create(svc, "p-run")
    write_orders(svc.root / "in")
    r = c.post("/api/v1/pipelines/p-run/run", json={"wait": True})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["status"] == "completed_with_errors" and result["pipelineId"] == "p-run"
    assert result["nodes"]["src"]["rowsIn"] == 3
    assert result["nodes"]["v"]["rowsOut"] == 2 and result["nodes"]["v"]["rowsQuarantined"] == 1
    assert result["nodes"]["tgt"]["rowsLoaded"] == 2
    from connectors.warehouse import open_warehouse
    loaded = open_warehouse(svc.warehouse).read("public.svc_orders").to_pylist()
    assert sorted(row["order_id"] for row in loaded) >= [1, 3]
    assert c.get(f"/api/v1/runs/{result['runId']}").json()["nodes"]["tgt"]["rowsLoaded"] == 2

    # asynchronous: the source waits for a file, so the run is observably running until the test writes one
    doc = orders_doc("p-async")
    doc["nodes"][0]["config"]["path"] = "in-async"
    doc["nodes"][0]["config"]["waitPolicy"] = {"maxRetries": 1000, "intervalMinutes": 0.003, "onMissAction": "fail"}
    doc["nodes"][2]["schema"] = "public.svc_async"
    create(svc, "p-async", doc=doc)
    (svc.root / "in-async").mkdir()
    r = c.post("/api/v1/pipelines/p-async/run", json={"wait": False})
    assert r.status_code == 202 and set(r.json()) == {"runId"}
    run_id = r.json()["runId"]
    running, _ = wait_for_run(c, run_id, done=("running",))
    assert running["status"] == "running" and running["pipelineId"] == "p-async"
    assert any(x["runId"] == run_id and x["status"] == "running"
               for x in c.get("/api/v1/pipelines/p-async/runs").json()["runs"])
    write_orders(svc.root / "in-async", rows=((7, 1.5, "NL"),))
    final, seen = wait_for_run(c, run_id)
    assert final["status"] == "completed" and final["nodes"]["tgt"]["rowsLoaded"] == 1
    runs = c.get("/api/v1/pipelines/p-async/runs").json()["runs"]
    assert runs[0]["runId"] == run_id and runs[0]["status"] == "completed"
    assert c.get("/api/v1/runs/doesnotexist").status_code == 404


def test_run_rejects_invalid_params(svc):
    doc = orders_doc("p-params")
    doc["params"] = {"dir": {"type": "string", "default": "in"}}
    doc["nodes"][0]["config"]["path"] = "${params.dir}"
    create(svc, "p-params", doc=doc)
    r = svc.client.post("/api/v1/pipelines/p-params/run", json={"params": {"dir": "/"}, "wait": True})
    assert r.status_code == 422 and "confinement root" in r.json()["issues"][0]["message"]
    r = svc.client.post("/api/v1/pipelines/p-params/run", json={"params": {"nope": 1}})
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "/params/nope"


def test_request_limits_and_errors(svc):
    c = svc.client
    big = {"name": "big", "irVersion": "1.0", "ir": {**orders_doc("p-big"), "metadata": {"name": "x" * (1 << 21)}}}
    r = c.post("/api/v1/pipelines", json=big)
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    r = c.post("/api/v1/pipelines", json={"name": "x"})
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "/ir"
    assert c.get("/api/v1/schema").json()["title"] == "flow-beam pipeline IR 1.0"
    assert c.get("/openapi.json").json()["paths"]["/api/v1/pipelines/{id}"]["patch"]


def test_bearer_token_and_binding(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    wh = f"duckdb://{tmp_path}/wh.duckdb"
    auth = {"Authorization": "Bearer s3cret-token"}
    with running_service(root, wh, "--token-env", "FB_TEST_TOKEN", env={"FB_TEST_TOKEN": "s3cret-token"}) as base:
        assert httpx.get(f"{base}/api/v1/pipelines").status_code == 401
        assert httpx.get(f"{base}/api/v1/pipelines", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{base}/api/v1/pipelines", headers=auth).json() == {"pipelines": []}
        assert httpx.get(f"{base}/").status_code == 200  # the canvas page itself (it asks for the token)
        assert httpx.post(f"{base}/mcp", json={}).status_code == 401
    # beyond loopback without a token: refused before binding anything
    for extra, env in ((["--host", "0.0.0.0"], {}), (["--host", "0.0.0.0", "--token-env", "FB_UNSET_VAR"], {})):
        out = subprocess.run(serve_command(free_port(), root, wh, *extra), capture_output=True, text=True,
                             env=child_env(**env), cwd=REPO, timeout=120)
        assert out.returncode == 1
        assert "Traceback" not in out.stderr
        assert ("beyond loopback" in out.stderr) or ("FB_UNSET_VAR" in out.stderr), out.stderr
    assert not os.environ.get("FB_UNSET_VAR")
