"""A memory budget per request, checked before the work starts.

One click must not be able to take the server down: Grad-CAM of every layer of efficientnet_b7 at 600×600
once peaked at 9.6 GB (every layer's output kept, plus the autograd graph). The cost of a pass is estimated
from the calls the shared pass already listed (each call's output shape) and compared with
``EXPLORER_REQUEST_MB`` (default 1024 MB); above it the work degrades (Grad-CAM of the latest layers that
fit, in one pass) or is refused with a clear message, and the largest input side is derived from it.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

REQUEST_BUDGET_ENV = "EXPLORER_REQUEST_MB"
DEFAULT_REQUEST_MB = 1024
# Grad-CAM over a stretch of layers keeps, per value of each output in it: the output (the CAM needs it),
# the tensors autograd saves for the backward pass (about one more), and the gradient handed back.
CAM_GRAPH_FACTOR = 3
BYTES_PER_VALUE = 4  # float32


class RequestTooLargeError(ValueError):
    """A request whose estimated memory exceeds the per-request budget (``needed`` and ``budget`` in bytes)."""

    def __init__(self, message: str, needed: int, budget: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.budget = budget


def request_budget_bytes() -> int:
    """``EXPLORER_REQUEST_MB`` (megabytes) if set, else 1024 MB."""
    text = os.environ.get(REQUEST_BUDGET_ENV, "").strip()
    if not text:
        return DEFAULT_REQUEST_MB * 2**20
    try:
        megabytes = float(text)
    except ValueError:
        raise ValueError(f"{REQUEST_BUDGET_ENV} must be a number of megabytes, got {text!r}") from None
    if not megabytes > 0:
        raise ValueError(f"{REQUEST_BUDGET_ENV} must be positive, got {text!r}")
    return int(megabytes * 2**20)


def _field(call: Any, name: str) -> Any:
    return call.get(name, False) if isinstance(call, Mapping) else getattr(call, name, False)


def _values(call: Any) -> int:
    shape = _field(call, "shape")
    return math.prod(shape) if shape else 0


def _leaf(call: Any) -> bool:
    return bool(_field(call, "is_leaf") or _field(call, "is_function"))


def cam_candidates(calls: Sequence[Any]) -> list[str]:
    """The calls a Grad-CAM layer picker offers: conv calls and blocks with a (C, H, W) output."""
    return [_field(c, "name") for c in calls
            if (_field(c, "shape") is not None and len(_field(c, "shape")) == 3 and not _field(c, "is_function")
                and (_field(c, "is_conv") or not _field(c, "is_leaf")))]


def cam_pass_bytes(calls: Sequence[Any], first: str | None = None) -> int:
    """Estimated bytes of one Grad-CAM pass whose graph starts at call ``first`` (None: the first call):
    the outputs of every leaf call from there on, times :data:`CAM_GRAPH_FACTOR`."""
    ordered = sorted(calls, key=lambda c: _field(c, "order"))
    names = [_field(c, "name") for c in ordered]
    start = names.index(first) if first is not None else 0
    return CAM_GRAPH_FACTOR * BYTES_PER_VALUE * sum(_values(c) for c in ordered[start:] if _leaf(c))


def cam_layers_within(calls: Sequence[Any], budget: int | None = None) -> tuple[list[str], bool]:
    """(CAM layers whose Grad-CAM fits the budget in one pass, True when all of them fit).

    Degrades to the latest layers (the ones Grad-CAM is usually read at): the graph of a pass starts at its
    first CAM layer, so dropping early layers is what saves memory.
    """
    budget = request_budget_bytes() if budget is None else budget
    candidates = cam_candidates(calls)
    if not candidates or cam_pass_bytes(calls) <= budget:
        return candidates, True
    kept = [name for name in candidates if cam_pass_bytes(calls, name) <= budget]
    return kept, False


def max_input_side(calls: Sequence[Any], input_hw: tuple[int, int], budget: int | None = None,
                   natural_hw: tuple[int, int] | None = None) -> int:
    """The largest square side at which the latest CAM layer's pass still fits the budget, scaling the
    cost measured at ``input_hw`` with the pixel count (activations of a CNN grow with H×W). Never below
    the model's natural side (``natural_hw``), which every model must be allowed to run at."""
    budget = request_budget_bytes() if budget is None else budget
    candidates = cam_candidates(calls)
    cost = cam_pass_bytes(calls, candidates[-1] if candidates else None)
    floor = max(natural_hw) if natural_hw else 1
    if cost <= 0:
        return max(floor, 1024)
    pixels = input_hw[0] * input_hw[1] * budget / cost
    return max(floor, int(math.sqrt(pixels)))
