"""The server warms itself before its first visitor.

``streamlit run app.py`` serves ``app.py``'s ``st.App``, whose lifespan (:func:`warm_start`) starts
:func:`warm_in_background` when the server starts: torch is imported and the default selection's model, image
and memory cap (``ui.common.warm_default_selection``) land in the shared caches while nobody is waiting. A class
that opens the app after a lecturer started the server gets its first page as fast as any later visitor
(``python -m explorer bench``: "A visitor after the server's warm-up"). A visitor who comes sooner simply waits on the
same cache entries (Streamlit computes each key once). A failed warm-up is logged, never raised: the pages report
the same problem where they load.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, AsyncIterator

from streamlit.logger import get_logger

WARM_UP_THREAD = "explorer-warm-up"
# The server log's lines when the warm-up ends (``explorer.devtools.appserver`` waits for them; it keeps its own copy
# of the text, explorer/ never importing Streamlit glue).
WARM_UP_DONE = "explorer warm-up done"
WARM_UP_FAILED = "explorer warm-up failed"
# Set to 1 to start the server without warming it (to measure the difference, or to spare an idle replica's memory).
NO_WARM_UP_ENV = "EXPLORER_NO_WARM_UP"

_log = get_logger("explorer.warmup")  # Streamlit's format and level (logger.level), in the server's log


def import_torch_and_warm() -> list[tuple[str, float]]:
    """Import torch, then fill the caches of the default first page; the seconds since the start after each step."""
    started = time.perf_counter()
    import torch  # noqa: F401  (the one long import every page needs: ~1.1 s on 2 cores)

    imported = round(time.perf_counter() - started, 3)
    from ui.common import warm_default_selection

    return [("torch", imported), *warm_default_selection(started)]


def warm_in_background() -> threading.Thread:
    """Start :func:`import_torch_and_warm` in a daemon thread (the server never waits for it); return the thread."""

    def run() -> None:
        try:
            steps = import_torch_and_warm()
        except Exception as exc:  # the first page reports it where it loads the model
            _log.warning("%s (%s: %s)", WARM_UP_FAILED, type(exc).__name__, exc)
            return
        _log.info("%s: %s", WARM_UP_DONE, ", ".join(f"{step} {seconds:.2f} s" for step, seconds in steps))

    thread = threading.Thread(target=run, name=WARM_UP_THREAD, daemon=True)
    thread.start()
    return thread


@contextlib.asynccontextmanager
async def warm_start(app: Any) -> AsyncIterator[None]:
    """``st.App``'s lifespan: start the warm-up (unless ``$EXPLORER_NO_WARM_UP`` is 1), serve at once."""
    if os.environ.get(NO_WARM_UP_ENV, "") != "1":
        warm_in_background()
    yield
