"""The course notes' concepts and corrected views, each checked against an independent computation (hand
formulas, numpy, OpenCV, torch.nn.functional): issue 15."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


# --- 2. LeNet-5: 60,000 trainable parameters; S2/S4 connections ------------------------------------------
def test_lenet5_trainable_parameters_are_sixty_thousand():
    from explorer.models import build_model

    model = build_model("lenet5")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Hand count (LeCun et al. 1998): C1 6·(25+1), S2 2·6, C3 60·25+16, S4 2·16, C5 120·(400+1), F6 84·(120+1).
    assert trainable == 6 * 26 + 12 + 60 * 25 + 16 + 32 + 120 * 401 + 84 * 121 == 60_000
    assert sum(p.numel() for p in model.parameters()) == 60_000 + 84 * 10


def test_lenet5_table_counts_connections_like_the_paper():
    from explorer.analysis import layer_table, model_totals
    from explorer.history import lenet5_table
    from explorer.models import build_model

    table = lenet5_table().set_index("layer")
    assert table.loc["S2", "connections"] == 6 * 14 * 14 * (2 * 2 + 1) == 5_880
    assert table.loc["S4", "connections"] == 16 * 5 * 5 * (2 * 2 + 1) == 2_000
    assert table.loc["C3", "connections"] == (60 * 25 + 16) * 10 * 10
    assert table.loc["output", "trainable"] == 0 and table.loc["output", "fixed"] == 840
    model = build_model("lenet5")
    layers = layer_table(model, (1, 32, 32))
    assert int(layers.set_index("layer").loc["output", "trainable_params"]) == 0
    assert model_totals(model, layers).trainable_params == 60_000


def test_fine_tuning_keeps_the_prototypes_fixed():
    from explorer.models import build_model
    from explorer.training import apply_mode

    model = build_model("lenet5")
    apply_mode(model, "fine_tune")
    assert not model.output.prototypes.requires_grad and model.F6.weight.requires_grad


# --- 3. GoogLeNet: maxpool4 difference, receptive fields, Compare's size ------------------------------------
def test_googlenet_maxpool4_row_names_the_pool_difference():
    from explorer.history import googlenet_table

    table = googlenet_table()
    row = table[table["key"] == "maxpool4"].iloc[0]
    assert "pool_2x2" in row["torchvision differences"]
    assert table[table["key"] == "maxpool3"].iloc[0]["torchvision differences"] == ""


def test_googlenet_receptive_fields_715_and_379():
    from explorer.history import googlenet_receptive_fields

    fields = googlenet_receptive_fields()
    # Hand recursion r += (k − 1)·j along the deepest path is what explorer.receptive computes; the differences
    # follow from it: 3×3 instead of 5×5 loses 2·jump per block (3a,3b: 8; 4a–4e: 16; 5a,5b: 32).
    assert (fields["paper"], fields["torchvision"]) == (715, 379)
    assert fields["torchvision_pool3_conv5"] - fields["torchvision_pool3"] == 2 * (2 * 8 + 5 * 16 + 2 * 32)


def test_compare_counts_googlenet_paper_size_over_the_weights_it_runs():
    from explorer.history import compare_models

    row = compare_models(["googlenet_paper", "googlenet"], receptive=False).set_index("model").loc["googlenet_paper"]
    # No BatchNorm buffers in the paper model: size = 4 bytes per parameter that runs in eval.
    assert row["size_mb"] == pytest.approx(row["params_m"] * 1e6 * 4 / 2**20, rel=1e-9)


# --- 4. option-A residual networks --------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [18, 34])
def test_option_a_resnets_have_exactly_the_plain_parameters(depth):
    from explorer.models import build_model

    with torch.device("meta"):
        plain, residual, projection = (build_model(n) for n in (f"plain{depth}", f"resnet{depth}_a", f"resnet{depth}"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(plain) == count(residual)
    # torchvision's projection shortcuts: 1×1 conv + BN (2 params per channel) at the three stage changes.
    assert count(projection) - count(plain) == sum(cin * cout + 2 * cout for cin, cout in ((64, 128), (128, 256), (256, 512)))


def test_option_a_block_is_f_of_x_plus_zero_padded_subsampled_x():
    from explorer.models import build_model

    model = build_model("resnet18_a")
    block = model.layer2[0]
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        residual = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
        shortcut = torch.cat([x[:, :, ::2, ::2], torch.zeros(1, 64, 4, 4)], 1)
        torch.testing.assert_close(block(x), F.relu(residual + shortcut))


def test_paper_table2_numbers():
    from explorer.training import paper_table2

    table = paper_table2().set_index("layers")
    assert table.loc[18, "plain"] == 27.94 and table.loc[34, "plain"] == 28.54
    assert table.loc[18, "ResNet"] == 27.88 and table.loc[34, "ResNet"] == 25.03


def test_shipped_degradation_result_shows_the_degradation():
    from explorer.training import degradation_curves, degradation_result

    result = degradation_result()
    assert result is not None, "run python scripts/degradation.py"
    final = degradation_curves(result).groupby("model").last()
    assert set(final.index) == {"plain18", "plain34", "resnet18_a", "resnet34_a"}
    assert final.loc["plain34", "train_error"] > final.loc["plain18", "train_error"]  # the degradation itself


# --- 5. conv arithmetic with dilation -----------------------------------------------------------------------
def test_dilated_span_is_not_n_minus_f_plus_2p():
    from explorer.receptive import conv_arithmetic

    a = conv_arithmetic(8, 3, 0, 2, 2)
    assert a.effective_kernel == 2 * (3 - 1) + 1 == 5
    assert a.span == 8 + 0 - 2 * (3 - 1) - 1 == 3
    assert a.span_formula == "N + 2P − D(F − 1) − 1" and "N − F + 2P" not in a.span_formula
    out = F.conv2d(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3), stride=2, dilation=2).shape[-1]
    assert a.output == out == 2
    assert conv_arithmetic(8, 3, 0, 2, 1).span_formula == "N − F + 2P"


# --- 6. Sobel y: both conventions -----------------------------------------------------------------------------
def test_sobel_y_matches_cv2_and_the_notes_version_is_its_negative():
    import cv2

    from explorer.imaging import filters as FL

    rng = np.random.default_rng(0)
    gray = rng.random((12, 15))
    cv_y = cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3)
    np.testing.assert_allclose(FL.correlate(gray, FL.KERNELS["sobel_y"], "reflect"), cv_y, atol=1e-12)
    np.testing.assert_allclose(FL.correlate(gray, FL.KERNELS["sobel_y_notes"], "reflect"), -cv_y, atol=1e-12)
    # The notes' y read as true convolution is cv2's y; their x read the same way would flip sign.
    np.testing.assert_allclose(FL.convolve(gray, FL.KERNELS["sobel_y_notes"], "reflect"), cv_y, atol=1e-12)
    np.testing.assert_allclose(FL.convolve(gray, FL.KERNELS["sobel_x"], "reflect"),
                               -cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3), atol=1e-12)


# --- 7. AlexNet as in the paper -----------------------------------------------------------------------------------
def test_alexnet_paper_shapes_groups_and_parameters():
    from explorer.models import build_model, get_entry

    assert get_entry("alexnet_paper").input_shape == (3, 227, 227)
    model = build_model("alexnet_paper")
    with torch.no_grad():
        conv1 = model.features[0](torch.zeros(1, 3, 227, 227))
    assert tuple(conv1.shape[1:]) == (96, (227 - 11) // 4 + 1, 55)
    assert any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    assert [m.groups for m in model.modules() if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 2]
    hand = (96 * 3 * 11 * 11 + 96) + (256 * 48 * 25 + 256) + (384 * 256 * 9 + 384) + (384 * 192 * 9 + 384) \
        + (256 * 192 * 9 + 256) + (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert sum(p.numel() for p in model.parameters()) == hand == 60_965_224


# --- 8. the 7:2:1 split ---------------------------------------------------------------------------------------------
def test_homework_and_app_split_counts():
    from explorer.data import homework_split_counts, split_comparison, split_counts

    sizes = {"dolphin": 373, "shark": 488, "whale": 451}
    for n in sizes.values():  # the homework's code: int(len × 0.7), int(len × 0.2), int(len × 0.1)
        assert homework_split_counts(n) == (int(n * 0.7), int(n * 0.2), int(n * 0.1))
    assert homework_split_counts(488) == (341, 97, 48) and split_counts(488) == (342, 97, 49)
    assert homework_split_counts(451) == (315, 90, 45) and split_counts(451) == (316, 90, 45)
    rows = {r["class"]: r for r in split_comparison(sizes)}
    assert rows["shark"]["left_out"] == 2 and rows["whale"]["left_out"] == 1 and rows["dolphin"]["left_out"] == 1


# --- 9. weights and biases ------------------------------------------------------------------------------------------
def test_layer_table_splits_params_into_weights_and_biases():
    from explorer.analysis import layer_table

    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Conv2d(64, 8, 1, bias=False))
    table = layer_table(model, (3, 8, 8)).set_index("layer")
    assert (table.loc["0", "weights"], table.loc["0", "biases"]) == (64 * 3 * 3 * 3, 64)
    assert table.loc["0", "params"] == 1_792
    assert (table.loc["1", "weights"], table.loc["1", "biases"]) == (64, 64)  # γ and β
    assert (table.loc["2", "weights"], table.loc["2", "biases"]) == (512, 0)


def test_notes_81_percent_claim_vs_counted_45():
    from explorer.receptive import compare_stack

    cmp = compare_stack(1, 3, 3, 1)
    assert (cmp.stack_weights_per_c2, cmp.big_weights_per_c2) == (27, 49)
    assert round(100 * cmp.weight_saving) == round(100 * (1 - 27 / 49)) == 45
    assert round(100 * (cmp.big_over_stack - 1)) == 81


# --- 10. an architecture without an input token takes the input it is given -------------------------------------
def test_arch_without_input_takes_the_given_channels():
    from explorer.models import load_model

    loaded = load_model("arch:conv3-8 M FC-10", weights=None, device="cpu", input_shape=(1, 28, 28))
    assert loaded.model.conv1.in_channels == 1 and loaded.model.fc1.in_features == 8 * 14 * 14
    with torch.no_grad():
        assert loaded.model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    declared = load_model("arch:in-3x32x32 conv3-8 M FC-10", weights=None, device="cpu", input_shape=(3, 32, 32))
    assert declared.model.conv1.in_channels == 3


def test_cli_summary_with_arch_and_one_channel_input():
    out = subprocess.run([sys.executable, "-m", "explorer", "summary", "--arch", "conv3-8 M FC-10", "--input",
                          "1x28x28", "--csv"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line.split(",") for line in out.stdout.strip().splitlines()[1:]]
    assert rows[0][0] == "conv1" and int(rows[0][9]) == 8 * 1 * 9 + 8


# --- missing concepts -----------------------------------------------------------------------------------------------
def test_batchnorm_demo_matches_functional_batch_norm():
    from explorer.analysis import batchnorm_demo
    from explorer.core import hook_count

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    bn = model[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.3, 0.3)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    x = torch.randn(1, 3, 9, 9)
    demo = batchnorm_demo(model, x, "1", channel=2)
    with torch.no_grad():
        a = model[0](x)
    m = 7 * 7
    mean = a.numpy().mean(axis=(0, 2, 3))
    var = a.numpy().var(axis=(0, 2, 3))  # numpy: biased (divides by m)
    np.testing.assert_allclose(demo.batch_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(demo.batch_var, var, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(demo.unbiased_var, var * m / (m - 1), rtol=1e-4, atol=1e-6)
    mom = bn.momentum
    np.testing.assert_allclose(demo.running_var_after, (1 - mom) * before["running_var"].numpy() + mom * var * m / (m - 1),
                               rtol=1e-4, atol=1e-6)
    train = (a[0, 2].numpy() - mean[2]) / np.sqrt(var[2] + bn.eps) * bn.weight[2].item() + bn.bias[2].item()
    np.testing.assert_allclose(demo.train_map, train, rtol=1e-4, atol=1e-5)
    ev = (a[0, 2].numpy() - before["running_mean"][2].item()) / np.sqrt(before["running_var"][2].item() + bn.eps)
    np.testing.assert_allclose(demo.eval_map, ev * bn.weight[2].item() + bn.bias[2].item(), rtol=1e-4, atol=1e-5)
    # The shared model is untouched: same statistics, still in eval mode, no hooks left.
    assert all(torch.equal(v, bn.state_dict()[k]) for k, v in before.items())
    assert not model.training and not bn.training and hook_count(model) == 0
    fresh = nn.BatchNorm2d(4)
    assert torch.equal(fresh.weight, torch.ones(4)) and torch.equal(fresh.bias, torch.zeros(4))


def test_dropout_demo_keeps_and_scales():
    from explorer.analysis import dropout_demo

    x = np.random.default_rng(1).random((4, 20, 20)).astype(np.float32) + 0.5
    demo = dropout_demo(x, 0.25, seed=3)
    np.testing.assert_allclose(demo.train_output[demo.kept], x[demo.kept] / (1 - 0.25), rtol=1e-6)
    assert (demo.train_output[~demo.kept] == 0).all()
    assert abs(demo.kept_fraction - 0.75) < 0.05
    np.testing.assert_array_equal(demo.eval_output, nn.Dropout(0.25).eval()(torch.from_numpy(x)).numpy())


def test_pooling_against_numpy_windows():
    from explorer.analysis import gap_vs_flatten, pool_image

    img = np.random.default_rng(2).random((9, 9)).astype(np.float32)
    out = pool_image(img, "max_3x3")
    expected = np.array([[img[r:r + 3, c:c + 3].max() for c in range(0, 7, 2)] for r in range(0, 7, 2)])
    np.testing.assert_allclose(out, expected)
    avg = pool_image(img, "avg_2x2")
    np.testing.assert_allclose(avg, img[:8, :8].reshape(4, 2, 4, 2).mean(axis=(1, 3)), rtol=1e-6)
    heads = gap_vs_flatten(512, 7, 7, 1000)
    assert heads.flatten_params == 512 * 49 * 1000 + 1000 and heads.gap_params == 512 * 1000 + 1000


def test_inception_3a_reductions_weights_and_mult_adds():
    from explorer.history import inception_reduction_costs

    naive, reduced = inception_reduction_costs()
    c = 192
    assert naive.weights == c * 64 + c * 128 * 9 + c * 32 * 25 == 387_072
    assert reduced.weights == c * 64 + c * 96 + 96 * 128 * 9 + c * 16 + 16 * 32 * 25 + c * 32 == 163_328
    assert naive.mult_adds == 387_072 * 28 * 28 and round(naive.mult_adds / 1e6, 1) == 303.5
    assert reduced.mult_adds == 163_328 * 28 * 28 and round(reduced.mult_adds / 1e6, 1) == 128.0
    assert (naive.out_channels, reduced.out_channels) == (64 + 128 + 32 + 192, 256)


def test_layer_gradient_norms_match_autograd_by_hand():
    from explorer.training import layer_gradient_norms

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    x, y = torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 2, 3])
    table = layer_gradient_norms(model, x, y)
    assert list(table["layer"]) == ["0", "4"]
    reference = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5))
    reference.load_state_dict(model.state_dict())
    reference.train()
    F.cross_entropy(reference(x), y).backward()
    np.testing.assert_allclose(table["grad_norm"], [reference[0].weight.grad.norm().item(),
                                                    reference[4].weight.grad.norm().item()], rtol=1e-5)
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_cli_gradients_prints_one_row_per_layer():
    out = subprocess.run([sys.executable, "-m", "explorer", "gradients", "mnist_cnn", "--csv"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("layer,") and "grad_norm" in lines[0].split(",")
    assert [line.split(",")[0] for line in lines[1:]] == ["conv1", "conv2", "conv3", "fc"]


def test_batchnorm_layers_are_the_ones_the_demo_shows():
    """A BatchNorm1d after a fully connected layer sees one value per feature for one image (m = 1): the demo
    cannot show it, so it is not offered (it used to be, and failed)."""
    from explorer.analysis import batchnorm_demo, batchnorm_layers

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8),
                          nn.BatchNorm1d(8), nn.Linear(8, 2)).eval()
    assert batchnorm_layers(model) == ["1"]
    with pytest.raises(ValueError, match="not a BatchNorm2d"):
        batchnorm_demo(model, torch.randn(1, 3, 8, 8), "5")
