"""The papers' networks side by side: model comparison (accuracy vs operations) and the papers' tables."""
from explorer.history.compare import (COLUMNS, MAX_MODELS, MIN_MODELS, ModelStats, bubble_chart, compare_available, compare_models,
                                      count_mult_adds, count_params, model_stats, mult_adds_by_module, profile, profile_with_size,
                                      weight_layer_depth, weights_size_mb)
from explorer.history.alexnet import alexnet_comparison
from explorer.history.lenet import LENET5_PRINTED, lenet5_table
from explorer.history.mnist import NOTES_TOTALS, NotesMLP, mlp_vs_cnn_layers, mlp_vs_cnn_summary, params_by_input_side
from explorer.history.reductions import INCEPTION_3A_INPUT, ModuleCost, NaiveInception, inception_reduction_costs
from explorer.history.papers import (GOOGLENET_DIFF_TEXT, explain_differences, fully_connected_share, googlenet_receptive_fields, googlenet_table, resnet_flops_table,
                                     resnet_table, vgg_config_table, vgg_summary_table)

__all__ = [
    "alexnet_comparison", "LENET5_PRINTED", "lenet5_table", "NOTES_TOTALS", "NotesMLP", "mlp_vs_cnn_layers",
    "mlp_vs_cnn_summary", "params_by_input_side", "INCEPTION_3A_INPUT", "ModuleCost", "NaiveInception", "inception_reduction_costs",
    "COLUMNS", "GOOGLENET_DIFF_TEXT", "MAX_MODELS", "MIN_MODELS", "ModelStats", "bubble_chart", "compare_available", "compare_models",
    "count_mult_adds", "count_params", "explain_differences", "fully_connected_share", "googlenet_receptive_fields", "googlenet_table", "model_stats", "mult_adds_by_module",
    "profile", "profile_with_size", "resnet_flops_table", "resnet_table", "vgg_config_table", "vgg_summary_table", "weight_layer_depth",
    "weights_size_mb",
]
