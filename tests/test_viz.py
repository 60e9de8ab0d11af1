"""explorer.imaging.viz: tiling layout and scales, colormaps, overlays, PNG bytes, first-layer filter pictures."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explorer.imaging import channel_stats
from explorer.imaging import colorize, filter_grid, filter_images, normalize, overlay, tile_channels, to_png


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


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_shrunk_tiles_are_block_averages(factor):
    """Shrinking averages factor×factor blocks (compared with a plain loop over the blocks)."""
    rng = np.random.default_rng(factor)
    maps = rng.random((3, 17, 11), dtype=np.float32)
    shrunk = tile_channels(maps, cols=3, pad=0, scale="shared", max_side=-(-33 // factor))  # 3 cells of width 11
    assert shrunk.shrink == factor
    h, w = 17 // factor, 11 // factor
    by_hand = np.empty((3, h, w))
    for c in range(3):
        for i in range(h):
            for j in range(w):
                by_hand[c, i, j] = maps[c, i * factor:(i + 1) * factor, j * factor:(j + 1) * factor].mean()
    by_hand = (by_hand - by_hand.min()) / (by_hand.max() - by_hand.min())
    cells = [shrunk.image[:, c * w:(c + 1) * w] for c in range(3)]
    np.testing.assert_allclose(np.stack(cells), by_hand, atol=1e-5)


def test_thin_maps_shrink_along_the_long_side_only():
    maps = np.arange(2 * 1 * 40, dtype=np.float32).reshape(2, 1, 40)
    tiling = tile_channels(maps, cols=2, pad=0, max_side=40)
    assert tiling.shrink == 2 and tiling.cell == (1, 20)


def test_colorize_matches_matplotlib_on_a_whole_map():
    from matplotlib import colormaps

    values = np.random.default_rng(3).random((37, 53), dtype=np.float32)
    values[5, :] = np.nan
    rgb = colorize(values, "viridis")
    reference = (colormaps["viridis"](np.nan_to_num(values))[..., :3] * 255).round()
    ok = ~np.isnan(values)
    assert rgb.shape == (37, 53, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb[ok].astype(int) - reference[ok]).max() <= 6
    assert (rgb[5] == 255).all()  # the NaN row: pad colour
    assert colorize(values[None], "gray").shape == (1, 37, 53, 3)  # any shape, not only 2-D


def test_jpeg_for_the_screen_is_close_to_the_pixels():
    from explorer.imaging import to_jpeg

    yy, xx = np.mgrid[0:64, 0:96]
    rgb = colorize((xx + yy) / (64 + 96), "viridis")
    decoded = np.asarray(Image.open(io.BytesIO(to_jpeg(rgb))).convert("RGB")).astype(float)
    psnr = 10 * np.log10(255 ** 2 / np.mean((decoded - rgb) ** 2))
    assert decoded.shape == rgb.shape and psnr > 35
    with pytest.raises(ValueError):
        to_jpeg(np.zeros((4, 4), dtype=np.float32))


def test_upscale_is_an_exact_nearest_neighbour_enlargement():
    """Each source pixel becomes a factor×factor block (against numpy's Kronecker product), whatever the dtype
    and channel count; OpenCV serves the common cases, numpy the rest."""
    from explorer.imaging import upscale

    rng = np.random.default_rng(3)
    for shape, dtype in [((47, 53, 3), np.uint8), ((13, 13), np.float32), ((7, 9, 1), np.uint8),
                         ((5, 6, 4), np.uint8), ((11, 4), np.float64), ((6, 5, 3), np.int16)]:
        image = (rng.random(shape) * 200).astype(dtype)
        for factor in (2, 3, 8):
            block = np.ones((factor, factor) + (1,) * (image.ndim - 2), dtype)
            expected = np.kron(image, block)
            out = upscale(image, factor)
            assert out.dtype == image.dtype and out.shape == expected.shape
            np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("case", ["gaps", "no_gaps", "every_colour_and_gaps"])
def test_indexed_png_has_the_pixels_of_the_coloured_grid(case):
    """The palette PNG the screen and downloads get decodes to exactly the RGB grid: each value through matplotlib's
    colormap (within the table's rounding), gaps in white, enlarged by a whole factor (a Kronecker product)."""
    from matplotlib import colormaps

    from explorer.imaging import colour_index, indexed_png

    rng = np.random.default_rng(5)
    values = rng.random((23, 31), dtype=np.float32)
    if case != "no_gaps":
        values[4, :] = np.nan
        values[:, 7] = np.nan
    if case == "every_colour_and_gaps":  # all 256 table rows used: no free palette slot for the gaps
        cells = np.flatnonzero(~np.isnan(values))[:256]
        values.ravel()[cells] = np.arange(256) / 255
    data = indexed_png(*colour_index(values), "magma", min_side=100)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    factor = 4  # ceil(100 / 31)
    expected_small = (colormaps["magma"](np.nan_to_num(values))[..., :3] * 255).round()
    expected_small[np.isnan(values)] = 255
    expected = np.kron(expected_small, np.ones((factor, factor, 1)))
    assert decoded.shape == (23 * factor, 31 * factor, 3)
    assert np.abs(decoded - expected).max() <= 6
    gaps = np.kron(np.isnan(values), np.ones((factor, factor), bool))
    assert (decoded[gaps] == 255).all()
    assert Image.open(io.BytesIO(data)).mode == ("RGB" if case == "every_colour_and_gaps" else "P")
