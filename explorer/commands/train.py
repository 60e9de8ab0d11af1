"""``train``: train a network and save the run, printing per-epoch metrics.

    python -m explorer train --model mnist_cnn --dataset shapes --epochs 5 --out runs/mnist-shapes
"""
from __future__ import annotations

import argparse
import signal
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a network on shapes, MNIST, Fashion-MNIST, CIFAR-10 or a folder of images",
        description="Train MODEL on DATASET and save the run (config.json, metrics.json, best.pt) in --out. "
                    "The run then appears in every page of the app.")
    parser.add_argument("--model", required=True,
                        help='registry name (e.g. mnist_cnn, resnet18) or "arch:<spec>" (see `summary --arch`)')
    parser.add_argument("--dataset", default="shapes",
                        help="shapes | mnist | fashion_mnist | cifar10 | PATH to a folder of class folders or a .zip")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: 1e-3 Adam, 0.01 SGD)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--schedule", choices=("none", "step", "cosine"), default="none")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--augment", action="store_true", help="random shifts (and mirroring where it keeps the class)")
    parser.add_argument("--mode", choices=("scratch", "feature_extract", "fine_tune"), default="scratch",
                        help="scratch, or transfer learning from ImageNet weights")
    parser.add_argument("--image-size", type=int, default=None, help="square input size (default: the model's)")
    parser.add_argument("--samples", type=int, default=None, help="shapes: number of images generated")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", required=True, help="run folder to create, e.g. runs/NAME")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import threading
    from pathlib import Path

    from explorer.data import DEFAULT_SHAPES_SAMPLES
    from explorer.models import check_run_name
    from explorer.training import Epoch, Finished, Started
    from explorer.training import TrainConfig, train

    out = Path(args.out)
    check_run_name(out.name)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already exists and is not empty: choose another --out")
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else 0.01)
    config = TrainConfig(model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch, lr=lr,
                         optimizer=args.optimizer, schedule=args.schedule, weight_decay=args.weight_decay,
                         augment=args.augment, mode=args.mode, image_size=args.image_size,
                         samples=args.samples or DEFAULT_SHAPES_SAMPLES, max_steps=args.max_steps, seed=args.seed,
                         device=args.device)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: (stop.set(), print(
        "\nstopping after this step (the best checkpoint is kept)…", file=sys.stderr)))
    try:
        for event in train(config, out, stop=stop):
            if isinstance(event, Started):
                counts = {split: sum(per_class.values()) for split, per_class in event.counts.items()}
                print(f"{event.model} on {config.dataset}: {len(event.classes)} classes "
                      f"({', '.join(event.classes[:10])}{'…' if len(event.classes) > 10 else ''}), "
                      f"input {'x'.join(map(str, event.input_shape))}, train/valid/test "
                      f"{counts['train']}/{counts['valid']}/{counts['test']}, device {event.device}, "
                      f"{event.trainable:,} trainable of {event.total_params:,} parameters")
                for note in event.notes:
                    print(f"note: {note}", file=sys.stderr)
            elif isinstance(event, Epoch):
                print(f"epoch {event.epoch:3d}  train loss {_num(event.train_loss)} acc {_num(event.train_acc)}  "
                      f"valid loss {_num(event.valid_loss)} acc {_num(event.valid_acc)}  lr {event.lr:.2e}  "
                      f"{event.seconds:.1f}s{'  *best' if event.best else ''}{'  (partial)' if event.partial else ''}",
                      flush=True)
            elif isinstance(event, Finished):
                print(f"{'stopped' if event.stopped else 'finished'}: test accuracy {_num(event.test_accuracy)} "
                      f"(best epoch {event.best_epoch}); saved in {out}")
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
