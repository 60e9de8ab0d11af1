"""AlexNet as the paper and the course notes describe it (``alexnet_paper``) beside torchvision's ``alexnet``,
weight layer by weight layer: output shapes, groups and parameters, read from the two built models."""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from explorer.core import hooked
from explorer.models import build_model, get_entry

ALEXNET_LAYER_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def _weight_layers(name: str) -> list[dict[str, Any]]:
    model = build_model(name)
    shape = get_entry(name).input_shape
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    outputs: dict[int, tuple[int, ...]] = {}

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        outputs[id(module)] = tuple(output.shape[1:])

    with hooked(model) as add:
        for m in layers:
            add(m.register_forward_hook(hook))
        with torch.no_grad():
            model(torch.zeros(1, *shape))
    rows = []
    for label, m in zip(ALEXNET_LAYER_NAMES, layers):
        geometry = (f"{m.kernel_size[0]}×{m.kernel_size[1]}/{m.stride[0]}, groups {m.groups}"
                    if isinstance(m, nn.Conv2d) else "FC")
        rows.append({"layer": label, "geometry": geometry, "output": "×".join(map(str, outputs[id(m)])),
                     "params": sum(p.numel() for p in m.parameters())})
    return rows


def alexnet_comparison() -> pd.DataFrame:
    """One row per weight layer (conv1..fc8) and a total row: the paper's network and torchvision's."""
    paper, tv = _weight_layers("alexnet_paper"), _weight_layers("alexnet")
    rows = [{"layer": p["layer"], "paper: geometry": p["geometry"], "paper: output": p["output"],
             "paper: params": p["params"], "torchvision: geometry": t["geometry"], "torchvision: output": t["output"],
             "torchvision: params": t["params"]} for p, t in zip(paper, tv)]
    rows.append({"layer": "total", "paper: geometry": "", "paper: output": f"input {'×'.join(map(str, get_entry('alexnet_paper').input_shape))}",
                 "paper: params": sum(p["params"] for p in paper), "torchvision: geometry": "",
                 "torchvision: output": f"input {'×'.join(map(str, get_entry('alexnet').input_shape))}",
                 "torchvision: params": sum(t["params"] for t in tv)})
    return pd.DataFrame(rows)
