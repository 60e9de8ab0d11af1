"""Cached computations of the Feature-map (pages/feature_maps.py) and Grad-CAM (pages/gradcam.py) pages.

One forward pass per (model name, weights key, image hash, input shape, device): ``shared_pass`` records
every layer call, the class scores and Grad-CAM of the default layer for the top-1 class, and returns
plain numpy. Everything the pages redraw when a widget changes (another layer, channel, order, scale,
opacity, colormap) is derived from it by small cached functions and never runs the network again.
Grad-CAM of every layer for a class (one more pass, cached per class) or another captum method computes more.

Session-state keys: Feature maps ``maps_block``, ``maps_layer``, ``maps_kind``, ``maps_order``,
``maps_scale``, ``maps_cmap``, ``maps_channel``, ``maps_alpha``; Grad-CAM ``cam_layer``, ``cam_class``,
``cam_alpha``, ``cam_cmap``, ``cam_methods``, ``cam_compare``.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import streamlit as st

# Key = (model name, weights key, input shape, device) from ui.common.model_cache_key, plus the image hash.
Key = tuple
# Activations kept by one shared pass; later layers of bigger networks (efficientnet_b7 at 600x600 records
# ~4 GB) are captured on demand, one pass per layer, when picked.
ANALYSIS_BUDGET_BYTES = 256 * 2**20
DISPLAY_TILE_SIDE = 1024


def cache_key(loaded: Any, image_hash: str) -> Key:
    from ui.common import model_cache_key

    return (*model_cache_key(loaded), image_hash)


def compute_analysis(loaded: Any, image: Any) -> dict[str, Any]:
    """The shared pass, uncached: every call's output (and activation inputs) as float32 numpy without
    the batch dimension, calls, probabilities, Grad-CAM of the default layer for the top-1 class, the
    input picture and the first conv's weights. Arrays seen twice (a block's output is its last
    layer's) are one object, so the cache stores them once."""
    from explorer.activations import analyze
    from explorer.models import default_cam_layer
    from explorer.viz import input_picture

    x = loaded.preprocess(image)
    default_layer = default_cam_layer(loaded.model, tuple(loaded.input_shape))
    # Grad-CAM of the default layer only: every other layer's map would need the gradient through the whole
    # network (2.1-2.8x a forward instead of ~1.1x); the Grad-CAM page asks for those in its own cached pass.
    result = analyze(loaded.model, x, default_layer, layers=None, cam_all=False, max_bytes=ANALYSIS_BUDGET_BYTES)
    arrays: dict[int, np.ndarray] = {}
    activations = {}
    for name, tensor in result.activations.items():
        array = arrays.get(id(tensor))
        if array is None:
            array = arrays[id(tensor)] = tensor[0].float().numpy() if tensor.dim() > 1 else tensor.float().numpy()
        activations[name] = array
    first_conv = next((c for c in result.calls if c.is_conv), None)
    filters = None
    if first_conv is not None:
        weight = getattr(loaded.model.get_submodule(first_conv.module), "weight", None)
        if weight is not None and weight.dim() == 4:
            filters = weight.detach().float().cpu().numpy()
    return {
        "calls": [asdict(c) for c in result.calls],
        "activations": activations,
        "probabilities": result.probabilities,
        "top1": result.target,
        "cams": result.cam_raw,
        "default_layer": default_layer,
        "picture": input_picture(x),
        "first_conv": first_conv.name if first_conv else None,
        "filters": filters,
        "skipped": result.skipped,
    }


@st.cache_data(max_entries=2, show_spinner=False)
def shared_pass(key: Key, _loaded: Any, _image: Any) -> dict[str, Any]:
    """The one forward pass per key (big: every layer's output; only 2 kept)."""
    return compute_analysis(_loaded, _image)


@st.cache_data(max_entries=16, show_spinner=False)
def overview(key: Key, _loaded: Any, _image: Any) -> dict[str, Any]:
    """The small part of the shared pass every rerun needs: calls, probabilities, CAMs, picture, filters."""
    full = shared_pass(key, _loaded, _image)
    return {k: v for k, v in full.items() if k != "activations"}


@st.cache_data(max_entries=12, show_spinner=False)
def layer_maps(key: Key, layer: str, _loaded: Any, _image: Any) -> np.ndarray | None:
    """One recorded tensor (C, H, W) of the shared pass (captured alone when the budget left it out)."""
    full = shared_pass(key, _loaded, _image)
    if layer in full["activations"] or layer not in full["skipped"]:
        return full["activations"].get(layer)
    from explorer.activations import capture

    return capture(_loaded.model, _loaded.preprocess(_image), [layer])[layer][0].float().numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def feature_activation_pair(key: Key, layer: str, _loaded: Any, _image: Any) -> tuple[str, str | None]:
    """(feature map, activation map) names for ``layer`` (see ``explorer.activations.activation_pair``)."""
    from explorer.activations import CallInfo, activation_pair

    full = shared_pass(key, _loaded, _image)
    calls = [CallInfo(**c) for c in full["calls"]]
    return activation_pair(calls, layer, full["activations"])


@st.cache_data(max_entries=12, show_spinner=False)
def tile(key: Key, layer: str, order: str, scale: str, cmap: str, _loaded: Any, _image: Any) -> dict[str, Any]:
    """The layer's channels tiled and coloured (uint8 RGB) with the grid layout."""
    from explorer.viz import colorize, tile_channels

    maps = layer_maps(key, layer, _loaded, _image)
    # Drawn at most 1024 px (the page shows it ~900 px wide): a 1799² vgg16 tile costs ~100 ms of figure
    # serialisation on every rerun. The download is full resolution (``full_tile_png``).
    tiling = tile_channels(maps, order=order, scale=scale, max_side=DISPLAY_TILE_SIDE)
    rgb = colorize(tiling.image, cmap)
    # The figure (one embedded PNG) is encoded once here, not on every rerun.
    return {"rgb": rgb, "figure": image_figure(rgb), "channels": tiling.channels,
            "rows": tiling.rows, "cols": tiling.cols, "shrink": tiling.shrink}


@st.cache_data(max_entries=4, show_spinner=False)
def full_tile_png(key: Key, layer: str, order: str, scale: str, cmap: str, _loaded: Any, _image: Any) -> bytes:
    """The channel grid at full resolution as PNG (computed when the download is clicked)."""
    from explorer.viz import colorize, tile_channels, to_png

    maps = layer_maps(key, layer, _loaded, _image)
    return to_png(colorize(tile_channels(maps, order=order, scale=scale).image, cmap))


@st.cache_data(max_entries=8, show_spinner=False)
def first_layer_pictures(key: Key, cols: int, cmap: str, _loaded: Any, _image: Any) -> dict[str, Any]:
    """The first conv's kernels as small RGB pictures beside the maps they produce (and the kernels' PNG)."""
    from explorer.viz import colorize, filter_grid, tile_channels, to_png

    info = overview(key, _loaded, _image)
    first = layer_maps(key, info["first_conv"], _loaded, _image)
    filters_rgb = filter_grid(info["filters"], cols=cols)
    return {"filters": filters_rgb, "maps": colorize(tile_channels(first, cols=cols, max_side=900).image, cmap),
            "png": to_png(filters_rgb)}


@st.cache_data(max_entries=16, show_spinner=False)
def cams_for_class(key: Key, target: int, _loaded: Any, _image: Any) -> dict[str, np.ndarray]:
    """Grad-CAM of every conv/block for ``target``: one pass without recording activations, cached per class
    (the shared pass holds only the default layer's map, which the Feature-map page never needs more than)."""
    base = overview(key, _loaded, _image)
    from explorer.activations import analyze

    x = _loaded.preprocess(_image)
    return analyze(_loaded.model, x, base["default_layer"], target=target, layers=[], cam_all=True).cam_raw


@st.cache_data(max_entries=32, show_spinner=False)
def other_method(key: Key, method: str, layer: str, target: int, _loaded: Any, _image: Any) -> np.ndarray:
    """One captum attribution (Guided Grad-CAM, Integrated Gradients, Saliency, Occlusion) as a [0, 1] map."""
    from explorer.attribution import attribute

    return attribute(_loaded.model, _loaded.preprocess(_image), method, layer=layer, target=target)


def show_predictions(probabilities: np.ndarray, loaded: Any, t: Any) -> None:
    """Top-5 classes with probabilities, or a plain note when the weights give classes no meaning."""
    import plotly.graph_objects as go

    from explorer.activations import top_k

    top = top_k(probabilities, 5, loaded.categories)
    if top is None:
        st.info(t("maps.predictions_random"))
        return
    fig = go.Figure(go.Bar(x=[p.probability for p in top][::-1], y=[f"{p.label} ({p.index})" for p in top][::-1],
                           orientation="h", text=[f"{p.probability:.1%}" for p in top][::-1], textposition="auto"))
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), xaxis=dict(range=[0, 1], tickformat=".0%"))
    st.plotly_chart(fig, width="stretch")


@st.cache_data(max_entries=32, show_spinner=False)
def heat_figure(key: Key, layer: str, target: int, cmap: str, _heat: np.ndarray):
    """The Grad-CAM heatmap with its colour scale, built once per (image, layer, class, colormap): plotly's
    figure validation costs ~50 ms, too much for every opacity change."""
    import plotly.express as px

    fig = px.imshow(_heat, color_continuous_scale="gray" if cmap == "bone" else cmap, zmin=0, zmax=1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=340, margin=dict(l=0, r=0, t=0, b=0))
    return fig


@st.cache_data(max_entries=32, show_spinner=False)
def channel_figure(key: Key, layer: str, channel: int, cmap: str, title: str, _values: np.ndarray):
    """One channel, large, with its colour scale: built once per (image, layer, channel, colormap, title)."""
    import plotly.express as px

    fig = px.imshow(_values, color_continuous_scale="gray" if cmap == "bone" else cmap, aspect="equal")
    fig.update_layout(height=360, margin=dict(l=0, r=0, t=30, b=0), title=title)
    return fig


def image_figure(rgb: np.ndarray, height: int | None = None):
    """A plotly figure of an RGB picture sent as one PNG (fast for big tiles), without axes."""
    import plotly.express as px

    fig = px.imshow(rgb, binary_string=True)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    h = height or int(min(900, max(220, rgb.shape[0] * 700 / max(rgb.shape[1], 1))))
    fig.update_layout(height=h, margin=dict(l=0, r=0, t=0, b=0))
    return fig


def page_start(area: str, model_keys: tuple[str, ...] = ()) -> tuple[Any, Any, Key, dict[str, Any], str]:
    """The common top of the analysis pages: title, weights note, and the cached shared pass.

    ``model_keys``: session-state keys that only make sense for one model (layer, channel, class); they are
    cleared when the model or input changes, so a same-named layer of another network is not kept with a
    stale label. Returns (loaded model, selection, cache key, overview, a file-name-safe model name); shows
    an error and stops the page when the analysis cannot run (input too small, out of memory...).
    """
    from explorer.shapes import InputTooSmallError
    from ui.common import cached_layer_table, error_box, loaded_model, model_cache_key, selection, show_weights_note, t

    st.title(t(f"{area}.title"))
    st.caption(t(f"{area}.intro"))
    loaded = loaded_model()
    sel = selection()
    show_weights_note(loaded)
    key = cache_key(loaded, sel.image_hash)
    owner = f"_{area}_model"
    if st.session_state.get(owner) != key[:4]:
        for name in model_keys:
            st.session_state.pop(name, None)
        st.session_state[owner] = key[:4]
    try:
        cached_layer_table(*model_cache_key(loaded), _loaded=loaded)  # names the first empty layer, if any
    except InputTooSmallError as exc:
        st.error(t("arch.too_small", message=exc))
        st.stop()
    except Exception:
        pass  # the analysis below reports its own errors
    try:
        with st.spinner(t(f"{area}.computing")):
            info = overview(key, loaded, sel.image)
    except Exception as exc:
        error_box(exc)
        st.stop()
    safe_name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in loaded.name)[:40]
    return loaded, sel, key, info, safe_name

