"""Timing the real pages' reruns after one widget change (AppTest in a child process running
``benchmarks/page_reruns.py``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Sequence

from explorer.devtools.appserver import REPO_ROOT
from explorer.devtools.bench import TARGETS, verdict

# The script the child process runs: the library itself never imports Streamlit.
PAGE_RERUN_SCRIPT = REPO_ROOT / "benchmarks" / "page_reruns.py"


def measure_page_reruns(models: Sequence[str], repeats: int, threads: int | None = None) -> dict[str, dict]:
    """Server time of a cached interaction on the real pages: one widget changed, the script rerun (AppTest).

    Keys ``model/page/widget``; values ``cpu_ms`` and ``wall_ms`` medians. Opacity sliders redraw from
    cached numpy; a layer change on the Feature-map page tiles a layer not drawn before (from the cached
    pass), on the Grad-CAM page it picks a CAM computed by the shared pass. ``maps_layer(largest)`` draws
    the largest layers, each for the first time; ``maps_cmap`` re-colours the largest layer in a colormap not
    drawn before; ``maps_channel`` shows another channel of the current layer. Caches are cleared before
    each row.
    """
    arg = json.dumps({"models": list(models), "repeats": repeats, "threads": threads})
    done = subprocess.run([sys.executable, str(PAGE_RERUN_SCRIPT), arg], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=1800,
                          env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"})
    if done.returncode != 0:
        raise RuntimeError(f"page rerun timing failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def page_reruns_text(reruns: dict[str, dict]) -> str:
    lines = ["| model | page | widget changed | server CPU ms | wall ms | ≤ 50 ms |", "|---|---|---|---:|---:|---|"]
    for key, value in reruns.items():
        model, page, widget = key.split("/")
        if value.get("error") and "cpu_ms" not in value:
            lines.append(f"| {model} | {page} | {widget} | error: {value['error']} | | |")
            continue
        lines.append(f"| {model} | {page} | {widget} | {value['cpu_ms']:.0f} | {value['wall_ms']:.0f} | "
                     f"{verdict(value['cpu_ms'], TARGETS['interaction_ms'])} |")
    return ("Cached interactions on the real pages (AppTest in a child process: the whole script rerun after one "
            "widget change, sidebar included, analysis cached; medians):\n\n" + "\n".join(lines))
