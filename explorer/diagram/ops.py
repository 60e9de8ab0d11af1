"""The diagram's vocabulary: which kind of box a module call or a torch function makes, and the numbers
(kernel, stride, padding...) a box shows."""
from __future__ import annotations

import re
from typing import Any, Sequence

import torch
import torch.nn as nn

# Kinds a box can have; the DOT renderer colours by these.
KINDS = ("input", "output", "conv", "pool", "norm", "act", "linear", "matmul", "add", "mul", "cat", "split",
         "flatten", "reshape", "index", "reduce", "resize", "dropout", "identity", "op", "module", "block")

# Functions that only move or re-type a tensor: they pass its provenance on and make no box.
TRANSPARENT = frozenset("contiguous clone detach to float double half bfloat16 type type_as cpu cuda alias "
                        "requires_grad property:data property:detach".split())
# Functions whose result does not depend on the values of their tensor argument (only on its shape/dtype).
CONSTANT_LIKE = frozenset("new_zeros new_ones new_empty new_full new_tensor zeros_like ones_like empty_like "
                          "full_like rand_like randn_like randint_like".split())

_FUNCTION_KINDS: dict[str, str] = {}
for _kind, _names in {
    "conv": "conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d",
    "norm": "batch_norm layer_norm group_norm instance_norm local_response_norm normalize rms_norm",
    "act": "relu relu6 gelu silu sigmoid tanh hardswish hardsigmoid hardtanh leaky_relu elu selu celu mish "
           "softplus softsign logsigmoid prelu rrelu threshold softmax log_softmax softmin glu",
    "linear": "linear bilinear",
    "matmul": "matmul mm bmm baddbmm addmm addbmm einsum scaled_dot_product_attention",
    "add": "add sub subtract rsub",
    "mul": "mul multiply div divide true_divide",
    "cat": "cat concat concatenate stack hstack vstack",
    "split": "chunk split tensor_split unbind split_with_sizes",
    "flatten": "flatten",
    "reshape": "view reshape view_as reshape_as unflatten permute transpose swapaxes swapdims movedim t "
               "squeeze unsqueeze expand expand_as repeat channel_shuffle pixel_shuffle pixel_unshuffle "
               "property:T property:mT",
    "index": "getitem setitem narrow select index_select gather masked_fill",
    "reduce": "sum mean amax amin max min std var logsumexp prod",
    "resize": "interpolate upsample upsample_nearest upsample_bilinear pad",
    "dropout": "dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout",
}.items():
    for _name in _names.split():
        _FUNCTION_KINDS[_name] = _kind
_POOL_RE = re.compile(r"^(max|avg|lp|adaptive_max|adaptive_avg)_pool[123]d(_with_indices)?$")
# Dunder names that are an operator's in-place or reflected form (__iadd__, __radd__ -> add).
_OPERATORS = {"add", "sub", "mul", "div", "truediv", "matmul", "and", "or", "xor"}


def op_name(func: Any) -> str:
    """A readable name for a torch function or tensor method: ``__iadd__``/``add_`` → ``add``."""
    name = getattr(func, "__name__", "") or ""
    if name == "__get__":  # a tensor property such as .data or .T
        owner = getattr(func, "__self__", None)
        return "property:" + str(getattr(owner, "__name__", "?"))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in ("i", "r") and name[1:] in _OPERATORS:
            name = name[1:]
        return {"truediv": "div"}.get(name, name)
    name = name.lstrip("_")
    if name.endswith("_") and len(name) > 1:
        name = name[:-1]  # in-place variant (relu_, add_)
    return name


def function_kind(name: str) -> str:
    if _POOL_RE.match(name):
        return "pool"
    return _FUNCTION_KINDS.get(name, "op")


def module_kind(module: nn.Module) -> str:
    """The kind of box a leaf module makes, by its class (and where torch defines it)."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                           nn.ConvTranspose3d)):
        return "conv"
    if isinstance(module, (nn.Linear, nn.Bilinear)):
        return "linear"
    if isinstance(module, (nn.Flatten,)):
        return "flatten"
    if isinstance(module, (nn.Unflatten, nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle)):
        return "reshape"
    if isinstance(module, nn.Identity):
        return "identity"
    if isinstance(module, (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)):
        return "resize"
    if isinstance(module, (nn.LocalResponseNorm, nn.GroupNorm, nn.LayerNorm)):
        return "norm"
    # torch groups its layer classes by file: activations, pooling, normalisation, dropout.
    source = type(module).__module__
    for suffix, kind in (("activation", "act"), ("pooling", "pool"), ("batchnorm", "norm"),
                         ("instancenorm", "norm"), ("normalization", "norm"), ("dropout", "dropout"),
                         ("padding", "resize")):
        if source == f"torch.nn.modules.{suffix}":
            return kind
    return "module"


def _pair(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(int(v) if v is not None else 0 for v in value)
    if isinstance(value, (int, float)):
        return (int(value),)
    return None


def module_geometry(module: nn.Module) -> dict[str, Any]:
    """kernel / stride / padding / extra details of a leaf module, where it has them."""
    out: dict[str, Any] = {}
    for attr in ("kernel_size", "stride", "padding", "dilation"):
        value = getattr(module, attr, None)
        if value is not None and not isinstance(value, str):
            out[attr.replace("_size", "")] = _pair(value)
        elif isinstance(value, str):  # padding="same"
            out[attr] = value
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                           nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
        out["output_size"] = _pair(module.output_size)
    groups = getattr(module, "groups", 1)
    if isinstance(groups, int) and groups > 1:
        out["groups"] = groups
    if isinstance(module, nn.Linear):
        out["features"] = (module.in_features, module.out_features)
    p = getattr(module, "p", None)
    if isinstance(p, float) and module_kind(module) == "dropout":
        out["p"] = p
    return out


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else None


def function_geometry(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """kernel / stride / padding of a functional convolution or pooling, read from its arguments."""
    out: dict[str, Any] = {}
    if name.startswith("conv"):
        weight = _arg(args, kwargs, 1, "weight")
        if isinstance(weight, torch.Tensor):
            out["kernel"] = tuple(int(d) for d in weight.shape[2:])
        out["stride"] = _pair(_arg(args, kwargs, 3, "stride") or 1)
        padding = _arg(args, kwargs, 4, "padding")
        out["padding"] = padding if isinstance(padding, str) else _pair(padding or 0)
    elif name.startswith("adaptive_"):
        out["output_size"] = _pair(_arg(args, kwargs, 1, "output_size"))
    elif _POOL_RE.match(name):
        offset = 1 if name.startswith("lp_") else 0  # lp_pool's first argument after input is norm_type
        kernel = _pair(_arg(args, kwargs, 1 + offset, "kernel_size"))
        out["kernel"] = kernel
        out["stride"] = _pair(_arg(args, kwargs, 2 + offset, "stride")) or kernel  # stride defaults to kernel
        if not name.startswith("lp_"):
            out["padding"] = _pair(_arg(args, kwargs, 3, "padding") or 0)
    elif name == "dropout" or name.startswith("dropout"):
        p = _arg(args, kwargs, 1, "p")
        if isinstance(p, float):
            out["p"] = p
    return out
