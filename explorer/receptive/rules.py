"""Op semantics: which rule maps an op's input fields to its output fields (:func:`dispatch_rule`), element-wise
ops and merges (union of the inputs' fields), normalisations, and the *unknown* fallback."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch

from explorer.receptive.geometry import AXES, AxisField, Note, FieldInfo, make_note, RuleResult, union_of, unknown_info
from explorer.receptive.layout import cat_rule, expand_rule, index_rule, permute_rule, reshape_rule, split_rule, squeeze_rule
from explorer.receptive.opnames import ADAPTIVE_RE, CONTEXT_NORMS, CONV_RE, CONV_T_RE, EXPANDS, MATMULS, PERMUTES, POINTWISE, POOL_RE, REDUCTIONS, RESHAPES, SOFTMAXES, SPLITS, UPSAMPLE_RE, arg, norm_dim
from explorer.receptive.windows import adaptive_rule, conv_rule, conv_transpose_rule, linear_rule, matmul_rule, pad_rule, pool_rule, reduction_rule, upsample_rule


def dispatch_rule(name: str, func: Any, args: Sequence[Any], kwargs: dict[str, Any],
              inputs: list[tuple[torch.Tensor, FieldInfo]], out: Any, outputs: list[torch.Tensor]) -> RuleResult:
    first_t, first = inputs[0]
    if name in POINTWISE or name == "batch_norm" or name == "layer_norm" or name in CONTEXT_NORMS or name in SOFTMAXES:
        result = _broadcast(inputs, outputs[0])
        result.infos = result.infos * len(outputs)
        if name == "batch_norm" and bool(arg(args, kwargs, 5, "training", False)):
            result.infos = [replace(i, context=True) for i in result.infos]
            result.notes.append(make_note("batch_stats"))
            result.kind = "norm"
        elif name in CONTEXT_NORMS or name == "layer_norm" or name in SOFTMAXES:
            spatial_dims = _normalised_spatial_dims(name, args, kwargs, first_t, first)
            if spatial_dims:
                result.infos = [replace(i, context=True) for i in result.infos]
                result.notes.append(make_note("norm_stats", op=name))
                result.notable = True
            result.kind = "norm"
        elif name == "batch_norm":
            result.kind = "norm"
        return result
    if name in ("max", "min") and isinstance(arg(args, kwargs, 1, "other"), torch.Tensor):
        result = _broadcast(inputs, outputs[0])
        result.infos = result.infos * len(outputs)
        return result
    if name in REDUCTIONS:
        return reduction_rule(name, args, kwargs, first_t, first, outputs)
    m = CONV_RE.match(name)
    if m:
        return conv_rule(args, kwargs, first_t, first)
    m = POOL_RE.match(name)
    if m:
        return pool_rule(m.group(1), int(m.group(2)), args, kwargs, first_t, first, outputs)
    m = ADAPTIVE_RE.match(name)
    if m:
        return adaptive_rule(int(m.group(2)), first_t, first, outputs)
    if CONV_T_RE.match(name):
        return conv_transpose_rule(args, kwargs, first_t, first)
    if UPSAMPLE_RE.match(name):
        return upsample_rule(name, args, kwargs, first_t, first, outputs[0])
    if name == "pad":
        return pad_rule(args, kwargs, first_t, first, outputs[0])
    if name == "linear":
        return linear_rule(first_t, first, outputs[0])
    if name in MATMULS:
        return matmul_rule(inputs, outputs[0])
    if name in RESHAPES:
        return reshape_rule(first_t, first, outputs[0])
    if name in ("squeeze", "unsqueeze"):
        return squeeze_rule(name, args, kwargs, first_t, first, outputs[0])
    if name in PERMUTES:
        return permute_rule(name, args, kwargs, first_t, first)
    if name in ("getitem", "select", "narrow"):
        return index_rule(name, args, kwargs, first_t, first, outputs[0])
    if name in SPLITS:
        return split_rule(name, args, kwargs, first_t, first, outputs)
    if name in ("cat", "concat", "concatenate", "stack"):
        return cat_rule(name, args, kwargs, inputs, outputs[0])
    if name in EXPANDS:
        return expand_rule(first_t, first, outputs[0])
    if name in ("property:data", "property:real", "property:T", "property:mT"):
        if name == "property:T":
            return RuleResult([replace(first, dims=tuple(reversed(first.dims)))], kind="reshape")
        if name == "property:mT":
            dims = list(first.dims)
            dims[-1], dims[-2] = dims[-2], dims[-1]
            return RuleResult([replace(first, dims=tuple(dims))], kind="reshape")
        return RuleResult([first])
    reason = f"unknown operation {name!r}"
    return RuleResult([unknown_info(t.dim(), reason) for t in outputs], kind="unknown", notable=True,
                   notes=[make_note("unknown", reason=reason)])


def _normalised_spatial_dims(name: str, args, kwargs, tensor: torch.Tensor, info: FieldInfo) -> list[int]:
    """Spatial dims (with more than one unit) that a normalisation/softmax computes statistics over."""
    nd = tensor.dim()
    if name == "layer_norm":
        shape = arg(args, kwargs, 1, "normalized_shape")
        count = 1 if isinstance(shape, int) else len(shape)
        dims = list(range(nd - count, nd))
    elif name in SOFTMAXES:
        dim = arg(args, kwargs, 1, "dim")
        dims = [] if dim is None else [norm_dim(int(dim), nd)]
    else:  # group_norm, instance_norm: statistics over every position
        dims = list(range(2, nd))
    return [d for d in dims if info.dims[d] in AXES and tensor.shape[d] > 1]


def _broadcast(inputs: list[tuple[torch.Tensor, FieldInfo]], out: torch.Tensor) -> RuleResult:
    """Element-wise ops (and merges): the union of the inputs' fields, aligned by broadcasting."""
    out_shape = tuple(out.shape)
    nd = len(out_shape)
    distinct: dict[int, tuple[tuple[int, ...], FieldInfo]] = {}
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
            fields[axis] = union_of(local) if local else union_of(fixed)
            if local and fixed:
                context = True
                if not all(f.collapsed for f in fixed):
                    fields[axis] = fields[axis].inexact()
                if make_note("gate") not in notes:
                    notes.append(make_note("gate"))
        else:
            fields[axis] = union_of([info.axis(axis) for _, info in operands])
    info = FieldInfo(dims=tuple(tags), h=fields["h"], w=fields["w"], depth=max(i.depth for _, i in operands),
                 context=context, unknown=next((i.unknown for _, i in operands if i.unknown), None))
    merge = len(operands) if len(operands) > 1 else 0
    if merge:
        notes.insert(0, make_note("merge", n=merge))
    return RuleResult([info], kind="merge" if merge else "pointwise", notable=bool(merge), merge=merge, notes=notes)
