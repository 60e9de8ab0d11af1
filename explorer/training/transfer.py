"""Transfer learning: resize a network's classifier head, and choose what trains.

The course notes' two cases (torchvision's transfer-learning tutorial):

* **feature extraction** — the pretrained network is a fixed feature extractor: every weight is frozen
  (``requires_grad = False``) except the new head, and the frozen part stays in evaluation mode so its
  BatchNorm statistics do not drift either;
* **fine-tuning** — every weight trains, starting from the pretrained values; the backbone gets a
  smaller learning rate than the freshly initialised head (two optimiser parameter groups).

The *head* is found structurally: the last module, in registration order, that holds parameters directly
(``fc`` in ResNet/GoogLeNet/Inception, ``classifier[-1]`` in VGG/AlexNet/MobileNet/EfficientNet/ConvNeXt,
``classifier`` in DenseNet, the 1×1 ``classifier[1]`` convolution in SqueezeNet, LeNet-5's RBF output, the
teaching models' last layer). Auxiliary classifiers (GoogLeNet's ``aux1``/``aux2``, Inception's
``AuxLogits``) are resized too, since their losses are added during training.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from explorer.models import head_names

MODES = ("scratch", "feature_extract", "fine_tune")
DEFAULT_BACKBONE_LR_FACTOR = 0.1


def _head_parameter_ids(model: nn.Module, heads: list[str]) -> set[int]:
    return {id(p) for name in heads for p in model.get_submodule(name).parameters()}


def split_parameters(model: nn.Module, heads: list[str] | None = None
                     ) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone parameters, head parameters)."""
    heads = head_names(model) if heads is None else heads
    ids = _head_parameter_ids(model, heads)
    backbone, head = [], []
    for p in model.parameters():
        (head if id(p) in ids else backbone).append(p)
    return backbone, head


def apply_mode(model: nn.Module, mode: str, heads: list[str] | None = None) -> None:
    """Set ``requires_grad`` for ``mode``: everything for scratch/fine_tune, only the heads for feature_extract."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    backbone, head = split_parameters(model, heads)
    # Values an architecture fixes by design (LeNet-5's RBF prototypes, listed in a module's
    # ``fixed_parameters``) are never trained, whatever the mode.
    fixed = {id(getattr(m, name)) for m in model.modules() for name in getattr(m, "fixed_parameters", ())}
    for p in head:
        p.requires_grad_(id(p) not in fixed)
    for p in backbone:
        p.requires_grad_(mode != "feature_extract" and id(p) not in fixed)


def set_train_mode(model: nn.Module, mode: str, heads: list[str] | None = None) -> None:
    """``model.train()``, except that a frozen backbone stays in eval mode (fixed BatchNorm statistics,
    no dropout): feature extraction must leave everything but the head exactly as it was."""
    model.train()
    if mode == "feature_extract":
        heads = head_names(model) if heads is None else heads
        head_modules = {id(m) for name in heads for m in model.get_submodule(name).modules()}
        for module in model.modules():
            if id(module) not in head_modules:
                module.training = False


def parameter_groups(model: nn.Module, mode: str, lr: float,
                     backbone_lr_factor: float = DEFAULT_BACKBONE_LR_FACTOR,
                     heads: list[str] | None = None) -> list[dict]:
    """Optimiser parameter groups for ``mode`` (only trainable parameters are handed to the optimiser)."""
    backbone, head = split_parameters(model, heads)
    if mode == "scratch":
        return [{"params": backbone + head, "lr": lr, "name": "all"}]
    if mode == "feature_extract":
        return [{"params": head, "lr": lr, "name": "head"}]
    if mode == "fine_tune":
        return [{"params": backbone, "lr": lr * backbone_lr_factor, "name": "backbone"},
                {"params": head, "lr": lr, "name": "head"}]
    raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


@dataclass(frozen=True)
class TrainableCounts:
    total: int
    head: int
    feature_extract: int
    fine_tune: int
    scratch: int

    def for_mode(self, mode: str) -> int:
        return getattr(self, mode)


def trainable_counts(model: nn.Module, heads: list[str] | None = None) -> TrainableCounts:
    """How many parameters each mode trains (computed from the structure; ``model`` is not changed)."""
    backbone, head = split_parameters(model, heads)
    n_head = sum(p.numel() for p in head)
    total = n_head + sum(p.numel() for p in backbone)
    return TrainableCounts(total=total, head=n_head, feature_extract=n_head, fine_tune=total, scratch=total)


def count_trainable(model: nn.Module) -> int:
    """Parameters that will actually receive gradients now."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
