"""LeNet-5's layer table as LeCun et al. (1998) count it: trainable parameters and connections per layer.

A *connection* is one multiply (or add) between an input value, or the bias, and an output unit: a C-layer
unit with a k×k kernel over c input maps has c·k² + 1 of them, an S-layer unit (sum of a 2×2 block, times a
coefficient, plus a bias) 2·2 + 1, an F-layer unit in + 1. Parameters are shared between units, connections
are not: S2 has 12 trainable parameters but 5,880 connections. The output layer's 840 RBF prototypes are
fixed by hand (``requires_grad`` False), so LeNet-5 has 60,000 trainable parameters.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from explorer.core import hooked
from explorer.models import build_model

# LeCun et al. (1998), section II.B: what the paper prints per layer (citations, never computed from).
LENET5_PRINTED: dict[str, tuple[int | None, int | None]] = {
    "C1": (156, 122_304), "S2": (12, 5_880), "C3": (1_516, 151_600), "S4": (32, 2_000),
    "C5": (48_120, 48_120), "F6": (10_164, None), "output": (None, None),
}
LENET5_LAYERS = ("C1", "S2", "C3", "S4", "C5", "F6", "output")


def _connections_per_unit(module: nn.Module) -> list[int]:
    """Connections of each output map's units (one number per output channel or feature)."""
    name = type(module).__name__
    if name == "PartialConv2d":
        k = module.kernel_size[0] * module.kernel_size[1]
        return [len(inputs) * k + 1 for inputs in module.table]
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return [module.in_channels // module.groups * k + (module.bias is not None)] * module.out_channels
    if name == "Subsampling":
        return [module.kernel_size[0] * module.kernel_size[1] + 1] * module.channels
    if isinstance(module, nn.Linear):
        return [module.in_features + (module.bias is not None)] * module.out_features
    if name == "EuclideanRBF":
        return [module.in_features] * module.out_features
    raise ValueError(f"no connection rule for {name}")


def lenet5_table() -> pd.DataFrame:
    """One row per LeNet-5 layer: output shape, parameters (all / trainable / fixed), connections, and the
    paper's printed parameters and connections beside them."""
    model = build_model("lenet5")
    shapes: dict[str, tuple[int, ...]] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        shapes[names[module]] = tuple(output.shape[1:])

    with hooked(model) as add:
        for name in LENET5_LAYERS:
            add(model.get_submodule(name).register_forward_hook(hook))
        with torch.no_grad():
            model(torch.zeros(1, 1, 32, 32))
    rows = []
    for name in LENET5_LAYERS:
        module = model.get_submodule(name)
        shape = shapes[name]
        positions = shape[1] * shape[2] if len(shape) == 3 else 1
        connections = sum(_connections_per_unit(module)) * positions
        params = list(module.parameters())
        printed_params, printed_connections = LENET5_PRINTED[name]
        rows.append({"layer": name, "type": type(module).__name__, "output": "×".join(map(str, shape)),
                     "params": sum(p.numel() for p in params),
                     "trainable": sum(p.numel() for p in params if p.requires_grad),
                     "fixed": sum(p.numel() for p in params if not p.requires_grad),
                     "connections": connections, "params (paper)": printed_params,
                     "connections (paper)": printed_connections})
    table = pd.DataFrame(rows)
    for column in ("params (paper)", "connections (paper)"):
        table[column] = table[column].astype("Int64")
    return table
