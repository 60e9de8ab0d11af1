"""Receptive fields of every layer, read off the graph the model really executes.

How it works: the model runs once on a zeros input under a ``TorchFunctionMode`` that sees every torch
function and tensor method (``torch.cat``, ``out += identity``, ``torch.flatten``, ``x.view``...), while
per-module hooks (filtered to this thread) tell which module each call belongs to. Every tensor derived
from the input carries, per spatial axis, the field of its first unit in input pixels (``lo``..``hi``) and
the jump (effective stride) between neighbouring units; each op maps the fields of its inputs to its
output:

- convolution / pooling with kernel ``k``, stride ``s``, padding ``p``, dilation ``d``:
  ``lo' = lo − p·j``, ``hi' = hi + (d(k−1) − p)·j``, ``j' = s·j``  (so the size grows by ``d(k−1)·j``);
- merges (``cat``, ``add``, ``mul``...): the union (bounding box) of the inputs' fields;
- global pooling, ``mean`` over space, flattening: the union of every position (the whole image);
- a branch reduced to 1×1 and broadcast back (squeeze-and-excitation gates, GroupNorm statistics) makes
  every unit depend on the whole image: the local field is kept in the table and ``global_context`` says so;
- a function it does not know makes the output *unknown* (and everything computed from it), never a guess.

One row per call of a leaf module (a module called twice gives ``name`` and ``name#2``) and one per
notable functional op in a container's ``forward`` (``layer1.0.add``, ``inception3a.cat``, ``flatten``).
Sizes are the classical, unclipped ones (a field may hang over the image where there is padding), except
for layers that pooled everything, whose field is clipped to the image.
"""
from __future__ import annotations

from explorer.receptive.convarith import (ConvArithmetic, StackComparison, compare_stack, conv_arithmetic, output_size,
                                          same_padding, stack_field)
from explorer.receptive.erf import effective_receptive_field, erf_extent
from explorer.receptive.geometry import AXES, NOTE_TEXT, AxisField, Note, note_text
from explorer.receptive.plots import (GAP, INPUT, MAX_GRID_SIDE, PADDING, TAP, UNVISITED, UNVISITED_PADDING, display_image,
                                      erf_figure, growth_figure, image_box_figure, kernel_grid, kernel_positions_figure,
                                      stack_diagram_figure)
from explorer.receptive.reading import FieldBox, FieldSummary, field_box, growth_by_depth, summarize, teaching_layer
from explorer.receptive.table import CSV_COLUMNS, EXTRA_COLUMNS, architecture_table, receptive_field_table, table_to_csv

__all__ = [
    "AXES", "CSV_COLUMNS", "ConvArithmetic", "EXTRA_COLUMNS", "GAP", "INPUT", "NOTE_TEXT", "PADDING", "StackComparison",
    "TAP", "UNVISITED", "UNVISITED_PADDING", "MAX_GRID_SIDE", "AxisField", "FieldBox", "FieldSummary", "Note",
    "architecture_table", "compare_stack",
    "conv_arithmetic", "display_image", "effective_receptive_field", "erf_extent", "erf_figure", "field_box",
    "growth_by_depth", "growth_figure", "image_box_figure", "kernel_grid", "kernel_positions_figure", "note_text",
    "output_size", "receptive_field_table", "same_padding", "stack_diagram_figure", "stack_field", "summarize",
    "table_to_csv", "teaching_layer",
]
