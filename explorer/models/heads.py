"""A network's classifier head, found structurally and resized in place (transfer learning, run rebuilding).

The *head* is the last module, in registration order, that holds parameters directly (``fc`` in
ResNet/GoogLeNet/Inception, ``classifier[-1]`` in VGG/AlexNet/MobileNet/EfficientNet/ConvNeXt, ``classifier`` in
DenseNet, the 1×1 ``classifier[1]`` convolution in SqueezeNet, LeNet-5's RBF output, the teaching models' last
layer). Auxiliary classifiers (GoogLeNet's ``aux1``/``aux2``, Inception's ``AuxLogits``) count as heads too.
"""
from __future__ import annotations

import torch.nn as nn


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
