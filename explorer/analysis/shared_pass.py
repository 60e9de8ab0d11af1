"""The shared analysis pass: class scores, recorded activations and Grad-CAM from one forward pass.

:func:`analyze` runs the recording pass of :mod:`explorer.analysis.hooks` once and computes Grad-CAM of
any number of layers from a single gradient computation; :func:`predict` / :func:`top_k` turn class
scores into named predictions; :func:`upsample_cam` scales a layer-resolution CAM to the input size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.analysis.layer_calls import CallInfo, logits_of, parse_call
from explorer.analysis.hooks import run_pass
from explorer.core import device_of, hooked, model_lock

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
    activations: dict[str, torch.Tensor] = field(default_factory=dict)  # call spec -> tensor [1,...] (CPU unless on_device)
    calls: list[CallInfo] = field(default_factory=list)  # filled when every layer was recorded
    input_size: tuple[int, int] = (0, 0)
    skipped: list[str] = field(default_factory=list)  # recorded names dropped by the byte budget

    def cam(self, layer: str | None = None) -> np.ndarray:
        """Grad-CAM of ``layer`` (default: the first CAM layer) at the input size, scaled to [0, 1]."""
        if not self.cam_raw:
            raise ValueError("no Grad-CAM was computed in this analysis")
        raw = self.cam_raw[layer] if layer is not None else next(iter(self.cam_raw.values()))
        return upsample_cam(raw, self.input_size)


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
    tensor = torch.from_numpy(np.array(raw, dtype=np.float32))[None, None]  # a copy: ``raw`` may be read-only
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
    on_device: bool = False,
) -> Analysis:
    """One forward pass: class scores, the activations of ``layers`` and Grad-CAM for ``cam_layer`` (one more pass
    for each CAM layer that the forward changes in place and then uses without the pass's copy, rare).

    ``layers=None`` records every module call (outputs, plus ``name:in`` inputs of activation modules)
    and lists the calls; pass ``[]`` to record none. ``cam_layer`` may be a list: one gradient
    computation serves all of them. Gradients are asked for with ``torch.autograd.grad`` on the layer
    activations only (no parameter gradients) and the graph only starts at the first CAM layer, so the
    pass costs little more than a plain forward. ``target=None`` explains the top-1 class. ``x`` is one
    image ``[1,C,H,W]``. ``cam_all=True`` adds Grad-CAM of every conv call and every block with a spatial
    output (what a layer picker offers), still from the same single gradient computation.
    ``max_bytes`` bounds the memory of the recorded activations (every layer of efficientnet_b7 at
    600x600 is ~4 GB): in forward order, tensors that would exceed it are not kept and their names are
    listed in ``Analysis.skipped`` (get them later with :func:`capture`). ``on_device=True`` keeps the recorded
    activations on the model's device (the caller copies what it draws: ``HostActivations``).
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"analyze takes one image [1,C,H,W], got {tuple(x.shape)}")
    cam_names = [cam_layer] if isinstance(cam_layer, str) else list(cam_layer or [])
    cam_specs = list(dict.fromkeys(parse_call(n) for n in cam_names))
    if any(s.want_input for s in cam_specs):
        raise ValueError("Grad-CAM explains layer outputs: drop the ':in' suffix")
    record = None if layers is None else [parse_call(n) for n in layers]
    # Grad mode on for the class score's graph, whatever the caller's (no_grad, inference_mode) around this call.
    with model_lock(model), torch.inference_mode(False), torch.enable_grad():
        for tie in (True, False):
            result = run_pass(model, x, record=record, cam_specs=cam_specs, cam_all=cam_all, max_bytes=max_bytes,
                              on_device=on_device, tie_passthrough=tie)
            scores = logits_of(result.output)
            if scores.dim() != 2 or scores.shape[0] != 1:
                raise ValueError(f"the model's output is not class scores [1, classes]: {tuple(scores.shape)}")
            chosen = int(scores[0].argmax()) if target is None else int(target)
            if not 0 <= chosen < scores.shape[1]:
                raise ValueError(f"target class {chosen} is outside 0..{scores.shape[1] - 1}")
            if not result.cam_acts:
                break
            names = list(dict.fromkeys([s.call_name for s in cam_specs] + list(result.cam_acts)))
            acts = [result.cam_acts[n] for n in names]
            # The copies handed on by calls that had changed their output in place: a copy the class score does not
            # depend on was dropped by the forward, which went on with (and may have changed again) its own tensor.
            copies = [(n, c) for n, c in result.inplace_cams.items() if c is not None]
            try:
                if scores.requires_grad:
                    found = torch.autograd.grad(scores[0, chosen], acts + [c for _, c in copies], allow_unused=True)
                else:  # no CAM layer's copy reached the scores (every one dropped, or a dead branch)
                    found = (None,) * (len(acts) + len(copies))
                break
            except RuntimeError as exc:
                # A pass-through call's tensor tied to the graph, then rewritten in place by the forward
                # (``s = shortcut(y); s += conv2(y)``): no gradient through that tensor exists. Once more untied:
                # the uses of what the call returned (the graph's own leaf), as before the tie.
                if not tie or "modified by an inplace operation" not in str(exc):
                    raise
        cam_raw: dict[str, np.ndarray] = {}
        if result.cam_acts:
            grads = list(found[:len(acts)])
            dropped = {n for (n, _), g in zip(copies, found[len(acts):]) if g is None}
            dropped |= {n for n, g in zip(names, grads) if g is None and n in result.inplace_cams}
            for name in sorted(dropped):  # once more each, as the first CAM layer of its pass, tied to its tensor
                again = _leaf_gradients(model, x, [name], chosen)
                if name in again:
                    index = names.index(name)
                    acts[index], grads[index] = again[name]
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


def _leaf_gradients(model: nn.Module, x: torch.Tensor, names: Sequence[str],
                    target: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(activation, gradient of the ``target`` score) of CAM calls whose output a forward changes in place and then
    keeps using itself (``y = conv(x); y.add_(1)``): a pass in which that tensor is tied to the graph's leaf
    (``run_pass``'s ``inplace_leaves``). The model's lock is held by the caller."""
    result = run_pass(model, x, record=[], cam_specs=[parse_call(n) for n in names], inplace_leaves=frozenset(names))
    found = [n for n in names if n in result.cam_acts]
    if not found:
        return {}
    scores = logits_of(result.output)
    grads = torch.autograd.grad(scores[0, target], [result.cam_acts[n] for n in found], allow_unused=True)
    return {n: (result.cam_acts[n], g) for n, g in zip(found, grads) if g is not None}


def predict(model: nn.Module, x: torch.Tensor, k: int = 5, categories: Sequence[str] | None = None) -> list[Prediction] | None:
    """Top-k predictions for one image, or None without categories (random weights: no meaningful classes)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k is how many classes to list: a whole number from 1, not {k!r}")
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image [1,C,H,W], got {tuple(x.shape)}")
    if categories is None:
        return None
    with hooked(model, evaluate=True), torch.no_grad():
        scores = logits_of(model(x.to(device_of(model)))).detach()[0].float().cpu()
    return top_k(torch.softmax(scores, 0).numpy(), k, categories)
