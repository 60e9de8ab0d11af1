"""Real-browser screenshots of the Architecture page's diagram for the README (docs/diagram_*.png).

    python scripts/diagram_screenshots.py            # googlenet and resnet18 at block level (inception3a / layer2.0 opened), 1280 px wide

Starts the app on 127.0.0.1, picks each model in the sidebar as a user would, sets the diagram to blocks at depth 1
and saves the diagram's part of the page.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.devtools.appserver import AppServer, launch_chromium  # noqa: E402

IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning'
        && document.querySelectorAll('[data-stale="true"]').length === 0;
}"""


def wait_idle(page) -> None:
    for _ in range(2):  # a rerun triggered by the last message starts within a few ms: check twice
        page.wait_for_function(IDLE, timeout=180_000, polling=200)
        time.sleep(0.5)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` by typing it, as a user would."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.click()
    page.keyboard.type(option)
    page.locator('[role="option"]').filter(has_text=option).first.click()
    wait_idle(page)


def open_block(page, block: str) -> None:
    """Add ``block`` to the "Open blocks" multiselect."""
    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Open blocks").first
    box.click()
    page.keyboard.type(block)
    page.locator('[role="option"]').filter(has_text=block).first.click()
    page.keyboard.press("Escape")
    wait_idle(page)


def main() -> int:
    from playwright.sync_api import sync_playwright

    out = ROOT / "docs"
    with AppServer() as server, sync_playwright() as playwright:
        server.wait_healthy()
        browser = launch_chromium(playwright)
        # 1280 wide like a projector; tall, because Streamlit scrolls inside its main element and a screenshot
        # shows only what is painted on screen.
        page = browser.new_page(viewport={"width": 1280, "height": 2600})
        page.goto(f"{server.url}/architecture", wait_until="domcontentloaded")
        wait_idle(page)
        # At block level, one block opened: an inception module's four branches, a residual block's shortcut.
        for model, blocks in (("googlenet", ["inception3a"]), ("resnet18", ["layer2", "layer2.0"])):
            choose(page, "Model", model)
            choose(page, "Detail", "Blocks at depth 1")
            for block in blocks:
                open_block(page, block)
            chart = page.locator('[data-testid="stGraphVizChart"]').first
            chart.wait_for(timeout=120_000)
            time.sleep(1.0)  # the browser lays the graph out after the element appears
            section = page.locator('[data-testid="stVerticalBlock"]').filter(has=chart).last
            section.screenshot(path=str(out / f"diagram_{model}.png"))
            print(f"wrote docs/diagram_{model}.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
