"""A class opens the lecturer's link at the same moment on a server that has just started (a new replica after a
deploy or a restart): every browser gets the app around the page and the link's view (review 14).

Before the fix only the first visitor's run left Streamlit's legacy ``pages/`` mode; the others, already started in
that mode, ran the page file on its own: no navigation of the app, no share tool, and the link's view ignored.
Skipped only when /usr/bin/chromium or playwright is missing (``.ci/run`` installs both).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from explorer.core import translate
from explorer.devtools.appserver import PAGE_IDLE_JS, AppServer, chromium_available, launch_chromium

pytestmark = pytest.mark.browser
_reason = chromium_available()
if _reason:
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason=f"real-browser test needs Chromium: {_reason}")]

LINK = "/gradcam?model=mnist_cnn&weights=none&input=28x28&layer=conv1&class=3&lang=ko"
VISITORS = 3


def test_simultaneous_deep_links_on_a_fresh_server_all_open_inside_the_app(tmp_path):
    from playwright.sync_api import sync_playwright

    with AppServer(env={"EXPLORER_NO_WARM_UP": "1"}, log_path=tmp_path / "streamlit.log") as server:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                pages = [browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
                         for _ in range(VISITORS)]
                server.wait_healthy(120)
                for page in pages:  # all before any of them has finished its first run
                    page.goto(server.url + LINK, wait_until="commit", timeout=150_000)
                for i, page in enumerate(pages):
                    page.wait_for_function(PAGE_IDLE_JS, timeout=180_000, polling=200)
                    time.sleep(0.5)
                    page.wait_for_function(PAGE_IDLE_JS, timeout=180_000, polling=200)
                    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
                    entries = [line.strip() for line in sidebar.splitlines()]
                    assert translate("links.share", "ko") in sidebar, f"visitor {i}: no share tool (page outside the app)"
                    assert "app" not in entries and "gradcam" not in entries, f"visitor {i}: Streamlit's own page list"
                    assert translate("nav.gradcam", "ko") in sidebar
                    # the link's view was applied (model, layer, class) and the address bar rewritten by the app
                    assert "model=mnist_cnn" in page.url and "layer=conv1" in page.url and "class=3" in page.url
                    assert "sample=" in page.url, f"visitor {i}: the app never rewrote the address bar"
                    assert page.locator('[data-testid="stException"]').count() == 0
            finally:
                browser.close()
    log = (tmp_path / "streamlit.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
