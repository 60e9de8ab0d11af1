"""The model registry, in the spirit of torchvision's ``list_models``/``get_model``.

A decorator registers a builder under a unique name with what a UI needs to describe the model
without building it: natural input shape, family, categories and available weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Builder  # builder(num_classes: int | None = None) -> nn.Module, random init
    input_shape: tuple[int, int, int]
    family: str
    description: str = ""
    weights_enum: Any = None  # a torchvision WeightsEnum class, or None
    num_classes: int | None = None
    categories: tuple[str, ...] | None = None
    source: str = "project"  # "torchvision" or "project"
    extra: dict = field(default_factory=dict, compare=False)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    family: str,
    description: str = "",
    weights_enum: Any = None,
    num_classes: int | None = None,
    categories: tuple[str, ...] | None = None,
    source: str = "project",
) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``name``; raises if the name is taken."""

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"a model named {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(
            name=name,
            builder=builder,
            input_shape=tuple(input_shape),
            family=family,
            description=description,
            weights_enum=weights_enum,
            num_classes=num_classes,
            categories=tuple(categories) if categories else None,
            source=source,
        )
        return builder

    return wrap


def registered() -> dict[str, ModelEntry]:
    return _REGISTRY
