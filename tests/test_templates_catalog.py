"""Every catalog template validates, its embedded tests pass (`flow-beam test`), and `flow-beam init` copies it
with its sample data so it runs end to end."""
import os
import subprocess
import sys

import pytest

from flow_beam import templates
from flow_beam.testing import run_embedded_tests
from ir_compiler.check import check_document
from ir_compiler.errors import FlowError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = sorted(templates.catalog())


def test_catalog_lists_the_templates():
    assert {"files-to-warehouse", "warehouse-to-files", "daily-orders", "kafka-to-warehouse", "pubsub-to-files",
            "cdc-to-mirror"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_template_validates_and_its_tests_pass(name):
    path = os.path.join(templates.CATALOG, name, "pipeline.json")
    checked = check_document(path)
    assert checked.pipeline.tests and checked.pipeline.params
    outcomes = run_embedded_tests(path)
    assert [o.details for o in outcomes if not o.passed] == []


@pytest.mark.parametrize("name", ["files-to-warehouse", "daily-orders"])
def test_init_copies_a_template_that_runs(tmp_path, name):
    folder = tmp_path / name
    path = templates.init(name, str(folder))
    assert os.path.isdir(folder / "data")
    proc = subprocess.run([sys.executable, "-m", "flow_beam", "run", path, "--warehouse",
                           f"duckdb://{tmp_path / 'w.duckdb'}"], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    with pytest.raises(FlowError, match="not empty"):
        templates.init(name, str(folder))
    with pytest.raises(FlowError, match="available"):
        templates.init("nope", str(tmp_path / "x"))
