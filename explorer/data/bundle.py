"""Datasets as the training loop takes them: uint8 tensors in memory (:class:`ImageTensors`) grouped in a
:class:`DataBundle` with class names and normalisation; and where downloaded and extracted data are kept.

Small tensors make the training loop a pair of index operations per batch (no per-image decoding, no worker
processes on a 2-core machine) and make runs reproducible: the order and the augmentation come from the run's
own ``torch.Generator``, not from a DataLoader's workers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from explorer.data.splits import Skipped

# --- containers ------------------------------------------------------------------------------------------


@dataclass
class ImageTensors:
    """One split held in memory: ``images`` uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("images must be a uint8 tensor [N, C, H, W]")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must hold one class index per image")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()


@dataclass
class DataBundle:
    """A dataset ready to train on: three splits at one size, class names and per-channel statistics."""

    name: str
    classes: list[str]
    train: ImageTensors
    valid: ImageTensors
    test: ImageTensors
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip_ok: bool = True  # a mirrored image keeps its class (false for digits)
    empty_classes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def counts(self) -> dict[str, dict[str, int]]:
        """split → class → number of images."""
        out = {}
        for split in ("train", "valid", "test"):
            per_class = getattr(self, split).class_counts(self.num_classes)
            out[split] = dict(zip(self.classes, per_class))
        return out


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale (computed on the training split)."""
    x = images[: 20000].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)



def data_root() -> Path:
    """Where torchvision datasets and extracted uploads are kept (``EXPLORER_DATA_DIR`` overrides)."""
    return Path(os.environ.get("EXPLORER_DATA_DIR") or Path.home() / ".cache" / "cnn-explorer" / "data")


