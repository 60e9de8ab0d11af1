"""The effective receptive field (Luo et al. 2016): gradients of one unit with respect to the input."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from explorer.receptive.geometry import AXES
from explorer.core import model_device_dtype, model_lock
from explorer.receptive.tracing import trace


def effective_receptive_field(model: nn.Module, x: torch.Tensor, layer: str, position: tuple[int, int] | None,
                              channel: int | None = None) -> np.ndarray:
    """|∂ unit / ∂ input| summed over input channels: the effective receptive field (Luo et al. 2016).

    ``layer`` is a row name of :func:`receptive_field_table` (``layer1.0.relu#2`` and ``inception3a.cat``
    work too); ``position`` = (row, col) in that layer's output map (ignored for layers without one);
    the unit is the sum over output channels there (or one ``channel``). Returns an (H, W) non-negative
    array. Takes the model's lock; hooks are removed and train/eval flags restored, whatever happens.
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be [C, H, W] or [1, C, H, W], got {tuple(x.shape)}")
    device, dtype = model_device_dtype(model)
    inp = x.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)
    # The lock covers the backward pass too: autograd through a shared model is serialised per model.
    with model_lock(model), torch.enable_grad():
        tracer = trace(model, inp, stop_at=layer)
        if tracer.captured is None:
            names = [r.layer for r in tracer.rows]
            raise ValueError(f"no layer named {layer!r} ran in the forward pass"
                             + (f" (e.g. {', '.join(names[:3])} ... {names[-1]})" if names else ""))
        out, info = tracer.captured
        if info.unknown is not None and not out.requires_grad:
            raise ValueError(f"cannot compute the effective field of {layer!r}: {info.unknown}")
        selected = out[0] if out.dim() > 0 and out.shape[0] == 1 else out
        dims = list(info.dims[1:]) if out.dim() > 0 and out.shape[0] == 1 else list(info.dims)
        index: list[Any] = [slice(None)] * selected.dim()
        for axis, value in zip(AXES, position or (0, 0)):
            if axis in dims:
                d = dims.index(axis)
                if not 0 <= int(value) < selected.shape[d]:
                    raise ValueError(f"position {tuple(position or (0, 0))} is outside {layer!r}'s output "
                                     f"({selected.shape[d]} units along {'rows' if axis == 'h' else 'columns'})")
                index[d] = int(value)
        if channel is not None:
            channel_dims = [i for i, t in enumerate(dims) if t is None]
            if not channel_dims:
                raise ValueError(f"{layer!r} has no channel dimension")
            count = selected.shape[channel_dims[0]]
            # a negative channel would count from the end (Python indexing): refused, like a negative position
            if not 0 <= int(channel) < count:
                raise ValueError(f"channel {channel} is outside {layer!r}'s output ({count} channels: 0 to "
                                 f"{count - 1})")
            index[channel_dims[0]] = int(channel)
        unit = selected[tuple(index)].sum()
        if not unit.requires_grad:
            return np.zeros(tuple(inp.shape[-2:]), dtype=np.float32)
        (grad,) = torch.autograd.grad(unit, inp, allow_unused=True)
    if grad is None:
        return np.zeros(tuple(inp.shape[-2:]), dtype=np.float32)
    return grad.detach().abs().sum(dim=1)[0].float().cpu().numpy()


def erf_extent(erf: np.ndarray, centre: tuple[float, float], fraction: float = 0.9) -> int:
    """Side (pixels) of the smallest square centred on ``centre`` that holds ``fraction`` of the ERF's mass.

    Luo et al. found effective fields far smaller than theoretical ones; this number says how much smaller.
    """
    total = float(erf.sum())
    if total <= 0:
        return 0
    h, w = erf.shape
    cy, cx = int(round(centre[0])), int(round(centre[1]))
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    distance = np.maximum(np.abs(rows - cy), np.abs(cols - cx))  # Chebyshev: squares around the centre
    order = np.argsort(distance, axis=None, kind="stable")
    mass = np.cumsum(erf.ravel()[order])
    reached = int(np.searchsorted(mass, fraction * total))
    radius = int(distance.ravel()[order[min(reached, order.size - 1)]])
    return 2 * radius + 1
