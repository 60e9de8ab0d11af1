"""Concepts of the course notes computed live on the user's model and image: batch normalisation, dropout,
pooling, and global average pooling vs flatten + FC.

Nothing here changes a model that may be shared: a BatchNorm layer's behaviour in training mode is computed
on a private copy of that one layer (``copy.deepcopy``), dropout on a copy of a recorded activation. Every
result is plain numpy, so the pages can cache and draw it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.analysis.activations import capture
from explorer.core import hooked

if TYPE_CHECKING:
    import pandas as pd

def batchnorm_layers(model: nn.Module) -> list[str]:
    """Names of the model's BatchNorm2d layers, in definition order: the ones :func:`batchnorm_demo` shows. A
    BatchNorm1d after a fully connected layer normalises each feature over the batch, and one image is a batch
    of one (m = 1: no variance to show; PyTorch refuses it in training mode). A layer without running statistics
    (``track_running_stats=False``) normalises the same way in both modes: nothing to compare, not listed."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.BatchNorm2d) and name and m.track_running_stats and m.running_mean is not None]


@dataclass(frozen=True)
class BatchNormDemo:
    """What one BatchNorm2d layer does to one image's activations, per channel (arrays of length C).

    ``m`` values are normalised per channel in training mode (N·H·W: here one image, so H·W). ``batch_mean`` and
    ``batch_var`` (biased, divided by m) normalise in training mode; the running statistics are updated with
    ``momentum`` and the *unbiased* variance ``batch_var · m/(m − 1)``; evaluation mode uses the running
    statistics instead. ``gamma``/``beta`` are the layer's learned scale and shift (a new layer starts at 1
    and 0). Maps: the chosen channel's input, its training-mode and evaluation-mode outputs."""

    layer: str
    m: int
    eps: float
    momentum: float | None
    batch_mean: np.ndarray
    batch_var: np.ndarray
    unbiased_var: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    running_mean_after: np.ndarray
    running_var_after: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    channel: int
    input_map: np.ndarray
    train_map: np.ndarray
    eval_map: np.ndarray
    normalized_map: np.ndarray  # x̂ = (x − μ)/√(σ² + ε) before γ and β, training mode
    # The weight of the new batch in the running statistics' update: ``momentum``, or with momentum=None PyTorch's
    # cumulative average 1/(batches seen + 1).
    update_factor: float = 0.1


def batchnorm_demo(model: nn.Module, x: torch.Tensor, layer: str, channel: int = 0) -> BatchNormDemo:
    """Batch normalisation of ``layer`` (a BatchNorm2d) on the activations that ``x`` produces there.

    The layer's input is recorded with :func:`capture` (``layer:in``: hooks under the model's lock); the
    training-mode pass runs on a deep copy of the layer alone, so the shared model's running statistics and
    train/eval flag never change.
    """
    module = model.get_submodule(layer)
    if not isinstance(module, nn.BatchNorm2d):
        raise ValueError(f"{layer} is a {type(module).__name__}, not a BatchNorm2d layer")
    if not module.track_running_stats or module.running_mean is None:
        raise ValueError(f"{layer} keeps no running statistics (track_running_stats=False): it normalises with the "
                         "batch's statistics in evaluation mode too, so there is no train/eval difference to show")
    # ``hooked`` holds the model's lock (hooks exist only under it: the copy carries none of another pass's) and
    # restores every train/eval flag: the layer's input is the evaluation-mode one, since a model in training mode
    # would update every BatchNorm's running statistics in this pass (no_grad does not stop that) and drop units.
    with hooked(model, evaluate=True):
        inp = capture(model, x, [f"{layer}:in"])[f"{layer}:in"].float()
        private = copy.deepcopy(module).float().cpu()
    channels = inp.shape[1]
    if not 0 <= channel < channels:
        raise ValueError(f"channel {channel} is outside 0..{channels - 1}")
    seen = int(private.num_batches_tracked) if private.num_batches_tracked is not None else 0
    factor = float(private.momentum) if private.momentum is not None else 1.0 / (seen + 1)
    with torch.no_grad():
        eval_out = private.eval()(inp)
        before_mean, before_var = private.running_mean.clone(), private.running_var.clone()
        train_out = private.train()(inp)  # updates the copy's running statistics only
    dims = (0, 2, 3)
    m = inp.numel() // channels
    mean = inp.mean(dims)
    var = inp.var(dims, unbiased=False)
    normalized = (inp - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + private.eps)
    gamma = private.weight.detach() if private.weight is not None else torch.ones(channels)
    beta = private.bias.detach() if private.bias is not None else torch.zeros(channels)

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    return BatchNormDemo(
        layer=layer, m=m, eps=float(private.eps), momentum=private.momentum,
        batch_mean=arr(mean), batch_var=arr(var), unbiased_var=arr(var * m / max(m - 1, 1)),
        running_mean=arr(before_mean), running_var=arr(before_var),
        running_mean_after=arr(private.running_mean), running_var_after=arr(private.running_var),
        gamma=arr(gamma), beta=arr(beta), channel=channel,
        input_map=arr(inp[0, channel]), train_map=arr(train_out[0, channel]), eval_map=arr(eval_out[0, channel]),
        normalized_map=arr(normalized[0, channel]), update_factor=factor)


@dataclass(frozen=True)
class DropoutDemo:
    """Dropout with probability ``p`` applied to one recorded activation (C, H, W) of the user's image.

    Training mode keeps each unit with probability 1 − p (``kept``) and multiplies the kept values by
    1/(1 − p), so the expected value of every unit is unchanged; evaluation mode returns the input as is."""

    layer: str
    p: float
    scale: float
    kept: np.ndarray  # bool mask, True where the unit is kept
    input: np.ndarray
    train_output: np.ndarray
    eval_output: np.ndarray

    @property
    def kept_fraction(self) -> float:
        return float(self.kept.mean())


def dropout_demo(activation: np.ndarray, p: float, layer: str = "", seed: int = 0) -> DropoutDemo:
    """Dropout on a copy of ``activation``, with its own random generator (never the global one)."""
    if not 0 <= p < 1:
        raise ValueError("the dropout probability p must be in [0, 1)")
    x = torch.as_tensor(np.array(activation, dtype=np.float32, copy=True))
    generator = torch.Generator().manual_seed(int(seed))
    kept = torch.rand(x.shape, generator=generator) >= p
    scale = 1.0 / (1.0 - p)
    train_out = torch.where(kept, x * scale, torch.zeros_like(x))
    return DropoutDemo(layer=layer, p=float(p), scale=scale, kept=kept.numpy(), input=x.numpy(),
                       train_output=train_out.numpy(), eval_output=x.numpy().copy())


# --- pooling -----------------------------------------------------------------------------------------

POOLINGS: dict[str, tuple[str, int, int]] = {
    "max_2x2": ("max", 2, 2),  # non-overlapping (VGG, LeNet's subsampling geometry)
    "avg_2x2": ("avg", 2, 2),
    "max_3x3": ("max", 3, 2),  # overlapping (AlexNet, GoogLeNet)
    "avg_3x3": ("avg", 3, 2),
}


def pool_image(picture: np.ndarray, kind: str) -> np.ndarray:
    """One of :data:`POOLINGS` applied to an image (H, W) or (H, W, C), channel by channel, in float."""
    if kind not in POOLINGS:
        raise ValueError(f"unknown pooling {kind!r}: use one of {', '.join(POOLINGS)}")
    op, k, s = POOLINGS[kind]
    x = torch.as_tensor(np.asarray(picture, dtype=np.float32))
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    out = F.max_pool2d(x, k, s) if op == "max" else F.avg_pool2d(x, k, s)
    out = out[0]
    return (out[0] if np.ndim(picture) == 2 else out.permute(1, 2, 0)).numpy()  # (H, W, 1) stays 3-D


def pool_output_size(n: int, kernel: int, stride: int) -> int:
    """⌊(N − F)/S⌋ + 1 (no padding)."""
    return (n - kernel) // stride + 1


def last_spatial_map(table: "pd.DataFrame") -> tuple[str, tuple[int, int, int]] | None:
    """The last leaf layer of a :func:`explorer.analysis.layer_table` whose output is a C×H×W map larger than 1×1:
    the map a classifier head reads, before any pooling to 1×1 (ResNet's ``layer4``, not its ``avgpool``: a GAP
    network's pooled 512×1×1 makes flatten and GAP look the same). None when there is none."""
    leaves = table[table["is_leaf"]]
    for layer, shape in zip(reversed(list(leaves["layer"])), reversed(list(leaves["output_shape"]))):
        parts = str(shape).split("x")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            c, h, w = (int(p) for p in parts)
            if h * w > 1:
                return str(layer), (c, h, w)
    return None


@dataclass(frozen=True)
class HeadComparison:
    """Flatten + FC against global average pooling + FC on a C×H×W feature map, to ``classes`` outputs."""

    channels: int
    height: int
    width: int
    classes: int
    flatten_params: int  # C·H·W·K + K
    gap_params: int  # C·K + K

    @property
    def saved(self) -> int:
        return self.flatten_params - self.gap_params

    @property
    def ratio(self) -> float:
        return self.flatten_params / self.gap_params


def gap_vs_flatten(channels: int, height: int, width: int, classes: int) -> HeadComparison:
    """Parameters of the two classifier heads (GoogLeNet and ResNet use GAP; VGG and AlexNet flatten)."""
    if min(channels, height, width, classes) < 1:
        raise ValueError("channels, height, width and classes must be positive")
    return HeadComparison(channels, height, width, classes,
                          flatten_params=channels * height * width * classes + classes,
                          gap_params=channels * classes + classes)
