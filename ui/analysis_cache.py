"""Cached computations of the Feature-map (pages/feature_maps.py) and Grad-CAM (pages/gradcam.py) pages.

One forward pass per (model name, weights key, image hash, input shape, device): ``shared_pass`` records
every layer call, the class scores and Grad-CAM of every conv and block for the top-1 class, and returns
plain numpy. Everything the pages redraw when a widget changes (another layer, channel, order, scale,
opacity, colormap) is derived from it by small cached functions and never runs the network again.
Only a different class (Grad-CAM for it: one more pass, cached) or another captum method computes more.

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


def cache_key(loaded: Any, image_hash: str) -> Key:
    from ui.common import model_cache_key

    return (*model_cache_key(loaded), image_hash)


def compute_analysis(loaded: Any, image: Any) -> dict[str, Any]:
    """The shared pass, uncached: every call's output (and activation inputs) as float32 numpy without
    the batch dimension, calls, probabilities, Grad-CAM of every conv/block for the top-1 class, the
    input picture and the first conv's weights. Arrays seen twice (a block's output is its last
    layer's) are one object, so the cache stores them once."""
    from explorer.activations import analyze
    from explorer.models import default_cam_layer
    from explorer.viz import input_picture

    x = loaded.preprocess(image)
    default_layer = default_cam_layer(loaded.model, tuple(loaded.input_shape))
    result = analyze(loaded.model, x, default_layer, layers=None, cam_all=True, max_bytes=ANALYSIS_BUDGET_BYTES)
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
    tiling = tile_channels(maps, order=order, scale=scale)
    return {"rgb": colorize(tiling.image, cmap), "channels": tiling.channels, "rows": tiling.rows,
            "cols": tiling.cols, "shrink": tiling.shrink}


@st.cache_data(max_entries=16, show_spinner=False)
def cams_for_class(key: Key, target: int, _loaded: Any, _image: Any) -> dict[str, np.ndarray]:
    """Grad-CAM of every conv/block for ``target``: the top-1 class comes from the shared pass, any other
    class costs one pass without recording activations."""
    base = overview(key, _loaded, _image)
    if target == base["top1"]:
        return base["cams"]
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


def image_figure(rgb: np.ndarray, height: int | None = None):
    """A plotly figure of an RGB picture sent as one PNG (fast for big tiles), without axes."""
    import plotly.express as px

    fig = px.imshow(rgb, binary_string=True)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    h = height or int(min(900, max(220, rgb.shape[0] * 700 / max(rgb.shape[1], 1))))
    fig.update_layout(height=h, margin=dict(l=0, r=0, t=0, b=0))
    return fig


def page_start(area: str) -> tuple[Any, Any, Key, dict[str, Any], str]:
    """The common top of the analysis pages: title, weights note, and the cached shared pass.

    Returns (loaded model, selection, cache key, overview, a file-name-safe model name); shows an error and
    stops the page when the analysis cannot run (e.g. an input too small, or out of memory).
    """
    from ui.common import error_box, loaded_model, selection, show_weights_note, t

    st.title(t(f"{area}.title"))
    st.caption(t(f"{area}.intro"))
    loaded = loaded_model()
    sel = selection()
    show_weights_note(loaded)
    key = cache_key(loaded, sel.image_hash)
    try:
        with st.spinner(t(f"{area}.computing")):
            info = overview(key, loaded, sel.image)
    except Exception as exc:
        error_box(exc)
        st.stop()
    safe_name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in loaded.name)[:40]
    return loaded, sel, key, info, safe_name

