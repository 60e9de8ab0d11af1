"""Whole-pixel enlargement of small pictures (explorer.imaging.as_pixels) against numpy by hand."""
import numpy as np

from explorer.imaging import DOWNLOAD_MIN_SIDE, as_pixels, pixel_zoom


def test_pixel_zoom_reaches_the_side_with_a_whole_factor():
    assert pixel_zoom((38, 25), 1024) == 27  # ceil(1024 / 38): 1026 px
    assert pixel_zoom((12, 12, 3), 1024) == 86
    assert pixel_zoom((2000, 10), 1024) == 1  # already big enough: unchanged


def test_as_pixels_is_a_nearest_neighbour_upscale():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = as_pixels(image, DOWNLOAD_MIN_SIDE)
    zoom = -(-DOWNLOAD_MIN_SIDE // 3)
    assert big.shape == (2 * zoom, 3 * zoom, 3) and max(big.shape[:2]) >= DOWNLOAD_MIN_SIDE
    for y in range(2):
        for x in range(3):
            assert (big[y * zoom:(y + 1) * zoom, x * zoom:(x + 1) * zoom] == image[y, x]).all()
