"""The main path through a layer table: one row per spatial step a student follows on a chart.

Plotting every leaf makes branching networks spiky (GoogLeNet's inception branches go 64 → 96 → 16 → 32
channels and back inside one block). Here a container whose direct children merge branches (a ``cat`` or an
``add`` leaf: inception, residual and dense blocks; a ``mul``: squeeze-excitation) is one point, its output;
elsewhere each leaf convolution or pooling layer is one point."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

MERGE_TYPES = frozenset({"cat", "add", "mul", "concat", "stack"})  # functional ops recorded by the layer table;
# "mul": a squeeze-excitation block scales its input (EfficientNet, MobileNetV3), one step, not a dip to 1×1


def _is_spatial(shape: str) -> bool:
    return isinstance(shape, str) and " | " not in shape and shape.count("x") == 2


def _is_conv_or_pool(kind: str) -> bool:
    return "Conv" in kind or "Pool" in kind


def main_path(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``layer_table(...)`` on the main path, in forward order, with ``channels``, ``height`` and
    ``width`` columns (ints) parsed from their 3-d ``output_shape``; non-spatial rows are left out."""
    import pandas as pd  # here: the package imports this module eagerly, and the first page draws no table

    rows = table.reset_index(drop=True)
    keep: list[int] = []
    skip_below: int | None = None  # depth of a merged block whose inside is skipped
    for index, row in rows.iterrows():
        depth = int(row["depth"])
        if skip_below is not None:
            if depth > skip_below:
                continue
            skip_below = None
        if not _is_spatial(row["output_shape"]):
            continue
        if row["is_leaf"]:
            if _is_conv_or_pool(str(row["type"])):
                keep.append(index)
            continue
        children = []
        for later in range(index + 1, len(rows)):
            if int(rows.at[later, "depth"]) <= depth:
                break
            if int(rows.at[later, "depth"]) == depth + 1:
                children.append(later)
        if any(rows.at[c, "is_leaf"] and str(rows.at[c, "type"]) in MERGE_TYPES for c in children):
            keep.append(index)
            skip_below = depth
    path = rows.loc[keep].copy()
    dims = path["output_shape"].str.split("x", expand=True).astype(int) if len(path) else None
    path["channels"] = dims[0] if dims is not None else pd.Series(dtype=int)
    path["height"] = dims[1] if dims is not None else pd.Series(dtype=int)
    path["width"] = dims[2] if dims is not None else pd.Series(dtype=int)
    return path.reset_index(drop=True)
