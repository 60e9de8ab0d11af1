"""Transfer learning: resize a network's classifier head, and choose what trains.

The course notes' two cases (torchvision's transfer-learning tutorial):

* **feature extraction** — the pretrained network is a fixed feature extractor: every weight is frozen
  (``requires_grad = False``) except the new head, and the frozen part stays in evaluation mode so its
  BatchNorm statistics do not drift either;
* **fine-tuning** — every weight trains, starting from the pretrained values; the backbone gets a
  smaller learning rate than the freshly initialised head (two optimiser parameter groups).

The *head* is found structurally (``explorer.models.heads``): the last module, in registration order, that
holds parameters directly and is no normalisation layer (``fc`` in ResNet/GoogLeNet/Inception, ``classifier[-1]``
in VGG/AlexNet/MobileNet/EfficientNet/ConvNeXt, ``classifier`` in DenseNet, the 1×1 ``classifier[1]`` convolution
in SqueezeNet, LeNet-5's RBF output, the teaching models' last layer), with the normalisation layers sized by its
classes that follow it. Auxiliary classifiers (GoogLeNet's ``aux1``/``aux2``, Inception's ``AuxLogits``) are
resized too, since their losses are added during training. Values an architecture fixes by design (LeNet-5's
RBF prototypes, listed in a module's ``fixed_parameters``) never train and are never counted as trainable.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from explorer.models import TRAINS_WITH_HEAD, head_names

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


def fixed_parameter_ids(model: nn.Module) -> set[int]:
    """``id`` of every parameter an architecture fixes by design (listed in a module's ``fixed_parameters``, as
    LeNet-5's RBF prototypes): never trained, whatever the mode."""
    return {id(getattr(m, name)) for m in model.modules() for name in getattr(m, "fixed_parameters", ())}


def apply_mode(model: nn.Module, mode: str, heads: list[str] | None = None) -> None:
    """Set ``requires_grad`` for ``mode``: everything for scratch/fine_tune, only the heads for feature_extract
    (fixed parameters never: :func:`fixed_parameter_ids`)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    backbone, head = split_parameters(model, heads)
    fixed = fixed_parameter_ids(model)
    for p in head:
        p.requires_grad_(id(p) not in fixed)
    for p in backbone:
        p.requires_grad_(mode != "feature_extract" and id(p) not in fixed)


def set_train_mode(model: nn.Module, mode: str, heads: list[str] | None = None) -> None:
    """``model.train()``, except that a frozen backbone stays in eval mode (fixed BatchNorm statistics,
    no dropout): feature extraction must leave everything but the head exactly as it was. The dropout that the
    run's dropout toggle puts in front of the head (a wrapper marked ``trains_with_head``) trains with the head:
    it drops the head's input, and in eval mode the toggle would do nothing."""
    model.train()
    if mode == "feature_extract":
        heads = head_names(model) if heads is None else heads
        head_modules = {id(m) for name in heads for m in model.get_submodule(name).modules()}
        for module in model.modules():
            if getattr(module, TRAINS_WITH_HEAD, False):  # set by explorer.models.run_build.apply_surgery
                head_modules.update(id(m) for m in module.modules())
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
    """How many parameters each mode trains (computed from the structure; ``model`` is not changed): the ones
    :func:`apply_mode` would let train, so fixed parameters count in ``total`` alone (LeNet-5: 60,000 trainable
    of 60,840 with ten classes; its RBF head trains nothing, so feature extraction trains 0)."""
    backbone, head = split_parameters(model, heads)
    fixed = fixed_parameter_ids(model)
    n_head = sum(p.numel() for p in head if id(p) not in fixed)
    n_trainable = n_head + sum(p.numel() for p in backbone if id(p) not in fixed)
    total = sum(p.numel() for p in head + backbone)
    return TrainableCounts(total=total, head=n_head, feature_extract=n_head, fine_tune=n_trainable,
                           scratch=n_trainable)


def check_trains_something(model: nn.Module, mode: str, heads: list[str] | None = None) -> None:
    """``ValueError`` when ``mode`` would train no parameter at all (the optimiser would get nothing and the
    first backward pass fail): LeNet-5's RBF head holds only fixed prototypes, so feature extraction cannot
    train it."""
    counts = trainable_counts(model, heads)
    if counts.for_mode(mode) > 0:
        return
    heads = head_names(model) if heads is None else heads
    if mode == "feature_extract":
        raise ValueError(f"the classifier head ({', '.join(heads)}) has no trainable parameters (its values are "
                         "fixed by design), so feature extraction would train nothing: choose fine-tuning or "
                         "training from scratch")
    raise ValueError(f"this network has no trainable parameters, so {mode.replace('_', ' ')} would train nothing")


def count_trainable(model: nn.Module) -> int:
    """Parameters that will actually receive gradients now."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
