"""The layer table against torchinfo and against the output-size formula computed independently."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchinfo

from explorer import models
from explorer.analysis import CSV_COLUMNS, InputTooSmallError, layer_table, model_totals


def _formula(n: int, f: int, p: int, s: int, d: int = 1, ceil: bool = False) -> int:
    value = (n + 2 * p - d * (f - 1) - 1) / s + 1
    return math.ceil(value) if ceil else math.floor(value)


def test_columns_are_the_contract():
    table = layer_table(models.build_model("mnist_cnn"), (1, 28, 28))
    assert list(table.columns[: len(CSV_COLUMNS)]) == CSV_COLUMNS


def test_mnist_cnn_matches_the_seed_notes():
    table = layer_table(models.build_model("mnist_cnn"), (1, 28, 28)).set_index("layer")
    assert table.loc["conv1", "output_shape"] == "8x12x12"
    assert table.loc["conv2", "output_shape"] == "8x4x4"
    assert table.loc["conv3", "output_shape"] == "8x2x2"
    assert table.loc["flatten", "output_shape"] == "32"
    assert table["trainable_params"].sum() == 2762
    assert table.loc["conv1", "formula"].endswith("= 12") and "⌊" in table.loc["conv1", "formula"]


@pytest.mark.parametrize("name", ["mnist_cnn", "tiny_vgg", "alexnet", "resnet18", "googlenet", "vgg16", "densenet121"])
def test_against_torchinfo(name):
    model = models.build_model(name)
    shape = models.get_entry(name).input_shape
    table = layer_table(model, shape)
    totals = model_totals(model, table)
    info = torchinfo.summary(model, input_size=(1, *shape), verbose=0, depth=20)
    assert totals.params == info.total_params
    assert totals.trainable_params == info.trainable_params
    # Per-conv mult-adds and output shapes, matched by module identity.
    ours = table.set_index("layer")
    names = {id(m): n for n, m in model.named_modules()}
    checked = 0
    for layer in info.summary_list:
        if isinstance(layer.module, nn.Conv2d) and id(layer.module) in names:
            row = ours.loc[names[id(layer.module)]]
            assert row["mult_adds"] == layer.macs, names[id(layer.module)]
            assert row["output_shape"] == "x".join(map(str, layer.output_size[1:]))
            checked += 1
    assert checked > 0


def test_vgg16_totals():
    model = models.build_model("vgg16")
    totals = model_totals(model, layer_table(model, (3, 224, 224)))
    assert totals.params == 138_357_544


def test_every_conv_and_pool_follows_the_formula():
    model = models.build_model("alexnet")
    table = layer_table(model, (3, 224, 224)).set_index("layer")
    modules = dict(model.named_modules())
    for name, row in table.iterrows():
        module = modules.get(name)
        if not isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            continue
        pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
        (k, _), (s, _), (p, _), (d, _) = (pair(module.kernel_size), pair(module.stride), pair(module.padding),
                                          pair(module.dilation))
        n = int(row["input_shape"].split("x")[1])
        expected = _formula(n, k, p, s, d, getattr(module, "ceil_mode", False))
        assert int(row["output_shape"].split("x")[1]) == expected
        assert row["formula"].endswith(f"= {expected}")


def test_container_rows_sum_their_leaves():
    model = models.build_model("resnet18")
    table = layer_table(model, (3, 64, 64)).set_index("layer")
    leaves = table[table["is_leaf"]]
    for container in ("layer1", "layer2.0", "layer4"):
        inside = leaves[[n.split("#")[0] == container or n.startswith(container + ".") for n in leaves.index]]
        assert table.loc[container, "mult_adds"] == inside["mult_adds"].sum()
        assert table.loc[container, "params"] == sum(p.numel() for p in dict(model.named_modules())[container].parameters())


def test_shared_module_gets_one_row_per_call():
    table = layer_table(models.build_model("resnet18"), (3, 64, 64))
    relu_rows = [n for n in table["layer"] if n.startswith("layer1.0.relu")]
    assert relu_rows == ["layer1.0.relu", "layer1.0.relu#2"]


def test_too_small_input_names_the_first_empty_layer():
    with pytest.raises(InputTooSmallError) as info:
        layer_table(models.build_model("alexnet"), (3, 40, 40))
    assert info.value.layer is not None and info.value.layer.startswith("features.")
    assert "features" in str(info.value)


def test_hooks_are_removed_even_after_failure():
    model = models.build_model("alexnet")
    with pytest.raises(InputTooSmallError):
        layer_table(model, (3, 30, 30))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    layer_table(model, (3, 224, 224))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _evaluate(expression: str) -> int:
    """The number a formula cell's left-hand side evaluates to, read as plain arithmetic (⌊x⌋, ⌈x⌉, ·, −)."""
    text = (expression.replace("·", "*").replace("−", "-").replace("⌊", "math.floor(").replace("⌋", ")")
            .replace("⌈", "math.ceil(").replace("⌉", ")"))
    return int(eval(text, {"math": math}))  # noqa: S307 - our own table's arithmetic


@pytest.mark.parametrize("layer, side", [
    (nn.Conv2d(3, 4, 3, dilation=(1, 2)), 20),  # dilation differs per axis
    (nn.Conv2d(3, 4, 3, dilation=3, padding=2), 21),
    (nn.MaxPool2d(2, 2, padding=1, ceil_mode=True), 5),  # the last window would start in the padding
    (nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), 8),
    (nn.AvgPool2d(3, 2, ceil_mode=True), 10),
    (nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1), 19),
    (nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, dilation=2), 9),
])
def test_every_formula_cell_evaluates_to_the_real_output(layer, side):
    """Each axis's formula, read as arithmetic, gives the size torch produces (independent of the table)."""
    model = nn.Sequential(layer).eval()
    out = model(torch.zeros(1, 3, side, side)).shape[2:]
    formula = layer_table(model, (3, side, side)).iloc[0]["formula"]
    parts = formula.split(" ; ")
    for axis, size in enumerate(out):
        lhs, rhs = parts[min(axis, len(parts) - 1)].rsplit(" = ", 1)
        assert int(rhs) == size and _evaluate(lhs) == size, (formula, tuple(out))


class _FunctionalPools(nn.Module):
    def forward(self, x):
        x = F.avg_pool2d(x, 2, 2, 0, True)  # ceil_mode by position
        x = F.lp_pool2d(x, 2, 3, 3)  # norm_type 2, kernel 3, stride 3
        return F.conv2d(x, torch.ones(2, 3, 3, 3), padding="same")


def test_functional_pools_and_string_padding_read_their_own_arguments():
    model = _FunctionalPools().eval()
    table = layer_table(model, (3, 11, 11)).set_index("layer")
    assert table.loc["avg_pool2d", "output_shape"] == "3x6x6" and "⌈" in table.loc["avg_pool2d", "formula"]
    assert table.loc["lp_pool2d", ["kernel", "stride"]].tolist() == ["3x3", "3x3"]
    assert table.loc["lp_pool2d", "output_shape"] == "3x2x2"  # ⌊(6 − 3)/3⌋ + 1
    for layer in ("avg_pool2d", "lp_pool2d"):
        lhs, rhs = table.loc[layer, "formula"].rsplit(" = ", 1)
        assert _evaluate(lhs) == int(rhs)
    # padding="same": PyTorch pads D·(F − 1) = 2 in all, one on each side; the formula says so and evaluates
    assert table.loc["conv2d", "padding"] == "same"
    assert table.loc["conv2d", "formula"] == "(2 − 3 + 2·1)/1 + 1 = 2"


def test_a_float64_network_gets_a_float64_input():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).double().eval()
    table = layer_table(model, (3, 8, 8))
    assert table["output_shape"].tolist() == ["4x6x6", "4x6x6"]


def test_a_model_that_does_not_fit_for_another_reason_is_not_called_too_small():
    """A classifier sized for another input, or the wrong channel count: no advice to try a larger input."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()
    with pytest.raises(InputTooSmallError) as error:
        layer_table(net, (1, 16, 16))
    assert "larger input" not in str(error.value) and "mat1 and mat2" in str(error.value)
    with pytest.raises(InputTooSmallError, match="larger input"):
        layer_table(nn.Sequential(nn.Conv2d(1, 2, 5)).eval(), (1, 3, 3))


def test_shape_passes_leave_a_training_models_statistics_alone():
    """The table and the default Grad-CAM layer run zeros through the network: in training mode those zeros went
    into every BatchNorm's running statistics. The mode itself is restored too."""
    from explorer.analysis import default_cam_layer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2)).train()
    model[1].running_mean.uniform_(1, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_table(model, (3, 16, 16))
    default_cam_layer(model, (3, 16, 16))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and all(m.training for m in model.modules())


class _UpsampleTo(nn.Module):
    """A transposed convolution asked for its output size in the forward (``output_size=``)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):
        return self.up(x, output_size=(18, 18))


def test_a_transposed_convolution_given_its_output_size_reads_true():
    table = layer_table(_UpsampleTo().eval(), (3, 9, 9)).set_index("layer")
    lhs, rhs = table.loc["up", "formula"].rsplit(" = ", 1)
    assert int(rhs) == 18 and _evaluate(lhs) == 18, table.loc["up", "formula"]
