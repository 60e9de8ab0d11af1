"""The training lab: one training loop, written as a generator, shared by the page, the CLI and the tests.

``train(config, run_dir)`` yields :class:`Started`, then :class:`Step` (every ``log_every`` steps),
:class:`Epoch` (after each validation) and finally :class:`Finished`. Whoever consumes it decides what to do
with the events: the CLI prints them, :class:`TrainingWorker` (a thread the page polls) stores them.

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
"""
from __future__ import annotations

import copy
import functools
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer import runs as runs_io
from explorer.datasets import DEFAULT_SHAPES_SAMPLES, DataBundle, ImageTensors, load_dataset
from explorer.transfer import (MODES, apply_mode, find_head, head_names, parameter_groups, replace_head,
                               set_train_mode, trainable_counts)

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "step", "cosine")
# The GoogLeNet paper weights each auxiliary classifier's loss by 0.3 during training.
AUX_LOSS_WEIGHT = 0.3
MAX_MISCLASSIFIED_SAVED = 48


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


# --- events ------------------------------------------------------------------------------------------------


@dataclass
class Started:
    run_dir: Path | None
    model: str
    classes: list[str]
    input_shape: tuple[int, int, int]
    counts: dict[str, dict[str, int]]
    device: str
    steps_per_epoch: int
    total_steps: int
    trainable: int
    total_params: int
    pretrained: bool
    notes: list[str]
    kind: str = "started"


@dataclass
class Step:
    epoch: int
    step: int  # global optimiser step, 1-based
    total_steps: int
    loss: float  # mean training loss since the previous report
    accuracy: float
    lr: float
    images_per_s: float
    kind: str = "step"


@dataclass
class Epoch:
    epoch: int
    train_loss: float | None
    train_acc: float | None
    valid_loss: float | None
    valid_acc: float | None
    lr: float
    seconds: float
    best: bool  # this epoch produced the saved checkpoint
    partial: bool = False  # stopped (or max_steps reached) before the epoch's end
    kind: str = "epoch"

    def record(self) -> dict:
        data = asdict(self)
        data.pop("kind")
        return data


@dataclass
class Evaluation:
    """A model's results on one split."""

    accuracy: float
    loss: float
    confusion: np.ndarray  # [true, predicted] counts
    classes: list[str]
    misclassified: list[dict]  # {"index", "true", "pred", "confidence"}, most confident mistakes first

    def per_class_accuracy(self) -> dict[str, float]:
        totals = self.confusion.sum(axis=1)
        return {c: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan")
                for i, c in enumerate(self.classes)}


@dataclass
class Finished:
    run_dir: Path | None
    stopped: bool
    test_accuracy: float | None
    best_epoch: int | None
    history: list[dict]
    evaluation: Evaluation | None
    kind: str = "finished"


# --- building the network ----------------------------------------------------------------------------------

_INIT_LOCK = threading.Lock()


@contextmanager
def seeded(seed: int):
    """Run the block with torch's global CPU generator seeded to ``seed``, then restore it.

    Held under a lock: the global generator is one per process, and two runs initialising at once would
    otherwise interleave their draws.
    """
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_seeded(seed: int, make, attempts: int = 3) -> tuple[nn.Module, bool]:
    """``make()`` under :func:`seeded`, built twice and compared: (model, True when both builds agree).

    The lock keeps this module's runs apart (their training draws only from per-run generators), but
    other code may reseed or draw from torch's global generator meanwhile (a page building a model or
    sampling augmentations) and shift the initial weights. Two identical builds mean such a draw almost
    surely did not come in between; otherwise build again, and after ``attempts`` say so (False) rather
    than fail. (A best effort: interference that hits both builds identically cannot be seen.)
    """
    model = None
    for _ in range(attempts):
        with seeded(seed):
            model = make()
        with seeded(seed):
            twin = make()
        twin_state = twin.state_dict()
        if all(torch.equal(v, twin_state[k]) for k, v in model.state_dict().items()):
            return model, True
    return model, False


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _native_options(model: str) -> set[str]:
    """The toggles the model's builder takes itself (``mnist_cnn(batch_norm=..., dropout=...)``)."""
    import inspect

    if model.startswith("arch:"):
        return set()
    from explorer.models import get_entry

    return {"batch_norm", "dropout"} & set(inspect.signature(get_entry(model).builder).parameters)


@functools.lru_cache(maxsize=32)
def model_options(model: str) -> frozenset[str]:
    """The teaching toggles available for ``model``: ``dropout`` always (before the classifier), and
    ``batch_norm`` when the network has BatchNorm layers to switch off (or its builder takes the switch)."""
    from explorer.models import build_model

    native = _native_options(model)
    has_bn = "batch_norm" in native or any(isinstance(m, _BATCH_NORMS) for m in build_model(model).modules())
    return frozenset({"dropout"} | ({"batch_norm"} if has_bn else set()))


def _toggles(config: TrainConfig) -> tuple[dict, dict]:
    """(builder keyword arguments, surgery after building) for the BatchNorm/Dropout toggles."""
    native = _native_options(config.model)
    kwargs, surgery = {}, {}
    for option in ("batch_norm", "dropout"):
        value = getattr(config, option)
        if value is None:
            continue
        if option == "batch_norm" and option not in model_options(config.model):
            raise ValueError(f"{config.model} has no BatchNorm layers to switch")
        (kwargs if option in native else surgery)[option] = value
    return kwargs, surgery


def _apply_surgery(model: nn.Module, surgery: dict) -> None:
    """BatchNorm off: every BatchNorm layer becomes an identity. Dropout p: a dropout layer is put in
    front of the classifier head (``fc`` becomes ``Sequential(Dropout(p), fc)``)."""
    if surgery.get("batch_norm") is False:
        for parent in model.modules():
            for child_name, child in parent.named_children():
                if isinstance(child, _BATCH_NORMS):
                    setattr(parent, child_name, nn.Identity())
    if surgery.get("dropout"):
        head = find_head(model)
        parent_name, _, child = head.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Sequential(nn.Dropout(surgery["dropout"]), getattr(parent, child)))


def natural_shape(model: str) -> tuple[int, int, int]:
    from explorer.models import natural_input_shape

    return tuple(natural_input_shape(model))  # type: ignore[return-value]


def _construct(name: str, num_classes: int, build: dict, base: nn.Module | None = None) -> nn.Module:
    """Build the run's network (random init unless ``base`` is given). Call under :func:`seeded`."""
    kwargs = dict(build.get("kwargs", {}))
    if build["head"] == "builder":
        from explorer.models import get_entry

        model = get_entry(name).builder(num_classes=num_classes, **kwargs)
    else:
        if base is None:
            if name.startswith("arch:"):
                from explorer.archparse import build_arch

                base, _ = build_arch(name[len("arch:"):])
            else:
                from explorer.models import get_entry

                base = get_entry(name).builder(**kwargs)
        model = base
        replace_head(model, num_classes)
    _apply_surgery(model, build.get("surgery", {}))
    for attr, value in build.get("attrs", {}).items():
        setattr(model, attr, value)
    return model


def build_run_model(config: dict) -> nn.Module:
    """The network described by a run's ``config.json`` (random weights: the checkpoint supplies them)."""
    with seeded(int(config.get("seed", 0))):
        return _construct(config["model"], len(config["categories"]), config["build"]).eval()


def _load_pretrained(name: str) -> tuple[nn.Module | None, str]:
    """A fresh copy of the model with ImageNet weights, or (None, why not)."""
    if name.startswith("arch:"):
        return None, "custom networks have no pretrained weights"
    from explorer.models import load_model

    loaded = load_model(name, weights="pretrained", device="cpu")
    if not loaded.pretrained:
        return None, loaded.weights_status
    model = loaded.model
    if getattr(model, "AuxLogits", None) is not None:
        # torchvision's pretrained Inception-v3 keeps its auxiliary head, its random-init builder here does
        # not: drop it so that the run's checkpoint fits the network load_run rebuilds.
        model.AuxLogits = None
        model.aux_logits = False
    return model, ""


# --- data on the device ------------------------------------------------------------------------------------


def _normalise(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(255).sub_(mean).div_(std)


def augment_batch(x: torch.Tensor, generator: torch.Generator, flip: bool, shift: float = 0.1) -> torch.Tensor:
    """Random shifts of up to ``shift`` of the image size (edges repeated), and mirror images if ``flip``.

    ``x`` is a float batch in [0, 1]; every random number comes from ``generator`` (CPU), so runs repeat.
    """
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    if flip:
        signs = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        theta[:, 0, 0] = signs
    theta[:, :, 2] = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * shift)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class RunDropout(nn.Module):
    """``nn.Dropout`` / ``nn.Dropout2d`` drawing from the run's generator instead of torch's global one."""

    def __init__(self, p: float, generator: torch.Generator, channelwise: bool = False) -> None:
        super().__init__()
        self.p = p
        self.generator = generator
        self.channelwise = channelwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2) if self.channelwise else x.shape
        keep = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep / (1 - self.p)


class RunStochasticDepth(nn.Module):
    """torchvision's ``StochasticDepth`` (EfficientNet, ConvNeXt) drawing from the run's generator."""

    def __init__(self, p: float, mode: str, generator: torch.Generator) -> None:
        super().__init__()
        self.p, self.mode, self.generator = p, mode, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        survival = 1.0 - self.p
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(survival, generator=self.generator)
        return x * noise.div_(survival) if survival > 0 else x * noise


def _swap_random_layers(model: nn.Module, generator: torch.Generator) -> None:
    """Replace the layers that would draw from torch's global generator while training."""
    from torchvision.ops import StochasticDepth

    for parent in model.modules():
        for child_name, child in parent.named_children():
            if type(child) in (nn.Dropout, nn.Dropout2d):
                setattr(parent, child_name, RunDropout(child.p, generator, type(child) is nn.Dropout2d))
            elif type(child) is StochasticDepth:
                setattr(parent, child_name, RunStochasticDepth(child.p, child.mode, generator))


def _main_output(out: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main logits, auxiliary logits) from a plain tensor or GoogLeNet/Inception's named tuples."""
    if isinstance(out, torch.Tensor):
        return out, []
    main, *rest = out
    return main, [o for o in rest if isinstance(o, torch.Tensor)]


def lr_factor(schedule: str, step: int, total_steps: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning-rate multiplier before optimiser step ``step`` (0-based): a pure function."""
    if schedule == "none":
        return 1.0
    if schedule == "step":
        every = max(1, math.ceil(epochs / 3))  # ×0.1 after each third of the epochs
        return 0.1 ** ((step // max(1, steps_per_epoch)) // every)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    raise ValueError(f"unknown schedule {schedule!r}")


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageTensors, mean: Sequence[float], std: Sequence[float],
             classes: list[str], device: torch.device | str = "cpu", batch_size: int = 256,
             amp: bool = True) -> Evaluation:
    """Accuracy, mean loss, confusion matrix and misclassified examples of ``model`` on ``data``.

    The model is put in eval mode for the pass and its previous train/eval mode restored.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    k = len(classes)
    preds, confs, losses = [], [], []
    try:
        for start in range(0, len(data), batch_size):
            x = _normalise(data.images[start:start + batch_size].to(device, non_blocking=True), mean_t, std_t)
            y = data.labels[start:start + batch_size].to(device, non_blocking=True)
            with _autocast(device, amp):
                logits, _ = _main_output(model(x))
            logits = logits.float()
            losses.append(F.cross_entropy(logits, y, reduction="sum"))
            prob, pred = logits.softmax(1).max(1)
            preds.append(pred.cpu())
            confs.append(prob.cpu())
    finally:
        model.train(was_training)
    if not preds:
        return Evaluation(float("nan"), float("nan"), np.zeros((k, k), dtype=np.int64), classes, [])
    pred = torch.cat(preds).numpy()
    conf = torch.cat(confs).numpy()
    true = data.labels.cpu().numpy()
    confusion = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    wrong = np.flatnonzero(pred != true)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")]
    misclassified = [{"index": int(i), "true": int(true[i]), "pred": int(pred[i]), "confidence": float(conf[i])}
                     for i in wrong]
    return Evaluation(accuracy=float((pred == true).mean()), loss=float(sum(losses).item() / len(true)),
                      confusion=confusion, classes=list(classes), misclassified=misclassified)


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


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


QUICK_SIZES = (64, 96, 128)


def suggested_image_size(model: str) -> int:
    """A training size that keeps CPU runs short: the natural size when it is at most 64, else the first of
    ``QUICK_SIZES`` the network accepts (global pooling makes most accept any), else the natural size."""
    from explorer.models import build_model

    channels, natural, _ = natural_shape(model)
    if natural <= QUICK_SIZES[0]:
        return natural
    net = build_model(model)
    for size in QUICK_SIZES:
        try:
            _check_forward(net, (channels, size, size), model)
            return size
        except ValueError:
            continue
    return natural


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


def _check_forward(model: nn.Module, shape: tuple[int, int, int], name: str) -> None:
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape))
    except Exception as exc:
        raise ValueError(f"{name} cannot take {shape[0]}×{shape[1]}×{shape[2]} inputs ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); choose another image size") from exc


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


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _on_device(data: ImageTensors, device: torch.device) -> ImageTensors:
    if device.type == "cpu":
        return data
    return ImageTensors(data.images.to(device), data.labels.to(device))


def _make_optimizer(model: nn.Module, config: TrainConfig, heads: list[str]) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.mode, config.lr, config.backbone_lr_factor, heads)
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)


def _save_results(run_dir: Path, history: list[dict], best_epoch: int, stopped: bool,
                  evaluation: Evaluation | None, test: ImageTensors) -> None:
    metrics = {"epochs": history, "status": "stopped" if stopped else "finished", "best_epoch": best_epoch,
               "test_accuracy": evaluation.accuracy if evaluation else None,
               "test_loss": evaluation.loss if evaluation else None}
    if evaluation is not None:
        runs_io.write_json_atomic(run_dir / runs_io.EVALUATION_FILE, {
            "accuracy": evaluation.accuracy, "loss": evaluation.loss, "classes": evaluation.classes,
            "confusion": evaluation.confusion.tolist(), "per_class_accuracy": evaluation.per_class_accuracy(),
            "misclassified": evaluation.misclassified[:500], "misclassified_total": len(evaluation.misclassified)})
        shown = evaluation.misclassified[:MAX_MISCLASSIFIED_SAVED]
        index = [m["index"] for m in shown]
        runs_io.write_npz_atomic(
            run_dir / runs_io.MISCLASSIFIED_FILE, images=test.images[index].cpu().numpy(),
            true=np.array([m["true"] for m in shown], dtype=np.int64),
            pred=np.array([m["pred"] for m in shown], dtype=np.int64),
            confidence=np.array([m["confidence"] for m in shown], dtype=np.float32))
    # metrics.json last: its status says the run's files are complete.
    runs_io.write_json_atomic(run_dir / runs_io.METRICS_FILE, metrics)


def read_evaluation(run_dir: str | Path) -> Evaluation | None:
    data = runs_io.read_json(Path(run_dir) / runs_io.EVALUATION_FILE)
    if not data:
        return None
    return Evaluation(data["accuracy"], data["loss"], np.array(data["confusion"], dtype=np.int64),
                      list(data["classes"]), list(data["misclassified"]))


def run_training(config: TrainConfig, run_dir: str | Path | None = None, **kwargs: Any) -> Finished:
    """Consume :func:`train` and return its :class:`Finished` event (scripts and tests)."""
    finished = None
    for event in train(config, run_dir, **kwargs):
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    return finished


# --- the background worker the page polls -------------------------------------------------------------------


@dataclass
class RunProgress:
    name: str
    run_dir: Path | None
    model: str
    status: str = "queued"  # queued | preparing | running | finished | stopped | failed
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    history: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)  # {"step", "loss", "accuracy", "images_per_s"}
    started: Started | None = None
    test_accuracy: float | None = None
    evaluation: Evaluation | None = None
    error: str | None = None

    @property
    def fraction(self) -> float:
        if self.status in ("finished", "stopped"):
            return 1.0
        return self.step / self.total_steps if self.total_steps else 0.0


@dataclass
class Progress:
    status: str  # running | finished | stopped | failed
    runs: list[RunProgress]
    current: int

    @property
    def fraction(self) -> float:
        return sum(r.fraction for r in self.runs) / max(len(self.runs), 1)

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "failed")


MAX_STEP_POINTS = 1500


class TrainingWorker:
    """Runs one or more training runs one after another in a daemon thread.

    The page starts it, keeps it across reruns (see :func:`start_training`), reads :meth:`progress`
    from a polling fragment, and calls :meth:`stop`. Runs that share a dataset (the degradation
    experiment) load it once.
    """

    def __init__(self, jobs: Sequence[tuple[TrainConfig, str | Path | None]], data: DataBundle | None = None) -> None:
        if not jobs:
            raise ValueError("nothing to train")
        self.jobs = [(cfg, Path(d) if d is not None else None) for cfg, d in jobs]
        self._data = data
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._runs = [RunProgress(d.name if d else cfg.model, d, cfg.model) for cfg, d in self.jobs]
        self._current = 0
        self._status = "running"
        self._thread = threading.Thread(target=self._work, daemon=True, name="explorer-training")

    def start(self) -> "TrainingWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the runs to end at the next step (the current run keeps its best checkpoint; queued runs are skipped)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def progress(self) -> Progress:
        """A consistent copy of the progress, safe to read from another thread."""
        with self._lock:
            runs = [replace(r, history=list(r.history), steps=list(r.steps)) for r in self._runs]
            return Progress(self._status, runs, self._current)

    def _update(self, index: int, **changes: Any) -> None:
        with self._lock:
            run = self._runs[index]
            for key, value in changes.items():
                setattr(run, key, value)

    def _work(self) -> None:
        data_cache: dict[tuple, DataBundle] = {}
        for index, (config, run_dir) in enumerate(self.jobs):
            with self._lock:
                self._current = index
            if self._stop.is_set():
                self._update(index, status="stopped")
                continue
            self._update(index, status="preparing")
            try:
                key = (config.dataset, input_shape_for(config), config.seed, config.samples, tuple(config.ratios),
                       config.max_train_samples)
                data = self._data if self._data is not None else data_cache.get(key)
                if data is None:
                    data = data_cache[key] = load_data(config)
                for event in train(config, run_dir, stop=self._stop, data=data):
                    self._record(index, event)
            except Exception as exc:  # shown on the page; the thread must not die silently
                from explorer.device import is_out_of_memory

                message = f"{type(exc).__name__}: {exc}"
                if is_out_of_memory(exc):
                    message = "the GPU ran out of memory: choose a smaller batch or image size"
                self._update(index, status="failed", error=message)
                if run_dir is not None and (run_dir / runs_io.CONFIG_FILE).is_file():
                    metrics = runs_io.read_metrics(run_dir)
                    runs_io.write_json_atomic(run_dir / runs_io.METRICS_FILE,
                                              {**metrics, "status": "failed", "error": message})
        with self._lock:
            statuses = [r.status for r in self._runs]
            self._status = ("failed" if "failed" in statuses else "stopped" if "stopped" in statuses else "finished")

    def _record(self, index: int, event: Started | Step | Epoch | Finished) -> None:
        with self._lock:
            run = self._runs[index]
            if isinstance(event, Started):
                run.status, run.started, run.total_steps = "running", event, event.total_steps
            elif isinstance(event, Step):
                run.epoch, run.step = event.epoch, event.step
                run.steps.append({"step": event.step, "loss": event.loss, "accuracy": event.accuracy,
                                  "images_per_s": event.images_per_s})
                if len(run.steps) > MAX_STEP_POINTS:  # keep the chart light: drop every other old point
                    run.steps = run.steps[:-MAX_STEP_POINTS // 2:2] + run.steps[-MAX_STEP_POINTS // 2:]
            elif isinstance(event, Epoch):
                run.history.append(event.record())
            elif isinstance(event, Finished):
                run.status = "stopped" if event.stopped else "finished"
                run.test_accuracy, run.evaluation = event.test_accuracy, event.evaluation


class RunInProgressError(RuntimeError):
    """This user already has a training run going."""


class TrainingBusyError(RuntimeError):
    """Too many runs on this server right now."""


MAX_ACTIVE_WORKERS = 2  # 2 CPU cores: more runs at once would only slow every one down
_workers: dict[str, TrainingWorker] = {}
_workers_lock = threading.Lock()


def start_training(session_id: str, jobs: Sequence[tuple[TrainConfig, str | Path | None]],
                   data: DataBundle | None = None, max_active: int | None = None) -> TrainingWorker:
    """Start a worker for ``session_id``; one at a time per session, ``MAX_ACTIVE_WORKERS`` per process."""
    limit = MAX_ACTIVE_WORKERS if max_active is None else max_active
    with _workers_lock:
        current = _workers.get(session_id)
        if current is not None and current.alive:
            raise RunInProgressError("a training run is already going for you: stop it or wait for it to end")
        active = sum(1 for w in _workers.values() if w.alive)
        if active >= limit:
            raise TrainingBusyError(f"{active} training runs are going on this server; try again when one ends")
        worker = TrainingWorker(jobs, data)
        _workers[session_id] = worker
        worker.start()
        return worker


def get_worker(session_id: str) -> TrainingWorker | None:
    with _workers_lock:
        return _workers.get(session_id)


def stop_training(session_id: str) -> bool:
    worker = get_worker(session_id)
    if worker is None or not worker.alive:
        return False
    worker.stop()
    return True


# --- the degradation experiment ----------------------------------------------------------------------------

DEGRADATION_DEPTHS = (18, 34)


def degradation_configs(base: TrainConfig, depth: int = 18) -> list[TrainConfig]:
    """``plainN`` and ``resnetN`` with the same data, seed and hyper-parameters (trained from scratch)."""
    if depth not in DEGRADATION_DEPTHS:
        raise ValueError(f"depth must be one of {DEGRADATION_DEPTHS}")
    common = dict(mode="scratch", batch_norm=None, dropout=None)
    return [replace(base, model=f"plain{depth}", **common), replace(base, model=f"resnet{depth}", **common)]


# --- figures ----------------------------------------------------------------------------------------------

_DEFAULT_LABELS = {"epoch": "epoch", "loss": "loss", "accuracy": "accuracy", "train": "train", "valid": "valid",
                   "step": "step", "true": "true class", "pred": "predicted class"}


def curves_figure(histories: dict[str, list[dict]], labels: dict[str, str] | None = None, height: int = 360):
    """Train (dashed) and valid (solid) loss and accuracy per epoch, one colour per run."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    text = {**_DEFAULT_LABELS, **(labels or {})}
    fig = make_subplots(rows=1, cols=2, subplot_titles=(text["loss"], text["accuracy"]))
    palette = qualitative.Plotly
    for i, (name, history) in enumerate(histories.items()):
        colour = palette[i % len(palette)]
        epochs = [h["epoch"] for h in history]
        for col, metric in ((1, "loss"), (2, "acc")):
            for split, dash in (("train", "dash"), ("valid", "solid")):
                values = [h.get(f"{split}_{metric}") for h in history]
                if all(v is None for v in values):
                    continue
                fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=f"{name} · {text[split]}",
                                         line=dict(color=colour, dash=dash), legendgroup=name,
                                         showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text=text["epoch"], dtick=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def steps_figure(steps: list[dict], labels: dict[str, str] | None = None, height: int = 260):
    """Training loss as reported during the run (mean over each reporting interval)."""
    import plotly.graph_objects as go

    text = {**_DEFAULT_LABELS, **(labels or {})}
    fig = go.Figure(go.Scatter(x=[s["step"] for s in steps], y=[s["loss"] for s in steps], mode="lines",
                               name=text["loss"]))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=text["step"],
                      yaxis_title=text["loss"])
    return fig


def confusion_figure(confusion: np.ndarray, classes: list[str], labels: dict[str, str] | None = None):
    """Confusion matrix heat map: rows are true classes, columns predictions; counts written in cells."""
    import plotly.graph_objects as go

    text = {**_DEFAULT_LABELS, **(labels or {})}
    fig = go.Figure(go.Heatmap(z=confusion, x=classes, y=classes, colorscale="Blues", text=confusion,
                               texttemplate="%{text}", showscale=False))
    size = max(300, min(700, 60 * len(classes) + 120))
    fig.update_layout(height=size, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=text["pred"],
                      yaxis_title=text["true"], yaxis_autorange="reversed")
    return fig


def compare_runs_figure(run_dirs: Sequence[str | Path], metric: str = "valid_acc",
                        labels: dict[str, str] | None = None, height: int = 360):
    """One line per saved run: ``metric`` (e.g. valid_acc, train_loss) per epoch."""
    import plotly.graph_objects as go

    text = {**_DEFAULT_LABELS, **(labels or {})}
    fig = go.Figure()
    for run_dir in run_dirs:
        history = runs_io.read_metrics(run_dir).get("epochs", [])
        fig.add_trace(go.Scatter(x=[h["epoch"] for h in history], y=[h.get(metric) for h in history],
                                 mode="lines+markers", name=Path(run_dir).name))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=text["epoch"],
                      yaxis_title=text.get(metric, metric), legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(dtick=1)
    return fig
