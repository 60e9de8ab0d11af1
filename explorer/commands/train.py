"""``train``: train a network and save the run, printing per-epoch metrics.

    python -m explorer train --model mnist_cnn --dataset shapes --out runs/mnist-shapes
"""
from __future__ import annotations

import argparse
import os
import signal
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a network on shapes, MNIST, Fashion-MNIST, CIFAR-10 or a folder of images",
        description="Train MODEL on DATASET and save the run (config.json, metrics.json, best.pt) in --out. "
                    "The run then appears in every page of the app. Under `torchrun --nproc_per_node=N -m explorer "
                    "train ...` the ranks train one DistributedDataParallel run (gloo on CPU, NCCL on CUDA); "
                    "--batch is the global batch, rank 0 writes the run.")
    parser.add_argument("--model", required=True,
                        help='registry name (e.g. mnist_cnn, resnet18) or "arch:<spec>" (see `summary --arch`)')
    parser.add_argument("--dataset", default="shapes",
                        help="shapes | mnist | fashion_mnist | cifar10 | PATH to a folder of class folders or a .zip")
    parser.add_argument("--epochs", type=int, default=10)  # explorer.training.DEMO_EPOCHS (light --help)
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: 3e-3 Adam, 0.01 SGD)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--schedule", choices=("none", "step", "cosine"), default="cosine")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--augment", action="store_true", help="random shifts (and mirroring where it keeps the class)")
    parser.add_argument("--mode", choices=("scratch", "feature_extract", "fine_tune"), default="scratch",
                        help="scratch, or transfer learning from ImageNet weights")
    parser.add_argument("--image-size", type=int, default=None, help="square input size (default: the model's)")
    parser.add_argument("--samples", type=int, default=None, help="shapes: number of images generated (default 30000)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", required=True, help="run folder to create inside the runs folder ($EXPLORER_RUNS_DIR "
                                                     "or runs): a NAME, or runs/NAME")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import threading
    from pathlib import Path

    from explorer.models import confine_run_dir
    from explorer.training import Epoch, Finished, Started
    from explorer.training import TrainConfig, train
    from explorer.training.distributed import finish, from_environment

    out = confine_run_dir(args.out)  # inside the runs folder, whatever ".." the path holds
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone writes (and checks) the run
    if main_rank and out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already exists and is not empty: choose another --out")
    from explorer.training import DEMO_LR, DEMO_SHAPES_SAMPLES

    lr = args.lr if args.lr is not None else (DEMO_LR if args.optimizer == "adam" else 0.01)
    config = TrainConfig(model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch, lr=lr,
                         optimizer=args.optimizer, schedule=args.schedule, weight_decay=args.weight_decay,
                         augment=args.augment, mode=args.mode, image_size=args.image_size,
                         samples=DEMO_SHAPES_SAMPLES if args.samples is None else args.samples,  # 0 is refused, not "default"
                         max_steps=args.max_steps, seed=args.seed,
                         device=args.device)
    distributed = from_environment(args.device)
    say = print if main_rank else (lambda *a, **k: None)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: (stop.set(), print(
        "\nstopping after this step (the best checkpoint is kept)…", file=sys.stderr)))
    try:
        for event in train(config, out, stop=stop, distributed=distributed):
            if isinstance(event, Started):
                counts = {split: sum(per_class.values()) for split, per_class in event.counts.items()}
                say(f"{event.model} on {config.dataset}: {len(event.classes)} classes "
                      f"({', '.join(event.classes[:10])}{'…' if len(event.classes) > 10 else ''}), "
                      f"input {'x'.join(map(str, event.input_shape))}, train/valid/test "
                      f"{counts['train']}/{counts['valid']}/{counts['test']}, device {event.device}, "
                      f"{event.trainable:,} trainable of {event.total_params:,} parameters")
                for note in event.notes:
                    say(f"note: {note}", file=sys.stderr)
            elif isinstance(event, Epoch):
                say(f"epoch {event.epoch:3d}  train loss {_num(event.train_loss)} acc {_num(event.train_acc)}  "
                      f"valid loss {_num(event.valid_loss)} acc {_num(event.valid_acc)}  lr {event.lr:.2e}  "
                      f"{event.seconds:.1f}s{'  *best' if event.best else ''}{'  (partial)' if event.partial else ''}",
                      flush=True)
            elif isinstance(event, Finished):
                say(f"{'stopped' if event.stopped else 'finished'}: test accuracy {_num(event.test_accuracy)} "
                      f"(best epoch {event.best_epoch}); saved in {out}")
    finally:
        signal.signal(signal.SIGINT, previous)
        finish(distributed)
    return 0


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
