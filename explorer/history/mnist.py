"""The notes' Lab 4 comparison: a two-layer MLP (25,514 parameters) against their MNIST CNN (2,762), counted
from the built networks.

The notes give only the totals ("layer count 2 → 4, parameters 25514 → 2762, accuracy 97.2 % → 98.0 %"). The MLP
they replaced is not printed; 784 → 32 → 10 with a BatchNorm1d in between is the two-layer MLP with exactly 25,514
parameters (784·32 + 32, 2·32, 32·10 + 10), so it stands in for it. Its weights are dense: every hidden unit sees
every pixel, so its first layer grows with the image; a conv layer's weights are shared by every position, so the
CNN's convolutions cost the same parameters at any size (only its fully connected head grows) while each weight
is used many times (more multiply-adds per parameter).
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
import torch.nn as nn

from explorer.analysis import layer_table
from explorer.history.compare import mult_adds_by_module
from explorer.models import build_model

# The notes' printed totals (citations, never computed from): Lab 4, "Training results".
NOTES_TOTALS: dict[str, dict[str, float]] = {
    "mlp": {"weight layers": 2, "params": 25_514, "accuracy": 97.2},
    "cnn": {"weight layers": 4, "params": 2_762, "accuracy": 98.0},
}
MNIST_SIDE = 28
MLP_HIDDEN = 32
DEFAULT_SIDES: tuple[int, ...] = (28, 32, 64, 96, 128, 160, 192, 224)
_WEIGHT_TYPES = (nn.Conv2d, nn.Linear)


class NotesMLP(nn.Module):
    """The two-layer MLP the notes' CNN replaced: flatten, 784 → 32, BatchNorm1d, ReLU, 32 → 10 (logits)."""

    def __init__(self, side: int = MNIST_SIDE, hidden: int = MLP_HIDDEN, num_classes: int = 10) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(side * side, hidden)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu1(self.bn1(self.fc1(self.flatten(x)))))


def _notes_cnn(side: int) -> nn.Module:
    """The notes' CNN (``mnist_cnn``) for a ``side``×``side`` input: its convolutions as they are, its fully
    connected layer sized to what they output at that side (32 at 28×28)."""
    model = build_model("mnist_cnn")
    trunk = nn.Sequential(model.conv1, model.relu1, model.BN1, model.conv2, model.relu2, model.BN2, model.conv3,
                          model.relu3, model.flatten)
    if side == MNIST_SIDE:
        return model
    with torch.no_grad():
        flat = int(trunk(torch.zeros(1, 1, side, side)).shape[1])
    return nn.Sequential(trunk, nn.Linear(flat, model.fc.out_features)).eval()


def _check_side(side: int) -> None:
    if not isinstance(side, int) or side < 21 or side > 1024:
        # conv1 (5×5, stride 2) → conv2 (5×5, stride 2) → conv3 (3×3) need 21 pixels; 1024 keeps the MLP small
        raise ValueError(f"the notes' CNN takes square inputs from 21 to 1024 pixels, not {side!r}")


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mlp_vs_cnn_layers() -> pd.DataFrame:
    """Every layer with parameters in both networks at 28×28: model, layer, type, output, params, mult_adds.
    Multiply-adds as the Compare page and the papers count them: each weight times one input value, per output
    position (a conv's weights times its output positions); biases and BatchNorm are not counted."""
    rows = []
    shape = (1, MNIST_SIDE, MNIST_SIDE)
    for model_key, model in (("mlp", NotesMLP().eval()), ("cnn", build_model("mnist_cnn"))):
        table = layer_table(model, shape)
        mult_adds = mult_adds_by_module(model, shape)
        for row in table[table["params"] > 0].itertuples():
            rows.append({"model": model_key, "layer": row.layer, "type": row.type, "output": row.output_shape,
                         "params": int(row.params), "mult_adds": int(mult_adds.get(row.layer, 0))})
    return pd.DataFrame(rows)


def mlp_vs_cnn_summary(layers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per network: weight layers (conv and fully connected), parameters, multiply-adds for one 28×28 image,
    multiply-adds per parameter, and the notes' printed totals and accuracies beside them. Summed from
    :func:`mlp_vs_cnn_layers` (given, or computed here): every layer with parameters is one of its rows."""
    layers = mlp_vs_cnn_layers() if layers is None else layers
    rows = []
    for model_key in ("mlp", "cnn"):
        own = layers[layers["model"] == model_key]
        params = int(own["params"].sum())
        mult_adds = int(own["mult_adds"].sum())
        notes = NOTES_TOTALS[model_key]
        rows.append({"model": model_key,
                     "weight layers": int(own["type"].isin([t.__name__ for t in _WEIGHT_TYPES]).sum()),
                     "params": params, "mult_adds": mult_adds, "mult_adds per param": round(mult_adds / params, 2),
                     "params (notes)": int(notes["params"]), "weight layers (notes)": int(notes["weight layers"]),
                     "accuracy % (notes)": notes["accuracy"]})
    return pd.DataFrame(rows)


def params_by_input_side(sides: Sequence[int] = DEFAULT_SIDES) -> pd.DataFrame:
    """Parameters of both networks built for square inputs of each side: the MLP's (its first layer has side²·32
    weights), and the CNN's in three parts: its convolutions and its BatchNorms (the same at every side), its fully
    connected head (sized to the last conv's output)."""
    rows = []
    for side in sides:
        _check_side(side)
        cnn = _notes_cnn(side)
        by_type = {kind: sum(_count(m) for m in cnn.modules() if isinstance(m, kind))
                   for kind in (nn.Conv2d, nn.BatchNorm2d, nn.Linear)}
        rows.append({"side": side, "mlp": _count(NotesMLP(side)), "cnn": _count(cnn),
                     "cnn convolutions": by_type[nn.Conv2d], "cnn batchnorm": by_type[nn.BatchNorm2d],
                     "cnn head": by_type[nn.Linear]})
    return pd.DataFrame(rows)
