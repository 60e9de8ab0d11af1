"""Four sessions at once, each asking for the heaviest view the UI allows on the largest registered model.

    python scripts/load_hostile.py [--model efficientnet_b7] [--side 1024] [--sessions 4]

Each session is a thread running what the Grad-CAM page runs for a new image (every layer's CAM is the
heaviest view: issue 14 measured 9.6 GB for efficientnet_b7 at 600² and over 14 GB at 1024² before the
per-request budget): the shared pass (``page_analysis``), then Grad-CAM of the layers within the per-request
budget (``cam_layers_within``, as ``ui.analysis_cache.cams_for_class``), or the refusal. Streamlit's AppTest
cannot run in several threads of one process (one Runtime singleton: "Runtime hasn't been created!"), so
the library calls behind the page are driven directly, each session with its own sample image (no shared
cache). Prints one JSON line: the process's peak resident memory (VmHWM) and what each session got.
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


def peak_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def session(model: str, side: int, sample: str, outcome: dict, loaded) -> None:
    from explorer.analysis import RequestTooLargeError, analyze, cam_layers_within, page_analysis
    from explorer.imaging import sample_image

    started = time.monotonic()
    try:
        image = sample_image(sample)
        info = page_analysis(loaded, image)
        layers, complete = cam_layers_within(info["calls"])
        x = loaded.preprocess(image)
        if complete:
            cams = analyze(loaded.model, x, info["default_layer"], layers=[], cam_all=True).cam_raw
        elif layers:
            cams = analyze(loaded.model, x, layers, layers=[], cam_all=False).cam_raw
        else:
            raise RequestTooLargeError("refused: over the per-request budget", 0, 0)
        outcome.update(layers=len(cams), complete=complete, exception=[], errors=[])
    except RequestTooLargeError as exc:
        outcome.update(layers=0, exception=[], errors=[str(exc)])
    except Exception as exc:  # noqa: BLE001 - reported, never raised: the measurement goes on
        outcome.update(layers=0, exception=[f"{type(exc).__name__}: {exc}"[:300]], errors=[])
    outcome["seconds"] = round(time.monotonic() - started, 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_b7")
    parser.add_argument("--side", type=int, default=1024, help="the sidebar's largest input side")
    parser.add_argument("--sessions", type=int, default=4)
    args = parser.parse_args(argv)
    samples = ["grace_hopper", "checkerboard", "shapes", "gradient"]
    from explorer.models import load_model, with_input_shape

    # One model object shared by every session, as the app's st.cache_resource shares it.
    loaded = with_input_shape(load_model(args.model, weights="none", device="cpu"), (3, args.side, args.side))
    outcomes = [{"sample": samples[i % len(samples)]} for i in range(args.sessions)]
    threads = [threading.Thread(target=session, args=(args.model, args.side, o["sample"], o, loaded))
               for o in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = {"model": args.model, "side": args.side, "sessions": outcomes, "peak_rss_mb": round(peak_rss_mb())}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
