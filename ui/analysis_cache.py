"""Cached computations of the Feature-map (pages/feature_maps.py) and Grad-CAM (pages/gradcam.py) pages.

One forward pass per (model name, weights key, image hash, input shape, device): ``shared_pass`` records
every layer call, the class scores and Grad-CAM of the default layer for the top-1 class, and returns
plain numpy. Everything the pages redraw when a widget changes (another layer, channel, order, scale,
opacity, colormap) is derived from it by small cached functions and never runs the network again.
Grad-CAM of every layer for a class (one more pass, cached per class) or another captum method computes more.

The caches are ``st.cache_resource`` (``shared``), not ``st.cache_data``: ``cache_data`` unpickles a copy on
every hit, which cost more than the whole rerun budget (a vgg16 pass is ~110 MB; a plotly figure is
re-validated when unpickled). A shared value is one object for every session, so ``shared`` makes every
numpy array in it read-only: a page that tried to draw into one fails loudly instead of changing what
other students see.

Session-state keys: Feature maps ``maps_block``, ``maps_layer``, ``maps_kind``, ``maps_order``,
``maps_scale``, ``maps_cmap``, ``maps_channel``, ``maps_alpha``; Grad-CAM ``cam_layer``, ``cam_class``,
``cam_alpha``, ``cam_cmap``, ``cam_methods``, ``cam_compare``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from explorer.analysis import ANALYSIS_BUDGET_BYTES as DEFAULT_ANALYSIS_BUDGET
from explorer.analysis import page_analysis

from ui.common import spinner_once  # noqa: F401  (the pages take it from here too)

# Key = (model name, weights key, input shape, device) from ui.common.model_cache_key, plus the image hash.
Key = tuple
# Activations kept by one shared pass (a module attribute, so that a test can lower it).
ANALYSIS_BUDGET_BYTES = DEFAULT_ANALYSIS_BUDGET
SIDE_PICTURE_SIDE = 512  # pictures shown in half the page's width


def frozen(value: Any) -> Any:
    """``value`` with every numpy array in it (in dicts, lists, tuples and dataclasses) made read-only."""
    from explorer.core import arrays_in

    for array in arrays_in(value):
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return value


def shared(max_entries: int | None = None):
    """``st.cache_resource`` without a spinner whose values are ``frozen``: cached once, never copied."""
    import functools

    def decorate(func):
        @functools.wraps(func)
        def compute(*args, **kwargs):
            return frozen(func(*args, **kwargs))

        return st.cache_resource(max_entries=max_entries, show_spinner=False)(compute)

    return decorate


def cache_key(loaded: Any, image_hash: str) -> Key:
    from ui.common import model_cache_key

    return (*model_cache_key(loaded), image_hash)


@st.cache_resource(show_spinner=False)
def pass_store() -> Any:
    """The analyses of every session, least recently used dropped first beyond a byte budget
    (``explorer.core.budget_cache``; ``EXPLORER_ANALYSIS_CACHE_MB``)."""
    from explorer.core import BudgetCache, default_budget_bytes

    return BudgetCache(default_budget_bytes())


def shared_pass(key: Key, _loaded: Any, _image: Any) -> dict[str, Any]:
    """The one forward pass per key (big: every layer's output), kept while the byte budget allows: a class
    of thirty, each with their own photo, keeps thirty passes instead of recomputing on every click."""
    def compute() -> dict[str, Any]:
        from explorer.analysis import reserved_pass

        # The per-request and server-wide memory budgets (explorer.analysis.budget, explorer.core.memory_gate).
        with reserved_pass(_loaded.model, _loaded.input_shape, "shared", max_bytes=ANALYSIS_BUDGET_BYTES):
            return frozen(page_analysis(_loaded, _image, max_bytes=ANALYSIS_BUDGET_BYTES))

    return pass_store().get_or_compute(key, compute)


@shared(max_entries=64)
def overview(key: Key, _loaded: Any, _image: Any) -> dict[str, Any]:
    """The small part of the shared pass every rerun needs: calls, probabilities, CAMs, picture, filters."""
    full = shared_pass(key, _loaded, _image)
    return {k: v for k, v in full.items() if k != "activations"}


@shared(max_entries=64)
def layer_maps(key: Key, layer: str, _loaded: Any, _image: Any) -> np.ndarray | None:
    """One recorded tensor (C, H, W) of the shared pass (captured alone when the budget left it out)."""
    full = shared_pass(key, _loaded, _image)
    if layer in full["activations"] or layer not in full["skipped"]:
        return full["activations"].get(layer)
    from explorer.analysis import capture

    return capture(_loaded.model, _loaded.preprocess(_image), [layer])[layer][0].float().numpy()


@shared(max_entries=64)
def feature_activation_pair(key: Key, layer: str, _loaded: Any, _image: Any) -> tuple[str, str | None]:
    """(feature map, activation map) names for ``layer`` (see ``explorer.analysis.activations.activation_pair``)."""
    from explorer.analysis import CallInfo, activation_pair

    full = shared_pass(key, _loaded, _image)
    calls = [CallInfo(**c) for c in full["calls"]]
    return activation_pair(calls, layer, full["activations"])


@shared(max_entries=64)
def feature_activation_chain(key: Key, layer: str, _loaded: Any, _image: Any) -> tuple[Any, ...]:
    """The steps from ``layer``'s output to its activation as the network computes them (conv -> BN ->
    + shortcut -> ReLU; see ``explorer.analysis.activation_chain``)."""
    from explorer.analysis import CallInfo, activation_chain

    full = shared_pass(key, _loaded, _image)
    calls = [CallInfo(**c) for c in full["calls"]]
    return tuple(activation_chain(calls, layer, full["activations"]))


@shared(max_entries=48)
def layer_tiling(key: Key, layer: str, order: str, scale: str, _loaded: Any, _image: Any):
    """The layer's channels in one grid (``explorer.imaging.viz.Tiling``, values in [0, 1]) and its colormap rows,
    before any colormap."""
    from explorer.imaging import DISPLAY_TILE_SIDE, channel_order, colour_index, tile_channels

    maps = layer_maps(key, layer, _loaded, _image)
    # Drawn at most 1024 px (the page shows it ~900 px wide): a 1799² vgg16 tile costs ~100 ms of figure
    # serialisation on every rerun. The download is full resolution (``full_tile_png``).
    tiling = tile_channels(maps, order=order, scale=scale, max_side=DISPLAY_TILE_SIDE)
    index, gaps = colour_index(tiling.image)  # so another colormap is one table lookup
    # The five strongest channels by mean, whatever the grid's order (the caption names them): once per layer
    strongest = tiling.channels[:5] if order == "mean" else channel_order(maps, "mean")[:5]
    return {"tiling": tiling, "index": index, "gaps": gaps, "strongest": [int(c) for c in strongest]}


@shared(max_entries=48)
def tile(key: Key, layer: str, order: str, scale: str, cmap: str, _loaded: Any, _image: Any) -> dict[str, Any]:
    """The layer's channels tiled and coloured (as a JPEG and the figure embedding it) with the grid layout;
    another colormap re-colours the cached grid without tiling again."""
    grid = layer_tiling(key, layer, order, scale, _loaded, _image)
    tiling = grid["tiling"]
    # Encoded once here, not on every rerun; the figure embeds the same bytes.
    shown, picture, kind = screen_picture(grid["index"], grid["gaps"], cmap)
    return {"picture": picture, "format": kind, "figure": image_figure(None, encoded=(picture, kind), shape=shown),
            "strongest": grid["strongest"],
            "channels": tiling.channels, "rows": tiling.rows, "cols": tiling.cols, "shrink": tiling.shrink}


SMALL_PICTURE_SIDE = 256  # up to this long side a picture is sent as PNG: exact pixels, blocks compress well


def screen_picture(index: np.ndarray, gaps: np.ndarray | None, cmap: str) -> tuple[tuple[int, int], bytes, str]:
    """A coloured grid for the screen, from its colour index (``explorer.imaging.colour_index``).

    Small grids (a 28×28 input's maps) are enlarged by whole pixels to ``SCREEN_MIN_SIDE``, so the browser does not
    smooth them into a blur, and sent as a palette PNG: exact pixels, ~3 ms. Larger ones are JPEG (~7x smaller for
    big grids), enlarged only when the browser would otherwise stretch them 2x or more: doubling a 798-px grid to
    1596 px cost ~9 ms more to encode, and looks the same once the browser fits it to the page. Returns
    ((height, width) as sent, bytes, "png"|"jpeg")."""
    from explorer.imaging import SCREEN_MIN_SIDE, colorize_index, indexed_png, pixel_zoom, to_jpeg, upscale

    long_side = max(index.shape[:2])
    zoom = pixel_zoom(index.shape, SCREEN_MIN_SIDE) if long_side * 2 <= SCREEN_MIN_SIDE else 1
    shape = (index.shape[0] * zoom, index.shape[1] * zoom)
    if long_side <= SMALL_PICTURE_SIDE:
        return shape, indexed_png(index, gaps, cmap, SCREEN_MIN_SIDE), "png"
    return shape, to_jpeg(upscale(colorize_index(index, gaps, cmap), zoom)), "jpeg"


@shared(max_entries=4)
def full_tile_png(key: Key, layer: str, order: str, scale: str, cmap: str, _loaded: Any, _image: Any) -> bytes:
    """The channel grid at full resolution as PNG (computed when the download is clicked), enlarged by whole
    pixels to at least ``DOWNLOAD_MIN_SIDE`` on its long side (a 28×28 input's grid is ~40 px otherwise)."""
    from explorer.imaging import DOWNLOAD_MIN_SIDE, colour_index, indexed_png, tile_channels

    maps = layer_maps(key, layer, _loaded, _image)
    return indexed_png(*colour_index(tile_channels(maps, order=order, scale=scale).image), cmap, DOWNLOAD_MIN_SIDE)


@shared(max_entries=48)
def first_layer_pictures(key: Key, cols: int, cmap: str, _loaded: Any, _image: Any,
                         same_as_grid: bool = False) -> dict[str, Any]:
    """The first conv's kernels (PNG) and the maps they produce (``maps`` bytes in ``maps_format``, see
    ``screen_picture``), encoded for ``st.image``.

    ``same_as_grid``: the page's channel grid shows the first conv in index order on one shared scale (its
    default), so the maps picture is that grid's JPEG, not a second tiling."""
    from explorer.imaging import colour_index, tile_channels

    info = overview(key, _loaded, _image)
    grid = tile(key, info["first_conv"], "index", "shared", cmap, _loaded, _image) if same_as_grid else None
    if grid is not None and grid["cols"] == cols:
        maps, maps_format = grid["picture"], grid["format"]
    else:
        first = layer_maps(key, info["first_conv"], _loaded, _image)
        # Shown half the page wide: 512 px is enough, and a quarter of the encoding of a full grid.
        _, maps, maps_format = screen_picture(
            *colour_index(tile_channels(first, cols=cols, max_side=SIDE_PICTURE_SIDE).image), cmap)
    # Encoded once: st.image re-encodes a numpy array on every rerun (~10 ms for the 900 px grid), while
    # bytes in the format it is told are only stored. PNG keeps the kernels' single pixels exact (a small
    # picture, ``first_filters_png``); the maps grid is a JPEG (PNG of 900 px took ~30 ms, for the screen).
    return {"png": first_filters_png(key, cols, _loaded, _image), "maps": maps, "maps_format": maps_format}


@shared(max_entries=64)
def first_filters_png(key: Key, cols: int, _loaded: Any, _image: Any) -> bytes:
    """The first conv's kernels as one PNG grid (the same for every colormap)."""
    from explorer.imaging import filter_grid, to_png

    return to_png(filter_grid(overview(key, _loaded, _image)["filters"], cols=cols))


@shared(max_entries=64)
def cams_for_class(key: Key, target: int, _loaded: Any, _image: Any) -> dict[str, np.ndarray]:
    """Grad-CAM of every conv/block for ``target``: one pass without recording activations, cached per class
    (the shared pass holds only the default layer's map, which the Feature-map page never needs more than)."""
    base = overview(key, _loaded, _image)
    from explorer.analysis import analyze, cam_candidates, reserved_pass

    layers, complete = cam_plan(key, _loaded, _image)
    x = _loaded.preprocess(_image)
    # Even the last layer's pass over the budget: refused before any work (RequestTooLargeError); otherwise
    # the pass reserves its estimate from the server-wide budget and waits its turn.
    planned = None if complete else (layers or cam_candidates(base["calls"])[-1:])
    with reserved_pass(_loaded.model, _loaded.input_shape, "cam", planned):
        if complete:
            return analyze(_loaded.model, x, base["default_layer"], target=target, layers=[], cam_all=True).cam_raw
        # Degraded: only the latest layers that fit, in one pass whose graph starts at the first of them.
        return analyze(_loaded.model, x, layers, target=target, layers=[], cam_all=False).cam_raw


@shared(max_entries=64)
def cam_plan(key: Key, _loaded: Any, _image: Any) -> tuple[list[str], bool]:
    """(Grad-CAM layers within the per-request memory budget, True when every layer fits), estimated from the
    shared pass's call shapes before any gradient is computed (``explorer.analysis.cam_layers_within``)."""
    from explorer.analysis import cam_layers_within

    return cam_layers_within(_loaded.model, _loaded.input_shape, overview(key, _loaded, _image)["calls"])


@shared(max_entries=64)
def cam_max_side(key: Key, _loaded: Any, _image: Any) -> int:
    """The largest square input side at which Grad-CAM of every layer of this model fits the per-request budget
    (``explorer.analysis.max_input_side``; measured costs, cached per model and size)."""
    from explorer.analysis import max_input_side

    return max_input_side(_loaded.model, _loaded.input_shape[0], kind="cam", natural_side=max(_loaded.input_shape[1:]))


@shared(max_entries=128)
def cam_heat(key: Key, layer: str, target: int, size: tuple[int, int], _cams: dict[str, np.ndarray]) -> np.ndarray:
    """``layer``'s CAM for ``target`` upsampled to the picture and scaled to [0, 1] (once, not per rerun)."""
    from explorer.analysis import upsample_cam

    return upsample_cam(_cams[layer], size)


@shared(max_entries=32)
def other_method(key: Key, method: str, layer: str, target: int, _loaded: Any, _image: Any) -> np.ndarray:
    """One captum attribution (Guided Grad-CAM, Integrated Gradients, Saliency, Occlusion) as a [0, 1] map."""
    from explorer.analysis import attribute, reserved_pass

    # Every method back-propagates (or, for Occlusion, forwards) through the whole network at this input, one
    # step at a time: refused before any work when one such pass exceeds the per-request budget, and reserved
    # from the server-wide budget while it runs.
    with reserved_pass(_loaded.model, _loaded.input_shape, "grad"):
        return attribute(_loaded.model, _loaded.preprocess(_image), method, layer=layer, target=target)


def show_predictions(probabilities: np.ndarray, loaded: Any, t: Any, key: Key) -> None:
    """Top-5 classes with probabilities, or a plain note when the weights give classes no meaning; the bar
    chart is built once per analysis ``key``, not on every rerun."""
    from explorer.analysis import top_k

    if top_k(probabilities, 5, loaded.categories) is None:
        st.info(t("maps.predictions_random"))
        return
    from ui.teaching import prediction_note

    note = prediction_note(loaded)  # a pattern, or not the kind of image the network knows: say so
    if note:
        st.info(note)
    with st.expander(t("pred.scores_anyway")) if note else st.container():
        st.plotly_chart(prediction_figure(key, _probabilities=probabilities, _categories=loaded.categories),
                        width="stretch")


def _prediction_figure(probabilities: np.ndarray, categories: Any):
    import plotly.graph_objects as go

    from explorer.analysis import top_k

    top = top_k(probabilities, 5, categories)
    fig = go.Figure(go.Bar(x=[p.probability for p in top][::-1], y=[f"{p.label} ({p.index})" for p in top][::-1],
                           orientation="h", text=[f"{p.probability:.1%}" for p in top][::-1], textposition="auto"))
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), xaxis=dict(range=[0, 1], tickformat=".0%"))
    return fig


@shared(max_entries=64)
def prediction_figure(key: Key, _probabilities: np.ndarray, _categories: Any):
    """The top-5 bar chart of one analysis (``key`` fixes model, weights, input and image)."""
    return _prediction_figure(_probabilities, _categories)


def heatmap_figure(values: np.ndarray, cmap: str, height: int, title: str | None = None,
                   zmin: float | None = None, zmax: float | None = None, axes: bool = True):
    """A 2-D map as a plotly heatmap with its colour bar, image-like (row 0 on top, square pixels).

    Built with ``go.Heatmap`` and a plain layout: ``px.imshow`` plus ``update_layout`` cost ~14 ms of
    validation per figure, ``go.Heatmap`` ~1 ms."""
    import plotly.graph_objects as go

    from explorer.imaging import plotly_colorscale

    heat = go.Heatmap(z=values, colorscale=[list(stop) for stop in plotly_colorscale(cmap)], zmin=zmin, zmax=zmax,
                      hovertemplate="x: %{x}<br>y: %{y}<br>%{z:.4g}<extra></extra>")
    layout = dict(height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0),
                  xaxis=dict(constrain="domain", showgrid=False, zeroline=False, visible=axes),
                  yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain", showgrid=False,
                             zeroline=False, visible=axes))
    if title:
        layout["title"] = dict(text=title)
    return go.Figure(heat, layout=layout)


@shared(max_entries=64)
def heat_figure(key: Key, layer: str, target: int, cmap: str, _heat: np.ndarray):
    """The Grad-CAM heatmap with its colour scale, built once per (image, layer, class, colormap)."""
    return heatmap_figure(_heat, cmap, 340, zmin=0, zmax=1, axes=False)


@shared(max_entries=64)
def channel_figure(key: Key, layer: str, channel: int, cmap: str, title: str, _values: np.ndarray):
    """One channel, large, with its colour scale: built once per (image, layer, channel, colormap, title)."""
    return heatmap_figure(_values, cmap, 360, title=title)


def image_figure(rgb: np.ndarray | None, height: int | None = None, jpeg: bytes | None = None,
                 encoded: tuple[bytes, str] | None = None, shape: tuple[int, int] | None = None):
    """A plotly figure of an RGB picture sent as one JPEG, without axes (zoom and pan still work).

    plotly's own ``px.imshow(binary_string=True)`` encodes PNG: 190 ms and 1.4 MB for vgg16's 64-channel grid,
    sent to every browser and hashed on every rerun; a quality-90 JPEG is ~10 ms and ~0.2 MB. ``jpeg``: the
    picture already encoded; ``encoded``: (bytes, "png"|"jpeg"), a picture already encoded in either format,
    whose (height, width) is ``shape`` when no ``rgb`` is given."""
    import base64

    import plotly.graph_objects as go

    from explorer.imaging import to_jpeg

    picture, kind = encoded or (jpeg or to_jpeg(rgb), "jpeg")
    source = f"data:image/{kind};base64," + base64.b64encode(picture).decode("ascii")
    rows, cols = shape or rgb.shape[:2]
    h = height or int(min(900, max(220, rows * 700 / max(cols, 1))))
    return go.Figure(go.Image(source=source, hovertemplate="x: %{x}<br>y: %{y}<extra></extra>"),
                     layout=dict(height=h, margin=dict(l=0, r=0, t=0, b=0), xaxis=dict(visible=False),
                                 yaxis=dict(visible=False)))


def page_start(area: str, model_keys: tuple[str, ...] = ()) -> tuple[Any, Any, Key, dict[str, Any], str]:
    """The common top of the analysis pages: title, weights note, and the cached shared pass.

    ``model_keys``: session-state keys that only make sense for one network (layer, channel, class); they are
    cleared when the model or input changes (not the weights or the device), so a same-named layer of another network is not kept with a
    stale label. Returns (loaded model, selection, cache key, overview, a file-name-safe model name); shows
    an error and stops the page when the analysis cannot run (input too small, out of memory...).
    """
    from ui.common import error_box, halt, input_too_small, loaded_model, model_cache_key, selection, show_weights_note, t

    st.title(t(f"{area}.title"))
    st.caption(t(f"{area}.intro"))
    loaded = loaded_model()
    sel = selection()
    show_weights_note(loaded)
    key = cache_key(loaded, sel.image_hash)
    owner = f"_{area}_model"
    if st.session_state.get(owner) != _network_of(key[:4]):
        pinned = st.session_state.get("_links_pinned", ())  # set this run by a shared link (ui.links): keep
        for name in model_keys:
            if name not in pinned:
                st.session_state.pop(name, None)
        st.session_state[owner] = _network_of(key[:4])
    too_small = input_too_small(*model_cache_key(loaded), _loaded=loaded)  # names the first empty layer
    if too_small:
        st.error(t("arch.too_small", message=too_small))
        halt()
    try:
        with spinner_once(("overview", key), t(f"{area}.computing")):
            info = overview(key, loaded, sel.image)
    except Exception as exc:
        error_box(exc)
        halt()
    safe_name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in loaded.name)[:40]
    return loaded, sel, key, info, safe_name



def _network_of(model_key: tuple) -> tuple:
    """(model name, input shape) of a ``model_cache_key``: the same layers whatever the weights or the device, so
    a lecturer can show one layer with trained and then random weights without choosing it again."""
    name, _weights, input_shape, _device = model_key
    return name, tuple(input_shape)


# The owner key page_start keeps per page, so that a layer handed over by another page survives its first visit.
_LAYER_OWNERS = {"maps_layer": "_maps_model", "cam_layer": "_cam_model"}


def preselect_layer(state_key: str, layer: str) -> None:
    """Open ``layer`` on the page whose layer choice is ``state_key`` (maps_layer, cam_layer, rf_layer)."""
    from ui.common import loaded_model, model_cache_key

    st.session_state[state_key] = layer
    if state_key == "maps_layer":
        st.session_state["maps_block"] = "*"  # every block, so the layer is among the options
    owner = _LAYER_OWNERS.get(state_key)
    if owner:
        st.session_state[owner] = _network_of(model_cache_key(loaded_model()))


# --- the layers each page offers (the page's picker and the diagram's hand-off use the same rule) -----------------
def map_calls(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Feature maps: every call with a (C, H, W) output, in execution order."""
    return [c for c in info["calls"] if c["shape"] and len(c["shape"]) == 3]


def cam_layers(info: dict[str, Any], cams: Any) -> list[str]:
    """Grad-CAM: the layers a map was computed at, in execution order; a 1×1 map says nothing about where (its
    heatmap is one colour), so those are offered only when no layer has a larger one."""
    shapes = {c["name"]: c["shape"] for c in info["calls"]}
    order = {c["name"]: i for i, c in enumerate(info["calls"])}
    layers = sorted(cams, key=lambda n: order.get(n, -1))
    return [n for n in layers if len(shapes.get(n) or ()) == 3 and shapes[n][1] * shapes[n][2] > 1] or layers

