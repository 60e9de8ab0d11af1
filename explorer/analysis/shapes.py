"""Layer-by-layer shape tables: one record per module call, in forward order (torchinfo-like, as data)."""
from __future__ import annotations


import re
from dataclasses import dataclass
from types import SimpleNamespace

import pandas as pd
import torch
import torch.nn as nn

from explorer.analysis.functional_ops import (FunctionalCall, FunctionalRecorder, functional_ceil_mode, functional_geometry,
                                              functional_mult_adds)
from explorer.core import is_count, model_device_dtype, watchable_modules
from explorer.core import hooked, on_this_thread

CSV_COLUMNS = ["layer", "type", "depth", "input_shape", "output_shape", "kernel", "stride", "padding",
               "dilation", "params", "trainable_params", "mult_adds"]


# PyTorch's messages for a window larger than its input (conv, pooling, adaptive pooling, padding).
_SIZE_ERROR = re.compile(r"too small|smaller than kernel|greater than actual input|non-positive|output size|"
                         r"padding size|should be at most half|non-empty", re.IGNORECASE)


class InputTooSmallError(ValueError):
    """The input is too small: ``layer`` is the first layer whose output would be empty."""

    def __init__(self, message: str, layer: str | None = None) -> None:
        super().__init__(message)
        self.layer = layer


def _fmt_shape(value) -> str:
    if isinstance(value, torch.Tensor):
        return "x".join(str(d) for d in value.shape[1:]) if value.ndim > 1 else str(value.shape[0])
    if isinstance(value, (tuple, list)):
        parts = [_fmt_shape(v) for v in value]
        return " | ".join(p for p in parts if p)
    if hasattr(value, "_fields"):  # namedtuples such as GoogLeNetOutputs
        return _fmt_shape(tuple(value))
    return ""


def _pair(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    return "x".join(str(v) for v in value) if len(set(value)) > 1 else f"{value[0]}x{value[0]}"


def _geometry(module: nn.Module) -> dict[str, str]:
    """Kernel/stride/padding/dilation for conv and pooling layers (anything exposing them)."""
    if not hasattr(module, "kernel_size") or isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return {"kernel": "", "stride": "", "padding": "", "dilation": ""}
    stride = getattr(module, "stride", None)
    return {"kernel": _pair(module.kernel_size), "stride": _pair(stride if stride is not None else module.kernel_size),
            "padding": _pair(getattr(module, "padding", 0)), "dilation": _pair(getattr(module, "dilation", 1))}


def _leaf_mult_adds(module: nn.Module, output) -> int:
    """Mult-adds of one call, by torchinfo's convention: conv = params × output positions, other layers with
    parameters = params (per image). One exception: a Linear applied at every position of a map (input
    ``[N, ..., features]``) = params × positions, the multiplications it really does (torchinfo counts params once)."""
    if not isinstance(output, torch.Tensor):
        return 0
    params = sum(p.numel() for p in module.parameters(recurse=False))
    if params == 0:
        return 0
    name = type(module).__name__
    if "Conv" in name:
        spatial = 1
        for d in output.shape[2:]:
            spatial *= int(d)
        return params * spatial
    if isinstance(module, nn.Linear) and output.ndim > 2:
        positions = 1
        for d in output.shape[1:-1]:
            positions *= int(d)
        return params * positions
    return params


@dataclass
class _Row:
    layer: str
    type: str
    depth: int
    module: nn.Module
    is_leaf: bool
    call: int
    input_shape: str = ""
    output_shape: str = ""
    params: int = 0
    trainable: int = 0
    biases: int = 0  # parameters named "bias" (a conv's 64 of 1,792); the rest are weights
    mult_adds: int = 0
    out_numel: int = 0
    done: bool = False


def layer_table(model: nn.Module, input_shape: tuple[int, int, int], functional: bool = True) -> pd.DataFrame:
    """One row per module call in forward order, with shapes, geometry, parameters and mult-adds.

    ``functional``: functional calls made in a container's ``forward`` (``F.relu``, ``F.max_pool2d``,
    ``torch.cat``, ``x + y``, ``torch.flatten``) get rows too, named ``caller.op`` (``layer1.0.add``; see
    ``explorer.analysis.functional_ops``), typed by the op, without parameters of their own.

    A container's row holds the totals of what runs inside it (its leaves' mult-adds are summed,
    its parameters counted once). A module called several times (ResNet's shared ``relu``) gets one
    row per call, named ``name#k`` from the second call on. Extra columns after ``CSV_COLUMNS``:
    ``is_leaf``, ``formula``, ``activation_bytes``, ``weights`` and ``biases`` (``params`` split into the
    parameters named ``bias`` and the rest: a 64·3·3·3 conv's 1,792 are 1,728 weights and 64 biases).
    """
    shape = tuple(input_shape)
    if len(shape) == 2 or not shape or not all(is_count(v) for v in shape):
        # (32, 32) would run as one unbatched image, every shape one dimension short: refused, as receptive does
        raise ValueError(f"input_shape is one image's (C, H, W) without the batch, with positive sides; got "
                         f"{shape!r}" + (f" (did you mean (1, {shape[0]}, {shape[1]}) or (3, ...)?)"
                                         if len(shape) == 2 else ""))
    rows: list[_Row] = []
    stack: list[_Row] = []
    calls: dict[str, int] = {}
    seen_params: set[int] = set()
    names = {module: name for name, module in watchable_modules(model).items()}

    def pre_hook(module, inputs):
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        k = calls[name]
        is_leaf = not any(True for _ in module.children())
        row = _Row(layer=name if k == 1 else f"{name}#{k}", type=type(module).__name__,
                   depth=name.count(".") + 1, module=module, is_leaf=is_leaf, call=k,
                   input_shape=_fmt_shape(inputs[0] if len(inputs) == 1 else inputs))
        if k == 1:
            own = list(module.named_parameters())
            fresh = [p for _, p in own if id(p) not in seen_params] if is_leaf else [p for _, p in own]
            row.params = sum(p.numel() for p in fresh)
            fresh_ids = {id(p) for p in fresh}
            row.biases = sum(p.numel() for n, p in own if id(p) in fresh_ids and n.rsplit(".", 1)[-1] == "bias")
            row.trainable = sum(p.numel() for p in fresh if p.requires_grad)
            if is_leaf:
                seen_params.update(id(p) for p in fresh)
        rows.append(row)
        stack.append(row)

    def post_hook(module, inputs, output):
        row = stack.pop()
        row.output_shape = _fmt_shape(output)
        row.done = True
        if isinstance(output, torch.Tensor):
            if output.numel() == 0:
                raise InputTooSmallError(
                    f"the input {'×'.join(map(str, input_shape))} is too small: layer {row.layer} "
                    f"({row.type}) would produce an empty output (its input is {row.input_shape})", row.layer)
            row.out_numel = output[0].numel()
        if row.is_leaf:
            row.mult_adds = _leaf_mult_adds(module, output)
            for parent in stack:
                parent.mult_adds += row.mult_adds

    open_calls: dict[str, _Row] = {}

    def function_enter(call: FunctionalCall) -> None:
        inputs = call.inputs[0] if len(call.inputs) == 1 else tuple(call.inputs)
        geometry = functional_geometry(call)
        shape = SimpleNamespace(kernel_size=geometry["kernel"], stride=geometry["stride"], padding=geometry["padding"],
                                dilation=geometry["dilation"], ceil_mode=functional_ceil_mode(call)
                                ) if geometry else SimpleNamespace()
        row = _Row(layer=call.name, type=call.op, depth=(call.caller.count(".") + 2) if call.caller else 1,
                   module=shape, is_leaf=True, call=call.call, input_shape=_fmt_shape(inputs))  # type: ignore[arg-type]
        rows.append(row)
        open_calls[call.name] = row

    def function_exit(call: FunctionalCall) -> None:
        row = open_calls.pop(call.name)
        output = call.outputs[0]
        row.output_shape = _fmt_shape(output if len(call.outputs) == 1 else tuple(call.outputs))
        row.done = True
        if output.numel() == 0:
            raise InputTooSmallError(
                f"the input {'×'.join(map(str, input_shape))} is too small: layer {row.layer} "
                f"({row.type}) would produce an empty output (its input is {row.input_shape})", row.layer)
        row.out_numel = output[0].numel() if output.dim() > 0 else 1
        row.mult_adds = functional_mult_adds(call)
        for parent in stack:
            parent.mult_adds += row.mult_adds

    device, dtype = model_device_dtype(model)
    x = torch.zeros(1, *input_shape, device=device, dtype=dtype)  # a float64 network gets a float64 input
    with hooked(model) as add:
        model.eval()  # shapes only: a model in training mode must not fold these zeros into its BatchNorm statistics
        try:
            for module, name in names.items():
                if name:  # the root itself is the "total" line, reported separately
                    add(module.register_forward_pre_hook(on_this_thread(pre_hook)))
                    add(module.register_forward_hook(on_this_thread(post_hook)))
            with torch.no_grad():
                if functional:
                    recorder = FunctionalRecorder(model, function_enter, function_exit)
                    recorder.attach(add)
                    with recorder:
                        model(x)
                else:
                    model(x)
        except InputTooSmallError:
            raise
        except RuntimeError as exc:
            failing = next((r for r in reversed(rows) if not r.done and r.is_leaf), None)
            where = f"layer {failing.layer} ({failing.type}, input {failing.input_shape})" if failing else "the model"
            reason = str(exc).splitlines()[0][:160]
            # Only PyTorch's size complaints mean "too small"; a wrong channel count or a classifier sized for
            # another input (mat1 and mat2 shapes...) is said as it is.
            advice = (" — most likely its output would be empty. Try a larger input." if _SIZE_ERROR.search(reason)
                      else ".")
            raise InputTooSmallError(
                f"the input {'×'.join(map(str, input_shape))} does not fit this model: {where} fails{advice} "
                f"({reason})", failing.layer if failing else None) from exc
    # Containers: parameters counted once over their subtree.
    records = []
    for row in rows:
        geom = _geometry(row.module) if row.is_leaf else {"kernel": "", "stride": "", "padding": "", "dilation": ""}
        records.append({
            "layer": row.layer, "type": row.type, "depth": row.depth, "input_shape": row.input_shape,
            "output_shape": row.output_shape, **geom, "params": row.params, "trainable_params": row.trainable,
            "mult_adds": row.mult_adds, "is_leaf": row.is_leaf, "weights": row.params - row.biases, "biases": row.biases,
            "formula": output_formula(row.module, row.input_shape, row.output_shape) if geom["kernel"] else "",
            "activation_bytes": row.out_numel * 4 if row.is_leaf else 0,
        })
    return pd.DataFrame.from_records(records, columns=CSV_COLUMNS + ["is_leaf", "formula", "activation_bytes",
                                                                     "weights", "biases"])


def _spatial(shape: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape.split(" | ")[0].split("x"))
    except ValueError:
        return ()
    return dims[1:] if len(dims) == 3 else ()


def _as_pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        return (0, 0)
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def output_formula(module: nn.Module, input_shape: str, output_shape: str) -> str:
    """The output-size formula with the layer's numbers, e.g. ``(224 − 7 + 2·3)/2 + 1 = 112``.

    Rounded down (``⌊…⌋``) where the division is not exact, up (``⌈…⌉``) for ``ceil_mode`` pooling, which also
    drops a last window that would start in the right padding (``… − 1``, PyTorch's rule); a transposed
    convolution inverts it: ``(N − 1)·S − 2P + D·(F − 1) + output_padding + 1``."""
    ins, outs = _spatial(input_shape), _spatial(output_shape)
    if len(ins) != 2 or len(outs) != 2:
        return ""
    k = _as_pair(module.kernel_size)
    s = _as_pair(getattr(module, "stride", None) or module.kernel_size)
    d = _as_pair(getattr(module, "dilation", 1))
    padding = getattr(module, "padding", 0)
    if isinstance(padding, str):  # "valid": none; "same": D·(F − 1) in all, the odd one on the right (PyTorch's split)
        if padding not in ("same", "valid"):
            return ""
        totals = [d[axis] * (k[axis] - 1) if padding == "same" else 0 for axis in range(2)]
        sides = [(total // 2, total - total // 2) for total in totals]
    else:
        sides = [(pad, pad) for pad in _as_pair(padding)]
    p = tuple(left for left, _ in sides)
    transposed = isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    parts = []
    for axis in range(2):
        n, f, pad, st, dil = ins[axis], k[axis], p[axis], s[axis], d[axis]
        left, right = sides[axis]
        padded = f"2·{pad}" if left == right else f"({left} + {right})"  # both sides of the axis
        total_pad = left + right
        span = f"({dil}·({f} − 1) + 1)" if dil > 1 else f"{f}"  # the dilated kernel's extent
        eff = dil * (f - 1) + 1
        if transposed:
            grow = f"{dil}·({f} − 1)" if dil > 1 else f"({f} − 1)"
            # output_padding, or what a forward's ``output_size=`` asked for beyond the formula's smallest size
            added = outs[axis] - ((n - 1) * st - 2 * pad + dil * (f - 1) + 1)
            tail = f" + {added}" if added else ""
            parts.append(f"({n} − 1)·{st} − 2·{pad} + {grow}{tail} + 1 = {outs[axis]}")
            continue
        exact = (n - eff + total_pad) % st == 0
        body = f"({n} − {span} + {padded})/{st}"
        if getattr(module, "ceil_mode", False) and not exact:
            rounded_up = -(-(n - eff + 2 * pad) // st) + 1
            dropped = " − 1" if (rounded_up - 1) * st >= n + pad else ""  # the last window starts in the padding
            parts.append(f"⌈{body}⌉ + 1{dropped} = {outs[axis]}")
        elif exact:
            parts.append(f"{body} + 1 = {outs[axis]}")
        else:
            parts.append(f"⌊{body}⌋ + 1 = {outs[axis]}")
    same = (ins[0] == ins[1] and outs[0] == outs[1] and k[0] == k[1] and s[0] == s[1] and sides[0] == sides[1]
            and d[0] == d[1])
    return parts[0] if same else " ; ".join(parts)


@dataclass(frozen=True)
class ModelTotals:
    params: int
    trainable_params: int
    mult_adds: int
    activation_bytes: int
    param_bytes: int

    @property
    def model_size_mb(self) -> float:
        return self.param_bytes / 2**20


def model_totals(model: nn.Module, table: pd.DataFrame) -> ModelTotals:
    """Whole-model totals: parameters counted once (shared ones too), leaves' mult-adds summed."""
    params = list({id(p): p for p in model.parameters()}.values())
    buffers = list(model.buffers())
    leaves = table[table["is_leaf"]]
    return ModelTotals(
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        mult_adds=int(leaves["mult_adds"].sum()),
        activation_bytes=int(leaves["activation_bytes"].sum()),
        param_bytes=sum(p.numel() * p.element_size() for p in params) + sum(b.numel() * b.element_size() for b in buffers),
    )


def collapse(table: pd.DataFrame, max_depth: int) -> pd.DataFrame:
    """Rows up to ``max_depth``; containers at the cut already carry their subtree's totals."""
    return table[table["depth"] <= max_depth].reset_index(drop=True)
