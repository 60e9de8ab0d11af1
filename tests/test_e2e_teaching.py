"""A fresh server teaches from the first click (issue 13), in a real browser.

A new server, a new session, no choices made: the first analysis page (Feature maps) shows the built-in
trained teaching network's prediction for the default sample, and it is right (the star sample is a star);
the weights note says built-in trained weights, never ImageNet or an error. A screenshot of what a class sees
is saved to ``artifacts/screenshots/first-screen-feature-maps.png``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer.core import translate
from explorer.devtools.appserver import AppServer, chromium_available, launch_chromium

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"
TIMEOUT_MS = 150_000

_reason = chromium_available()
if _reason:
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason=f"real-browser test needs Chromium and Playwright: {_reason}")]


def test_fresh_server_shows_a_correct_prediction_on_the_first_analysis_page(tmp_path):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with AppServer(log_path=tmp_path / "server.log") as server, sync_playwright() as pw:
        server.wait_healthy(120)
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{server.url}/feature_maps", wait_until="domcontentloaded")
            page.locator('[data-testid="stMain"] h1').filter(has_text=translate("maps.title", "en")).wait_for(
                timeout=TIMEOUT_MS)
            # The top-5 bar chart: plotly draws its bars and labels into an SVG once the analysis is done.
            page.wait_for_function(
                """() => { const svg = document.querySelector('[data-testid="stPlotlyChart"] .main-svg');
                           return svg !== null && svg.textContent.includes('star (4)'); }""",
                timeout=TIMEOUT_MS, polling=250)
            bars = page.locator('[data-testid="stPlotlyChart"]').first
            labels = bars.locator("g.ytick text").all_text_contents()
            values = bars.locator("g.point").count()
            body = page.inner_text("body")
            page.screenshot(path=str(SHOTS / "first-screen-feature-maps.png"))
        finally:
            browser.close()
    assert labels and labels[-1] == "star (4)", labels  # the highest bar is drawn last (at the top)
    assert values >= 2
    assert "built-in trained weights" in body and "ImageNet" not in body.split("Feature maps", 1)[-1][:600]
    assert "URLError" not in body and "Errno" not in body and not page_has_exception(body)


def page_has_exception(body: str) -> bool:
    return "Traceback" in body
