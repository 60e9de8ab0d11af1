"""Reading the table: the field of one unit (:class:`FieldBox`), landmarks (:func:`summarize`) and growth
of the field with depth (:func:`growth_by_depth`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FieldBox:
    """A unit's field in input pixel coordinates (inclusive bounds), unclipped and clipped to the image."""

    top: float
    left: float
    bottom: float
    right: float
    image_h: int
    image_w: int

    @property
    def clipped(self) -> tuple[float, float, float, float]:
        """(top, left, bottom, right) inside the image."""
        return (max(self.top, 0.0), max(self.left, 0.0), min(self.bottom, self.image_h - 1.0),
                min(self.right, self.image_w - 1.0))

    @property
    def is_clipped(self) -> bool:
        return self.clipped != (self.top, self.left, self.bottom, self.right)

    @property
    def height(self) -> float:
        return self.bottom - self.top + 1

    @property
    def width(self) -> float:
        return self.right - self.left + 1

    def rectangle(self) -> tuple[float, float, float, float]:
        """Clipped (x0, y0, x1, y1) edges for drawing over an image whose pixel centres are at integers."""
        top, left, bottom, right = self.clipped
        return left - 0.5, top - 0.5, right + 0.5, bottom + 0.5


def _row_of(table: pd.DataFrame, layer: str) -> pd.Series:
    matches = table.index[table["layer"] == layer]
    if len(matches) == 0:
        raise ValueError(f"no layer named {layer!r} in the table")
    return table.loc[matches[0]]


def field_box(table: pd.DataFrame, layer: str, position: tuple[int, int],
              image_hw: tuple[int, int] | None = None) -> FieldBox:
    """The field of the unit at ``position`` = (row, col) of ``layer``'s output map, in input pixels."""
    row = _row_of(table, layer)
    if image_hw is None:
        shape = table.attrs.get("input_shape")
        if not shape:
            raise ValueError("pass image_hw: the table does not record its input shape")
        image_hw = (int(shape[-2]), int(shape[-1]))
    if row["unknown"] or pd.isna(row["rf_h"]):
        raise ValueError(f"the field of {layer!r} is unknown ({row['note']})")
    r, c = int(position[0]), int(position[1])
    if not (0 <= r < int(row["out_h"]) and 0 <= c < int(row["out_w"])):
        raise ValueError(f"position {(r, c)} is outside {layer!r}'s {row['out_h']}×{row['out_w']} output map")
    top = float(row["start_h"]) - (float(row["rf_h"]) - 1) / 2 + r * float(row["jump_h"])
    left = float(row["start_w"]) - (float(row["rf_w"]) - 1) / 2 + c * float(row["jump_w"])
    return FieldBox(top=top, left=left, bottom=top + float(row["rf_h"]) - 1, right=left + float(row["rf_w"]) - 1,
                    image_h=int(image_hw[0]), image_w=int(image_hw[1]))


@dataclass(frozen=True)
class FieldSummary:
    """What the page says about a model: its last convolution and where the whole image is first seen."""

    image_h: int
    image_w: int
    last_conv: str | None
    last_conv_rf: tuple[int, int] | None
    last_conv_jump: tuple[float, float] | None
    last_conv_map: tuple[int, int] | None
    last_conv_whole: bool
    first_whole: str | None  # first layer whose every unit sees the whole image
    final_map: str | None  # last layer with a spatial map larger than 1×1
    final_map_rf: tuple[int, int] | None


def summarize(table: pd.DataFrame, image_hw: tuple[int, int] | None = None) -> FieldSummary:
    """The last convolution (deepest; the largest field among the deepest) and other landmarks."""
    if image_hw is None:
        shape = table.attrs.get("input_shape") or (0, 0, 0)
        image_hw = (int(shape[-2]), int(shape[-1]))
    known = table[~table["unknown"].astype(bool)]
    convs = known[known["kind"] == "conv"]
    last = None
    if len(convs):
        deepest = convs[convs["depth"] == convs["depth"].max()]
        order = deepest.assign(_rf=deepest["rf_h"].astype(float) * deepest["rf_w"].astype(float))
        last = order.loc[order["_rf"][::-1].idxmax()]
    whole = known[known["sees_whole_image"].astype(bool)]
    maps = known[(known["out_h"] * known["out_w"] > 1)]
    final = maps.iloc[-1] if len(maps) else None
    return FieldSummary(
        image_h=int(image_hw[0]), image_w=int(image_hw[1]),
        last_conv=None if last is None else str(last["layer"]),
        last_conv_rf=None if last is None else (int(last["rf_h"]), int(last["rf_w"])),
        last_conv_jump=None if last is None else (float(last["jump_h"]), float(last["jump_w"])),
        last_conv_map=None if last is None else (int(last["out_h"]), int(last["out_w"])),
        last_conv_whole=bool(last is not None and last["sees_whole_image"]),
        first_whole=None if not len(whole) else str(whole.iloc[0]["layer"]),
        final_map=None if final is None else str(final["layer"]),
        final_map_rf=None if final is None else (int(final["rf_h"]), int(final["rf_w"])),
    )


def growth_by_depth(table: pd.DataFrame) -> pd.DataFrame:
    """Largest field (per axis, max of h and w) of the conv/pool layers at each depth, for charts."""
    known = table[~table["unknown"].astype(bool) & table["kind"].isin(["conv", "pool"])]
    if not len(known):
        return pd.DataFrame({"depth": [0], "rf": [1], "layer": ["input"]})
    rf = np.maximum(known["rf_h"].astype(float), known["rf_w"].astype(float))
    frame = pd.DataFrame({"depth": known["depth"].astype(int), "rf": rf, "layer": known["layer"]})
    best = frame.loc[frame.groupby("depth")["rf"].idxmax()].sort_values("depth")
    start = pd.DataFrame({"depth": [0], "rf": [1.0], "layer": ["input"]})
    return pd.concat([start, best], ignore_index=True)


def teaching_layer(table: pd.DataFrame, image_hw: tuple[int, int], share: float = 0.5) -> str | None:
    """The layer a unit view opens on: the convolution with the largest field that spans at most ``share`` of the
    image on both axes (a field covering the whole image shows nothing about locality; the first such layer on a
    tie, so a main-path conv before a shortcut's), else the first convolution. None without a known convolution.
    """
    convs = table[~table["unknown"].astype(bool) & (table["kind"] == "conv")]
    if not len(convs):
        return None
    h, w = image_hw
    fits = convs[(convs["rf_h"].astype(float) <= share * h) & (convs["rf_w"].astype(float) <= share * w)]
    if not len(fits):
        return str(convs["layer"].iloc[0])
    side = fits[["rf_h", "rf_w"]].astype(float).max(axis=1)
    return str(fits.loc[side.idxmax(), "layer"])
