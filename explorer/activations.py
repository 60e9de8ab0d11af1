"""What every layer of a network produces for one image, and where it looks (Grad-CAM), in one pass.

Layers are addressed by *call names*: a module's dotted name for its first call in a forward pass and
``name#k`` for its k-th call (k >= 2). torchvision's ResNet blocks call one ``relu`` module twice, so
``layer1.0.relu`` is the activation after ``bn1`` and ``layer1.0.relu#2`` the one after the residual
addition. Appending ``:in`` asks for the module's *input* instead of its output (the pre-activation
values a ReLU receives, for instance).

Everything that touches the model holds ``explorer.locks.model_lock(model)`` while hooks are
registered (a forward hook fires on every thread's forward pass), removes its hooks in ``finally`` and
never changes train/eval mode or parameters. Tensors are cloned to the CPU *inside* the hooks: a
conv followed by ``ReLU(inplace=True)`` would otherwise show post-ReLU values as its output.
"""
from __future__ import annotations

import difflib
import re
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.locks import model_lock

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


def is_conv_like(module: nn.Module) -> bool:
    """``nn.Conv*`` or a module shaped like one (LeNet-5's partially connected ``PartialConv2d``)."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return True
    return all(hasattr(module, a) for a in ("weight", "kernel_size", "in_channels", "out_channels"))


def device_of(model: nn.Module) -> torch.device:
    """Where the model's parameters (or buffers) live; CPU for a parameter-free model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


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


def _resolve_modules(model: nn.Module, specs: Iterable[CallSpec]) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    out: dict[str, nn.Module] = {}
    for spec in specs:
        if spec.module not in modules or spec.module == "":
            close = difflib.get_close_matches(spec.module, [n for n in modules if n], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise KeyError(f"the model has no layer named {spec.module!r}{hint}")
        out[spec.module] = modules[spec.module]
    return out


def _first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor inside a module's output or input (tensors, tuples, lists, dicts, namedtuples)."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for item in obj:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(obj, dict):
        for item in obj.values():
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _replace_first_tensor(obj: Any, new: torch.Tensor) -> Any:
    """``obj`` with its first tensor replaced by ``new`` (same container types)."""
    done = False

    def walk(o: Any) -> Any:
        nonlocal done
        if done:
            return o
        if isinstance(o, torch.Tensor):
            done = True
            return new
        if isinstance(o, (tuple, list)):
            items = [walk(i) for i in o]
            if isinstance(o, list):
                return items
            return type(o)(*items) if hasattr(o, "_fields") else tuple(items)
        if isinstance(o, dict):
            return type(o)((k, walk(v)) for k, v in o.items())
        return o

    return walk(obj)


def logits_of(output: Any) -> torch.Tensor:
    """The class scores in a model's output (GoogLeNet/Inception return a namedtuple in train mode)."""
    tensor = _first_tensor(output)
    if tensor is None:
        raise TypeError(f"the model returned no tensor ({type(output).__name__})")
    return tensor


# ------------------------------------------------------------------------------------- hook plumbing
class _CallCounter:
    """Counts calls of each hooked module within one forward pass of the root model.

    The root's pre-hook resets the counts, so attribution methods that run several forward passes
    (Integrated Gradients, Occlusion) see the same call numbers in each. Hooks only react on the
    thread that owns the session: a forward pass of someone who ignores the model lock is not recorded.
    """

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.stacks: dict[int, list[int]] = {}
        self.owner = threading.get_ident()

    def mine(self) -> bool:
        return threading.get_ident() == self.owner

    def reset(self) -> None:
        self.counts.clear()
        self.stacks.clear()

    def enter(self, module: nn.Module) -> int:
        key = id(module)
        k = self.counts.get(key, 0) + 1
        self.counts[key] = k
        self.stacks.setdefault(key, []).append(k)
        return k

    def leave(self, module: nn.Module) -> int:
        stack = self.stacks.get(id(module))
        return stack.pop() if stack else 0


@contextmanager
def hooked(model: nn.Module) -> Iterator[Callable[..., None]]:
    """Hold the model's lock; yield ``add(handle)`` to collect hook handles; remove them all in finally."""
    handles: list[Any] = []
    with model_lock(model):
        try:
            yield handles.append
        finally:
            for handle in handles:
                handle.remove()


def _add_counting_hooks(
    model: nn.Module,
    add: Callable[[Any], None],
    modules: dict[str, nn.Module],
    on_enter: Callable[[str, nn.Module, int, tuple, dict], None] | None,
    on_exit: Callable[[str, nn.Module, int, Any], Any],
) -> _CallCounter:
    counter = _CallCounter()

    def root_pre(_module: nn.Module, _args: tuple) -> None:
        if counter.mine():
            counter.reset()

    add(model.register_forward_pre_hook(root_pre))
    for name, module in modules.items():

        def pre(mod: nn.Module, args: tuple, kwargs: dict, _name: str = name) -> None:
            if counter.mine():
                k = counter.enter(mod)
                if on_enter is not None:
                    on_enter(_name, mod, k, args, kwargs)

        def post(mod: nn.Module, args: tuple, output: Any, _name: str = name) -> Any:
            if counter.mine():
                return on_exit(_name, mod, counter.leave(mod), output)
            return None

        add(module.register_forward_pre_hook(pre, with_kwargs=True))
        add(module.register_forward_hook(post))
    return counter


class _CpuStore:
    """Detached CPU clones of recorded tensors, sharing one clone when a tensor is seen twice unchanged.

    A container's output is often the very tensor its last child returned, and a ReLU's input is the
    conv output recorded just before: same object, same version counter, so the same values. An
    in-place op bumps the version counter, so a conv's output rewritten by ``ReLU(inplace=True)`` is
    cloned again rather than aliased.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.skipped: list[str] = []  # names not kept because the byte budget was spent
        self.max_bytes = max_bytes
        self.bytes = 0
        self._seen: list[tuple[weakref.ref, int, torch.Tensor]] = []

    def put(self, name: str, tensor: torch.Tensor) -> None:
        for ref, version, clone in self._seen:
            if ref() is tensor and tensor._version == version:
                self.tensors[name] = clone
                return
        size = tensor.numel() * tensor.element_size()
        if self.max_bytes is not None and self.bytes + size > self.max_bytes:
            self.skipped.append(name)
            return
        clone = tensor.detach().to("cpu", copy=True)
        self.bytes += size
        self.tensors[name] = clone
        self._remember(tensor, clone)

    def same_values(self, tensor: torch.Tensor, name: str) -> None:
        """``tensor`` is a fresh copy of what was stored as ``name``: alias it too, if stored."""
        clone = self.tensors.get(name)
        if clone is not None:
            self._remember(tensor, clone)

    def _remember(self, tensor: torch.Tensor, clone: torch.Tensor) -> None:
        self._seen.append((weakref.ref(tensor), tensor._version, clone))
        if len(self._seen) > 8:  # only recent tensors can be seen again
            self._seen.pop(0)


# --------------------------------------------------------------------------------------------- the pass
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


@dataclass
class _Pass:
    output: Any
    tensors: dict[str, torch.Tensor]
    cam_acts: dict[str, torch.Tensor]
    calls: list[CallInfo]
    skipped: list[str]


def _run_pass(
    model: nn.Module,
    x: torch.Tensor,
    *,
    record: Sequence[CallSpec] | None,
    cam_specs: Sequence[CallSpec] = (),
    list_calls: bool = False,
    cam_all: bool = False,
    max_bytes: int | None = None,
) -> _Pass:
    """One forward pass with hooks. Caller holds the model's lock (``hooked`` takes it again: RLock).

    ``record=None`` records every call's output and every activation module's input; a list records
    those specs only. For CAM calls the graph is switched on at that point (the pass itself runs under
    no_grad) and the rest of the forward pass works on a clone, so in-place ops downstream leave the
    recorded activation intact for ``torch.autograd.grad``. ``cam_all`` makes every call of a conv-like
    module, and every block (non-leaf module) with a (C, H, W) output, a CAM call too. With
    ``max_bytes``, tensors that would push the kept bytes past it are not kept (``skipped``).
    """
    all_modules = {n: m for n, m in model.named_modules() if n}
    record_all = record is None
    specs = list(record or [])
    _resolve_modules(model, specs + list(cam_specs))
    if record_all or list_calls or cam_all:
        modules = all_modules
    else:
        modules = {s.module: all_modules[s.module] for s in [*specs, *cam_specs]}
    wanted_out = {(s.module, s.call): str(s) for s in specs if not s.want_input}
    wanted_in = {(s.module, s.call): str(s) for s in specs if s.want_input}
    cam_keys = {(s.module, s.call): s.call_name for s in cam_specs}
    store = _CpuStore(max_bytes)
    cam_acts: dict[str, torch.Tensor] = {}
    started: list[tuple[str, nn.Module, int]] = []
    shapes: dict[tuple[str, int], tuple[int, ...] | None] = {}

    def on_enter(name: str, module: nn.Module, k: int, args: tuple, kwargs: dict) -> None:
        if list_calls or record_all:
            started.append((name, module, k))
        if record_all:
            key = call_name(name, k) + INPUT_SUFFIX if is_activation(module) else None
        else:
            key = wanted_in.get((name, k))
        if key is not None:
            tensor = _first_tensor(args) if args else _first_tensor(kwargs)
            if tensor is not None:
                store.put(key, tensor)

    def on_exit(name: str, module: nn.Module, k: int, output: Any) -> Any:
        tensor = _first_tensor(output)
        if list_calls or record_all:
            shapes[(name, k)] = tuple(tensor.shape[1:]) if tensor is not None else None
        key = call_name(name, k) if record_all else wanted_out.get((name, k))
        if key is not None and tensor is not None:
            store.put(key, tensor)
        cam_key = cam_keys.get((name, k))
        if cam_key is None and cam_all and tensor is not None and tensor.dim() == 4:
            if is_conv_like(module) or next(module.children(), None) is not None:
                cam_key = call_name(name, k)
        if cam_key is None or tensor is None:
            return None
        torch.set_grad_enabled(True)  # undone when the caller's no_grad block exits
        act = tensor if tensor.requires_grad else tensor.detach().requires_grad_(True)
        cam_acts[cam_key] = act
        downstream = act.clone()
        if key is not None:
            store.same_values(downstream, key)  # the next layer's input is this copy: no second clone
        return _replace_first_tensor(output, downstream)

    with hooked(model) as add, torch.no_grad():
        _add_counting_hooks(model, add, modules, on_enter, on_exit)
        output = model(x.to(device_of(model)))

    missing = [str(s) for s in specs if str(s) not in store.tensors and str(s) not in store.skipped]
    missing += [s.call_name for s in cam_specs if s.call_name not in cam_acts]
    if missing:
        raise ValueError(f"these layers were not called (or returned no tensor) in the forward pass: {missing}")
    calls = []
    for order, (name, module, k) in enumerate(started):
        calls.append(
            CallInfo(
                name=call_name(name, k), module=name, call=k, module_type=type(module).__name__,
                shape=shapes.get((name, k)), block=block_of(model, name), order=order,
                is_leaf=next(module.children(), None) is None,
                is_conv=is_conv_like(module),
                is_activation=is_activation(module),
            )
        )
    return _Pass(output, store.tensors, cam_acts, calls, store.skipped)


def callable_layers(model: nn.Module, x: torch.Tensor) -> list[CallInfo]:
    """Every module call of a forward pass on ``x``, in the order the calls start.

    Runs one no-grad forward pass under the model's lock; records shapes, not tensors. A module called
    twice appears twice (``relu`` and ``relu#2``).
    """
    return _run_pass(model, x, record=[], list_calls=True).calls


def _parent_call(calls: Sequence[CallInfo], index: int) -> tuple[int, CallInfo] | None:
    module = calls[index].module
    if "." not in module:
        return None
    parent = module.rsplit(".", 1)[0]
    for j in range(index - 1, -1, -1):
        if calls[j].module == parent:
            return j, calls[j]
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
    """
    spec = parse_call(layer)
    by_name = {c.name: i for i, c in enumerate(calls)}
    if spec.call_name not in by_name:
        raise KeyError(f"{layer!r} is not called in this forward pass")
    index = by_name[spec.call_name]
    info = calls[index]
    if info.is_activation:
        return info.name + INPUT_SUFFIX, info.name
    own_prefix = info.module + "."
    last = info
    for nxt in calls[index + 1:]:
        if nxt.module.startswith(own_prefix) or not nxt.is_leaf:
            continue  # the layer's own children, or a container whose first leaf decides
        if nxt.is_activation:
            return info.name, nxt.name
        if _type_named(nxt.module_type, _PASS_THROUGH_TYPES):
            last = nxt
            continue
        break
    parent = _parent_call(calls, index)
    if activations is not None and parent is not None:
        j, pinfo = parent
        siblings_after = [c for c in calls[index + 1:] if c.module.startswith(pinfo.module + ".")
                          and not c.module.startswith(own_prefix)]
        if all(c.is_leaf and _type_named(c.module_type, _PASS_THROUGH_TYPES) for c in siblings_after):
            before = activations.get(last.name)
            after = activations.get(pinfo.name)
            if before is not None and after is not None:
                before_t = torch.as_tensor(np.asarray(before))
                after_t = torch.as_tensor(np.asarray(after))
                if before_t.shape == after_t.shape and not torch.equal(before_t, after_t) and torch.allclose(
                    after_t, before_t.clamp_min(0), atol=1e-6
                ):
                    return info.name, pinfo.name
    return info.name, None


def _type_named(type_name: str, types: tuple[type, ...]) -> bool:
    return type_name in {t.__name__ for t in types}


def capture(model: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Outputs (or ``:in`` inputs) of the named layer calls for input ``x``: detached CPU clones.

    Safe with one model object shared by many threads: holds the model's lock, runs under no_grad,
    removes its hooks in finally, leaves train/eval mode alone. Raises KeyError for unknown layers and
    ValueError for calls that did not happen (``relu#3`` of a module called twice).
    """
    specs = [parse_call(name) for name in layers]
    tensors = _run_pass(model, x, record=specs).tensors
    return {str(s): tensors[str(s)] for s in specs}


# --------------------------------------------------------------------------------------- shared pass
@dataclass
class Prediction:
    index: int
    label: str
    probability: float


@dataclass
class Analysis:
    """Everything one forward pass tells about one image."""

    logits: np.ndarray  # (num_classes,)
    probabilities: np.ndarray  # softmax of logits
    target: int  # class the CAMs explain
    cam_raw: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> ReLU(sum_k w_k A_k), layer size
    activations: dict[str, torch.Tensor] = field(default_factory=dict)  # call spec -> CPU tensor [1,...]
    calls: list[CallInfo] = field(default_factory=list)  # filled when every layer was recorded
    input_size: tuple[int, int] = (0, 0)
    skipped: list[str] = field(default_factory=list)  # recorded names dropped by the byte budget

    def cam(self, layer: str | None = None) -> np.ndarray:
        """Grad-CAM of ``layer`` (default: the first CAM layer) at the input size, scaled to [0, 1]."""
        if not self.cam_raw:
            raise ValueError("no Grad-CAM was computed in this analysis")
        raw = self.cam_raw[layer] if layer is not None else next(iter(self.cam_raw.values()))
        return upsample_cam(raw, self.input_size)

    def top(self, k: int = 5, categories: Sequence[str] | None = None) -> list[Prediction] | None:
        return top_k(self.probabilities, k, categories)


def top_k(probabilities: np.ndarray, k: int = 5, categories: Sequence[str] | None = None) -> list[Prediction] | None:
    """The k most probable classes with their names, or None when there are no categories (random weights)."""
    if categories is None:
        return None
    probabilities = np.asarray(probabilities).reshape(-1)
    order = np.argsort(-probabilities, kind="stable")[: min(k, probabilities.size)]
    return [
        Prediction(int(i), str(categories[i]) if i < len(categories) else str(i), float(probabilities[i]))
        for i in order
    ]


def upsample_cam(raw: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a layer-resolution CAM to ``size`` (H, W), then division by its maximum.

    An all-zero CAM (no positive evidence at this layer) stays all zero.
    """
    tensor = torch.as_tensor(np.asarray(raw, dtype=np.float32))[None, None]
    up = F.interpolate(tensor, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)[0, 0]
    up = up.clamp_min(0)
    peak = float(up.max())
    if peak > 0:
        up = up / peak
    return up.numpy().astype(np.float32)


def gradcam_from(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k mean_ij(dy/dA_k) * A_k) for one image: the Grad-CAM formula at layer resolution."""
    act = activation.detach()
    if act.dim() == 4 and act.shape[0] == 1:
        act = act[0]
    if act.dim() != 3:
        raise ValueError(f"Grad-CAM needs a spatial layer (C,H,W); this layer's output is {tuple(activation.shape)}")
    grad = gradient.detach().reshape(act.shape)
    weights = grad.mean(dim=(1, 2))
    return torch.relu((weights[:, None, None] * act).sum(0))


def analyze(
    model: nn.Module,
    x: torch.Tensor,
    cam_layer: str | Sequence[str] | None,
    target: int | None = None,
    *,
    layers: Sequence[str] | None = None,
    cam_all: bool = False,
    max_bytes: int | None = None,
) -> Analysis:
    """One forward pass: class scores, the activations of ``layers`` and Grad-CAM for ``cam_layer``.

    ``layers=None`` records every module call (outputs, plus ``name:in`` inputs of activation modules)
    and lists the calls; pass ``[]`` to record none. ``cam_layer`` may be a list: one gradient
    computation serves all of them. Gradients are asked for with ``torch.autograd.grad`` on the layer
    activations only (no parameter gradients) and the graph only starts at the first CAM layer, so the
    pass costs little more than a plain forward. ``target=None`` explains the top-1 class. ``x`` is one
    image ``[1,C,H,W]``. ``cam_all=True`` adds Grad-CAM of every conv call and every block with a spatial
    output (what a layer picker offers), still from the same single gradient computation.
    ``max_bytes`` bounds the memory of the recorded activations (every layer of efficientnet_b7 at
    600x600 is ~4 GB): in forward order, tensors that would exceed it are not kept and their names are
    listed in ``Analysis.skipped`` (get them later with :func:`capture`).
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"analyze takes one image [1,C,H,W], got {tuple(x.shape)}")
    cam_names = [cam_layer] if isinstance(cam_layer, str) else list(cam_layer or [])
    cam_specs = list(dict.fromkeys(parse_call(n) for n in cam_names))
    if any(s.want_input for s in cam_specs):
        raise ValueError("Grad-CAM explains layer outputs: drop the ':in' suffix")
    record = None if layers is None else [parse_call(n) for n in layers]
    with model_lock(model):
        result = _run_pass(model, x, record=record, cam_specs=cam_specs, cam_all=cam_all, max_bytes=max_bytes)
        scores = logits_of(result.output)
        if scores.dim() != 2 or scores.shape[0] != 1:
            raise ValueError(f"the model's output is not class scores [1, classes]: {tuple(scores.shape)}")
        chosen = int(scores[0].argmax()) if target is None else int(target)
        if not 0 <= chosen < scores.shape[1]:
            raise ValueError(f"target class {chosen} is outside 0..{scores.shape[1] - 1}")
        cam_raw: dict[str, np.ndarray] = {}
        if result.cam_acts:
            names = list(dict.fromkeys([s.call_name for s in cam_specs] + list(result.cam_acts)))
            acts = [result.cam_acts[n] for n in names]
            if scores.requires_grad:
                grads = torch.autograd.grad(scores[0, chosen], acts, allow_unused=True)
            else:  # the scores do not depend on any CAM layer (cannot happen for a layer on the path)
                grads = (None,) * len(acts)
            for name, act, grad in zip(names, acts, grads):
                if grad is None:  # this call does not influence the class score (a dead branch)
                    grad = torch.zeros_like(act)
                cam_raw[name] = gradcam_from(act, grad).float().cpu().numpy()
        logits = scores.detach()[0].float().cpu()
    return Analysis(
        logits=logits.numpy(),
        probabilities=torch.softmax(logits, 0).numpy(),
        target=chosen,
        cam_raw=cam_raw,
        activations=result.tensors if record is None else {
            str(s): result.tensors[str(s)] for s in record if str(s) in result.tensors},
        calls=result.calls,
        input_size=(int(x.shape[-2]), int(x.shape[-1])),
        skipped=result.skipped,
    )


def predict(model: nn.Module, x: torch.Tensor, k: int = 5, categories: Sequence[str] | None = None) -> list[Prediction] | None:
    """Top-k predictions for one image, or None without categories (random weights: no meaningful classes)."""
    if categories is None:
        return None
    with model_lock(model), torch.no_grad():
        scores = logits_of(model(x.to(device_of(model)))).detach()[0].float().cpu()
    return top_k(torch.softmax(scores, 0).numpy(), k, categories)


@contextmanager
def route_call(model: nn.Module, layer: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """While active, the output of call ``layer`` goes through ``fn`` (its first tensor) in every forward.

    Lets a tool that hooks one *module* (captum's layer methods) see exactly one *call* of a module used
    several times: route the call through a fresh ``nn.Identity`` probe and hand the tool the probe.
    Holds the model's lock; hooks are removed on exit.
    """
    spec = parse_call(layer)
    if spec.want_input:
        raise ValueError("route_call works on layer outputs: drop the ':in' suffix")
    modules = _resolve_modules(model, [spec])

    def on_exit(name: str, module: nn.Module, k: int, output: Any) -> Any:
        if k != spec.call:
            return None
        tensor = _first_tensor(output)
        if tensor is None:
            raise TypeError(f"layer {layer!r} returned no tensor")
        return _replace_first_tensor(output, fn(tensor))

    with hooked(model) as add:
        _add_counting_hooks(model, add, modules, None, on_exit)
        yield


def hook_counts(model: nn.Module) -> int:
    """Number of hooks of any kind on the model's modules (0 when nothing leaked): for tests and checks."""
    total = 0
    for module in model.modules():
        for attr in (
            "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
            "_state_dict_hooks", "_load_state_dict_pre_hooks",
        ):
            total += len(getattr(module, attr, {}) or {})
    return total
