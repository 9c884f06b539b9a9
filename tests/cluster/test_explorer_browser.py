"""The explorer in a real browser: headless Debian Chromium, driven by Playwright, against
a real 4-node cluster that has run the demo's alliance story.

What a reader must be able to trust: every page renders with no console error; the
Verify button checks a real proof in the browser and refuses a tampered one; a new
transaction shows on the live view within 2 s; the deal page's numbers are the state
API's. Screenshots of every page go to a directory the test prints
(IPCHAIN_ARTIFACTS_DIR, or a fresh temporary directory).

Skips only when the browser is missing (a machine condition): CI installs Debian's
`chromium` (and the `playwright` Python package, which drives it over CDP; no browser
download ever happens).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import os
import shutil
import tempfile
import time
import urllib.request
from urllib.parse import urlsplit
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import sync_playwright

from ipchain.cluster.manager import Cluster, start_and_wait
from ipchain.cluster.procs import find_free_base_port, pids_under
from ipchain.sdk import client
from ipchain.workloads import demo
from ipchain.workloads import story as workload

pytestmark = pytest.mark.cluster
CHROMIUM = os.environ.get("IPCHAIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
PAGE_TIMEOUT_MS = 15_000
LIVE_DEADLINE_S = 2.0
PAGE_WEIGHT_JS = """() => {
  const code = performance.getEntries().filter((e) => e.entryType === "navigation"
    || (e.entryType === "resource" && new URL(e.name).pathname.startsWith("/explorer/")));
  return {files: code.length, bytes: code.reduce((n, e) => n + e.encodedBodySize, 0),
          each: Object.fromEntries(code.map((e) => [new URL(e.name).pathname, e.encodedBodySize]))};
}"""


def http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def story_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A 4-node cluster after the whole alliance story; stopped at the end, whatever happened."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package "
                    "(or set IPCHAIN_CHROMIUM) to run the browser test")
    data_dir = tmp_path_factory.mktemp("explorer") / "cluster"
    cluster = Cluster.create(data_dir, 4, find_free_base_port(4), 0)
    try:
        start_and_wait(cluster, 60.0)
        today = datetime.datetime.now(datetime.timezone.utc).date()
        phases = workload.story(workload.get_available_ops(), today)
        rows, views, _, heads = asyncio.run(demo.run_demo(cluster, phases))
        refused = [row for row in rows if row[-1] != "committed"]
        assert refused == [], refused
        yield {"cluster": cluster, "views": views, "height": heads[0]["height"],
               "url": cluster.urls[0]}
    finally:
        cluster.stop(timeout_s=10.0)
        assert pids_under(cluster.data_dir) == []


@pytest.fixture(scope="module")
def shots_dir() -> Path:
    root = os.environ.get("IPCHAIN_ARTIFACTS_DIR")
    path = (Path(root) / "explorer" if root
            else Path(tempfile.mkdtemp(prefix="ipchain-explorer-screens-")))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(story_cluster: dict[str, Any]) -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="ipchain-chromium-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


class Page:
    """One tab that records every console error, page error and failed request."""

    def __init__(self, context: Any, base_url: str, shots: Path) -> None:
        self.page = context.new_page()
        self.base_url, self.shots = base_url, shots
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.page.on("request", lambda r: self.urls.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(
            f"request failed: {r.url} {r.failure}") if "/v1/events" not in r.url else None)

    def open(self, route: str) -> str:
        self.page.goto(f"{self.base_url}/{route}")
        self.page.wait_for_selector("main[aria-busy=false]", timeout=PAGE_TIMEOUT_MS)
        assert self.page.locator("main .error").count() == 0, self.page.inner_text("main")
        return self.page.inner_text("main")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def tab(browser: Any, story_cluster: dict[str, Any], shots_dir: Path) -> Iterator[Page]:
    page = Page(browser, story_cluster["url"], shots_dir)
    yield page
    page.page.close()


def first_tx_of(url: str, height: int) -> str:
    return http_json(f"{url}/v1/blocks/{height}")["tx_ids"][0]


def test_every_page_renders_without_console_errors(tab: Page, story_cluster: dict[str, Any],
                                                   shots_dir: Path, capsys) -> None:
    views, url = story_cluster["views"], story_cluster["url"]
    patent = workload.POOLED[0].id
    pages = {"cluster": "#/cluster", "blocks": "#/blocks", "block": "#/block/3",
             "patents": "#/patents", "patent": f"#/patent/{patent}",
             "patents-search-ipc": "#/patents/H04L", "licensing": "#/licensing",
             "pool": f"#/pool/{views['pool']['id']}", "deals": "#/deals",
             "deal": f"#/deal/{views['deal']['id']}",
             "tx": f"#/tx/{first_tx_of(url, 3)}"}
    texts = {}
    for name, route in pages.items():
        texts[name] = tab.open(route)
        tab.shot(name)
        if name == "cluster":  # first load, empty cache: what a reader downloads
            shipped = tab.page.evaluate(PAGE_WEIGHT_JS)
    (shots_dir / "page-weight.json").write_text(json.dumps(shipped, indent=1) + "\n")
    with capsys.disabled():
        print(f"\nexplorer screenshots: {shots_dir}\nexplorer page weight: "
              f"{shipped['bytes']} bytes in {shipped['files']} files (code and style, "
              f"uncompressed; API answers not counted)")
    assert shipped["files"] >= 10 and shipped["bytes"] > 0
    assert tab.errors == []
    # offline: nothing but the cluster's own nodes is ever asked for anything
    node_origins = {url.rstrip("/") for url in story_cluster["cluster"].urls}
    elsewhere = [u for u in tab.urls if "{0.scheme}://{0.netloc}".format(urlsplit(u))
                 not in node_origins and not u.startswith(("data:", "blob:"))]
    assert elsewhere == [] and len(tab.urls) > 20
    assert all(f"node{i}" in texts["cluster"] for i in range(4))
    assert "diverged" not in texts["cluster"] and "unreachable" not in texts["cluster"]
    assert patent in texts["patents-search-ipc"] and "Quality score" in texts["patent"]
    holders = views["pool"]["holders"]
    assert all(holder in texts["pool"] for holder in holders) and holders
    assert views["deal"]["id"] in texts["deals"]


def test_cluster_page_shows_every_node_at_the_agreed_height(tab: Page,
                                                            story_cluster: dict[str, Any]) -> None:
    tab.open("#/cluster")
    rows = tab.page.locator("#nodes tbody tr")
    assert rows.count() == 4
    heights = [int(rows.nth(i).locator("td").nth(3).inner_text().replace(",", ""))
               for i in range(4)]
    assert min(heights) >= story_cluster["height"], heights
    assert tab.errors == []


def test_verify_accepts_a_real_proof_and_refuses_tampered_ones(tab: Page,
                                                               story_cluster: dict[str, Any]
                                                               ) -> None:
    url = story_cluster["url"]
    tx_id = first_tx_of(url, 5)
    tab.open(f"#/tx/{tx_id}")
    tab.page.click("#verify")
    verdict = tab.page.wait_for_selector("[data-verdict]", timeout=PAGE_TIMEOUT_MS)
    assert verdict.get_attribute("data-verdict") == "valid", verdict.inner_text()
    assert tx_id[:16] in verdict.inner_text() and "height 5" in verdict.inner_text()
    tab.shot("tx-verified")

    proof = http_json(f"{url}/v1/proof/tx/{tx_id}")
    moved_in_time = copy.deepcopy(proof)
    moved_in_time["header"]["timestamp_ms"] += 1
    forged_signature = copy.deepcopy(proof)
    signatures = (forged_signature.get("certificate") or forged_signature["commit"])["signatures"]
    for item in signatures:  # every signer's signature broken: no quorum can remain
        item["sig"] = ("0" if item["sig"][0] != "0" else "1") + item["sig"][1:]
    tab.page.click("details summary")
    tampered_cases = {"header": moved_in_time, "signatures": forged_signature}
    if "receipt_path" in proof:  # format 2 certifies the receipt: claiming another outcome fails
        claims_rejected = copy.deepcopy(proof)
        claims_rejected["receipt"].update(status="rejected", code="InsufficientFunds")
        tampered_cases["receipt"] = claims_rejected
    for name, tampered in tampered_cases.items():
        tab.page.fill("#proof-json", json.dumps(tampered))
        tab.page.click("#verify-pasted")
        tab.page.wait_for_selector("[data-verdict=invalid]", timeout=PAGE_TIMEOUT_MS)
        assert "invalid" in tab.page.inner_text("#verdict"), name
        tab.shot(f"tx-tampered-{name}")
    tab.page.fill("#proof-json", json.dumps(proof))  # the untouched proof still passes
    tab.page.click("#verify-pasted")
    tab.page.wait_for_selector("[data-verdict=valid]", timeout=PAGE_TIMEOUT_MS)
    assert tab.errors == []


def test_a_new_transaction_appears_on_the_live_view_within_2s(tab: Page,
                                                             story_cluster: dict[str, Any],
                                                             capsys) -> None:
    cluster: Cluster = story_cluster["cluster"]
    tab.open("#/cluster")
    tab.page.wait_for_selector("#live .badge.good", timeout=PAGE_TIMEOUT_MS)  # stream open
    key = cluster.client_key("north-university")
    tx = client.sign(key, cluster.chain_id, cluster.nonces.reserve(client.sender_hex(key)),
                     "token.transfer", {"to": "acme-electronics", "amount": 1})
    started = time.monotonic()
    answer = http_json(f"{story_cluster['url']}/v1/tx", tx.to_json())
    assert answer["id"] == tx.id
    tab.page.wait_for_selector(f"#live [data-tx='{tx.id}']", timeout=LIVE_DEADLINE_S * 1000)
    shown_after_s = time.monotonic() - started
    tab.shot("cluster-live")
    with capsys.disabled():
        print(f"\nexplorer live view: tx shown {shown_after_s:.3f} s after it was sent")
    assert shown_after_s <= LIVE_DEADLINE_S, shown_after_s
    assert tab.errors == []


def test_the_deal_page_shows_the_state_apis_numbers(tab: Page,
                                                   story_cluster: dict[str, Any]) -> None:
    url, deal_id = story_cluster["url"], story_cluster["views"]["deal"]["id"]
    deal = http_json(f"{url}/v1/state/deals/{deal_id}")
    reports = http_json(f"{url}/v1/state/deal_reports/{deal_id}")["result"]
    tab.open(f"#/deal/{deal_id}")
    fields = ["principal", "coupon_bps", "sold", "balance", "interest_unpaid", "written_down",
              "written_back"]
    for tranche in deal["tranches"]:
        cells = tab.page.locator(f"#tranches tr[data-tranche='{tranche['name']}'] td[data-value]")
        assert [int(cells.nth(i).inner_text().replace(",", "")) for i in range(cells.count())] \
            == [tranche[f] for f in fields], tranche["name"]
    assert len(reports) >= 2
    for report in reports:
        rows = tab.page.locator(f"table.steps[data-period='{report['period']}'] tbody tr")
        assert rows.count() == len(report["steps"])
        for i, step in enumerate(report["steps"]):
            for field in ("due", "paid", "unpaid"):
                cell = rows.nth(i).locator(f"td[data-field='{field}']")
                assert int(cell.inner_text().replace(",", "")) == step[field], (report["period"], i)
    assert tab.errors == []


def test_a_patents_state_proof_verifies_in_the_browser(tab: Page,
                                                      story_cluster: dict[str, Any]) -> None:
    url, patent = story_cluster["url"], workload.POOLED[0].id
    tab.open(f"#/patent/{patent}")
    tab.page.click("#fetch-state-proof")
    verdict = tab.page.wait_for_selector("#state-proof [data-verdict]", timeout=PAGE_TIMEOUT_MS)
    assert verdict.get_attribute("data-verdict") == "valid", verdict.inner_text()
    assert f"key patent/{patent} holds" in verdict.inner_text()
    assert patent in tab.page.inner_text("#state-proof pre")  # the certified record itself
    tab.shot("patent-state-proof")
    tab.page.click("#load-history")
    history = tab.page.wait_for_selector("#history-events", timeout=PAGE_TIMEOUT_MS).inner_text()
    for name in ("registry.deposited", "registry.status_changed", "registry.cited",
                 "pool.joined"):  # its whole life in the story, from the chain's own events
        assert name in history, name
    assert history.index("registry.deposited") < history.index("registry.status_changed")
    tab.shot("patent-history")

    proof = http_json(f"{url}/v1/proof/state/patent/{patent}")
    other_value = copy.deepcopy(proof)
    other_value["leaf"]["value"] = http_json(
        f"{url}/v1/proof/state/patent/{workload.POOLED[1].id}")["leaf"]["value"]
    absent = http_json(f"{url}/v1/proof/state/patent/XX:0000")
    tab.open(f"#/tx/{first_tx_of(url, 3)}")
    tab.page.click("details summary")
    tab.page.fill("#proof-json", json.dumps(other_value))
    tab.page.click("#verify-pasted")
    verdict = tab.page.wait_for_selector("[data-verdict=invalid]", timeout=PAGE_TIMEOUT_MS)
    assert "does not reach state_root" in verdict.inner_text()
    tab.page.fill("#proof-json", json.dumps(absent))
    tab.page.click("#verify-pasted")
    verdict = tab.page.wait_for_selector("[data-verdict=valid]", timeout=PAGE_TIMEOUT_MS)
    assert "key patent/XX:0000 does not exist" in verdict.inner_text()
    assert tab.errors == []


def test_a_stopped_node_shows_as_unreachable_and_the_rest_as_ok(tab: Page,
                                                                story_cluster: dict[str, Any]
                                                                ) -> None:
    """Last in the module: it stops a node. The page's own requests to it fail (and the
    browser logs that), which is the point here, so console errors are not checked."""
    cluster: Cluster = story_cluster["cluster"]
    cluster.kill(3)
    tab.open("#/cluster")
    rows = tab.page.locator("#nodes tbody tr")
    assert "unreachable" in rows.nth(3).inner_text()
    assert all("ok" in rows.nth(i).locator("td").nth(2).inner_text() for i in range(3))
    tab.shot("cluster-node3-down")
