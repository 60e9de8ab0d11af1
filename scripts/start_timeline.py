"""Where the app's start goes: the figures behind docs/BENCHMARKS.md's "first page" and "new session" notes.

    python scripts/start_timeline.py [--runs 3] [--idle 6] [--json out.json]

1. The bare floor page (a Streamlit page that imports torch) with timestamps of its own: when its script starts
   and when ``import torch`` ends, seconds after ``streamlit run``; then when the browser shows it. The same page
   served as an ``st.App`` whose lifespan imports torch in a background thread (what ui.warmup does first).
2. A visitor who opens the app ``--idle`` seconds after the server answers, with the server's warm-up
   (ui.warmup) and without it (``EXPLORER_NO_WARM_UP=1``): seconds from opening to the first page complete.
3. New sessions on a warm server, app and floor: in the browser, when the DOM is loaded, the websocket open, the
   first message in and the page complete (seconds after opening).
4. Which ops on PyTorch's meta device import ``torch._dynamo`` (one fresh process per op): the memory cap's
   estimate runs the model on the meta device.

Needs Debian's Chromium and Playwright (as the bench's app-start figures). Medians and ranges over ``--runs``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.core import translate  # noqa: E402
from explorer.devtools.appserver import (FLOOR_SCRIPT, AppServer, chromium_available,  # noqa: E402
                                         launch_chromium, visit_seconds)

# The floor page, writing when its script starts and when torch is imported (epoch seconds) to $TIMELINE_FILE.
TIMED_FLOOR = """import os, time
started = time.time()
import torch
imported = time.time()
""" + FLOOR_SCRIPT + """
with open(os.environ["TIMELINE_FILE"], "a") as out:
    out.write(f"{started} {imported}\\n")
"""
# The floor page served as an st.App whose lifespan imports torch in a background thread, as ui.warmup does: the
# least a page that needs torch can take when the browser opens at the start.
WARMED_FLOOR = """import streamlit as st

if __name__ != "__main__":
    import contextlib, threading

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=__import__, args=("torch",), daemon=True).start()
        yield

    app = st.App(__file__, lifespan=lifespan)
else:
""" + textwrap.indent(FLOOR_SCRIPT, "    ")
APP_MARKER = translate("home.input_title", "en")
FLOOR_MARKER = "is imported"
BROWSER_EVENTS_JS = """
window.__events = {};
document.addEventListener('DOMContentLoaded', () => { window.__events.dom = Date.now(); });
const NativeSocket = window.WebSocket;
window.WebSocket = function(...args) {
    const socket = new NativeSocket(...args);
    socket.addEventListener('open', () => { window.__events.ws_open = window.__events.ws_open || Date.now(); });
    socket.addEventListener('message', () => { window.__events.first_message = window.__events.first_message || Date.now(); });
    return socket;
};
window.WebSocket.prototype = NativeSocket.prototype;
Object.assign(window.WebSocket, NativeSocket);
"""
META_OPS = {
    "conv2d": "F.conv2d(x, m(8, 3, 3, 3))", "relu": "F.relu(x)", "max_pool2d": "F.max_pool2d(x, 2)",
    "batch_norm": "F.batch_norm(x, m(3), m(3), training=False)", "linear": "F.linear(m(1, 10), m(5, 10), m(5))",
    "adaptive_avg_pool2d": "F.adaptive_avg_pool2d(x, 1)", "cat": "torch.cat([x, x], 1)", "add": "x + x",
    "flatten": "torch.flatten(x, 1)", "normal_ (weight init)": "m(3).normal_()",
}


def _spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def cold_starts(browser, runs: int, script_text: str) -> dict[str, list[float]]:
    """``streamlit run`` of ``script_text`` with the browser opening it as soon as the server answers, seconds after
    the start: health, the page complete and, from a script that writes them (:data:`TIMED_FLOOR`), when its run
    started and when torch was imported."""
    found: dict[str, list[float]] = {"health": [], "script_start": [], "torch_imported": [], "complete": []}
    with tempfile.TemporaryDirectory() as folder:
        script, stamps = Path(folder) / "page.py", Path(folder) / "stamps.txt"
        script.write_text(script_text)
        for _ in range(runs):
            stamps.write_text("")
            page = browser.new_page()
            try:
                with AppServer(script=script, env={"TIMELINE_FILE": str(stamps)}) as server:
                    # ``streamlit run`` on the epoch clock the script's stamps use
                    start_epoch = time.time() - (time.perf_counter() - server.started_at)
                    found["health"].append(server.wait_healthy())
                    page.goto(server.url, wait_until="commit")
                    page.get_by_text(FLOOR_MARKER).first.wait_for(timeout=120_000)
                    found["complete"].append(time.perf_counter() - server.started_at)
                    written = stamps.read_text().split()
                    if written:
                        script_start, imported = map(float, written[:2])
                        found["script_start"].append(script_start - start_epoch)
                        found["torch_imported"].append(imported - start_epoch)
            finally:
                page.close()
    return found


def idle_visit(browser, runs: int, idle: float, warm_up: bool) -> list[float]:
    seconds = []
    env = {} if warm_up else {"EXPLORER_NO_WARM_UP": "1"}
    for _ in range(runs):
        with AppServer(env=env) as server:
            server.wait_healthy()
            time.sleep(idle)
            seconds.append(visit_seconds(browser, server.url, APP_MARKER))
    return seconds


def new_sessions(browser, runs: int, floor: bool) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"dom": [], "ws_open": [], "first_message": [], "complete": []}
    marker = FLOOR_MARKER if floor else APP_MARKER
    with tempfile.TemporaryDirectory() as folder:
        script = None
        if floor:
            script = Path(folder) / "floor.py"
            script.write_text(FLOOR_SCRIPT)
        with AppServer(script=script) as server:
            server.wait_healthy()
            visit_seconds(browser, server.url, marker)  # the first session warms the server
            time.sleep(3)
            for _ in range(runs):
                context = browser.new_context(viewport={"width": 1280, "height": 1600})
                try:
                    page = context.new_page()
                    page.add_init_script(BROWSER_EVENTS_JS)
                    opened_ms = time.time() * 1000
                    page.goto(server.url, wait_until="commit")
                    page.get_by_text(marker).first.wait_for(timeout=120_000)
                    found["complete"].append(time.time() - opened_ms / 1000)
                    events = page.evaluate("() => window.__events")
                    for key in ("dom", "ws_open", "first_message"):
                        if events.get(key):
                            found[key].append((events[key] - opened_ms) / 1000)
                finally:
                    context.close()
    return found


def meta_ops_importing_dynamo() -> dict[str, bool]:
    result = {}
    for name, expression in META_OPS.items():
        code = ("import sys, torch\nimport torch.nn.functional as F\n"
                "m = lambda *s: torch.empty(*s, device='meta')\nx = m(1, 3, 64, 64)\n"
                f"{expression}\nprint('torch._dynamo' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
        result[name] = out.stdout.strip().endswith("True")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=6.0, help="seconds between the health check and the visit")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    reason = chromium_available()
    if reason:
        sys.exit(f"needs a browser: {reason}")
    from playwright.sync_api import sync_playwright

    report: dict = {"load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            print("floor timeline…", file=sys.stderr)
            report["floor"] = cold_starts(browser, args.runs, TIMED_FLOOR)
            report["warmed_floor"] = cold_starts(browser, args.runs, WARMED_FLOOR)["complete"]
            print("visits after an idle server…", file=sys.stderr)
            report["idle_visit_warm_up"] = idle_visit(browser, args.runs, args.idle, True)
            report["idle_visit_no_warm_up"] = idle_visit(browser, args.runs, args.idle, False)
            print("new sessions…", file=sys.stderr)
            report["new_session_app"] = new_sessions(browser, args.runs + 2, floor=False)
            report["new_session_floor"] = new_sessions(browser, args.runs + 2, floor=True)
        finally:
            browser.close()
    print("meta ops…", file=sys.stderr)
    report["meta_ops_import_dynamo"] = meta_ops_importing_dynamo()

    floor = report["floor"]
    print(f"Floor page (seconds after `streamlit run`, {args.runs} runs, median (range)): health {_spread(floor['health'])}, "
          f"script starts {_spread(floor['script_start'])}, torch imported {_spread(floor['torch_imported'])}, "
          f"complete in the browser {_spread(floor['complete'])}")
    print(f"The floor page with torch imported by a lifespan thread (as ui.warmup), browser opened at once: "
          f"complete {_spread(report['warmed_floor'])} after `streamlit run`")
    print(f"A visitor {args.idle:g} s after the health check (opening → first page complete): with the warm-up "
          f"{_spread(report['idle_visit_warm_up'])}, without it (EXPLORER_NO_WARM_UP=1) "
          f"{_spread(report['idle_visit_no_warm_up'])}")
    for key, label in (("new_session_app", "app"), ("new_session_floor", "floor page")):
        s = report[key]
        print(f"New sessions on a warm server, {label} (seconds after opening): DOM loaded {_spread(s['dom'])}, "
              f"websocket open {_spread(s['ws_open'])}, first message {_spread(s['first_message'])}, "
              f"complete {_spread(s['complete'])}")
    ops = report["meta_ops_import_dynamo"]
    print("Meta-device ops that import torch._dynamo on first use (a fresh process each): "
          + ", ".join(f"{name} {'yes' if hit else 'no'}" for name, hit in ops.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
