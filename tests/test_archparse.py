"""The build-your-own grammar: round trips, refusals that name the token, and the built networks."""
from __future__ import annotations

import random

import pandas as pd
import pytest
import torch
import torch.nn as nn

from explorer.models.arch import describe_arch
from explorer.models.arch import DEFAULT_INPUT_SHAPE, ArchSpecError, LayerSpec, build_arch, canonical_spec, format_arch, parse_arch, spec_to_table, table_to_spec

SPECS = [
    "conv3-64 conv3-64 M conv3-128 M FC-256 FC-10",
    "in-1x28x28 conv5-6/p0 BN ReLU A conv5-16/p0 ReLU M flatten FC-120 ReLU dropout-0.3 FC-10",
    "in-3x64x64 conv7-64/s2 LRN max3/s2/p1 conv3-64/g4 GAP BN FC-5",
    "in-3x32x32 conv1-8 BN conv3-8/s2/p0 avg3/s1/p1 dropout GAP FC-2",
    "in-1x16x16 conv3-4/g1 M FC-3",
]


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip(spec):
    layers = parse_arch(spec)
    text = format_arch(layers)
    assert parse_arch(text) == layers
    assert format_arch(parse_arch(text)) == text


def test_canonical_form_drops_defaults_and_normalises_case():
    assert canonical_spec("IN-3X32X32 Conv3-16/S1/P1/G1 maxpool max2/s2 avg2 Fc-10") == \
        "in-3x32x32 conv3-16 M M A FC-10"
    assert canonical_spec("conv7-64/s2/p3, dropout-0.5,relu  GAP FC-4") == "conv7-64/s2 dropout ReLU GAP FC-4"
    assert canonical_spec("conv3-8/p0 FC-2") == "conv3-8/p0 FC-2"


def _random_layer(rng: random.Random) -> LayerSpec:
    kind = rng.choice(["conv", "maxpool", "avgpool", "fc", "bn", "relu", "dropout", "gap", "lrn", "flatten"])
    if kind == "conv":
        k = rng.choice([1, 3, 5, 7])
        return LayerSpec("conv", out=rng.randint(1, 512), kernel=k, stride=rng.randint(1, 3),
                         padding=rng.randint(0, 4), groups=rng.choice([1, 1, 2]))
    if kind in ("maxpool", "avgpool"):
        k = rng.randint(1, 5)
        return LayerSpec(kind, kernel=k, stride=rng.randint(1, 4), padding=rng.randint(0, k // 2))
    if kind == "fc":
        return LayerSpec("fc", out=rng.randint(1, 4096))
    if kind == "dropout":
        return LayerSpec("dropout", p=rng.choice([0.0, 0.1, 0.25, 0.5, 0.75]))
    return LayerSpec(kind)


def test_round_trip_of_random_layer_lists():
    rng = random.Random(0)
    for _ in range(300):
        layers = [_random_layer(rng) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.5:
            layers.insert(0, LayerSpec("input", shape=(rng.randint(1, 4), rng.randint(1, 300), rng.randint(1, 300))))
        assert parse_arch(format_arch(layers)) == layers


MALFORMED = ["conv3", "conv-64", "conv3-", "convx-64", "conv3-64/x2", "conv3-64/s2/s3", "conv3-64/p-1",
             "conv0-64", "conv3-0", "conv3-64/s0", "conv3-64/g0", "conv99-4", "FC", "FC-", "FC-abc", "FC-0",
             "FC-100000", "dropout-1.5", "dropout--0.2", "dropout-x", "max0", "max4/p3", "maxpool3x", "avg",
             "M2", "pool", "softmax", "relu6", "BN2d", "in-3x32", "in-0x32x32", "in-3x32x9999", "conv3-64;",
             "3x3conv-64", "Conv(3x64)", "GAP-2", "LRN-5"]


@pytest.mark.parametrize("token", MALFORMED)
def test_every_malformed_token_is_refused_by_name(token):
    spec = f"conv3-8 {token} FC-10"
    with pytest.raises(ArchSpecError) as info:
        parse_arch(spec)
    assert repr(token) in str(info.value) and "token 2" in str(info.value)
    assert info.value.token == token and info.value.position == 2
    with pytest.raises(ValueError, match="token 2"):
        build_arch(spec)


def test_input_token_only_first():
    with pytest.raises(ArchSpecError, match=r"token 2 'in-3x32x32'.*first"):
        parse_arch("conv3-8 in-3x32x32 FC-2")


def test_empty_spec_refused():
    for spec in ("", "   ", ",,"):
        with pytest.raises(ArchSpecError, match="empty"):
            parse_arch(spec)
    with pytest.raises(ArchSpecError, match="no layers"):
        build_arch("in-3x32x32")


@pytest.mark.parametrize("spec, position, token, words", [
    # 32 → 16 → 8 → 4 → 2 → 1 → empty: the sixth pooling is the first empty output.
    ("conv3-8 M M M M M M FC-10", 7, "M", "empty"),
    ("in-3x8x8 conv9-4/p0 FC-2", 2, "conv9-4/p0", "empty"),
    ("in-1x4x4 conv3-4/s2/p0 max3 FC-2", 3, "max3", "empty"),
    ("conv3-6/g4 FC-2", 1, "conv3-6/g4", "channels do not match"),
    ("conv3-8 conv3-6/g4 FC-2", 2, "conv3-6/g4", "channels do not match"),
    ("conv3-8 FC-10 conv3-5 FC-2", 3, "conv3-5", "feature map"),
    ("conv3-8 GAP M FC-2", 3, "M", "feature map"),
    ("conv3-8 GAP LRN FC-2", 3, "LRN", "feature map"),
    ("conv3-8 GAP GAP", 3, "GAP", "feature map"),
    ("in-3x32x32 conv3-8 M", 3, "M", "ends with"),
    ("FC-8192 FC-8192 FC-8192 FC-8192", 4, "FC-8192", "parameters"),
    ("in-3x512x512 conv3-4096 FC-1", 2, "conv3-4096", "too large"),
])
def test_shape_errors_name_the_first_bad_token(spec, position, token, words):
    with pytest.raises(ArchSpecError) as info:
        build_arch(spec)
    assert info.value.position == position and info.value.token == token
    assert f"token {position} {token!r}" in str(info.value) and words in str(info.value)


def test_built_network_matches_hand_computed_shapes_and_parameters():
    model, shape = build_arch("conv3-64 conv3-64 M conv3-128 M FC-256 FC-10")
    assert shape == DEFAULT_INPUT_SHAPE == (3, 32, 32)
    expected = (3 * 9 * 64 + 64) + (64 * 9 * 64 + 64) + (64 * 9 * 128 + 128) + (128 * 8 * 8 * 256 + 256) + (256 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert not model.training
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, 10)
    names = [n for n, _ in model.named_children()]
    assert names == ["conv1", "relu1", "conv2", "relu2", "pool1", "conv3", "relu3", "pool2", "flatten1", "fc1",
                     "relu4", "fc2"]


def test_implied_relu_goes_after_batchnorm_and_never_after_the_last_layer():
    model, _ = build_arch("in-1x8x8 conv3-4 BN conv1-3 GAP")
    kinds = [type(m).__name__ for m in model.children()]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "Sequential"]
    explicit, _ = build_arch("in-1x8x8 conv3-4 ReLU conv3-4 GAP FC-2")
    assert [type(m).__name__ for m in explicit.children()].count("ReLU") == 1  # written ReLUs only


def test_groups_lrn_avgpool_and_bn_after_fc():
    model, shape = build_arch("in-3x64x64 conv7-64/s2 LRN max3/s2/p1 conv3-64/g4 A dropout-0.2 GAP BN FC-5")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].stride == (2, 2) and convs[0].padding == (3, 3)
    assert convs[1].groups == 4 and convs[1].weight.shape == (64, 16, 3, 3)
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in model.modules())
    with torch.no_grad():
        assert model(torch.randn(1, *shape)).shape == (1, 5)


def test_describe_arch_agrees_with_the_shape_table_of_the_built_model():
    from explorer.analysis import layer_table

    spec = "in-1x28x28 conv5-6/p0 BN ReLU A conv5-16/p0 ReLU M FC-120 FC-10"
    plan = describe_arch(spec)
    model, shape = build_arch(spec)
    table = layer_table(model, shape)
    leaves = table[table["is_leaf"]].set_index("layer")
    for _, step in plan.iterrows():
        assert leaves.loc[step["name"], "output_shape"] == step["output"].replace("×", "x")
    # 28 → 24 → 12 → 8 → 4: FC-120 sees 16·4·4 features.
    assert plan.loc[plan["name"] == "fc1", "params"].item() == 16 * 4 * 4 * 120 + 120
    assert plan.loc[plan["name"] == "conv1", "mult_adds"].item() == 6 * 25 * 24 * 24


def test_build_model_and_load_model_use_the_spec_deterministically():
    from explorer.models import build_model, load_model

    spec = "in-1x16x16 conv3-4 M FC-3"
    a = build_model("arch:" + spec)
    b = build_model("arch:" + spec)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    loaded = load_model("arch:" + spec, weights=None, device="cpu")
    assert loaded.input_shape == (1, 16, 16)
    from PIL import Image

    x = loaded.preprocess(Image.new("RGB", (40, 30), (200, 10, 10)))
    assert x.shape == (1, 1, 16, 16)


# --- layer-table editing --------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS)
def test_table_round_trip(spec):
    layers = parse_arch(spec)
    shape = layers[0].shape if layers[0].kind == "input" else None
    assert table_to_spec(spec_to_table(spec), shape) == canonical_spec(spec)


def test_edited_table_rows():
    table = spec_to_table("conv3-8 M FC-10")
    table.loc[0, "out"] = 16
    table.loc[len(table)] = {"layer": None}  # a blank row added in the editor is ignored
    table.loc[len(table)] = {"layer": "dropout", "p": 0.25}
    assert table_to_spec(table, (1, 28, 28)) == "in-1x28x28 conv3-16 M FC-10 dropout-0.25"
    extra = pd.DataFrame([{"layer": "conv", "out": 4, "kernel": 5}, {"layer": "maxpool", "kernel": 3, "stride": 2},
                          {"layer": "gap"}])
    assert table_to_spec(extra) == "conv5-4 max3/s2 GAP"


@pytest.mark.parametrize("row, words", [
    ({"layer": "conv"}, "needs 'out'"),
    ({"layer": "fc", "out": 0}, "row 1"),
    ({"layer": "conv", "out": 8, "stride": 0}, "stride"),
    ({"layer": "conv", "out": 8, "kernel": 2.5}, "whole number"),
    ({"layer": "pool"}, "unknown layer type"),
    ({"layer": "dropout", "p": 1.0}, "dropout probability"),
])
def test_bad_table_rows_are_named(row, words):
    with pytest.raises(ArchSpecError, match="row 1") as info:
        table_to_spec(pd.DataFrame([row]))
    assert words in str(info.value)


def test_empty_table_refused():
    with pytest.raises(ArchSpecError, match="no layers"):
        table_to_spec(pd.DataFrame([{"layer": None}]), (3, 32, 32))


@pytest.mark.parametrize("p", [0.00001, 0.1234567, 0.25, 0.999])
def test_a_dropout_probability_survives_the_round_trip(p):
    """``dropout-1e-05`` (Python's :g) is not a token the grammar reads; 0.1234567 was rounded to 0.123457."""
    spec = canonical_spec(f"conv3-8 dropout-{p:.7f} FC-10")
    layers = parse_arch(spec)
    assert [layer.p for layer in layers if layer.kind == "dropout"] == [round(p, 7)]
    assert parse_arch(format_arch(layers)) == layers
