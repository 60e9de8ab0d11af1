"""Every network the app knows: the project's teaching and paper models, then torchvision's CNNs.

The registry itself (:mod:`explorer.models.registry`) only records entries; this module fills it on first use,
and answers :func:`list_models` and :func:`get_entry` (torchvision's ``list_models``/``get_model``).

It fills it in two steps, because importing torchvision costs more than a second (its ``ops`` import
``torch._dynamo``) and the app's first page shows a teaching network: the teaching networks first (torch only),
everything else (the papers' networks, which carry torchvision's weight enums, torchvision's CNNs, timm, the
operator's files) on the first look-up of a name the first step does not hold. :func:`list_models` answers
from the name index (:mod:`explorer.models.names`) when that is exactly what the full registry would list.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import torch.nn as nn

from explorer.models.names import quick_model_names, registry_is_indexed, unknown_model
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
    import torchvision

    for name in torchvision.models.list_models(module=torchvision.models):
        if name.startswith(_EXCLUDED_PREFIXES) or name in registered():
            continue
        weights_enum = torchvision.models.get_model_weights(name)
        default = weights_enum.DEFAULT
        crop = default.transforms().crop_size[0]
        builder = _torchvision_builder(name)
        register_model(name, input_shape=(3, crop, crop), family=_family(name), weights_enum=weights_enum,
                       num_classes=len(default.meta["categories"]), categories=tuple(default.meta["categories"]),
                       description=f"torchvision {name} ({_built_params(name, default.meta) / 1e6:.1f} M parameters)",
                       source="torchvision")(builder)


def _built_params(name: str, meta: dict[str, Any]) -> int:
    """The parameters of the model as the registry builds it: torchvision's ``num_params`` of inception_v3 counts
    its auxiliary head (27.2 M), which the builder leaves out (23.8 M, what the pages and Compare count)."""
    count = int(meta.get("num_params", 0))
    if name == "inception_v3":
        import torch
        from torchvision.models.inception import InceptionAux

        with torch.device("meta"):  # no memory, no initialisation: only the shapes are counted
            count -= sum(p.numel() for p in InceptionAux(768, len(meta["categories"])).parameters())
    return count


def _torchvision_builder(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int | None = None, weights: Any = None) -> nn.Module:
        import torchvision

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
_REGISTRY_LOCK = threading.Lock()  # sessions are threads: the second step runs once


def _ensure_teaching() -> None:
    import explorer.models.teaching  # noqa: F401  (importing it registers its models; torch only)


def _ensure_registry() -> None:
    global _loaded_registry
    if not _loaded_registry:
        with _REGISTRY_LOCK:
            if not _loaded_registry:
                _ensure_teaching()
                import explorer.models.paper  # noqa: F401  (registers the papers' networks; imports torchvision)

                _register_torchvision()
                register_timm()  # when timm is installed
                _loaded_registry = True
    load_user_models()  # the operator's files ($EXPLORER_MODELS) and installed packages' entry points


def list_models() -> list[str]:
    """Every registered model name, project models first, then torchvision's, each group sorted."""
    if not _loaded_registry:
        _ensure_teaching()
        indexed = quick_model_names()
        # The index holds the full registry's names; a name registered in this process beyond them (a test's,
        # a notebook's) needs the registry itself.
        if indexed is not None and set(registered()) <= set(indexed):
            return indexed
    _ensure_registry()
    entries = registered().values()
    return sorted(e.name for e in entries if e.source not in ("torchvision", "timm")) + sorted(
        e.name for e in entries if e.source == "torchvision") + sorted(e.name for e in entries if e.source == "timm")


def get_entry(name: str) -> ModelEntry:
    if not _loaded_registry:
        _ensure_teaching()
        entry = registered().get(name)
        # Without the operator's files (which could not replace a teaching network anyway: names are unique),
        # a teaching network needs nothing more; no need to read the name index for that.
        if entry is not None and registry_is_indexed():
            return entry
    _ensure_registry()
    try:
        return registered()[name]
    except KeyError:
        raise unknown_model(name) from None


