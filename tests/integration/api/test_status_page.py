"""The status page in headless Chromium: after its script ran, the pipeline graph shows every
source, topic and sink, the failed connector stands out with its error, and the screenshot
is a rendered page (many colours, the failure red among them, the charts' series lines), all
without any network beyond the hub."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.api.server import ApiServer
from tests.fixtures.browser import Chromium, colours
from tests.integration.api.conftest import RunningHub, open_api, wait_for

FAILED_RED = (0xC6, 0x28, 0x28)  # --bad in style.css
APP_JS = Path(__file__).resolve().parents[3] / "hub" / "static" / "app.js"


def chart_palette() -> set[tuple[int, int, int]]:
    """The colours app.js draws chart series in (none of them is used elsewhere on the page)."""
    match = re.search(r"const COLORS = \[([^\]]*)\]", APP_JS.read_text())
    assert match, "app.js has no COLORS palette"
    return {tuple(bytes.fromhex(c)) for c in re.findall(r'"#([0-9a-f]{6})"', match.group(1))}


@pytest.fixture
def page_url(running_hub: RunningHub) -> Iterator[str]:
    # Headless Chromium cannot type the token into the page: a second, token-free API on
    # loopback serves the same hub.
    api: ApiServer = open_api(running_hub.hub, "127.0.0.1:0", None)
    running_hub.insert(1, 25)
    wait_for(lambda: running_hub.hub.worker("ghost").status.state.value == "FAILED",
             what="ghost FAILED")
    wait_for(lambda: running_hub.hub.worker("files").status.records >= 25, what="files at 25")
    try:
        yield api.url + "/"
    finally:
        api.stop()


def test_the_page_draws_the_pipeline_graph_and_the_failure(
    chromium: Chromium, page_url: str
) -> None:
    dom = chromium.dump_dom(page_url)
    nodes = dict(re.findall(r'<g class="node [^"]*" data-name="([^"]+)" data-kind="(\w+)"', dom))
    assert nodes == {"legacy": "source", "ghost": "source", "legacy.orders": "topic",
                     "files": "sink", "warehouse": "sink", "search": "sink"}
    assert 'data-name="ghost" data-kind="source" data-state="FAILED"' in dom
    assert re.search(r'data-from="legacy" data-to="legacy.orders"', dom)
    assert re.search(r'data-from="legacy.orders" data-to="files"', dom)
    assert "Needs attention" in dom
    assert "source ghost is FAILED" in dom
    assert "does not exist" in dom
    assert '<tr data-name="files">' in dom


def test_the_screenshot_is_a_rendered_page_with_the_failure_in_red(
    chromium: Chromium, page_url: str, tmp_path: Path
) -> None:
    shot = chromium.screenshot(page_url, tmp_path / "status.png")
    counted = colours(shot)
    assert len(counted) > 50, "the page looks blank"
    assert counted.get(FAILED_RED, 0) > 100, "the failed connector does not stand out in red"
    # the lag and throughput charts drew their series (2 px lines across each canvas)
    lines = sum(n for colour, n in counted.items() if colour in chart_palette())
    assert lines > 1200, f"the charts drew no series lines ({lines} pixels in their colours)"


def test_a_hub_with_a_token_gets_a_token_prompt_and_no_data(
    chromium: Chromium, running_hub: RunningHub
) -> None:
    dom = chromium.dump_dom(running_hub.url + "/", budget_ms=3000)
    assert re.search(r'<form id="login">', dom), "the token form is not shown"
    assert re.search(r'<main id="main" hidden', dom)
    assert 'data-name="legacy"' not in dom
