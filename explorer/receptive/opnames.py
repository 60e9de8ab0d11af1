"""The vocabulary of the tracer: which torch functions are which kind of op, and small helpers that read an
op's name and arguments."""
from __future__ import annotations

import re
from typing import Any, Sequence


# --- op classification ------------------------------------------------------------------------------

POINTWISE = frozenset("""
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
CONTEXT_NORMS = frozenset({"group_norm", "instance_norm"})
REDUCTIONS = frozenset("sum mean amax amin max min std var logsumexp prod median nansum nanmean argmax argmin "
                        "all any count_nonzero std_mean var_mean norm".split())
RESHAPES = frozenset("view reshape view_as reshape_as flatten unflatten".split())
PERMUTES = frozenset("permute transpose swapaxes swapdims movedim moveaxis t".split())
SPLITS = frozenset("chunk split tensor_split unbind split_with_sizes".split())
EXPANDS = frozenset("expand expand_as broadcast_to repeat tile".split())
MATMULS = frozenset("matmul mm bmm baddbmm addmm addbmm einsum bilinear scaled_dot_product_attention".split())
SOFTMAXES = frozenset("softmax log_softmax softmin".split())
CONSTANT_LIKE = frozenset("new_zeros new_ones new_empty new_full new_tensor zeros_like ones_like empty_like full_like "
                           "rand_like randn_like randint_like size dim".split())
POOL_RE = re.compile(r"^(max|avg|lp)_pool([123])d(_with_indices)?$")
ADAPTIVE_RE = re.compile(r"^adaptive_(avg|max)_pool([123])d(_with_indices)?$")
CONV_RE = re.compile(r"^conv([123])d$")
CONV_T_RE = re.compile(r"^conv_transpose([123])d$")
UPSAMPLE_RE = re.compile(r"^(interpolate|upsample(_nearest|_bilinear)?|upsample_(nearest|bilinear|bicubic|linear|trilinear)[123]?d)$")
KIND_RANK = {"unknown": 7, "conv": 6, "pool": 5, "global_pool": 5, "linear": 4, "merge": 3, "norm": 2,
              "pointwise": 1, "reshape": 0}


def op_name(func: Any) -> str:
    name = getattr(func, "__name__", "") or ""
    if name == "__get__":  # a tensor property such as .data or .T
        owner = getattr(func, "__self__", None)
        return "property:" + str(getattr(owner, "__name__", "?"))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in ("i", "r") and name[1:] in POINTWISE | MATMULS:
            name = name[1:]
        return name
    name = name.lstrip("_")
    if name.endswith("_") and name[:-1] in POINTWISE | RESHAPES | PERMUTES | EXPANDS | {"unsqueeze", "squeeze"}:
        name = name[:-1]
    return name


def arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    if len(args) > index:
        return args[index]
    return default


def as_tuple(value: Any, n: int, default: int) -> tuple[int, ...]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return (default,) * n
    if isinstance(value, (list, tuple)):
        vals = tuple(int(v) for v in value)
        return vals * n if len(vals) == 1 else vals
    return (int(value),) * n


def norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim
