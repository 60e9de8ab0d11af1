"""Numbers for people (explorer.core.numbers) and the main path of a layer table (explorer.analysis.main_path),
against hand-computed values."""
import math

import pandas as pd
import pytest

from explorer.analysis import main_path
from explorer.core import EMPTY_CELL, cell_text, human_bytes, human_number, is_missing, key_columns_first


@pytest.mark.parametrize("value, text", [
    (11_689_512, "11.7 M"),        # resnet18's parameters
    (138_357_544, "138 M"),        # vgg16's
    (3_600_000_000, "3.6 G"),
    (1_814_073_344, "1.81 G"),
    (2_762, "2,762"),              # exact below 100,000: 1,792 = 1,728 + 64 stays checkable
    (99_999, "99,999"),
    (100_000, "100 k"),
    (999_950_000, "1 G"),          # rounds to 1000 M: the next prefix
    (0, "0"),
    (0.5, "0.5"),
    (-123_456, "-123 k"),
])
def test_human_number(value, text):
    assert human_number(value) == text


def test_fixed_unit_and_missing_values():
    assert human_number(2_762, unit="M") == "0.00276 M"  # mnist_cnn in a column of millions, not "0.00"
    assert human_number(3_000, unit="M") == "0.003 M"
    for missing in (None, float("nan"), pd.NA, pd.NaT):
        assert is_missing(missing)
        assert human_number(missing) == EMPTY_CELL == cell_text(missing) == "\u2014"
    assert not is_missing(0) and not is_missing("")
    assert cell_text("") == EMPTY_CELL and cell_text(3.0) == "3" and cell_text("3x3") == "3x3"
    assert human_bytes(44.59 * 2**20) == "44.6 MB" and human_bytes(512) == "512 B"


def test_key_columns_first():
    assert key_columns_first(["a", "b", "c", "d"], ["c", "x", "a"]) == ["c", "a", "b", "d"]


def _row(layer, kind, depth, leaf, shape):
    return {"layer": layer, "type": kind, "depth": depth, "is_leaf": leaf, "output_shape": shape}


def test_main_path_collapses_merging_blocks_and_keeps_conv_and_pool_leaves():
    table = pd.DataFrame([
        _row("conv1", "Conv2d", 1, True, "8x16x16"),
        _row("relu", "ReLU", 1, True, "8x16x16"),
        _row("pool", "MaxPool2d", 1, True, "8x8x8"),
        _row("block", "Inception", 1, False, "24x8x8"),
        _row("block.a", "Conv2d", 2, True, "4x8x8"),
        _row("block.b", "Sequential", 2, False, "20x8x8"),
        _row("block.b.0", "Conv2d", 3, True, "20x8x8"),
        _row("block.cat", "cat", 2, True, "24x8x8"),
        _row("seq", "Sequential", 1, False, "32x4x4"),
        _row("seq.0", "Conv2d", 2, True, "32x4x4"),
        _row("fc", "Linear", 1, True, "10"),
    ])
    path = main_path(table)
    assert path["layer"].tolist() == ["conv1", "pool", "block", "seq.0"]
    assert path["channels"].tolist() == [8, 8, 24, 32] and path["height"].tolist() == [16, 8, 8, 4]
    assert math.isclose(path["width"].sum(), 16 + 8 + 8 + 4)
