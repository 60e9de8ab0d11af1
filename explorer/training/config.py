"""What defines a training run: :class:`TrainConfig`, saved as the run's ``config.json``."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

from explorer.data import DEFAULT_SHAPES_SAMPLES, train_valid_test_counts
from explorer.training.transfer import MODES

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "step", "cosine")
# The GoogLeNet paper weights each auxiliary classifier's loss by 0.3 during training.
AUX_LOSS_WEIGHT = 0.3
# Defaults of the CLI's `train` and of the Training lab: mnist_cnn on shapes reaches >= 95 % test accuracy in well
# under a minute on 2 CPU cores (`python scripts/demo_training.py` prints it). More images beat more epochs here.
DEMO_EPOCHS = 10
DEMO_LR = 3e-3  # Adam
DEMO_SCHEDULE = "cosine"
DEMO_SHAPES_SAMPLES = 30000


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
    schedule: str = "none"  # "none" | "step" (×0.1 at epochs ⌈E/3⌉ and ⌈2E/3⌉: parts.lr_factor) | "cosine"
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
        self._validate_split()
        return self

    def _validate_split(self) -> None:
        """``ratios`` and ``samples``: an empty training split once gave NaN statistics, then a loop with no batch."""
        ratios = self.ratios
        if isinstance(ratios, (str, bytes)) or not hasattr(ratios, "__len__") or len(ratios) != 3:
            raise ValueError(f"ratios must give three shares (train, valid, test), got {ratios!r}")
        if not all(isinstance(r, numbers.Real) and not isinstance(r, bool) for r in ratios):
            raise ValueError(f"ratios must be numbers, got {tuple(ratios)!r}")
        if not all(math.isfinite(r) and r >= 0 for r in ratios) or not ratios[0] > 0:
            raise ValueError(f"ratios must be finite and non-negative, with a positive training share, got "
                             f"{tuple(ratios)!r}")
        if not isinstance(self.samples, numbers.Integral) or isinstance(self.samples, bool) or self.samples < 1:
            raise ValueError(f"samples must be a whole number of images, at least 1, got {self.samples!r}")
        if self.dataset == "shapes":  # the generated images are split here: the loader's own rule, checked now
            train_valid_test_counts(self.samples, ratios, "shape images")

    def cli_command(self, out: str = "runs/NAME") -> str:
        """The ``python -m explorer`` arguments that train this configuration (what the Training lab shows)."""
        import shlex

        parts = ["train", "--model", self.model, "--dataset", str(self.dataset), "--epochs", str(self.epochs),
                 "--batch", str(self.batch_size), "--lr", f"{self.lr:g}", "--optimizer", self.optimizer,
                 "--schedule", self.schedule, "--seed", str(self.seed)]
        if self.weight_decay:
            parts += ["--weight-decay", f"{self.weight_decay:g}"]
        if self.augment:
            parts.append("--augment")
        if self.mode != "scratch":
            parts += ["--mode", self.mode]
        if self.image_size:
            parts += ["--image-size", str(self.image_size)]
        if self.dataset == "shapes":
            parts += ["--samples", str(self.samples)]
        return " ".join(shlex.quote(part) for part in parts + ["--out", out])

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
