"""Cached computations of the Receptive-field (pages/receptive_field.py) and Conv-arithmetic pages.

Keys are plain values (model name, weights key, input shape, device, image hash, layer, position); the
loaded model and the input tensor travel as underscore arguments. Receptive fields depend on the
architecture only, so the comparison chart builds other models with weights on the ``meta`` device.

Session-state keys: ``rf_models`` (models overlaid on the chart), ``rf_layer``, ``rf_row``, ``rf_col``,
``rf_show`` (table filter); conv arithmetic: ``ca_n``, ``ca_f``, ``ca_p``, ``ca_s``, ``ca_d``, ``ca_pos``,
``ca_c``, ``ca_l``, ``ca_k``, ``ca_hw``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

DEFAULT_OVERLAY = ("lenet5", "alexnet", "vgg16", "googlenet", "resnet50")


def rf_table(loaded: Any) -> pd.DataFrame:
    """The receptive-field table of the loaded model at its input shape: computed once per (architecture,
    input size) for every session, whatever the weights, device or model name (a static property)."""
    from explorer.core import architecture_fingerprint

    return _rf_table(architecture_fingerprint(loaded.model), tuple(loaded.input_shape), _loaded=loaded)


@st.cache_data(max_entries=64, show_spinner=False)
def _rf_table(architecture: str, input_shape: tuple[int, int, int], _loaded: Any) -> pd.DataFrame:
    from explorer.receptive import receptive_field_table

    return receptive_field_table(_loaded.model, input_shape, partial=True)


@st.cache_data(max_entries=64, show_spinner=False)
def growth_curve(name: str) -> tuple[pd.DataFrame, tuple[int, int, int]]:
    """A registered model's field-vs-depth curve at its own natural input shape."""
    from explorer.models import get_entry
    from explorer.receptive import architecture_table, growth_by_depth

    shape = tuple(get_entry(name).input_shape)
    return growth_by_depth(architecture_table(name, shape)), shape


@st.cache_data(max_entries=64, show_spinner=False)
def erf_map(name: str, weights_key: str, input_shape: tuple[int, int, int], device: str, image_hash: str,
            layer: str, position: tuple[int, int], _loaded: Any, _x: Any) -> np.ndarray:
    from explorer.receptive import effective_receptive_field

    return effective_receptive_field(_loaded.model, _x, layer, position)


@st.cache_data(max_entries=16, show_spinner=False)
def picture(name: str, weights_key: str, input_shape: tuple[int, int, int], device: str, image_hash: str,
            _x: Any) -> np.ndarray:
    """The image as the model sees it (resized, cropped), stretched back to 0–255 for display."""
    from explorer.receptive import display_image

    return display_image(_x.detach().float().cpu().numpy())


@st.cache_data(show_spinner=False, ttl=300)
def overlay_options() -> list[str]:
    from explorer.models import list_models

    return list_models()


def rf_spatial_rows(table: Any) -> Any:
    """Receptive field: the table's rows whose field is known and whose output is a (C, H, W) map (the page's layer
    picker and the diagram's hand-off use this one rule)."""
    return table[~table["unknown"] & (table["output_shape"].str.count("x") == 2)]

