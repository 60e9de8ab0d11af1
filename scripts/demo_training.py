"""Does the default training converge in a live demo? Prints test accuracy and seconds of the CLI's defaults.

    python scripts/demo_training.py              # mnist_cnn on shapes, seeds 0, 1, 2
    python scripts/demo_training.py --seeds 0

Runs exactly what `python -m explorer train --model mnist_cnn --dataset shapes --out NAME` runs (the CLI's own
parser supplies every default; the Training lab uses the same constants, explorer.training.DEMO_*), each seed into
a temporary runs folder, and prints one line per seed: test accuracy, wall-clock seconds including the generation
of the images, the process's CPU seconds over the same span, and the load average. Small networks train on one thread
(``explorer.training.cpu_threads_for``), so on a shared, loaded machine the CPU seconds are the robust figure: about
what the run takes on an otherwise idle one. The README's training figure comes from here.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist_cnn")
    parser.add_argument("--dataset", default="shapes")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from explorer.cli import main as cli_main

    accuracies = []
    with tempfile.TemporaryDirectory() as runs:
        os.environ["EXPLORER_RUNS_DIR"] = runs  # the CLI confines --out to the runs folder
        for seed in (int(s) for s in args.seeds.split(",")):
            out = io.StringIO()
            started, cpu_started = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(out):
                code = cli_main(["train", "--model", args.model, "--dataset", args.dataset, "--seed", str(seed),
                                 "--device", args.device, "--out", str(Path(runs) / f"demo-{seed}")])
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            found = re.search(r"test accuracy ([0-9.]+)", out.getvalue())
            if code or not found:
                print(out.getvalue(), file=sys.stderr)
                return 1
            accuracy = float(found.group(1))
            accuracies.append(accuracy)
            print(f"{args.model} on {args.dataset}, CLI defaults, seed {seed}: test accuracy {accuracy:.1%} "
                  f"in {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU "
                  f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)
    print(f"lowest test accuracy over {len(accuracies)} seeds: {min(accuracies):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
