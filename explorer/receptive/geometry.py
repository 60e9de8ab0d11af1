"""Per-axis geometry of a traced tensor: its field in input pixels, what else is known about it, and the
notes that explain a row of the table."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

AXES = ("h", "w")


# --- per-axis geometry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AxisField:
    """The field of unit 0 along one axis, in input pixel coordinates (inclusive), and the jump between units.

    Unit ``i`` sees ``[lo + i·jump, hi + i·jump]``. ``collapsed``: every position was pooled/flattened
    into one, so the field is the union of all of them. ``exact``: no approximation was needed.
    """

    lo: float
    hi: float
    jump: float
    collapsed: bool = False
    exact: bool = True

    def window(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> "AxisField":
        if self.collapsed:
            return self
        reach = dilation * (kernel - 1)
        return replace(self, lo=self.lo - padding * self.jump, hi=self.hi + (reach - padding) * self.jump,
                       jump=self.jump * stride)

    def shift(self, units: float) -> "AxisField":
        if self.collapsed:
            return self
        return replace(self, lo=self.lo + units * self.jump, hi=self.hi + units * self.jump)

    def collapse(self, units: int) -> "AxisField":
        if self.collapsed:
            return self
        return replace(self, hi=self.hi + (units - 1) * self.jump, jump=self.jump * units, collapsed=True)

    def inexact(self) -> "AxisField":
        return replace(self, exact=False)


def union_of(fields: Sequence[AxisField]) -> AxisField:
    jumps = {f.jump for f in fields if not f.collapsed}
    exact = all(f.exact for f in fields) and len(jumps) <= 1
    return AxisField(lo=min(f.lo for f in fields), hi=max(f.hi for f in fields),
                     jump=max(f.jump for f in fields), collapsed=any(f.collapsed for f in fields), exact=exact)


@dataclass(frozen=True)
class FieldInfo:
    """What we know about one tensor computed from the input."""

    dims: tuple[str | None, ...]  # per tensor dim: "h", "w" (which spatial axis it carries) or None
    h: AxisField
    w: AxisField
    depth: int = 0  # conv/pool layers on the longest path from the input
    context: bool = False  # also depends on the whole image through a global branch
    unknown: str | None = None  # why the field could not be computed

    def axis(self, name: str) -> AxisField:
        return self.h if name == "h" else self.w

    def with_axes(self, fields: dict[str, AxisField], **changes: Any) -> "FieldInfo":
        return replace(self, h=fields.get("h", self.h), w=fields.get("w", self.w), **changes)


_UNKNOWN_FIELD = AxisField(math.nan, math.nan, math.nan, exact=False)

# Explanations in the table: a code (the page translates it) with parameters, and the English text.
NOTE_TEXT = {
    "merge": "union of {n} inputs",
    "gate": "gated by a global branch: every unit also depends on the whole image",
    "context": "also depends on the whole image through a global branch",
    "global_pool": "global pooling: union of every position (whole image)",
    "flatten": "flattened: later layers see every position (whole image)",
    "fully_connected": "fully connected across positions",
    "mix_positions": "mixes every position",
    "adaptive_same": "adaptive pooling to the size it already has: does nothing at this input size",
    "adaptive_bins": "adaptive pooling {size_in}→{size_out}: bins of {smallest}–{largest} units, largest field shown",
    "resample": "resampling: field approximate",
    "transposed": "strided transposed convolution: field covers every stride phase, so it may be larger than what reaches a unit (never smaller)",
    "pad_copy": "{mode} padding copies border units: border fields differ",
    "concat_spatial": "concatenated along a spatial axis: field approximate",
    "norm_stats": "{op} statistics over positions: every unit depends on the whole image",
    "batch_stats": "batch statistics (training mode) mix positions",
    "unknown": "{reason}",
    "after_unknown": "after an unknown operation ({reason})",
    "approximate": "approximate (after a non-uniform layer)",
}
Note = tuple  # (code, ((param, value), ...))


def make_note(code: str, **params: Any) -> Note:
    return code, tuple(sorted(params.items()))


def note_text(note: Note) -> str:
    code, params = note
    return NOTE_TEXT[code].format(**dict(params))


@dataclass
class RuleResult:
    """What an op did: the output infos (one per output tensor) and how to describe it."""

    infos: list[FieldInfo]
    kind: str = "pointwise"
    notable: bool = False
    merge: int = 0
    notes: list[Note] = field(default_factory=list)



def unknown_info(ndim: int, reason: str) -> FieldInfo:
    return FieldInfo(dims=(None,) * ndim, h=_UNKNOWN_FIELD, w=_UNKNOWN_FIELD, unknown=reason)
