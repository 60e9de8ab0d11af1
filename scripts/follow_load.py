"""A class following the lecturer, in real browsers: what the followers' polling costs the server, and the lag.

Starts one app server on 127.0.0.1 and one headless Chromium (Debian's), then:

1. opens ``--students`` pages on the home page (not in a class) and measures the server's CPU over
   ``--window`` seconds: the cost of idle open pages;
2. a lecturer page starts a class; every student page opens the class's join link (``/?join=CODE``) and
   follows; the same window again: the difference is what polling an unchanged class costs, per second and
   per poll (``EXPLORER_CLASS_POLL_S`` sets the interval; ``--poll`` passes it to the server);
3. the lecturer changes the Feature-maps layer ``--changes`` times; for each change, the time from the
   lecturer's click to each follower's address bar naming the new layer (the follower writes its URL at
   the end of its page run, when the view is drawn). Timestamps come from the pages' own clocks
   (``history.replaceState``), not from polling here.

The server's CPU is read from /proc (user + system, all its threads). Browsers run on the same machine, so
with many students the lag includes their rendering too; a classroom's students bring their own CPUs.

    python scripts/follow_load.py --students 30
    python scripts/follow_load.py --students 30 --poll 1.5 --json artifacts/follow_load.json
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer.core import translate  # noqa: E402
from explorer.devtools.appserver import (CHROMIUM_ARGS, CHROMIUM_PATH, PAGE_IDLE_JS, URL_LOG_JS,  # noqa: E402
                                         AppServer, chromium_available, first_url_change, pick_option)

SIDEBAR = '[data-testid="stSidebar"]'
LENET_LAYERS = ("C3 ", "C1 ", "C5 ")
DEFAULT_POLL_S = 1.0  # ui.links.POLL_SECONDS without $EXPLORER_CLASS_POLL_S


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(page, timeout_ms: int = 240_000) -> None:
    page.wait_for_function(PAGE_IDLE_JS, timeout=timeout_ms, polling=200)


def window_cpu(pid: int, seconds: float) -> float:
    start = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - start) / seconds


def choose(page, label: str, typed: str) -> float:
    """Pick ``typed`` in the main column's select box ``label``; returns the click's time (ms, epoch)."""
    box = page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(has_text=label).first
    return pick_option(page, box, typed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30, help="following browser pages (1-60)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of each CPU measurement")
    parser.add_argument("--changes", type=int, default=4, help="layer changes the lag is measured on")
    parser.add_argument("--poll", type=float, default=None, help="EXPLORER_CLASS_POLL_S for the server")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--log", type=Path, default=None, help="write the server's output here")
    args = parser.parse_args(argv)
    args.students = max(1, min(60, args.students))
    reason = chromium_available()
    if reason:
        print(f"needs Chromium: {reason}")
        return 2
    from playwright.sync_api import sync_playwright

    env = {"EXPLORER_CLASS_POLL_S": str(args.poll)} if args.poll else {}
    figures: dict[str, object] = {"students": args.students, "poll_s": args.poll or "default"}
    with AppServer(env=env, log_path=args.log) as server, sync_playwright() as pw:
        server.wait_healthy(120)
        # Students look at their tabs; headless Chromium treats most of 30 windows as hidden and, after five
        # minutes, wakes their timers (the poll) once a minute: turn that off to measure what a class sees.
        browser = pw.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS + [
            "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows", "--disable-features=IntensiveWakeUpThrottling"])

        def new_page():
            # one context (one window) per person: a page in a background tab of a shared window gets its
            # timers throttled by Chromium, which delays its reruns by seconds
            context = browser.new_context(viewport={"width": 1280, "height": 720})
            context.add_init_script(URL_LOG_JS)
            return context.new_page()

        lecturer = new_page()
        lecturer.goto(f"{server.url}/?model=lenet5&weights=none", wait_until="domcontentloaded")
        wait_idle(lecturer)

        students = [new_page() for _ in range(args.students)]
        for page in students:
            page.goto(f"{server.url}/?model=lenet5&weights=none", wait_until="domcontentloaded")
        for page in students:
            wait_idle(page)
        time.sleep(2)
        figures["server_cpu_idle_pages"] = window_cpu(server.pid, args.window)

        lecturer.locator(SIDEBAR).get_by_text(translate("links.class_title", "en")).click()
        lecturer.locator(SIDEBAR).get_by_role("button", name=translate("links.class_start", "en")).click()
        code_text = lecturer.locator(SIDEBAR).get_by_text(re.compile(r"Class code: [A-Z0-9]{4}")).inner_text()
        code = code_text.split(":")[-1].strip()
        lecturer.locator('[data-testid="stSidebarNavLink"]').filter(
            has_text=translate("nav.feature_maps", "en")).click()
        lecturer.wait_for_url(re.compile(r"/feature_maps"))
        wait_idle(lecturer)

        following = translate("links.class_following", "en", code=code)
        for page in students:
            page.goto(f"{server.url}/?join={code}", wait_until="domcontentloaded")
        for page in students:
            page.locator(SIDEBAR).get_by_text(following).wait_for(timeout=240_000)
            page.wait_for_url(re.compile(r"/feature_maps"), timeout=240_000)
            wait_idle(page)
        time.sleep(2)
        figures["server_cpu_following"] = window_cpu(server.pid, args.window)
        polls_per_s = args.students / float(args.poll or DEFAULT_POLL_S)
        extra = figures["server_cpu_following"] - figures["server_cpu_idle_pages"]
        figures["server_cpu_ms_per_poll"] = 1000 * extra / polls_per_s

        lags, lecturer_runs = [], []
        for i in range(args.changes):
            layer = LENET_LAYERS[i % len(LENET_LAYERS)]
            pattern = r"/feature_maps\?.*layer=" + layer.strip()
            clicked = choose(lecturer, translate("maps.layer", "en"), layer)
            deadline = time.time() + 60
            seen: list[float | None] = [None] * len(students)
            while time.time() < deadline and None in seen:
                lecturer.wait_for_timeout(100)
                seen = [s if s is not None else first_url_change(p, pattern, clicked) for s, p in zip(seen, students)]
            shown = first_url_change(lecturer, pattern, clicked)
            lecturer_runs.append((shown - clicked) / 1000 if shown else None)
            lags.extend((s - clicked) / 1000 if s is not None else float("inf") for s in seen)
            for s, page in zip(seen, students):
                if s is None:  # what a follower that did not follow in time shows instead
                    print(f"change {i + 1}: a follower still shows {page.url.split('?')[0]} "
                          f"layer={re.search(r'layer=([^&]*)', page.url).group(1) if 'layer=' in page.url else '-'}")
            for page in [lecturer, *students]:
                wait_idle(page)
            time.sleep(1)
        finite = sorted(x for x in lags if x != float("inf"))
        figures.update({
            "lecturer_run_s": [round(x, 2) if x is not None else None for x in lecturer_runs],
            "lag_median_s": round(statistics.median(finite), 2) if finite else None,
            "lag_p90_s": round(finite[int(0.9 * (len(finite) - 1))], 2) if finite else None,
            "lag_max_s": round(max(lags), 2) if lags else None,
            "missed": sum(1 for x in lags if x == float("inf")),
        })
        browser.close()
    print(f"students following: {args.students}, poll every {args.poll or DEFAULT_POLL_S} s")
    print(f"server CPU, {args.students} idle pages: {figures['server_cpu_idle_pages']:.3f} core")
    print(f"server CPU, {args.students} following an unchanged class: {figures['server_cpu_following']:.3f} core"
          f"  (~{figures['server_cpu_ms_per_poll']:.2f} ms per poll)")
    print(f"lecturer's own run after the click: {figures['lecturer_run_s']} s")
    print(f"follow lag, click → follower shows it: median {figures['lag_median_s']} s, p90 {figures['lag_p90_s']} s,"
          f" max {figures['lag_max_s']} s, missed {figures['missed']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
