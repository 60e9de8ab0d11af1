"""Rules for ops that move dims and positions around without computing across them: reshape/flatten,
squeeze, permute, indexing, split, concatenation and expansion."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch

from explorer.receptive.geometry import AXES, AxisField, Note, FieldInfo, make_note, RuleResult, union_of, unknown_info
from explorer.receptive.opnames import arg, norm_dim


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


def reshape_rule(tensor: torch.Tensor, info: FieldInfo, out: torch.Tensor) -> RuleResult:
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
    notes = [make_note("flatten")] if fields else []
    return RuleResult([info.with_axes(fields, dims=tuple(tags))], kind="reshape", notable=after < before, notes=notes)


def squeeze_rule(name: str, args, kwargs, tensor: torch.Tensor, info: FieldInfo, out: torch.Tensor) -> RuleResult:
    nd = tensor.dim()
    dims = list(info.dims)
    if name == "unsqueeze":
        dim = int(arg(args, kwargs, 1, "dim"))
        dims.insert(dim + nd + 1 if dim < 0 else dim, None)
        return RuleResult([replace(info, dims=tuple(dims))], kind="reshape")
    dim_arg = arg(args, kwargs, 1, "dim")
    if dim_arg is None:
        drop = [d for d in range(nd) if tensor.shape[d] == 1]
    else:
        drop = [norm_dim(int(d), nd) for d in (dim_arg if isinstance(dim_arg, (list, tuple)) else [dim_arg])]
        drop = [d for d in drop if tensor.shape[d] == 1]
    new_dims = tuple(t for d, t in enumerate(dims) if d not in drop)
    lost = any(info.dims[d] in AXES for d in drop)
    return RuleResult([replace(info, dims=new_dims)], kind="reshape", notable=lost)


def permute_rule(name: str, args, kwargs, tensor: torch.Tensor, info: FieldInfo) -> RuleResult:
    nd = tensor.dim()
    dims = list(info.dims)
    if name == "permute":
        order = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
        order = kwargs.get("dims", order)
        new = [dims[norm_dim(int(d), nd)] for d in order]
    elif name == "t":
        new = list(reversed(dims))
    elif name in ("movedim", "moveaxis"):
        src, dst = arg(args, kwargs, 1, "source"), arg(args, kwargs, 2, "destination")
        src = [src] if isinstance(src, int) else list(src)
        dst = [dst] if isinstance(dst, int) else list(dst)
        order = [-1] * nd
        for s, d in zip(src, dst):
            order[norm_dim(d, nd)] = norm_dim(s, nd)
        rest = iter(d for d in range(nd) if d not in {norm_dim(s, nd) for s in src})
        order = [o if o >= 0 else next(rest) for o in order]
        new = [dims[o] for o in order]
    else:
        a, b = norm_dim(int(arg(args, kwargs, 1, "dim0")), nd), norm_dim(int(arg(args, kwargs, 2, "dim1")), nd)
        new = list(dims)
        new[a], new[b] = new[b], new[a]
    return RuleResult([replace(info, dims=tuple(new))], kind="reshape")


def index_rule(name: str, args, kwargs, tensor: torch.Tensor, info: FieldInfo, out: torch.Tensor) -> RuleResult:
    nd = tensor.dim()
    if name == "select":
        dim, index = norm_dim(int(arg(args, kwargs, 1, "dim")), nd), int(arg(args, kwargs, 2, "index"))
        key: list[Any] = [slice(None)] * dim + [index]
    elif name == "narrow":
        dim = norm_dim(int(arg(args, kwargs, 1, "dim")), nd)
        start, length = int(arg(args, kwargs, 2, "start")), int(arg(args, kwargs, 3, "length"))
        key = [slice(None)] * dim + [slice(start, start + length)]
    else:
        raw = args[1]
        key = list(raw) if isinstance(raw, tuple) else [raw]
    advanced = [i for i, k in enumerate(key) if isinstance(k, (torch.Tensor, list))]
    if advanced:
        # One index tensor on a non-spatial dim (e.g. picking channels) keeps the positions as they are.
        if (len(advanced) == 1 and Ellipsis not in key and None not in key and advanced[0] < nd
                and info.dims[advanced[0]] is None and out.dim() == nd):
            return RuleResult([info], kind="reshape")
        reason = "indexing with a tensor or list"
        return RuleResult([unknown_info(out.dim(), reason)], kind="unknown", notable=True,
                       notes=[make_note("unknown", reason=reason)])
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
        return RuleResult([unknown_info(out.dim(), reason)], kind="unknown", notable=True,
                       notes=[make_note("unknown", reason=reason)])
    return RuleResult([info.with_axes(fields, dims=tuple(tags))], kind="reshape", notable=lost)


def split_rule(name: str, args, kwargs, tensor: torch.Tensor, info: FieldInfo, outputs: list[torch.Tensor]) -> RuleResult:
    nd = tensor.dim()
    dim = norm_dim(int(arg(args, kwargs, 1 if name == "unbind" else 2, "dim", 0)), nd)
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
    return RuleResult(infos, kind="reshape", notable=axis in AXES)


def cat_rule(name: str, args, kwargs, inputs: list[tuple[torch.Tensor, FieldInfo]], out: torch.Tensor) -> RuleResult:
    tensors = arg(args, kwargs, 0, "tensors")
    nd = out.dim() - (1 if name == "stack" else 0)
    dim = norm_dim(int(arg(args, kwargs, 1, "dim", 0)), out.dim() if name == "stack" else nd)
    tracked: dict[int, FieldInfo] = {}
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
            notes.append(make_note("concat_spatial"))
    fields = {}
    for axis in AXES:
        u = union_of([i.axis(axis) for i in infos])
        fields[axis] = u if exact else u.inexact()
    merged = base.with_axes(fields, dims=dims, depth=max(i.depth for i in infos), context=any(i.context for i in infos),
                            unknown=next((i.unknown for i in infos if i.unknown), None))
    merge = len(infos) if len(infos) > 1 else 0
    if merge:
        notes.insert(0, make_note("merge", n=merge))
    return RuleResult([merged], kind="merge" if merge else "reshape", notable=bool(merge) or not exact, merge=merge,
                   notes=notes)


def expand_rule(tensor: torch.Tensor, info: FieldInfo, out: torch.Tensor) -> RuleResult:
    shape_in, shape_out = tuple(tensor.shape), tuple(out.shape)
    off = len(shape_out) - len(shape_in)
    tags = [None] * off + [t if shape_in[k] == shape_out[off + k] else None for k, t in enumerate(info.dims)]
    return RuleResult([replace(info, dims=tuple(tags))], kind="reshape")
