"""Shape checking, size limits and building of a parsed build-your-own spec (see ``explorer.models.arch.grammar``).

:func:`plan_arch` walks the layers without allocating weights: it infers every module's input and output
shape, its parameters and mult-adds, names the modules (``conv1``, ``relu1``, ``pool1``...) and adds the
implied ones (a flatten before the first FC of a feature map, the paper's ReLUs when the spec writes
none). :func:`build_arch` turns the plan into an :class:`ArchNet`; :func:`describe_arch` into a table.
Every problem raises :class:`~explorer.models.arch.grammar.ArchSpecError` naming the token and its position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch.nn as nn

from explorer.core import GLOBAL_RNG_LOCK
from explorer.models.arch.grammar import ArchSpecError, LayerSpec, format_arch, parse_arch, split_input

if TYPE_CHECKING:
    import pandas as pd

LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0

# Guards on the whole network: a spec typed in a browser must not be able to allocate gigabytes or run
# for minutes (token-level limits are in archparse).
MAX_PARAMS = 200_000_000  # VGG-19 has 144 M
MAX_ACTIVATION = 16_000_000  # elements of one layer's output at batch 1 (VGG at 224: 3.2 M)
MAX_MULT_ADDS = 40_000_000_000  # VGG-19 at 224: 19.6 G
# Elements of every module's output together (the app's analysis passes keep them all): 256 MB in float32,
# about twice VGG-16 at 224 (28.7 M). One big conv followed by 124 ReLUs once kept 8.8 GB.
MAX_TOTAL_ACTIVATION = 64_000_000


@dataclass
class PlannedLayer:
    """One module of the network to build: its name, the token it comes from, shapes and cost."""

    name: str
    layer: LayerSpec
    position: int | None  # the token's position (None for an implied ReLU/flatten)
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    mult_adds: int
    implied: bool = False


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape) if len(shape) == 3 else f"a vector of {shape[0]} features"


def _relu_positions(body: list[LayerSpec]) -> set[int]:
    """Indices (into ``body``) after which a ReLU is implied; empty if the spec writes its own ReLUs."""
    if any(layer.kind == "relu" for layer in body):
        return set()
    weight = [i for i, layer in enumerate(body) if layer.kind in ("conv", "fc")]
    hidden = weight[:-1]
    after: set[int] = set()
    for i in hidden:
        j = i
        while j + 1 < len(body) and body[j + 1].kind == "bn":  # conv → BN → ReLU
            j += 1
        after.add(j)
    return after


def plan_arch(spec: str | list[LayerSpec]) -> tuple[tuple[int, int, int], list[PlannedLayer]]:
    """Check a spec layer by layer without allocating weights: (input shape, planned modules).

    Raises :class:`ArchSpecError` at the first token whose output would be empty, whose channels or
    features do not match, or which makes the network too large.
    """
    layers = parse_arch(spec) if isinstance(spec, str) else list(spec)
    offset = 1 if layers and layers[0].kind == "input" else 0
    input_shape, body = split_input(layers)
    if not body:
        raise ArchSpecError("the spec has no layers after the input: add e.g. 'conv3-16 M FC-10'")
    relu_after = _relu_positions(body)
    counters: dict[str, int] = {}
    planned: list[PlannedLayer] = []
    shape: tuple[int, ...] = tuple(input_shape)
    total_params = total_mult_adds = total_activation = 0

    def name_for(prefix: str) -> str:
        counters[prefix] = counters.get(prefix, 0) + 1
        return f"{prefix}{counters[prefix]}"

    for index, layer in enumerate(body):
        position = index + 1 + offset
        token = layer.token or layer.format()

        def fail(reason: str) -> None:
            raise ArchSpecError(reason, token, position)

        if layer.kind == "input":
            fail("the input shape must be the first token")
        needs_map = layer.kind in ("conv", "maxpool", "avgpool", "gap", "lrn", "flatten")
        if needs_map and len(shape) != 3:
            fail(f"needs a feature map (C×H×W) but its input is {_shape_text(shape)}: put it before FC/GAP/flatten")
        params = mult_adds = 0
        if layer.kind == "conv":
            c, h, w = shape
            if c % layer.groups or layer.out % layer.groups:
                fail(f"channels do not match: {c} input channels and {layer.out} filters must both be "
                     f"divisible by groups={layer.groups}")
            oh, ow = (_conv_out(s, layer.kernel, layer.stride, layer.padding) for s in (h, w))
            if oh < 1 or ow < 1:
                fail(f"output would be empty: a {layer.kernel}×{layer.kernel} convolution (stride {layer.stride}, "
                     f"padding {layer.padding}) does not fit its {c}×{h}×{w} input")
            out_shape = (layer.out, oh, ow)
            weights = layer.out * (c // layer.groups) * layer.kernel * layer.kernel
            params, mult_adds = weights + layer.out, weights * oh * ow
            prefix = "conv"
        elif layer.kind in ("maxpool", "avgpool"):
            c, h, w = shape
            oh, ow = (_conv_out(s, layer.kernel, layer.stride, layer.padding) for s in (h, w))
            if oh < 1 or ow < 1:
                fail(f"output would be empty: a {layer.kernel}×{layer.kernel} pooling window (stride "
                     f"{layer.stride}) does not fit its {c}×{h}×{w} input")
            out_shape, prefix = (c, oh, ow), "pool"
        elif layer.kind == "fc":
            features = math.prod(shape)
            if len(shape) == 3:  # flatten implied, as in VGG's first FC layer
                planned.append(PlannedLayer(name_for("flatten"), LayerSpec("flatten"), None, shape, (features,), 0, 0,
                                            implied=True))
                shape = (features,)
            weights = features * layer.out
            params, mult_adds = weights + layer.out, weights
            out_shape, prefix = (layer.out,), "fc"
        elif layer.kind == "gap":
            out_shape, prefix = (shape[0],), "gap"
        elif layer.kind == "flatten":
            out_shape, prefix = (math.prod(shape),), "flatten"
        elif layer.kind == "bn":
            params = 2 * shape[0]
            out_shape, prefix = shape, "bn"
        else:  # relu, dropout, lrn keep the shape
            out_shape, prefix = shape, {"relu": "relu", "dropout": "drop", "lrn": "lrn"}[layer.kind]
        if math.prod(out_shape) > MAX_ACTIVATION:
            fail(f"output {_shape_text(out_shape)} is too large for the app (more than {MAX_ACTIVATION:,} values)")
        # This layer's output, and the implied ReLU's after it, count towards the whole network's outputs.
        total_activation += math.prod(out_shape) * (2 if index in relu_after else 1)
        if total_activation > MAX_TOTAL_ACTIVATION:
            fail(f"the layers' outputs together would hold {total_activation:,} values (the app allows "
                 f"{MAX_TOTAL_ACTIVATION:,} for the whole network): use a smaller input, fewer filters or fewer layers")
        total_params += params
        total_mult_adds += mult_adds
        if total_params > MAX_PARAMS:
            fail(f"the network would have {total_params:,} parameters (the app allows {MAX_PARAMS:,})")
        if total_mult_adds > MAX_MULT_ADDS:
            fail(f"the network would need {total_mult_adds / 1e9:.1f} G mult-adds (the app allows "
                 f"{MAX_MULT_ADDS / 1e9:.0f} G)")
        planned.append(PlannedLayer(name_for(prefix), layer, position, shape, out_shape, params, mult_adds))
        shape = out_shape
        if index in relu_after:
            planned.append(PlannedLayer(name_for("relu"), LayerSpec("relu"), None, shape, shape, 0, 0, implied=True))
    if len(shape) != 1:
        last = body[-1]
        raise ArchSpecError(f"the network ends with a {_shape_text(shape)} feature map: end with FC-N or GAP so "
                            "that it outputs class scores", last.token or last.format(), len(body) + offset)
    return tuple(input_shape), planned


def _module_for(step: PlannedLayer) -> nn.Module:
    layer, in_shape = step.layer, step.in_shape
    kind = layer.kind
    if kind == "conv":
        return nn.Conv2d(in_shape[0], layer.out, layer.kernel, stride=layer.stride, padding=layer.padding,
                         groups=layer.groups)
    if kind == "maxpool":
        return nn.MaxPool2d(layer.kernel, stride=layer.stride, padding=layer.padding)
    if kind == "avgpool":
        return nn.AvgPool2d(layer.kernel, stride=layer.stride, padding=layer.padding)
    if kind == "fc":
        return nn.Linear(in_shape[0], layer.out)
    if kind == "bn":
        return nn.BatchNorm2d(in_shape[0]) if len(in_shape) == 3 else nn.BatchNorm1d(in_shape[0])
    if kind == "relu":
        return nn.ReLU()  # not in-place: a hook on the layer before sees its own output, not the ReLU's
    if kind == "dropout":
        return nn.Dropout(layer.p)
    if kind == "lrn":
        # The paper's α: PyTorch divides its alpha by the window size n, hence α·n (as AlexNetPaper does).
        return nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)
    if kind == "gap":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if kind == "flatten":
        return nn.Flatten()
    raise AssertionError(kind)


class ArchNet(nn.Sequential):
    """A network built from a spec: a ``Sequential`` of named layers (``conv1``, ``relu1``, ``pool1`` ...)."""

    def __init__(self, spec: str, input_shape: tuple[int, int, int], modules: "list[tuple[str, nn.Module]]") -> None:
        from collections import OrderedDict

        super().__init__(OrderedDict(modules))
        self.spec = spec
        self.input_shape = input_shape


def build_arch(spec: str) -> tuple[nn.Module, tuple[int, int, int]]:
    """Build the network a spec describes (random init, eval mode) and return it with its input shape.

    Raises :class:`ArchSpecError` (a ``ValueError``) naming the token and its position at the first
    problem; nothing is allocated before the whole spec has been checked.
    """
    layers = parse_arch(spec)
    input_shape, planned = plan_arch(layers)
    with GLOBAL_RNG_LOCK:  # initialisation draws from torch's global generator: never amid a seeded section
        modules = [(step.name, _module_for(step)) for step in planned]
        for _name, module in modules:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
    model = ArchNet(format_arch(layers), input_shape, modules)
    return model.eval(), input_shape


def describe_arch(spec: str) -> pd.DataFrame:
    """Per-module plan (name, token, position, input/output shape, params, mult-adds), no weights built."""
    import pandas as pd  # here: the first page builds networks but draws no table (pandas costs ~0.3 s)

    _shape, planned = plan_arch(spec)
    return pd.DataFrame([{
        "name": step.name, "token": "" if step.implied else (step.layer.token or step.layer.format()),
        "position": step.position, "implied": step.implied,
        "input": "×".join(map(str, step.in_shape)), "output": "×".join(map(str, step.out_shape)),
        "params": step.params, "mult_adds": step.mult_adds,
    } for step in planned])
