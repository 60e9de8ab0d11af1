"""The training loop's pieces: batches on the device, augmentation, run-seeded random layers, the schedule.

Everything random here draws from the run's own ``torch.Generator`` (see ``explorer.training.loop`` on
reproducibility): :func:`augment_batch`, :class:`RunDropout` and :class:`RunStochasticDepth`, which
``swap_random_layers`` puts in place of ``nn.Dropout`` and torchvision's ``StochasticDepth``.
:func:`lr_factor` is the learning-rate schedule, ``make_optimizer`` the optimiser with its parameter groups.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.data import ImageTensors
from explorer.training.transfer import parameter_groups

from explorer.training.config import TrainConfig

# --- data on the device ------------------------------------------------------------------------------------


def normalise_uint8(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(255).sub_(mean).div_(std)


def augment_batch(x: torch.Tensor, generator: torch.Generator, flip: bool, shift: float = 0.1) -> torch.Tensor:
    """Random shifts of up to ``shift`` of the image size (edges repeated), and mirror images if ``flip``.

    ``x`` is a float batch in [0, 1]; every random number comes from ``generator`` (CPU), so runs repeat.
    """
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    if flip:
        signs = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        theta[:, 0, 0] = signs
    theta[:, :, 2] = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * shift)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class RunDropout(nn.Module):
    """``nn.Dropout`` / ``nn.Dropout2d`` drawing from the run's generator instead of torch's global one."""

    def __init__(self, p: float, generator: torch.Generator, channelwise: bool = False) -> None:
        super().__init__()
        self.p = p
        self.generator = generator
        self.channelwise = channelwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2) if self.channelwise else x.shape
        keep = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep / (1 - self.p)


class RunStochasticDepth(nn.Module):
    """torchvision's ``StochasticDepth`` (EfficientNet, ConvNeXt) drawing from the run's generator."""

    def __init__(self, p: float, mode: str, generator: torch.Generator) -> None:
        super().__init__()
        self.p, self.mode, self.generator = p, mode, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        survival = 1.0 - self.p
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(survival, generator=self.generator)
        return x * noise.div_(survival) if survival > 0 else x * noise


def swap_random_layers(model: nn.Module, generator: torch.Generator) -> None:
    """Replace the layers that would draw from torch's global generator while training."""
    from torchvision.ops import StochasticDepth

    for parent in model.modules():
        for child_name, child in parent.named_children():
            if type(child) in (nn.Dropout, nn.Dropout2d):
                setattr(parent, child_name, RunDropout(child.p, generator, type(child) is nn.Dropout2d))
            elif type(child) is StochasticDepth:
                setattr(parent, child_name, RunStochasticDepth(child.p, child.mode, generator))


def main_output(out: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main logits, auxiliary logits) from a plain tensor or GoogLeNet/Inception's named tuples."""
    if isinstance(out, torch.Tensor):
        return out, []
    main, *rest = out
    return main, [o for o in rest if isinstance(o, torch.Tensor)]


def lr_factor(schedule: str, step: int, total_steps: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning-rate multiplier before optimiser step ``step`` (0-based): a pure function.

    ``"step"``: ×0.1 from (0-based) epoch ⌈E/3⌉ on and ×0.1 again from epoch ⌈2E/3⌉ on, for ``E`` epochs: two
    drops whenever ``E ≥ 3`` (4 epochs: 1, 1, 0.1, 0.01; 9 epochs: drops before epochs 3 and 6), one for 2
    epochs, none for 1. (Dropping every ⌈E/3⌉ epochs once gave 4 epochs a single drop.)
    ``"cosine"``: from 1 down to 0 over ``total_steps``.
    """
    if schedule == "none":
        return 1.0
    if schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        drops = sum(epoch >= -(-epochs * k // 3) for k in (1, 2))  # ⌈kE/3⌉ in integers
        return 0.1 ** drops
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    raise ValueError(f"unknown schedule {schedule!r}")


def autocast_for(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def on_device(data: ImageTensors, device: torch.device) -> ImageTensors:
    if device.type == "cpu":
        return data
    return ImageTensors(data.images.to(device), data.labels.to(device))


def make_optimizer(model: nn.Module, config: TrainConfig, heads: list[str]) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.mode, config.lr, config.backbone_lr_factor, heads)
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
