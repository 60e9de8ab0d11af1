"""Vanishing gradients, measured: for every weight layer and one batch, the norm of the gradient that
backpropagation brings to the layer's output (``∂L/∂a``, what "reaches" the layer) and of its weights' gradient
(``∂L/∂W``, what the optimiser uses).

The two tell different stories: in a deep plain network without BatchNorm ``∂L/∂a`` shrinks by orders of
magnitude toward the input, while ``∂L/∂W`` (the layer's input times ``∂L/∂a``) can stay level because the
forward signal shrinks the other way. :func:`layer_gradient_norms` works on any model (a deep copy in training
mode: the caller's model, which may be shared, is never switched to ``train()`` and never receives ``.grad``);
gradients come from ``torch.autograd.grad`` on the parameters and on the layers' outputs. :func:`gradient_experiment` compares the networks the course notes
contrast (plain vs residual with option-A identity shortcuts, with and without BatchNorm) at initialisation
and after a few optimiser steps on the same data.
"""
from __future__ import annotations

import copy
from typing import Sequence

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.analysis import logits_of
from explorer.core import hooked, model_lock, strip_pass_state
from explorer.data import SHAPE_CLASSES, make_shapes
from explorer.models import BATCH_NORMS, build_model

GRADIENT_COLUMNS = ["layer", "type", "depth", "output_grad_norm", "grad_norm", "weight_norm", "params"]


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module, list[nn.Parameter]]]:
    """Layers with weights (convolutions, linear layers, LeNet-5's partial C3 and trainable subsampling...):
    every module with its own trainable parameters other than ``bias``, BatchNorm excluded, in definition
    order, with those parameters."""
    layers = []
    for name, module in model.named_modules():
        if not name or isinstance(module, BATCH_NORMS):
            continue
        weights = [p for n, p in module.named_parameters(recurse=False) if n != "bias" and p.requires_grad]
        if weights:
            layers.append((name, module, weights))
    return layers


def without_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm layer replaced by an identity (in place; returns it)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BATCH_NORMS):
                setattr(parent, name, nn.Identity())
    return model


def layer_gradient_norms(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> pd.DataFrame:
    """One row per weight layer (forward definition order) for the batch ``x`` with labels ``targets`` and the
    cross-entropy loss L: ``output_grad_norm`` = ‖∂L/∂a‖, the L2 norm of the gradient with respect to the layer's
    output (over all its calls, the whole batch; NaN for a layer not called), and ``grad_norm`` = ‖∂L/∂W‖, the
    norm of the gradient with respect to its weights.

    Runs on a deep copy in training mode (BatchNorm uses the batch's statistics, as in training). Each layer's
    output is handed on as a copy, so an in-place activation after it (``ReLU(inplace=True)``) leaves the output
    whose gradient is taken as the layer made it.
    """
    with model_lock(model):  # hooks exist only under the lock: the copy carries none of another thread's pass
        private = strip_pass_state(copy.deepcopy(model))  # nor of this thread's, when called inside one
    private.train()
    layers = weight_layers(private)
    params = [p for _, _, weights in layers for p in weights]
    device = next(private.parameters()).device
    outputs: dict[int, list[torch.Tensor]] = {index: [] for index in range(len(layers))}

    def keep_output(index: int):
        def hook(_module: nn.Module, _args: tuple, output: object) -> object:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                outputs[index].append(output)
                return output.clone()  # what the rest of the network may change in place
            return None
        return hook

    with hooked(private) as add:
        for index, (_name, module, _weights) in enumerate(layers):
            add(module.register_forward_hook(keep_output(index)))
        logits = logits_of(private(x.to(device)))
    loss = F.cross_entropy(logits, targets.to(device))
    kept = [tensor for index in range(len(layers)) for tensor in outputs[index]]
    found = torch.autograd.grad(loss, params + kept, allow_unused=True)
    grads, output_grads = iter(found[:len(params)]), iter(found[len(params):])
    rows = []
    for index, (name, module, weights) in enumerate(layers):
        squares = 0.0
        for weight in weights:
            grad = next(grads)
            squares += float(grad.pow(2).sum()) if grad is not None else 0.0
        gradients_of_outputs = [next(output_grads) for _ in outputs[index]]  # one per call of the layer
        output_norm = (sum(float(g.pow(2).sum()) for g in gradients_of_outputs if g is not None) ** 0.5
                       if gradients_of_outputs else float("nan"))
        rows.append({"layer": name, "type": type(module).__name__, "depth": index + 1, "output_grad_norm": output_norm,
                     "grad_norm": squares ** 0.5,
                     "weight_norm": float(sum(w.detach().pow(2).sum() for w in weights)) ** 0.5,
                     "params": sum(w.numel() for w in weights)})
    return pd.DataFrame(rows, columns=GRADIENT_COLUMNS)


def random_batch(input_shape: Sequence[int], classes: int, batch: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded batch of standard-normal images and labels (its own generator, never the global one)."""
    generator = torch.Generator().manual_seed(int(seed))
    x = torch.randn(batch, *input_shape, generator=generator)
    y = torch.randint(0, classes, (batch,), generator=generator)
    return x, y


GRADIENT_NETWORKS = ("plain18", "resnet18_a", "plain34", "resnet34_a")


def gradient_experiment(networks: Sequence[str] = GRADIENT_NETWORKS, batch_norm: bool = True, steps: int = 0,
                        image_size: int = 32, batch: int = 16, classes: int = len(SHAPE_CLASSES), lr: float = 0.05,
                        seed: int = 0) -> pd.DataFrame:
    """Per-layer gradient norms of each network, freshly built (seeded), at initialisation (``steps`` 0) or after
    ``steps`` SGD steps on one fixed seeded batch of shapes-like data, with or without BatchNorm.

    Rows: ``network``, ``batch_norm``, ``steps`` and :data:`GRADIENT_COLUMNS`, plus ``relative_depth`` (layer
    depth / layers in that network, so networks of different depth share an axis). Small by design: 3×32×32
    inputs, 16 images, so one network's row set costs a fraction of a second per step on a CPU.
    """

    shapes = make_shapes(batch, channels=3, size=image_size, seed=seed)
    x = shapes.images.float() / 255.0
    y = shapes.labels.long()
    frames = []
    for name in networks:
        model = build_model(name, num_classes=classes)
        if not batch_norm:
            without_batchnorm(model)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        for _ in range(int(steps)):
            optimizer.zero_grad()
            F.cross_entropy(logits_of(model(x)), y).backward()
            optimizer.step()
        frame = layer_gradient_norms(model, x, y)
        frame.insert(0, "steps", int(steps))
        frame.insert(0, "batch_norm", bool(batch_norm))
        frame.insert(0, "network", name)
        frame["relative_depth"] = frame["depth"] / len(frame)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
