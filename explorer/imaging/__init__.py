"""Pictures in and out: loading images safely, classical filters, augmentation, and drawing maps.

``filters``, ``filter_display`` and ``augment`` are used as namespaces (``from explorer.imaging import filters``):
each has its own ``to_png``/``channel_stats``/``output_size`` in its own sense.

Names load on first use (PEP 562): a page that draws a sample does not import torchvision's transforms
(``augment``, ~1.5 s on 2 cores) or OpenCV's filters.
"""
from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = ("augment", "filter_display", "filters")
# submodule -> the public names it defines
_MODULES: dict[str, tuple[str, ...]] = {
    "images": ("ALLOWED_FORMATS", "MAX_BYTES", "MAX_SIDE", "SAMPLES", "ImageLoadError", "InputTransform", "basic_transform",
               "channel_planes", "image_to_png", "load_image", "preview_picture", "sample_image", "to_channels"),
    "teaching_samples": ("DIGIT_SAMPLE_INDEX", "FITTING_SAMPLE", "SAMPLE_KINDS", "SHAPE_NAMES", "digit_picture",
                         "draw_single_shape", "fitting_sample", "sample_kind", "sample_label", "sklearn_digits"),
    "viz": ("COLORMAPS", "DISPLAY_TILE_SIDE", "Tiling", "channel_order", "channel_stats", "colorize", "colorize_index",
            "colour_index", "filter_grid", "indexed_png", "filter_images", "input_picture", "normalize", "overlay", "resize_map",
            "tile_channels", "to_jpeg", "to_png", "to_rgb_uint8", "upscale", "DOWNLOAD_MIN_SIDE", "SCREEN_MIN_SIDE",
            "as_pixels", "pixel_zoom", "plotly_colorscale"),
}
_OWNER = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted([*_OWNER, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f"explorer.imaging.{name}")
    elif name in _OWNER:
        value = getattr(importlib.import_module(f"explorer.imaging.{_OWNER[name]}"), name)
    else:
        raise AttributeError(f"module 'explorer.imaging' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
