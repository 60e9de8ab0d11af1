"""The fixed cost of the pages' recording pass, apart from the network's own arithmetic: at a small input, with one
thread (process CPU time, medians of interleaved rounds), a bare forward pass, the analysis recording only the
Grad-CAM layer, the analysis recording every call (what the pages run, without preprocessing), and the whole
``page_analysis`` of the image; and a bare pass that only keeps every module's output (what keeping costs alone).

    python scripts/analysis_overhead.py [--side 64] [--rounds 40] [googlenet resnet18 ...]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from explorer.analysis import ANALYSIS_BUDGET_BYTES, analyze, default_cam_layer, page_analysis  # noqa: E402
from explorer.imaging import sample_image  # noqa: E402
from explorer.models import load_model  # noqa: E402


def measure(name: str, side: int, rounds: int) -> dict[str, float]:
    loaded = load_model(name, weights=None, input_shape=(3, side, side))
    model, image = loaded.model, sample_image("grace_hopper")
    x = loaded.preprocess(image)
    layer = default_cam_layer(model, tuple(loaded.input_shape))

    def bare() -> None:
        with torch.inference_mode():
            model(x)

    def bare_keeping_outputs() -> None:
        """A bare pass that keeps every module's output, as the recording pass must, with hooks that do nothing
        else: what keeping costs by itself (fresh memory for every layer instead of reused buffers)."""
        kept: list = []

        def keep(_module: torch.nn.Module, _args: tuple, output: object) -> None:
            kept.append(output)

        handles = [module.register_forward_hook(keep) for name, module in model.named_modules() if name]
        try:
            with torch.inference_mode():
                model(x)
        finally:
            for handle in handles:
                handle.remove()

    ops = {
        "bare forward": bare,
        "bare forward keeping every output": bare_keeping_outputs,
        "analysis, Grad-CAM layer only": lambda: analyze(model, x, layer, layers=[], on_device=True),
        "analysis, every call recorded": lambda: analyze(model, x, layer, layers=None, on_device=True,
                                                         max_bytes=ANALYSIS_BUDGET_BYTES),
        "page_analysis (with preprocessing)": lambda: page_analysis(loaded, image),
    }
    for op in ops.values():  # the first pass of a kind learns what to copy
        op(), op()
    times: dict[str, list[float]] = {key: [] for key in ops}
    for _ in range(rounds):
        for key, op in ops.items():
            start = time.process_time()
            op()
            times[key].append((time.process_time() - start) * 1000)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=["resnet18", "googlenet"])
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.models:
        result = measure(name, args.side, args.rounds)
        bare = result["bare forward"]
        print(f"{name} at {args.side}x{args.side}, 1 thread, CPU ms: "
              + ", ".join(f"{key} {value:.2f}" + ("" if key == "bare forward" else f" (+{value - bare:.2f})")
                          for key, value in result.items()))


if __name__ == "__main__":
    main()
