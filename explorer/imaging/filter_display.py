"""Pictures of filter results (``explorer.imaging.filters``) that do not hide their sign or range.

A filter's output is float64 and may be negative or exceed 255 (Sobel, Laplacian, sharpen), so showing it
needs a stated mapping: ``display_mapping`` picks one ("diverging" around 0, "abs", "clip" to 0..255 or
"direction" for angles, on plotly's cyclic "Twilight" scale) and keeps the true value range beside the picture. Also here: plotly figures of
results, kernels and small number grids (convolution by hand), and PNG / ``.npy`` bytes for downloads.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
import plotly.colors
import plotly.graph_objects as go

from explorer.imaging.filters import as_image, as_kernel

DISPLAY_MODES: tuple[str, ...] = ("auto", "diverging", "abs", "clip", "direction")
# "diverging" and "abs" saturate at this percentile of |value|, not at the maximum: a photo's Sobel output has a
# few values near 1000 and most edges near 100, which a max-scaled picture draws almost white (faint).
SATURATE_PERCENTILE = 95.0
# Channel counts a result may have to be drawn: grey, RGB, or RGBA-like (the first three drawn).
DISPLAY_CHANNELS: tuple[int, ...] = (1, 3, 4)


def value_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of a result: the numbers to state beside any picture of it."""
    arr = np.asarray(values, dtype=np.float64)
    return float(np.min(arr)), float(np.max(arr))


def downscale_for_display(values: np.ndarray, max_side: int = 512,
                          circular: bool = False) -> tuple[np.ndarray, float]:
    """A smaller copy for drawing only (area averaging); returns it and the scale factor (<= 1).

    ``circular``: the values are angles in degrees (a "direction" result, -180..180): they are averaged as
    directions, the angle of the area-averaged (cos, sin), since the plain mean of 179° and -179° is 0°, the
    opposite direction. Any number of channels (OpenCV resizes at most 4 at once: more go one by one).

    The computation is always done at full resolution; state the full-resolution value range, not the
    range of this copy (averaging shrinks extremes).
    """
    arr = np.asarray(values)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"can only downscale a non-empty (H, W) or (H, W, C) array, got shape {arr.shape}")
    h, w = arr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return arr, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if circular:
        radians = np.radians(arr.astype(np.float64))
        cos, sin = _area_resize(np.cos(radians), size), _area_resize(np.sin(radians), size)
        return np.degrees(np.arctan2(sin, cos)), scale
    return _area_resize(arr.astype(np.float64), size), scale


def _area_resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2's area resampling to ``size`` (w, h), keeping a channel axis if there was one."""
    if arr.ndim == 3 and arr.shape[2] > 4:  # cv2.resize's INTER_AREA takes at most 4 channels
        return np.stack([cv2.resize(arr[..., c], size, interpolation=cv2.INTER_AREA)
                         for c in range(arr.shape[2])], axis=-1)
    small = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    if arr.ndim == 3 and small.ndim == 2:
        small = small[..., None]
    return small


# Negative -> blue, 0 -> near white, positive -> red (ColorBrewer RdBu ends, zero at the centre).
DIVERGING_COLORSCALE = [[0.0, "rgb(33,102,172)"], [0.5, "rgb(247,247,247)"], [1.0, "rgb(178,24,43)"]]
_DIV_LOW, _DIV_MID, _DIV_HIGH = (np.array(c, dtype=np.float64) for c in ((33, 102, 172), (247, 247, 247), (178, 24, 43)))


# Angles (Sobel direction) on a cyclic scale, -180° and 180° the same colour: plotly's "Twilight", as its own stops.
# The heatmap on screen gets these stops and the PNG (``direction_rgb``) interpolates the same ones linearly in RGB,
# as plotly.js does, so both show one table (a linear grey ramp drew -179° black and +179° white).
DIRECTION_COLORSCALE: tuple[tuple[float, str], ...] = tuple(
    (float(position), colour) for position, colour in plotly.colors.get_colorscale("Twilight"))
_DIRECTION_STOPS = np.array([position for position, _ in DIRECTION_COLORSCALE])
_DIRECTION_RGB = np.array([plotly.colors.hex_to_rgb(colour) if colour.startswith("#")
                           else plotly.colors.unlabel_rgb(colour) for _, colour in DIRECTION_COLORSCALE], np.float64)


def direction_rgb(angles: np.ndarray) -> np.ndarray:
    """Angles in degrees (-180..180, clipped) as float RGB 0-255 on ``DIRECTION_COLORSCALE``, shape (..., 3)."""
    position = (np.clip(np.asarray(angles, dtype=np.float64), -180.0, 180.0) + 180.0) / 360.0
    return np.stack([np.interp(position, _DIRECTION_STOPS, _DIRECTION_RGB[:, c]) for c in range(3)], axis=-1)


def channel_panels(planes: list[np.ndarray], gap_value: float = np.nan) -> np.ndarray:
    """(H, W) planes side by side, left to right, ``gap_value`` columns between them (a gap ~1/16 of a panel)."""
    h, w = planes[0].shape[:2]
    gap = np.full((h, max(1, w // 16), *planes[0].shape[2:]), gap_value, dtype=np.float64)
    parts: list[np.ndarray] = []
    for i, plane in enumerate(planes):
        parts += [gap] if i else []
        parts.append(np.asarray(plane, dtype=np.float64))
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class DisplayMapping:
    """How a result is turned into a picture, with the true numbers beside it."""

    mode: str  # "diverging", "abs", "clip" or "direction"
    rgb: np.ndarray  # (H, W, 3) uint8: the picture (for PNG and for colour results); see ``display_mapping``
    # values drawn with ``colorscale``: (H, W) for grey results, the channel panels (NaN gaps) of a colour
    # "direction" result; None for other colour results (drawn as ``rgb``)
    scalar: np.ndarray | None
    zmin: float
    zmax: float
    colorscale: object  # plotly colorscale for ``scalar``
    value_min: float  # of the values given (full resolution if not downscaled before)
    value_max: float
    clipped_fraction: float  # share of values outside [zmin, zmax], drawn at the end colours


def saturation_limit(values: np.ndarray, percentile: float = SATURATE_PERCENTILE) -> float:
    """The |value| at which "diverging" and "abs" pictures reach full colour: the ``percentile`` of |value|
    (a value that occurs: numpy's "higher" method), or max |value| when that is 0 (sparse results: a lone
    edge must not vanish); 1.0 for an all-zero result."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    if magnitude.size == 0:
        return 1.0
    limit = float(np.percentile(magnitude, percentile, method="higher"))
    return limit or float(magnitude.max()) or 1.0


def choose_display_mode(values: np.ndarray) -> str:
    """"clip" when every value is already a valid pixel (0-255), "diverging" when some are negative,
    otherwise "abs" (scaled to the maximum)."""
    vmin, vmax = value_range(values)
    if vmin >= 0.0 and vmax <= 255.0:
        return "clip"
    return "diverging" if vmin < 0.0 else "abs"


def display_mapping(values: np.ndarray, mode: str = "auto", limits_from: np.ndarray | None = None) -> DisplayMapping:
    """Map a result to a picture without hiding its sign or range.

    - "diverging": 0 is white, -m blue, +m red with m = ``saturation_limit`` (the 95th percentile of |value|;
      beyond it full colour, their share is ``clipped_fraction``). Colour results are drawn channel by channel
      instead: 127.5 + 127.5·v/m, so 0 is mid grey, +m full brightness and -m dark (no blue or red);
    - "abs": |value| from 0 (black) to m (white), m as above;
    - "clip": values as pixels, clipped to 0..255 (the clipped share is reported);
    - "direction": angles -180..180 on the cyclic ``DIRECTION_COLORSCALE`` (-180° and 180° the same colour).
      A colour result shows its first three channels (R, G, B) side by side, left to right, each on that
      scale, with white gaps (``scalar`` holds them with NaN gaps, for the heatmap): three angles do not make
      one colour.

    ``limits_from``: take the mode, colour limits, range and clipped share from this array instead (the
    full-resolution result when ``values`` is a downscaled copy for drawing).
    """
    arr = as_image(values)
    ref = arr if limits_from is None else as_image(limits_from)
    for name, a in (("the result", arr), ("limits_from", ref)):
        if a.ndim == 3 and a.shape[2] not in DISPLAY_CHANNELS:
            raise ValueError(f"{name} has {a.shape[2]} channels; a picture can be made of 1 (grey), 3 (RGB) or "
                             "4 (the first three drawn as RGB) channels")
    if mode == "auto":
        mode = choose_display_mode(ref)
    if mode not in DISPLAY_MODES[1:]:
        raise ValueError(f"unknown display mode {mode!r}: use one of {', '.join(DISPLAY_MODES)}")
    vmin, vmax = value_range(ref)
    grey = arr.ndim == 2 or arr.shape[2] == 1
    plane = arr if arr.ndim == 2 else (arr[..., 0] if grey else None)
    clipped = 0.0
    if mode in ("diverging", "abs"):
        m = saturation_limit(ref)
        clipped = float(np.mean(np.abs(ref) > m))
    if mode == "diverging":
        zmin, zmax, scale = -m, m, DIVERGING_COLORSCALE
        t = np.clip(arr / m, -1.0, 1.0)
        if grey:
            t2 = t if t.ndim == 2 else t[..., 0]
            neg, pos = np.clip(-t2, 0, 1)[..., None], np.clip(t2, 0, 1)[..., None]
            rgb = _DIV_MID + neg * (_DIV_LOW - _DIV_MID) + pos * (_DIV_HIGH - _DIV_MID)
        else:
            rgb = 127.5 + 127.5 * t
    elif mode == "abs":
        zmin, zmax, scale = 0.0, m, "gray"
        rgb = 255.0 * np.minimum(np.abs(arr) / m, 1.0)
        plane = np.abs(plane) if plane is not None else None
    elif mode == "clip":
        zmin, zmax, scale = 0.0, 255.0, "gray"
        clipped = float(np.mean((ref < 0) | (ref > 255)))
        rgb = np.clip(arr, 0, 255)
    else:  # direction
        zmin, zmax, scale = -180.0, 180.0, DIRECTION_COLORSCALE
        if not grey:
            plane = channel_panels([arr[..., c] for c in range(3)])
        rgb = direction_rgb(plane)
        rgb[np.isnan(plane)] = 255.0  # the gaps between channel panels
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    elif rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    elif rgb.shape[2] > 3:
        rgb = rgb[..., :3]
    rgb8 = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return DisplayMapping(mode, rgb8, None if plane is None else np.asarray(plane, np.float64), zmin, zmax,
                          scale, vmin, vmax, clipped)


def result_figure(
    values: np.ndarray, mode: str = "auto", max_side: int = 384, title: str | None = None, height: int = 360
) -> tuple[go.Figure, DisplayMapping]:
    """A plotly figure of a result (downscaled for drawing only) and its mapping: the mapping's picture is
    the drawn copy, its mode, colour limits, value range and clipped share come from the full result.

    Grey results are a heatmap with a colour bar in real units (hover shows the value), and so are colour
    "direction" results (their channels side by side); other colour results are an RGB image.
    """
    full = as_image(values)
    # angles average as directions (±179° → ±180°, not 0°); the heatmap's hover shows these drawn values
    small, _ = downscale_for_display(full, max_side, circular=mode == "direction")
    # Colour limits, range and clipped share come from the full-resolution values (averaging shrinks them).
    mapping = display_mapping(small, mode, limits_from=full)
    fig = go.Figure()
    if mapping.scalar is not None:
        fig.add_trace(go.Heatmap(
            z=mapping.scalar.astype(np.float32), zmin=mapping.zmin, zmax=mapping.zmax,
            colorscale=mapping.colorscale, colorbar={"thickness": 12}, hovertemplate="x=%{x} y=%{y}: %{z:.4g}<extra></extra>",
        ))
        fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
        fig.update_xaxes(constrain="domain")
    else:
        fig.add_trace(go.Image(z=mapping.rgb, hoverinfo="skip"))
    fig.update_layout(margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0}, height=height, title=title)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    return fig, mapping


def kernel_figure(kernel: np.ndarray, title: str | None = None, height: int = 220) -> go.Figure:
    """A small annotated heatmap of kernel weights (diverging, 0 = white)."""
    k = as_kernel(kernel)
    m = float(np.max(np.abs(k))) or 1.0
    text = [[f"{v:.3g}" for v in row] for row in k]
    fig = go.Figure(go.Heatmap(
        z=k, zmin=-m, zmax=m, colorscale=DIVERGING_COLORSCALE, text=text, texttemplate="%{text}",
        showscale=False, hovertemplate="row %{y}, col %{x}: %{z:.4g}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0}, height=height, title=title)
    return fig


def grid_figure(values: np.ndarray, highlight: tuple[int, int, int, int] | None = None,
                title: str | None = None, height: int = 260, diverging: bool = False) -> go.Figure:
    """A small grid of numbers (patch, products, output) with an optional highlighted rectangle
    ``(top, left, rows, cols)``. ``diverging``: colour around 0 (white) for signed values."""
    v = np.asarray(values, dtype=np.float64)
    text = [[f"{x:.3g}" for x in row] for row in v]
    if diverging:
        m = float(np.max(np.abs(v))) or 1.0
        colours = {"colorscale": DIVERGING_COLORSCALE, "zmin": -m, "zmax": m}
    else:
        colours = {"colorscale": "Blues"}
    fig = go.Figure(go.Heatmap(z=v, text=text, texttemplate="%{text}", showscale=False, **colours,
                               hovertemplate="row %{y}, col %{x}: %{z:.4g}<extra></extra>"))
    if highlight is not None:
        top, left, rows, cols = highlight
        fig.add_shape(type="rect", x0=left - 0.5, x1=left + cols - 0.5, y0=top - 0.5, y1=top + rows - 0.5,
                      line={"color": "rgb(214,39,40)", "width": 3})
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0}, height=height, title=title)
    return fig


def to_png(values: np.ndarray, mode: str = "auto") -> bytes:
    """PNG bytes of the display mapping of a full-resolution result (the colours of the screen's figure: a
    "direction" result through the same cyclic ``DIRECTION_COLORSCALE``, colour results' channels side by side)."""
    rgb = display_mapping(values, mode).rgb
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 only fails on impossible shapes
        raise ValueError("could not encode the result as PNG")
    return buf.tobytes()


def to_npy(values: np.ndarray) -> bytes:
    """The raw float64 result as ``.npy`` bytes (for ``numpy.load``)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(values, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()
