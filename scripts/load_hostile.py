"""Four sessions at once, each asking for the heaviest view the UI allows on the largest registered model.

    python scripts/load_hostile.py [--model efficientnet_b7] [--side N] [--sessions 4]

Each session is a thread running what the Grad-CAM page runs for a new image (every layer's CAM is the
heaviest view: issue 14 measured 9.6 GB for efficientnet_b7 at 600² and over 14 GB at 1024² before any
budget): the shared pass (``page_analysis``) inside its reservation, then Grad-CAM of the layers within the
per-request budget (``cam_layers_within``) inside theirs, as ``ui.analysis_cache.shared_pass`` and
``cams_for_class`` do (``explorer.analysis.reserved_pass``: the per-request budget, then the server-wide
``explorer.core.server_gate``, ``EXPLORER_SERVER_MB``). ``--side`` defaults to the largest input the sidebar
allows for the model (``largest_input_side``); a larger one shows the refusals. Streamlit's AppTest cannot run
in several threads of one process (one Runtime singleton: "Runtime hasn't been created!"), so the library
calls behind the page are driven directly, each session with its own sample image (no shared cache). Prints
one JSON line: the process's peak resident memory (VmHWM), the resident memory with the model loaded, the
most the sessions reserved at once, and what each session got.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402,F401  imported before the threads, as tests/conftest.py does


def rss_mb(key: str = "VmRSS") -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def session(model: str, side: int, sample: str, outcome: dict, loaded) -> None:
    from explorer.analysis import (RequestTooLargeError, analyze, cam_candidates, cam_layers_within, page_analysis,
                                   reserved_pass)
    from explorer.core import ServerMemoryError
    from explorer.imaging import sample_image

    started = time.monotonic()
    try:
        image = sample_image(sample)
        with reserved_pass(loaded.model, loaded.input_shape, "shared"):
            info = page_analysis(loaded, image)
        layers, complete = cam_layers_within(loaded.model, loaded.input_shape, info["calls"])
        x = loaded.preprocess(image)
        planned = None if complete else (layers or cam_candidates(info["calls"])[-1:])
        with reserved_pass(loaded.model, loaded.input_shape, "cam", planned) as held:
            outcome["reserved_mb"] = round(held / 2**20)
            if complete:
                cams = analyze(loaded.model, x, info["default_layer"], layers=[], cam_all=True).cam_raw
            else:
                cams = analyze(loaded.model, x, layers, layers=[], cam_all=False).cam_raw
        outcome.update(layers=len(cams), complete=complete, exception=[], errors=[])
    except (RequestTooLargeError, ServerMemoryError) as exc:  # the pages' clear messages
        outcome.update(layers=0, exception=[], errors=[f"{type(exc).__name__}: {exc} "
                                                       f"(needs {exc.needed // 2**20} MB of {exc.budget // 2**20} MB)"])
    except Exception as exc:  # noqa: BLE001 - reported, never raised: the measurement goes on
        outcome.update(layers=0, exception=[f"{type(exc).__name__}: {exc}"[:300]], errors=[])
    outcome["seconds"] = round(time.monotonic() - started, 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_b7")
    parser.add_argument("--side", type=int, default=None, help="default: the sidebar's largest input for the model")
    parser.add_argument("--sessions", type=int, default=4)
    args = parser.parse_args(argv)
    samples = ["grace_hopper", "checkerboard", "shapes", "gradient"]
    from explorer.analysis import largest_input_side, request_budget_bytes
    from explorer.core import server_gate
    from explorer.models import load_model, with_input_shape

    side = args.side or largest_input_side(args.model)
    # One model object shared by every session, as the app's st.cache_resource shares it.
    loaded = with_input_shape(load_model(args.model, weights="none", device="cpu"), (3, side, side))
    loaded_mb = rss_mb()
    outcomes = [{"sample": samples[i % len(samples)]} for i in range(args.sessions)]
    threads = [threading.Thread(target=session, args=(args.model, side, o["sample"], o, loaded))
               for o in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gate = server_gate()
    report = {"model": args.model, "side": side, "request_budget_mb": request_budget_bytes() // 2**20,
              "server_budget_mb": gate.budget_bytes // 2**20, "most_reserved_mb": round(gate.peak_reserved / 2**20),
              "rss_with_model_mb": round(loaded_mb), "sessions": outcomes, "peak_rss_mb": round(rss_mb("VmHWM"))}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
