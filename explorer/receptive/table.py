"""The table: one row per traced layer (:func:`receptive_field_table`), its CSV form, and the table of a
registered model built on the ``meta`` device (:func:`architecture_table`)."""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

import pandas as pd
import torch
import torch.nn as nn

from explorer.receptive.geometry import AXES, AxisField, make_note, note_text
from explorer.receptive.tracing import input_tensor, TraceRow, trace

CSV_COLUMNS = ["layer", "type", "output_shape", "rf_h", "rf_w", "jump_h", "jump_w", "start_h", "start_w"]
EXTRA_COLUMNS = ["depth", "kind", "source", "out_h", "out_w", "merge_inputs", "sees_whole_image", "global_context",
                 "exact", "unknown", "note", "note_codes"]


def _number(value: float) -> float | int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if float(value).is_integer() else float(value)


def _axis_report(f: AxisField, units: int, size: int) -> tuple[float, float, float, bool]:
    """(field size, jump, centre of unit 0's field, every unit covers the image) for one axis."""
    if math.isnan(f.lo):
        return math.nan, math.nan, math.nan, False
    if f.collapsed:
        lo, hi = max(f.lo, 0.0), min(f.hi, size - 1.0)
        return hi - lo + 1, f.jump, (lo + hi) / 2, f.lo <= 0 and f.hi >= size - 1
    covers = f.lo + (units - 1) * f.jump <= 0 and f.hi >= size - 1
    return f.hi - f.lo + 1, f.jump, (f.lo + f.hi) / 2, covers


def _row_record(row: TraceRow, image_hw: tuple[int, int]) -> dict[str, Any]:
    info = row.info
    units = {axis: (row.shape[info.dims.index(axis)] if axis in info.dims else 1) for axis in AXES}
    rf_h, jump_h, start_h, cover_h = _axis_report(info.h, units["h"], image_hw[0])
    rf_w, jump_w, start_w, cover_w = _axis_report(info.w, units["w"], image_hw[1])
    notes = list(row.notes)
    codes = {code for code, _ in notes}
    exact = info.h.exact and info.w.exact and not info.unknown
    if info.unknown:
        if "unknown" not in codes:
            notes.append(make_note("unknown" if row.kind == "unknown" else "after_unknown", reason=info.unknown))
    elif not exact and not codes & {"approximate", "adaptive_bins", "resample", "transposed", "concat_spatial"}:
        notes.append(make_note("approximate"))
    if info.context and not codes & {"gate", "norm_stats", "batch_stats", "global_pool", "flatten"}:
        notes.append(make_note("context"))
    return {
        "layer": row.layer, "type": row.type, "output_shape": "x".join(str(d) for d in row.shape[1:]),
        "rf_h": _number(math.ceil(rf_h) if not math.isnan(rf_h) else rf_h),
        "rf_w": _number(math.ceil(rf_w) if not math.isnan(rf_w) else rf_w),
        "jump_h": _number(jump_h), "jump_w": _number(jump_w), "start_h": _number(start_h), "start_w": _number(start_w),
        "depth": info.depth, "kind": row.kind, "source": row.source, "out_h": units["h"], "out_w": units["w"],
        "merge_inputs": row.merge, "sees_whole_image": bool(not info.unknown and ((cover_h and cover_w) or info.context)),
        "global_context": bool(info.context), "exact": bool(exact), "unknown": bool(info.unknown),
        "note": "; ".join(note_text(n) for n in notes),
        "note_codes": json.dumps([[code, dict(params)] for code, params in notes], ensure_ascii=False),
    }


def receptive_field_table(model: nn.Module, input_shape: Sequence[int], *, partial: bool = False) -> pd.DataFrame:
    """Per layer (forward order): output shape, field size, jump and start per axis, plus explanations.

    Columns: :data:`CSV_COLUMNS` then :data:`EXTRA_COLUMNS`. ``rf_*``: field size in input pixels (unclipped,
    except for layers that pooled every position); ``jump_*``: input pixels between neighbouring units;
    ``start_*``: input coordinate of the centre of the first unit's field (negative = in the padding).
    Unknown fields are empty (None). The model is not modified (hooks removed, train/eval flags kept).

    ``partial=True``: if the model fails part-way (e.g. its classifier only accepts the natural input size),
    return the rows computed so far with the reason in ``table.attrs["error"]`` (and ``"failed_layer"``)
    instead of raising; errors before the first row still raise.
    """
    x = input_tensor(model, input_shape)
    with torch.no_grad():
        tracer = trace(model, x, partial=partial)
    image_hw = (int(x.shape[-2]), int(x.shape[-1]))
    records = [_row_record(row, image_hw) for row in tracer.rows]
    frame = pd.DataFrame.from_records(records, columns=CSV_COLUMNS + EXTRA_COLUMNS)
    frame = frame.astype({"rf_h": "Int64", "rf_w": "Int64", "jump_h": float, "jump_w": float, "start_h": float,
                          "start_w": float})
    frame.attrs["input_shape"] = tuple(int(s) for s in x.shape[1:])
    frame.attrs["error"] = tracer.error
    frame.attrs["failed_layer"] = tracer.failed_layer
    return frame


def table_to_csv(table: pd.DataFrame) -> str:
    """The nine CSV columns, whole numbers without a trailing ``.0``."""
    def fmt(value: Any) -> str:
        if value is None or pd.isna(value):
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    out = table[CSV_COLUMNS].copy()
    for column in CSV_COLUMNS[3:]:
        out[column] = [fmt(v) for v in out[column]]
    return out.to_csv(index=False)


def architecture_table(name: str, input_shape: Sequence[int] | None = None) -> pd.DataFrame:
    """The table for a registered model name, built with weights on the ``meta`` device where possible
    (no memory, no initialisation: a receptive field depends on the architecture only)."""
    from explorer.models import build_model, get_entry

    entry = get_entry(name)
    shape = tuple(input_shape) if input_shape else entry.input_shape
    try:
        with torch.device("meta"):
            model = entry.builder()
        model.eval()
    except Exception:  # a builder that computes with tensors (RegNet) cannot run on meta
        model = build_model(name)
    return receptive_field_table(model, shape)
