"""The one owner of hooks: every pass that registers hooks on a model goes through :func:`hooked`.

A forward hook fires on every thread's forward pass, and a model cached by the app is shared by every
session: so :func:`hooked` holds the model's lock for as long as hooks exist, and in ``finally`` removes them
and puts back what a pass may have changed (train/eval mode of every module, ``requires_grad`` of every
parameter), even when the pass raised.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from explorer.core.locks import model_lock


def named_module_tree(model: nn.Module) -> dict[str, nn.Module]:
    """``dict(model.named_modules())``: the model as ``""`` first, then every submodule in the same order, a module
    reached twice kept under its first name; walked with one stack instead of a generator per depth level
    (googlenet: ~2,000 generator resumptions, every pass)."""
    found: dict[str, nn.Module] = {"": model}
    visited = {model}  # a set of modules, as torch's own walk keeps (a module's __hash__/__eq__ decide)
    stack = [(name, child) for name, child in reversed(model._modules.items()) if child is not None]
    while stack:
        name, module = stack.pop()
        if module in visited:
            continue
        visited.add(module)
        found[name] = module
        if module._modules:
            stack.extend((f"{name}.{child_name}", child) for child_name, child in reversed(module._modules.items())
                         if child is not None)
    return found


def _scripted(tree: dict[str, nn.Module]) -> list[str]:
    """The outermost TorchScript submodules of ``tree`` (a :func:`named_module_tree`)."""
    scripted = [name for name, module in tree.items() if name and isinstance(module, torch.jit.ScriptModule)]
    return [name for name in scripted if not any(name.startswith(other + ".") for other in scripted)]


def watchable_modules(tree: dict[str, nn.Module] | nn.Module) -> dict[str, nn.Module]:
    """The modules a hook can watch: ``tree`` (a :func:`named_module_tree`, or a model) without TorchScript
    submodules and what they contain. PyTorch refuses Python hooks on a ScriptModule, and the calls inside one run
    in TorchScript, out of any hook's sight: such a part of a network is not a layer the app can show. A model
    scripted as a whole is refused (``TypeError``)."""
    if isinstance(tree, nn.Module):
        tree = named_module_tree(tree)
    if isinstance(tree.get(""), torch.jit.ScriptModule):
        raise TypeError("this model is TorchScript as a whole (torch.jit.script): its layers run out of any hook's "
                        "sight; load the Python module it was scripted from instead")
    scripted = _scripted(tree)
    if not scripted:
        return tree
    inside = tuple(name + "." for name in scripted)
    return {name: module for name, module in tree.items() if name not in scripted and not name.startswith(inside)}


def traced_modules(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """``(name, module, is_leaf)`` for every module a tracer that follows each op (receptive fields, the diagram)
    hooks, the model first and never a leaf itself (a network without submodules is all ops). A TorchScript
    submodule is refused (``ValueError``): its ops never reach the tracer, so everything after it would silently
    lose its input."""
    tree = named_module_tree(model)
    scripted = _scripted(tree)
    if scripted:
        raise ValueError(f"{scripted[0]!r} is TorchScript (torch.jit.script): the ops inside it cannot be followed, "
                         "so this network cannot be traced")
    return [(name, module, bool(name) and not any(child is not None for child in module._modules.values()))
            for name, module in watchable_modules(tree).items()]


@contextmanager
def hooked(model: nn.Module, tree: dict[str, nn.Module] | None = None,
           evaluate: bool = False, freeze: bool = False) -> Iterator[Callable[[Any], None]]:
    """Hold the model's lock; yield ``add(handle)`` to collect hook handles; remove them all in ``finally``.
    ``tree``: the model's :func:`named_module_tree` when the caller has just walked it. ``evaluate``: run the
    block with the model in eval mode (``model.eval()``; the flags come back afterwards): a pass that explains
    the model as it predicts, the same on every call, never folding its input into a shared model's BatchNorm
    statistics (another session may have left the model in training mode). ``freeze``: no parameter requires
    grad inside (restored afterwards): a pass that wants gradients of activations only (Grad-CAM) then records no
    weight-gradient work, keeps fewer tensors, and an in-place write after a layer cannot spoil its backward."""
    handles: list[Any] = []
    with model_lock(model):
        modules = list((tree or named_module_tree(model)).values())
        modes = [(module, module.training) for module in modules]
        # Each module's own parameters, from the list above (``model.parameters()`` walks the tree again); a
        # parameter shared by two modules is restored twice, to the same value.
        grads = [(p, p.requires_grad) for module in modules for p in module._parameters.values() if p is not None]
        active = _active_hook_ids()

        def add(handle: Any) -> None:
            handles.append(handle)
            hook_id = getattr(handle, "id", None)
            if hook_id is not None:
                active.add(hook_id)

        try:
            if evaluate and any(training for _, training in modes):
                model.eval()
            if freeze:
                for parameter, requires_grad in grads:
                    if requires_grad:
                        parameter.requires_grad_(False)
            yield add
        finally:
            for handle in handles:
                handle.remove()
                active.discard(getattr(handle, "id", None))
            # Only what changed is set back (Module.__setattr__ costs a few µs per module, per pass).
            for module, training in modes:
                if module.training != training:
                    module.training = training
            for parameter, requires_grad in grads:
                if parameter.requires_grad != requires_grad:
                    parameter.requires_grad_(requires_grad)


def on_this_thread(hook: Callable[..., Any]) -> Callable[..., Any]:
    """``hook`` wrapped to run only on the thread that wraps it (the thread whose pass registers it): a forward
    hook fires on every thread's forward pass of the model, and one that ignores the model's lock must not add its
    calls to this pass's record (nor pop this pass's stacks)."""
    owner = threading.get_ident()
    get_ident = threading.get_ident

    def filtered(*args: Any, **kwargs: Any) -> Any:
        if get_ident() == owner:
            return hook(*args, **kwargs)
        return None

    return filtered


# Set on the ``forward`` a pass puts in a module's instance dict for its duration (``explorer.analysis.hooks``): a
# copy made during that pass must not keep it (it would run the original module's forward).
PASS_PATCH_MARK = "_explorer_pass_patch"
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")


# The ids of the hook handles that this thread's passes (``hooked``) hold now.
_pass_hooks = threading.local()


def _active_hook_ids() -> set[int]:
    ids = getattr(_pass_hooks, "ids", None)
    if ids is None:
        ids = _pass_hooks.ids = set()
    return ids


def strip_pass_state(copied: nn.Module) -> nn.Module:
    """A deep copy of a model, made under its lock, without what a pass of this thread had put on the original
    (the lock is re-entrant: a copy made inside a pass sees it): the hooks registered through :func:`hooked`, and
    every patched ``forward``. Hooks the model carries for its own reasons (``weight_norm``'s) stay.
    Returns ``copied`` (changed in place; only a private copy may be given)."""
    ids = _active_hook_ids()
    for module in copied.modules():
        if ids:
            for kind in _HOOK_DICTS:
                found = getattr(module, kind, None)
                if found:
                    for key in [k for k in found if k in ids]:
                        del found[key]
        patched = module.__dict__.get("forward")
        if patched is not None and getattr(patched, PASS_PATCH_MARK, False):
            del module.__dict__["forward"]
    return copied


def hook_count(model: nn.Module) -> int:
    """How many forward/backward hooks sit on the model's modules (0 when none leaked)."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(module, kind, {}) or {}) for module in model.modules() for kind in kinds)
