"""Pictures in and out: loading images safely, classical filters, augmentation, and drawing maps.

``filters``, ``filter_display`` and ``augment`` are used as namespaces (``from explorer.imaging import filters``):
each has its own ``to_png``/``channel_stats``/``output_size`` in its own sense.
"""
from explorer.imaging import augment, filter_display, filters
from explorer.imaging.images import (ALLOWED_FORMATS, MAX_BYTES, MAX_SIDE, SAMPLES, ImageLoadError, basic_transform, channel_planes, image_to_png,
                                     load_image, sample_image, to_channels)
from explorer.imaging.teaching_samples import (DIGIT_SAMPLE_INDEX, FITTING_SAMPLE, SAMPLE_KINDS, SHAPE_NAMES, digit_picture,
                                               draw_single_shape, fitting_sample, sample_kind, sample_label, sklearn_digits)
from explorer.imaging.viz import (COLORMAPS, DISPLAY_TILE_SIDE, Tiling, channel_order, channel_stats, colorize, colorize_index,
                                  colour_index, filter_grid, filter_images, input_picture, normalize, overlay,
                                  resize_map, tile_channels, to_jpeg, to_png, to_rgb_uint8, upscale)
from explorer.imaging.viz import DOWNLOAD_MIN_SIDE, SCREEN_MIN_SIDE, as_pixels, pixel_zoom

__all__ = [
    "DOWNLOAD_MIN_SIDE", "SCREEN_MIN_SIDE", "as_pixels", "pixel_zoom",
    "COLORMAPS", "DIGIT_SAMPLE_INDEX", "DISPLAY_TILE_SIDE", "FITTING_SAMPLE", "fitting_sample", "SAMPLE_KINDS", "SHAPE_NAMES", "digit_picture",
    "draw_single_shape", "sample_kind", "sample_label", "sklearn_digits", "ImageLoadError", "MAX_BYTES", "MAX_SIDE", "SAMPLES", "Tiling", "augment",
    "ALLOWED_FORMATS", "basic_transform", "channel_order", "channel_planes", "channel_stats", "colorize", "colorize_index", "colour_index", "filter_display", "filter_grid",
    "filter_images", "filters", "image_to_png", "input_picture", "load_image", "normalize", "overlay", "resize_map",
    "sample_image", "tile_channels", "to_channels", "to_jpeg", "to_png", "to_rgb_uint8", "upscale",
]
