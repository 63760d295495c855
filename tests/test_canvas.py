"""The canvas in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium): the page loads,
the graph shows every node and edge of a catalog pipeline, a node shows its schema, the IR editor validates live,
a proposed JSON Patch is shown as a diff and Apply creates a new version (Reject changes nothing), a run's
per-node counts are drawn on the graph.

Install the browser with `bash scripts/chromium.sh install`. FLOW_BEAM_CANVAS_SCREENSHOT=path saves a screenshot.
"""
import json
import os
import shutil

import httpx
import pytest

from tests.service_util import REPO, running_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="headless Chromium is not installed: run "
                                "`bash scripts/chromium.sh install` (apt-get install chromium chromium-driver)")
CATALOG = os.path.join(REPO, "templates", "pipelines", "daily-orders")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, what, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message=what)


def node(driver, node_id):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, f'g.node[data-node-id="{node_id}"]')


def test_canvas_graph_patch_and_run(tmp_path, browser):
    from selenium.webdriver.common.by import By

    root = tmp_path / "root"
    shutil.copytree(CATALOG, root)
    ir = json.load(open(root / "pipeline.json"))
    with running_service(root, f"duckdb://{tmp_path}/wh.duckdb") as base:
        api = httpx.Client(base_url=base, timeout=300)
        assert api.post("/api/v1/pipelines", json={"name": "Daily orders", "irVersion": "1.0", "ir": ir}) \
            .status_code == 201
        d = browser
        d.get(base + "/")
        assert d.title == "flow-beam canvas"
        item = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, 'li[data-pipeline="daily-orders"]'),
                    "the pipeline list shows daily-orders")[0]
        item.click()

        # every node of the catalog pipeline, coloured by kind, and every edge with its port label
        wait(d, lambda d: d.find_element(By.ID, "graph").get_attribute("data-shown") == "daily-orders@1", "loaded")
        assert len(d.find_elements(By.CSS_SELECTOR, "g.node")) == len(ir["nodes"])
        drawn = {g.get_attribute("data-node-id"): g for g in d.find_elements(By.CSS_SELECTOR, "g.node")}
        assert set(drawn) == {n["id"] for n in ir["nodes"]}
        for n in ir["nodes"]:
            assert drawn[n["id"]].get_attribute("data-kind") == n["kind"]
        fills = {g.get_attribute("data-kind"): g.find_element(By.TAG_NAME, "rect").get_attribute("fill")
                 for g in drawn.values()}
        assert len(set(fills.values())) == len(fills)  # one colour per kind
        edges = {e.get_attribute("data-edge") for e in d.find_elements(By.CSS_SELECTOR, "path.edge")}
        expected = {f"{ref.split('.')[0]}->{n['id']}" for n in ir["nodes"]
                    for ref in ([n["input"]] if isinstance(n.get("input"), str) else n.get("inputs", []))}
        assert edges == expected
        labels = {t.text for t in d.find_elements(By.CSS_SELECTOR, "text.edge-label")}
        ports = {ref.split(".", 1)[1] for n in ir["nodes"]
                 for ref in ([n["input"]] if isinstance(n.get("input"), str) else n.get("inputs", [])) if "." in ref}
        assert ports and labels == ports

        # a node's config and propagated schema (from the plan endpoint)
        plan = api.post("/api/v1/pipelines/daily-orders/plan").json()
        node(d, "checks").click()
        table = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, 'table[data-schema="checks"]'), "schema shown")[0]
        columns = [row.find_elements(By.TAG_NAME, "td")[0].text for row in table.find_elements(By.TAG_NAME, "tr")[1:]]
        assert columns == [c["name"] for c in next(n for n in plan["nodes"] if n["id"] == "checks")["schema"]]
        assert "rowLevel" in d.find_element(By.ID, "tab-node").text

        # the IR editor validates live through the API and marks the node in error
        d.find_element(By.CSS_SELECTOR, '.tabs button[data-tab="ir"]').click()
        broken = json.loads(json.dumps(ir))
        broken["nodes"][2]["input"] = "ghost"
        d.execute_script("const t = document.getElementById('ir-text'); t.value = arguments[0];"
                         "t.dispatchEvent(new Event('input'));", json.dumps(broken, indent=2))
        wait(d, lambda d: "error" in d.find_element(By.ID, "ir-valid").text, "live validation answered")
        assert "/nodes/2/input" in d.find_element(By.ID, "ir-issues").text
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, 'g.node.has-issue[data-node-id="checks"]'),
             "the node in error is marked")

        # a proposed patch: diff, Reject keeps the version, Apply creates version 2
        d.find_element(By.CSS_SELECTOR, '.tabs button[data-tab="patch"]').click()
        patch_box = d.find_element(By.ID, "patch-text")
        patch_box.send_keys(json.dumps([{"op": "replace", "path": "/metadata/owner", "value": "rejected-team"}]))
        d.find_element(By.ID, "patch-preview").click()
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#patch-diff .add"), "diff shown")
        d.find_element(By.ID, "patch-reject").click()
        assert not d.find_elements(By.CSS_SELECTOR, "#patch-diff .add")
        assert api.get("/api/v1/pipelines/daily-orders").json()["version"] == 1

        patch = [{"op": "replace", "path": "/metadata/owner", "value": "canvas-team"},
                 {"op": "add", "path": "/nodes/0/description", "value": "orders from the canvas"}]
        patch_box.send_keys(json.dumps(patch))
        d.find_element(By.ID, "patch-preview").click()
        wait(d, lambda d: d.find_element(By.ID, "patch-apply").is_enabled(), "the valid patch can be applied")
        added = [x.text for x in d.find_elements(By.CSS_SELECTOR, "#patch-diff .add")]
        removed = [x.text for x in d.find_elements(By.CSS_SELECTOR, "#patch-diff .del")]
        assert any("canvas-team" in x for x in added) and any("data-team" in x for x in removed)
        assert any("orders from the canvas" in x for x in added)
        d.find_element(By.ID, "patch-apply").click()
        wait(d, lambda d: d.find_element(By.ID, "graph").get_attribute("data-shown") == "daily-orders@2",
             "version 2 shown")
        assert d.find_element(By.ID, "version").text == "v2"
        assert d.find_element(By.ID, "patch-text").get_attribute("value") == ""
        stored = api.get("/api/v1/pipelines/daily-orders").json()
        assert stored["version"] == 2 and stored["ir"]["metadata"]["owner"] == "canvas-team"
        assert stored["ir"]["nodes"][0]["description"] == "orders from the canvas"
        versions = api.get("/api/v1/pipelines/daily-orders/versions").json()["versions"]
        assert [v["version"] for v in versions] == [2, 1] and versions[0]["author"] == "canvas"

        # run from the canvas: the run list and the per-node counts on the graph
        d.find_element(By.ID, "run-btn").click()
        wait(d, lambda d: d.find_element(By.ID, "graph").get_attribute("data-run"), "the run finished", timeout=300)
        counts = d.find_element(By.CSS_SELECTOR, 'text.counts[data-counts="orders"]')
        runs = api.get("/api/v1/pipelines/daily-orders/runs").json()["runs"]
        assert runs[0]["runId"] == d.find_element(By.ID, "graph").get_attribute("data-run")
        result = api.get(f"/api/v1/runs/{runs[0]['runId']}").json()
        assert counts.text.startswith(f"in {result['nodes']['orders']['rowsIn']} · out "
                                      f"{result['nodes']['orders']['rowsOut']}")
        assert result["nodes"]["orders"]["rowsIn"] > 0
        loaded = d.find_element(By.CSS_SELECTOR, 'text.counts[data-counts="orders_table"]').text
        assert loaded.endswith(f"loaded {result['nodes']['orders_table']['rowsLoaded']}")
        assert d.find_elements(By.CSS_SELECTOR, f'li[data-run="{result["runId"]}"]')
        shot = os.environ.get("FLOW_BEAM_CANVAS_SCREENSHOT")
        if shot:
            d.find_element(By.CSS_SELECTOR, '.tabs button[data-tab="patch"]').click()
            proposal = [{"op": "replace", "path": "/nodes/2/rowLevel/2/rule", "value": "expr:amount < 500"},
                        {"op": "add", "path": "/nodes/2/rowLevel/-", "value": {
                            "id": "email-present", "field": "email", "rule": "not_null", "onFail": "warn"}}]
            d.find_element(By.ID, "patch-text").send_keys(json.dumps(proposal, indent=1))
            d.find_element(By.ID, "patch-preview").click()
            wait(d, lambda d: d.find_element(By.ID, "patch-apply").is_enabled(), "proposal previewed")
            d.set_window_size(1500, 720)
            d.save_screenshot(shot)
        severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
