"""Networks typed in a VGG-style grammar (``conv3-64 M FC-10``): the grammar, then shape checks and building."""
from explorer.models.arch.build import MAX_ACTIVATION, MAX_MULT_ADDS, MAX_TOTAL_ACTIVATION, MAX_PARAMS, ArchNet, build_arch, describe_arch, plan_arch
from explorer.models.arch.grammar import (MAX_INPUT_SIDE as MAX_TYPED_INPUT_SIDE, DEFAULT_INPUT_SHAPE, LAYER_KINDS, ArchSpecError, LayerSpec, canonical_spec,
                                          declares_input, format_arch, full_spec, input_shape_of, parse_arch, spec_to_table, spec_with_input,
                                          split_input, table_to_spec, token_spans)

__all__ = [
    "ArchNet", "ArchSpecError", "DEFAULT_INPUT_SHAPE", "LAYER_KINDS", "LayerSpec", "MAX_ACTIVATION", "MAX_MULT_ADDS",
    "MAX_TYPED_INPUT_SIDE", "MAX_PARAMS", "MAX_TOTAL_ACTIVATION", "build_arch", "canonical_spec", "declares_input", "describe_arch", "format_arch", "full_spec", "input_shape_of",
    "parse_arch", "plan_arch", "spec_to_table", "spec_with_input", "split_input", "table_to_spec", "token_spans",
]
