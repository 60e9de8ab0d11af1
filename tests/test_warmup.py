"""The server's warm-up (ui.warmup): ``streamlit run app.py`` serves app.py's ``st.App``, whose lifespan fills the
caches of the default first page before anyone visits; the first visitor's run then computes none of them again."""
from __future__ import annotations

import asyncio
import importlib.util
import logging
import tempfile
import threading
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer.analysis
import explorer.imaging
import explorer.models
from ui import warmup

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"


def test_streamlit_run_serves_app_py_as_an_asgi_app_with_the_warm_up() -> None:
    """`streamlit run app.py` decides by reading the file (no code runs): it must find ``app`` there."""
    from streamlit.web.server.app_discovery import discover_asgi_app  # Streamlit >= 1.67 (requirements.txt)

    found = discover_asgi_app(APP)
    assert found.is_asgi_app and found.app_name == "app" and found.import_string == "app:app"


def test_importing_app_py_builds_the_app_and_draws_nothing() -> None:
    """The server imports app.py under its module name: an ``st.App`` over app.py itself with the warm-up
    lifespan, and none of the navigation (which only each visitor's run, as ``__main__``, draws)."""
    spec = importlib.util.spec_from_file_location("app_as_asgi_module", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.app, st.App)
    assert Path(module.app.script_path).resolve() == APP
    assert not hasattr(module, "navigation") and not hasattr(module, "page")


class _Calls:
    """Counts calls of a library function the caches wrap, keeping its behaviour."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.count = 0
        self.threads: set[str] = set()
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.count += 1
            self.threads.add(threading.current_thread().name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def _started_threads(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The threads the lifespan starts, captured as it starts them (a fast warm-up may be over before any lookup)."""
    started: list[threading.Thread] = []
    original = warmup.warm_in_background

    def capturing() -> threading.Thread:
        thread = original()
        started.append(thread)
        return thread

    monkeypatch.setattr(warmup, "warm_in_background", capturing)
    return started


async def _enter_lifespan() -> None:
    async with warmup.warm_start(app=None):
        pass


def test_lifespan_warms_what_the_first_visitor_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(warmup.NO_WARM_UP_ENV, raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    loads = _Calls(monkeypatch, explorer.models, "load_model")
    caps = _Calls(monkeypatch, explorer.analysis, "largest_input_side")
    samples = _Calls(monkeypatch, explorer.imaging, "sample_image")
    started = _started_threads(monkeypatch)

    asyncio.run(_enter_lifespan())
    assert len(started) == 1 and started[0].name == warmup.WARM_UP_THREAD
    started[0].join(timeout=300)
    assert not started[0].is_alive()
    for calls in (loads, caps, samples):
        assert calls.count == 1 and calls.threads == {warmup.WARM_UP_THREAD}

    at = AppTest.from_file(str(APP), default_timeout=120)  # the first visitor, default selection
    at.run()
    assert not at.exception
    assert at.session_state["sel_model"] == "tiny_vgg"
    # Nothing of it computed again: the warm-up used the keys the sidebar derives.
    assert (loads.count, caps.count, samples.count) == (1, 1, 1)


def test_the_server_serves_while_the_warm_up_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lifespan returns while the warm-up is still working (the server answers at once)."""
    monkeypatch.delenv(warmup.NO_WARM_UP_ENV, raising=False)
    release = threading.Event()
    working = threading.Event()

    def slow_warm_up() -> list:
        working.set()
        release.wait(timeout=60)
        return []

    monkeypatch.setattr(warmup, "import_torch_and_warm", slow_warm_up)
    started = _started_threads(monkeypatch)
    try:
        asyncio.run(_enter_lifespan())  # returns although the warm-up cannot finish yet
        assert working.wait(timeout=30) and started[0].is_alive()
    finally:
        release.set()
    started[0].join(timeout=30)
    assert not started[0].is_alive()


def test_no_warm_up_when_the_operator_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(warmup.NO_WARM_UP_ENV, "1")
    started = _started_threads(monkeypatch)
    asyncio.run(_enter_lifespan())
    assert started == []


class _Lines(logging.Handler):
    """Collects the messages of a logger that does not propagate (the warm-up's, Streamlit's own set-up)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_failed_warm_up_is_logged_as_failed_and_its_thread_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    import ui.common

    def broken(started: float | None = None) -> list:
        raise RuntimeError("no disk today")

    monkeypatch.setattr(ui.common, "warm_default_selection", broken)
    handler = _Lines()
    logger = logging.getLogger("explorer.warmup")  # the warm-up's logger (Streamlit's get_logger is logging's)
    logger.addHandler(handler)
    try:
        thread = warmup.warm_in_background()
        thread.join(timeout=120)
    finally:
        logger.removeHandler(handler)
    assert not thread.is_alive()
    assert any(line.startswith(warmup.WARM_UP_FAILED) and "no disk today" in line for line in handler.lines)
    assert not any(warmup.WARM_UP_DONE in line for line in handler.lines)  # the bench must not read it as done


def test_the_bench_waits_for_the_warm_up_s_own_lines() -> None:
    from explorer.devtools import appserver

    assert (appserver.WARM_UP_DONE, appserver.WARM_UP_FAILED) == (warmup.WARM_UP_DONE, warmup.WARM_UP_FAILED)


@pytest.mark.slow
def test_real_server_logs_its_warm_up() -> None:
    """`streamlit run app.py` on loopback: the lifespan runs, the log says the warm-up is done."""
    from explorer.devtools.appserver import WARM_UP_DONE, AppServer

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        with AppServer(log_path=log) as server:
            server.wait_healthy(120)
            server.wait_warmed_up(180)  # raises on the failure line or without the done line
            text = log.read_text(errors="replace")
    assert WARM_UP_DONE in text and warmup.WARM_UP_FAILED not in text
    assert "memory cap" in text  # every step ran


@pytest.mark.slow
def test_a_restarted_server_reads_the_memory_cap_it_kept() -> None:
    """Two `streamlit run app.py` in one home folder: the first start measures the default model's memory cap and
    keeps it in Streamlit's disk cache; the restart's warm-up finds it there and writes nothing (a measured value
    would be written again)."""
    from explorer.devtools.appserver import AppServer

    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as folder:
        cache = Path(home) / ".streamlit" / "cache"
        kept = {}
        for start in ("first", "restart"):
            log = Path(folder) / f"{start}.log"
            with AppServer(env={"HOME": home}, log_path=log) as server:
                server.wait_healthy(120)
                server.wait_warmed_up(180)
            files = {path.name: path.stat().st_mtime_ns for path in cache.glob("*.memo")}
            if start == "first":
                assert len(files) == 1, files  # the default model's cap, for this server's budgets
                kept = files
            else:
                assert files == kept  # read, not measured and written again
            assert "memory cap" in log.read_text(errors="replace") and "not kept on disk" not in log.read_text()
