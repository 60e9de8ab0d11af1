"""How a page comes to run inside ``app.py`` (sidebar, navigation), whatever URL a visitor opens first.

Light on purpose (Streamlit only): ``app.py`` imports it in the server before any visitor, where importing the rest
of ``ui`` (torch) would delay the server's first answer.
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import streamlit as st

# How many app.py runs are under way on this thread (a script run owns its thread): a page run inside one is in the app.
_app_runs = threading.local()


@contextmanager
def inside_app() -> Iterator[None]:
    """``app.py`` runs the chosen page inside this, so :func:`run_through_app` knows the page is not running alone."""
    _app_runs.depth = getattr(_app_runs, "depth", 0) + 1
    try:
        yield
    finally:
        _app_runs.depth -= 1


def leave_legacy_pages_mode() -> None:
    """Tell Streamlit, once per server before any visitor, that ``pages/`` is no legacy multipage folder: every run
    then starts at ``app.py``, whose ``st.navigation`` picks the page of a deep link by its URL path."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy mode
        return
    PagesManager.uses_pages_directory = False


def run_through_app() -> None:
    """The first line of every page: make sure ``app.py`` (sidebar, navigation) runs around this page.

    Until some session has called ``st.navigation`` (or :func:`leave_legacy_pages_mode` ran when the server
    started), Streamlit treats ``pages/`` as a legacy multipage folder: a session that opens a deep link
    (``/gradcam``) then runs that page file on its own. Here the page runs ``app.py`` in its place, in this same
    run (a rerun would drop a button click that came with it): ``app.py``'s ``st.navigation`` picks this page again
    by its URL path (page ids are derived from URL paths) and runs it inside the app. Whether the page is inside the
    app is this run's own fact (:func:`inside_app`), not the process-wide legacy flag: several visitors who open a
    link at the same moment on a fresh server all started in legacy mode, and only the first of them found the flag
    still set (the others got the page without the app around it).
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # a Streamlit without the legacy mode
        return
    ctx = get_script_run_ctx()
    if ctx is None or getattr(_app_runs, "depth", 0) > 0:
        return
    main = Path(ctx.pages_manager.main_script_path)
    caller = sys._getframe(1).f_globals.get("__file__")
    if caller is None or Path(caller).resolve() == main.resolve():
        return  # the page is itself the main script (a test running one page file): there is no app to run
    PagesManager.uses_pages_directory = False
    code = compile(main.read_bytes(), str(main), "exec")
    exec(code, {"__name__": "__main__", "__file__": str(main)})  # noqa: S102 - our own entry script
    st.stop()  # the page already ran inside app.py
