"""timm's convolutional networks in the registry, when ``timm`` is installed (optional: not a requirement).

A short curated list (``TIMM_MODELS``; ``$EXPLORER_TIMM_MODELS``, comma-separated timm names, replaces it) is
registered as ``timm/<name>``. Pretrained weights: the checkpoint named by timm's own configuration is fetched
with the same short timeout as torchvision's (:func:`explorer.models.loading.fetch_pretrained`) and handed to
timm's own loader (``pretrained_cfg_overlay={"file": ...}``, which reads ``weights_only``). Offline, the model
starts from random weights with the usual honest notice. Nothing here imports timm until a model is built.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from explorer.models.registry import register_model, registered

TIMM_PREFIX = "timm/"
TIMM_MODELS_ENV = "EXPLORER_TIMM_MODELS"
# Small and mid-sized CNNs of the families a course meets (ResNet, EfficientNet, ConvNeXt, MobileNetV3, RegNet,
# MixNet); every one but regnetx_002 has a checkpoint URL in timm's configuration.
TIMM_MODELS = ("resnet18", "resnet18d", "resnet50", "efficientnet_b0", "efficientnet_lite0", "convnext_atto",
               "convnext_femto", "mobilenetv3_small_100", "mobilenetv3_large_100", "mixnet_s", "regnetx_002")
_FAMILIES = (("resnet", "ResNet"), ("efficientnet", "EfficientNet"), ("convnext", "ConvNeXt"),
             ("mobilenet", "MobileNet"), ("regnet", "RegNet"), ("mixnet", "MixNet"))


def timm_available() -> bool:
    return importlib.util.find_spec("timm") is not None


def timm_names() -> list[str]:
    text = os.environ.get(TIMM_MODELS_ENV, "")
    names = [n.strip() for n in text.split(",") if n.strip()] if text.strip() else list(TIMM_MODELS)
    return list(dict.fromkeys(names))


class TimmPretrained:
    """One timm checkpoint, shaped like a torchvision ``WeightsEnum`` member (``url``, ``meta``,
    ``transforms()``), so the loader treats both alike."""

    def __init__(self, name: str, cfg: Any) -> None:
        from torchvision.models import ResNet18_Weights

        self.name, self.url = name, cfg.url
        self.cfg = cfg
        # timm's ImageNet-1k heads use the same class order as torchvision's.
        self.meta = {"categories": list(ResNet18_Weights.DEFAULT.meta["categories"]),
                     "_metrics": {"ImageNet-1K": {"acc@1": "timm"}}}

    def transforms(self) -> Any:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms._presets import ImageClassification

        crop = int(self.cfg.input_size[-1])
        return ImageClassification(crop_size=crop, resize_size=int(round(crop / float(self.cfg.crop_pct or 0.875))),
                                   mean=tuple(self.cfg.mean), std=tuple(self.cfg.std),
                                   interpolation=InterpolationMode(self.cfg.interpolation or "bilinear"))

    def local_file(self) -> Path:
        """Where :func:`explorer.models.loading.fetch_pretrained` keeps this checkpoint."""
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(self.url)

    def __str__(self) -> str:
        return f"timm {self.name}"


def _weights_class(member: TimmPretrained) -> type:
    # A class with ``DEFAULT``, as torchvision's weight enums have.
    return type(f"TimmWeights_{member.name}", (), {"DEFAULT": member})


def _builder(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int | None = None, weights: Any = None, **kwargs: Any) -> nn.Module:
        import timm

        if weights is not None:
            # The loader fetched the file into torch's hub cache first (short timeout); timm reads it from there.
            return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(weights.local_file())},
                                     **kwargs)
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        return timm.create_model(name, pretrained=False, **kwargs)

    build.__name__ = name.replace("/", "_")
    return build


def register_timm() -> list[str]:
    """Register the listed timm networks (nothing when timm is absent); returns the names registered."""
    if not timm_available():
        return []
    from timm.models import get_pretrained_cfg, is_model
    from torchvision.models import ResNet18_Weights

    imagenet = tuple(ResNet18_Weights.DEFAULT.meta["categories"])
    done = []
    for name in timm_names():
        key = TIMM_PREFIX + name
        if key in registered() or not is_model(name):
            continue
        cfg = get_pretrained_cfg(name)
        shape = tuple(int(d) for d in (cfg.input_size if cfg is not None else (3, 224, 224)))
        weights = _weights_class(TimmPretrained(name, cfg)) if cfg is not None and cfg.url else None
        family = next((label for prefix, label in _FAMILIES if name.startswith(prefix)), "timm")
        classes = int(cfg.num_classes) if cfg is not None and cfg.num_classes else None
        categories = imagenet if classes == len(imagenet) else None
        register_model(key, input_shape=shape, family=family, description=f"timm {name}", weights_enum=weights,
                       num_classes=classes, categories=categories, source="timm")(_builder(name))
        done.append(key)
    return done
