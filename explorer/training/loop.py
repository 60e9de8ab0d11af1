"""The training lab: one training loop, written as a generator, shared by the page, the CLI and the tests.

``train(config, run_dir)`` yields the events of ``explorer.training.events``: ``Started``, then ``Step`` (every
``log_every`` steps), ``Epoch`` (after each validation) and finally ``Finished``. Whoever consumes it decides
what to do with the events: the CLI prints them, ``explorer.training.worker.TrainingWorker`` (a thread the page
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

Neighbours. ``explorer.training.build`` builds the run's network (seeded initial weights, the BatchNorm and
dropout toggles, pretrained backbones); ``explorer.training.parts`` holds the loop's pieces (augmentation,
run-seeded dropout, learning-rate schedule, optimiser, autocast); ``explorer.training.evaluation`` evaluates a model
and saves and reads a run's results; ``explorer.training.worker`` runs trainings in a background thread for
the page; ``explorer.training.figures`` draws the charts.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.models import runfolder as runs_io
from explorer.data import DataBundle, load_dataset
from explorer.training.evaluation import save_results, evaluate
from explorer.models import ModelRef, construct_network
from explorer.training.build import build_seeded, check_forward, load_pretrained, natural_shape, toggles_of
from explorer.training.events import Epoch, Finished, Started, Step
from explorer.training.parts import autocast_for, cpu_state, main_output, make_optimizer, normalise_uint8, on_device, swap_random_layers, augment_batch, lr_factor
from explorer.training.config import AUX_LOSS_WEIGHT, TrainConfig
from explorer.training.distributed import (DistContext, batch_bounds, device_for, local_share, loss_weight,
                                           sum_over_ranks, wrap)
from explorer.models import head_names
from explorer.training.transfer import apply_mode, check_trains_something, set_train_mode, trainable_counts

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

    def config_record(self, distributed: DistContext | None = None) -> dict:
        """What ``config.json`` holds: the TrainConfig plus what is needed to rebuild and use the model."""
        setup = distributed.record() if distributed else {"world_size": 1, "backend": None, "launcher": None}
        return {**self.config.to_json(), "distributed": setup, "categories": self.data.classes, "input_shape": list(self.input_shape),
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
    from explorer.core import pick_device

    config.validate()
    device = pick_device(config.device)
    shape = input_shape_for(config)
    kwargs, surgery = toggles_of(config)
    data = load_data(config) if data is None else data
    if data.input_shape != shape:
        raise ValueError(f"the data are {data.input_shape} but {config.model} needs {shape}")
    notes: list[str] = []
    base, pretrained, base_normalization = None, False, None
    if config.mode != "scratch":
        base, why, base_normalization = load_pretrained(config.model)
        pretrained = base is not None
        if not pretrained:
            notes.append(f"pretrained weights unavailable ({why}): the backbone starts from random weights")
    use_builder = config.mode == "scratch" and ModelRef.parse(config.model).kind == "registry"
    build: dict = {"head": "builder" if use_builder else "replaced", "kwargs": kwargs, "surgery": surgery,
                   "attrs": {}}
    model, reproducible = build_seeded(config.seed, lambda: construct_network(
        config.model, data.num_classes, build, base=copy.deepcopy(base) if base is not None else None))
    if not reproducible:
        notes.append("other code kept drawing from torch's global random generator while this run was built: "
                      "its initial weights may not repeat exactly with the same seed")
    if getattr(model, "transform_input", False):
        build["attrs"]["transform_input"] = True  # pretrained GoogLeNet/Inception re-normalise their input
    heads = head_names(model)
    apply_mode(model, config.mode, heads)
    check_trains_something(model, config.mode, heads)  # before any data moves: LeNet-5's fixed RBF head
    if pretrained and base_normalization is not None and len(base_normalization[0]) == shape[0]:
        # What the starting weights were trained with: ImageNet's statistics for torchvision's weights, the
        # built-in teaching weights' own (their JSON), not the new data's.
        mean, std = base_normalization
    else:
        mean, std = data.mean, data.std
    check_forward(model, shape, config.model)
    return PreparedRun(config, data, model, heads, build, device, tuple(mean), tuple(std), pretrained, notes)


# --- the loop ------------------------------------------------------------------------------------------------


def train(config: TrainConfig, run_dir: str | Path | None = None, stop: threading.Event | None = None,
          data: DataBundle | None = None, prepared: PreparedRun | None = None,
          distributed: DistContext | None = None) -> Iterator[Started | Step | Epoch | Finished]:
    """Train one run, yielding events. With ``run_dir``, the run is saved there as it goes.

    ``distributed`` (from :func:`explorer.training.distributed.from_environment` under torchrun): this process
    is one rank of a DistributedDataParallel run; every rank yields the same events, rank 0 alone writes.

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
        yield from _train_loop(prep, run_dir, stop, distributed)
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


def _train_loop(prep: "PreparedRun", run_dir: str | Path | None, stop: threading.Event | None,
                distributed: DistContext | None = None) -> Iterator[Started | Step | Epoch | Finished]:
    config, data, model = prep.config, prep.data, prep.model
    device = device_for(distributed, prep.device)
    run_dir = Path(run_dir) if run_dir is not None else None
    if distributed is not None and not distributed.is_main:
        run_dir = None  # rank 0 alone writes the run; the others train and evaluate the same model
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        runs_io.write_json_atomic(run_dir / runs_io.CONFIG_FILE, prep.config_record(distributed))
        runs_io.write_json_atomic(run_dir / runs_io.METRICS_FILE, {"epochs": [], "status": "running"})

    # The data order comes from its own generator, identical on every rank; augmentation and dropout draw from a
    # second one (per rank under torchrun), so ranks that draw different amounts keep the same order.
    order_generator = torch.Generator().manual_seed(config.seed)
    rank = distributed.rank if distributed else 0
    generator = torch.Generator().manual_seed(config.seed + 7919 * (rank + 1))
    # Dropout masks are drawn on the device holding the activations.
    device_generator = generator if device.type == "cpu" else \
        torch.Generator(device=device).manual_seed(config.seed + 7919 * (rank + 1))
    swap_random_layers(model, device_generator)
    model.to(device)
    forward = wrap(model, distributed)
    optimizer = make_optimizer(model, config, prep.heads)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    use_scaler = config.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    mean_t = torch.tensor(prep.mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(prep.std, device=device).view(1, -1, 1, 1)

    train_set = on_device(data.train, device)
    n = len(train_set)
    batch = min(config.batch_size, n)
    bounds = batch_bounds(n, batch, min_last=max(2, distributed.world_size if distributed else 1))
    steps_per_epoch = len(bounds)
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
        order = torch.randperm(n, generator=order_generator).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        report_loss = torch.zeros((), device=device)
        report_correct = torch.zeros((), device=device, dtype=torch.long)
        report_seen, report_time = 0, time.perf_counter()
        for b, (start, end) in enumerate(bounds):
            if stop is not None and stop.is_set():
                stopped = True
                break
            global_idx = order[start:end]
            idx = local_share(global_idx, distributed)
            x = train_set.images[idx]
            y = train_set.labels[idx]
            if config.augment:
                x = augment_batch(x.float().div_(255), generator, data.flip_ok).sub_(mean_t).div_(std_t)
            else:
                x = normalise_uint8(x, mean_t, std_t)
            factor = lr_factor(config.schedule, global_step, total_steps, steps_per_epoch, config.epochs)
            for group, base_lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base_lr * factor
            with autocast_for(device, config.amp):
                logits, aux = main_output(forward(x))
                loss = F.cross_entropy(logits, y)
                total = loss + AUX_LOSS_WEIGHT * sum(F.cross_entropy(a, y) for a in aux) if aux else loss
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total * loss_weight(len(idx), len(global_idx), distributed)).backward()
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
                # Every rank reaches the same report points, so the sums over ranks line up.
                reported = sum_over_ranks(torch.stack([report_loss.float(), report_correct.float(),
                                                       torch.tensor(float(report_seen), device=device)]), distributed)
                r_loss, r_correct, r_seen = (float(v) for v in reported.tolist())
                yield Step(epoch, global_step, total_steps, r_loss / r_seen, r_correct / r_seen, base_lrs[-1] * factor,
                           r_seen / max(now - report_time, 1e-9))
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
        epoch_totals = sum_over_ranks(torch.stack([loss_sum.float(), correct.float(),
                                                   torch.tensor(float(seen), device=device)]), distributed)
        loss_total, correct_total, seen_total = (float(v) for v in epoch_totals.tolist())
        seen = int(seen_total)  # over every rank: each training image once per full epoch
        train_loss = loss_total / seen if seen else None  # None: stopped before the first step
        train_acc = correct_total / seen if seen else None
        score = (valid.accuracy, -valid.loss) if valid else (train_acc or 0.0, -(train_loss or 0.0))
        is_best = best is None or score > best["score"]
        if is_best:
            best = {"epoch": epoch, "score": score, "state": cpu_state(model)}
            if run_dir is not None:
                # chosen on the validation split, or on the training metrics when there is none (named as such)
                chosen_on = {"valid_acc": valid.accuracy} if valid else {"train_acc": float(train_acc or 0.0)}
                runs_io.save_checkpoint(run_dir, best["state"], epoch=epoch, **chosen_on)
        event = Epoch(epoch, train_loss, train_acc, valid.loss if valid else None, valid.accuracy if valid else None,
                      optimizer.param_groups[-1]["lr"], time.perf_counter() - started, is_best, partial, samples=seen)
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
        save_results(run_dir, history, best["epoch"], stopped, evaluation, data.test)
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


def degradation_configs(base: TrainConfig, depth: int | None = None) -> list[TrainConfig]:
    """He et al.'s Table 2 comparison, like for like: plain18, plain34, resnet18_a and resnet34_a (option-A
    identity shortcuts: exactly the parameters of the plain twin) with the same data, seed and
    hyper-parameters, trained from scratch. ``depth`` (18 or 34) keeps only that depth's plain/residual pair;
    all four show the degradation itself (the deeper plain network training worse than the shallower one)."""
    if depth is not None and depth not in DEGRADATION_DEPTHS:
        raise ValueError(f"depth must be one of {DEGRADATION_DEPTHS}")
    depths = DEGRADATION_DEPTHS if depth is None else (depth,)
    common = dict(mode="scratch", batch_norm=None, dropout=None)
    return ([replace(base, model=f"plain{d}", **common) for d in depths]
            + [replace(base, model=f"resnet{d}_a", **common) for d in depths])
