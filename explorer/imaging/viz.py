"""Pictures of activations: channel tiles, colormaps, heatmap overlays, filter images, PNG bytes.

All numpy (plus OpenCV for colormaps, resizing and PNG encoding): a layer of 512 channels becomes one
image in milliseconds, drawn as a single picture rather than 512 plot traces.
"""
from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

COLORMAPS: dict[str, int | None] = {
    "viridis": cv2.COLORMAP_VIRIDIS,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
    "cividis": cv2.COLORMAP_CIVIDIS,
    "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET,
    "hot": cv2.COLORMAP_HOT,
    "bone": cv2.COLORMAP_BONE,
    "gray": None,
}
PAD_COLOUR = (255, 255, 255)  # the gaps between tiles

Order = Literal["index", "mean"]
Scale = Literal["shared", "channel"]


# ------------------------------------------------------------------------------------------ colours
@functools.lru_cache(maxsize=None)  # one per colormap name (a handful), asked at every colouring
def _lut(cmap: str) -> np.ndarray:
    """(256, 3) RGB lookup table of a named colormap (read-only: every caller shares it)."""
    if cmap not in COLORMAPS:
        raise ValueError(f"unknown colormap {cmap!r}; choose from {', '.join(COLORMAPS)}")
    ramp = np.arange(256, dtype=np.uint8)
    code = COLORMAPS[cmap]
    if code is None:
        table = np.repeat(ramp[:, None], 3, axis=1)
    else:
        table = cv2.applyColorMap(ramp[:, None], code)[:, 0, ::-1].copy()  # OpenCV gives BGR
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=None)
def plotly_colorscale(cmap: str, steps: int = 33) -> tuple[tuple[float, str], ...]:
    """The colormap as a plotly colorscale, sampled from the same lookup table as every picture (``colorize``),
    so an interactive heatmap shows the colours of the grid, the overlay and the PNG downloads (plotly's own
    "hot" or "jet" differ by up to ~100 levels; it has no "bone")."""
    table = _lut(cmap)
    rows = np.linspace(0, 255, steps).round().astype(int)
    return tuple((float(row / 255), "rgb({},{},{})".format(*(int(v) for v in table[row]))) for row in rows)


def colour_index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Values in [0, 1] (NaN = gap) as colormap table rows (uint8) and the gap mask (None without gaps):
    the colormap-independent half of ``colorize``, kept so another colormap is only a table lookup."""
    arr = np.asarray(values, dtype=np.float32)
    scaled = arr * 255.0
    scaled += 0.5
    gaps = np.isnan(scaled)
    np.clip(scaled, 0, 255, out=scaled)
    has_gaps = bool(gaps.any())
    if has_gaps:
        np.copyto(scaled, 0.0, where=gaps)
    return scaled.astype(np.uint8), (gaps if has_gaps else None)


def colorize_index(index: np.ndarray, gaps: np.ndarray | None, cmap: str = "viridis",
                   pad_colour: tuple[int, int, int] = PAD_COLOUR) -> np.ndarray:
    """uint8 RGB of ``colour_index``'s output through the colormap's lookup table."""
    lut = _lut(cmap)
    if index.ndim == 2 and index.size:  # OpenCV's table lookup: ~3x numpy's fancy indexing on big tiles
        rgb = cv2.LUT(cv2.merge([index, index, index]), lut.reshape(256, 1, 3))
    else:
        rgb = lut[index]
    if gaps is not None:  # by flat index: ~8x faster than a boolean mask on a 900² grid
        rgb.reshape(-1, 3)[np.flatnonzero(gaps)] = pad_colour
    return rgb


def colorize(values: np.ndarray, cmap: str = "viridis", pad_colour: tuple[int, int, int] = PAD_COLOUR) -> np.ndarray:
    """Values in [0, 1] (NaN = gap) -> uint8 RGB image through the colormap's lookup table."""
    index, gaps = colour_index(values)
    return colorize_index(index, gaps, cmap, pad_colour)


def normalize(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Linear map of [lo, hi] (default: the array's range) onto [0, 1]; a constant array gives zeros."""
    arr = np.asarray(values, dtype=np.float32)
    if lo is None:
        lo = float(arr.min()) if arr.size else 0.0
        lo = float(np.nanmin(arr)) if np.isnan(lo) else lo  # min() is ~3x faster; NaN shows in its result
    if hi is None:
        hi = float(arr.max()) if arr.size else 0.0
        hi = float(np.nanmax(arr)) if np.isnan(hi) else hi
    lo, hi = float(lo), float(hi)
    if not np.isfinite(hi - lo) or hi <= lo:
        return np.zeros_like(arr, dtype=np.float32)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0)


# ------------------------------------------------------------------------------------------ tiling
# The pages draw a channel grid at most this many pixels wide and high (shown ~900 px wide; bigger only costs
# encoding and transfer on every rerun); downloads are full resolution.
DISPLAY_TILE_SIDE = 1024
# Small grids are enlarged by whole pixels to at least SCREEN_MIN_SIDE on screen (the browser would otherwise
# smooth a 38-px grid of 12×12 maps into a blur), and downloads to at least DOWNLOAD_MIN_SIDE.
SCREEN_MIN_SIDE = 900
DOWNLOAD_MIN_SIDE = 1024

@dataclass
class Tiling:
    """Channels of one layer laid out in a grid. ``image`` is float32 in [0, 1] with NaN in the gaps."""

    image: np.ndarray
    channels: np.ndarray  # channel index shown in each cell, row-major
    rows: int
    cols: int
    cell: tuple[int, int]  # (h, w) of one cell as drawn (after any shrinking)
    pad: int
    shrink: int  # each map was block-averaged by this factor to keep the tile small

    def channel_at(self, x: float, y: float) -> int | None:
        """The channel drawn at pixel (x, y) of ``image`` (for clicks), or None in a gap/outside."""
        col, row = int(x) // (self.cell[1] + self.pad), int(y) // (self.cell[0] + self.pad)
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            return None
        index = row * self.cols + col
        return int(self.channels[index]) if index < len(self.channels) else None


def channel_order(maps: np.ndarray, order: Order = "index") -> np.ndarray:
    """Channel indices by index, or by mean activation (strongest first)."""
    count = maps.shape[0]
    if order == "index":
        return np.arange(count)
    if order == "mean":
        means = maps.reshape(count, -1).mean(axis=1)
        return np.argsort(-means, kind="stable")
    raise ValueError(f"unknown order {order!r}: use 'index' or 'mean'")


def _block_mean(maps: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor``×``factor`` blocks (a side shorter than ``factor`` is averaged whole)."""
    if factor <= 1:
        return maps
    c, h, w = maps.shape
    fh, fw = min(factor, h), min(factor, w)
    h2, w2 = h // fh, w // fw
    kept = np.ascontiguousarray(maps[:, : h2 * fh, : w2 * fw], dtype=np.float32)
    # The channels stacked as one tall picture (whole blocks never cross a channel's edge): OpenCV's area
    # resampling at a whole factor is the block mean, ~8x faster than numpy on vgg16's 64×224×224 layer.
    stacked = cv2.resize(kept.reshape(c * h2 * fh, w2 * fw), (w2, c * h2), interpolation=cv2.INTER_AREA)
    return stacked.reshape(c, h2, w2)


def _fit_factor(side: int, count: int, pad: int, max_side: int) -> int:
    """The block-mean factor for ``count`` cells of ``side`` pixels in a row (or column) with ``count - 1``
    gaps of ``pad`` between them: ``ceil(count * side / room)``, ``room`` being what the gaps leave of
    ``max_side``, so the cells plus the gaps fit. When the gaps leave no room for 1-pixel cells: 1-pixel
    cells (the tile is then as small as it can be)."""
    room = max_side - (count - 1) * pad
    if room < count:
        return max(1, side)
    return max(1, math.ceil(count * side / room))


def tile_channels(
    maps: np.ndarray,
    order: Order = "index",
    scale: Scale = "shared",
    cols: int | None = None,
    pad: int = 1,
    max_side: int = 2048,
    limit: int | None = None,
) -> Tiling:
    """All channels of ``maps`` (C, H, W) as one grid image.

    ``scale="shared"`` maps the layer's overall [min, max] to [0, 1] (channels compare with each other);
    ``"channel"`` stretches each channel to its own range (weak channels become visible). ``limit`` keeps
    the first channels after ordering. Large layers are block-averaged so the tile, gaps included, is at
    most ``max_side`` pixels wide and high (unless the gaps alone need more: then cells are 1 pixel).
    """
    arr = np.asarray(maps, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected channel maps (C, H, W), got shape {arr.shape}")
    chosen = channel_order(arr, order)
    if limit is not None:
        chosen = chosen[:limit]
    if order != "index" or len(chosen) < arr.shape[0]:  # in index order the layer itself: no 13 MB copy for vgg16
        arr = arr[chosen]
    count, height, width = arr.shape
    cols = cols or max(1, math.ceil(math.sqrt(count * height / max(width, 1))))
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    factor = max(_fit_factor(width, cols, pad, max_side), _fit_factor(height, rows, pad, max_side))
    arr = _block_mean(arr, factor)
    _, height, width = arr.shape

    if scale == "shared":
        scaled = normalize(arr)
    elif scale == "channel":
        flat = arr.reshape(count, -1)
        lo, hi = flat.min(axis=1)[:, None, None], flat.max(axis=1)[:, None, None]
        span = hi - lo
        scaled = np.where(span > 0, (arr - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32)
    else:
        raise ValueError(f"unknown scale {scale!r}: use 'shared' or 'channel'")

    grid = np.full((rows * cols, height + pad, width + pad), np.nan, dtype=np.float32)
    grid[:count, :height, :width] = scaled
    image = grid.reshape(rows, cols, height + pad, width + pad).transpose(0, 2, 1, 3)
    image = image.reshape(rows * (height + pad), cols * (width + pad))
    if pad:
        image = image[:-pad, :-pad]
    return Tiling(image=image, channels=chosen, rows=rows, cols=cols, cell=(height, width), pad=pad, shrink=factor)


def channel_stats(channel: np.ndarray) -> dict[str, float]:
    """Summary numbers of one map: min, max, mean, std and the share of positive values."""
    arr = np.asarray(channel, dtype=np.float64)
    return {
        "min": float(arr.min()),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "positive": float((arr > 0).mean()),
    }


# ------------------------------------------------------------------------------------------ overlays
def _unit_to_uint8(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) as uint8: ×255, rounded half up, clipped to 0..255 — on one float32 copy, in place."""
    scaled = np.multiply(values, 255.0, dtype=np.float32)
    scaled += 0.5
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def to_rgb_uint8(image) -> np.ndarray:
    """A PIL image or array (H, W[, C], uint8 or float in [0, 1]) as uint8 RGB."""
    arr = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    if arr.dtype != np.uint8:
        arr = _unit_to_uint8(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] < 3:  # one channel, or a built network's two: the first as grey (no colour to show)
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``size`` = (H, W)."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape == tuple(size):
        return arr
    return cv2.resize(arr, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)


def overlay(image, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """``heat`` (values in [0, 1], any size) coloured and blended over ``image`` with opacity ``alpha``."""
    base = to_rgb_uint8(image)
    heat = resize_map(np.clip(np.nan_to_num(heat), 0, 1), base.shape[:2])
    coloured = colorize(heat, cmap).astype(np.float32)
    alpha = float(np.clip(alpha, 0.0, 1.0))
    return np.clip(base.astype(np.float32) * (1 - alpha) + coloured * alpha + 0.5, 0, 255).astype(np.uint8)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (small kernels and maps stay crisp)."""
    if factor <= 1:
        return image
    arr = np.asarray(image)
    if arr.dtype in (np.uint8, np.float32) and arr.ndim in (2, 3) and (arr.ndim == 2 or arr.shape[2] <= 4):
        # OpenCV's nearest neighbour at an integer factor gives the same pixels as repeating rows and columns,
        # ~10x faster (a 460-px channel grid enlarged for the screen: ~1 ms instead of ~10 ms on every new layer).
        height, width = arr.shape[:2]
        out = cv2.resize(arr, (width * factor, height * factor), interpolation=cv2.INTER_NEAREST)
        return out.reshape(height * factor, width * factor, *arr.shape[2:])
    return np.repeat(np.repeat(arr, factor, axis=0), factor, axis=1)


def pixel_zoom(shape: tuple[int, ...], min_side: int) -> int:
    """The integer factor that brings a picture's long side to at least ``min_side`` (1 when it already is)."""
    long_side = max(int(shape[0]), int(shape[1]), 1)
    return max(1, math.ceil(min_side / long_side))


def as_pixels(image: np.ndarray, min_side: int) -> np.ndarray:
    """``image`` enlarged by an integer nearest-neighbour factor until its long side is at least ``min_side``:
    a 12×12 map stays 144 sharp squares on a projector or in a download, where a browser would smooth it."""
    return upscale(image, pixel_zoom(np.shape(image), min_side))


def to_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 RGB/grey image: ~7x smaller than PNG for colour-mapped maps and ~10x faster to
    encode, for pictures only shown on screen (downloads stay PNG, exact)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"to_jpeg expects uint8 pixels, got {arr.dtype}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV only fails on unsupported shapes
        raise ValueError(f"cannot encode an image of shape {arr.shape} as JPEG")
    return buffer.tobytes()


def indexed_png(index: np.ndarray, gaps: np.ndarray | None, cmap: str = "viridis", min_side: int = 0,
                pad_colour: tuple[int, int, int] = PAD_COLOUR) -> bytes:
    """PNG of ``colorize_index(index, gaps, cmap)`` enlarged by whole pixels to ``min_side`` (``as_pixels``), the
    same pixels stored as a palette image: the colormap's 256 colours as its palette, the gaps in a palette slot
    no map pixel uses. A third of the bytes to compress: ~3 ms and ~60 kB instead of ~11 ms and ~540 kB for a
    900-px grid of 7×7 maps. Falls back to an RGB PNG when all 256 colours are used and there are gaps."""
    index = np.asarray(index, dtype=np.uint8)
    palette = _lut(cmap).copy()
    if gaps is not None and gaps.any():
        free = np.flatnonzero(np.bincount(index[~gaps], minlength=256) == 0)
        if not free.size:
            return to_png(as_pixels(colorize_index(index, gaps, cmap, pad_colour), min_side))
        index = index.copy()
        index[gaps] = free[0]
        palette[free[0]] = pad_colour
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(as_pixels(index, min_side)))
    picture.putpalette(palette.ravel().tolist())  # "L" becomes "P": the values are palette rows
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)  # zlib's fastest: 6 costs 2-5x more for ~20 % fewer bytes
    return buffer.getvalue()


def to_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB/grey image, or of a float map in [0, 1] (saved as grey)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.nan_to_num(arr.astype(np.float32), nan=1.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - OpenCV only fails on unsupported shapes
        raise ValueError(f"cannot encode an image of shape {arr.shape} as PNG")
    return buffer.tobytes()


# ------------------------------------------------------------------------------------------ filters
def filter_images(weight: np.ndarray) -> np.ndarray:
    """First-layer kernels (O, I, kh, kw) as pictures (O, kh, kw, 3) in [0, 1].

    Each filter is stretched to its own [min, max]; three input channels are shown as RGB, any other
    number as grey (their mean).
    """
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim != 4:
        raise ValueError(f"expected conv weights (out, in, kh, kw), got shape {w.shape}")
    pictures = w.transpose(0, 2, 3, 1) if w.shape[1] == 3 else np.repeat(w.mean(axis=1)[..., None], 3, axis=3)
    flat = pictures.reshape(pictures.shape[0], -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = (pictures - lo[:, None, None, None]) / span[:, None, None, None]
    out[hi <= lo] = 0.5
    return out.astype(np.float32)


def filter_grid(weight: np.ndarray, zoom: int | None = None, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """All first-layer filters as one uint8 RGB grid, each kernel enlarged ``zoom`` times (default: ~24 px)."""
    pictures = filter_images(weight)
    count, kh, kw, _ = pictures.shape
    zoom = zoom or max(1, 24 // max(kh, kw))
    cells = np.stack([upscale(p, zoom) for p in pictures])
    ch, cw = cells.shape[1:3]
    cols = cols or max(1, math.ceil(math.sqrt(count)))
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    pad_px = max(0, pad)
    grid = np.ones((rows * cols, ch + pad_px, cw + pad_px, 3), dtype=np.float32)
    grid[:count, :ch, :cw] = cells
    image = grid.reshape(rows, cols, ch + pad_px, cw + pad_px, 3).transpose(0, 2, 1, 3, 4)
    image = image.reshape(rows * (ch + pad_px), cols * (cw + pad_px), 3)
    if pad_px:
        image = image[:-pad_px, :-pad_px]
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def input_picture(x, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> np.ndarray:
    """The preprocessed model input ``[1, C, H, W]`` (or ``[C, H, W]``) as a uint8 RGB picture.

    Overlays must sit on the image *as the network saw it* (resized and cropped). Normalisation is undone
    with ``mean``/``std`` when given; otherwise values already in [0, 1] are used as they are, ImageNet
    statistics are tried next (every torchvision preset uses them), and a min-max stretch is the fallback.
    """
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
    if arr.ndim == 4:
        arr = arr[0]
    channels = arr.shape[0]

    def undo(m: tuple[float, ...], s: tuple[float, ...]) -> np.ndarray:
        m_arr = np.asarray(m, dtype=np.float32).reshape(-1, 1, 1)[:channels]
        s_arr = np.asarray(s, dtype=np.float32).reshape(-1, 1, 1)[:channels]
        return arr * s_arr + m_arr

    if mean is not None and std is not None:
        picture = undo(mean, std)
    elif arr.min() >= -1e-3 and arr.max() <= 1 + 1e-3:
        picture = arr
    else:
        picture = undo(IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else arr
        if picture.min() < -0.05 or picture.max() > 1.05:
            picture = normalize(arr)
    # Rounded on the contiguous channel planes, then interleaved (it runs in every analysis of a new image).
    return to_rgb_uint8(_unit_to_uint8(picture).transpose(1, 2, 0))
