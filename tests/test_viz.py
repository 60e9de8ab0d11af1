"""explorer.viz: tiling layout and scales, colormaps, overlays, PNG bytes, first-layer filter pictures."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explorer.viz import (
    channel_stats,
    colorize,
    filter_grid,
    filter_images,
    normalize,
    overlay,
    tile_channels,
    to_png,
)


def test_tile_places_each_channel_in_its_cell_with_gaps():
    maps = np.stack([np.full((2, 3), float(c)) for c in range(5)])  # channel c is constant c
    tiling = tile_channels(maps, order="index", scale="shared", cols=3, pad=1)
    assert (tiling.rows, tiling.cols) == (2, 3)
    assert tiling.image.shape == (2 * 3 - 1, 3 * 4 - 1)
    # shared scale: value c maps to c / 4
    assert np.allclose(tiling.image[0:2, 0:3], 0.0)
    assert np.allclose(tiling.image[0:2, 4:7], 0.25)
    assert np.allclose(tiling.image[3:5, 4:7], 1.0)  # channel 4: row 1, col 1
    assert np.isnan(tiling.image[2, :]).all() and np.isnan(tiling.image[:, 3]).all()  # gaps
    assert np.isnan(tiling.image[3:5, 8:11]).all()  # the sixth cell is empty
    assert tiling.channel_at(5, 4) == 4 and tiling.channel_at(9, 4) is None
    assert tiling.channel_at(0, 0) == 0 and tiling.channel_at(100, 0) is None


def test_order_by_mean_and_per_channel_scale():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(4, 5, 5)).astype(np.float32)
    maps[2] += 10  # the strongest channel
    maps[0] -= 10
    tiling = tile_channels(maps, order="mean", scale="channel", cols=4, pad=0)
    expected_order = np.argsort(-maps.mean(axis=(1, 2)))
    assert list(tiling.channels) == list(expected_order) and tiling.channels[0] == 2
    first = tiling.image[:, :5]
    hand = (maps[2] - maps[2].min()) / (maps[2].max() - maps[2].min())
    np.testing.assert_allclose(first, hand, rtol=1e-6)
    for cell in range(4):  # every channel stretched to its own full range
        block = tiling.image[:, cell * 5:(cell + 1) * 5]
        assert block.min() == pytest.approx(0) and block.max() == pytest.approx(1)


def test_512_channels_one_image_and_large_layers_shrink():
    maps = np.random.default_rng(1).random((512, 7, 7), dtype=np.float32)
    tiling = tile_channels(maps)
    assert tiling.rows * tiling.cols >= 512 and tiling.image.ndim == 2
    big = np.ones((64, 224, 224), dtype=np.float32)
    small = tile_channels(big, max_side=1000)
    assert max(small.image.shape) <= 1000 and small.shrink == 2 and small.cell == (112, 112)


def test_colorize_uses_the_colormap_table():
    gray = colorize(np.array([[0.0, 1.0, np.nan]]), "gray")
    assert gray[0, 0].tolist() == [0, 0, 0] and gray[0, 1].tolist() == [255, 255, 255]
    assert gray[0, 2].tolist() == [255, 255, 255]  # gaps get the pad colour
    # viridis: dark purple at 0, yellow at 1 (matplotlib's table, an independent source)
    from matplotlib import colormaps

    ends = colorize(np.array([[0.0, 0.5, 1.0]]), "viridis")[0].astype(int)
    reference = (np.array([colormaps["viridis"](v)[:3] for v in (0.0, 0.5, 1.0)]) * 255).round().astype(int)
    assert np.abs(ends - reference).max() <= 6
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2)), "no-such-map")


def test_normalize_and_stats():
    np.testing.assert_allclose(normalize(np.array([2.0, 4.0, 6.0])), [0, 0.5, 1])
    assert normalize(np.full(3, 7.0)).tolist() == [0, 0, 0]
    stats = channel_stats(np.array([[-1.0, 0.0], [1.0, 4.0]]))
    assert stats == {"min": -1.0, "max": 4.0, "mean": 1.0, "std": pytest.approx(np.std([-1, 0, 1, 4])),
                     "positive": 0.5}


def test_overlay_opacity_blends_image_and_heat():
    image = np.full((4, 6, 3), 100, dtype=np.uint8)
    heat = np.ones((2, 3), dtype=np.float32)  # upsampled to the image size
    assert np.array_equal(overlay(image, heat, alpha=0.0, cmap="gray"), image)
    assert (overlay(image, heat, alpha=1.0, cmap="gray") == 255).all()
    half = overlay(image, heat, alpha=0.5, cmap="gray")
    assert np.abs(half.astype(int) - 178).max() <= 1  # (100 + 255) / 2
    pil = Image.fromarray(image)
    assert overlay(pil, heat, 0.3).shape == (4, 6, 3)


def test_png_round_trip():
    rgb = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(to_png(rgb))).convert("RGB"))
    assert np.array_equal(decoded, rgb)
    grey = np.asarray(Image.open(io.BytesIO(to_png(np.array([[0.0, 1.0]])))))
    assert grey.tolist() == [[0, 255]]


def test_filter_images_are_normalised_rgb_kernels():
    weight = np.zeros((2, 3, 2, 2), dtype=np.float32)
    weight[0, 0] = 1.0  # only the red input channel: a red kernel
    weight[1] = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    pictures = filter_images(weight)
    assert pictures.shape == (2, 2, 2, 3)
    assert np.allclose(pictures[0, :, :, 0], 1) and np.allclose(pictures[0, :, :, 1:], 0)
    assert pictures[1].min() == 0 and pictures[1].max() == 1
    assert pictures[1, 0, 0].tolist() == pytest.approx([0, 4 / 11, 8 / 11])
    grey = filter_images(np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2))
    assert np.allclose(grey[..., 0], grey[..., 1]) and grey.shape == (2, 2, 2, 3)
    grid = filter_grid(np.random.default_rng(3).normal(size=(64, 3, 7, 7)), zoom=3)
    assert grid.dtype == np.uint8 and grid.shape == (8 * 21 + 7, 8 * 21 + 7, 3)
