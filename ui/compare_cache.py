"""Cached computations for the "History & design" pages: Compare (pages/compare.py), Paper tables
(pages/papers.py) and Build your own (pages/build.py).

Results are keyed on plain values (model names, specs, weights key, image hash). Counting (parameters,
mult-adds, tables) runs on meta-device builds and needs no cache of models; the two models whose Grad-CAM
the Compare page shows are loaded once and shared read-only (never mutated, no hooks left behind).

Session-state keys: Compare ``cmp_models``, ``cmp_y``, ``cmp_cam_on``, ``cmp_cam_a``, ``cmp_cam_b``;
Paper tables: none; Build ``build_mode``, ``build_current``, ``build_text``, ``build_in``,
``build_table_<digest>``, ``build_example``, ``build_used``; and the shared ``custom_archs``, ``sel_model``,
``sel_input`` (set by "use this model").
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st


# --- Compare ---------------------------------------------------------------------------------------

@st.cache_data(max_entries=64, show_spinner=False)
def compare_table(names: tuple[str, ...]) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The table of the models that can be compared, and (name, message) for those that cannot."""
    from explorer.history import compare_available

    return compare_available(list(names))


def compare_model(name: str, weights_key: str, device: str):
    """A model for the side-by-side Grad-CAM: the same shared cache as the sidebar's model (read-only)."""
    from ui.common import cached_model

    return cached_model(name, "pretrained" if weights_key == "pretrained" else "none", device)


@st.cache_data(max_entries=32, show_spinner=False)
def cam_and_predictions(name: str, weights_key: str, device: str, image_hash: str, input_shape: tuple[int, ...],
                        _loaded: Any, _image: Any) -> dict[str, Any]:
    """Grad-CAM of the model's default layer for its top-1 class, the overlay, and the top-5 predictions."""
    from explorer.analysis import predict
    from explorer.analysis import grad_cam
    from explorer.analysis import default_cam_layer
    from explorer.imaging import input_picture, overlay

    x = _loaded.preprocess(_image).to(_loaded.device)  # predict() feeds x to the model as it is
    layer = default_cam_layer(_loaded.model, tuple(_loaded.input_shape))
    cam = grad_cam(_loaded.model, x, layer)
    shown = input_picture(x, *_loaded.normalization)  # the image as the network saw it (resized and centre-cropped)
    predictions = predict(_loaded.model, x, k=5, categories=_loaded.categories)
    return {"layer": layer, "overlay": overlay(shown, cam, alpha=0.5),
            "predictions": None if predictions is None else [(p.label, p.probability) for p in predictions]}


# --- Paper tables ----------------------------------------------------------------------------------

@st.cache_data(show_spinner=False)
def vgg_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    from explorer.history import vgg_config_table, vgg_summary_table

    return vgg_config_table(), vgg_summary_table()


@st.cache_data(show_spinner=False)
def googlenet_table() -> pd.DataFrame:
    from explorer.history import googlenet_table as table

    return table()


@st.cache_data(show_spinner=False)
def resnet_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    from explorer.history import resnet_flops_table, resnet_table

    return resnet_table(), resnet_flops_table()


# --- Build your own --------------------------------------------------------------------------------

@st.cache_data(max_entries=64, show_spinner=False)
def built_tables(spec: str) -> tuple[pd.DataFrame, pd.DataFrame, tuple[int, int, int]]:
    """(shape table of the built network, per-token plan, input shape), computed on the meta device: no
    weights are allocated, so even a VGG-sized spec costs nothing. Raises ``ArchSpecError``."""
    import torch

    from explorer.models.arch import build_arch, describe_arch
    from explorer.analysis import layer_table

    plan = describe_arch(spec)  # checks the spec first, with messages naming the token
    with torch.device("meta"):
        model, shape = build_arch(spec)
    return layer_table(model, shape), plan, shape
