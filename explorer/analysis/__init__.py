"""What a network does with one image: layer tables, every layer's output, Grad-CAM and other attributions.

Layers are addressed by *call names* (``layer1.0.conv1``, ``relu#2`` for a second call, ``name:in`` for a call's
input). Every pass that registers hooks goes through :func:`hooked` (the one owner of hooks: it takes the
model's lock and removes every hook in ``finally``).

Names load on first use (PEP 562): the first page needs the memory budget and the shared pass, not the layer
table (pandas) or the attribution methods (captum).
"""
from __future__ import annotations

import importlib
from typing import Any

# Eager: the submodule has the function's name, and importing the submodule would bind the package attribute to it.
from explorer.analysis.main_path import MERGE_TYPES, main_path

# submodule -> the public names it defines
_MODULES: dict[str, tuple[str, ...]] = {
    "activations": ("callable_layers", "capture",),
    "attribution": ("LAYER_METHODS", "METHODS", "attribute", "grad_cam", "guided_gradcam", "integrated_gradients", "occlusion", "resolve_target", "saliency",),
    "budget": ("REQUEST_BUDGET_ENV", "RequestTooLargeError", "cam_candidates", "cam_layers_within", "max_input_side", "largest_input_side", "largest_side_key", "pass_cost", "request_budget_bytes", "reserved_pass", "typed_side_limit",),
    "functional_ops": ("FunctionalCall", "FunctionalRecorder", "WEIGHT_LAYER_OPS", "functional_mult_adds",),
    "hooks": ("Recompute", "route_call",),
    "host_arrays": ("HostActivations",),
    "layer_calls": ("INPUT_SUFFIX", "CallInfo", "ChainStep", "activation_chain", "activation_pair", "block_of", "call_name", "is_activation", "is_conv", "logits_of", "parse_call",),
    "concepts": ("POOLINGS", "BatchNormDemo", "DropoutDemo", "HeadComparison", "batchnorm_demo", "batchnorm_layers", "dropout_demo", "gap_vs_flatten", "last_spatial_map", "pool_image", "pool_output_size",),
    "layers": ("conv_layer_names", "default_cam_layer", "executed_output_shapes",),
    "page_pass": ("ANALYSIS_BUDGET_BYTES", "page_analysis",),
    "shapes": ("CSV_COLUMNS", "InputTooSmallError", "ModelTotals", "collapse", "layer_table", "model_totals", "output_formula",),
    "shared_pass": ("Analysis", "Prediction", "analyze", "gradcam_from", "predict", "top_k", "upsample_cam",),
}
# public name -> (submodule, its name there)
_ALIASES: dict[str, tuple[str, str]] = {"MAX_INPUT_SIDE": ("budget", "MAX_SIDE")}
_OWNER = {name: (module, name) for module, names in _MODULES.items() for name in names} | _ALIASES

__all__ = sorted([*_OWNER, "MERGE_TYPES", "main_path"])


def __getattr__(name: str) -> Any:
    owner = _OWNER.get(name)
    if owner is None:
        raise AttributeError(f"module 'explorer.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"explorer.analysis.{owner[0]}"), owner[1])
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
