"""Plotly figures for receptive fields and conv arithmetic. Text comes in as arguments (pages translate)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.receptive.convarith import ConvArithmetic, StackComparison
from explorer.receptive.reading import FieldBox

# Cell categories of the kernel-position picture. UNVISITED is input the kernel never reads (red); padding it never
# reads is UNVISITED_PADDING (dark grey), so "the last rows are never visited" shows even when those rows are padding.
INPUT, PADDING, TAP, GAP, UNVISITED, UNVISITED_PADDING = 0, 1, 2, 3, 4, 5
_CELL_COLOURS = ["#dbe9f6", "#e6e6e6", "#f28e2b", "#fde0c5", "#f4b6b7", "#9e9e9e"]
# The largest padded side the kernel-position picture is drawn for: past it a cell is a few screen pixels wide and
# the picture (and its per-cell hover text) only grows; the page gives the numbers without it.
MAX_GRID_SIDE = 64
_BOX_COLOUR = "#ff2d2d"


def _discrete_scale(colours: list[str]) -> list[list]:
    n = len(colours)
    scale: list[list] = []
    for i, colour in enumerate(colours):
        scale.append([i / n, colour])
        scale.append([(i + 1) / n, colour])
    return scale


def kernel_grid(arith: ConvArithmetic, index: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The padded input as cell categories for window ``index`` (raster order over the 2-D output),
    and that window's (row, col) in the output. Uses the same N, F, P, S, D on both axes."""
    out = arith.output
    if not 0 <= index < out * out:
        raise ValueError(f"window {index} does not exist: there are {out * out}")
    row, col = divmod(index, out)
    size = arith.padded
    visited = np.zeros(size, dtype=bool)
    for window in range(out):  # the taps, not the span: with dilation the kernel skips the cells between them
        visited[list(arith.taps(window))] = True
    is_pad = np.array([arith.is_padding(c) for c in range(size)])
    grid = np.full((size, size), INPUT, dtype=int)
    unvisited = ~visited[:, None] | ~visited[None, :]
    padding = is_pad[:, None] | is_pad[None, :]
    grid[unvisited] = UNVISITED
    grid[padding] = PADDING
    grid[padding & unvisited] = UNVISITED_PADDING
    r0, c0 = arith.positions[row], arith.positions[col]
    span = arith.effective_kernel
    grid[r0:r0 + span, c0:c0 + span] = GAP
    taps_r, taps_c = arith.taps(row), arith.taps(col)
    grid[np.ix_(taps_r, taps_c)] = TAP
    return grid, (row, col)


def kernel_positions_figure(arith: ConvArithmetic, index: int, *, input_title: str = "padded input",
                            output_title: str = "output", cell_names: Mapping[int, str] | None = None) -> go.Figure:
    """Where the kernel lands for one output position (like conv_arithmetic's animations, one frame)."""
    names = {INPUT: "input", PADDING: "padding (0)", TAP: "kernel tap", GAP: "skipped (dilation)",
             UNVISITED: "never visited", UNVISITED_PADDING: "padding, never visited"} | dict(cell_names or {})
    grid, (row, col) = kernel_grid(arith, index)
    out = arith.output
    output = np.zeros((out, out), dtype=int)
    output[row, col] = TAP
    text_in = np.vectorize(names.get)(grid)
    text_out = np.where(output == TAP, names[TAP], "")
    fig = make_subplots(rows=1, cols=2, column_widths=[arith.padded, max(out, 1)], horizontal_spacing=0.08,
                        subplot_titles=(f"{input_title} ({arith.padded}×{arith.padded})", f"{output_title} ({out}×{out})"))
    scale = _discrete_scale(_CELL_COLOURS)
    common = dict(zmin=-0.5, zmax=len(_CELL_COLOURS) - 0.5, colorscale=scale, showscale=False, xgap=1, ygap=1,
                  hovertemplate="row %{y}, col %{x}: %{text}<extra></extra>")
    fig.add_trace(go.Heatmap(z=grid, text=text_in, **common), row=1, col=1)
    fig.add_trace(go.Heatmap(z=np.where(output == TAP, TAP, INPUT), text=text_out, **common), row=1, col=2)
    for c, cells in ((1, arith.padded), (2, out)):
        ticks = dict(dtick=1) if cells <= 16 else dict(dtick=max(1, cells // 8))
        # Square cells by shrinking the plot area (constrain="domain"), not by widening the axis range: with
        # the default, a 9-cell axis ran from −5 to 14, mostly empty.
        cell_range = [-0.5, cells - 0.5]
        fig.update_yaxes(range=cell_range[::-1], scaleanchor=f"x{'' if c == 1 else c}", constrain="domain",
                         constraintoward="top", showgrid=False, zeroline=False, row=1, col=c, **ticks)
        fig.update_xaxes(range=cell_range, constrain="domain", showgrid=False, zeroline=False, side="top",
                         row=1, col=c, **ticks)
    # The column numbers sit above each grid (side="top"): lift the subplot titles above them.
    fig.update_annotations(yshift=26)
    # A legend made of invisible markers, one per cell category that is on screen.
    present = sorted(set(np.unique(grid)) | {TAP})
    for cat in present:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=names[cat],
                                 marker=dict(size=12, symbol="square", color=_CELL_COLOURS[cat])))
    fig.update_layout(height=440, margin=dict(l=10, r=10, t=80, b=10), plot_bgcolor="white",
                      legend=dict(orientation="h", y=-0.05))
    return fig


def stack_diagram_figure(comparison: StackComparison, *, input_label: str = "input", layer_label: str = "layer",
                         stack_title: str = "stack", big_title: str = "one big kernel") -> go.Figure:
    """One row of units per layer; shaded: what the top centre unit sees (its field grows by K − 1 a layer)."""
    L, K, big = comparison.layers, comparison.kernel, comparison.big_kernel
    width = max(comparison.stack_field, big)

    def cone(levels: int, kernel: int) -> np.ndarray:
        z = np.zeros((levels + 1, width))
        for level in range(levels + 1):  # level 0 = input: the top unit's field is 1 + (levels − level)(K − 1) wide
            seen = 1 + (levels - level) * (kernel - 1)
            start = (width - seen) // 2
            z[level, start:start + seen] = 1
        return z

    left, right = cone(L, K), cone(1, big)
    labels_left = [input_label] + [f"{layer_label} {i}" for i in range(1, L + 1)]
    labels_right = [input_label, f"{layer_label} 1"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(stack_title, big_title), horizontal_spacing=0.12)
    for col, (z, labels) in enumerate(((left, labels_left), (right, labels_right)), start=1):
        fig.add_trace(go.Heatmap(z=z, y=labels, zmin=0, zmax=1, showscale=False, xgap=2, ygap=4,
                                 colorscale=[[0, "#eeeeee"], [1, "#4e79a7"]],
                                 hovertemplate="%{y}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(showticklabels=False, showgrid=False, row=1, col=col)
        fig.update_yaxes(showgrid=False, row=1, col=col)
    fig.update_layout(height=120 + 40 * (L + 1), margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white")
    return fig


def growth_figure(curves: Mapping[str, pd.DataFrame], image_size: int | tuple[int, int], *, x_title: str = "depth",
                  y_title: str = "receptive field (pixels)", image_label: str = "image size") -> go.Figure:
    """Field size against depth, one line per model (frames from ``receptive.growth_by_depth``: the larger of a
    field's height and width). ``image_size``: a side, or (H, W), drawn as one dashed line, or two when H ≠ W."""
    fig = go.Figure()
    for name, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve["depth"], y=curve["rf"], mode="lines+markers", name=name,
                                 text=curve["layer"], line_shape="hv",
                                 hovertemplate=f"{name}<br>%{{text}}<br>%{{x}}: %{{y}} px<extra></extra>"))
    height, width = (int(v) for v in image_size) if isinstance(image_size, (tuple, list)) else (image_size, image_size)
    lines = [(height, f"{image_label} = {height}")] if height == width else \
        [(height, f"{image_label} = {height} (H)"), (width, f"{image_label} = {width} (W)")]
    for side, text in lines:
        fig.add_hline(y=side, line_dash="dash", line_color="#555555", annotation_text=text,
                      annotation_position="top left" if side == max(height, width) else "bottom left")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=x_title, yaxis_title=y_title,
                      hovermode="closest", legend=dict(orientation="h", y=-0.2))
    return fig


def _box_shapes(fig: go.Figure, box: FieldBox | None, row: int | None = None, col: int | None = None) -> None:
    if box is None:
        return
    x0, y0, x1, y1 = box.rectangle()
    kwargs = {} if row is None else dict(row=row, col=col)
    fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=_BOX_COLOUR, width=2), **kwargs)
    if box.is_clipped:  # the part of the field that lies in the padding, dashed
        fig.add_shape(type="rect", x0=box.left - 0.5, y0=box.top - 0.5, x1=box.right + 0.5, y1=box.bottom + 0.5,
                      line=dict(color=_BOX_COLOUR, width=1, dash="dot"), **kwargs)


def _field_ranges(fig: go.Figure, box: FieldBox | None, h: int, w: int) -> None:
    """Axes over the image plus the part of the field in the padding (the dotted box), at most half the image
    beyond each edge, so the caption's "dotted" part is on screen while the image stays readable."""
    top, left, bottom, right = -0.05 * h, -0.05 * w, 1.05 * h, 1.05 * w
    if box is not None and box.is_clipped:
        top, left = max(min(top, box.top - 1), -0.5 * h), max(min(left, box.left - 1), -0.5 * w)
        bottom, right = min(max(bottom, box.bottom + 1), 1.5 * h), min(max(right, box.right + 1), 1.5 * w)
    fig.update_xaxes(range=[left - 0.5, right - 0.5], showgrid=False)
    fig.update_yaxes(range=[bottom - 0.5, top - 0.5], showgrid=False, scaleanchor="x")


def image_box_figure(image: np.ndarray, box: FieldBox | None, *, title: str = "") -> go.Figure:
    """The (preprocessed) input image with one unit's receptive field drawn as a box."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    fig = go.Figure(go.Image(z=image, hoverinfo="x+y"))
    _box_shapes(fig, box)
    h, w = image.shape[:2]
    _field_ranges(fig, box, h, w)
    fig.update_layout(title=title, height=420, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def erf_figure(erf: np.ndarray, box: FieldBox | None, *, title: str = "", colorbar_title: str = "|∂y/∂x|") -> go.Figure:
    """The effective receptive field as a heatmap, with the theoretical field's box on top."""
    fig = go.Figure(go.Heatmap(z=erf, colorscale="Viridis", colorbar=dict(title=colorbar_title, exponentformat="e"),
                               hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>"))  # "e": not SI "1p…4p"
    _box_shapes(fig, box)
    h, w = erf.shape
    _field_ranges(fig, box, h, w)
    fig.update_layout(title=title, height=420, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def display_image(x: "np.ndarray") -> np.ndarray:
    """A ``[C, H, W]`` (or ``[1, C, H, W]``) model input stretched to uint8 ``H×W×3`` for display."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 4:
        arr = arr[0]
    arr = np.moveaxis(arr, 0, -1)
    lo = arr.min(axis=(0, 1), keepdims=True)
    hi = arr.max(axis=(0, 1), keepdims=True)
    arr = (arr - lo) / np.where(hi - lo > 0, hi - lo, 1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return (arr[..., :3] * 255).round().astype(np.uint8)
