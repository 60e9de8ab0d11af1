"""Layer call names and what a module call is: the vocabulary of :mod:`explorer.analysis.activations`.

Layers are addressed by *call names*: a module's dotted name for its first call in a forward pass and
``name#k`` for its k-th call (k >= 2). torchvision's ResNet blocks call one ``relu`` module twice, so
``layer1.0.relu`` is the activation after ``bn1`` and ``layer1.0.relu#2`` the one after the residual
addition. Appending ``:in`` asks for the module's *input* instead of its output (the pre-activation
values a ReLU receives, for instance).

Nothing here registers hooks or runs the model: parsing and resolving call names, classifying modules
(activation, conv-like), finding tensors in module outputs, :class:`CallInfo` records, their grouping
into blocks and the feature-map / activation-map pairing (:func:`activation_pair`).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from explorer.core import watchable_modules


INPUT_SUFFIX = ":in"

# Element-wise non-linearities: what turns a feature map into an activation map.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
)
# Modules that may sit between a conv and its activation without being the activation themselves.
_PASS_THROUGH_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d, nn.LocalResponseNorm,
    nn.Dropout, nn.Dropout2d, nn.Identity,
)
_PLAIN_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# Project activations defined as their own classes (LeNet-5's ScaledTanh) are recognised by name.
_ACTIVATION_NAME = re.compile(r"(ReLU\d*|Tanh|Sigmoid|GELU|SiLU|Swish|Mish|ELU|Softplus|Hardswish)$", re.IGNORECASE)


def is_activation(module: nn.Module) -> bool:
    """An element-wise non-linearity module (what turns a feature map into an activation map)."""
    if isinstance(module, ACTIVATION_TYPES):
        return True
    leaf = next(module.children(), None) is None  # a "ConvBNReLU" block is not an activation
    return leaf and bool(_ACTIVATION_NAME.search(type(module).__name__))


def is_conv(module: nn.Module) -> bool:
    """``nn.Conv*`` or a module shaped like one (LeNet-5's partially connected ``PartialConv2d``): the one test
    of "is this a convolution" in the library."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return True
    return all(hasattr(module, a) for a in ("weight", "kernel_size", "in_channels", "out_channels"))


# --------------------------------------------------------------------------------------------- names
@dataclass(frozen=True)
class CallSpec:
    """A parsed layer address: module name, which call (1-based) and output or input."""

    module: str
    call: int = 1
    want_input: bool = False

    @property
    def call_name(self) -> str:
        return call_name(self.module, self.call)

    def __str__(self) -> str:
        return self.call_name + (INPUT_SUFFIX if self.want_input else "")


def call_name(module_name: str, call: int) -> str:
    """``name`` for the first call, ``name#k`` for the k-th."""
    return module_name if call == 1 else f"{module_name}#{call}"


def parse_call(spec: str) -> CallSpec:
    """Parse ``"layer1.0.relu#2"``, ``"features.1:in"``... into a :class:`CallSpec`."""
    text = spec.strip()
    want_input = text.endswith(INPUT_SUFFIX)
    if want_input:
        text = text[: -len(INPUT_SUFFIX)]
    module, sep, k = text.partition("#")
    call = 1
    if sep:
        if not k.isdigit() or int(k) < 2:
            raise ValueError(f"bad layer name {spec!r}: the call number after '#' must be 2 or more")
        call = int(k)
    return CallSpec(module, call, want_input)


def resolve_modules(model: nn.Module, specs: Iterable[CallSpec],
                    modules: Mapping[str, nn.Module] | None = None) -> dict[str, nn.Module]:
    """The module each spec names (``modules``: the model's named modules, if the caller has them). A TorchScript
    module, or a module inside one, is refused by name: no hook can watch it (``explorer.core.watchable_modules``)."""
    modules = dict(model.named_modules()) if modules is None else modules
    watchable = watchable_modules(modules if isinstance(modules, dict) else dict(modules))  # itself if none scripted
    out: dict[str, nn.Module] = {}
    for spec in specs:
        if spec.module in modules and spec.module not in watchable:
            raise KeyError(f"{spec.module!r} is TorchScript (torch.jit.script) or inside it: its calls run out of "
                           "the hooks' sight, so it cannot be shown as a layer")
        if spec.module not in modules or spec.module == "":
            close = difflib.get_close_matches(spec.module, [n for n in modules if n], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise KeyError(f"the model has no layer named {spec.module!r}{hint}")
        out[spec.module] = modules[spec.module]
    return out


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor inside a module's output or input (tensors, tuples, lists, dicts, namedtuples)."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for item in obj:
            found = first_tensor(item)
            if found is not None:
                return found
    if isinstance(obj, dict):
        for item in obj.values():
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def replace_first_tensor(obj: Any, new: torch.Tensor) -> Any:
    """``obj`` with its first tensor replaced by ``new`` (same container types)."""
    return _replaced(obj, new)[0]


def _replaced(obj: Any, new: torch.Tensor) -> tuple[Any, bool]:
    # A module-level recursion, not a closure that calls itself: such a closure is a reference cycle that keeps
    # ``new`` (an activation) alive until the garbage collector runs, so memory and its estimate varied per run.
    if isinstance(obj, torch.Tensor):
        return new, True
    if isinstance(obj, (tuple, list, dict)):
        pairs = list(obj.items()) if isinstance(obj, dict) else list(enumerate(obj))
        done = False
        items = []
        for key, item in pairs:
            if not done:
                item, done = _replaced(item, new)
            items.append((key, item))
        if isinstance(obj, dict):
            return type(obj)(items), done
        values = [v for _, v in items]
        if isinstance(obj, list):
            return values, done
        return (type(obj)(*values) if hasattr(obj, "_fields") else tuple(values)), done
    return obj, False


def logits_of(output: Any) -> torch.Tensor:
    """The class scores in a model's output (GoogLeNet/Inception return a namedtuple in train mode)."""
    tensor = first_tensor(output)
    if tensor is None:
        raise TypeError(f"the model returned no tensor ({type(output).__name__})")
    return tensor


# --------------------------------------------------------------------------------------------- calls
@dataclass(frozen=True)
class CallInfo:
    """One call of one module during a forward pass."""

    name: str  # call name: "layer1.0.relu#2"
    module: str  # module name: "layer1.0.relu"
    call: int  # 1-based call number
    module_type: str  # class name: "ReLU"
    shape: tuple[int, ...] | None  # output shape without the batch dimension (first tensor)
    block: str  # grouping label for pickers: "layer1.0", "inception3a", "features"...
    order: int  # position in forward (start) order
    is_leaf: bool
    is_conv: bool
    is_activation: bool
    is_function: bool = False  # a functional call in a forward (F.relu, torch.cat, x + y), not a module


def block_of(model: nn.Module, module_name: str) -> str:
    """Group label for a module: its outermost ancestor that is a real block (not a plain container).

    ResNet ``layer1.0.conv1`` -> ``layer1.0``; GoogLeNet ``inception3a.branch2.0.conv`` -> ``inception3a``;
    VGG ``features.0`` -> ``features`` (no block class, so the deepest plain container); top-level -> "".
    """
    parts = module_name.split(".")
    deepest_container = ""
    module = model
    for depth in range(1, len(parts)):
        module = getattr(module, parts[depth - 1], None)
        if not isinstance(module, nn.Module):
            break
        ancestor = ".".join(parts[:depth])
        if type(module) in _PLAIN_CONTAINERS:
            deepest_container = ancestor
        else:
            return ancestor
    return deepest_container


def _parent_call(calls: Sequence[CallInfo], index: int) -> tuple[int, CallInfo] | None:
    module = calls[index].module
    if "." not in module:
        return None
    parent = module.rsplit(".", 1)[0]
    for j in range(index - 1, -1, -1):
        if calls[j].module == parent:
            return j, calls[j]
    return None


@dataclass(frozen=True)
class ChainStep:
    """One step of the chain a layer's output goes through on its way to the activation.

    ``name`` is a call spec the analysis pass records (``layer1.0.bn2``, ``layer1.0.relu#2:in``...); ``role`` is
    "output" (the layer itself: the feature map), "norm", "dropout", "identity", "pool"-free pass-through steps,
    "add" (the activation's input differs from the previous step by a recorded tensor: a residual addition,
    ``shortcut`` names that tensor), "input" (the activation's input, changed by an operation with no module)
    or "activation" (the activation map). ``module_type`` is the class name of the module that made it."""

    name: str
    role: str
    module_type: str = ""
    shortcut: str | None = None


_ROLE_OF_TYPE = {**{t.__name__: "norm" for t in (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm,
                                                 nn.InstanceNorm2d, nn.LocalResponseNorm)},
                 **{t.__name__: "dropout" for t in (nn.Dropout, nn.Dropout2d)}, "Identity": "identity"}


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value)  # may be read-only (shared caches)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    # One array for two names (a conv's output and the in-place ReLU's input) needs no comparison: vgg16's
    # 64x224x224 layer cost ~9 ms of np.allclose when its page first drew it.
    return a is b or (a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-5))


def activation_chain(
    calls: Sequence[CallInfo], layer: str, activations: dict[str, torch.Tensor | np.ndarray] | None = None
) -> list[ChainStep]:
    """The steps ``layer``'s output goes through until its activation, as the network computes them.

    ResNet's ``layer1.0.conv2`` gives conv2 -> bn2 -> + shortcut (the input of ``relu#2``) -> ``relu#2``; its
    ``conv1`` gives conv1 -> bn1 -> relu; a GoogLeNet ``BasicConv2d``'s conv gives conv -> bn -> the block's
    output (a functional ReLU). The addition is only claimed when ``activations`` prove it: the activation's
    input minus the previous step equals a recorded tensor (the block's input, or its downsample's output).
    Without ``activations`` a chain that passes another layer (a downsample conv on the shortcut branch)
    stops at the layer's output. The last step's role is "activation" when an activation was found.
    """
    spec = parse_call(layer)
    by_name = {c.name: i for i, c in enumerate(calls)}
    if spec.call_name not in by_name:
        raise KeyError(f"{layer!r} is not called in this forward pass")
    index = by_name[spec.call_name]
    info = calls[index]
    if info.is_activation:
        return [ChainStep(info.name + INPUT_SUFFIX, "input", info.module_type),
                ChainStep(info.name, "activation", info.module_type)]
    steps = [ChainStep(info.name, "output", info.module_type)]
    own_prefix = info.module + "."
    parent = _parent_call(calls, index)
    parent_prefix = parent[1].module + "." if parent else ""
    detoured = False  # another layer ran in between (a shortcut branch's conv): only values can link the chain
    activation = None
    for nxt in calls[index + 1:]:
        if nxt.module.startswith(own_prefix) or not nxt.is_leaf:
            continue  # the layer's own children, or a container whose first leaf decides
        if nxt.is_function and not nxt.is_activation:
            continue  # `out += identity` between a conv and its ReLU, as module hooks never saw it
        if nxt.shape != info.shape:
            break  # reshaped on the way (AlexNet's torch.flatten before its classifier's Dropout): no map of it
        if nxt.is_activation:
            activation = nxt
            break
        if not detoured and _type_named(nxt.module_type, _PASS_THROUGH_TYPES):
            steps.append(ChainStep(nxt.name, _ROLE_OF_TYPE.get(nxt.module_type, "norm"), nxt.module_type))
            continue
        if activations is None or not parent_prefix or not nxt.module.startswith(parent_prefix):
            break
        detoured = True
    last = steps[-1]
    if activation is not None:
        act_in = activations.get(activation.name + INPUT_SUFFIX) if activations is not None else None
        before = activations.get(last.name) if activations is not None else None
        if act_in is None or before is None:
            if not detoured:
                steps.append(ChainStep(activation.name, "activation", activation.module_type))
            return steps
        act_in_a, before_a = _as_array(act_in), _as_array(before)
        if _same(act_in_a, before_a):
            if not detoured:
                steps.append(ChainStep(activation.name, "activation", activation.module_type))
            return steps
        shortcut = _recorded_difference(calls, activations, act_in_a, before_a, exclude={last.name, activation.name})
        if shortcut is None and detoured:
            return steps  # no proof that the activation takes this layer's output
        steps.append(ChainStep(activation.name + INPUT_SUFFIX, "add" if shortcut else "input",
                               activation.module_type, shortcut))
        steps.append(ChainStep(activation.name, "activation", activation.module_type))
        return steps
    # A block that applies a functional F.relu itself (GoogLeNet's BasicConv2d: conv -> bn -> F.relu).
    if activations is not None and parent is not None and not detoured:
        _, pinfo = parent
        siblings_after = [c for c in calls[index + 1:] if c.module.startswith(pinfo.module + ".")
                          and not c.module.startswith(own_prefix)]
        if all(c.is_leaf and _type_named(c.module_type, _PASS_THROUGH_TYPES) for c in siblings_after):
            before, after = activations.get(last.name), activations.get(pinfo.name)
            if before is not None and after is not None:
                before_a, after_a = _as_array(before), _as_array(after)
                if before_a.shape == after_a.shape and not np.array_equal(before_a, after_a) and np.allclose(
                    after_a, np.maximum(before_a, 0), rtol=1e-5, atol=1e-6
                ):
                    steps.append(ChainStep(pinfo.name, "activation", pinfo.module_type))
    return steps


def _recorded_difference(calls: Sequence[CallInfo], activations: dict[str, Any], total: np.ndarray,
                         part: np.ndarray, exclude: set[str]) -> str | None:
    """The first recorded call (forward order) whose output equals ``total - part``: the shortcut that a
    residual block added. None when the two differ in shape: a concatenation (grouped or branched outputs),
    not an addition."""
    if total.shape != part.shape:
        return None
    difference = total - part
    for call in calls:
        if call.name in exclude or call.name not in activations:
            continue
        value = activations[call.name]
        if tuple(value.shape[-difference.ndim:]) != difference.shape:
            continue
        array = _as_array(value)
        if array.shape != difference.shape:
            array = array.reshape(difference.shape) if array.size == difference.size else array
        if array.shape == difference.shape and np.allclose(array, difference, rtol=1e-4, atol=1e-4):
            return call.name
    return None


def activation_pair(
    calls: Sequence[CallInfo], layer: str, activations: dict[str, torch.Tensor | np.ndarray] | None = None
) -> tuple[str, str | None]:
    """(feature map, activation map) call specs for ``layer`` -- the distinction the course notes draw.

    - an activation module: (its input ``name:in``, its output);
    - anything else: (its output, the output of the first activation module called after it, skipping
      norm/dropout layers and the layer's own children);
    - a block that applies a functional ``F.relu`` itself (GoogLeNet's and Inception's ``BasicConv2d``:
      conv -> bn -> F.relu): when ``activations`` show the block's output equals ReLU of the last
      pass-through output, the block's output is the activation map;
    - otherwise None: no activation follows this layer directly.
    The first and last steps of :func:`activation_chain` (which also names the steps in between).
    """
    chain = activation_chain(calls, layer, activations)
    return chain[0].name, (chain[-1].name if chain[-1].role == "activation" else None)


def _type_named(type_name: str, types: tuple[type, ...]) -> bool:
    return type_name in {t.__name__ for t in types}
