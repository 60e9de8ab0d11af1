"""Recorded activations that stay where the network ran until a page draws one of them.

On a GPU, copying every layer's output to the host after a pass costs more than the pass itself (an H100
analysis was 2.8-3.4x its floor, the copies dominating). :class:`HostActivations` keeps the recorded tensors on
their device and turns one layer into a numpy array the first time it is read: one pinned, asynchronous copy
for that layer, then the same read-only array for every later reader (and for every name that aliases the
same tensor: a block's output is its last layer's). On the CPU the "copy" is a zero-copy view, so the same
code path runs, and is tested, on every machine. An output the pass overwrote in place (a BatchNorm's before
``ReLU(inplace=True)``) may be kept as its call (:class:`explorer.analysis.hooks.Recompute`): it is computed
again, once, when first read, instead of being copied during every pass.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import numpy as np
import torch

from explorer.analysis.hooks import Recompute


class HostActivations(Mapping):
    """``name -> float32 numpy array`` without the batch dimension, converted from ``tensors`` on first read.

    ``tensors`` maps call names to recorded tensors ``[1, ...]`` (or ``[...]``) on any device, or to the
    :class:`Recompute` of the call that made one; names that share one object share one array. Arrays are read-only: the mapping is shared by every session.
    ``converted`` counts the layers copied so far (what a page drew), ``device_bytes`` the memory held.
    """

    def __init__(self, tensors: Mapping[str, "torch.Tensor | Recompute"]) -> None:
        self._tensors = dict(tensors)
        self._distinct = {id(t): t for t in self._tensors.values()}  # aliases (a block and its last layer) once
        self._arrays: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self.converted = 0

    def __getitem__(self, name: str) -> np.ndarray:
        tensor = self._tensors[name]
        array = self._arrays.get(id(tensor))
        if array is None:
            with self._lock:
                array = self._arrays.get(id(tensor))
                if array is None:
                    value = tensor.compute() if isinstance(tensor, Recompute) else tensor
                    array = self._arrays[id(tensor)] = _to_host(value)
                    self.converted += 1
        return array

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def is_recomputed(self, name: str) -> bool:
        """Whether ``name`` is kept as its call (computed again when first read) rather than as a tensor."""
        return isinstance(self._tensors[name], Recompute)

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The array's shape without converting it."""
        tensor = self._tensors[name]
        return tuple(tensor.shape[1:]) if tensor.dim() > 1 else tuple(tensor.shape)

    def held_arrays(self) -> list:
        """What this mapping keeps alive, each object once: the recorded tensors, the host arrays that are no view of
        one of those (copies from a GPU, recomputed layers), and each recomputed layer not read yet as the array it
        will become (a byte budget counts it now). ``explorer.core.nbytes_of`` counts these."""
        held: list = []
        for key, item in list(self._distinct.items()):
            array = self._arrays.get(key)
            if isinstance(item, Recompute):
                held.append(item.source)  # a recorded tensor too: counted once
                held.append(item if array is None else array)
            else:
                held.append(item)
                if array is not None and item.device.type != "cpu":
                    held.append(array)
        return held

    @property
    def device_bytes(self) -> int:
        """Bytes of the recorded tensors (a layer kept as its call, not computed yet, holds none of its own)."""
        return sum(t.element_size() * t.nelement() for t in self._distinct.values() if not isinstance(t, Recompute))


def _to_host(tensor: torch.Tensor) -> np.ndarray:
    value = tensor[0] if tensor.dim() > 1 else tensor
    value = value.detach()
    if value.dtype != torch.float32:
        value = value.float()
    if value.device.type == "cpu":
        array = value.numpy()
    else:
        pinned = value.device.type == "cuda"
        host = torch.empty(value.shape, dtype=torch.float32, pin_memory=pinned)
        host.copy_(value, non_blocking=pinned)
        if pinned:
            torch.cuda.current_stream(value.device).synchronize()
        array = host.numpy()
    array.flags.writeable = False
    return array
