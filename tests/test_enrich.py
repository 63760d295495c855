"""enrich against real HTTP servers on 127.0.0.1 started by the tests: a well-behaved API, a slow one, one that
fails intermittently (retries recover, counts balance), one that answers garbage (rows quarantined with the
reason), an OpenAI-compatible chat endpoint (a local stand-in: no real LLM service is reachable here), a
geocoder, and the lookup provider."""
import json

import duckdb
import pytest

from conftest import write_csv
from flow_beam.running import RunOptions, run_document
from http_util import http_server


def doc(tmp_path, provider, output="score", on_error="quarantine", dlq=True, **extra):
    d = {"kind": "pipeline", "version": "1.0", "id": "enrich-test", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": str(tmp_path / "in"), "format": "csv"}},
        {"id": "e", "kind": "enrich", "input": "src", "provider": provider, "output": output,
         "onError": on_error, "batchSize": 3, "concurrency": 4, "timeoutSeconds": 2, **extra},
        {"id": "out", "kind": "target", "input": "e", "schema": "public.enriched", "lineage": False}],
        "errorHandling": {"retry": {"maxAttempts": 3, "backoff": "fixed", "initialDelaySeconds": 0.01}}}
    if dlq:
        d["errorHandling"]["dlq"] = {"enabled": True, "table": "dlq.enrich"}
    return d


def customers(tmp_path, n=6, dup=False):
    (tmp_path / "in").mkdir(exist_ok=True)
    ids = [f"C{i % 3 if dup else i}" for i in range(n)]
    write_csv(tmp_path / "in" / "c.csv", ["id", "text", "address"],
              [[cid, f"text {cid}", f"{i} Main St"] for i, cid in enumerate(ids)])


def run(tmp_path, d):
    url = f"duckdb://{tmp_path / 'w.duckdb'}"
    return run_document(d, RunOptions(warehouse=url))


def table(tmp_path, sql):
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def score_api(path, body, n):
    cid = path.split("id=")[1]
    return 200, {"data": {"score": int(cid[1:]) * 10, "tier": "gold"}}, 0


def test_http_provider_templated_request_and_response_mapping(tmp_path):
    customers(tmp_path)
    with http_server(score_api) as (base, requests):
        result = run(tmp_path, doc(tmp_path, {"kind": "http", "url": f"{base}/score?id={{id}}"},
                                   output={"score": "data.score", "tier": "data.tier"}))
    assert result.status == "completed", result.error
    assert len(requests) == 6
    assert sorted(table(tmp_path, "select id, score, tier from public.enriched")) == [
        (f"C{i}", str(i * 10), "gold") for i in range(6)]
    assert (result.nodes["e"].rowsIn, result.nodes["e"].rowsOut) == (6, 6)


def test_cache_avoids_repeated_calls(tmp_path):
    customers(tmp_path, n=9, dup=True)
    with http_server(score_api) as (base, requests):
        result = run(tmp_path, doc(tmp_path, {"kind": "http", "url": f"{base}/score?id={{id}}"},
                                   output={"score": "data.score"}, concurrency=1))
    assert result.status == "completed" and len(requests) == 3  # 3 distinct ids, 9 rows


def test_intermittent_failures_are_retried_and_counts_balance(tmp_path):
    customers(tmp_path)

    attempts: dict[str, int] = {}

    def flaky(path, body, n):  # every id's first call fails (deterministic whatever the concurrency)
        cid = path.split("id=")[1]
        attempts[cid] = attempts.get(cid, 0) + 1
        return (503, {"error": "busy"}, 0) if attempts[cid] == 1 else score_api(path, body, n)
    with http_server(flaky) as (base, requests):
        result = run(tmp_path, doc(tmp_path, {"kind": "http", "url": f"{base}/score?id={{id}}"},
                                   output={"score": "data.score"}))
    assert result.status == "completed", (result.error, {k: v.warnings for k, v in result.nodes.items()})
    e = result.nodes["e"]
    assert (e.rowsIn, e.rowsOut, e.rowsQuarantined) == (6, 6, 0)
    assert len(requests) > 6  # some calls were retried
    assert len(table(tmp_path, "select * from public.enriched")) == 6


def test_garbage_answers_are_quarantined_with_the_reason(tmp_path):
    customers(tmp_path)

    def garbage(path, body, n):
        cid = path.split("id=")[1]
        if cid == "C1":
            return 200, b"<html>oops</html>", 0
        if cid == "C2":
            return 200, {"unexpected": True}, 0
        return score_api(path, body, n)
    with http_server(garbage) as (base, _):
        result = run(tmp_path, doc(tmp_path, {"kind": "http", "url": f"{base}/score?id={{id}}"},
                                   output={"score": "data.score"}))
    assert result.status == "completed_with_errors"
    e = result.nodes["e"]
    assert (e.rowsIn, e.rowsOut, e.rowsQuarantined) == (6, 4, 2)
    reasons = dict((json.loads(r)["id"], err) for r, err in table(tmp_path, "select row, error from dlq.enrich"))
    assert "not JSON" in reasons["C1"] and "data" in reasons["C2"]


def test_slow_server_times_out_then_null(tmp_path):
    customers(tmp_path, n=2)
    with http_server(lambda p, b, n: (200, {"data": {"score": 1}}, 3)) as (base, _):

        result = run(tmp_path, doc(tmp_path, {"kind": "http", "url": f"{base}/score?id={{id}}"},
                                   output={"score": "data.score"}, on_error="null", timeoutSeconds=0.3))
    assert result.status == "completed_with_errors"
    assert table(tmp_path, "select score from public.enriched") == [(None,), (None,)]
    assert any("null after a failed call: 2" in w for w in result.nodes["e"].warnings)


def test_on_error_fail_fails_the_run(tmp_path):
    customers(tmp_path, n=2)
    with http_server(lambda p, b, n: (404, {"error": "no"}, 0)) as (base, _):
        result = run(tmp_path, doc(tmp_path, {"kind": "http", "url": f"{base}/x?id={{id}}"}, on_error="fail"))
    assert result.status == "failed" and "HTTP 404" in result.error


def test_llm_provider_speaks_chat_completions(tmp_path, monkeypatch):
    customers(tmp_path, n=3)
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-value")

    def chat(path, body, n):
        prompt = body["messages"][-1]["content"]
        return 200, {"choices": [{"message": {"role": "assistant", "content": f"label for {prompt}"}}]}, 0
    provider = {"kind": "llm", "baseUrl": None, "model": "tiny", "prompt": "Classify: {text}",
                "apiKey": "env:TEST_LLM_KEY"}
    with http_server(chat) as (base, requests):
        provider["baseUrl"] = f"{base}/v1"
        result = run(tmp_path, doc(tmp_path, provider, output="label"))
    assert result.status == "completed", result.error
    assert requests[0]["path"] == "/v1/chat/completions"
    assert requests[0]["headers"]["Authorization"] == "Bearer sk-secret-value"
    assert sorted(table(tmp_path, "select label from public.enriched")) == [
        (f"label for Classify: text C{i}",) for i in range(3)]
    assert "sk-secret-value" not in json.dumps(result.to_json())


def test_llm_without_credentials_passes_rows_with_null_and_a_warning(tmp_path, monkeypatch):
    customers(tmp_path, n=2)
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    result = run(tmp_path, doc(tmp_path, {"kind": "llm", "baseUrl": "http://127.0.0.1:9/v1", "model": "m",
                                          "prompt": "{text}", "apiKey": "env:NO_SUCH_KEY"}, output="label"))
    assert table(tmp_path, "select label from public.enriched") == [(None,), (None,)]
    assert any("without credentials" in w for w in result.nodes["e"].warnings)


def test_geocode_provider(tmp_path):
    customers(tmp_path, n=2)

    def geo(path, body, n):
        return 200, [{"lat": "52.5", "lon": "13.4", "display_name": "x"}], 0
    with http_server(geo) as (base, requests):
        result = run(tmp_path, doc(tmp_path, {"kind": "geocode", "url": f"{base}/search?q={{address}}"},
                                   output={"lat": "lat", "lon": "lon"}))
    assert result.status == "completed", result.error
    assert "q=0%20Main%20St" in requests[0]["path"] or "q=1%20Main%20St" in requests[0]["path"]
    assert table(tmp_path, "select distinct lat, lon from public.enriched") == [("52.5", "13.4")]


def test_lookup_provider(tmp_path):
    customers(tmp_path, n=3)
    provider = {"kind": "lookup", "rows": [{"cid": "C0", "seg": "A"}, {"cid": "C1", "seg": "B"}],
                "on": {"id": "cid"}, "field": "seg"}
    result = run(tmp_path, doc(tmp_path, provider, output="segment"))
    assert result.status == "completed", result.error
    assert sorted(table(tmp_path, "select id, segment from public.enriched")) == [
        ("C0", "A"), ("C1", "B"), ("C2", None)]


def test_secret_literal_and_unknown_template_column_are_rejected(tmp_path):
    from ir_compiler.check import check_document
    from ir_compiler.errors import ValidationFailed
    from ir_compiler.propagate import SchemaContext
    import pytest

    d = doc(tmp_path, {"kind": "llm", "baseUrl": "http://x/v1", "model": "m", "prompt": "{nope}",
                       "apiKey": "sk-literal"})
    d["nodes"][0]["schema"] = [{"name": "id", "type": "string"}, {"name": "text", "type": "string"}]
    with pytest.raises(ValidationFailed) as info:
        check_document(d, ctx=SchemaContext())
    messages = " ".join(i.message for i in info.value.issues)
    assert "env:VAR" in messages
    d["nodes"][1]["provider"]["apiKey"] = "env:K"
    with pytest.raises(ValidationFailed) as info:
        check_document(d, ctx=SchemaContext())
    assert "'nope'" in info.value.issues[0].message and info.value.issues[0].path == "nodes[1].provider"


def _raw_server(answer: bytes):
    """A TCP server on 127.0.0.1 that answers every connection with ``answer`` (not necessarily HTTP) and closes."""
    import contextlib
    import socket
    import threading

    @contextlib.contextmanager
    def serve():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        stop = threading.Event()

        def loop():
            sock.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                with conn:
                    conn.recv(65536)
                    conn.sendall(answer)
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            stop.set()
            t.join()
            sock.close()
    return serve()


@pytest.mark.parametrize("answer, words", [
    (b"GARBAGE\r\n\r\n", "not HTTP"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\": 1}", "cut short"),
])
@pytest.mark.parametrize("on_error", ["quarantine", "null"])
def test_answers_that_are_not_http_follow_on_error(tmp_path, answer, words, on_error):
    """Found by a probe: a bad status line or a body cut short failed the whole run whatever onError said (the
    first with an empty message). Now they are failed calls like a 500: retried, then null or quarantined."""
    customers(tmp_path, n=2)
    with _raw_server(answer) as base:
        result = run(tmp_path, doc(tmp_path, {"kind": "http", "url": f"{base}/score?id={{id}}"},
                                   output={"score": "data.score"}, on_error=on_error))
    e = result.nodes["e"]
    assert result.status == "completed_with_errors", result.error
    if on_error == "quarantine":
        assert (e.rowsOut, e.rowsQuarantined) == (0, 2)
        reasons = [err for _, err in table(tmp_path, "select row, error from dlq.enrich")]
        assert len(reasons) == 2 and all(words in r for r in reasons), reasons
    else:
        assert e.rowsOut == 2 and table(tmp_path, "select score from public.enriched") == [(None,), (None,)]


def test_an_output_naming_an_input_column_is_a_validation_error(tmp_path):
    """Found by a probe: `output: "id"` validated (and `plan` showed one `id`), then the load failed with Arrow's
    "Can't unify schema with duplicate field names"."""
    from ir_compiler.check import check_document
    from ir_compiler.errors import ValidationFailed
    from ir_compiler.propagate import SchemaContext

    for output in ("id", {"score": "data.score", "text": "data.t"}):
        d = doc(tmp_path, {"kind": "http", "url": "http://127.0.0.1:9/x?id={id}"}, output=output)
        d["nodes"][0]["schema"] = [{"name": "id", "type": "string"}, {"name": "text", "type": "string"}]
        with pytest.raises(ValidationFailed) as info:
            check_document(d, ctx=SchemaContext())
        (e,) = [i for i in info.value.issues if i.severity == "error"]
        assert e.path == "nodes[1].output" and "already exists" in e.message, e


def test_header_secrets_are_references_resolved_at_run_time(tmp_path, monkeypatch):
    """Found by a probe: `"headers": {"X-Api-Key": "env:VAR"}` sent the text `env:VAR`, and a literal key in a
    header validated. Headers now follow http_pull's rule (a credential header holds env:VAR words, after at most
    a scheme word), the words are replaced when the run calls, and the value never reaches a row or the result."""
    from ir_compiler.check import check_document
    from ir_compiler.errors import ValidationFailed
    from ir_compiler.propagate import SchemaContext

    customers(tmp_path, n=2)
    monkeypatch.setenv("PROBE_KEY", "s3cr3t-value-XYZ")
    with http_server(lambda p, b, n: (200, {"data": {"score": 1}}, 0)) as (base, requests):
        provider = {"kind": "http", "url": f"{base}/score?id={{id}}",
                    "headers": {"X-Api-Key": "env:PROBE_KEY", "Authorization": "Token env:PROBE_KEY",
                                "Accept-Language": "fr"}}
        result = run(tmp_path, doc(tmp_path, provider, output={"score": "data.score"}))
    assert result.status == "completed", result.error
    sent = requests[0]["headers"]
    assert (sent["X-Api-Key"], sent["Authorization"], sent["Accept-Language"]) == (
        "s3cr3t-value-XYZ", "Token s3cr3t-value-XYZ", "fr")
    assert "s3cr3t" not in json.dumps(result.to_json())
    for literal in ({"X-Api-Key": "hdrsecret"}, {"api-key": "k"}, {"Authorization": "Bearer abc"}):
        d = doc(tmp_path, {"kind": "http", "url": "http://127.0.0.1:9/x", "headers": literal})
        with pytest.raises(ValidationFailed) as info:
            check_document(d, ctx=SchemaContext())
        assert any("carries a credential" in i.message and i.path == "nodes[1].provider" for i in
                   info.value.issues), info.value.issues


def test_an_unset_api_key_variable_is_a_warning(tmp_path, monkeypatch):
    """Found by a probe: `apiKey: "env:UNSET"` sent every request without credentials and said nothing."""
    customers(tmp_path, n=2)
    monkeypatch.delenv("FLOW_BEAM_TEST_UNSET", raising=False)
    with http_server(lambda p, b, n: (200, {"data": {"score": 1}}, 0)) as (base, _):
        result = run(tmp_path, doc(tmp_path, {"kind": "http", "url": f"{base}/score?id={{id}}",
                                              "apiKey": "env:FLOW_BEAM_TEST_UNSET"}, output={"score": "data.score"}))
    assert any("FLOW_BEAM_TEST_UNSET is unset" in w for w in result.nodes["e"].warnings), result.nodes["e"].warnings
