"""What every layer of a network produces for one image, and where it looks (Grad-CAM), in one pass.

Layers are addressed by *call names*: a module's dotted name for its first call in a forward pass,
``name#k`` for its k-th call (k >= 2) and ``name:in`` for a call's *input* (see ``explorer.layer_calls``).

Everything that touches the model holds ``explorer.locks.model_lock(model)`` while hooks are
registered (a forward hook fires on every thread's forward pass), removes its hooks in ``finally`` and
never changes train/eval mode or parameters. Tensors are cloned to the CPU *inside* the hooks: a
conv followed by ``ReLU(inplace=True)`` would otherwise show post-ReLU values as its output.

This module is the public entry point. :func:`capture` and :func:`callable_layers` live here; the rest
of its contract (``__all__``) is implemented in sibling modules and re-exported:

- ``explorer.layer_calls``: call names and module kinds, :class:`CallInfo`, :func:`activation_pair`,
  :func:`logits_of`, :func:`block_of`, :func:`device_of`;
- ``explorer.layer_hooks``: hook plumbing, the recording forward pass, :func:`route_call`;
- ``explorer.analysis``: :func:`analyze`, :class:`Analysis`, :func:`predict`, :func:`top_k`,
  :func:`upsample_cam`, :func:`gradcam_from`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from explorer.analysis import Analysis, Prediction, analyze, predict, top_k, upsample_cam
from explorer.layer_calls import CallInfo, activation_pair, logits_of, parse_call
from explorer.layer_hooks import _run_pass

__all__ = [
    "Analysis", "CallInfo", "Prediction", "activation_pair", "analyze", "callable_layers", "capture",
    "logits_of", "predict", "top_k", "upsample_cam",
]


def callable_layers(model: nn.Module, x: torch.Tensor) -> list[CallInfo]:
    """Every module call of a forward pass on ``x``, in the order the calls start.

    Runs one no-grad forward pass under the model's lock; records shapes, not tensors. A module called
    twice appears twice (``relu`` and ``relu#2``).
    """
    return _run_pass(model, x, record=[], list_calls=True).calls


def capture(model: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Outputs (or ``:in`` inputs) of the named layer calls for input ``x``: detached CPU clones.

    Safe with one model object shared by many threads: holds the model's lock, runs under no_grad,
    removes its hooks in finally, leaves train/eval mode alone. Raises KeyError for unknown layers and
    ValueError for calls that did not happen (``relu#3`` of a module called twice).
    """
    specs = [parse_call(name) for name in layers]
    tensors = _run_pass(model, x, record=specs).tensors
    return {str(s): tensors[str(s)] for s in specs}
