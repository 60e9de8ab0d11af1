"""The events :func:`explorer.training.loop.train` yields, in order: :class:`Started`, :class:`Step` (every
``log_every`` optimiser steps), :class:`Epoch` (after each validation) and finally :class:`Finished`.

Each has a ``kind`` string as well, for consumers that would rather not import the classes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from explorer.training.evaluation import Evaluation


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
    best: bool  # a new best when it ended (it was saved); in metrics.json, only the epoch the checkpoint holds
    partial: bool = False  # stopped (or max_steps reached) before the epoch's end
    samples: int | None = None  # training images seen in the epoch (over every rank under torchrun)
    kind: str = "epoch"

    def record(self) -> dict:
        data = asdict(self)
        data.pop("kind")
        return data


@dataclass
class Finished:
    run_dir: Path | None
    stopped: bool
    test_accuracy: float | None
    best_epoch: int | None
    history: list[dict]
    evaluation: Evaluation | None
    kind: str = "finished"
