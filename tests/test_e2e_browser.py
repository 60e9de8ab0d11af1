"""The real app in a real browser: Debian's Chromium driven by Playwright against ``streamlit run`` on 127.0.0.1.

Uploads an image through the sidebar's real file input, visits every page through the sidebar's navigation
links, checks that no exception box appears and that each page's key figures render, switches to Korean with
``?lang=ko``, and saves a screenshot of every page to ``artifacts/screenshots/`` (git-ignored).

Skipped only when /usr/bin/chromium or the playwright package is missing (``.ci/run`` installs both).
"""
from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
from browser_support import browser_fixture, wait_idle
from PIL import Image, ImageDraw

from explorer.devtools.appserver import AppServer, chromium_available
from explorer.core import translate
from explorer.imaging import DOWNLOAD_MIN_SIDE

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"
PAGE_TIMEOUT_MS = 150_000
VIEWPORT = {"width": 1400, "height": 3200}  # tall: the page scrolls inside stMain, full_page misses it
UPLOAD_SIZE = (150, 110)  # (w, h): unlike every sample image, so the caption proves the upload is used
HANGUL = re.compile(r"[\uac00-\ud7a3]")

# Per URL path (a page's file name): what must be drawn there. Pages not listed need any one figure.
EXPECTED: dict[str, dict[str, int]] = {
    "home": {"stImage": 2},
    "architecture": {"stDataFrame": 1, "stPlotlyChart": 1, "stMetric": 5},
    "receptive_field": {"stPlotlyChart": 1},
    "conv_arithmetic": {"stPlotlyChart": 1},
    "feature_maps": {"stPlotlyChart": 1, "stMetric": 5, "stImage": 1},
    "gradcam": {"stPlotlyChart": 1, "stImage": 1},
    "filters": {"stPlotlyChart": 1, "stImage": 1},
    "augmentation": {"stImage": 1},
    "compare": {"stPlotlyChart": 1},
    "papers": {"stDataFrame": 1},
}
FIGURES = ("stPlotlyChart", "stDataFrame", "stImage", "stMetric", "stVegaLiteChart", "stTable", "stDataFrameGlideDataEditor")

_reason = chromium_available()
if _reason:
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason=f"real-browser test needs Chromium and Playwright: {_reason}")]


def _upload_png(path: Path) -> Path:
    """A picture no sample looks like: a red disc and a blue bar on noise, UPLOAD_SIZE pixels."""
    rng = np.random.default_rng(3)
    img = Image.fromarray((rng.random((UPLOAD_SIZE[1], UPLOAD_SIZE[0], 3)) * 80 + 90).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.ellipse([20, 15, 80, 75], fill=(220, 30, 30))
    draw.rectangle([95, 10, 130, 100], fill=(30, 60, 220))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def _wait_idle(page, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    wait_idle(page, timeout_ms, settle_s=0.3)


def _open(page, url: str, title: str) -> None:
    """Go to ``url`` and wait until the page titled ``title`` has finished its script run."""
    page.goto(url, wait_until="domcontentloaded")
    page.locator('[data-testid="stMain"] h1').filter(has_text=title).wait_for(timeout=PAGE_TIMEOUT_MS)
    _wait_idle(page)


def _exceptions(page) -> list[str]:
    return [text[:300] for text in page.locator('[data-testid="stException"]').all_inner_texts()]


def _wait_for_count(page, selector: str, n: int, timeout_ms: int = 30_000) -> None:
    """Until ``selector`` matches at least ``n`` elements, or the time-out (the caller then asserts).

    Streamlit loads an element's component lazily: after the script run is over, a chart or a download
    button can still be a placeholder without its test id for a moment on a busy machine."""
    try:
        page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[selector, n],
                               timeout=timeout_ms, polling=100)
    except Exception:  # noqa: BLE001 - the caller's assertion reports the count
        pass


def _check_figures(page, slug: str) -> dict[str, int]:
    want = EXPECTED.get(slug)
    for tid, n in (want or {}).items():
        _wait_for_count(page, f'[data-testid="{tid}"]', n)
    if want is None:
        _wait_for_count(page, ", ".join(f'[data-testid="{tid}"]' for tid in FIGURES), 1)
    counts = {tid: page.locator(f'[data-testid="{tid}"]').count() for tid in FIGURES}
    if want is None:
        assert sum(counts.values()) > 0, f"{slug}: no figure, table or image at all"
    else:
        for tid, n in want.items():
            assert counts.get(tid, 0) >= n, f"{slug}: expected {n}× {tid}, found {counts.get(tid, 0)}"
    if counts["stPlotlyChart"]:
        # Plotly draws asynchronously in the browser: every chart must end with its SVG.
        page.wait_for_function(
            """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                     .every(el => el.querySelector('.main-svg') !== null)""", timeout=60_000)
    return counts


def _slug(url: str) -> str:
    path = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return path if not re.fullmatch(r"127\.0\.0\.1:\d+", path) else "home"


@pytest.fixture(scope="module", autouse=True)
def fresh_screenshots():
    """Screenshots of this run only (a page removed since the last run leaves no stale picture)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    srv = AppServer(log_path=log).start()
    try:
        srv.wait_healthy(120)
        yield srv
    finally:
        srv.stop()
        text = log.read_text(errors="replace") if log.exists() else ""
        tracebacks = [line for line in text.splitlines() if "Traceback" in line]
        if tracebacks:  # the server log is the only place where a hidden error shows up
            print(text[-4000:])


browser = browser_fixture(SHOTS)


def test_a_cold_server_opens_a_deep_link_with_sidebar_and_no_page_not_found(browser, tmp_path) -> None:
    """The first session after the server starts opens /gradcam directly (a link the lecturer shared).

    Before any session has called st.navigation, Streamlit resolves the URL against pages/ as a legacy
    multipage folder: without ``run_through_app`` that first session saw a "Page not found" dialog (or the
    page without app.py's sidebar). A server of its own, so this session is surely its first.
    """
    with AppServer(log_path=tmp_path / "cold.log") as cold:
        cold.wait_healthy(120)
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        try:
            _open(page, f"{cold.url}/gradcam", translate("cam.title", "en"))
            page.screenshot(path=str(SHOTS / "cold-deep-link-gradcam.png"))
            assert "Page not found" not in page.inner_text("body")
            assert not _exceptions(page)
            assert page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]').count() == 1
            assert page.locator('[data-testid="stSidebarNavLink"]').count() >= 5
            assert page.url.split("?", 1)[0].rstrip("/").endswith("/gradcam")  # the query holds the view (ui.links)
            _check_figures(page, "gradcam")
        finally:
            context.close()


def test_every_page_with_an_uploaded_image(server, browser, tmp_path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    upload = _upload_png(tmp_path / "student.png")
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        _open(page, server.url, translate("home.title", "en"))

        page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
            str(upload))
        caption = translate("home.original", "en", w=UPLOAD_SIZE[0], h=UPLOAD_SIZE[1])
        page.get_by_text(caption).wait_for(timeout=PAGE_TIMEOUT_MS)  # the pages now use the uploaded image
        _wait_idle(page)
        assert not _exceptions(page)

        links = page.locator('[data-testid="stSidebarNavLink"]')
        hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
        assert len(hrefs) >= 5, hrefs
        visited = []
        for i, href in enumerate(hrefs):
            slug = _slug(href) or "home"
            started = time.perf_counter()
            page.locator(f'[data-testid="stSidebarNavLink"][href="{href}"]').click()
            if slug != "home":
                page.wait_for_url(re.compile(rf"/{re.escape(slug)}(\?.*)?$"), timeout=PAGE_TIMEOUT_MS)
            _wait_idle(page)
            errors = _exceptions(page)
            page.screenshot(path=str(SHOTS / f"{i:02d}-{slug}.png"))
            assert not errors, f"{slug}: exception shown: {errors}"
            counts = _check_figures(page, slug)
            # The upload survives navigation (the sidebar's uploader belongs to the session).
            assert page.locator('[data-testid="stSidebar"]').get_by_text("student.png").count() == 1, slug
            visited.append((slug, round(time.perf_counter() - started, 1), counts))
        print("pages visited (slug, seconds, figures):", visited)
        assert {"feature_maps", "gradcam"} <= {v[0] for v in visited}
    finally:
        context.close()


def test_every_download_of_the_analysis_pages_in_a_row(server, browser) -> None:
    """A student clicks every download button, one right after the other: each file arrives and is a
    picture of the expected size (a click used to rerun the page and revoke the next button's file)."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    try:
        for slug in ("feature_maps", "gradcam"):
            page.goto(f"{server.url}/{slug}", wait_until="domcontentloaded")
            _wait_idle(page)
            buttons = page.locator('[data-testid="stDownloadButton"] button')
            _wait_for_count(page, '[data-testid="stDownloadButton"] button', 2)
            assert buttons.count() >= 2, slug
            for i in range(buttons.count()):
                with page.expect_download(timeout=PAGE_TIMEOUT_MS) as download:
                    buttons.nth(i).click()
                assert download.value.failure() is None, (slug, i)
                name = download.value.suggested_filename
                picture = Image.open(download.value.path())
                picture.load()
                assert name.endswith(".png") and picture.format == "PNG", (slug, name)
                if "overlay" in name or "gradcam" in name:  # drawn over the square input as the network saw it,
                    # enlarged by whole pixels to a usable size (a 64×64 input becomes 16×: 1024×1024)
                    side = picture.size[0]
                    assert picture.size[1] == side and side >= DOWNLOAD_MIN_SIDE, (name, picture.size)
    finally:
        context.close()


def test_korean_interface(server, browser) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORT, locale="ko-KR")
    page = context.new_page()
    try:
        _open(page, f"{server.url}/?lang=ko", translate("home.title", "ko"))
        assert not _exceptions(page)
        nav = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
        assert translate("nav.feature_maps", "ko") in nav, nav
        assert any(HANGUL.search(text) for text in nav)
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        assert translate("sidebar.language", "ko") in sidebar
        page.screenshot(path=str(SHOTS / "ko-00-home.png"))

        # The language is remembered while moving between pages.
        page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=translate("nav.feature_maps", "ko")).click()
        page.wait_for_url(re.compile(r"/feature_maps"), timeout=PAGE_TIMEOUT_MS)
        _wait_idle(page)
        assert not _exceptions(page)
        main = page.locator('[data-testid="stMain"]').inner_text()
        assert HANGUL.search(main), "the feature-map page is not in Korean"
        title = translate("maps.title", "ko")
        if title != "maps.title":
            assert page.locator('[data-testid="stMain"] h1').first.inner_text().strip() == title
        _check_figures(page, "feature_maps")
        page.screenshot(path=str(SHOTS / "ko-01-feature_maps.png"))
    finally:
        context.close()
