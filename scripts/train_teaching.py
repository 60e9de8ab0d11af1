"""Train the built-in teaching networks and write their weights into the repository.

    python scripts/train_teaching.py                 # all of them (a few minutes on 2 CPU cores)
    python scripts/train_teaching.py tiny_vgg        # one
    python scripts/train_teaching.py --out /tmp/w    # somewhere else (tests, comparisons)

Each network is trained by the project's own training loop (``explorer.training``) on data every machine has:
``tiny_vgg`` on the built-in colour shapes, ``mnist_cnn`` and ``lenet5`` on scikit-learn's 1,797 real handwritten
digits. Runs are seeded and use one CPU thread, so they repeat. The script prints the test accuracy each network
reached on its held-out test split; those are the figures the app and the README show. It writes
``<name>.pt`` (the state_dict) and ``<name>.json`` (dataset, classes, test accuracy, normalisation, input shape,
the recipe) per network; ``explorer.models.load_model(name)`` loads them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer.models import WEIGHTS_DIR, write_builtin_weights  # noqa: E402
from explorer.training import TrainConfig, prepare, run_training  # noqa: E402

# One recipe per network: small enough to train in minutes on a laptop CPU, enough to be clearly right.
RECIPES: dict[str, TrainConfig] = {
    # tiny_vgg (three padded blocks + global average pooling, issue 13): 99.6 % held-out, every drawn shape of
    # tests/test_teaching_weights.py right, Grad-CAM median 2.6× denser on the shape (scripts/exp_tiny_vgg_cam.py).
    "tiny_vgg": TrainConfig(model="tiny_vgg", dataset="shapes", samples=12000, epochs=10, batch_size=64, lr=2e-3,
                            schedule="cosine", augment=True, seed=0),
    "mnist_cnn": TrainConfig(model="mnist_cnn", dataset="digits", epochs=60, batch_size=32, lr=3e-3,
                             schedule="cosine", augment=True, seed=0),
    "lenet5": TrainConfig(model="lenet5", dataset="digits", epochs=60, batch_size=32, lr=1e-3,
                          schedule="cosine", augment=True, seed=0),
}


def train_teaching_network(name: str, folder: Path, device: str = "cpu") -> dict:
    """Train ``name`` by its recipe and write its weights; returns the metadata written beside them."""
    config = RECIPES[name]
    config.device, config.cpu_threads, config.log_every = device, 1, 1000
    started = time.perf_counter()
    prep = prepare(config)
    finished = run_training(config, prepared=prep)  # leaves the best epoch's weights in prep.model
    meta = {
        "model": name, "dataset": config.dataset, "classes": list(prep.data.classes),
        "test_accuracy": round(float(finished.test_accuracy), 4), "test_images": len(prep.data.test),
        "best_epoch": finished.best_epoch, "mean": list(prep.mean), "std": list(prep.std),
        "input_shape": list(prep.input_shape), "recipe": config.to_json(),
        "trained_by": "scripts/train_teaching.py",
    }
    path = write_builtin_weights(name, prep.model.state_dict(), meta, folder)
    print(f"{name}: test accuracy {finished.test_accuracy:.4f} on {len(prep.data.test)} held-out {config.dataset} "
          f"images (best epoch {finished.best_epoch} of {config.epochs}, {time.perf_counter() - started:.0f} s); "
          f"{path.stat().st_size / 1024:.0f} KB in {path}", flush=True)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=list(RECIPES), help=f"any of {', '.join(RECIPES)} (default: all)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for the weight files")
    parser.add_argument("--device", default="cpu", help="cpu (default: the figures repeat exactly) | auto | cuda")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in RECIPES]
    if unknown:
        parser.error(f"no recipe for {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    for name in args.models:
        train_teaching_network(name, args.out, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
