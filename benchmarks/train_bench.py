"""Training-lab benchmark (not a test): prints figures, asserts nothing.

1. Throughput: the app's training loop (``explorer.training.loop.train``, with its progress events) against a
   bare PyTorch loop doing the same work — same model and initial weights, same in-memory data, batch size,
   optimiser, normalisation, device and precision. Each loop trains one epoch; runs alternate and the
   median of each is compared. Target: app ≥ 0.9 × bare.
2. Time to accuracy: ``mnist_cnn`` on the built-in ``shapes`` dataset (1×28×28), wall time including data
   generation and the final test evaluation. Target: ≥ 95 % test accuracy within a minute on 2 CPU cores.

    python benchmarks/train_bench.py [--device cpu|cuda] [--model mnist_cnn] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from explorer.data import load_shapes  # noqa: E402
from explorer.training import Started, Step  # noqa: E402
from explorer.training import autocast_for  # noqa: E402
from explorer.training import TrainConfig, cpu_threads_for, input_shape_for, prepare, train  # noqa: E402


def app_epoch(config: TrainConfig, data) -> float:
    """Images per second of one training epoch of the app loop (validation and test excluded)."""
    start = end = None
    images = 0
    for event in train(config, None, data=data):
        if isinstance(event, Started):
            start = time.perf_counter()
        elif isinstance(event, Step):
            end = time.perf_counter()
            images = min(event.step * config.batch_size, len(data.train))
        elif event.kind == "epoch":
            break  # the generator is closed here: no test evaluation
    return images / (end - start)


def bare_epoch(config: TrainConfig, data) -> float:
    """The same epoch as a textbook loop: shuffle, slice, normalise, forward, loss, backward, step."""
    prep = prepare(config, data)  # same network and initial weights as the app loop
    model, device = prep.model.to(prep.device), prep.device
    images, labels = data.train.images.to(device), data.train.labels.to(device)
    mean = torch.tensor(prep.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, -1, 1, 1)
    optimizer = (torch.optim.Adam(model.parameters(), lr=config.lr) if config.optimizer == "adam"
                 else torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum))
    generator = torch.Generator().manual_seed(config.seed)
    previous = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads_for(prep))  # the same threads the app loop uses
    model.train()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    order = torch.randperm(len(labels), generator=generator).to(device)
    for b in range(0, len(labels), config.batch_size):
        idx = order[b:b + config.batch_size]
        x = (images[idx].float() / 255 - mean) / std
        with autocast_for(device, config.amp):
            loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()  # wait for the device
    elapsed = time.perf_counter() - start
    torch.set_num_threads(previous)
    return len(labels) / elapsed


def throughput(args: argparse.Namespace) -> None:
    config = TrainConfig(model=args.model, dataset="shapes", epochs=1, batch_size=args.batch, lr=1e-3,
                         device=args.device, image_size=args.image_size, log_every=10)
    channels, size, _ = input_shape_for(config)
    data = load_shapes(channels, size, seed=0, samples=args.samples)
    app, bare = [], []
    app_epoch(config, data), bare_epoch(config, data)  # warm-up (allocator, kernels, cuDNN autotune)
    for _ in range(args.repeats):  # alternate, so background load hits both alike
        app.append(app_epoch(config, data))
        bare.append(bare_epoch(config, data))
    prep = prepare(replace(config), data)
    device = prep.device
    print(f"[throughput] {args.model} {channels}x{size}x{size}, batch {args.batch}, "
          f"{len(data.train)} images/epoch, device {device}"
          + (f" ({torch.cuda.get_device_name(device)}, autocast)" if device.type == "cuda" else
             f" ({cpu_threads_for(prep)} of {torch.get_num_threads()} threads)"))
    print(f"  app loop : median {statistics.median(app):9.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in app)})")
    print(f"  bare loop: median {statistics.median(bare):9.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in bare)})")
    print(f"  ratio app/bare: {statistics.median(app) / statistics.median(bare):.3f}  (target >= 0.9)")


def time_to_accuracy(args: argparse.Namespace) -> None:
    config = TrainConfig(model="mnist_cnn", dataset="shapes", samples=args.tta_samples, epochs=args.tta_epochs,
                         batch_size=64, optimizer="adam", lr=3e-3, schedule="cosine", device=args.device, seed=0)
    start = time.perf_counter()
    finished = None
    for event in train(config, None):
        if event.kind == "epoch":
            print(f"  epoch {event.epoch}: valid acc {event.valid_acc:.3f}  ({time.perf_counter() - start:.1f} s)")
        if event.kind == "finished":
            finished = event
    elapsed = time.perf_counter() - start
    print(f"[time to accuracy] mnist_cnn on shapes ({config.samples} images, 7:2:1), {config.epochs} epochs, "
          f"Adam 3e-3 cosine: test accuracy {finished.test_accuracy * 100:.1f} % in {elapsed:.1f} s "
          f"including data generation (target >= 95 % within 60 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="mnist_cnn")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tta-samples", type=int, default=30000)
    parser.add_argument("--tta-epochs", type=int, default=10)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput(args)
    if not args.skip_accuracy:
        time_to_accuracy(args)


if __name__ == "__main__":
    main()
