from flow_beam.testing import run_embedded_tests
def test_embedded_tests_never_write_to_a_remote_sink(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x"); monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    doc = {"kind": "pipeline", "version": "1.0", "id": "to-s3", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": "/nonexistent", "format": "csv"}},
        {"id": "out", "kind": "target", "input": "src", "connector": "s3",
         "config": {"bucket": "no-such-bucket", "endpoint": "http://127.0.0.1:9", "path": "exports/", "format": "jsonl"}}],
        "tests": [{"name": "t", "inputs": {"src": [{"id": 1}, {"id": 2}]}, "expect": {"out": [{"id": 1}, {"id": 2}]}}]}
    outcome, = run_embedded_tests(doc)
    assert outcome.passed, outcome.details
