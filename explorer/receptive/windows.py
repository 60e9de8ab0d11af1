"""Rules for ops that slide or gather windows over positions: convolution, pooling (fixed, adaptive, global),
resampling, padding, fully connected layers, matrix products and reductions."""
from __future__ import annotations

import math

import torch

from explorer.receptive.geometry import AXES, AxisField, Note, FieldInfo, make_note, RuleResult, union_of
from explorer.receptive.opnames import arg, norm_dim, as_tuple


def _spatial_positions(info: FieldInfo, tensor: torch.Tensor, n: int) -> list[tuple[int, int, str]]:
    """(index among the last n dims, tensor dim, axis) for the last n dims that carry a spatial axis."""
    nd = tensor.dim()
    found = []
    for i in range(n):
        dim = nd - n + i
        if dim >= 0 and info.dims[dim] in AXES:
            found.append((i, dim, info.dims[dim]))
    return found


def conv_rule(args, kwargs, tensor: torch.Tensor, info: FieldInfo) -> RuleResult:
    weight = arg(args, kwargs, 1, "weight")
    kernel = tuple(int(k) for k in weight.shape[2:])
    n = len(kernel)
    stride = as_tuple(arg(args, kwargs, 3, "stride", 1), n, 1)
    dilation = as_tuple(arg(args, kwargs, 5, "dilation", 1), n, 1)
    padding_arg = arg(args, kwargs, 4, "padding", 0)
    if isinstance(padding_arg, str):
        # PyTorch's "same" pads d(k-1)//2 before and the rest after; "valid" pads nothing.
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)) if padding_arg == "same" else (0,) * n
    else:
        padding = as_tuple(padding_arg, n, 0)
    fields = {axis: info.axis(axis).window(kernel[i], stride[i], padding[i], dilation[i])
              for i, _dim, axis in _spatial_positions(info, tensor, n)}
    return RuleResult([info.with_axes(fields, depth=info.depth + 1)], kind="conv", notable=True)


def conv_transpose_rule(args, kwargs, tensor: torch.Tensor, info: FieldInfo) -> RuleResult:
    weight = arg(args, kwargs, 1, "weight")
    kernel = tuple(int(k) for k in weight.shape[2:])
    n = len(kernel)
    stride = as_tuple(arg(args, kwargs, 3, "stride", 1), n, 1)
    padding = as_tuple(arg(args, kwargs, 4, "padding", 0), n, 0)
    dilation = as_tuple(arg(args, kwargs, 7, "dilation", 1), n, 1)
    fields = {}
    for i, _dim, axis in _spatial_positions(info, tensor, n):
        f = info.axis(axis)
        if f.collapsed:
            continue
        s, reach = stride[i], dilation[i] * (kernel[i] - 1)
        # Output unit o reads input unit u through tap t when o = u·s − p + d·t, so u runs over
        # ceil((o + p − d(k − 1))/s) .. floor((o + p)/s). Units are placed every jump/s: the box must hold that
        # range for every one of the s phases of o, and (o + p − d(k − 1))/s .. (o + p)/s is the tightest such box
        # (each bound is reached by the phase where s divides it). At stride 1 it is exact; at stride s it may be
        # up to (s − 1)/s·jump too large on each side for some units, never too small.
        lo = f.lo + (padding[i] - reach) / s * f.jump
        hi = f.hi + padding[i] / s * f.jump
        fields[axis] = AxisField(lo, hi, f.jump / s, f.collapsed, f.exact and s == 1)
    strided = any(stride[i] > 1 for i, _dim, _axis in _spatial_positions(info, tensor, n))
    return RuleResult([info.with_axes(fields, depth=info.depth + 1)], kind="conv", notable=True,
                   notes=[make_note("transposed")] if strided else [])


def pool_rule(kind: str, n: int, args, kwargs, tensor: torch.Tensor, info: FieldInfo, outputs) -> RuleResult:
    if kind == "lp":
        kernel = as_tuple(arg(args, kwargs, 2, "kernel_size"), n, 1)
        stride = as_tuple(arg(args, kwargs, 3, "stride"), n, 0)
        padding, dilation = (0,) * n, (1,) * n
    else:
        kernel = as_tuple(arg(args, kwargs, 1, "kernel_size"), n, 1)
        stride = as_tuple(arg(args, kwargs, 2, "stride"), n, 0)
        padding = as_tuple(arg(args, kwargs, 3, "padding", 0), n, 0)
        dilation = as_tuple(arg(args, kwargs, 4, "dilation", 1), n, 1) if kind == "max" else (1,) * n
    stride = tuple(s if s else k for s, k in zip(stride, kernel))  # stride=None means stride=kernel
    fields = {axis: info.axis(axis).window(kernel[i], stride[i], padding[i], dilation[i])
              for i, _dim, axis in _spatial_positions(info, tensor, n)}
    new = info.with_axes(fields, depth=info.depth + 1)
    return RuleResult([new] * len(outputs), kind="pool", notable=True)


def adaptive_rule(n: int, tensor: torch.Tensor, info: FieldInfo, outputs) -> RuleResult:
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
            notes.append(make_note("adaptive_bins", size_in=size_in, size_out=size_out, smallest=min(sizes),
                               largest=max(sizes)))
    if not changed:
        return RuleResult([info] * len(outputs), kind="pool", notable=True,
                       notes=[make_note("adaptive_same")])
    new = info.with_axes(fields, depth=info.depth + 1)
    if collapsed:
        notes.insert(0, make_note("global_pool"))
    return RuleResult([new] * len(outputs), kind="global_pool" if collapsed else "pool", notable=True, notes=notes)


def upsample_rule(name: str, args, kwargs, tensor: torch.Tensor, info: FieldInfo, out: torch.Tensor) -> RuleResult:
    mode = str(kwargs.get("mode", "nearest")) if name in ("interpolate", "upsample") else name
    taps = 4 if "cubic" in mode else 2 if ("linear" in mode or "bilinear" in mode) else 1
    fields = {}
    for _i, dim, axis in _spatial_positions(info, tensor, tensor.dim() - 2):
        size_in, size_out = int(tensor.shape[dim]), int(out.shape[dim])
        if size_in == size_out:
            continue
        f = info.axis(axis)
        fields[axis] = AxisField(f.lo, f.hi + (taps - 1) * f.jump, f.jump * size_in / size_out, f.collapsed, False)
    return RuleResult([info.with_axes(fields, depth=info.depth + 1)], kind="pool", notable=True,
                   notes=[make_note("resample")] if fields else [])


def pad_rule(args, kwargs, tensor: torch.Tensor, info: FieldInfo, out: torch.Tensor) -> RuleResult:
    pad = list(arg(args, kwargs, 1, "pad"))
    mode = arg(args, kwargs, 2, "mode", "constant")
    fields = {}
    nd = tensor.dim()
    for i in range(len(pad) // 2):
        dim = nd - 1 - i
        axis = info.dims[dim]
        if axis in AXES:
            fields[axis] = info.axis(axis).shift(-int(pad[2 * i]))
    notes = [] if mode in ("constant", None) else [make_note("pad_copy", mode=str(mode))]
    return RuleResult([info.with_axes(fields)], kind="pointwise", notable=True, notes=notes)


def linear_rule(tensor: torch.Tensor, info: FieldInfo, out: torch.Tensor) -> RuleResult:
    axis = info.dims[-1] if info.dims else None
    if axis in AXES:
        fields = {axis: info.axis(axis).collapse(int(tensor.shape[-1]))}
        dims = info.dims[:-1] + (None,)
        return RuleResult([info.with_axes(fields, dims=dims)], kind="linear", notable=True,
                       notes=[make_note("fully_connected")])
    return RuleResult([info], kind="linear", notable=True)


def matmul_rule(inputs: list[tuple[torch.Tensor, FieldInfo]], out: torch.Tensor) -> RuleResult:
    fields = {}
    for axis in AXES:
        parts = []
        for tensor, info in inputs:
            f = info.axis(axis)
            if axis in info.dims:
                f = f.collapse(int(tensor.shape[info.dims.index(axis)]))
            parts.append(f)
        fields[axis] = union_of(parts)
    base = inputs[0][1]
    info = base.with_axes(fields, dims=(None,) * out.dim(), context=any(i.context for _, i in inputs),
                          depth=max(i.depth for _, i in inputs))
    return RuleResult([info], kind="linear", notable=True, notes=[make_note("mix_positions")])


def reduction_rule(name: str, args, kwargs, tensor: torch.Tensor, info: FieldInfo, outputs) -> RuleResult:
    nd = tensor.dim()
    dim_arg = arg(args, kwargs, 2 if name == "norm" else 1, "dim")
    if dim_arg is None:
        dims = list(range(nd))
    else:
        dims = [norm_dim(int(d), nd) for d in (dim_arg if isinstance(dim_arg, (list, tuple)) else [dim_arg])]
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
    notes = [make_note("global_pool")] if fields else []
    return RuleResult([new] * len(outputs), kind="global_pool" if fields else "pointwise", notable=lost, notes=notes)
