"""An independent reference for recorded activations: plain forward hooks that clone every output."""
from __future__ import annotations

import torch
import torch.nn as nn


def plain_outputs(model: nn.Module, x: torch.Tensor, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Each module call's output (``name``, ``name#k`` for the k-th call), cloned by a plain forward hook that
    returns None (a hook that returned its clone would put it into the forward pass: ``out += identity`` would then
    rewrite the stored copy). ``names``: only these modules (default: all but the model itself)."""
    found: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def keep(name):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                counts[name] = counts.get(name, 0) + 1
                k = counts[name]
                found[name if k == 1 else f"{name}#{k}"] = output.detach().clone()
        return hook

    modules = dict(model.named_modules())
    wanted = names if names is not None else [n for n in modules if n]
    handles = [modules[n].register_forward_hook(keep(n)) for n in wanted]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found
