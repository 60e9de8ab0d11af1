"""The degradation experiment of He et al. (2016), reproducible: plain18, plain34, resnet18_a and resnet34_a
(option-A identity shortcuts, exactly the plain twins' parameters) trained on the same data with the same
budget; per-epoch training loss/accuracy and validation accuracy go to a small JSON that the Course-concepts
page shows (``explorer/training/results/degradation.json``, committed).

Small setting (2 CPU cores, a few minutes): ``python scripts/degradation.py``
  scikit-learn's 1,797 real 8×8 digits resized to 32×32, SGD with momentum, 8 epochs.
Full size on a GPU (the paper's setting is ImageNet; CIFAR-10 at 32×32 shows the same effect):
  ``python scripts/degradation.py --dataset cifar10 --epochs 60 --batch-size 128 --lr 0.1 --device cuda
  --out runs/degradation_cifar10.json``  (needs CIFAR-10 downloaded once; ~10 min on one modern GPU).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.training import Epoch, Finished, TrainConfig, degradation_configs, train  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "explorer" / "training" / "results" / "degradation.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    base = TrainConfig(dataset=args.dataset, image_size=args.image_size, epochs=args.epochs,
                       batch_size=args.batch_size, optimizer="sgd", lr=args.lr, momentum=0.9, seed=args.seed,
                       device=args.device, amp=False)
    runs = []
    for config in degradation_configs(base):
        started = time.perf_counter()
        epochs, test = [], None
        for event in train(config):
            if isinstance(event, Epoch) and not event.partial:
                epochs.append({"epoch": event.epoch, "train_loss": event.train_loss, "train_acc": event.train_acc,
                               "valid_loss": event.valid_loss, "valid_acc": event.valid_acc})
                print(f"{config.model:11s} epoch {event.epoch}: train loss {event.train_loss:.4f} "
                      f"acc {event.train_acc:.3f} | valid acc {event.valid_acc:.3f}", flush=True)
            elif isinstance(event, Finished):
                test = event.test_accuracy
        runs.append({"model": config.model, "epochs": epochs, "test_acc": test,
                     "seconds": round(time.perf_counter() - started, 1)})
    result = {"setting": {"dataset": args.dataset, "image_size": args.image_size, "epochs": args.epochs,
                          "batch_size": args.batch_size, "optimizer": "sgd", "momentum": 0.9, "lr": args.lr,
                          "seed": args.seed, "device": args.device},
              "command": "python scripts/degradation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
