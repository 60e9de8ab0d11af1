"""Why 1×1 reductions matter: GoogLeNet's inception (3a) built naively and with its 1×1 reductions.

Both modules are built in code and counted by code (convolution weights from the modules, mult-adds from
one shape-only pass with :func:`explorer.history.compare.mult_adds_by_module`): on 192×28×28 the naive
module (1×1 64 | 3×3 128 | 5×5 32 | 3×3 max pool, concatenated) has 387,072 weights and 303.5 M mult-adds,
the paper's module with reductions (1×1 96 before the 3×3, 1×1 16 before the 5×5, 1×1 32 after the pool)
163,328 and 128.0 M.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from explorer.history.compare import mult_adds_by_module
from explorer.models import GOOGLENET_INCEPTION, PaperInception

INCEPTION_3A_INPUT: tuple[int, int, int] = (192, 28, 28)


class NaiveInception(nn.Module):
    """Figure 2(a) of the GoogLeNet paper: 1×1, 3×3 and 5×5 convolutions and a 3×3 max pool side by side on the
    full input, concatenated (the pool passes all input channels through)."""

    def __init__(self, in_channels: int, n1x1: int, n3x3: int, n5x5: int) -> None:
        super().__init__()
        self.branch1 = nn.Conv2d(in_channels, n1x1, 1)
        self.branch2 = nn.Conv2d(in_channels, n3x3, 3, padding=1)
        self.branch3 = nn.Conv2d(in_channels, n5x5, 5, padding=2)
        self.branch4 = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


@dataclass(frozen=True)
class ModuleCost:
    name: str
    weights: int  # convolution weights (no biases), as the course notes count them
    biases: int
    mult_adds: int
    out_channels: int
    branches: dict[str, int]  # weights per branch


def _cost(name: str, module: nn.Module, input_shape: tuple[int, int, int]) -> ModuleCost:
    convs = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    branches: dict[str, int] = {}
    for n, m in convs:
        branch = n.split(".")[0]
        branches[branch] = branches.get(branch, 0) + m.weight.numel()
    with torch.no_grad():
        out = module(torch.zeros(1, *input_shape, device="meta"))
    return ModuleCost(name=name, weights=sum(m.weight.numel() for _, m in convs),
                      biases=sum(m.bias.numel() for _, m in convs if m.bias is not None),
                      mult_adds=sum(mult_adds_by_module(module, input_shape, device="meta").values()),
                      out_channels=int(out.shape[1]), branches=branches)


def inception_reduction_costs(block: str = "inception3a",
                              input_shape: tuple[int, int, int] = INCEPTION_3A_INPUT) -> tuple[ModuleCost, ModuleCost]:
    """(naive, with 1×1 reductions) for one of the paper's inception blocks at ``input_shape``."""
    widths = GOOGLENET_INCEPTION[block]
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        naive = NaiveInception(input_shape[0], widths.n1x1, widths.n3x3, widths.n5x5)
        reduced = PaperInception(input_shape[0], widths)
    return _cost("naive", naive, input_shape), _cost("reduced", reduced, input_shape)
