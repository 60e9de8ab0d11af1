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

import json
import math
import re
import threading
import weakref
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from explorer.locks import model_lock

CSV_COLUMNS = ["layer", "type", "output_shape", "rf_h", "rf_w", "jump_h", "jump_w", "start_h", "start_w"]
EXTRA_COLUMNS = ["depth", "kind", "source", "out_h", "out_w", "merge_inputs", "sees_whole_image", "global_context",
                 "exact", "unknown", "note", "note_codes"]
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


def _union(fields: Sequence[AxisField]) -> AxisField:
    jumps = {f.jump for f in fields if not f.collapsed}
    exact = all(f.exact for f in fields) and len(jumps) <= 1
    return AxisField(lo=min(f.lo for f in fields), hi=max(f.hi for f in fields),
                     jump=max(f.jump for f in fields), collapsed=any(f.collapsed for f in fields), exact=exact)


@dataclass(frozen=True)
class _Info:
    """What we know about one tensor computed from the input."""

    dims: tuple[str | None, ...]  # per tensor dim: "h", "w" (which spatial axis it carries) or None
    h: AxisField
    w: AxisField
    depth: int = 0  # conv/pool layers on the longest path from the input
    context: bool = False  # also depends on the whole image through a global branch
    unknown: str | None = None  # why the field could not be computed

    def axis(self, name: str) -> AxisField:
        return self.h if name == "h" else self.w

    def with_axes(self, fields: dict[str, AxisField], **changes: Any) -> "_Info":
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
    "transposed": "transposed convolution: field approximate",
    "pad_copy": "{mode} padding copies border units: border fields differ",
    "concat_spatial": "concatenated along a spatial axis: field approximate",
    "norm_stats": "{op} statistics over positions: every unit depends on the whole image",
    "batch_stats": "batch statistics (training mode) mix positions",
    "unknown": "{reason}",
    "after_unknown": "after an unknown operation ({reason})",
    "approximate": "approximate (after a non-uniform layer)",
}
Note = tuple  # (code, ((param, value), ...))


def _note(code: str, **params: Any) -> Note:
    return code, tuple(sorted(params.items()))


def note_text(note: Note) -> str:
    code, params = note
    return NOTE_TEXT[code].format(**dict(params))


@dataclass
class _Result:
    """What an op did: the output infos (one per output tensor) and how to describe it."""

    infos: list[_Info]
    kind: str = "pointwise"
    notable: bool = False
    merge: int = 0
    notes: list[Note] = field(default_factory=list)


class _Stop(Exception):
    """Raised once the layer asked for has been computed (no need to run the rest of the network)."""


# --- op classification ------------------------------------------------------------------------------

_POINTWISE = frozenset("""
relu relu6 gelu silu sigmoid tanh hardswish hardsigmoid hardtanh leaky_relu elu selu celu mish softplus softsign
logsigmoid tanhshrink softshrink hardshrink threshold rrelu prelu exp exp2 expm1 log log2 log10 log1p sqrt rsqrt
square abs neg negative reciprocal sign sgn sin cos tan erf erfc floor ceil round trunc frac clamp clip clamp_min
clamp_max nan_to_num positive pos invert dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout
feature_dropout contiguous clone detach to float double half bfloat16 type type_as cpu cuda requires_grad alias
local_response_norm channel_shuffle native_channel_shuffle logical_not bitwise_not isnan isinf isfinite
add sub subtract rsub mul multiply div divide true_divide truediv floor_divide floordiv remainder mod fmod pow
float_power maximum minimum fmax fmin where masked_fill lerp addcmul addcdiv eq ne lt le gt ge logical_and
logical_or logical_xor and or xor bitwise_and bitwise_or bitwise_xor atan2 hypot copysign copy heaviside
""".split())
_CONTEXT_NORMS = frozenset({"group_norm", "instance_norm"})
_REDUCTIONS = frozenset("sum mean amax amin max min std var logsumexp prod median nansum nanmean argmax argmin "
                        "all any count_nonzero std_mean var_mean norm".split())
_RESHAPES = frozenset("view reshape view_as reshape_as flatten unflatten".split())
_PERMUTES = frozenset("permute transpose swapaxes swapdims movedim moveaxis t".split())
_SPLITS = frozenset("chunk split tensor_split unbind split_with_sizes".split())
_EXPANDS = frozenset("expand expand_as broadcast_to repeat tile".split())
_MATMULS = frozenset("matmul mm bmm baddbmm addmm addbmm einsum bilinear scaled_dot_product_attention".split())
_SOFTMAXES = frozenset("softmax log_softmax softmin".split())
_CONSTANT_LIKE = frozenset("new_zeros new_ones new_empty new_full new_tensor zeros_like ones_like empty_like full_like "
                           "rand_like randn_like randint_like size dim".split())
_POOL_RE = re.compile(r"^(max|avg|lp)_pool([123])d(_with_indices)?$")
_ADAPTIVE_RE = re.compile(r"^adaptive_(avg|max)_pool([123])d(_with_indices)?$")
_CONV_RE = re.compile(r"^conv([123])d$")
_CONV_T_RE = re.compile(r"^conv_transpose([123])d$")
_UPSAMPLE_RE = re.compile(r"^(interpolate|upsample(_nearest|_bilinear)?|upsample_(nearest|bilinear|bicubic|linear|trilinear)[123]?d)$")
_KIND_RANK = {"unknown": 7, "conv": 6, "pool": 5, "global_pool": 5, "linear": 4, "merge": 3, "norm": 2,
              "pointwise": 1, "reshape": 0}


def _op_name(func: Any) -> str:
    name = getattr(func, "__name__", "") or ""
    if name == "__get__":  # a tensor property such as .data or .T
        owner = getattr(func, "__self__", None)
        return "property:" + str(getattr(owner, "__name__", "?"))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in ("i", "r") and name[1:] in _POINTWISE | _MATMULS:
            name = name[1:]
        return name
    name = name.lstrip("_")
    if name.endswith("_") and name[:-1] in _POINTWISE | _RESHAPES | _PERMUTES | _EXPANDS | {"unsqueeze", "squeeze"}:
        name = name[:-1]
    return name


def _flat_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        out: list[torch.Tensor] = []
        for item in value:
            out.extend(_flat_tensors(item))
        return out
    return []


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    if len(args) > index:
        return args[index]
    return default


def _tuple(value: Any, n: int, default: int) -> tuple[int, ...]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return (default,) * n
    if isinstance(value, (list, tuple)):
        vals = tuple(int(v) for v in value)
        return vals * n if len(vals) == 1 else vals
    return (int(value),) * n


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


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
class _Row:
    layer: str
    type: str
    source: str
    shape: tuple[int, ...]
    info: _Info
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
        self.infos: dict[int, tuple[weakref.ref, _Info]] = {}
        self.frames: list[_Frame] = []
        self.rows: list[_Row] = []
        self.counts: Counter[str] = Counter()
        self.captured: tuple[torch.Tensor, _Info] | None = None
        self.handles: list[Any] = []
        self.error: str | None = None  # why the forward pass stopped early (partial tables only)
        self.failed_layer: str | None = None

    # tensor -> info, by identity (weak references, so a recycled id() is never mistaken for a tensor)
    def info(self, tensor: torch.Tensor) -> _Info | None:
        entry = self.infos.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1]
        return None

    def set_info(self, tensor: torch.Tensor, info: _Info) -> None:
        self.infos[id(tensor)] = (weakref.ref(tensor), info)

    # hooks: a stack of module calls, so each op knows which module it belongs to
    def attach(self) -> None:
        for name, module in self.model.named_modules():
            leaf = next(module.children(), None) is None
            self.handles.append(module.register_forward_pre_hook(self._pre_hook(name, module, leaf)))
            self.handles.append(module.register_forward_hook(self._post_hook()))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _pre_hook(self, name: str, module: nn.Module, leaf: bool):
        def hook(_module: nn.Module, args: Any) -> None:
            if threading.get_ident() != self.thread:
                return  # another thread's forward pass on a shared model: not ours
            parent = self.frames[-1] if self.frames else None
            inside = bool(parent and (parent.leaf or parent.inside_leaf))
            tracked = any(self.info(t) is not None for t in _flat_tensors(args))
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
            outputs = _flat_tensors(output)
            if not outputs:
                return
            tensor = outputs[0]
            info = self.info(tensor)
            if info is None:
                if not frame.tracked_input:
                    return  # computed from constants only
                info = _unknown_info(tensor.dim(), f"{type(module).__name__} output could not be traced")
                self.set_info(tensor, info)
                frame.kinds.append("unknown")
            kind = max(frame.kinds, key=_KIND_RANK.get) if frame.kinds else "pointwise"
            name = frame.name or type(module).__name__
            self._emit(name, type(module).__name__, "module", tensor, info, kind, frame.merge, frame.notes)
        return hook

    @staticmethod
    def _absorb(frame: _Frame, kinds: list[str], merge: int, notes: list[Note]) -> None:
        frame.kinds.extend(kinds)
        frame.merge = max(frame.merge, merge)
        frame.notes.extend(n for n in notes if n not in frame.notes)

    def _emit(self, name: str, type_name: str, source: str, tensor: torch.Tensor, info: _Info, kind: str,
              merge: int, notes: list[Note]) -> None:
        self.counts[name] += 1
        unique = name if self.counts[name] == 1 else f"{name}#{self.counts[name]}"
        self.rows.append(_Row(unique, type_name, source, tuple(int(d) for d in tensor.shape), info, kind, merge,
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
        name = _op_name(func)
        if name == "setitem":
            self._setitem(args)
            return out
        outputs = _flat_tensors(out)
        if not outputs:
            return out
        inputs = [(t, i) for t in _flat_tensors((args, kwargs)) if (i := self.info(t)) is not None]
        if not inputs or name in _CONSTANT_LIKE:
            return out  # does not depend on the input image
        try:
            result = _dispatch(name, func, args, kwargs, inputs, out, outputs)
        except Exception as exc:  # an op we parse wrongly must not break the user's forward pass
            result = _Result([_unknown_info(t.dim(), f"{name}: {type(exc).__name__}") for t in outputs],
                             kind="unknown", notable=True,
                             notes=[_note("unknown", reason=f"could not analyse {name}: {exc}")])
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
        tensors = _flat_tensors(args)
        if tensors and any(self.info(t) is not None for t in tensors):
            target = tensors[0]
            self.set_info(target, _unknown_info(target.dim(), "in-place slice assignment (x[...] = y)"))


def _unknown_info(ndim: int, reason: str) -> _Info:
    return _Info(dims=(None,) * ndim, h=_UNKNOWN_FIELD, w=_UNKNOWN_FIELD, unknown=reason)


# --- op semantics -------------------------------------------------------------------------------------

def _dispatch(name: str, func: Any, args: Sequence[Any], kwargs: dict[str, Any],
              inputs: list[tuple[torch.Tensor, _Info]], out: Any, outputs: list[torch.Tensor]) -> _Result:
    first_t, first = inputs[0]
    if name in _POINTWISE or name == "batch_norm" or name == "layer_norm" or name in _CONTEXT_NORMS or name in _SOFTMAXES:
        result = _broadcast(inputs, outputs[0])
        result.infos = result.infos * len(outputs)
        if name == "batch_norm" and bool(_arg(args, kwargs, 5, "training", False)):
            result.infos = [replace(i, context=True) for i in result.infos]
            result.notes.append(_note("batch_stats"))
            result.kind = "norm"
        elif name in _CONTEXT_NORMS or name == "layer_norm" or name in _SOFTMAXES:
            spatial_dims = _normalised_spatial_dims(name, args, kwargs, first_t, first)
            if spatial_dims:
                result.infos = [replace(i, context=True) for i in result.infos]
                result.notes.append(_note("norm_stats", op=name))
                result.notable = True
            result.kind = "norm"
        elif name == "batch_norm":
            result.kind = "norm"
        return result
    if name in ("max", "min") and isinstance(_arg(args, kwargs, 1, "other"), torch.Tensor):
        result = _broadcast(inputs, outputs[0])
        result.infos = result.infos * len(outputs)
        return result
    if name in _REDUCTIONS:
        return _reduction(name, args, kwargs, first_t, first, outputs)
    m = _CONV_RE.match(name)
    if m:
        return _conv(args, kwargs, first_t, first)
    m = _POOL_RE.match(name)
    if m:
        return _pool(m.group(1), int(m.group(2)), args, kwargs, first_t, first, outputs)
    m = _ADAPTIVE_RE.match(name)
    if m:
        return _adaptive(int(m.group(2)), first_t, first, outputs)
    if _CONV_T_RE.match(name):
        return _conv_transpose(args, kwargs, first_t, first)
    if _UPSAMPLE_RE.match(name):
        return _upsample(name, args, kwargs, first_t, first, outputs[0])
    if name == "pad":
        return _pad(args, kwargs, first_t, first, outputs[0])
    if name == "linear":
        return _linear(first_t, first, outputs[0])
    if name in _MATMULS:
        return _matmul(inputs, outputs[0])
    if name in _RESHAPES:
        return _reshape(first_t, first, outputs[0])
    if name in ("squeeze", "unsqueeze"):
        return _squeeze(name, args, kwargs, first_t, first, outputs[0])
    if name in _PERMUTES:
        return _permute(name, args, kwargs, first_t, first)
    if name in ("getitem", "select", "narrow"):
        return _index(name, args, kwargs, first_t, first, outputs[0])
    if name in _SPLITS:
        return _split(name, args, kwargs, first_t, first, outputs)
    if name in ("cat", "concat", "concatenate", "stack"):
        return _cat(name, args, kwargs, inputs, outputs[0])
    if name in _EXPANDS:
        return _expand(first_t, first, outputs[0])
    if name in ("property:data", "property:real", "property:T", "property:mT"):
        if name == "property:T":
            return _Result([replace(first, dims=tuple(reversed(first.dims)))], kind="reshape")
        if name == "property:mT":
            dims = list(first.dims)
            dims[-1], dims[-2] = dims[-2], dims[-1]
            return _Result([replace(first, dims=tuple(dims))], kind="reshape")
        return _Result([first])
    reason = f"unknown operation {name!r}"
    return _Result([_unknown_info(t.dim(), reason) for t in outputs], kind="unknown", notable=True,
                   notes=[_note("unknown", reason=reason)])


def _normalised_spatial_dims(name: str, args, kwargs, tensor: torch.Tensor, info: _Info) -> list[int]:
    """Spatial dims (with more than one unit) that a normalisation/softmax computes statistics over."""
    nd = tensor.dim()
    if name == "layer_norm":
        shape = _arg(args, kwargs, 1, "normalized_shape")
        count = 1 if isinstance(shape, int) else len(shape)
        dims = list(range(nd - count, nd))
    elif name in _SOFTMAXES:
        dim = _arg(args, kwargs, 1, "dim")
        dims = [] if dim is None else [_norm_dim(int(dim), nd)]
    else:  # group_norm, instance_norm: statistics over every position
        dims = list(range(2, nd))
    return [d for d in dims if info.dims[d] in AXES and tensor.shape[d] > 1]


def _broadcast(inputs: list[tuple[torch.Tensor, _Info]], out: torch.Tensor) -> _Result:
    """Element-wise ops (and merges): the union of the inputs' fields, aligned by broadcasting."""
    out_shape = tuple(out.shape)
    nd = len(out_shape)
    distinct: dict[int, tuple[tuple[int, ...], _Info]] = {}
    for tensor, info in inputs:
        distinct.setdefault(id(tensor), (tuple(tensor.shape), info))
    operands = list(distinct.values())
    tags: list[str | None] = [None] * nd
    for shape, info in operands:
        off = nd - len(shape)
        for k, tag in enumerate(info.dims):
            if tag and off + k >= 0 and shape[k] == out_shape[off + k] and tags[off + k] is None and tag not in tags:
                tags[off + k] = tag
    fields: dict[str, AxisField] = {}
    context = any(info.context for _, info in operands)
    notes: list[Note] = []
    for axis in AXES:
        if axis in tags and out_shape[tags.index(axis)] > 1:
            pos = tags.index(axis)
            n = out_shape[pos]
            local, fixed = [], []
            for shape, info in operands:
                k = pos - (nd - len(shape))
                if 0 <= k < len(shape) and info.dims[k] == axis and shape[k] == n:
                    local.append(info.axis(axis))
                else:
                    fixed.append(info.axis(axis))
            fields[axis] = _union(local) if local else _union(fixed)
            if local and fixed:
                context = True
                if not all(f.collapsed for f in fixed):
                    fields[axis] = fields[axis].inexact()
                if _note("gate") not in notes:
                    notes.append(_note("gate"))
        else:
            fields[axis] = _union([info.axis(axis) for _, info in operands])
    info = _Info(dims=tuple(tags), h=fields["h"], w=fields["w"], depth=max(i.depth for _, i in operands),
                 context=context, unknown=next((i.unknown for _, i in operands if i.unknown), None))
    merge = len(operands) if len(operands) > 1 else 0
    if merge:
        notes.insert(0, _note("merge", n=merge))
    return _Result([info], kind="merge" if merge else "pointwise", notable=bool(merge), merge=merge, notes=notes)


def _spatial_positions(info: _Info, tensor: torch.Tensor, n: int) -> list[tuple[int, int, str]]:
    """(index among the last n dims, tensor dim, axis) for the last n dims that carry a spatial axis."""
    nd = tensor.dim()
    found = []
    for i in range(n):
        dim = nd - n + i
        if dim >= 0 and info.dims[dim] in AXES:
            found.append((i, dim, info.dims[dim]))
    return found


def _conv(args, kwargs, tensor: torch.Tensor, info: _Info) -> _Result:
    weight = _arg(args, kwargs, 1, "weight")
    kernel = tuple(int(k) for k in weight.shape[2:])
    n = len(kernel)
    stride = _tuple(_arg(args, kwargs, 3, "stride", 1), n, 1)
    dilation = _tuple(_arg(args, kwargs, 5, "dilation", 1), n, 1)
    padding_arg = _arg(args, kwargs, 4, "padding", 0)
    if isinstance(padding_arg, str):
        # PyTorch's "same" pads d(k-1)//2 before and the rest after; "valid" pads nothing.
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)) if padding_arg == "same" else (0,) * n
    else:
        padding = _tuple(padding_arg, n, 0)
    fields = {axis: info.axis(axis).window(kernel[i], stride[i], padding[i], dilation[i])
              for i, _dim, axis in _spatial_positions(info, tensor, n)}
    return _Result([info.with_axes(fields, depth=info.depth + 1)], kind="conv", notable=True)


def _conv_transpose(args, kwargs, tensor: torch.Tensor, info: _Info) -> _Result:
    weight = _arg(args, kwargs, 1, "weight")
    kernel = tuple(int(k) for k in weight.shape[2:])
    n = len(kernel)
    stride = _tuple(_arg(args, kwargs, 3, "stride", 1), n, 1)
    padding = _tuple(_arg(args, kwargs, 4, "padding", 0), n, 0)
    dilation = _tuple(_arg(args, kwargs, 7, "dilation", 1), n, 1)
    fields = {}
    for i, _dim, axis in _spatial_positions(info, tensor, n):
        f = info.axis(axis)
        reach = dilation[i] * (kernel[i] - 1) + 1
        taps = math.ceil(reach / stride[i])  # input units that can reach one output unit
        lo = f.lo + ((padding[i] - reach + 1) / stride[i]) * f.jump
        fields[axis] = AxisField(lo, lo + (f.hi - f.lo) + (taps - 1) * f.jump, f.jump / stride[i], f.collapsed, False)
    return _Result([info.with_axes(fields, depth=info.depth + 1)], kind="conv", notable=True,
                   notes=[_note("transposed")])


def _pool(kind: str, n: int, args, kwargs, tensor: torch.Tensor, info: _Info, outputs) -> _Result:
    if kind == "lp":
        kernel = _tuple(_arg(args, kwargs, 2, "kernel_size"), n, 1)
        stride = _tuple(_arg(args, kwargs, 3, "stride"), n, 0)
        padding, dilation = (0,) * n, (1,) * n
    else:
        kernel = _tuple(_arg(args, kwargs, 1, "kernel_size"), n, 1)
        stride = _tuple(_arg(args, kwargs, 2, "stride"), n, 0)
        padding = _tuple(_arg(args, kwargs, 3, "padding", 0), n, 0)
        dilation = _tuple(_arg(args, kwargs, 4, "dilation", 1), n, 1) if kind == "max" else (1,) * n
    stride = tuple(s if s else k for s, k in zip(stride, kernel))  # stride=None means stride=kernel
    fields = {axis: info.axis(axis).window(kernel[i], stride[i], padding[i], dilation[i])
              for i, _dim, axis in _spatial_positions(info, tensor, n)}
    new = info.with_axes(fields, depth=info.depth + 1)
    return _Result([new] * len(outputs), kind="pool", notable=True)


def _adaptive(n: int, tensor: torch.Tensor, info: _Info, outputs) -> _Result:
    out = outputs[0]
    fields: dict[str, AxisField] = {}
    notes: list[Note] = []
    collapsed = False
    changed = False
    for i, dim, axis in _spatial_positions(info, tensor, n):
        size_in, size_out = int(tensor.shape[dim]), int(out.shape[dim])
        f = info.axis(axis)
        if size_in == size_out:
            continue
        changed = True
        if size_out == 1:
            fields[axis] = f.collapse(size_in)
            collapsed = True
        elif size_in % size_out == 0:
            k = size_in // size_out
            fields[axis] = f.window(k, k, 0)
        else:
            # Bins start at floor(i·In/Out) and end at ceil((i+1)·In/Out): their sizes differ.
            sizes = [math.ceil((j + 1) * size_in / size_out) - math.floor(j * size_in / size_out) for j in range(size_out)]
            fields[axis] = AxisField(f.lo, f.hi + (max(sizes) - 1) * f.jump, f.jump * size_in / size_out, f.collapsed,
                                     False)
            notes.append(_note("adaptive_bins", size_in=size_in, size_out=size_out, smallest=min(sizes),
                               largest=max(sizes)))
    if not changed:
        return _Result([info] * len(outputs), kind="pool", notable=True,
                       notes=[_note("adaptive_same")])
    new = info.with_axes(fields, depth=info.depth + 1)
    if collapsed:
        notes.insert(0, _note("global_pool"))
    return _Result([new] * len(outputs), kind="global_pool" if collapsed else "pool", notable=True, notes=notes)


def _upsample(name: str, args, kwargs, tensor: torch.Tensor, info: _Info, out: torch.Tensor) -> _Result:
    mode = str(kwargs.get("mode", "nearest")) if name in ("interpolate", "upsample") else name
    taps = 4 if "cubic" in mode else 2 if ("linear" in mode or "bilinear" in mode) else 1
    fields = {}
    for _i, dim, axis in _spatial_positions(info, tensor, tensor.dim() - 2):
        size_in, size_out = int(tensor.shape[dim]), int(out.shape[dim])
        if size_in == size_out:
            continue
        f = info.axis(axis)
        fields[axis] = AxisField(f.lo, f.hi + (taps - 1) * f.jump, f.jump * size_in / size_out, f.collapsed, False)
    return _Result([info.with_axes(fields, depth=info.depth + 1)], kind="pool", notable=True,
                   notes=[_note("resample")] if fields else [])


def _pad(args, kwargs, tensor: torch.Tensor, info: _Info, out: torch.Tensor) -> _Result:
    pad = list(_arg(args, kwargs, 1, "pad"))
    mode = _arg(args, kwargs, 2, "mode", "constant")
    fields = {}
    nd = tensor.dim()
    for i in range(len(pad) // 2):
        dim = nd - 1 - i
        axis = info.dims[dim]
        if axis in AXES:
            fields[axis] = info.axis(axis).shift(-int(pad[2 * i]))
    notes = [] if mode in ("constant", None) else [_note("pad_copy", mode=str(mode))]
    return _Result([info.with_axes(fields)], kind="pointwise", notable=True, notes=notes)


def _linear(tensor: torch.Tensor, info: _Info, out: torch.Tensor) -> _Result:
    axis = info.dims[-1] if info.dims else None
    if axis in AXES:
        fields = {axis: info.axis(axis).collapse(int(tensor.shape[-1]))}
        dims = info.dims[:-1] + (None,)
        return _Result([info.with_axes(fields, dims=dims)], kind="linear", notable=True,
                       notes=[_note("fully_connected")])
    return _Result([info], kind="linear", notable=True)


def _matmul(inputs: list[tuple[torch.Tensor, _Info]], out: torch.Tensor) -> _Result:
    fields = {}
    for axis in AXES:
        parts = []
        for tensor, info in inputs:
            f = info.axis(axis)
            if axis in info.dims:
                f = f.collapse(int(tensor.shape[info.dims.index(axis)]))
            parts.append(f)
        fields[axis] = _union(parts)
    base = inputs[0][1]
    info = base.with_axes(fields, dims=(None,) * out.dim(), context=any(i.context for _, i in inputs),
                          depth=max(i.depth for _, i in inputs))
    return _Result([info], kind="linear", notable=True, notes=[_note("mix_positions")])


def _reduction(name: str, args, kwargs, tensor: torch.Tensor, info: _Info, outputs) -> _Result:
    nd = tensor.dim()
    dim_arg = _arg(args, kwargs, 2 if name == "norm" else 1, "dim")
    if dim_arg is None:
        dims = list(range(nd))
    else:
        dims = [_norm_dim(int(d), nd) for d in (dim_arg if isinstance(dim_arg, (list, tuple)) else [dim_arg])]
    keepdim = bool(dims) and outputs[0].dim() == nd  # read off the result: argument orders differ (std, norm)
    fields = {}
    for d in dims:
        axis = info.dims[d]
        if axis in AXES and tensor.shape[d] > 1:
            fields[axis] = info.axis(axis).collapse(int(tensor.shape[d]))
    if keepdim:
        new_dims = tuple(None if i in dims else t for i, t in enumerate(info.dims))
    else:
        new_dims = tuple(t for i, t in enumerate(info.dims) if i not in dims)
    new = info.with_axes(fields, dims=new_dims)
    lost = any(info.dims[d] in AXES for d in dims)
    notes = [_note("global_pool")] if fields else []
    return _Result([new] * len(outputs), kind="global_pool" if fields else "pointwise", notable=lost, notes=notes)


def _reshape_groups(shape_in: Sequence[int], shape_out: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Pair runs of input dims with runs of output dims that hold the same elements (view/reshape)."""
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(shape_in) or j < len(shape_out):
        gi, gj, pi, pj = [], [], 1, 1
        if i < len(shape_in):
            gi.append(i)
            pi *= shape_in[i]
            i += 1
        if j < len(shape_out):
            gj.append(j)
            pj *= shape_out[j]
            j += 1
        while pi != pj:
            if pi < pj and i < len(shape_in):
                gi.append(i)
                pi *= shape_in[i]
                i += 1
            elif pj < pi and j < len(shape_out):
                gj.append(j)
                pj *= shape_out[j]
                j += 1
            else:
                raise ValueError("shapes do not match")
        groups.append((gi, gj))
    return groups


def _reshape(tensor: torch.Tensor, info: _Info, out: torch.Tensor) -> _Result:
    shape_in, shape_out = tuple(tensor.shape), tuple(out.shape)
    tags: list[str | None] = [None] * len(shape_out)
    fields: dict[str, AxisField] = {}
    for gi, gj in _reshape_groups(shape_in, shape_out):
        big_in = [d for d in gi if shape_in[d] > 1]
        big_out = [d for d in gj if shape_out[d] > 1]
        if len(big_in) == 1 and len(big_out) == 1 and shape_in[big_in[0]] == shape_out[big_out[0]]:
            tags[big_out[0]] = info.dims[big_in[0]]
            continue
        for d in big_in:  # merged with other dims (flatten) or split: positions are mixed up
            axis = info.dims[d]
            if axis in AXES:
                fields[axis] = info.axis(axis).collapse(int(shape_in[d]))
    before = sum(t in AXES for t in info.dims)
    after = sum(t in AXES for t in tags)
    notes = [_note("flatten")] if fields else []
    return _Result([info.with_axes(fields, dims=tuple(tags))], kind="reshape", notable=after < before, notes=notes)


def _squeeze(name: str, args, kwargs, tensor: torch.Tensor, info: _Info, out: torch.Tensor) -> _Result:
    nd = tensor.dim()
    dims = list(info.dims)
    if name == "unsqueeze":
        dim = int(_arg(args, kwargs, 1, "dim"))
        dims.insert(dim + nd + 1 if dim < 0 else dim, None)
        return _Result([replace(info, dims=tuple(dims))], kind="reshape")
    dim_arg = _arg(args, kwargs, 1, "dim")
    if dim_arg is None:
        drop = [d for d in range(nd) if tensor.shape[d] == 1]
    else:
        drop = [_norm_dim(int(d), nd) for d in (dim_arg if isinstance(dim_arg, (list, tuple)) else [dim_arg])]
        drop = [d for d in drop if tensor.shape[d] == 1]
    new_dims = tuple(t for d, t in enumerate(dims) if d not in drop)
    lost = any(info.dims[d] in AXES for d in drop)
    return _Result([replace(info, dims=new_dims)], kind="reshape", notable=lost)


def _permute(name: str, args, kwargs, tensor: torch.Tensor, info: _Info) -> _Result:
    nd = tensor.dim()
    dims = list(info.dims)
    if name == "permute":
        order = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
        order = kwargs.get("dims", order)
        new = [dims[_norm_dim(int(d), nd)] for d in order]
    elif name == "t":
        new = list(reversed(dims))
    elif name in ("movedim", "moveaxis"):
        src, dst = _arg(args, kwargs, 1, "source"), _arg(args, kwargs, 2, "destination")
        src = [src] if isinstance(src, int) else list(src)
        dst = [dst] if isinstance(dst, int) else list(dst)
        order = [-1] * nd
        for s, d in zip(src, dst):
            order[_norm_dim(d, nd)] = _norm_dim(s, nd)
        rest = iter(d for d in range(nd) if d not in {_norm_dim(s, nd) for s in src})
        order = [o if o >= 0 else next(rest) for o in order]
        new = [dims[o] for o in order]
    else:
        a, b = _norm_dim(int(_arg(args, kwargs, 1, "dim0")), nd), _norm_dim(int(_arg(args, kwargs, 2, "dim1")), nd)
        new = list(dims)
        new[a], new[b] = new[b], new[a]
    return _Result([replace(info, dims=tuple(new))], kind="reshape")


def _index(name: str, args, kwargs, tensor: torch.Tensor, info: _Info, out: torch.Tensor) -> _Result:
    nd = tensor.dim()
    if name == "select":
        dim, index = _norm_dim(int(_arg(args, kwargs, 1, "dim")), nd), int(_arg(args, kwargs, 2, "index"))
        key: list[Any] = [slice(None)] * dim + [index]
    elif name == "narrow":
        dim = _norm_dim(int(_arg(args, kwargs, 1, "dim")), nd)
        start, length = int(_arg(args, kwargs, 2, "start")), int(_arg(args, kwargs, 3, "length"))
        key = [slice(None)] * dim + [slice(start, start + length)]
    else:
        raw = args[1]
        key = list(raw) if isinstance(raw, tuple) else [raw]
    advanced = [i for i, k in enumerate(key) if isinstance(k, (torch.Tensor, list))]
    if advanced:
        # One index tensor on a non-spatial dim (e.g. picking channels) keeps the positions as they are.
        if (len(advanced) == 1 and Ellipsis not in key and None not in key and advanced[0] < nd
                and info.dims[advanced[0]] is None and out.dim() == nd):
            return _Result([info], kind="reshape")
        reason = "indexing with a tensor or list"
        return _Result([_unknown_info(out.dim(), reason)], kind="unknown", notable=True,
                       notes=[_note("unknown", reason=reason)])
    if Ellipsis in key:
        pos = key.index(Ellipsis)
        used = sum(1 for k in key if k is not None and k is not Ellipsis)
        key = key[:pos] + [slice(None)] * (nd - used) + key[pos + 1:]
    tags: list[str | None] = []
    fields: dict[str, AxisField] = {}
    lost = False
    dim = 0
    for k in key:
        if k is None:
            tags.append(None)
            continue
        tag = info.dims[dim] if dim < nd else None
        size = int(tensor.shape[dim]) if dim < nd else 1
        if isinstance(k, bool) or isinstance(k, slice):
            if isinstance(k, slice):
                start, _stop, step = k.indices(size)
                if tag in AXES:
                    f = info.axis(tag).shift(start)
                    fields[tag] = replace(f, jump=f.jump * step) if not f.collapsed else f
            tags.append(tag)
        else:  # an integer: the dim disappears
            index = int(k)
            if tag in AXES:
                fields[tag] = info.axis(tag).shift(index + size if index < 0 else index)
                lost = True
        dim += 1
    tags.extend(info.dims[dim:])
    if len(tags) != out.dim():
        reason = "indexing pattern not understood"
        return _Result([_unknown_info(out.dim(), reason)], kind="unknown", notable=True,
                       notes=[_note("unknown", reason=reason)])
    return _Result([info.with_axes(fields, dims=tuple(tags))], kind="reshape", notable=lost)


def _split(name: str, args, kwargs, tensor: torch.Tensor, info: _Info, outputs: list[torch.Tensor]) -> _Result:
    nd = tensor.dim()
    dim = _norm_dim(int(_arg(args, kwargs, 1 if name == "unbind" else 2, "dim", 0)), nd)
    axis = info.dims[dim]
    infos = []
    offset = 0
    for piece in outputs:
        new = info
        if axis in AXES:
            new = info.with_axes({axis: info.axis(axis).shift(offset)})
        if name == "unbind":
            new = replace(new, dims=info.dims[:dim] + info.dims[dim + 1:])
            offset += 1
        else:
            offset += int(piece.shape[dim])
        infos.append(new)
    return _Result(infos, kind="reshape", notable=axis in AXES)


def _cat(name: str, args, kwargs, inputs: list[tuple[torch.Tensor, _Info]], out: torch.Tensor) -> _Result:
    tensors = _arg(args, kwargs, 0, "tensors")
    nd = out.dim() - (1 if name == "stack" else 0)
    dim = _norm_dim(int(_arg(args, kwargs, 1, "dim", 0)), out.dim() if name == "stack" else nd)
    tracked: dict[int, _Info] = {}
    for tensor, info in inputs:
        if any(tensor is t for t in tensors):
            tracked.setdefault(id(tensor), info)
    infos = list(tracked.values()) or [inputs[0][1]]
    base = infos[0]
    notes: list[Note] = []
    exact = True
    if name == "stack":
        dims = base.dims[:dim] + (None,) + base.dims[dim:]
    else:
        dims = base.dims
        if base.dims[dim] in AXES:
            exact = False
            notes.append(_note("concat_spatial"))
    fields = {}
    for axis in AXES:
        u = _union([i.axis(axis) for i in infos])
        fields[axis] = u if exact else u.inexact()
    merged = base.with_axes(fields, dims=dims, depth=max(i.depth for i in infos), context=any(i.context for i in infos),
                            unknown=next((i.unknown for i in infos if i.unknown), None))
    merge = len(infos) if len(infos) > 1 else 0
    if merge:
        notes.insert(0, _note("merge", n=merge))
    return _Result([merged], kind="merge" if merge else "reshape", notable=bool(merge) or not exact, merge=merge,
                   notes=notes)


def _expand(tensor: torch.Tensor, info: _Info, out: torch.Tensor) -> _Result:
    shape_in, shape_out = tuple(tensor.shape), tuple(out.shape)
    off = len(shape_out) - len(shape_in)
    tags = [None] * off + [t if shape_in[k] == shape_out[off + k] else None for k, t in enumerate(info.dims)]
    return _Result([replace(info, dims=tuple(tags))], kind="reshape")


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


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _input_info(x: torch.Tensor) -> _Info:
    unit = AxisField(0.0, 0.0, 1.0)
    dims: tuple[str | None, ...] = (None,) * (x.dim() - 2) + ("h", "w")
    return _Info(dims=dims, h=unit, w=unit)


def _trace(model: nn.Module, x: torch.Tensor, stop_at: str | None = None, partial: bool = False) -> _Tracer:
    """Run ``model(x)`` under the tracer, with hooks that are always removed and the model's lock held.

    ``partial``: when the forward pass fails after some rows were recorded (a classifier that only accepts
    its natural input size), keep those rows and put the reason in ``tracer.error`` instead of raising.
    """
    tracer = _Tracer(model, stop_at=stop_at)
    with model_lock(model), _eval_mode(model):
        tracer.set_info(x, _input_info(x))
        try:
            tracer.attach()
            with tracer:
                model(x)
        except _Stop:
            pass
        except RuntimeError as exc:
            from explorer.shapes import InputTooSmallError

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
        finally:
            tracer.detach()
    return tracer


def _input_tensor(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    device, dtype = _model_device_dtype(model)
    return torch.zeros(shape, device=device, dtype=dtype)


# --- the table -------------------------------------------------------------------------------------------

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


def _row_record(row: _Row, image_hw: tuple[int, int]) -> dict[str, Any]:
    info = row.info
    units = {axis: (row.shape[info.dims.index(axis)] if axis in info.dims else 1) for axis in AXES}
    rf_h, jump_h, start_h, cover_h = _axis_report(info.h, units["h"], image_hw[0])
    rf_w, jump_w, start_w, cover_w = _axis_report(info.w, units["w"], image_hw[1])
    notes = list(row.notes)
    codes = {code for code, _ in notes}
    exact = info.h.exact and info.w.exact and not info.unknown
    if info.unknown:
        if "unknown" not in codes:
            notes.append(_note("unknown" if row.kind == "unknown" else "after_unknown", reason=info.unknown))
    elif not exact and not codes & {"approximate", "adaptive_bins", "resample", "transposed", "concat_spatial"}:
        notes.append(_note("approximate"))
    if info.context and not codes & {"gate", "norm_stats", "batch_stats", "global_pool", "flatten"}:
        notes.append(_note("context"))
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
    x = _input_tensor(model, input_shape)
    with torch.no_grad():
        tracer = _trace(model, x, partial=partial)
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


# --- reading the table -----------------------------------------------------------------------------------

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


# --- effective receptive field ------------------------------------------------------------------------------

def effective_receptive_field(model: nn.Module, x: torch.Tensor, layer: str, position: tuple[int, int] | None,
                              channel: int | None = None) -> np.ndarray:
    """|∂ unit / ∂ input| summed over input channels: the effective receptive field (Luo et al. 2016).

    ``layer`` is a row name of :func:`receptive_field_table` (``layer1.0.relu#2`` and ``inception3a.cat``
    work too); ``position`` = (row, col) in that layer's output map (ignored for layers without one);
    the unit is the sum over output channels there (or one ``channel``). Returns an (H, W) non-negative
    array. Takes the model's lock; hooks are removed and train/eval flags restored, whatever happens.
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be [C, H, W] or [1, C, H, W], got {tuple(x.shape)}")
    device, dtype = _model_device_dtype(model)
    inp = x.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)
    # The lock covers the backward pass too: autograd through a shared model is serialised per model.
    with model_lock(model), torch.enable_grad():
        tracer = _trace(model, inp, stop_at=layer)
        if tracer.captured is None:
            names = [r.layer for r in tracer.rows]
            raise ValueError(f"no layer named {layer!r} ran in the forward pass"
                             + (f" (e.g. {', '.join(names[:3])} ... {names[-1]})" if names else ""))
        out, info = tracer.captured
        if info.unknown is not None and not out.requires_grad:
            raise ValueError(f"cannot compute the effective field of {layer!r}: {info.unknown}")
        selected = out[0] if out.dim() > 0 and out.shape[0] == 1 else out
        dims = list(info.dims[1:]) if out.dim() > 0 and out.shape[0] == 1 else list(info.dims)
        index: list[Any] = [slice(None)] * selected.dim()
        for axis, value in zip(AXES, position or (0, 0)):
            if axis in dims:
                d = dims.index(axis)
                if not 0 <= int(value) < selected.shape[d]:
                    raise ValueError(f"position {tuple(position or (0, 0))} is outside {layer!r}'s output "
                                     f"({selected.shape[d]} units along {'rows' if axis == 'h' else 'columns'})")
                index[d] = int(value)
        if channel is not None:
            channel_dims = [i for i, t in enumerate(dims) if t is None]
            if not channel_dims:
                raise ValueError(f"{layer!r} has no channel dimension")
            index[channel_dims[0]] = int(channel)
        unit = selected[tuple(index)].sum()
        if not unit.requires_grad:
            return np.zeros(tuple(inp.shape[-2:]), dtype=np.float32)
        (grad,) = torch.autograd.grad(unit, inp, allow_unused=True)
    if grad is None:
        return np.zeros(tuple(inp.shape[-2:]), dtype=np.float32)
    return grad.detach().abs().sum(dim=1)[0].float().cpu().numpy()


def erf_extent(erf: np.ndarray, centre: tuple[float, float], fraction: float = 0.9) -> int:
    """Side (pixels) of the smallest square centred on ``centre`` that holds ``fraction`` of the ERF's mass.

    Luo et al. found effective fields far smaller than theoretical ones; this number says how much smaller.
    """
    total = float(erf.sum())
    if total <= 0:
        return 0
    h, w = erf.shape
    cy, cx = int(round(centre[0])), int(round(centre[1]))
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    distance = np.maximum(np.abs(rows - cy), np.abs(cols - cx))  # Chebyshev: squares around the centre
    order = np.argsort(distance, axis=None, kind="stable")
    mass = np.cumsum(erf.ravel()[order])
    reached = int(np.searchsorted(mass, fraction * total))
    radius = int(distance.ravel()[order[min(reached, order.size - 1)]])
    return 2 * radius + 1
