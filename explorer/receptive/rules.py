"""Op semantics: which rule maps an op's input fields to its output fields (:func:`_dispatch`), element-wise
ops and merges (union of the inputs' fields), normalisations, and the *unknown* fallback."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch

from explorer.receptive.geometry import AXES, AxisField, Note, _Info, _note, _Result, _union, _unknown_info
from explorer.receptive.layout import _cat, _expand, _index, _permute, _reshape, _split, _squeeze
from explorer.receptive.opnames import (_ADAPTIVE_RE, _CONTEXT_NORMS, _CONV_RE, _CONV_T_RE, _EXPANDS, _MATMULS,
                                        _PERMUTES, _POINTWISE, _POOL_RE, _REDUCTIONS, _RESHAPES, _SOFTMAXES, _SPLITS,
                                        _UPSAMPLE_RE, _arg, _norm_dim)
from explorer.receptive.windows import (_adaptive, _conv, _conv_transpose, _linear, _matmul, _pad, _pool, _reduction,
                                        _upsample)


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
