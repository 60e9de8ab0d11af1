"""Every network the app knows: the project's teaching and paper models, then torchvision's CNNs.

The registry itself (:mod:`explorer.models.registry`) only records entries; this module fills it once, on
first use, and answers :func:`list_models` and :func:`get_entry` (torchvision's ``list_models``/``get_model``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn
import torchvision

import explorer.models.paper  # noqa: F401  (importing them registers their models)
import explorer.models.teaching  # noqa: F401
from explorer.models.names import unknown_model
from explorer.models.registry import ModelEntry, register_model, registered
from explorer.models.timm_models import register_timm
from explorer.models.user_models import load_user_models

# Transformers need different views (attention, tokens): out of scope for a CNN explorer.
_EXCLUDED_PREFIXES = ("vit_", "swin_", "maxvit_")


def _family(name: str) -> str:
    for prefix, fam in (("resnext", "ResNeXt"), ("wide_resnet", "Wide ResNet"), ("resnet", "ResNet"),
                        ("vgg", "VGG"), ("densenet", "DenseNet"), ("efficientnet", "EfficientNet"),
                        ("mobilenet", "MobileNet"), ("mnasnet", "MNASNet"), ("shufflenet", "ShuffleNet"),
                        ("squeezenet", "SqueezeNet"), ("regnet", "RegNet"), ("convnext", "ConvNeXt"),
                        ("alexnet", "AlexNet"), ("googlenet", "GoogLeNet"), ("inception", "Inception")):
        if name.startswith(prefix):
            return fam
    return "Other"


def _register_torchvision() -> None:
    for name in torchvision.models.list_models(module=torchvision.models):
        if name.startswith(_EXCLUDED_PREFIXES) or name in registered():
            continue
        weights_enum = torchvision.models.get_model_weights(name)
        default = weights_enum.DEFAULT
        crop = default.transforms().crop_size[0]
        builder = _torchvision_builder(name)
        register_model(name, input_shape=(3, crop, crop), family=_family(name), weights_enum=weights_enum,
                       num_classes=len(default.meta["categories"]), categories=tuple(default.meta["categories"]),
                       description=f"torchvision {name} ({default.meta.get('num_params', 0) / 1e6:.1f} M parameters)",
                       source="torchvision")(builder)


def _torchvision_builder(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int | None = None, weights: Any = None) -> nn.Module:
        kwargs: dict[str, Any] = {}
        if num_classes is not None and weights is None:
            kwargs["num_classes"] = num_classes
        if weights is None and name in ("googlenet", "inception_v3"):
            # torchvision's pretrained GoogLeNet/Inception drop their auxiliary heads; do the same at random
            # init so a checkpoint of either kind fits and the graph is the one that runs in eval mode.
            kwargs["aux_logits"] = False
            kwargs["init_weights"] = True
        return torchvision.models.get_model(name, weights=weights, **kwargs)

    build.__name__ = name
    return build


_loaded_registry = False


def _ensure_registry() -> None:
    global _loaded_registry
    if _loaded_registry:
        load_user_models()  # cheap unless $EXPLORER_MODELS changed since the last look-up
        return
    _register_torchvision()
    register_timm()  # when timm is installed
    _loaded_registry = True
    load_user_models()  # the operator's files ($EXPLORER_MODELS) and installed packages' entry points


def list_models() -> list[str]:
    """Every registered model name, project models first, then torchvision's, each group sorted."""
    _ensure_registry()
    entries = registered().values()
    return sorted(e.name for e in entries if e.source not in ("torchvision", "timm")) + sorted(
        e.name for e in entries if e.source == "torchvision") + sorted(e.name for e in entries if e.source == "timm")


def get_entry(name: str) -> ModelEntry:
    _ensure_registry()
    try:
        return registered()[name]
    except KeyError:
        raise unknown_model(name) from None


