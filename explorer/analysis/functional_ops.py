"""Functional calls in ``forward`` as layers: ``F.relu``, ``F.max_pool2d``, ``torch.cat``, ``x + y``, ``torch.flatten``.

Module hooks see modules only; a network written with ``F.relu`` instead of ``nn.ReLU`` would have no activation
rows at all. :class:`FunctionalRecorder` is a ``TorchFunctionMode`` that sees every torch function and tensor
method while the model runs; per-module hooks (this thread only) say which module's ``forward`` made each call.
A call made in a *container's* ``forward`` (the model's own included) on a tensor computed from the input is a
*functional call*, named like the receptive-field table names it: the caller's name and the op
(``layer1.0.add``, ``relu`` at the top level, ``relu#2`` for the second), with ``()`` appended when a submodule
has that very name. Calls inside leaf modules (``nn.Conv2d``'s own ``F.conv2d``) belong to the module.
Bookkeeping calls (``clone``, ``detach``, ``size``, indexing...) are not layers.

Hooks go through ``explorer.core.hooked`` (the caller's ``add``): the model's lock is held and every hook is
removed in ``finally``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from explorer.core import TensorTags, flat_tensors, watchable_modules

# Element-wise non-linearities, as functions: their input is the feature map, their output the activation map.
ACTIVATION_OPS = frozenset("""relu relu6 leaky_relu elu selu celu gelu silu mish hardswish hardsigmoid hardtanh
sigmoid tanh softplus prelu rrelu threshold glu logsigmoid""".split())
# Calls that move, copy or describe a tensor without computing a new layer's values.
BOOKKEEPING_OPS = frozenset("""clone detach detach_ to float double half bfloat16 type type_as cpu cuda contiguous
requires_grad requires_grad_ size dim numel element_size data_ptr is_contiguous stride getitem setitem
item tolist numpy new_zeros new_ones new_empty new_full new_tensor zeros_like ones_like empty_like full_like
rand_like randn_like randint_like copy_ storage untyped_storage is_floating_point is_complex get_device
retain_grad register_hook backward""".split())
_CONV_OPS = {"conv1d": 1, "conv2d": 2, "conv3d": 3}
# Functional ops that are weight layers (``F.conv2d``/``F.linear`` on a network's own parameters): what
# :func:`functional_mult_adds` counts and Compare's depth counts as a layer.
WEIGHT_LAYER_OPS = frozenset({*_CONV_OPS, "linear"})
_POOL_OPS = {"max_pool1d": 1, "max_pool2d": 2, "max_pool3d": 3, "avg_pool1d": 1, "avg_pool2d": 2, "avg_pool3d": 3,
             "max_pool2d_with_indices": 2, "lp_pool2d": 2}


def op_name(func: Any) -> str:
    """``F.relu`` → ``relu``, ``Tensor.__iadd__`` → ``add``, ``Tensor.relu_`` → ``relu``, ``x.shape`` → ``property:``."""
    name = getattr(func, "__name__", "") or ""
    if name == "__get__":
        return "property:" + str(getattr(getattr(func, "__self__", None), "__name__", "?"))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in ("i", "r") and name[1:] in ("add", "sub", "mul", "truediv", "floordiv", "matmul", "pow",
                                                  "and", "or", "xor", "mod", "lshift", "rshift"):
            name = name[1:]
        return name
    name = name.lstrip("_")
    if name.endswith("_") and name not in BOOKKEEPING_OPS:
        name = name[:-1]
    return name


# op_name of each function seen (a few dozen: F.relu, torch.cat, Tensor.__add__...), asked at every functional call.
_op_names: dict[Any, str] = {}


def is_layer_op(name: str) -> bool:
    """A functional call worth a row of its own (not bookkeeping, not a property read)."""
    return bool(name) and name not in BOOKKEEPING_OPS and not name.startswith("property:")


@dataclass
class FunctionalCall:
    """One functional call: its call name, op, the module whose forward made it, inputs and (after) outputs."""

    name: str  # "layer1.0.add", "relu#2"
    base: str  # the name without "#k"
    call: int  # 1-based count of ``base`` in this pass
    op: str  # "add"
    caller: str  # the module whose forward made the call ("" = the model's own)
    args: tuple
    kwargs: dict
    inputs: list[torch.Tensor]  # the tensors computed from the model's input, before the call
    outputs: list[torch.Tensor] = field(default_factory=list)

    @property
    def is_activation(self) -> bool:
        return self.op in ACTIVATION_OPS


@dataclass
class _Frame:
    name: str
    leaf: bool
    inside_leaf: bool
    fed: bool = True  # a leaf given a tensor computed from the model's input (its output then is too)


class FunctionalRecorder(TorchFunctionMode):
    """Sees functional calls while ``model`` runs (see the module docstring).

    ``on_enter(call)`` runs before the op (read its inputs: an in-place ``relu_`` overwrites them);
    ``on_exit(call)`` after it, with ``call.outputs`` filled; a tensor it returns replaces the op's first output
    for the rest of the forward pass (a Grad-CAM layer's graph starts there). Use as a context manager around
    the forward pass, after :meth:`attach` and :meth:`track`.
    """

    def __init__(self, model: nn.Module, on_enter: Callable[[FunctionalCall], None] | None = None,
                 on_exit: Callable[[FunctionalCall], torch.Tensor | None] | None = None,
                 keep_tensors: bool = True, module_paths: set[str] | None = None) -> None:
        super().__init__()
        self.model = model
        # False: a call forgets its arguments and tensors once ``on_exit`` has seen them (``calls`` would
        # otherwise keep every functional op's output alive until the pass ends: ~1 GB for efficientnet_b7 at 600²).
        self.keep_tensors = keep_tensors
        self.on_enter = on_enter
        self.on_exit = on_exit
        self.thread = threading.get_ident()
        self.module_paths = {name for name, _ in model.named_modules()} if module_paths is None else module_paths
        self.tags: TensorTags[bool] = TensorTags()
        self.frames: list[_Frame] = []
        self.counts: dict[str, int] = {}
        self.calls: list[FunctionalCall] = []

    def attach(self, add: Callable[[Any], None]) -> None:
        """Register the frame hooks through ``add`` (``explorer.core.hooked``'s, which removes them).

        A caller that already hooks every module may instead call :meth:`enter_module` and :meth:`exit_module`
        from its own hooks (half the hooks: each costs a Python call per module call)."""
        for name, module in watchable_modules(self.model).items():
            add(module.register_forward_pre_hook(self._pre_hook(name, is_leaf_module(name, module))))
            add(module.register_forward_hook(self._post_hook))

    def enter_module(self, name: str, leaf: bool, args: Any) -> None:
        """A module's forward starts (``name`` "" is the model; ``leaf``: see :func:`is_leaf_module`)."""
        if threading.get_ident() != self.thread:
            return
        if not self.frames and not name:
            # A new forward pass of the model (attribution methods run several): count calls afresh
            # and follow whatever it is given.
            self.counts.clear()
            for tensor in flat_tensors(args):
                self.tags.set(tensor, True)
        parent = self.frames[-1] if self.frames else None
        inside = bool(parent and (parent.leaf or parent.inside_leaf))
        fed = (leaf or inside) and any(self.tags.get(t) for t in flat_tensors(args))
        self.frames.append(_Frame(name, leaf, inside, fed))

    def exit_module(self, output: Any) -> None:
        """The module's forward returned ``output`` (after any hook replaced it)."""
        if threading.get_ident() == self.thread and self.frames:
            frame = self.frames.pop()
            if (frame.leaf or frame.inside_leaf) and frame.fed:
                # Ops inside a leaf are not followed one by one (see ``__torch_function__``): the output of a leaf
                # fed from the input (or the tensor a hook put in its place) is computed from the input too. A leaf
                # that only returns constants (a learnt embedding) is not.
                for tensor in flat_tensors(output):
                    self.tags.set(tensor, True)

    def follow(self, replacement: Any, original: Any) -> None:
        """A hook put ``replacement`` in place of ``original``: computed from the input if the original was."""
        if any(self.tags.get(t) for t in flat_tensors(original)):
            for tensor in flat_tensors(replacement):
                self.tags.set(tensor, True)

    def track(self, tensor: torch.Tensor) -> None:
        """Mark the model's input: calls on tensors computed from it are layers, calls on constants are not."""
        self.tags.set(tensor, True)

    def _pre_hook(self, name: str, leaf: bool):
        def hook(_module: nn.Module, args: Any) -> None:
            self.enter_module(name, leaf, args)
        return hook

    def _post_hook(self, _module: nn.Module, _args: Any, output: Any) -> None:
        self.exit_module(output)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if threading.get_ident() != self.thread:
            return func(*args, **kwargs)
        frame = self.frames[-1] if self.frames else None
        if frame is not None and (frame.leaf or frame.inside_leaf):
            # Calls inside a leaf module belong to the module: no bookkeeping per op (a conv's own F.conv2d,
            # a BatchNorm's batch_norm): this is most of the ops of a forward pass.
            return func(*args, **kwargs)
        inputs = [t for t in flat_tensors((args, kwargs)) if self.tags.get(t)]
        if not inputs:
            return func(*args, **kwargs)
        try:
            name = _op_names.get(func)
            if name is None:
                name = _op_names[func] = op_name(func)
        except TypeError:  # an unhashable callable
            name = op_name(func)
        call = None
        if is_layer_op(name):
            caller = frame.name if frame is not None else ""
            base = f"{caller}.{name}" if caller else name
            if base in self.module_paths:  # F.relu beside a submodule named relu
                base += "()"
            k = self.counts[base] = self.counts.get(base, 0) + 1
            call = FunctionalCall(name=base if k == 1 else f"{base}#{k}", base=base, call=k, op=name, caller=caller,
                                  args=args, kwargs=kwargs, inputs=inputs)
            if self.on_enter is not None:
                self.on_enter(call)
        out = func(*args, **kwargs)
        outputs = flat_tensors(out)
        for tensor in outputs:
            self.tags.set(tensor, True)
        if call is None or not outputs:
            return out
        call.outputs = outputs
        self.calls.append(call)
        if self.on_exit is not None:
            replacement = self.on_exit(call)
            if replacement is not None:
                self.tags.set(replacement, True)
                out = _replace_first(out, replacement)
        if not self.keep_tensors:
            call.args, call.kwargs, call.inputs, call.outputs = (), {}, [], []
        return out


def has_children(module: nn.Module) -> bool:
    """Whether ``module`` has a submodule. Read from its dict: ``children()`` is two nested generators, and hooks ask
    this of every module, every pass."""
    return any(child is not None for child in module._modules.values())


def is_leaf_module(name: str, module: nn.Module) -> bool:
    """A module without children, other than the model itself (a network with no submodules is all
    functional calls, so the root is never a leaf)."""
    return bool(name) and not has_children(module)


def _replace_first(obj: Any, new: torch.Tensor) -> Any:
    if isinstance(obj, torch.Tensor):
        return new
    if isinstance(obj, (tuple, list)) and obj:
        items = list(obj)
        items[0] = _replace_first(items[0], new)
        return type(obj)(items) if isinstance(obj, list) or not hasattr(obj, "_fields") else type(obj)(*items)
    return obj


# --- what a functional call means in a layer table -----------------------------------------------------------

def _arg(args: Sequence[Any], kwargs: dict, index: int, key: str, default: Any = None) -> Any:
    if key in kwargs:
        return kwargs[key]
    return args[index] if len(args) > index else default


def _tuple(value: Any, n: int, default: int) -> tuple[int, ...]:
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return (default,) * n
    if isinstance(value, (list, tuple)):
        values = tuple(int(v) for v in value)
        return values * n if len(values) == 1 else values
    if isinstance(value, str):
        return ()
    return (int(value),) * n


def functional_geometry(call: FunctionalCall) -> dict[str, tuple[int, ...] | str]:
    """Kernel, stride, padding and dilation of a functional convolution or pooling call (else empty); a
    convolution's padding may be "same" or "valid"."""
    op, args, kwargs = call.op, call.args, call.kwargs
    if op in _CONV_OPS:
        n = _CONV_OPS[op]
        weight = _arg(args, kwargs, 1, "weight")
        if not isinstance(weight, torch.Tensor):
            return {}
        padding = _arg(args, kwargs, 4, "padding")
        return {"kernel": tuple(int(d) for d in weight.shape[2:]), "stride": _tuple(_arg(args, kwargs, 3, "stride"), n, 1),
                "padding": padding if isinstance(padding, str) else _tuple(padding, n, 0),  # "same", "valid"
                "dilation": _tuple(_arg(args, kwargs, 5, "dilation"), n, 1)}
    if op in _POOL_OPS:
        n = _POOL_OPS[op]
        # lp_pool2d(input, norm_type, kernel_size, stride, ceil_mode): no padding, no dilation
        first = 2 if op.startswith("lp_") else 1
        kernel = _tuple(_arg(args, kwargs, first, "kernel_size"), n, 1)
        stride = _arg(args, kwargs, first + 1, "stride")
        return {"kernel": kernel, "stride": _tuple(stride, n, 1) if stride not in (None, [], ()) else kernel,
                "padding": (0,) * n if op.startswith("lp_") else _tuple(_arg(args, kwargs, 3, "padding"), n, 0),
                "dilation": _tuple(_arg(args, kwargs, 4, "dilation"), n, 1) if op.startswith("max") else (1,) * n}
    return {}


# Where each pooling op takes ``ceil_mode`` by position (after input): max_pool(kernel, stride, padding, dilation,
# ceil_mode), avg_pool(kernel, stride, padding, ceil_mode), lp_pool(norm_type, kernel, stride, ceil_mode).
_CEIL_MODE_INDEX = {"max": 5, "avg": 4, "lp_": 4}


def functional_ceil_mode(call: FunctionalCall) -> bool:
    """Whether a functional pooling call rounds its output size up (``ceil_mode``, by keyword or by position)."""
    if call.op not in _POOL_OPS:
        return False
    return bool(_arg(call.args, call.kwargs, _CEIL_MODE_INDEX[call.op[:3]], "ceil_mode", False))


def functional_mult_adds(call: FunctionalCall, bias: bool = True) -> int:
    """Mult-adds of a functional convolution or linear layer by torchinfo's convention (weights and bias × output
    positions; ``bias=False``: the weights alone, the papers' and Compare's convention); 0 for everything else
    (element-wise ops, pooling, concatenation)."""
    if call.op not in (*_CONV_OPS, "linear") or not call.outputs:
        return 0
    weight = _arg(call.args, call.kwargs, 1, "weight")
    if not isinstance(weight, torch.Tensor):
        return 0
    bias_tensor = _arg(call.args, call.kwargs, 2, "bias") if bias else None
    params = weight.numel() + (bias_tensor.numel() if isinstance(bias_tensor, torch.Tensor) else 0)
    out = call.outputs[0]
    positions = 1
    dims = out.shape[2:] if call.op in _CONV_OPS else out.shape[1:-1]
    for d in dims:
        positions *= int(d)
    return params * positions
