"""``flow-beam test``: run a document's embedded tests on DirectRunner with in-document inputs.

Every source is replaced: by the test's rows when ``inputs`` names it, else by no rows. Targets load into a
throw-away DuckDB warehouse. ``expect`` compares rows as a multiset (order does not matter), on the columns
the expected rows name.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from ir_compiler.check import check_document
from ir_compiler.errors import FlowError
from ir_compiler.loader import load_document
from ir_compiler.propagate import SchemaContext, declared_schema


@dataclass
class TestOutcome:
    __test__ = False
    name: str
    passed: bool
    details: list[str] = field(default_factory=list)


def _norm(v):
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True, default=str)
    return v


def _row_key(row: dict, cols: list[str]) -> tuple:
    return tuple((c, _norm(row.get(c))) for c in cols)


def compare_rows(expected: list[dict], actual: list[dict]) -> list[str]:
    """Differences between expected and actual rows (multiset, on the expected rows' columns)."""
    cols = sorted({k for r in expected for k in r}) or sorted({k for r in actual for k in r})
    want, got = Counter(_row_key(r, cols) for r in expected), Counter(_row_key(r, cols) for r in actual)
    problems = []
    for key, n in (want - got).items():
        problems.append(f"missing {n}× {dict(key)}")
    for key, n in (got - want).items():
        problems.append(f"unexpected {n}× {dict(key)}")
    return problems


def _captured(run_dir: str, node_id: str) -> list[dict]:
    folder = os.path.join(run_dir, "capture", node_id)
    if not os.path.isdir(folder):
        return []
    rows = []
    for name in sorted(os.listdir(folder)):
        t = pq.read_table(os.path.join(folder, name))
        rows += t.select([c for c in t.column_names if not c.startswith("__fb_")]).to_pylist()
    return rows


def _sink_rows(node, files: list[str]) -> list[dict]:
    """The rows a file sink wrote (read back with their types)."""
    from connectors.formats import read_file

    rows = []
    for path in files:
        for chunk in read_file(path, node.config.format):
            rows += chunk.batch.to_pylist()
    return rows


def run_embedded_tests(source, params: dict | None = None, root: str | None = None) -> list[TestOutcome]:
    pipeline, _ = load_document(source, params)
    if not pipeline.tests:
        return [TestOutcome("(no tests)", False, ["the document has no 'tests' block"])]
    return [_run_case(source, params, pipeline, case, root) for case in pipeline.tests]


def _test_schema(node, rows: list[dict], sample: bool = True):
    """The schema test rows are converted to — the one a real run reads with: declared, else inferred from the
    source's data when it is reachable, else inferred from the rows by the source format's rules."""
    from ir_compiler.lower.sources import test_rows_table
    from ir_compiler.types import Schema

    declared = declared_schema(node)
    if declared is not None:
        return declared
    try:
        from connectors.registry import infer_source_schema
        real = infer_source_schema(node) if sample else None
    except Exception:  # noqa: BLE001 - the data is not reachable here: the rows decide
        real = None
    if real is not None or not rows:
        return real
    fmt = getattr(node.config, "format", None)
    table, _ = test_rows_table(rows, None, False, fmt)
    return Schema.from_arrow(table.drop_columns(["__fb_ord"]).schema)


def _run_case(source, params, pipeline, case, root=None) -> TestOutcome:
    from flow_beam.running import RunOptions, run_document
    from ir_compiler.confine import confinement_issues

    sources = [n for n in pipeline.nodes if n.kind == "source"]
    unknown = [k for k in case.inputs if k not in {s.id for s in sources}]
    if unknown:
        return TestOutcome(case.name, False, [f"inputs name {unknown}, which are not source nodes"])
    inputs = {s.id: case.inputs.get(s.id, []) for s in sources}
    sample = not confinement_issues(pipeline, root)  # never sample data outside the confinement root
    overrides = {s.id: _test_schema(s, inputs[s.id], sample) for s in sources}
    with tempfile.TemporaryDirectory(prefix="flow-beam-test-") as tmp:
        url = f"duckdb://{os.path.join(tmp, 'test.duckdb')}"
        try:
            checked = check_document(source, {**(params or {}), **(case.params or {})},
                                     SchemaContext(overrides=overrides), root=root)
        except FlowError as exc:
            return TestOutcome(case.name, False, [str(exc)])
        run_dir = os.path.join(tmp, "run")
        capture = tuple(n for n in case.expect if pipeline.node(n).kind != "target") if all(
            n in {x.id for x in pipeline.nodes} for n in case.expect) else ()
        result = run_document(source, RunOptions(warehouse=url, test_inputs=inputs, capture=capture,
                                                 run_dir=run_dir, params=params or {}, record_history=False,
                                                 sink_root=os.path.join(tmp, "sinks")),
                              checked=checked)
        return _judge(case, pipeline, result, run_dir, url)


def _judge(case, pipeline, result, run_dir, url) -> TestOutcome:
    from connectors.warehouse import open_warehouse

    details = []
    ids = {n.id for n in pipeline.nodes}
    for node_id, expected in case.expect.items():
        if node_id not in ids:
            details.append(f"expect names '{node_id}', which is not a node")
            continue
        node = pipeline.node(node_id)
        if node.kind == "target" and node.schema_:
            try:
                table = open_warehouse(url).read(node.schema_)
                actual = table.drop_columns([c for c in table.column_names if c == "_flow_lineage"]).to_pylist()
            except FlowError:
                actual = []
        elif node.kind == "target":
            actual = _sink_rows(node, result.nodes[node_id].files or [])
        else:
            actual = _captured(run_dir, node_id)
        details += [f"{node_id}: {p}" for p in compare_rows(expected, actual)]
    if result.status == "failed":
        details.append(f"run failed: {result.error}")
    return TestOutcome(case.name, not details, details)


