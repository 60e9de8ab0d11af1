"""Hook plumbing and the one recording forward pass behind :mod:`explorer.analysis.activations`.

Everything that touches the model holds ``explorer.core.locks.model_lock(model)`` while hooks are
registered (a forward hook fires on every thread's forward pass), removes its hooks in ``finally`` and
never changes train/eval mode or parameters. Tensors are cloned to the CPU *inside* the hooks: a
conv followed by ``ReLU(inplace=True)`` would otherwise show post-ReLU values as its output.
"""
from __future__ import annotations

import difflib
import math
import sys
import types
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.analysis.functional_ops import FunctionalCall, FunctionalRecorder, has_children
from explorer.analysis.layer_calls import INPUT_SUFFIX, CallInfo, CallSpec, first_tensor, replace_first_tensor, resolve_modules, block_of, call_name, is_activation, is_conv, parse_call
from explorer.core import PASS_PATCH_MARK, device_of, hooked, named_module_tree, watchable_modules


# ------------------------------------------------------------------------------------- hook plumbing
class _CallCounter:
    """Counts calls of each hooked module within one forward pass of the root model.

    The root's pre-hook resets the counts, so attribution methods that run several forward passes
    (Integrated Gradients, Occlusion) see the same call numbers in each. Hooks only react on the
    thread that owns the session: a forward pass of someone who ignores the model lock is not recorded.
    """

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}  # id(module) -> calls so far in this pass
        self.stacks: dict[int, list[int]] = {}  # id(module) -> numbers of its calls under way (real hooks only)
        self.owner = threading.get_ident()

    def mine(self) -> bool:
        return threading.get_ident() == self.owner

    def reset(self) -> None:
        self.counts.clear()
        self.stacks.clear()


def _add_counting_hooks(
    model: nn.Module,
    add: Callable[[Any], None],
    modules: dict[str, nn.Module],
    on_enter: Callable[[str, nn.Module, int, tuple, dict], None] | None,
    on_exit: Callable[[str, nn.Module, int, Any], Any],
    frames: FunctionalRecorder | None = None,
) -> _CallCounter:
    """Hooks that number each module's calls. With ``frames`` (``modules`` must then be all of them), the same
    hooks also tell the functional recorder which module runs, instead of a second pair of hooks per module."""
    counter = _CallCounter()

    def root_pre(_module: nn.Module, args: tuple) -> None:
        if counter.mine():
            counter.reset()
            if frames is not None:
                frames.enter_module("", False, args)

    def root_post(_module: nn.Module, _args: tuple, output: Any) -> None:
        if frames is not None and counter.mine():
            frames.exit_module(output)

    add(model.register_forward_pre_hook(root_pre))
    if frames is not None:
        add(model.register_forward_hook(root_post))
    owner, counts, get_ident, no_torch_function = counter.owner, counter.counts, threading.get_ident, \
        torch._C.DisableTorchFunction
    for name, module in modules.items():
        leaf = bool(name) and _module_kind(module)[0]  # is_leaf_module, remembered per module

        # The hooks' own tensor calls (shape, _version, clone...) are bookkeeping, not the network's ops: with the
        # functional recorder's mode off they cost no dispatch through it (googlenet: ~1,000 of its 1,400 calls).
        def enter(mod: nn.Module, args: tuple, kwargs: dict, _name: str = name, _leaf: bool = leaf) -> int | None:
            """The patched forward's half before the call: its call number (None on another thread)."""
            if get_ident() != owner:
                return None
            with no_torch_function():
                key = id(mod)
                k = counts[key] = counts.get(key, 0) + 1
                if on_enter is not None:
                    on_enter(_name, mod, k, args, kwargs)
                if frames is not None:
                    frames.enter_module(_name, _leaf, args)
            return k

        def leave(mod: nn.Module, output: Any, k: int | None, _name: str = name) -> Any:
            """The half after it, given the call number ``enter`` returned: the output's replacement, or None."""
            if k is None:
                return None
            with no_torch_function():
                replacement = on_exit(_name, mod, k, output)
                if frames is not None:
                    if replacement is not None:
                        frames.follow(replacement, output)  # the copy a CAM layer hands on is the same value
                    frames.exit_module(output if replacement is None else replacement)
            return replacement

        patch = _ForwardPatch.wrap(module, enter, leave, quiet_mode=frames if leaf else None)
        if patch is not None:
            add(patch)
            continue

        # A module that keeps real hooks: PyTorch's post hook gets no value from the pre hook, so the call numbers of
        # the calls under way wait on a stack per module (a module may be called again inside its own call).
        def pre(mod: nn.Module, args: tuple, kwargs: dict, _enter: Callable = enter) -> None:
            k = _enter(mod, args, kwargs)
            if k is not None:
                counter.stacks.setdefault(id(mod), []).append(k)

        def post(mod: nn.Module, args: tuple, output: Any, _leave: Callable = leave) -> Any:
            stack = counter.stacks.get(id(mod)) if counter.mine() else None
            return _leave(mod, output, stack.pop() if stack else None)

        add(module.register_forward_pre_hook(pre, with_kwargs=True))
        add(module.register_forward_hook(post))
    return counter


def _call_codes() -> frozenset[types.CodeType]:
    """The frames that call a module's ``forward`` when the module is called (``module(x)``): ``_call_impl`` and
    the functions nested in it (its slow path, taken when any hook, even a global one, is present)."""
    code = getattr(getattr(nn.Module, "_call_impl", None), "__code__", None)
    if code is None:
        return frozenset()
    return frozenset([code, *(c for c in code.co_consts if isinstance(c, types.CodeType))])


_CALL_CODES = _call_codes()  # hooks fire only for calls from these frames
_SCRIPT_MODULE = torch.jit.ScriptModule
# PyTorch's torch-function mode stack (private API, present since 2.0): without it leaves keep the mode.
_MODE_STACK = all(hasattr(torch._C, n) for n in ("_len_torch_function_stack", "_get_function_stack_at",
                                                 "_pop_torch_function_stack", "_push_on_torch_function_stack"))


class _ForwardPatch:
    """Our pre and post hook around one module's ``forward``, put in the module's instance dict for one pass and
    removed like a hook handle (``explorer.core.hooked`` calls :meth:`remove` in ``finally``).

    Same calls, same order as a forward pre-hook and a forward hook registered last, and like them only when the
    module is called (a parent's direct ``self.sub.forward(x)`` is not a call: every hook-based tool numbers calls
    the same way), but cheaper than PyTorch's hook dispatch: googlenet's 224 module calls a pass cost ~4 ms less.
    Modules that already carry hooks or an instance ``forward`` keep real hooks (TorchScript ones are not watched:
    ``explorer.core.watchable_modules``)."""

    __slots__ = ("module",)

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    @classmethod
    def wrap(cls, module: nn.Module, pre: Callable[[nn.Module, tuple, dict], Any],
             post: Callable[[nn.Module, Any, Any], Any], quiet_mode: Any = None) -> "_ForwardPatch | None":
        """``pre(module, args, kwargs)`` runs before the forward, ``post(module, output, what pre returned)`` after
        it (a call number, without PyTorch's per-module stack); what ``post`` returns, unless None, replaces the
        output. ``quiet_mode``: a torch-function mode (the functional recorder) that has nothing to do inside this
        module (a leaf: its ops belong to it); while it is the innermost mode it is set aside for the module's
        forward, so its ops skip the Python dispatch entirely."""
        if (not _CALL_CODES or "forward" in module.__dict__ or isinstance(module, _SCRIPT_MODULE)
                or module._forward_hooks or module._forward_pre_hooks):
            return None
        forward = module.forward
        called_from = sys._getframe
        quiet_mode = quiet_mode if _MODE_STACK else None

        def patched(*args: Any, **kwargs: Any) -> Any:
            if called_from(1).f_code not in _CALL_CODES:  # ``.forward()`` called directly: no hook would fire
                return forward(*args, **kwargs)
            token = pre(module, args, kwargs)
            depth = torch._C._len_torch_function_stack() if quiet_mode is not None else 0
            if depth and torch._C._get_function_stack_at(depth - 1) is quiet_mode:
                torch._C._pop_torch_function_stack()
                try:
                    output = forward(*args, **kwargs)
                finally:
                    torch._C._push_on_torch_function_stack(quiet_mode)
            else:
                output = forward(*args, **kwargs)
            replacement = post(module, output, token)
            return output if replacement is None else replacement

        setattr(patched, PASS_PATCH_MARK, True)  # a copy made during the pass drops it (explorer.core.strip_pass_state)
        module.__dict__["forward"] = patched
        return cls(module)

    def remove(self) -> None:
        self.module.__dict__.pop("forward", None)


# BatchNorm in eval mode is a pure function of its input and four small tensors of its own: an output of one can be
# computed again, bit for bit, from those (kept, not the module: an evicted model's weights are not held).
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_SOURCE_SUFFIX = "\x00source"  # in a clone plan: "this call's input is rewritten too: do not recompute from it"


def _recomputable(module: nn.Module) -> bool:
    return (type(module) in _BATCH_NORMS and not module.training
            and type(module).forward is nn.modules.batchnorm._BatchNorm.forward
            and not module._forward_hooks and not module._forward_pre_hooks)


class Recompute:
    """A recorded BatchNorm output kept as the call that made it instead of as a copy.

    A BatchNorm's output that ``ReLU(inplace=True)`` overwrites next (resnet, googlenet, densenet, mobilenet,
    efficientnet) needs a copy to show its own values. Its input — a conv output the store keeps anyway, by
    reference — and the BatchNorm's own statistics and affine parameters (the very tensor objects) are enough:
    the values are computed again only if a page draws that layer, and the pass copies nothing. :meth:`compute`
    applies BatchNorm's eval-mode formula (what its forward did in the pass, whatever mode the shared model is in
    now) and writes nothing, so it needs no model lock; an input or statistic changed in place since the pass
    is refused. ``element_size``/``nelement`` describe the float32 array it becomes, so a byte budget counts a
    layer not read yet as if it were (``explorer.core.nbytes_of``).
    """

    __slots__ = ("source", "shape", "dtype", "device", "eps", "_tensors", "_versions")

    def __init__(self, module: nn.Module, source: torch.Tensor, output: torch.Tensor) -> None:
        self.source = source
        self.shape = output.shape
        self.dtype = output.dtype
        self.device = output.device
        self.eps = module.eps
        self._tensors = (module.running_mean, module.running_var, module.weight, module.bias)
        self._versions = self._current_versions()

    def _current_versions(self) -> tuple[int, ...]:
        return tuple(t._version for t in (self.source, *self._tensors) if t is not None)

    def dim(self) -> int:
        return len(self.shape)

    def element_size(self) -> int:
        return 4  # float32, as HostActivations returns it

    def nelement(self) -> int:
        return math.prod(self.shape[1:] if len(self.shape) > 1 else self.shape)  # without the batch dimension

    def compute(self) -> torch.Tensor:
        """The BatchNorm's output in the pass, computed again."""
        if self._current_versions() != self._versions:
            raise RuntimeError("the BatchNorm layer's input or statistics changed after this analysis was recorded: "
                               "analyse the image again")
        running_mean, running_var, weight, bias = self._tensors
        with torch.no_grad():
            return F.batch_norm(self.source, running_mean, running_var, weight, bias, running_mean is None, 0.0,
                                self.eps)


class _CpuStore:
    """Recorded tensors: clones where the forward pass later rewrites a tensor in place, references elsewhere.

    A container's output is often the very tensor its last child returned, and a ReLU's input is the
    conv output recorded just before: same object, same version counter, so the same values, stored once.
    An in-place op bumps the version counter, so a conv's output rewritten by ``ReLU(inplace=True)`` is
    cloned again rather than aliased.

    ``clone_only=None`` clones every tensor and watches the originals: :meth:`rewritten` then names those the
    pass changed in place after they were stored (a BatchNorm output before ``ReLU(inplace=True)``, a block's
    ``out += identity``). Given that set, later passes clone only those names and keep the others by reference
    (no copy: most layers' outputs are never written again); :meth:`rewritten` then names any reference that
    was changed after all, and the caller redoes the pass cloning everything.
    """

    def __init__(self, max_bytes: int | None = None, clone_only: frozenset[str] | None = None) -> None:
        self.tensors: dict[str, torch.Tensor | Recompute] = {}
        self.skipped: list[str] = []  # names not kept because the byte budget was spent
        self.max_bytes = max_bytes
        self.bytes = 0
        self.clone_only = clone_only
        # id(forward pass's tensor) -> (weak reference to it, its version when stored, what was stored): a lookup
        # per stored call instead of a scan (googlenet stores ~350 a pass)
        self._seen: dict[int, tuple[weakref.ref, int, torch.Tensor]] = {}
        # (name, the forward pass's own tensor, its version when stored): originals of clones while learning,
        # the references themselves otherwise
        self._watched: list[tuple[str, torch.Tensor, int]] = []

    def put(self, name: str, tensor: torch.Tensor, module: nn.Module | None = None,
            source: torch.Tensor | None = None) -> None:
        """Keep ``tensor`` as ``name``. ``module``/``source``: a call of a module whose output can be computed again
        from its input (see :class:`Recompute`; only given when the caller reads the store lazily)."""
        seen = self._seen.get(id(tensor))
        if seen is not None and seen[0]() is tensor and tensor._version == seen[1]:
            self.tensors[name] = seen[2]
            return
        size = tensor.numel() * tensor.element_size()
        if self.max_bytes is not None and self.bytes + size > self.max_bytes:
            self.skipped.append(name)
            return
        self.bytes += size
        if self.clone_only is not None and name not in self.clone_only:
            kept = tensor.detach() if tensor.requires_grad else tensor  # detach shares the version counter
            self.tensors[name] = kept
            self._watched.append((name, tensor, tensor._version))
            self._remember(tensor, kept)
            return
        if self.clone_only is None:  # learning: would a reference have survived? would the call's input?
            self._watched.append((name, tensor, tensor._version))
            if source is not None:
                self._watched.append((name + _SOURCE_SUFFIX, source, source._version))
        elif source is not None and name + _SOURCE_SUFFIX not in self.clone_only and self._keeps(source):
            recipe = Recompute(module, source, tensor)
            self.tensors[name] = recipe
            self._watched.append((name + _SOURCE_SUFFIX, source, source._version))
            self._remember(tensor, recipe)
            return
        # Clone on the tensor's own device: a device-to-host copy inside the hook would synchronise the GPU
        # once per layer (~45 % of an analysis on CUDA); ``to_cpu`` moves them all at the end in one batch.
        clone = tensor.detach().clone()
        self.tensors[name] = clone
        self._remember(tensor, clone)

    def _keeps(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` itself, unchanged, is stored by reference (so keeping it costs nothing more; a tensor
        the byte budget skipped, a clone's original or one that needs grad is not)."""
        seen = self._seen.get(id(tensor))
        return seen is not None and seen[2] is tensor and seen[0]() is tensor and seen[1] == tensor._version

    def rewritten(self) -> set[str]:
        """Names whose tensor the forward pass changed in place after it was stored."""
        return {name for name, tensor, version in self._watched if tensor._version != version}

    def release(self) -> None:
        """Forget the originals (while learning, they would keep every layer's output alive twice)."""
        self._watched.clear()
        self._seen.clear()

    def to_cpu(self) -> dict[str, torch.Tensor]:
        """Every stored tensor on the CPU (aliases kept: one copy per distinct tensor), one sync at the end."""
        moved: dict[int, torch.Tensor] = {}
        pending_cuda = False
        for name, clone in self.tensors.items():
            if clone.device.type == "cpu":
                continue
            target = moved.get(id(clone))
            if target is None:
                pinned = clone.device.type == "cuda"  # pinned host memory makes the copies asynchronous
                target = torch.empty(clone.shape, dtype=clone.dtype, pin_memory=pinned)
                target.copy_(clone, non_blocking=pinned)
                moved[id(clone)] = target
                pending_cuda = pending_cuda or pinned
            self.tensors[name] = target
        if pending_cuda:
            torch.cuda.synchronize()
        return self.tensors

    def same_values(self, tensor: torch.Tensor, name: str) -> None:
        """``tensor`` is a fresh copy of what was stored as ``name``: alias it too, if stored."""
        clone = self.tensors.get(name)
        if clone is not None:
            self._remember(tensor, clone)

    def _remember(self, tensor: torch.Tensor, clone: "torch.Tensor | Recompute") -> None:
        self._seen[id(tensor)] = (weakref.ref(tensor), tensor._version, clone)


# Per model (weakly: a model that is dropped takes its plans with it) and per pass shape: the recorded names
# whose tensors the forward pass rewrites in place, learnt on the first pass. State kept beside a shared model,
# never on it; guarded by the model's lock (every run_pass holds it) and this lock for the dictionary itself.
_clone_plans: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, frozenset[str]]]" = weakref.WeakKeyDictionary()
_plans_lock = threading.Lock()


def _plan_for(model: nn.Module, key: tuple) -> frozenset[str] | None:
    with _plans_lock:
        return _clone_plans.get(model, {}).get(key)


def _learn_plan(model: nn.Module, key: tuple, names: set[str]) -> None:
    with _plans_lock:
        _clone_plans.setdefault(model, {})[key] = frozenset(names)


# What a module is (leaf, conv, activation) and which block a name belongs to: asked at every call of every pass,
# fixed by the architecture. Remembered beside the modules (weakly), never on them.
_kinds: "weakref.WeakKeyDictionary[nn.Module, tuple[bool, bool, bool]]" = weakref.WeakKeyDictionary()
_blocks: "weakref.WeakKeyDictionary[nn.Module, dict[str, str]]" = weakref.WeakKeyDictionary()
# The CallInfo of each call a pass listed, by everything it is made of: a later pass of the same model and input
# reuses the (frozen) objects instead of building ~300 of them (googlenet: ~0.4 ms a pass).
_call_infos: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, CallInfo]]" = weakref.WeakKeyDictionary()
_CALL_INFOS_MAX = 5_000  # per model (~16 input sizes of googlenet): many sizes would otherwise grow it for ever
_kinds_lock = threading.Lock()


def _module_kind(module: nn.Module) -> tuple[bool, bool, bool]:
    """(leaf, conv, activation) of ``module``; ``is_conv`` of a non-conv costs four failed attribute look-ups."""
    found = _kinds.get(module)
    if found is None:
        found = (not has_children(module), is_conv(module), is_activation(module))
        with _kinds_lock:
            _kinds[module] = found
    return found


# --------------------------------------------------------------------------------------------- the pass
@dataclass
class _Pass:
    output: Any
    tensors: dict[str, torch.Tensor]
    cam_acts: dict[str, torch.Tensor]
    calls: list[CallInfo]
    skipped: list[str]
    # CAM calls whose output had been changed in place (``y.add_(1)``, ``ReLU(inplace=True)``) → the copy handed on
    # (None: tied, see ``run_pass``'s ``inplace_leaves``): a forward may go on with its own tensor and drop the copy.
    inplace_cams: Mapping[str, torch.Tensor | None] = field(default_factory=dict)


def run_pass(
    model: nn.Module,
    x: torch.Tensor,
    *,
    record: Sequence[CallSpec] | None,
    cam_specs: Sequence[CallSpec] = (),
    list_calls: bool = False,
    cam_all: bool = False,
    max_bytes: int | None = None,
    on_device: bool = False,
    inplace_leaves: frozenset[str] = frozenset(),
    tie_passthrough: bool = True,
) -> _Pass:
    """One forward pass with hooks. Caller holds the model's lock (``hooked`` takes it again: RLock).

    ``record=None`` records every call's output and every activation module's input; a list records
    those specs only. For CAM calls the graph is switched on at that point (the pass itself runs under
    no_grad) and the rest of the forward pass works on a clone, so in-place ops downstream leave the
    recorded activation intact for ``torch.autograd.grad``. ``cam_all`` makes every call of a conv-like
    module, and every block (non-leaf module) with a (C, H, W) output, a CAM call too. With
    ``max_bytes``, tensors that would push the kept bytes past it are not kept (``skipped``). ``on_device=True``
    leaves the recorded tensors on the model's device (see ``explorer.analysis.host_arrays``); by default they are
    moved to the CPU in one batch; it also lets a BatchNorm output that would need a copy be kept as a
    :class:`Recompute` of its call (eval mode, its input stored by reference and unchanged).

    ``inplace_leaves``: CAM calls (of ``_Pass.inplace_cams``) whose own output tensor is tied to the graph's leaf
    (copied from it in place) instead of being replaced by a copy: when the forward ignores what a call returns
    (``y.add_(1)`` as a statement) only that tensor carries the class score's dependence. It costs a second copy
    and changes the tensor's version, which is why it is the second choice.

    Recorded tensors are copied only where the pass rewrites them in place afterwards: the first pass of a kind
    (model, input shape, what is recorded) clones everything and learns which names need it; later passes keep
    the rest by reference, and if one of those was rewritten after all, the pass is redone cloning everything.
    """
    key = (tuple(x.shape), x.dtype, str(device_of(model)), None if record is None else tuple(map(str, record)),
           tuple(map(str, cam_specs)), list_calls, cam_all, max_bytes, on_device, tuple(sorted(inplace_leaves)),
           tie_passthrough)
    plan = _plan_for(model, key)
    # Also from a caller inside torch.inference_mode(): its tensors have no version counter (which tells the store
    # what was rewritten in place) and cannot start a Grad-CAM graph.
    with torch.inference_mode(False):
        if x.is_inference():
            x = x.clone()
        result, rewritten = _one_pass(model, x, record, cam_specs, list_calls, cam_all, max_bytes, on_device, plan,
                                      inplace_leaves, tie_passthrough)
        if plan is None:
            _learn_plan(model, key, rewritten)
        elif rewritten:  # a reference was changed after all (a path that depends on the data): clone everything
            result, rewritten = _one_pass(model, x, record, cam_specs, list_calls, cam_all, max_bytes, on_device,
                                          None, inplace_leaves, tie_passthrough)
            _learn_plan(model, key, rewritten)
    return result


def _one_pass(model: nn.Module, x: torch.Tensor, record: Sequence[CallSpec] | None, cam_specs: Sequence[CallSpec],
              list_calls: bool, cam_all: bool, max_bytes: int | None, on_device: bool,
              clone_only: frozenset[str] | None, inplace_leaves: frozenset[str] = frozenset(),
              tie_passthrough: bool = True) -> tuple[_Pass, set[str]]:
    tree = named_module_tree(model)
    all_modules = {name: module for name, module in watchable_modules(tree).items() if name}
    record_all = record is None
    specs = list(record or [])
    # Names that are no module are functional calls (``layer1.0.add``, ``relu#2``): checked after the pass.
    unwatched = [s.module for s in [*specs, *cam_specs] if s.module in tree and s.module and s.module not in all_modules]
    if unwatched:
        raise KeyError(f"{unwatched[0]!r} is TorchScript (torch.jit.script) or inside it: its calls run out of the "
                       "hooks' sight, so it cannot be shown as a layer")
    fn_specs = [s for s in [*specs, *cam_specs] if s.module not in all_modules]
    module_specs = [s for s in specs if s.module in all_modules]
    module_cams = [s for s in cam_specs if s.module in all_modules]
    if not fn_specs:
        resolve_modules(model, specs + list(cam_specs), all_modules)
    if record_all or list_calls or cam_all:
        modules = all_modules
    else:
        modules = {s.module: all_modules[s.module] for s in [*module_specs, *module_cams]}
    wanted_out = {(s.module, s.call): str(s) for s in module_specs if not s.want_input}
    wanted_in = {(s.module, s.call): str(s) for s in module_specs if s.want_input}
    cam_keys = {(s.module, s.call): s.call_name for s in module_cams}
    fn_out = {s.call_name: str(s) for s in specs if s in fn_specs and not s.want_input}
    fn_in = {s.call_name: str(s) for s in specs if s in fn_specs and s.want_input}
    fn_cams = {s.call_name for s in cam_specs if s in fn_specs}
    functional = record_all or list_calls or cam_all or bool(fn_specs)
    store = _CpuStore(max_bytes, clone_only)
    kind_of = _module_kind
    with _kinds_lock:
        blocks = _blocks.setdefault(model, {})

    def block_name(name: str) -> str:
        found = blocks.get(name)
        if found is None:
            found = blocks[name] = block_of(model, name)
        return found
    cam_acts: dict[str, torch.Tensor] = {}
    inplace_cams: dict[str, torch.Tensor | None] = {}

    def start_graph(cam_key: str, tensor: torch.Tensor, passthrough: bool = False) -> torch.Tensor | None:
        """Grad mode on from this CAM call: its output is the graph's leaf. Returns what the forward should go on
        with instead of the output (None: the output itself).

        ``passthrough``: the call returned its input object itself (``nn.Identity``, eval-mode Dropout), which the
        forward may also use under another name (``out = body(x) + self.shortcut(x)``). Grad-CAM's gradient is
        that of the tensor (every use of it, as a forward hook and ``autograd.grad`` by hand, captum or an
        earlier CAM layer of the same pass see it), so the tensor itself is tied to the leaf, not a copy."""
        torch.set_grad_enabled(True)  # undone when the caller's no_grad block exits
        changed_in_place = tensor._version > 0  # the forward may go on with this very tensor, not our copy
        passthrough = passthrough and tie_passthrough
        if passthrough and any(tensor is buffer for buffer in model.buffers()):
            passthrough = False  # a module handing on one of the model's own buffers: never tie shared state
        if ((passthrough or (changed_in_place and cam_key in inplace_leaves)) and not tensor.requires_grad
                and not tensor._is_view()):  # PyTorch refuses to change a no-grad view in place under grad mode
            act = tensor.detach().clone().requires_grad_(True)
            tensor.copy_(act)  # the forward's own tensor now depends on act, and may still change in place
            cam_acts[cam_key] = act
            if not passthrough:
                inplace_cams[cam_key] = None
            return None
        act = tensor if tensor.requires_grad else tensor.detach().requires_grad_(True)
        cam_acts[cam_key] = act
        downstream = act.clone()
        if changed_in_place:  # whether the class score depends on the copy tells whether the forward used it
            inplace_cams[cam_key] = downstream
        return downstream

    started: list[tuple[str, nn.Module, int] | FunctionalCall] = []
    shapes: dict[tuple[str, int], tuple[int, ...] | None] = {}

    # Inputs of calls whose output can be computed again (``Recompute``): only for a caller that reads the kept
    # tensors lazily (``on_device``: the pages' HostActivations), which then needs no copy of an output that the
    # pass overwrites in place.
    sources: dict[tuple[str, int], torch.Tensor] = {}

    # The first input of each CAM call under way and its version: a call that returns it unchanged (not changed in
    # place) is a pass-through.
    cam_inputs: dict[tuple[str, int], tuple[torch.Tensor | None, int]] = {}
    fn_cam_inputs: dict[str, list[tuple[torch.Tensor, int]]] = {}

    def passes_through(tensor: torch.Tensor, inputs: Sequence[tuple[torch.Tensor | None, int]]) -> bool:
        return any(tensor is given and tensor._version == version for given, version in inputs)

    def on_enter(name: str, module: nn.Module, k: int, args: tuple, kwargs: dict) -> None:
        if list_calls or record_all:
            started.append((name, module, k))
        if (name, k) in cam_keys or (cam_all and (kind_of(module)[1] or not kind_of(module)[0])):
            given = first_tensor(args) if args else first_tensor(kwargs)
            cam_inputs[(name, k)] = (given, given._version if given is not None else 0)
        if (on_device and len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)
                and not torch.is_grad_enabled() and _recomputable(module)):
            sources[(name, k)] = args[0]
        if record_all:
            key = call_name(name, k) + INPUT_SUFFIX if kind_of(module)[2] else None
        else:
            key = wanted_in.get((name, k))
        if key is not None:
            tensor = first_tensor(args) if args else first_tensor(kwargs)
            if tensor is not None:
                store.put(key, tensor)

    def on_exit(name: str, module: nn.Module, k: int, output: Any) -> Any:
        tensor = first_tensor(output)
        if list_calls or record_all:
            shapes[(name, k)] = tuple(tensor.shape[1:]) if tensor is not None else None
        key = call_name(name, k) if record_all else wanted_out.get((name, k))
        source = sources.pop((name, k), None) if sources else None
        if key is not None and tensor is not None:
            store.put(key, tensor, module, source)
        cam_key = cam_keys.get((name, k))
        if cam_key is None and cam_all and tensor is not None and tensor.dim() == 4:
            if kind_of(module)[1] or not kind_of(module)[0]:
                cam_key = call_name(name, k)
        if cam_key is None or tensor is None:
            return None
        given = cam_inputs.pop((name, k), None)
        downstream = start_graph(cam_key, tensor, passthrough=given is not None and passes_through(tensor, [given]))
        if downstream is None:
            return None
        if key is not None:
            store.same_values(downstream, key)  # the next layer's input is this copy: no second clone
        return replace_first_tensor(output, downstream)

    def on_function_enter(call: FunctionalCall) -> None:
        if list_calls or record_all:
            started.append(call)
        key = call.name + INPUT_SUFFIX if record_all and call.is_activation else fn_in.get(call.name)
        if key is not None:
            store.put(key, call.inputs[0])
        if call.name in fn_cams or cam_all:
            fn_cam_inputs[call.name] = [(given, given._version) for given in call.inputs]

    def on_function_exit(call: FunctionalCall) -> torch.Tensor | None:
        tensor = call.outputs[0]
        shapes[(call.name, 0)] = tuple(tensor.shape[1:])
        key = call.name if record_all else fn_out.get(call.name)
        if key is not None:
            store.put(key, tensor)
        if call.name not in fn_cams and not (cam_all and tensor.dim() == 4):
            return None
        # as for modules: the graph starts at the first CAM layer
        downstream = start_graph(call.name, tensor,
                                 passthrough=passes_through(tensor, fn_cam_inputs.pop(call.name, ())))
        if downstream is not None and key is not None:
            store.same_values(downstream, key)
        return downstream

    # frozen: gradients are asked of activations only (see hooked)
    with hooked(model, tree, evaluate=True, freeze=True) as add, torch.no_grad():
        x_model = x.to(device_of(model))
        if x_model is x:  # the pass may tie its input to a graph (a pass-through CAM call): never the caller's tensor
            x_model = x.detach().clone()
        recorder = (FunctionalRecorder(model, on_function_enter, on_function_exit, keep_tensors=False,
                                       module_paths=set(tree))
                    if functional else None)
        # Every module hooked anyway: the counting hooks also keep the recorder's frames (one pair per module).
        merged = recorder is not None and modules is all_modules
        _add_counting_hooks(model, add, modules, on_enter, on_exit, frames=recorder if merged else None)
        if recorder is not None:
            if not merged:
                recorder.attach(add)
            recorder.track(x_model)
            with recorder:
                output = model(x_model)
        else:
            output = model(x_model)

    if fn_specs:
        seen = {c.name for c in recorder.calls}
        unknown = [s for s in fn_specs if s.call_name not in seen]
        if unknown:
            close = difflib.get_close_matches(unknown[0].module, sorted(set(all_modules) | seen), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise KeyError(f"the model has no layer named {unknown[0].call_name!r}{hint}")
    missing = [str(s) for s in specs if str(s) not in store.tensors and str(s) not in store.skipped]
    missing += [s.call_name for s in cam_specs if s.call_name not in cam_acts]
    if missing:
        raise ValueError(f"these layers were not called (or returned no tensor) in the forward pass: {missing}")
    with _kinds_lock:
        infos = _call_infos.setdefault(model, {})
        if len(infos) > _CALL_INFOS_MAX:
            infos.clear()
    calls = []
    for order, item in enumerate(started):
        if isinstance(item, FunctionalCall):
            shape = shapes.get((item.name, 0))
            key = (order, item.name, item.op, item.is_activation, shape)
            info = infos.get(key)
            if info is None:
                info = infos[key] = CallInfo(
                    name=item.name, module=item.base, call=item.call, module_type=item.op, shape=shape,
                    block=block_name(item.base), order=order, is_leaf=True, is_conv=False,
                    is_activation=item.is_activation, is_function=True)
            calls.append(info)
            continue
        name, module, k = item
        shape = shapes.get((name, k))
        key = (order, name, k, shape, id(module), type(module))  # the module's id: a reference would keep it alive
        info = infos.get(key)
        if info is None:
            leaf, conv, activation = kind_of(module)
            info = infos[key] = CallInfo(
                name=call_name(name, k), module=name, call=k, module_type=type(module).__name__, shape=shape,
                block=block_name(name), order=order, is_leaf=leaf, is_conv=conv, is_activation=activation)
        calls.append(info)
    rewritten = store.rewritten()
    store.release()
    return (_Pass(output, store.tensors if on_device else store.to_cpu(), cam_acts, calls, store.skipped,
                  inplace_cams), rewritten)


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
    if spec.module not in {n for n, _ in model.named_modules() if n}:
        # A functional call (``layer1.0.add``): routed where the op returns, in every forward pass.
        def on_function_exit(call: FunctionalCall) -> torch.Tensor | None:
            return fn(call.outputs[0]) if call.name == spec.call_name else None

        with hooked(model) as add:
            recorder = FunctionalRecorder(model, on_exit=on_function_exit)
            recorder.attach(add)
            try:
                with recorder:
                    yield
            except Exception as exc:  # the tool found nothing routed: say which name was wrong
                if recorder.calls and spec.call_name not in {c.name for c in recorder.calls}:
                    raise KeyError(f"the model has no layer named {layer!r}") from exc
                raise
        if recorder.calls and spec.call_name not in {c.name for c in recorder.calls}:
            raise KeyError(f"the model has no layer named {layer!r}")
        return
    modules = resolve_modules(model, [spec])
    routed: list[bool] = []

    def on_exit(name: str, module: nn.Module, k: int, output: Any) -> Any:
        if k != spec.call:
            return None
        tensor = first_tensor(output)
        if tensor is None:
            raise TypeError(f"layer {layer!r} returned no tensor")
        routed.append(True)
        return replace_first_tensor(output, fn(tensor))

    with hooked(model) as add:
        _add_counting_hooks(model, add, modules, None, on_exit)
        try:
            yield
        except AssertionError as exc:  # captum's "Forward hook did not obtain any outputs": say which name was wrong
            if not routed:
                raise ValueError(f"layer {layer!r} is not called in the forward pass "
                                 f"(module {spec.module!r} ran fewer than {spec.call} times)") from exc
            raise
