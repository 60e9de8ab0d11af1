"""The training lab: one training loop, written as a generator, shared by the page, the CLI and the tests.

``train(config, run_dir)`` yields the events of ``explorer.train_events``: ``Started``, then ``Step`` (every
``log_every`` steps), ``Epoch`` (after each validation) and finally ``Finished``. Whoever consumes it decides
what to do with the events: the CLI prints them, ``explorer.train_worker.TrainingWorker`` (a thread the page
polls) stores them.

Reproducibility. A run's randomness comes from its own generators, not from torch's global one, so a run
gives the same numbers whatever else the process does (other users training, pages drawing random
augmentations): the initial weights are drawn inside ``torch.random.fork_rng`` seeded with the run's seed
(under a lock, since the global generator is shared; built twice and compared, so that a reseed or draw by
other code in between is noticed, retried, and at worst reported in ``Started.notes``); data order and augmentation come from a per-run
``torch.Generator``; ``nn.Dropout`` and torchvision's ``StochasticDepth`` layers are swapped for versions
that draw from the run's generator. (Functional dropout inside some torchvision models, e.g. Inception's
auxiliary head, still uses the global generator; CUDA kernels may also be non-deterministic.)

Speed. Data live in memory as uint8 tensors (on the GPU when training there), a batch is two index
operations, losses and accuracies accumulate on the device and are read back (one synchronisation) only
when a :class:`Step` is reported. On CUDA the forward pass runs under autocast (bfloat16 where supported,
else float16 with a gradient scaler).

Neighbours. ``explorer.train_build`` builds the run's network (seeded initial weights, the BatchNorm and
dropout toggles, pretrained backbones); ``explorer.train_parts`` holds the loop's pieces (augmentation,
run-seeded dropout, learning-rate schedule, optimiser, autocast); ``explorer.evaluation`` evaluates a model
and saves and reads a run's results; ``explorer.train_worker`` runs trainings in a background thread for
the page; ``explorer.train_figures`` draws the charts.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer import runs as runs_io
from explorer.datasets import DEFAULT_SHAPES_SAMPLES, DataBundle, load_dataset
from explorer.evaluation import _save_results, evaluate
from explorer.train_build import _check_forward, _construct, _load_pretrained, _toggles, build_seeded, natural_shape
from explorer.train_events import Epoch, Finished, Started, Step
from explorer.train_parts import (_autocast, _cpu_state, _main_output, _make_optimizer, _normalise, _on_device,
                                  _swap_random_layers, augment_batch, lr_factor)
from explorer.transfer import MODES, apply_mode, head_names, set_train_mode, trainable_counts

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "step", "cosine")
# The GoogLeNet paper weights each auxiliary classifier's loss by 0.3 during training.
AUX_LOSS_WEIGHT = 0.3


@dataclass
class TrainConfig:
    """Everything that defines a run (saved as ``config.json``)."""

    model: str = "mnist_cnn"  # registry name or "arch:<spec>"
    dataset: str = "shapes"  # shapes | mnist | fashion_mnist | cifar10 | folder or .zip path
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "adam"  # "sgd" (with momentum) | "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    schedule: str = "none"  # "none" | "step" (×0.1 at 1/3 and 2/3 of the epochs) | "cosine"
    weight_decay: float = 0.0
    augment: bool = False  # random shifts (and mirror images where the classes allow it)
    batch_norm: bool | None = None  # False: BatchNorm layers off; None keeps the model as defined
    dropout: float | None = None  # dropout before the classifier; None keeps the model as defined
    mode: str = "scratch"  # "scratch" | "feature_extract" | "fine_tune"
    backbone_lr_factor: float = 0.1  # fine_tune: backbone learning rate = lr × this
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    max_steps: int | None = None  # stop after this many optimiser steps (tests, quick looks)
    image_size: int | None = None  # None: the model's natural input size
    samples: int = DEFAULT_SHAPES_SAMPLES  # shapes: images generated (all splits)
    max_train_samples: int | None = None  # torchvision sets: use only this many training images
    ratios: tuple[float, float, float] = (0.7, 0.2, 0.1)  # folders and shapes: train/valid/test split
    amp: bool = True  # mixed precision on CUDA
    log_every: int = 10  # report a Step every this many optimiser steps
    cpu_threads: int | None = None  # CPU intra-op threads for this run; None: 1 for small networks, else torch's

    def validate(self) -> "TrainConfig":
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ValueError("epochs, batch size and log_every must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError("the learning rate must be a positive number")
        if self.weight_decay < 0 or not 0 < self.backbone_lr_factor <= 1:
            raise ValueError("weight decay must be ≥ 0 and the backbone factor in (0, 1]")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError("cpu_threads must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if self.image_size is not None and not 8 <= self.image_size <= 512:
            raise ValueError("image size must be between 8 and 512 pixels")
        return self

    def to_json(self) -> dict:
        data = asdict(self)
        data["ratios"] = list(self.ratios)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if "ratios" in values:
            values["ratios"] = tuple(values["ratios"])
        return cls(**values)


# --- preparing a run ---------------------------------------------------------------------------------------


@dataclass
class PreparedRun:
    config: TrainConfig
    data: DataBundle
    model: nn.Module
    heads: list[str]
    build: dict
    device: torch.device
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pretrained: bool
    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.data.input_shape

    def config_record(self) -> dict:
        """What ``config.json`` holds: the TrainConfig plus what is needed to rebuild and use the model."""
        return {**self.config.to_json(), "categories": self.data.classes, "input_shape": list(self.input_shape),
                "mean": list(self.mean), "std": list(self.std), "build": self.build, "heads": self.heads,
                "pretrained": self.pretrained, "counts": self.data.counts(), "device_used": str(self.device),
                "created": time.time(), "torch": torch.__version__}


def input_shape_for(config: TrainConfig) -> tuple[int, int, int]:
    channels, height, _ = natural_shape(config.model)
    size = config.image_size or height
    return channels, size, size


def load_data(config: TrainConfig) -> DataBundle:
    channels, size, _ = input_shape_for(config)
    return load_dataset(config.dataset, channels, size, seed=config.seed, samples=config.samples,
                        ratios=config.ratios, max_train_samples=config.max_train_samples)


def prepare(config: TrainConfig, data: DataBundle | None = None) -> PreparedRun:
    """Load the data, build the network (pretrained backbone for the transfer modes), check they fit."""
    from explorer.device import pick_device

    config.validate()
    device = pick_device(config.device)
    shape = input_shape_for(config)
    kwargs, surgery = _toggles(config)
    data = load_data(config) if data is None else data
    if data.input_shape != shape:
        raise ValueError(f"the data are {data.input_shape} but {config.model} needs {shape}")
    notes: list[str] = []
    base, pretrained = None, False
    if config.mode != "scratch":
        base, why = _load_pretrained(config.model)
        pretrained = base is not None
        if not pretrained:
            notes.append(f"pretrained weights unavailable ({why}): the backbone starts from random weights")
    use_builder = config.mode == "scratch" and not config.model.startswith("arch:")
    build: dict = {"head": "builder" if use_builder else "replaced", "kwargs": kwargs, "surgery": surgery,
                   "attrs": {}}
    model, reproducible = build_seeded(config.seed, lambda: _construct(
        config.model, data.num_classes, build, base=copy.deepcopy(base) if base is not None else None))
    if not reproducible:
        notes.append("other code kept drawing from torch's global random generator while this run was built: "
                      "its initial weights may not repeat exactly with the same seed")
    if getattr(model, "transform_input", False):
        build["attrs"]["transform_input"] = True  # pretrained GoogLeNet/Inception re-normalise their input
    heads = head_names(model)
    apply_mode(model, config.mode, heads)
    if pretrained and shape[0] == 3:
        from explorer.models import IMAGENET_MEAN, IMAGENET_STD

        mean, std = IMAGENET_MEAN, IMAGENET_STD  # what the pretrained backbone was trained with
    else:
        mean, std = data.mean, data.std
    _check_forward(model, shape, config.model)
    return PreparedRun(config, data, model, heads, build, device, tuple(mean), tuple(std), pretrained, notes)


# --- the loop ------------------------------------------------------------------------------------------------


def train(config: TrainConfig, run_dir: str | Path | None = None, stop: threading.Event | None = None,
          data: DataBundle | None = None, prepared: PreparedRun | None = None) -> Iterator[Started | Step | Epoch | Finished]:
    """Train one run, yielding events. With ``run_dir``, the run is saved there as it goes.

    ``stop`` (a ``threading.Event``) ends training at the next step: the best checkpoint so far is kept
    (if no epoch finished yet, the current weights are validated and saved), and the test set is
    evaluated on the best weights, so a stopped run is a complete, loadable run.
    """
    prep = prepared or prepare(config, data)
    threads = cpu_threads_for(prep) if prep.device.type == "cpu" else None
    previous = torch.get_num_threads()
    if threads:
        # Per thread with OpenMP (torch's CPU backend): other threads, e.g. other users' pages, keep theirs.
        torch.set_num_threads(threads)
    try:
        yield from _train_loop(prep, run_dir, stop)
    finally:
        if threads:
            torch.set_num_threads(previous)


SMALL_NETWORK_PARAMS = 1_000_000


def cpu_threads_for(prep: "PreparedRun") -> int:
    """Threads for a CPU run: the config's, else 1 for small networks (waking OpenMP workers costs more
    than the little work they would share, and on a busy 2-core machine they stall waiting for each
    other: measured 20× slower than one thread for mnist_cnn), else torch's default."""
    if prep.config.cpu_threads:
        return prep.config.cpu_threads
    params = sum(p.numel() for p in prep.model.parameters())
    return 1 if params < SMALL_NETWORK_PARAMS else torch.get_num_threads()


def _train_loop(prep: "PreparedRun", run_dir: str | Path | None,
                stop: threading.Event | None) -> Iterator[Started | Step | Epoch | Finished]:
    config, data, model, device = prep.config, prep.data, prep.model, prep.device
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        runs_io.write_json_atomic(run_dir / runs_io.CONFIG_FILE, prep.config_record())
        runs_io.write_json_atomic(run_dir / runs_io.METRICS_FILE, {"epochs": [], "status": "running"})

    generator = torch.Generator().manual_seed(config.seed)
    # Dropout masks are drawn on the device holding the activations.
    device_generator = generator if device.type == "cpu" else torch.Generator(device=device).manual_seed(config.seed)
    _swap_random_layers(model, device_generator)
    model.to(device)
    optimizer = _make_optimizer(model, config, prep.heads)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    use_scaler = config.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    mean_t = torch.tensor(prep.mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(prep.std, device=device).view(1, -1, 1, 1)

    train_set = _on_device(data.train, device)
    n = len(train_set)
    batch = min(config.batch_size, n)
    steps_per_epoch = max(1, math.ceil(n / batch))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    counts = trainable_counts(model, prep.heads)
    yield Started(run_dir, config.model, data.classes, data.input_shape, data.counts(), str(device), steps_per_epoch,
                  total_steps, counts.for_mode(config.mode), counts.total, prep.pretrained, prep.notes)

    history: list[dict] = []
    best: dict | None = None  # {"epoch", "score": (accuracy, -loss), "state": CPU state_dict}
    global_step = 0
    stopped = False
    for epoch in range(1, config.epochs + 1):
        set_train_mode(model, config.mode, prep.heads)
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        report_loss = torch.zeros((), device=device)
        report_correct = torch.zeros((), device=device, dtype=torch.long)
        report_seen, report_time = 0, time.perf_counter()
        for b in range(steps_per_epoch):
            if stop is not None and stop.is_set():
                stopped = True
                break
            idx = order[b * batch:(b + 1) * batch]
            if len(idx) < 2 and seen:  # a batch of one breaks BatchNorm; it is at most one image
                break
            x = train_set.images[idx]
            y = train_set.labels[idx]
            if config.augment:
                x = augment_batch(x.float().div_(255), generator, data.flip_ok).sub_(mean_t).div_(std_t)
            else:
                x = _normalise(x, mean_t, std_t)
            factor = lr_factor(config.schedule, global_step, total_steps, steps_per_epoch, config.epochs)
            for group, base_lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base_lr * factor
            with _autocast(device, config.amp):
                logits, aux = _main_output(model(x))
                loss = F.cross_entropy(logits, y)
                total = loss + AUX_LOSS_WEIGHT * sum(F.cross_entropy(a, y) for a in aux) if aux else loss
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()
            global_step += 1
            # Accumulated on the device: reading a number back forces a synchronisation, so only reports do.
            report_loss += loss.detach() * len(idx)
            report_correct += (logits.detach().argmax(1) == y).sum()
            report_seen += len(idx)
            seen += len(idx)
            last = global_step >= total_steps or b == steps_per_epoch - 1
            if global_step % config.log_every == 0 or last:
                loss_sum += report_loss
                correct += report_correct
                now = time.perf_counter()
                yield Step(epoch, global_step, total_steps, float(report_loss.item()) / report_seen,
                           float(report_correct.item()) / report_seen, base_lrs[-1] * factor,
                           report_seen / max(now - report_time, 1e-9))
                report_loss.zero_()
                report_correct.zero_()
                report_seen, report_time = 0, now
            if global_step >= total_steps:
                break
        loss_sum += report_loss
        correct += report_correct
        partial = stopped or (global_step >= total_steps and b < steps_per_epoch - 1)
        if stopped and best is not None:
            break  # keep the best checkpoint as it is (no epoch record for the unfinished epoch)
        valid = evaluate(model, data.valid, prep.mean, prep.std, data.classes, device, amp=config.amp) \
            if len(data.valid) else None
        train_loss = float(loss_sum.item()) / seen if seen else None  # None: stopped before the first step
        train_acc = float(correct.item()) / seen if seen else None
        score = (valid.accuracy, -valid.loss) if valid else (train_acc or 0.0, -(train_loss or 0.0))
        is_best = best is None or score > best["score"]
        if is_best:
            best = {"epoch": epoch, "score": score, "state": _cpu_state(model)}
            if run_dir is not None:
                runs_io.save_checkpoint(run_dir, best["state"], epoch=epoch, valid_acc=float(score[0]))
        event = Epoch(epoch, train_loss, train_acc, valid.loss if valid else None, valid.accuracy if valid else None,
                      optimizer.param_groups[-1]["lr"], time.perf_counter() - started, is_best, partial)
        history.append(event.record())
        if run_dir is not None:
            runs_io.write_json_atomic(run_dir / runs_io.METRICS_FILE, {
                "epochs": history, "status": "running", "best_epoch": best["epoch"], "test_accuracy": None})
        yield event
        if stopped or global_step >= total_steps:
            break

    model.load_state_dict(best["state"])
    evaluation = evaluate(model, data.test, prep.mean, prep.std, data.classes, device, amp=config.amp) \
        if len(data.test) else None
    test_accuracy = evaluation.accuracy if evaluation else None
    if run_dir is not None:
        _save_results(run_dir, history, best["epoch"], stopped, evaluation, data.test)
    model.eval()
    yield Finished(run_dir, stopped, test_accuracy, best["epoch"], history, evaluation)


def run_training(config: TrainConfig, run_dir: str | Path | None = None, **kwargs: Any) -> Finished:
    """Consume :func:`train` and return its :class:`Finished` event (scripts and tests)."""
    finished = None
    for event in train(config, run_dir, **kwargs):
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    return finished


# --- the degradation experiment ----------------------------------------------------------------------------

DEGRADATION_DEPTHS = (18, 34)


def degradation_configs(base: TrainConfig, depth: int = 18) -> list[TrainConfig]:
    """``plainN`` and ``resnetN`` with the same data, seed and hyper-parameters (trained from scratch)."""
    if depth not in DEGRADATION_DEPTHS:
        raise ValueError(f"depth must be one of {DEGRADATION_DEPTHS}")
    common = dict(mode="scratch", batch_norm=None, dropout=None)
    return [replace(base, model=f"plain{depth}", **common), replace(base, model=f"resnet{depth}", **common)]
