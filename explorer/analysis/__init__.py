"""What a network does with one image: layer tables, every layer's output, Grad-CAM and other attributions.

Layers are addressed by *call names* (``layer1.0.conv1``, ``relu#2`` for a second call, ``name:in`` for a call's
input). Every pass that registers hooks goes through :func:`hooked` (the one owner of hooks: it takes the
model's lock and removes every hook in ``finally``).
"""
from explorer.analysis.activations import callable_layers, capture
from explorer.analysis.attribution import (LAYER_METHODS, METHODS, attribute, grad_cam, guided_gradcam,
                                           integrated_gradients, occlusion, resolve_target, saliency)
from explorer.analysis.budget import MAX_SIDE as MAX_INPUT_SIDE
from explorer.analysis.budget import (REQUEST_BUDGET_ENV, RequestTooLargeError, cam_candidates, cam_layers_within,
                                      max_input_side, largest_input_side, pass_cost,
                                      request_budget_bytes, reserved_pass)
from explorer.analysis.hooks import route_call
from explorer.analysis.host_arrays import HostActivations
from explorer.analysis.layer_calls import (INPUT_SUFFIX, CallInfo, ChainStep, activation_chain, activation_pair, block_of, call_name,
                                           is_activation, is_conv, logits_of, parse_call)
from explorer.analysis.concepts import (POOLINGS, BatchNormDemo, DropoutDemo, HeadComparison, batchnorm_demo,
                                        batchnorm_layers, dropout_demo, gap_vs_flatten, pool_image, pool_output_size)
from explorer.analysis.layers import conv_layer_names, default_cam_layer, executed_output_shapes
from explorer.analysis.page_pass import ANALYSIS_BUDGET_BYTES, page_analysis
from explorer.analysis.shapes import CSV_COLUMNS, InputTooSmallError, ModelTotals, collapse, layer_table, model_totals, output_formula
from explorer.analysis.main_path import MERGE_TYPES, main_path
from explorer.analysis.shared_pass import Analysis, Prediction, analyze, gradcam_from, predict, top_k, upsample_cam

__all__ = [
    "MERGE_TYPES", "main_path",
    "POOLINGS", "BatchNormDemo", "DropoutDemo", "HeadComparison", "batchnorm_demo", "batchnorm_layers", "dropout_demo",
    "gap_vs_flatten", "pool_image", "pool_output_size",
    "MAX_INPUT_SIDE", "REQUEST_BUDGET_ENV", "RequestTooLargeError", "cam_candidates", "cam_layers_within", "largest_input_side", "max_input_side",
    "pass_cost", "request_budget_bytes", "reserved_pass",
    "HostActivations", "ANALYSIS_BUDGET_BYTES", "Analysis", "CSV_COLUMNS", "CallInfo", "ChainStep", "INPUT_SUFFIX", "InputTooSmallError",
    "LAYER_METHODS", "METHODS", "ModelTotals", "Prediction", "activation_chain", "activation_pair", "analyze", "attribute", "block_of",
    "call_name", "callable_layers", "capture", "collapse", "conv_layer_names", "default_cam_layer",
    "executed_output_shapes", "grad_cam", "gradcam_from", "guided_gradcam", "integrated_gradients",
    "is_activation", "is_conv", "layer_table", "logits_of", "model_totals", "occlusion", "output_formula",
    "page_analysis", "parse_call", "predict", "resolve_target", "saliency", "top_k", "upsample_cam",
]
