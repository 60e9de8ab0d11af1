"""Cached computations of the Course-concepts page (pages/course_concepts.py).

Keyed on plain values (model cache key, image hash, layer, settings); the shared model is passed as ``_loaded``
and never changed (BatchNorm's training mode runs on a copy of the one layer, gradients on private models).

Session-state keys: ``cc_bn_layer``, ``cc_bn_channel``, ``cc_do_layer``, ``cc_do_p``, ``cc_do_channel``,
``cc_gr_depth``, ``cc_gr_bn``, ``cc_gr_steps``, ``cc_gr_run``, ``cc_pool_kind``.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.analysis_cache import shared


@shared(max_entries=32)
def batchnorm(key: tuple, layer: str, channel: int, _loaded: Any, _image: Any) -> Any:
    from explorer.analysis import batchnorm_demo

    return batchnorm_demo(_loaded.model, _loaded.preprocess(_image), layer, channel)


@shared(max_entries=8)
def batchnorm_names(key: tuple, _loaded: Any) -> list[str]:
    from explorer.analysis import batchnorm_layers

    return batchnorm_layers(_loaded.model)


@shared(max_entries=32)
def dropout(activation_key: tuple, p: float, _activation: Any, layer: str) -> Any:
    from explorer.analysis import dropout_demo

    return dropout_demo(_activation, p, layer=layer)


@st.cache_data(max_entries=16, show_spinner=False)
def gradients(depth: int, batch_norm: bool, steps: int) -> pd.DataFrame:
    from explorer.training import gradient_experiment

    return gradient_experiment((f"plain{depth}", f"resnet{depth}_a"), batch_norm=batch_norm, steps=steps,
                               image_size=16, batch=8)


@st.cache_data(show_spinner=False)
def reductions() -> tuple[Any, Any]:
    from explorer.history import inception_reduction_costs

    return inception_reduction_costs()


@st.cache_data(show_spinner=False)
def lenet_table() -> pd.DataFrame:
    from explorer.history import lenet5_table

    return lenet5_table()


@st.cache_data(show_spinner=False)
def alexnet_table() -> pd.DataFrame:
    from explorer.history import alexnet_comparison

    return alexnet_comparison()


@st.cache_data(show_spinner=False)
def parameter_pairs() -> pd.DataFrame:
    """plain vs option-A residual vs torchvision's projection ResNet: parameters of each (meta-device builds)."""
    import torch

    from explorer.history import count_params
    from explorer.models import build_model

    rows = []
    with torch.device("meta"):
        for depth in (18, 34):
            rows.append({"layers": depth, "plain": count_params(build_model(f"plain{depth}")),
                         "residual, option A (resnetN_a)": count_params(build_model(f"resnet{depth}_a")),
                         "torchvision, projections (resnetN)": count_params(build_model(f"resnet{depth}"))})
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False)
def mlp_vs_cnn() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from explorer.history import mlp_vs_cnn_layers, mlp_vs_cnn_summary, params_by_input_side

    layers = mlp_vs_cnn_layers()
    return mlp_vs_cnn_summary(layers), layers, params_by_input_side()
