"""Receptive fields: the analytic table against independent measurements and known figures."""
from __future__ import annotations

import copy
import math
import threading

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock

from explorer.receptive import tracing as receptive  # every model_lock the package takes is looked up there
from explorer.receptive import (CSV_COLUMNS, architecture_table, effective_receptive_field, field_box,
                                receptive_field_table, summarize, table_to_csv)


# --- small networks ------------------------------------------------------------------------------------

def plain_stack() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(3, 3, 5), nn.ReLU(), nn.Conv2d(3, 2, (3, 5), padding=(0, 1)))


def dilated_stack() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=2, dilation=2),
                         nn.ReLU(), nn.Conv2d(3, 3, 3, padding=4, dilation=4), nn.ReLU(),
                         nn.Conv2d(3, 2, 3, dilation=(3, 2)))


def strided_pooled_stack() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 7, stride=2, padding=3), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
                         nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(3, 3, 3, stride=2),
                         nn.ReLU(), nn.MaxPool2d(2, stride=1, ceil_mode=True), nn.Conv2d(3, 3, (5, 3), stride=(1, 2)),
                         nn.Conv2d(3, 2, 1))


class Inception(nn.Module):
    def __init__(self, cin: int = 3) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(cin, 2, 1)
        self.b2 = nn.Sequential(nn.Conv2d(cin, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(cin, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(cin, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class InceptionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 3, 3, stride=2)
        self.relu = nn.ReLU()
        self.block = Inception(3)
        self.head = nn.Conv2d(8, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.relu(self.stem(x))))


class ResidualNet(nn.Module):
    """torchvision's BasicBlock: one ReLU module called twice, ``out += identity``, a strided projection."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.layer1 = BasicBlock(4, 4)
        self.layer2 = BasicBlock(4, 6, stride=2, downsample=nn.Sequential(nn.Conv2d(4, 6, 1, stride=2),
                                                                         nn.BatchNorm2d(6)))
        self.head = nn.Conv2d(6, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer2(self.layer1(self.stem(x))))


NETWORKS = {"plain": (plain_stack, 40), "dilated": (dilated_stack, 48), "strided_pooled": (strided_pooled_stack, 128),
            "inception": (InceptionNet, 40), "residual": (ResidualNet, 48)}


def _build(factory) -> nn.Module:
    torch.manual_seed(0)
    return factory().eval()


# --- the independent measurement ---------------------------------------------------------------------------

def _linear_positive_copy(model: nn.Module) -> nn.Module:
    """A copy with positive weights, max pooling → average pooling of the same geometry, activations and
    BatchNorm → identity: every input pixel in the field then has a non-zero gradient, none outside."""
    twin = copy.deepcopy(model).double()
    for name, module in list(twin.named_modules()):
        replacement = None
        if isinstance(module, nn.MaxPool2d):
            assert module.dilation in (1, (1, 1))
            replacement = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode)
        elif isinstance(module, (nn.ReLU, nn.BatchNorm2d)):
            replacement = nn.Identity()
        elif isinstance(module, nn.Conv2d):
            with torch.no_grad():
                module.weight.copy_(module.weight.abs() + 0.1)
                module.bias.zero_() if module.bias is not None else None
        if replacement is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(twin.get_submodule(parent_name) if parent_name else twin, child, replacement)
    return twin


class _Captured(Exception):
    pass


def _measured_box(twin: nn.Module, layer: str, size: int) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Bounding box (top, left, bottom, right) of the input pixels the centre unit of ``layer`` depends on."""
    x = torch.ones(1, 2, size, size, dtype=torch.float64, requires_grad=True)
    store = {}

    def hook(_m, _i, out):  # stop at once: later in-place ops (out += identity) would change the tensor
        store["out"] = out
        raise _Captured

    handle = twin.get_submodule(layer).register_forward_hook(hook)
    try:
        twin(x)
    except _Captured:
        pass
    finally:
        handle.remove()
    out = store["out"]
    centre = (out.shape[2] // 2, out.shape[3] // 2)
    (grad,) = torch.autograd.grad(out[0, :, centre[0], centre[1]].sum(), x)
    rows, cols = np.nonzero(grad.abs().sum(1)[0].numpy() > 0)
    return (rows.min(), cols.min(), rows.max(), cols.max()), centre


@pytest.mark.parametrize("name", list(NETWORKS))
def test_analytic_field_equals_measured_gradient_box(name: str) -> None:
    factory, size = NETWORKS[name]
    model = _build(factory)
    table = receptive_field_table(model, (2, size, size))
    twin = _linear_positive_copy(model)
    convs = table[(table["kind"] == "conv") & (table["source"] == "module")]
    assert len(convs) >= 4
    for layer in convs["layer"]:
        measured, centre = _measured_box(twin, layer, size)
        box = field_box(table, layer, centre)
        analytic = (box.top, box.left, box.bottom, box.right)
        assert not box.is_clipped, f"{name}/{layer}: input too small for the test"
        assert analytic == tuple(float(v) for v in measured), f"{name}/{layer}: {analytic} vs measured {measured}"


def test_branch_and_merge_rows_are_reported() -> None:
    table = receptive_field_table(_build(InceptionNet), (2, 40, 40))
    cat = table[table["layer"] == "block.cat"].iloc[0]
    assert cat["merge_inputs"] == 4 and "union of 4 inputs" in cat["note"]
    branch_fields = table[table["layer"].isin(["block.b1", "block.b2.2", "block.b3.2", "block.b4.1"])]["rf_h"]
    assert cat["rf_h"] == branch_fields.max()  # the union is the widest branch here (all centred)
    res = receptive_field_table(_build(ResidualNet), (2, 48, 48))
    names = list(res["layer"])
    # The shared ReLU is one module called twice per block: two rows, in forward order.
    assert names.index("layer1.relu") < names.index("layer1.add") < names.index("layer1.relu#2")
    add = res[res["layer"] == "layer2.add"].iloc[0]
    assert add["merge_inputs"] == 2


def test_layer_names_are_named_modules_in_forward_order() -> None:
    model = _build(ResidualNet)
    table = receptive_field_table(model, (2, 32, 32))
    modules = dict(model.named_modules())
    for layer, source in zip(table["layer"], table["source"]):
        base = layer.split("#")[0]
        if source == "module":
            assert base in modules
        else:
            assert base.rpartition(".")[0] in modules
    order = list(table["layer"])
    assert order.index("stem") < order.index("layer1.conv1") < order.index("layer2.downsample.0") < order.index("head")


@pytest.mark.parametrize("layers,kernel", [(1, 3), (2, 3), (3, 3), (5, 3), (3, 5), (4, 7), (6, 2)])
def test_stacked_convolutions_see_one_plus_l_times_k_minus_one(layers: int, kernel: int) -> None:
    model = nn.Sequential(*[nn.Conv2d(1, 1, kernel, padding=kernel // 2) for _ in range(layers)]).eval()
    table = receptive_field_table(model, (1, 64, 64))
    assert list(table["rf_h"]) == [1 + n * (kernel - 1) for n in range(1, layers + 1)]
    assert list(table["jump_w"]) == [1] * layers


@pytest.mark.parametrize("name,last_conv,rf,jump", [
    ("vgg16", "features.28", 196, 16),  # conv5_3: 196 px, pool5: 212 px (Simonyan & Zisserman's VGG-16)
    ("resnet18", "layer4.1.conv2", 435, 32),
    ("resnet50", "layer4.2.conv3", 427, 32),
    ("alexnet", "features.10", 163, 16),
])
def test_known_fields_of_torchvision_models(name: str, last_conv: str, rf: int, jump: int) -> None:
    table = architecture_table(name, (3, 224, 224))
    row = table[table["layer"] == last_conv].iloc[0]
    assert (row["rf_h"], row["rf_w"], row["jump_h"]) == (rf, rf, jump)
    assert summarize(table).last_conv == last_conv
    assert table["unknown"].sum() == 0


def test_vgg16_pool5_and_global_layers() -> None:
    table = architecture_table("vgg16", (3, 224, 224))
    assert table[table["layer"] == "features.30"].iloc[0]["rf_h"] == 212
    after = table.iloc[list(table["layer"]).index("flatten"):]
    assert after["sees_whole_image"].all()
    assert (after["rf_h"] == 224).all()


def test_global_pooling_marks_whole_image_and_functional_ops() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            y = F.relu(self.conv(x))
            b, c, h, w = y.shape
            y = y.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)  # channel shuffle
            a, z = y.chunk(2, dim=1)
            y = torch.cat((a, z * 2), dim=1)
            y = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
            return self.fc(y[:, :4])

    table = receptive_field_table(Net().eval(), (3, 20, 20))
    assert not table["unknown"].any()
    rows = dict(zip(table["layer"], table.index))
    assert table.loc[rows["cat"], "rf_h"] == 3
    pooled = table.loc[rows["adaptive_avg_pool2d"]]
    assert pooled["sees_whole_image"] and pooled["rf_h"] == 20 and pooled["kind"] == "global_pool"
    assert table.loc[rows["fc"], "sees_whole_image"]
    assert not table.loc[rows["conv"], "sees_whole_image"]


def test_squeeze_excitation_gate_is_global_context() -> None:
    class SE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            return y * torch.sigmoid(self.fc(self.pool(y)))

    table = receptive_field_table(SE().eval(), (3, 16, 16))
    mul = table[table["layer"] == "mul"].iloc[0]
    assert mul["rf_h"] == 3 and mul["global_context"] and mul["sees_whole_image"]


def test_unknown_operations_are_reported_not_guessed() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)
            self.after = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.after(torch.roll(self.conv(x), shifts=2, dims=3))

    table = receptive_field_table(Odd().eval(), (1, 12, 12))
    roll = table[table["layer"] == "roll"].iloc[0]
    assert roll["unknown"] and pd.isna(roll["rf_h"]) and "roll" in roll["note"]
    after = table[table["layer"] == "after"].iloc[0]
    assert after["unknown"] and pd.isna(after["rf_h"])
    assert table[table["layer"] == "conv"].iloc[0]["rf_h"] == 3


def test_csv_has_exactly_the_nine_columns() -> None:
    table = receptive_field_table(_build(plain_stack), (2, 16, 16))
    header, first = table_to_csv(table).splitlines()[:2]
    assert header.split(",") == CSV_COLUMNS
    assert first.split(",")[3:5] == ["3", "3"]  # whole numbers without ".0"


def test_field_box_is_clipped_at_the_border() -> None:
    table = receptive_field_table(nn.Sequential(nn.Conv2d(1, 1, 5, padding=2)).eval(), (1, 10, 10))
    box = field_box(table, "0", (0, 9))
    assert (box.top, box.left, box.bottom, box.right) == (-2, 7, 2, 11)
    assert box.clipped == (0, 7, 2, 9) and box.is_clipped
    with pytest.raises(ValueError, match="outside"):
        field_box(table, "0", (10, 0))


# --- effective receptive field ------------------------------------------------------------------------------

def test_effective_field_is_non_negative_and_inside_the_theoretical_box() -> None:
    model = _build(strided_pooled_stack)
    twin = _linear_positive_copy(model).float()
    x = torch.rand(1, 2, 128, 128)
    table = receptive_field_table(twin, (2, 128, 128))
    erf = effective_receptive_field(twin, x, "6", (3, 2))
    assert erf.shape == (128, 128) and (erf >= 0).all()
    box = field_box(table, "6", (3, 2))
    rows, cols = np.nonzero(erf > 0)
    top, left, bottom, right = box.clipped
    assert (rows.min(), cols.min(), rows.max(), cols.max()) == (top, left, bottom, right)


def test_effective_field_of_repeated_call_and_merge_rows() -> None:
    model = _build(ResidualNet)
    x = torch.rand(2, 24, 24)
    for layer in ("layer1.relu#2", "layer2.add", "head"):
        erf = effective_receptive_field(model, x, layer, (1, 1))
        assert erf.shape == (24, 24) and (erf >= 0).all() and erf.sum() > 0
    with pytest.raises(ValueError, match="no layer named"):
        effective_receptive_field(model, x, "nope", (0, 0))
    with pytest.raises(ValueError, match="outside"):
        effective_receptive_field(model, x, "head", (50, 0))


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_no_hooks_left_modes_kept_and_lock_taken(monkeypatch) -> None:
    model = _build(ResidualNet)
    model.train()
    model.layer1.bn1.eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    stats = model.layer1.bn1.running_mean.clone(), model.stem.weight.clone()
    entered = []
    import explorer.core.hooks as core_hooks
    import explorer.receptive.erf as erf_module

    real_lock = core_hooks.model_lock

    def recording_lock(m):
        entered.append(m)
        return real_lock(m)

    for module in (core_hooks, erf_module):  # hooks go through core.hooked; the ERF's gradient pass locks itself
        monkeypatch.setattr(module, "model_lock", recording_lock)
    receptive_field_table(model, (2, 16, 16))
    effective_receptive_field(model, torch.rand(2, 16, 16), "layer2.conv1", (2, 2))
    with pytest.raises(ValueError):
        effective_receptive_field(model, torch.rand(2, 16, 16), "missing", (0, 0))
    assert entered and all(m is model for m in entered) and len(entered) >= 3
    assert _hook_count(model) == 0
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(model.layer1.bn1.running_mean, stats[0]) and torch.equal(model.stem.weight, stats[1])
    assert all(p.grad is None for p in model.parameters())


def test_too_small_input_is_a_clear_error() -> None:
    from explorer.analysis import InputTooSmallError

    model = _build(strided_pooled_stack)
    with pytest.raises(InputTooSmallError, match="too small|does not fit"):
        receptive_field_table(model, (2, 20, 20))
    assert _hook_count(model) == 0


def test_partial_table_when_the_classifier_rejects_the_size() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 13 * 13, 3)).eval()
    with pytest.raises(RuntimeError):
        receptive_field_table(model, (1, 40, 40))
    table = receptive_field_table(model, (1, 40, 40), partial=True)
    assert list(table["layer"]) == ["0", "1", "2", "3"] and table.iloc[2]["rf_h"] == 4
    assert table.attrs["failed_layer"] == "4" and "does not fit" in table.attrs["error"]
    assert _hook_count(model) == 0
    assert receptive_field_table(model, (1, 28, 28), partial=True).attrs["error"] is None


def test_failing_forward_leaves_no_hooks() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        receptive_field_table(model, (1, 8, 8))
    assert _hook_count(model) == 0


def test_other_threads_forward_passes_are_not_traced() -> None:
    """Hooks only record the calling thread: a forward pass elsewhere meanwhile adds no rows."""
    model = _build(plain_stack)
    started, release = threading.Event(), threading.Event()

    class Slow(nn.Module):
        def forward(self, x):
            started.set()
            release.wait(5)
            return x

    wrapped = nn.Sequential(Slow(), model)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("t", receptive_field_table(wrapped, (2, 16, 16))))
    worker.start()
    started.wait(5)
    with torch.no_grad():
        model(torch.zeros(1, 2, 16, 16))  # another "user" on the shared inner model, no lock
    release.set()
    worker.join(10)
    table = result["t"]
    assert list(table["layer"]) == ["0"] + [f"1.{i}" for i in range(7)]


@pytest.mark.slow
def test_every_registered_model_has_a_known_field_everywhere() -> None:
    from explorer.models import get_entry, list_models

    for name in list_models():
        shape = get_entry(name).input_shape
        if shape[1] > 227:  # same graph, less work for the big ones; AlexNet's 227 is what makes its strides fit
            shape = (shape[0], 224, 224)
        table = architecture_table(name, shape)
        assert len(table) > 3, name
        assert not table["unknown"].any(), (name, table[table["unknown"]]["note"].tolist()[:3])
        assert table["exact"].all(), name
        convs = table[table["kind"] == "conv"]
        assert len(convs) and (convs["rf_h"] >= 1).all(), name
        last = table.iloc[-1]  # the classifier: a field clipped to the image (MNIST's CNN never sees 3 columns)
        assert 0.8 * shape[1] <= last["rf_h"] <= shape[1] and 0.8 * shape[2] <= last["rf_w"] <= shape[2], name
        summary = summarize(table)
        assert summary.last_conv is not None and summary.last_conv_rf[0] >= 3, name
        assert math.isfinite(float(table["jump_h"].astype(float).max())), name


def test_cli_csv_and_pretty_table(capsys) -> None:
    from explorer.cli import main

    assert main(["rf", "lenet5", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert lines[1] == "C1,Conv2d,6x28x28,5,5,1,1,2,2"
    assert main(["rf", "mnist_cnn", "--input", "1x28x28"]) == 0
    out = capsys.readouterr().out
    assert "last convolution conv3: field 21x21" in out and "input 1x28x28" in out


class _OnlyFunctional(nn.Module):
    """No submodules at all: every layer is an F.* call on parameters of the model itself."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.w2 = nn.Parameter(torch.randn(4, 4, 3, 3))

    def forward(self, x):
        return F.conv2d(F.max_pool2d(F.relu(F.conv2d(x, self.w1)), 2), self.w2)


def test_a_model_without_submodules_gets_one_row_per_op():
    """It used to be one row named after the class (the root was taken for a leaf). Fields by the hand rule
    r ← r + (k − 1)·j, j ← j·s: conv3 3, pool2/2 4, conv3 4 + 2·2 = 8."""
    table = receptive_field_table(_OnlyFunctional().eval(), (3, 32, 32)).set_index("layer")
    assert table.loc["conv2d", "rf_h"] == 3 and table.loc["max_pool2d", "rf_h"] == 4
    assert table.loc["conv2d#2", "rf_h"] == 8 and table.loc["conv2d#2", "jump_h"] == 2
