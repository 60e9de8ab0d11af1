"""What a pass will cost in memory, measured before it runs: the same code on a weightless twin of the model.

A formula over layer outputs undercounts some architectures badly (efficientnet's SiLU, squeeze-excitation
and BatchNorm save more for the backward pass than vgg16's ReLUs; the recording pass clones CAM outputs), so
the estimate runs the very pass the page will run (``run_pass``, the gradient, the Grad-CAM sums) on a copy
of the model whose parameters live on PyTorch's ``meta`` device: every op computes shapes only, no value is
stored, and :class:`LiveBytes` adds up the bytes of every tensor storage an op creates for as long as it
stays alive (autograd's saved tensors, kept outputs, clones, gradients, temporaries). Its peak at the real
input size is exact for what PyTorch allocates; what the C allocator adds on top (glibc arenas, oneDNN
buffers) is the calibrated factor in :mod:`explorer.analysis.budget`. Costs are cached per (model, input).
"""
from __future__ import annotations

import copy
import itertools
import threading
import weakref
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from explorer.analysis.hooks import run_pass
from explorer.analysis.layer_calls import logits_of, parse_call
from explorer.analysis.shared_pass import gradcam_from
from explorer.core import model_lock, strip_pass_state

META = torch.device("meta")


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the storages that ops create while they are alive; ``peak`` is the most at once.

    Storages that exist before (``exclude``: parameters, the input) and outputs that are views of them or
    in-place results are not counted again. Works on any device; on ``meta`` nothing is allocated.
    """

    def __init__(self, exclude: Sequence[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._seen: "weakref.WeakSet[Any]" = weakref.WeakSet()
        for tensor in exclude:
            self._seen.add(tensor.untyped_storage())

    def _freed(self, nbytes: int) -> None:
        with self._lock:
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            if storage in self._seen:
                continue
            nbytes = storage.nbytes()
            self._seen.add(storage)
            weakref.finalize(storage, self._freed, nbytes)
            with self._lock:
                self.live += nbytes
                self.peak = max(self.peak, self.live)
        return out


def peak_bytes(model: nn.Module, fn: Callable[[torch.Tensor], Any], input_shape: Sequence[int]) -> int:
    """Peak bytes PyTorch allocates while ``fn(x)`` runs on ``model`` (a meta twin) with a meta input
    ``[1, *input_shape]``; factory calls without a device (``torch.empty(shape)``) land on meta too."""
    params = list(itertools.chain(model.parameters(), model.buffers()))
    with torch.device(META):
        x = torch.empty(1, *input_shape)
        tracker = LiveBytes(exclude=[*params, x])
        with tracker:
            result = fn(x)
            del result
    return tracker.peak


# ------------------------------------------------------------------------------------------ the twin
_twins: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()
_twins_lock = threading.Lock()


def meta_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are on the meta device (nothing copied but the
    module objects), cached while the model lives. Estimates run on it, never taking the shared model's lock
    for longer than the copy."""
    if next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device == META:
        return model
    with _twins_lock:
        twin = _twins.get(model)
    if twin is not None:
        return twin
    with model_lock(model):  # no other pass's hooks sit on it meanwhile (hooks live under this lock)
        memo: dict[int, Any] = {}
        for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
            empty = torch.empty_like(tensor, device=META)
            memo[id(tensor)] = nn.Parameter(empty, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else empty
        twin = copy.deepcopy(model, memo)
    # what a pass of this thread had put on the model stays with it (the lock is re-entrant: a copy made inside a
    # pass would run the original's patched forwards), and so do hooks the model carries for its own reasons
    strip_pass_state(twin)
    for module in twin.modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            getattr(module, kind, {}).clear()
    twin.eval()
    with _twins_lock:
        _twins[model] = twin
    return twin


# ------------------------------------------------------------------------------------------ the passes
def _cam_pass(model: nn.Module, layers: Sequence[str] | None) -> Callable[[torch.Tensor], Any]:
    """What ``analyze(model, x, layers, layers=[], cam_all=layers is None)`` allocates: the recording pass
    (graph from the first CAM layer on), one gradient for every CAM output, the Grad-CAM sums."""
    specs = [parse_call(n) for n in (layers or [])]

    def run(x: torch.Tensor) -> Any:
        result = run_pass(model, x, record=[], cam_specs=specs, cam_all=layers is None)
        scores = logits_of(result.output)
        acts = list(result.cam_acts.values())
        cams = []
        if acts and scores.requires_grad:
            grads = torch.autograd.grad(scores[0, 0], acts, allow_unused=True)
            for act, grad in zip(acts, grads):
                cams.append(gradcam_from(act, torch.zeros_like(act) if grad is None else grad))
        return cams

    return run


def _shared_pass(model: nn.Module, default_layer: str, max_bytes: int | None) -> Callable[[torch.Tensor], Any]:
    """What ``page_analysis`` allocates: every call recorded within ``max_bytes``, Grad-CAM of the default layer."""
    def run(x: torch.Tensor) -> Any:
        # on_device as page_analysis: the kept tensors stay where the network ran (on the twin, meta; a copy
        # "to the CPU" would count them twice).
        result = run_pass(model, x, record=None, cam_specs=[parse_call(default_layer)], max_bytes=max_bytes,
                          on_device=True)
        scores = logits_of(result.output)
        acts = list(result.cam_acts.values())
        if acts and scores.requires_grad:
            grads = torch.autograd.grad(scores[0, 0], acts, allow_unused=True)
            return [result.tensors, [gradcam_from(a, g) for a, g in zip(acts, grads) if g is not None]]
        return result.tensors

    return run


def _input_gradient_pass(model: nn.Module) -> Callable[[torch.Tensor], Any]:
    """A backward pass through the whole network to the input: one step of Saliency, Integrated Gradients
    or Guided Grad-CAM (the attributions run one image, one step at a time)."""
    def run(x: torch.Tensor) -> Any:
        with model_lock(model), torch.enable_grad():
            x = x.detach().requires_grad_(True)
            scores = logits_of(model(x))
            return torch.autograd.grad(scores[0, 0], x)

    return run


_costs: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _cached(model: nn.Module, key: tuple, compute: Callable[[nn.Module], int]) -> int:
    twin = meta_twin(model)
    with _twins_lock:
        per_model = _costs.setdefault(model, {})
        if key in per_model:
            return per_model[key]
    value = compute(twin)
    with _twins_lock:
        per_model[key] = value
    return value


def cam_pass_peak(model: nn.Module, input_shape: Sequence[int], layers: Sequence[str] | None = None) -> int:
    """Peak bytes PyTorch allocates for Grad-CAM of ``layers`` in one pass (None: every conv and block, as
    ``analyze(..., cam_all=True)``) at ``input_shape`` (C, H, W)."""
    shape = tuple(int(v) for v in input_shape)
    key = ("cam", shape, None if layers is None else tuple(layers))
    return _cached(model, key, lambda twin: peak_bytes(twin, _cam_pass(twin, layers), shape))


def shared_pass_peak(model: nn.Module, input_shape: Sequence[int], max_bytes: int | None,
                     default_layer: str | None = None) -> int:
    """Peak bytes PyTorch allocates for the pages' shared pass (``page_analysis``) at ``input_shape``."""
    from explorer.analysis.layers import default_cam_layer

    shape = tuple(int(v) for v in input_shape)

    def compute(twin: nn.Module) -> int:
        layer = default_layer or default_cam_layer(twin, shape)
        return peak_bytes(twin, _shared_pass(twin, layer, max_bytes), shape)

    return _cached(model, ("shared", shape, max_bytes, default_layer), compute)


def input_gradient_peak(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Peak bytes PyTorch allocates for one backward pass from a class score to the input."""
    shape = tuple(int(v) for v in input_shape)
    return _cached(model, ("input_grad", shape), lambda twin: peak_bytes(twin, _input_gradient_pass(twin), shape))
