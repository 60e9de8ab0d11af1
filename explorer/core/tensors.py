"""Small tools for code that follows tensors through a forward pass (the receptive-field tracer, the diagram)."""
from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

import torch

Tag = TypeVar("Tag")


def flat_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in a (nested) tuple, list or dict, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        out: list[torch.Tensor] = []
        for item in value:
            if isinstance(item, torch.Tensor):  # the usual case, without a call (hooks run this on every module call)
                out.append(item)
            else:
                out.extend(flat_tensors(item))
        return out
    return []


class TensorTags(Generic[Tag]):
    """A tag per tensor, by identity. Weak references, so a recycled ``id()`` is never mistaken for a tensor."""

    def __init__(self) -> None:
        self._tags: dict[int, tuple[weakref.ref, Tag]] = {}

    def get(self, tensor: torch.Tensor) -> Tag | None:
        entry = self._tags.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1]
        return None

    def set(self, tensor: torch.Tensor, tag: Tag) -> None:
        self._tags[id(tensor)] = (weakref.ref(tensor), tag)
