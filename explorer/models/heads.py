"""A network's classifier head, found structurally and resized in place (transfer learning, run rebuilding).

The *head* is the last module, in registration order, that holds parameters directly and is not a normalisation
or activation layer (``fc`` in ResNet/GoogLeNet/Inception, ``classifier[-1]`` in VGG/AlexNet/MobileNet/
EfficientNet/ConvNeXt, ``classifier`` in DenseNet, the 1×1 ``classifier[1]`` convolution in SqueezeNet, LeNet-5's
RBF output, the teaching models' last layer). A BatchNorm (or LayerNorm, GroupNorm, PReLU) registered after it
and sized by its classes (``arch:... FC-5 BN``) is no head: it *follows* the head, and is resized and trained with
it. Auxiliary classifiers (GoogLeNet's ``aux1``/``aux2``, Inception's ``AuxLogits``) count as heads too.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn as nn


def _has_own_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


# Layers with parameters that rescale what comes in without classifying it: never a head (a trailing BatchNorm
# once was, and could not be resized).
_NOT_CLASSIFIERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.PReLU)


def _classifier_like(module: nn.Module) -> bool:
    return _has_own_parameters(module) and not isinstance(module, _NOT_CLASSIFIERS)


def find_head(model: nn.Module) -> str:
    """Qualified name of the classifier head (see the module docstring for the rule)."""
    head = None
    for name, module in model.named_modules():
        if name and _classifier_like(module) and not _inside_aux(name):
            head = name
    if head is None:
        raise ValueError("this model has no layer with parameters to use as a classifier head")
    return head


def _features_of(module: nn.Module) -> int | None:
    """How many features (channels) a normalisation or PReLU layer is made for; None when not tied to a count."""
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return module.num_features
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[0] if len(module.normalized_shape) == 1 else None
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if isinstance(module, nn.PReLU):
        return module.num_parameters if module.num_parameters > 1 else None
    return None


def _out_count(module: nn.Module) -> int | None:
    return getattr(module, "out_features", None) or getattr(module, "out_channels", None)


def head_followers(model: nn.Module, head: str | None = None) -> list[str]:
    """The layers registered after the main head that are sized by its classes (a BatchNorm after the last FC):
    they must be resized with it, and they train with it."""
    head = find_head(model) if head is None else head
    classes = _out_count(model.get_submodule(head))
    if classes is None:
        return []
    followers, seen_head = [], False
    for name, module in model.named_modules():
        if name == head:
            seen_head = True
            continue
        if (seen_head and not name.startswith(head + ".") and not _inside_aux(name)
                and isinstance(module, _NOT_CLASSIFIERS) and _features_of(module) == classes):
            followers.append(name)
    return followers


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
            if _classifier_like(sub):
                last = f"{root}.{name}" if name else root
        if last is not None:
            heads.append(last)
    return heads


def head_names(model: nn.Module) -> list[str]:
    """The main head first, then the layers that follow it (:func:`head_followers`), then auxiliary heads:
    every layer a new set of classes resizes, and feature extraction trains."""
    head = find_head(model)
    return [head] + head_followers(model, head) + find_aux_heads(model)


def head_out_features(model: nn.Module) -> int | None:
    """How many classes the main head produces (None if it cannot tell)."""
    return _out_count(model.get_submodule(find_head(model)))


def _resized(module: nn.Module, num_classes: int) -> nn.Module:
    # A follower may hold no parameters (BatchNorm without affine keeps only its statistics).
    held = next(itertools.chain(module.parameters(), module.buffers()), None)
    device = held.device if held is not None else torch.device("cpu")
    if isinstance(module, nn.modules.batchnorm._NormBase):  # a follower: BatchNorm/InstanceNorm on the scores
        new: nn.Module = type(module)(num_classes, eps=module.eps, momentum=module.momentum, affine=module.affine,
                                      track_running_stats=module.track_running_stats)
    elif isinstance(module, nn.LayerNorm):
        new = nn.LayerNorm(num_classes, eps=module.eps, elementwise_affine=module.elementwise_affine,
                           bias=module.bias is not None)
    elif isinstance(module, nn.GroupNorm):
        if num_classes % module.num_groups:
            raise ValueError(f"cannot resize a GroupNorm of {module.num_groups} groups after the head to "
                             f"{num_classes} classes")
        new = nn.GroupNorm(module.num_groups, num_classes, eps=module.eps, affine=module.affine)
    elif isinstance(module, nn.PReLU):
        new = nn.PReLU(num_classes)
    elif isinstance(module, nn.Linear):
        new = nn.Linear(module.in_features, num_classes, bias=module.bias is not None)
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
    """Give ``model`` a new, randomly initialised ``num_classes``-way head (its followers and aux heads), in place.

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
