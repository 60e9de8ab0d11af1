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

MODES = ("scratch", "feature_extract", "fine_tune")
DEFAULT_BACKBONE_LR_FACTOR = 0.1


def _has_own_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def find_head(model: nn.Module) -> str:
    """Qualified name of the classifier head (see the module docstring for the rule)."""
    head = None
    for name, module in model.named_modules():
        if name and _has_own_parameters(module) and not _inside_aux(name):
            head = name
    if head is None:
        raise ValueError("this model has no layer with parameters to use as a classifier head")
    return head


def _inside_aux(name: str) -> bool:
    return any(part.lower().startswith("aux") for part in name.split("."))


def find_aux_heads(model: nn.Module) -> list[str]:
    """Names of the last parametrised layer inside each auxiliary classifier (``aux1``, ``AuxLogits``...)."""
    heads = []
    for root, module in model.named_modules():
        parts = root.split(".") if root else []
        if not parts or not parts[-1].lower().startswith("aux") or _inside_aux(".".join(parts[:-1])):
            continue
        last = None
        for name, sub in module.named_modules():
            if _has_own_parameters(sub):
                last = f"{root}.{name}" if name else root
        if last is not None:
            heads.append(last)
    return heads


def head_names(model: nn.Module) -> list[str]:
    """The main head first, then auxiliary heads."""
    return [find_head(model)] + find_aux_heads(model)


def head_out_features(model: nn.Module) -> int | None:
    """How many classes the main head produces (None if it cannot tell)."""
    head = model.get_submodule(find_head(model))
    return getattr(head, "out_features", None) or getattr(head, "out_channels", None)


def _resized(module: nn.Module, num_classes: int) -> nn.Module:
    device = next(module.parameters()).device
    if isinstance(module, nn.Linear):
        new: nn.Module = nn.Linear(module.in_features, num_classes, bias=module.bias is not None)
    elif isinstance(module, nn.Conv2d):
        new = nn.Conv2d(module.in_channels, num_classes, module.kernel_size, module.stride, module.padding,
                        module.dilation, 1, bias=module.bias is not None)
    elif hasattr(module, "in_features") and hasattr(module, "out_features"):
        try:  # e.g. LeNet-5's EuclideanRBF(in_features, num_classes)
            new = type(module)(module.in_features, num_classes)
        except TypeError as exc:
            raise ValueError(f"cannot resize a {type(module).__name__} head") from exc
    else:
        raise ValueError(f"cannot resize a {type(module).__name__} head: only Linear, Conv2d and "
                         "layers with in_features/out_features are supported")
    return new.to(device)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def replace_head(model: nn.Module, num_classes: int) -> list[str]:
    """Give ``model`` a new, randomly initialised ``num_classes``-way head (and aux heads), in place.

    New layers draw their initial weights from torch's global generator: call under the run's seed
    (``torch.random.fork_rng``) for reproducible runs. Returns the replaced layers' names.
    """
    if num_classes < 2:
        raise ValueError("a classifier needs at least two classes")
    names = head_names(model)
    for name in names:
        _set_submodule(model, name, _resized(model.get_submodule(name), num_classes))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes  # SqueezeNet and friends keep it as an attribute
    return names


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
    for p in head:
        p.requires_grad_(True)
    for p in backbone:
        p.requires_grad_(mode != "feature_extract")


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
