"""What the real-browser tests share: one app server and one Chromium per test module, and waiting for a page."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from explorer.devtools.appserver import PAGE_IDLE_JS, AppServer, launch_chromium

IDLE = PAGE_IDLE_JS


def wait_idle(page, timeout_ms: int = 150_000, settle_s: float = 0.5) -> None:
    """The script run is over and nothing on the page is stale (left over from an earlier run)."""
    page.wait_for_function(IDLE, timeout=timeout_ms, polling=200)
    time.sleep(settle_s)  # a rerun triggered by the last message starts within a few ms: check once more
    page.wait_for_function(IDLE, timeout=timeout_ms, polling=200)


def server_fixture(name: str):
    """A module-scoped fixture: one app server on 127.0.0.1 for the module's tests, its log in a temp folder."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory):
        log = tmp_path_factory.mktemp(name) / "streamlit.log"
        with AppServer(log_path=log) as srv:
            srv.wait_healthy(120)
            yield srv

    return server


def browser_fixture(shots: Path):
    """A module-scoped fixture: one headless Debian Chromium; ``shots`` is created for the screenshots."""

    @pytest.fixture(scope="module")
    def browser():
        from playwright.sync_api import sync_playwright

        shots.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            chromium = launch_chromium(pw)
            try:
                yield chromium
            finally:
                chromium.close()

    return browser
