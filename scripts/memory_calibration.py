"""Estimated against measured memory of the heavy passes, each in a fresh process (issue 14).

    python scripts/memory_calibration.py [--cases efficientnet_b0:224:cam,resnet18:448:shared,...]

For each case (model, square input side, pass: ``cam`` = Grad-CAM of every layer as the Grad-CAM page runs
it, ``shared`` = the pages' shared pass, ``grad`` = Saliency, one backward pass to the input) a child
process loads the model (random weights), runs the same pass once at 64² (one-time costs: oneDNN kernels,
thread pools), resets the peak resident size (``/proc/self/clear_refs``), runs the pass and reports
``VmHWM`` minus the resident size before it. The estimate (``explorer.analysis.memory_estimate``: PyTorch's
allocations on a meta twin, and the budget's figure with the allocator factor) is computed in the same child
before the model runs. Prints one JSON line per case and a table; the ratio measured / budget figure must
stay at or below 1 (never an undercount).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = ",".join([
    "resnet18:224:cam", "resnet18:448:cam", "vgg16:224:cam", "vgg16:448:cam", "googlenet:224:cam",
    "googlenet:448:cam", "densenet121:224:cam", "densenet121:448:cam", "efficientnet_b0:224:cam",
    "efficientnet_b0:448:cam", "efficientnet_b7:256:cam", "efficientnet_b7:384:cam",
    "resnet18:448:shared", "efficientnet_b0:448:shared", "efficientnet_b7:384:shared", "densenet121:448:shared",
    "resnet18:448:grad", "efficientnet_b0:448:grad", "efficientnet_b7:384:grad",
])

CHILD = r'''
import json, sys
sys.path.insert(0, ROOT)
import torch
from explorer.analysis import analyze, page_analysis, saliency
from explorer.analysis.budget import pass_cost
from explorer.analysis.memory_estimate import cam_pass_peak, input_gradient_peak, shared_pass_peak
from explorer.analysis import ANALYSIS_BUDGET_BYTES
from explorer.models import load_model, with_input_shape
from PIL import Image
import numpy as np

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

shape = (3, SIDE, SIDE)
loaded = load_model(MODEL, weights="none", device="cpu")
model = loaded.model
if KIND == "cam":
    torch_peak = cam_pass_peak(model, shape)
elif KIND == "shared":
    torch_peak = shared_pass_peak(model, shape, ANALYSIS_BUDGET_BYTES)
else:
    torch_peak = input_gradient_peak(model, shape)
budget_figure = pass_cost(model, shape, KIND)
image = Image.fromarray((np.random.default_rng(0).random((SIDE, SIDE, 3)) * 255).astype(np.uint8))

def run(side):
    view = with_input_shape(loaded, (3, side, side))
    x = view.preprocess(image)
    if KIND == "cam":
        analyze(model, x, None, target=0, layers=[], cam_all=True)
    elif KIND == "shared":
        page_analysis(view, image)
    else:
        saliency(model, x, target=0)

run(64)
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
run(SIDE)
measured = status("VmHWM") - before
print(json.dumps(dict(model=MODEL, side=SIDE, kind=KIND, measured_mb=round(measured / 2**20),
                      torch_peak_mb=round(torch_peak / 2**20), budget_mb=round(budget_figure / 2**20),
                      ratio=round(measured / budget_figure, 2))))
'''


def run_case(model: str, side: int, kind: str) -> dict:
    source = (f"ROOT = {str(ROOT)!r}; MODEL = {model!r}; SIDE = {side}; KIND = {kind!r}\n") + CHILD
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return dict(model=model, side=side, kind=kind, error=done.stderr.strip().splitlines()[-1:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help="model:side:kind, comma-separated")
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases.split(","):
        model, side, kind = case.split(":")
        row = run_case(model, int(side), kind)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"{'model':16} {'side':>5} {'pass':7} {'measured MB':>12} {'torch peak MB':>14} {'budget MB':>10} {'ratio':>6}")
    for row in rows:
        if "error" in row:
            print(f"{row['model']:16} {row['side']:>5} {row['kind']:7} error: {row['error']}")
            continue
        print(f"{row['model']:16} {row['side']:>5} {row['kind']:7} {row['measured_mb']:>12} {row['torch_peak_mb']:>14} "
              f"{row['budget_mb']:>10} {row['ratio']:>6}")
    return rows


if __name__ == "__main__":
    main()
