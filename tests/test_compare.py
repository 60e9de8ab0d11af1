"""Model comparison: counts against torchvision's metadata and hand-computed tiny networks."""
from __future__ import annotations

import io

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torchvision

from explorer.history import COLUMNS, bubble_chart, compare_models, count_mult_adds, model_stats, profile, weight_layer_depth


class TwoPaths(nn.Module):
    """x → conv a (3×3) → conv b (3×3) ─┐
       x → conv c (1×1) ───────────────┴ add → GAP → fc: longest weight path = a, b, fc = 3."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.b(self.a(x)) + self.c(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def test_mult_adds_and_depth_of_a_hand_built_network():
    model = TwoPaths().eval()
    assert count_mult_adds(model, (3, 8, 8)) == (3 * 9 * 4 + 4 * 9 * 4 + 3 * 4) * 8 * 8 + 4 * 2
    assert weight_layer_depth(model) == 3
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_profile_counts_only_modules_that_ran():
    class WithUnused(TwoPaths):
        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(100, 100)

    counts, used = profile(WithUnused().eval(), (3, 8, 8))
    assert used == sum(p.numel() for p in TwoPaths().parameters())
    assert counts["fc"] == 8


@pytest.mark.parametrize("name, depth", [("vgg16", 16), ("resnet18", 18), ("resnet50", 50), ("googlenet", 22),
                                         ("alexnet", 8), ("googlenet_paper", 22), ("vgg_c", 16)])
def test_depth_counts_weight_layers_on_the_longest_path(name, depth):
    with torch.device("meta"):
        from explorer.models import build_model

        model = build_model(name)
    assert weight_layer_depth(model) == depth


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "googlenet", "mobilenet_v2", "densenet121"])
def test_stats_agree_with_torchvision_metadata(name):
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    stats = model_stats(name, receptive=False)
    assert stats.gflops == pytest.approx(meta["_ops"], abs=0.0015)
    assert stats.top1 == meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert stats.top5 == meta["_metrics"]["ImageNet-1K"]["acc@5"]
    if name != "googlenet":  # torchvision's file keeps the auxiliary heads the registry leaves out
        assert stats.params_m * 1e6 == meta["num_params"]
        assert stats.size_mb == pytest.approx(meta["_file_size"], rel=0.01)


def test_googlenet_paper_counts_inference_parameters():
    stats = model_stats("googlenet_paper", receptive=False)
    assert stats.top1 is None and stats.weight_layers == 22
    # Without the two auxiliary heads (training only): ~7.0 M, the paper's "12× fewer than AlexNet".
    assert 6.9 < stats.params_m < 7.1


def test_receptive_field_column():
    pytest.importorskip("explorer.receptive")
    table = compare_models(["vgg16", "arch:in-3x32x32 conv3-8 conv3-8 M conv3-8 FC-2"]).set_index("model")
    # VGG-16's pool5: the classic 212 px; two 3×3, a 2×2/2 pool, a 3×3: 1 + 2 + 2 + 1 + 2·2 = 10 px.
    assert table.loc["vgg16", "receptive_field"] == 212
    assert table.loc["arch:in-3x32x32 conv3-8 conv3-8 M conv3-8 FC-2", "receptive_field"] == 10


def test_compare_models_table_and_limits():
    table = compare_models(["resnet18", "arch:conv3-8 M FC-10", "resnet18"], receptive=False)
    assert list(table.columns) == COLUMNS and len(table) == 2
    custom = table.set_index("model").loc["arch:conv3-8 M FC-10"]
    assert custom["family"] == "custom" and custom["input"] == "3×32×32"
    assert custom["params_m"] * 1e6 == pytest.approx(3 * 9 * 8 + 8 + 8 * 16 * 16 * 10 + 10)
    assert pd.isna(custom["top1"])
    with pytest.raises(ValueError, match="2 to 8"):
        compare_models(["resnet18"], receptive=False)
    with pytest.raises(ValueError, match="2 to 8"):
        compare_models([f"arch:conv3-{i} GAP" for i in range(1, 10)], receptive=False)
    with pytest.raises(ValueError, match="token 1 'conv3'"):
        compare_models(["resnet18", "arch:conv3 FC-2"], receptive=False)
    with pytest.raises(KeyError):
        compare_models(["resnet18", "no_such_model"], receptive=False)


def test_bubble_chart_leaves_out_models_without_accuracy():
    table = pd.DataFrame({"model": ["a", "b", "c"], "gflops": [1.0, 2.0, 3.0], "top1": [70.0, None, 75.0],
                          "params_m": [10.0, 20.0, 40.0]})
    figure = bubble_chart(table)
    trace = figure.data[0]
    assert list(trace.x) == [1.0, 3.0] and list(trace.y) == [70.0, 75.0] and list(trace.text) == ["a", "c"]
    assert list(trace.marker.size) == [10.0, 40.0] and trace.marker.sizemode == "area"
    depth = bubble_chart(table.assign(weight_layers=[8, 16, 22]), y="weight_layers")
    assert list(depth.data[0].y) == [8, 16, 22]


def test_cli_compare_and_paper(capsys):
    from explorer.cli import main

    assert main(["compare", "resnet18", "--arch", "conv3-8 M FC-10", "--csv", "--no-rf"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert frame["model"].tolist() == ["resnet18", "arch:conv3-8 M FC-10"]
    assert frame.loc[0, "weight_layers"] == 18
    assert main(["compare", "resnet18"]) == 2
    assert "2 to 8" in capsys.readouterr().err
    assert main(["paper", "vgg", "--csv"]) == 0
    first_block = capsys.readouterr().out.split("\n\n")[0]
    assert pd.read_csv(io.StringIO(first_block)).columns.tolist() == ["row", "A", "A-LRN", "B", "C", "D", "E"]
    assert main(["paper", "googlenet"]) == 0
    out = capsys.readouterr().out
    assert "inception (5b)" in out and "BatchNorm" in out and "2.7K" in out


def test_bubble_chart_names_do_not_overlap():
    """Crowded small models (the ones whose names piled up): every name is drawn whole, none overlaps another
    name, checked on the annotation boxes in pixels at the narrowest plot width the layout assumes."""
    from explorer.history.compare import MIN_PLOT_WIDTH_PX, label_box

    table = pd.DataFrame({
        "model": ["mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "shufflenet_v2_x1_0", "squeezenet1_1",
                  "resnet18"],
        "gflops": [0.30, 0.22, 0.39, 0.15, 0.35, 1.81], "top1": [72.0, 75.3, 77.7, 69.4, 58.2, 69.8],
        "params_m": [3.5, 5.5, 5.3, 2.3, 1.2, 11.7]})
    figure = bubble_chart(table)
    notes = figure.layout.annotations
    assert [a.text for a in notes] == table["model"].tolist()  # every name, in full
    x0, x1 = figure.layout.xaxis.range
    y0, y1 = figure.layout.yaxis.range
    height = 480 - 110
    boxes = [label_box((a.x - x0) / (x1 - x0) * MIN_PLOT_WIDTH_PX + a.ax, (1 - (a.y - y0) / (y1 - y0)) * height + a.ay,
                       a.text) for a in notes]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (a, b)
    assert figure.data[0].cliponaxis is False
