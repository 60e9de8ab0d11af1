"""Following the graph the model really executes: a ``TorchFunctionMode`` that sees every torch function and
tensor method, plus per-module hooks (filtered to this thread) that say which module each call belongs to.

Hooks are registered through ``explorer.core.hooked`` (the model's lock held, every hook removed in ``finally``).
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from explorer.analysis import InputTooSmallError
from explorer.core import hooked, model_device_dtype, traced_modules
from explorer.receptive.geometry import AxisField, Note, FieldInfo, make_note, RuleResult, unknown_info
from explorer.core import TensorTags, flat_tensors
from explorer.receptive.opnames import CONSTANT_LIKE, KIND_RANK, op_name
from explorer.receptive.rules import dispatch_rule


class _Stop(Exception):
    """Raised once the layer asked for has been computed (no need to run the rest of the network)."""


# --- the tracer --------------------------------------------------------------------------------------

@dataclass
class _Frame:
    name: str
    module: nn.Module
    leaf: bool
    inside_leaf: bool
    tracked_input: bool
    kinds: list[str] = field(default_factory=list)
    merge: int = 0
    notes: list[Note] = field(default_factory=list)


@dataclass
class TraceRow:
    layer: str
    type: str
    source: str
    shape: tuple[int, ...]
    info: FieldInfo
    kind: str
    merge: int
    notes: list[Note]


class _Tracer(TorchFunctionMode):
    """Follows every op on tensors computed from the input; see the module docstring."""

    def __init__(self, model: nn.Module, stop_at: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.stop_at = stop_at
        self.thread = threading.get_ident()
        self.infos: TensorTags[FieldInfo] = TensorTags()
        self.frames: list[_Frame] = []
        self.rows: list[TraceRow] = []
        self.counts: Counter[str] = Counter()
        self.captured: tuple[torch.Tensor, FieldInfo] | None = None
        self.error: str | None = None  # why the forward pass stopped early (partial tables only)
        self.failed_layer: str | None = None

    # tensor -> info, by identity (weak references, so a recycled id() is never mistaken for a tensor)
    def info(self, tensor: torch.Tensor) -> FieldInfo | None:
        return self.infos.get(tensor)

    def set_info(self, tensor: torch.Tensor, info: FieldInfo) -> None:
        self.infos.set(tensor, info)

    # hooks: a stack of module calls, so each op knows which module it belongs to
    def attach(self, add: Any) -> None:
        """Register the module hooks through ``add`` (:func:`explorer.core.hooks.hooked` removes them)."""
        for name, module, leaf in traced_modules(self.model):  # a TorchScript part: ValueError
            add(module.register_forward_pre_hook(self._pre_hook(name, module, leaf)))
            add(module.register_forward_hook(self._post_hook()))

    def _pre_hook(self, name: str, module: nn.Module, leaf: bool):
        def hook(_module: nn.Module, args: Any) -> None:
            if threading.get_ident() != self.thread:
                return  # another thread's forward pass on a shared model: not ours
            parent = self.frames[-1] if self.frames else None
            inside = bool(parent and (parent.leaf or parent.inside_leaf))
            tracked = any(self.info(t) is not None for t in flat_tensors(args))
            self.frames.append(_Frame(name, module, leaf, inside, tracked))
        return hook

    def _post_hook(self):
        def hook(module: nn.Module, _args: Any, output: Any) -> None:
            if threading.get_ident() != self.thread or not self.frames:
                return
            frame = self.frames.pop()
            if frame.inside_leaf:
                if self.frames:
                    self._absorb(self.frames[-1], frame.kinds, frame.merge, frame.notes)
                return
            if not frame.leaf:
                return
            outputs = flat_tensors(output)
            if not outputs:
                return
            tensor = outputs[0]
            info = self.info(tensor)
            if info is None:
                if not frame.tracked_input:
                    return  # computed from constants only
                info = unknown_info(tensor.dim(), f"{type(module).__name__} output could not be traced")
                self.set_info(tensor, info)
                frame.kinds.append("unknown")
            kind = max(frame.kinds, key=KIND_RANK.get) if frame.kinds else "pointwise"
            name = frame.name or type(module).__name__
            self._emit(name, type(module).__name__, "module", tensor, info, kind, frame.merge, frame.notes)
        return hook

    @staticmethod
    def _absorb(frame: _Frame, kinds: list[str], merge: int, notes: list[Note]) -> None:
        frame.kinds.extend(kinds)
        frame.merge = max(frame.merge, merge)
        frame.notes.extend(n for n in notes if n not in frame.notes)

    def _emit(self, name: str, type_name: str, source: str, tensor: torch.Tensor, info: FieldInfo, kind: str,
              merge: int, notes: list[Note]) -> None:
        self.counts[name] += 1
        unique = name if self.counts[name] == 1 else f"{name}#{self.counts[name]}"
        self.rows.append(TraceRow(unique, type_name, source, tuple(int(d) for d in tensor.shape), info, kind, merge,
                              list(notes)))
        if self.stop_at is not None and unique == self.stop_at:
            self.captured = (tensor, info)
            raise _Stop

    # every torch function / tensor method lands here
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if threading.get_ident() != self.thread:
            return out
        name = op_name(func)
        if name == "setitem":
            self._setitem(args)
            return out
        outputs = flat_tensors(out)
        if not outputs:
            return out
        inputs = [(t, i) for t in flat_tensors((args, kwargs)) if (i := self.info(t)) is not None]
        if not inputs or name in CONSTANT_LIKE:
            return out  # does not depend on the input image
        try:
            result = dispatch_rule(name, func, args, kwargs, inputs, out, outputs)
        except Exception as exc:  # an op we parse wrongly must not break the user's forward pass
            result = RuleResult([unknown_info(t.dim(), f"{name}: {type(exc).__name__}") for t in outputs],
                             kind="unknown", notable=True,
                             notes=[make_note("unknown", reason=f"could not analyse {name}: {exc}")])
        upstream = next((i.unknown for _, i in inputs if i.unknown), None)
        if upstream and result.kind != "unknown":
            result.infos = [replace(i, unknown=upstream) for i in result.infos]
        for tensor, info in zip(outputs, result.infos):
            self.set_info(tensor, info)
        frame = self.frames[-1] if self.frames else None
        if frame is not None and (frame.leaf or frame.inside_leaf):
            self._absorb(frame, [result.kind], result.merge, result.notes)
        elif result.notable:
            prefix = f"{frame.name}." if frame is not None and frame.name else ""
            self._emit(prefix + name, name, "function", outputs[0], result.infos[0], result.kind, result.merge,
                       result.notes)
        return out

    def _setitem(self, args: Sequence[Any]) -> None:
        tensors = flat_tensors(args)
        if tensors and any(self.info(t) is not None for t in tensors):
            target = tensors[0]
            self.set_info(target, unknown_info(target.dim(), "in-place slice assignment (x[...] = y)"))



# --- running the tracer ----------------------------------------------------------------------------------

@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Analyse the inference graph; put back exactly the train/eval flags that were there."""
    training = [m for m in model.modules() if m.training]
    try:
        for m in training:
            m.training = False
        yield
    finally:
        for m in training:
            m.training = True


def _input_info(x: torch.Tensor) -> FieldInfo:
    unit = AxisField(0.0, 0.0, 1.0)
    dims: tuple[str | None, ...] = (None,) * (x.dim() - 2) + ("h", "w")
    return FieldInfo(dims=dims, h=unit, w=unit)


def trace(model: nn.Module, x: torch.Tensor, stop_at: str | None = None, partial: bool = False) -> _Tracer:
    """Run ``model(x)`` under the tracer, with hooks that are always removed and the model's lock held.

    ``partial``: when the forward pass fails after some rows were recorded (a classifier that only accepts
    its natural input size), keep those rows and put the reason in ``tracer.error`` instead of raising.
    """
    tracer = _Tracer(model, stop_at=stop_at)
    with hooked(model) as add, _eval_mode(model):
        tracer.set_info(x, _input_info(x))
        try:
            tracer.attach(add)
            with tracer:
                model(x)
        except _Stop:
            pass
        except RuntimeError as exc:
            frame = next((f for f in reversed(tracer.frames) if f.name), None)
            where = f"layer {frame.name} ({type(frame.module).__name__})" if frame else "the model"
            shape = "×".join(str(d) for d in x.shape[1:])
            first_line = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            if partial and tracer.rows:
                tracer.error = f"the input {shape} does not fit this model: {where} fails ({first_line})"
                tracer.failed_layer = frame.name if frame else None
            elif re.search(r"too small|can.t be greater|empty|output size|input size", str(exc), re.IGNORECASE):
                raise InputTooSmallError(f"the input {shape} does not fit this model: {where} fails — most likely "
                                         f"its output would be empty. Try a larger input. ({first_line})",
                                         frame.name if frame else None) from exc
            else:
                raise
    return tracer


def input_tensor(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    device, dtype = model_device_dtype(model)
    return torch.zeros(shape, device=device, dtype=dtype)
