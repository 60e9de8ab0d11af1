"""A real app server on 127.0.0.1 and a headless Chromium, for the benchmark, the load test and the
browser test (no Streamlit import: the server runs in its own process)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@dataclass
class AppStart:
    health_s: float | None = None  # ``streamlit run`` → /_stcore/health answers "ok"
    title_s: float | None = None  # → the first page's title is visible in the browser
    complete_s: float | None = None  # → the first page has drawn its model-dependent content
    warm_session_s: float | None = None  # a new browser session's first page, complete, on the now warm server
    warm_up_s: float | None = None  # a second start: ``streamlit run`` → its log says the warm-up is over
    warmed_first_s: float | None = None  # → then the first visitor opens the app: seconds to the page complete
    restart_s: float | None = None  # a restart (Streamlit's disk cache kept from the first start) → page complete
    error: str = ""


# The app server's log lines when its own warm-up is over (ui.warmup's, copied: explorer/ does not import ui/).
WARM_UP_DONE = "explorer warm-up done"
WARM_UP_FAILED = "explorer warm-up failed"


# ------------------------------------------------------------------------------ reading a Streamlit page
# True once the script run is over and nothing on the page is stale (left over from an earlier run).
PAGE_IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning'
        && document.querySelector('[data-testid="stMain"] h1') !== null
        && document.querySelectorAll('[data-stale="true"]').length === 0;
}"""
# An init script: every address-bar change with the page's own clock (ms since the epoch). Streamlit rewrites the
# URL at the end of each run (history.replaceState / pushState), so the first URL naming a view marks when the
# page shows it.
URL_LOG_JS = """
window.__urlLog = [];
for (const name of ['replaceState', 'pushState']) {
    const original = history[name].bind(history);
    history[name] = (...args) => { const r = original(...args);
        window.__urlLog.push([Date.now(), location.href]); return r; };
}
"""


def first_url_change(page: Any, pattern: str, since_ms: float) -> float | None:
    """The page-clock time (ms) its address bar first matched ``pattern`` after ``since_ms`` (``URL_LOG_JS``)."""
    return page.evaluate("""([pattern, since]) => {
        const re = new RegExp(pattern);
        const hit = (window.__urlLog || []).find(([t, href]) => t >= since && re.test(href));
        return hit ? hit[0] : null; }""", [pattern, since_ms])


def pick_option(page: Any, select_box: Any, typed: str) -> float:
    """Type ``typed`` into a Streamlit select box (its locator) and click the first matching option; returns the
    time of the click (ms since the epoch)."""
    box = select_box.locator('input[role="combobox"]')
    box.click()
    box.fill(typed)
    option = page.locator('[role="option"]').filter(has_text=typed).first
    option.wait_for()
    clicked = time.time() * 1000
    option.click()
    return clicked


# ------------------------------------------------------------------------------------ the analysis
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppServer:
    """``streamlit run app.py`` on 127.0.0.1 at a free port, stopped (its process group) on exit.

    ``env`` adds variables (e.g. ``GLIBC_TUNABLES``); output goes to ``log_path`` (or is discarded).
    """

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None, log_path: Path | None = None,
                 extra_args: Sequence[str] = (), script: Path | None = None) -> None:
        self.script = script or REPO_ROOT / "app.py"
        self.port = port or free_port()
        self.env = env or {}
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> "AppServer":
        cmd = [sys.executable, "-m", "streamlit", "run", str(self.script),
               "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(self.port),
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *self.extra_args]
        env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **self.env}
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        if out is not subprocess.DEVNULL:
            out.close()
        return self

    def wait_healthy(self, timeout: float = 90.0) -> float:
        """Seconds from start until ``/_stcore/health`` answers ``ok``."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the app server exited with code {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        return time.perf_counter() - self.started_at
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the app server did not answer /_stcore/health within {timeout:.0f} s")

    def wait_warmed_up(self, timeout: float = 120.0) -> float:
        """Seconds from start until the server's log (``log_path``) says the app's warm-up is over; a failed
        warm-up raises ``RuntimeError`` with its line."""
        if self.log_path is None:
            raise ValueError("the warm-up is read from the server's log: start the server with a log_path")
        deadline = time.perf_counter() + timeout
        while WARM_UP_DONE not in (text := self.log_path.read_text(errors="replace")):
            if WARM_UP_FAILED in text:
                raise RuntimeError(text[text.index(WARM_UP_FAILED):].splitlines()[0])
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no {WARM_UP_DONE!r} line in the server log within {timeout:.0f} s")
            time.sleep(0.05)
        return time.perf_counter() - self.started_at

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> "AppServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def chromium_available() -> str | None:
    """None when Playwright and Debian's Chromium are there, else the reason they are not."""
    if not Path(CHROMIUM_PATH).exists():
        return f"{CHROMIUM_PATH} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


def visit_seconds(browser: Any, url: str, text: str, timeout: float = 120.0) -> float:
    """Seconds from opening ``url`` in a new browser context (a new Streamlit session, nothing cached) until
    ``text`` is on the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    try:
        page = context.new_page()
        opened = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=timeout * 1000)
        page.get_by_text(text).first.wait_for(timeout=timeout * 1000)
        return time.perf_counter() - opened
    finally:
        context.close()


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium through Playwright (its own browser download cannot work offline)."""
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS)


def _proc_status_mb(pid: int, field: str) -> float:
    """One memory field of /proc/PID/status (e.g. ``VmRSS``) in MB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB."""
    return _proc_status_mb(pid, "VmRSS")


def hwm_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of ``pid`` in MB."""
    return _proc_status_mb(pid, "VmHWM")


# The floor under the app's start: Streamlit's own server and front end plus the one import every page needs.
FLOOR_SCRIPT = """import streamlit as st
import torch

st.title("Floor")
st.write(f"torch {torch.__version__} is imported")
"""


def kept_caches_env() -> dict[str, str]:
    """The caches a server started in another home folder should still find where this user's are: downloaded
    weights (``$TORCH_HOME``), bundled data sets (``$EXPLORER_DATA_DIR``) and matplotlib's settings, so that only
    Streamlit's own ``~/.streamlit`` starts empty."""
    from explorer.data import data_root

    home = Path.home()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return {"TORCH_HOME": os.environ.get("TORCH_HOME") or str(cache / "torch"),
            "EXPLORER_DATA_DIR": str(data_root()),
            "XDG_CACHE_HOME": str(cache),
            "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR") or str(home / ".config" / "matplotlib")}


def measure_app_start(timeout: float = 120.0, env: dict[str, str] | None = None, floor: bool = False,
                      warmed: bool = False, restart: bool = False) -> AppStart:
    """``streamlit run`` → health → the home page's title → the home page complete, in seconds, the browser
    opening the app as soon as the server answers.

    ``floor``: the same for :data:`FLOOR_SCRIPT` (a bare Streamlit page that imports torch) instead of the app.
    ``warmed``: also start the app a second time and open it only once the server's log says its warm-up is
    over (a lecturer starts the server before class): ``warm_up_s`` and ``warmed_first_s``.
    ``restart``: the app's servers get a new, empty home folder (``$HOME``: no ``~/.streamlit/cache`` from earlier
    runs, so the first start is a first start on this machine), and one more start with the same folder measures a
    restart, the browser opening at once (``restart_s``: what Streamlit's disk cache kept is read, not measured).
    The browser is launched *before* the server starts, so its own start-up is not counted.
    """
    import tempfile

    from explorer.core import translate

    result = AppStart()
    reason = chromium_available()
    title, complete = ("Floor", "is imported") if floor else (translate("home.title", "en"),
                                                               translate("home.input_title", "en"))
    with contextlib.ExitStack() as stack:
        if restart and not floor:
            env = {**(env or {}), **kept_caches_env(),
                   "HOME": stack.enter_context(tempfile.TemporaryDirectory(prefix="explorer-home-"))}
        script = None
        if floor:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="explorer-floor-")))
            script = folder / "floor.py"
            script.write_text(FLOOR_SCRIPT)
        page = None
        if reason is None:
            from playwright.sync_api import sync_playwright

            pw = stack.enter_context(sync_playwright())
            browser = launch_chromium(pw)
            stack.callback(browser.close)
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
        else:
            result.error = f"browser part skipped: {reason}"
        server = stack.enter_context(AppServer(env=env, script=script))
        try:
            result.health_s = server.wait_healthy(timeout)
            if page is not None:
                page.goto(server.url, wait_until="commit", timeout=timeout * 1000)
                page.locator("[data-testid='stMain'] h1").filter(has_text=title).first.wait_for(timeout=timeout * 1000)
                result.title_s = time.perf_counter() - server.started_at
                page.get_by_text(complete).first.wait_for(timeout=timeout * 1000)
                result.complete_s = time.perf_counter() - server.started_at
                # A second student arrives: a new browser context is a new Streamlit session.
                result.warm_session_s = visit_seconds(browser, server.url, complete, timeout)
        except Exception as exc:  # report what was measured, and why the rest was not
            result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if warmed and not floor and page is not None and not result.error:
            # The first server and its pages gone first: no background load on the second start.
            server.stop()
            page.context.close()
            try:
                _measure_warmed_visit(browser, result, complete, timeout, env)
            except Exception as exc:
                result.error = f"warmed start: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if restart and not floor and page is not None and not result.error:
            server.stop()
            try:
                with AppServer(env=env) as again:
                    again.wait_healthy(timeout)
                    opened = time.perf_counter()
                    result.restart_s = opened - again.started_at + visit_seconds(browser, again.url, complete, timeout)
            except Exception as exc:
                result.error = f"restart: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return result


def _measure_warmed_visit(browser: Any, result: AppStart, complete: str, timeout: float,
                          env: dict[str, str] | None) -> None:
    """A fresh server; wait for its :data:`WARM_UP_DONE` log line; then the first visitor opens the app."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="explorer-warmed-") as folder:
        with AppServer(env=env, log_path=Path(folder) / "server.log") as server:
            server.wait_healthy(timeout)
            result.warm_up_s = server.wait_warmed_up(timeout)
            result.warmed_first_s = visit_seconds(browser, server.url, complete, timeout)


# ------------------------------------------------------------------------------------------ output
