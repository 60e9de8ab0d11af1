"""Findings of the twelfth session's review of the grammar, the registry and the papers' tables, each checked
against an independent computation: the paper's LRN formula in numpy, hand counts of LeNet-5, PyTorch's pooling,
the built model's own parameters."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn as nn

from explorer.history import compare_models, mult_adds_by_module, weight_layer_depth
from explorer.models import build_model, get_entry, load_model
from explorer.models.arch import ArchSpecError, build_arch
from explorer.receptive import conv_arithmetic


# --- LeNet-5 in Compare: C3 (partially connected) and the RBF output are weight layers ---------------------------

def test_lenet5_depth_and_mult_adds_count_c3_and_the_output_layer():
    model = build_model("lenet5")
    # LeCun et al. 1998: "seven layers, not counting the input, all of which contain trainable parameters": C1, C3,
    # C5 (convolutions), S2 and S4 (a trainable coefficient and bias per map), F6 and the output layer (review 14)
    assert weight_layer_depth(model) == 7
    counts = mult_adds_by_module(model, (1, 32, 32))
    hand = {"C1": 28 * 28 * 6 * 25, "S2": 6 * 14 * 14, "C3": 10 * 10 * 60 * 25,  # C3: 60 connected 5×5 kernels
            "S4": 16 * 5 * 5, "C5": 120 * 16 * 25, "F6": 84 * 120, "output": 10 * 84}  # S: one multiply per unit
    assert counts == hand
    row = compare_models(["lenet5", "mnist_cnn"]).set_index("model").loc["lenet5"]
    assert int(row["weight_layers"]) == 7
    assert row["gflops"] == pytest.approx(sum(hand.values()) / 1e9)


# --- LRN: the paper's formula, the same in every network that says it uses it --------------------------------------

def _paper_lrn(a: np.ndarray, n: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75) -> np.ndarray:
    """b_c = a_c / (k + α Σ_{j=c-n/2}^{c+n/2} a_j²)^β (Krizhevsky et al. 2012, section 3.3), written out."""
    out = np.empty_like(a)
    channels = a.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - n // 2), min(channels - 1, c + n // 2)
        out[:, c] = a[:, c] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** beta
    return out


def _lrn_of(model: nn.Module) -> nn.LocalResponseNorm:
    return next(m for m in model.modules() if isinstance(m, nn.LocalResponseNorm))


@pytest.mark.parametrize("source", ["arch:in-8x6x6 LRN GAP", "vgg_a_lrn", "googlenet_paper", "alexnet_paper"])
def test_every_lrn_is_krizhevskys_formula(source):
    with torch.device("meta"):
        lrn = _lrn_of(build_model(source) if not source.startswith("arch:") else build_arch(source[5:])[0])
    lrn = nn.LocalResponseNorm(lrn.size, alpha=lrn.alpha, beta=lrn.beta, k=lrn.k)  # off the meta device
    a = np.random.default_rng(0).normal(0, 40, size=(1, 8, 6, 6)).astype(np.float64)  # large: α matters
    got = lrn(torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(got, _paper_lrn(a), rtol=1e-6)


# --- grammar: a pool's implied stride is its size, up to the largest kernel -------------------------------------------

@pytest.mark.parametrize("size", [17, 20, 31])
def test_large_pool_takes_its_size_as_stride(size):
    model, natural = build_arch(f"in-3x64x64 max{size} FC-10")
    x = torch.zeros(1, *natural)
    expected = nn.MaxPool2d(size, stride=size)(x).shape  # PyTorch's own arithmetic
    pool = next(m for m in model.modules() if isinstance(m, nn.MaxPool2d))
    assert pool(x).shape == expected
    assert model(x).shape == (1, 10)


def test_stride_bound_is_still_enforced():
    with pytest.raises(ArchSpecError, match="stride"):
        build_arch("in-3x64x64 max3/s40 FC-10")


# --- load_model: the first layer fixes the channel count ------------------------------------------------------------

@pytest.mark.parametrize("name, shape", [("arch:in-3x32x32 conv3-8 M FC-10", (1, 28, 28)), ("resnet18", (1, 64, 64))])
def test_load_model_refuses_a_channel_count_the_first_layer_cannot_take(name, shape):
    with pytest.raises(ValueError, match="3-channel input, not 1-channel"):
        load_model(name, weights=None, device="cpu", input_shape=shape)


def test_load_model_adopts_channels_for_a_spec_without_input():
    loaded = load_model("arch:conv3-8 M FC-10", weights=None, device="cpu", input_shape=(1, 28, 28))
    x = torch.zeros(1, *loaded.input_shape)
    assert loaded.model(x).shape == (1, 10)


# --- conv arithmetic: the printed quotient is never rounded up past its floor ------------------------------------------

@pytest.mark.parametrize("n, f, p, s", [(2005, 2, 0, 2), (20001, 2, 0, 2), (10, 3, 0, 3), (1999, 2, 0, 1000),
                                        (7, 3, 1, 2), (224, 7, 3, 2)])
def test_formula_numbers_show_a_quotient_whose_floor_is_the_output(n, f, p, s):
    result = conv_arithmetic(n, f, p, s)
    expected = (n - f + 2 * p) // s + 1  # the course's formula, integers
    text = result.formula_numbers
    assert text.endswith(f"= {expected}")
    quotient = re.search(r"⌊([0-9.]+)…?⌋ \+ 1", text) or re.search(r"= ([0-9.]+)/", text)
    if "⌊" in text:
        shown = float(re.findall(r"⌊([0-9.]+)…?⌋", text)[-1])
        assert math.floor(shown) + 1 == expected
        assert shown <= (n - f + 2 * p) / s  # cut, never rounded up
    assert quotient is not None


# --- texts that state counts ------------------------------------------------------------------------------------------

def test_inception_v3_description_counts_the_model_as_built():
    with torch.device("meta"):
        built = sum(p.numel() for p in build_model("inception_v3").parameters())
    stated = float(re.search(r"([0-9.]+) M parameters", get_entry("inception_v3").description)[1])
    assert stated == pytest.approx(built / 1e6, abs=0.05)


def test_googlenet_note_states_the_tables_own_deviations():
    """Table 1's params are weights only in K = 1,024 (review 14): checked from the table's own widths by hand."""
    from explorer.core import translate
    from explorer.history import googlenet_table

    table = googlenet_table().set_index("key")

    def printed(key: str) -> float:
        return float(str(table.loc[key, "params (paper printed)"]).rstrip("K"))

    hand: dict[str, float] = {"conv2+conv3": (64 * 64 + 64 * 9 * 192) / 1024, "fc": 1024 * 1000 / 1024}
    channels = 192
    for key in [k for k in table.index if k.startswith("inception")]:
        w = {c: int(table.loc[key, c]) for c in ("#1×1", "#3×3 reduce", "#3×3", "#5×5 reduce", "#5×5", "pool proj")}
        hand[key] = (channels * (w["#1×1"] + w["#3×3 reduce"] + w["#5×5 reduce"] + w["pool proj"])
                     + w["#3×3 reduce"] * 9 * w["#3×3"] + w["#5×5 reduce"] * 25 * w["#5×5"]) / 1024
        channels = w["#1×1"] + w["#3×3"] + w["#5×5"] + w["pool proj"]
    for key, value in hand.items():
        assert table.loc[key, "weights (K = 1024)"] == pytest.approx(value, abs=0.051), key  # rounded to 0.1K
    assert hand["fc"] == printed("fc") == 1000  # the unit: 1,024,000 weights printed "1000K"
    for key in ("conv2+conv3", "inception3a", "inception3b", "inception4b", "fc"):
        assert abs(hand[key] - printed(key)) <= 1, key
    for key in ("inception4a", "inception4d", "inception4e", "inception5b"):
        assert abs(hand[key] / printed(key) - 1) <= 0.02, key
    for key in ("inception4c", "inception5a"):
        assert abs(hand[key] / printed(key) - 1) > 0.05, key
    note = translate("papers.note.googlenet_params", "en")
    assert f"4c ({hand['inception4c']:.1f}K vs {printed('inception4c'):.0f}K printed)" in note
    assert f"5a ({hand['inception5a']:,.0f}K vs {printed('inception5a'):,.0f}K)" in note
    assert "K = 1,024" in translate("papers.note.googlenet_params", "ko")


def printed_ok(table, key: str) -> bool:
    value = str(table.loc[key, "params (paper printed)"])
    return value.endswith("K") and key != "total"
