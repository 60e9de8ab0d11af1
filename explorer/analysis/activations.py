"""What every layer of a network produces for one image, and where it looks (Grad-CAM), in one pass.

Layers are addressed by *call names*: a module's dotted name for its first call in a forward pass,
``name#k`` for its k-th call (k >= 2) and ``name:in`` for a call's *input* (see ``explorer.analysis.layer_calls``).

Everything that touches the model holds ``explorer.core.locks.model_lock(model)`` while hooks are
registered (a forward hook fires on every thread's forward pass), removes its hooks in ``finally`` and
never changes train/eval mode or parameters. Tensors are cloned to the CPU *inside* the hooks: a
conv followed by ``ReLU(inplace=True)`` would otherwise show post-ReLU values as its output.

Every layer's output for one image (:func:`capture`) and the list of calls a forward pass makes
(:func:`callable_layers`); the shared analysis pass is :mod:`explorer.analysis.shared_pass`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from explorer.analysis.hooks import run_pass
from explorer.analysis.layer_calls import CallInfo, parse_call


def callable_layers(model: nn.Module, x: torch.Tensor) -> list[CallInfo]:
    """Every module call of a forward pass on ``x``, in the order the calls start.

    Runs one no-grad forward pass under the model's lock; records shapes, not tensors. A module called
    twice appears twice (``relu`` and ``relu#2``).
    """
    return run_pass(model, x, record=[], list_calls=True).calls


def capture(model: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Outputs (or ``:in`` inputs) of the named layer calls for input ``x``: detached CPU clones.

    Safe with one model object shared by many threads: holds the model's lock, runs under no_grad,
    removes its hooks in finally, leaves train/eval mode alone. Raises KeyError for unknown layers and
    ValueError for calls that did not happen (``relu#3`` of a module called twice).
    """
    specs = [parse_call(name) for name in layers]
    tensors = run_pass(model, x, record=specs).tensors
    # The pass keeps by reference what it did not change, which includes ``x`` itself (an input, an Identity's
    # output): the caller may reuse that buffer, so those are copied.
    given = x.untyped_storage().data_ptr()
    return {str(s): (tensors[str(s)].clone() if tensors[str(s)].untyped_storage().data_ptr() == given
                     else tensors[str(s)]) for s in specs}
