"""A network ready to use: :class:`LoadedModel` (the model, its input, its classes and its weights' story)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
from PIL import Image


@dataclass
class LoadedModel:
    model: nn.Module
    name: str
    input_shape: tuple[int, int, int]
    categories: list[str] | None  # only when the weights make the classes meaningful
    weights_status: str
    weights_key: str
    pretrained: bool
    device: torch.device
    transform: Callable[[Image.Image], torch.Tensor]
    class_names: list[str] = field(default_factory=list)  # names for pickers, meaningful or not
    # For translated banners: "builtin", "pretrained", "random", "no_pretrained", "offline" (the download server was
    # unreachable), "fallback" (another failure), "checkpoint", "run" ("" = unknown).
    weights_kind: str = ""
    weights_detail: str = ""
    trained_on: str = ""  # "shapes", "digits" (built-in weights), "imagenet"; "" when unknown or untrained

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The image as the model sees it: a ``[1, C, H, W]`` CPU tensor."""
        return self.transform(image).unsqueeze(0)

    @property
    def normalization(self) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        """(mean, std) the transform normalises with; (None, None) when it does not, or does not say."""
        return getattr(self.transform, "mean", None), getattr(self.transform, "std", None)

    @property
    def is_random(self) -> bool:
        return self.categories is None
