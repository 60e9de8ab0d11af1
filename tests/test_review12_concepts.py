"""Course concepts and training results (twelfth-session review), each against an independent computation: the
model's own state before and after, PyTorch's documented cumulative average, numpy pooling, the network's real
layer4 shape, exact fractions, the confusion matrix, a strict JSON parser."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from explorer.analysis import batchnorm_demo, batchnorm_layers, last_spatial_map, layer_table, pool_image
from explorer.core import hook_count
from explorer.models import build_model
from explorer.receptive import conv_arithmetic


def _bn_net(**bn) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 5, 3), nn.BatchNorm2d(5, **bn), nn.ReLU(), nn.Dropout(0.5),
                         nn.Conv2d(5, 4, 3), nn.BatchNorm2d(4, **bn))


def test_batchnorm_demo_leaves_a_model_in_training_mode_unchanged():
    model = _bn_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    demo = batchnorm_demo(model, torch.randn(1, 1, 9, 13), "5", channel=2)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats, counters: untouched
    assert [m.training for m in model.modules()] == flags and hook_count(model) == 0
    assert demo.input_map.shape == (5, 9)


def test_batchnorm_demo_input_is_the_evaluation_mode_activation():
    model = _bn_net().train()
    x = torch.randn(1, 1, 9, 13)
    demo = batchnorm_demo(model, x, "5", channel=1)
    reference = _bn_net().eval()  # same seed, same weights
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = reference[:5](x)[0, 1].numpy()
    np.testing.assert_allclose(demo.input_map, expected, rtol=1e-5, atol=1e-6)


def test_a_batchnorm_without_running_statistics_is_not_offered_and_is_refused_clearly():
    model = _bn_net(track_running_stats=False).eval()
    assert batchnorm_layers(model) == []
    with pytest.raises(ValueError, match="no running statistics"):
        batchnorm_demo(model, torch.randn(1, 1, 9, 13), "1")


def test_momentum_none_is_the_cumulative_average():
    model = _bn_net(momentum=None).eval()
    model[1].num_batches_tracked.fill_(3)
    demo = batchnorm_demo(model, torch.randn(1, 1, 9, 13), "1", channel=0)
    factor = 1 / (3 + 1)  # PyTorch's documented cumulative moving average for momentum=None
    assert demo.update_factor == pytest.approx(factor)
    np.testing.assert_allclose(demo.running_mean_after, (1 - factor) * demo.running_mean + factor * demo.batch_mean,
                               rtol=1e-5, atol=1e-6)


def test_pool_image_keeps_a_single_channel_axis():
    picture = np.random.default_rng(0).random((10, 6, 1)).astype(np.float32)
    out = pool_image(picture, "max_2x2")
    assert out.shape == (5, 3, 1)
    np.testing.assert_array_equal(out[..., 0], picture[..., 0].reshape(5, 2, 3, 2).max(axis=(1, 3)))


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_the_gap_comparison_reads_the_map_before_pooling(name):
    model = build_model(name)
    found = last_spatial_map(layer_table(model, (3, 64, 64)))
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():  # what the head would read without global pooling: ResNet's layer4 (512×2×2, not the
        # pooled 512×1×1); VGG's classifier flattens its adaptive pool's 512×7×7
        if name == "resnet18":
            features = model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(
                model.conv1(x))))))))
        else:
            features = model.avgpool(model.features(x))
    assert found is not None and found[1] == tuple(features.shape[1:])


@pytest.mark.parametrize("n, f, p, s", [(326, 3, 0, 5), (646, 3, 0, 10), (651, 2, 0, 5)])
def test_formula_quotients_are_exact(n, f, p, s):
    from fractions import Fraction

    quotient = Fraction(n - f + 2 * p, s)
    assert quotient.limit_denominator(1000) == quotient and (quotient * 1000).denominator == 1  # ends in 3 decimals
    shown = conv_arithmetic(n, f, p, s).formula_numbers.split("⌊")[-1].split("⌋")[0]
    assert "…" not in shown and Fraction(shown) == quotient


# --- training results ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory):
    from explorer.data import load_shapes
    from explorer.training import TrainConfig, run_training

    folder = tmp_path_factory.mktemp("runs") / "r"
    data = load_shapes(channels=1, size=28, seed=5, samples=1400, ratios=(0.1, 0.0, 0.9))
    run_training(TrainConfig(model="mnist_cnn", epochs=2, batch_size=32, device="cpu", max_steps=3), folder,
                 data=data)
    return folder


def test_the_count_of_mistakes_is_all_of_them_not_the_500_listed(untrained_run):
    from explorer.training import read_evaluation

    evaluation = read_evaluation(untrained_run)
    confusion = evaluation.confusion
    wrong = int(confusion.sum() - np.trace(confusion))  # from the confusion matrix, counted independently
    assert wrong > 500 and len(evaluation.misclassified) == 500
    assert evaluation.wrong == wrong


def test_without_a_validation_split_the_checkpoint_names_the_training_accuracy(untrained_run):
    checkpoint = torch.load(untrained_run / "best.pt", weights_only=True)
    assert "valid_acc" not in checkpoint and 0 <= checkpoint["train_acc"] <= 1


def test_metrics_flag_only_the_epoch_the_checkpoint_holds(untrained_run):
    metrics = json.loads((untrained_run / "metrics.json").read_text())
    checkpoint = torch.load(untrained_run / "best.pt", weights_only=True)
    flagged = [e["epoch"] for e in metrics["epochs"] if e["best"]]
    assert flagged == [metrics["best_epoch"]] == [checkpoint["epoch"]]


def test_run_files_are_standard_json(tmp_path):
    from explorer.models import write_json_atomic

    write_json_atomic(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -math.inf}})

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    assert json.loads((tmp_path / "x.json").read_text(), parse_constant=refuse) == {"a": None, "b": [1.0, None],
                                                                                    "c": {"d": None}}
