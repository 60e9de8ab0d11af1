"""A memory budget per request, checked before the work starts.

One click must not be able to take the server down: Grad-CAM of every layer of efficientnet_b7 at 600×600
once peaked at 9.6 GB. The cost of a pass is measured before it runs (:mod:`explorer.analysis.memory_estimate`:
the same pass on a weightless meta twin of the model, at the real input size, counting every byte PyTorch
allocates), times :data:`ALLOCATOR_FACTOR` for what the C allocator holds beyond that, and compared with
``EXPLORER_REQUEST_MB`` (default 1024 MB). Above it the work degrades (Grad-CAM of the latest layers that
fit, in one pass) or is refused with a clear message; the largest input side the sidebar offers for a model
is the largest at which its shared pass fits. The same figure is what a heavy pass reserves from the
server-wide budget (``explorer.core.memory_gate``), so concurrency cannot multiply it.
"""
from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import torch.nn as nn

from explorer.analysis.memory_estimate import cam_pass_peak, input_gradient_peak, shared_pass_peak
from explorer.analysis.page_pass import ANALYSIS_BUDGET_BYTES
from explorer.core import MemoryGate, env_positive_number, server_gate

REQUEST_BUDGET_ENV = "EXPLORER_REQUEST_MB"
DEFAULT_REQUEST_MB = 1024
# Resident memory a pass adds (VmHWM in a fresh process) per byte PyTorch allocates for it: glibc keeps freed
# chunks in its arenas and oneDNN allocates its own buffers. Measured 0.97-1.65 over resnet18, vgg16, googlenet,
# densenet121, efficientnet_b0 and efficientnet_b7 at 224-448 px, Grad-CAM of every layer, the shared pass and
# an input gradient (scripts/memory_calibration.py; docs/SECURITY.md has the table).
ALLOCATOR_FACTOR = 1.6
# Plus a fixed amount per pass: small passes cost relatively more (resnet18's 83 MB input gradient: 148 MB).
FIXED_OVERHEAD = 32 * 2**20
MAX_SIDE = 1024  # the sidebar's absolute limit, whatever the model (public as MAX_INPUT_SIDE)
PASS_KINDS = ("cam", "shared", "grad")


class RequestTooLargeError(ValueError):
    """A request whose estimated memory exceeds the per-request budget (``needed`` and ``budget`` in bytes)."""

    def __init__(self, message: str, needed: int, budget: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.budget = budget


def request_budget_bytes() -> int:
    """``EXPLORER_REQUEST_MB`` (megabytes) if set, else 1024 MB."""
    return int(env_positive_number(REQUEST_BUDGET_ENV, DEFAULT_REQUEST_MB) * 2**20)


def pass_cost(model: nn.Module, input_shape: Sequence[int], kind: str = "cam",
              layers: Sequence[str] | None = None, max_bytes: int | None = ANALYSIS_BUDGET_BYTES) -> int:
    """Resident bytes one pass is expected to add at ``input_shape`` (C, H, W): ``kind`` "cam" (Grad-CAM of
    ``layers`` in one pass, None: every layer), "shared" (the pages' shared pass keeping ``max_bytes`` of
    activations) or "grad" (one backward pass to the input: Saliency, a step of Integrated Gradients or
    Guided Grad-CAM). PyTorch's measured peak × :data:`ALLOCATOR_FACTOR` + :data:`FIXED_OVERHEAD`."""
    if kind == "cam":
        peak = cam_pass_peak(model, input_shape, layers)
    elif kind == "shared":
        peak = shared_pass_peak(model, input_shape, max_bytes)
    elif kind == "grad":
        peak = input_gradient_peak(model, input_shape)
    else:
        raise ValueError(f"kind must be one of {PASS_KINDS}, got {kind!r}")
    return int(math.ceil(peak * ALLOCATOR_FACTOR)) + FIXED_OVERHEAD


def _field(call: Any, name: str) -> Any:
    return call.get(name, False) if isinstance(call, Mapping) else getattr(call, name, False)


def _values(call: Any) -> int:
    shape = _field(call, "shape")
    return math.prod(shape) if shape else 0


def cam_candidates(calls: Sequence[Any]) -> list[str]:
    """The calls a Grad-CAM layer picker offers: conv calls and blocks with a (C, H, W) output."""
    return [_field(c, "name") for c in calls
            if (_field(c, "shape") is not None and len(_field(c, "shape")) == 3 and not _field(c, "is_function")
                and (_field(c, "is_conv") or not _field(c, "is_leaf")))]


def cam_layers_within(model: nn.Module, input_shape: Sequence[int], calls: Sequence[Any],
                      budget: int | None = None) -> tuple[list[str], bool]:
    """(CAM layers whose Grad-CAM fits the budget in one pass, True when all of them fit).

    Degrades to the latest layers (the ones Grad-CAM is usually read at): the graph of a pass starts at its
    first CAM layer, so dropping early layers is what saves memory. The first layer kept is found by
    bisection over measured costs, the first probe guessed from the outputs that follow each layer.
    """
    budget = request_budget_bytes() if budget is None else budget
    candidates = cam_candidates(calls)
    if not candidates or pass_cost(model, input_shape, "cam") <= budget:
        return candidates, True

    def fits(start: int) -> bool:
        return pass_cost(model, input_shape, "cam", candidates[start:]) <= budget

    last = len(candidates) - 1
    if not fits(last):
        return [], False
    # Guess: the pass's cost follows the leaf outputs after its first layer (how big the graph is).
    ordered = sorted(calls, key=lambda c: _field(c, "order"))
    position = {_field(c, "name"): i for i, c in enumerate(ordered)}
    suffix = [0] * (len(ordered) + 1)
    for i in range(len(ordered) - 1, -1, -1):
        leaf = _field(ordered[i], "is_leaf") or _field(ordered[i], "is_function")
        suffix[i] = suffix[i + 1] + (_values(ordered[i]) if leaf else 0)
    whole = pass_cost(model, input_shape, "cam")
    share = budget / whole
    guess = next((k for k, name in enumerate(candidates) if suffix[position[name]] <= share * suffix[0]), last)
    low, high = 0, last  # fits(high) holds; the answer is the smallest start that fits
    probe = min(max(guess, low), high - 1)
    while low < high:
        if fits(probe):
            high = probe
        else:
            low = probe + 1
        probe = (low + high) // 2
    return candidates[high:], False


def max_input_side(model: nn.Module, channels: int = 3, budget: int | None = None, kind: str = "shared",
                   natural_side: int | None = None, max_bytes: int | None = ANALYSIS_BUDGET_BYTES) -> int:
    """The largest square input side (≤ :data:`MAX_SIDE`) at which the pass ``kind`` fits the budget
    (``max_bytes``: the activations a shared pass keeps).

    Activations of a CNN grow with H×W: the cost is fitted as a + b·side² through two measured sides and the side
    solved for; measured costs around that guess then bracket the answer, bisected to within 2 %. At least 8 px
    (the page refuses with the budget's message when even that does not fit).
    """
    budget = request_budget_bytes() if budget is None else budget

    def cost(side: int) -> int:
        return pass_cost(model, (channels, side, side), kind, max_bytes=max_bytes)

    reference = max(32, min(natural_side or 224, MAX_SIDE // 2))
    try:
        if cost(MAX_SIDE) <= budget:
            return MAX_SIDE
        small, large = cost(reference), cost(2 * reference)
    except Exception:  # a model the meta device cannot run (data-dependent code): no cap beyond the absolute one
        return MAX_SIDE
    slope = max(large - small, 1) / (3 * reference * reference)
    intercept = small - slope * reference * reference
    side = int(math.sqrt(max(budget - intercept, 0) / slope)) if budget > intercept else reference
    side = max(8, min(side, MAX_SIDE - 1))

    def fits(side: int) -> bool:
        try:
            return cost(side) <= budget
        except Exception:  # too small for the network: counts as fitting (the page then says why)
            return True

    # Bracket the answer from the fitted guess (fits at ``low``, not at ``high``), then bisect to within 2 %.
    low, high = side, MAX_SIDE
    if fits(side):
        while True:
            up = min(MAX_SIDE, int(low * 1.08) + 1)
            if up >= high or not fits(up):
                high = up
                break
            low = up
    else:
        high = side
        low = max(8, int(side * 0.92))
        while low > 8 and not fits(low):
            high, low = low, max(8, int(low * 0.92))
    while high - low > max(2, low // 50):
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


@contextmanager
def reserved_pass(model: nn.Module, input_shape: Sequence[int], kind: str = "cam",
                  layers: Sequence[str] | None = None, budget: int | None = None,
                  gate: MemoryGate | None = None, max_bytes: int | None = ANALYSIS_BUDGET_BYTES) -> Iterator[int]:
    """Run a heavy pass inside this block: its cost (:func:`pass_cost`) is checked against the per-request
    budget (:class:`RequestTooLargeError`), then reserved from the server-wide gate (``explorer.core.server_gate``:
    waits its turn; :class:`explorer.core.ServerMemoryError` when it never fits or waited too long).
    Yields the bytes reserved."""
    needed = pass_cost(model, input_shape, kind, layers, max_bytes)
    budget = request_budget_bytes() if budget is None else budget
    if needed > budget:
        raise RequestTooLargeError(f"this {kind} pass at this input size would exceed the memory budget per request",
                                   needed, budget)
    with (gate or server_gate()).reserve(needed) as held:
        yield held


# Sources whose models are code that ships with the installed packages: a given name is the same network until torch,
# torchvision, timm or this project changes (an operator's file or a training run can change under the same name).
_SHIPPED_SOURCES = ("project", "torchvision", "timm")


def largest_side_key(name: str) -> str | None:
    """What :func:`largest_input_side` of ``name`` depends on besides the budgets, as text, when ``name`` is a shipped
    network (a torchvision, timm or project model of the registry): the versions of torch, torchvision and timm and
    a digest of this project's ``explorer.analysis``, ``explorer.models`` and ``explorer.core`` sources. None for
    anything else: an operator's model file or a training run (its code can change under the same name), an
    ``arch:`` spec (any text a student types: kept on disk, they would pile up) or an unknown name.

    A cache kept across server restarts stores the side under this text (``ui.memory_budget``): measuring it runs the
    model on the meta device, whose first use imports ``torch._dynamo`` (~1 s, most of a cold start's first page),
    and a new version of any of these measures again."""
    from explorer.models import ModelRef, get_entry

    ref = ModelRef.parse(name)
    if ref.kind != "registry":
        return None
    try:
        source = get_entry(ref.value).source
    except Exception:  # an unknown name: reported where the model loads
        return None
    return _shipped_code_key() if source in _SHIPPED_SOURCES else None


@functools.lru_cache(maxsize=1)
def _shipped_code_key() -> str:
    import hashlib
    import importlib.metadata
    from pathlib import Path

    import torch

    versions = [f"torch {torch.__version__}"]
    for package in ("torchvision", "timm"):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} -")
    digest = hashlib.sha1()
    root = Path(__file__).resolve().parents[1]
    for folder in ("analysis", "core", "models"):  # the estimate, the hooks and locks it uses, the networks
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return " | ".join([*versions, f"explorer {digest.hexdigest()[:16]}"])


def largest_input_side(name: str, budget: int | None = None, max_bytes: int | None = ANALYSIS_BUDGET_BYTES) -> int:
    """:func:`max_input_side` of the model ``name`` (a registry name or an ``arch:`` spec) for the sidebar, before
    anything is loaded: the network is built on the meta device (no weights, no memory). A training run (small
    teaching networks) or a model the meta device cannot build gets :data:`MAX_SIDE`."""
    import torch

    from explorer.models import ModelRef, build_model, natural_input_shape

    ref = ModelRef.parse(name)
    if ref.kind == "run":
        return MAX_SIDE
    try:
        channels, *natural = natural_input_shape(ref)
        with torch.device("meta"):
            model = build_model(ref)
    except Exception:  # reported where the model loads; no cap beyond the absolute one here
        return MAX_SIDE
    side = max_input_side(model, channels, budget=budget, natural_side=max(natural), max_bytes=max_bytes)
    typed = typed_side_limit(name)  # built for the input it is given, within a typed input's limits
    return side if typed is None else min(side, typed)


def typed_side_limit(name: str) -> int | None:
    """The largest side a network typed without an ``in-`` token is built for (the grammar's limit on a typed
    input), else None: a registry name, a run, a spec that declares its input, or one that does not parse (reported
    where the model loads)."""
    from explorer.models import ModelRef
    from explorer.models.arch import MAX_TYPED_INPUT_SIDE, declares_input

    try:
        ref = ModelRef.parse(name)
        return MAX_TYPED_INPUT_SIDE if ref.kind == "arch" and not declares_input(ref.value) else None
    except Exception:
        return None
