"""Compare networks the way the course's "comparing model complexity" figure does.

For each model: parameters, mult-adds at its natural input shape (the "ops"/"FLOPs" of the papers:
multiply-accumulates of convolution and fully-connected layers, torchvision's ``_ops`` convention),
weight layers on the longest path (the papers' "depth": VGG-16 → 16, GoogLeNet → 22, ResNet-50 → 50),
the final receptive field, the size of the float32 weights, and ImageNet top-1/top-5 from torchvision's
weights metadata where the model has pretrained weights.

Counting never needs real weights: models are built on PyTorch's ``meta`` device (shapes only, no memory,
no arithmetic) where possible, so comparing VGG-19 costs milliseconds.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from explorer.analysis import WEIGHT_LAYER_OPS, FunctionalCall, FunctionalRecorder, functional_mult_adds
from explorer.core import device_of, flat_tensors, hooked, on_this_thread
from explorer.diagram import capture_graph
from explorer.models import ModelRef, build_model, get_entry, load_model
from explorer.models.arch import build_arch, input_shape_of

MIN_MODELS, MAX_MODELS = 2, 8
COLUMNS = ["model", "family", "input", "params_m", "gflops", "weight_layers", "receptive_field", "size_mb",
           "top1", "top5"]
_WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
# A module of another class counts as a weight layer when its class says so (``is_weight_layer = True``): LeNet-5's
# partially connected C3 and its RBF output layer (explorer.models.teaching). Its mult-adds are its weights (its
# own parameters but the bias) times the output positions: C3's 60 connected 5×5 kernels, not a full 16×6 bank.


def is_weight_layer(module: nn.Module) -> bool:
    """A convolution or fully-connected layer, or a module that declares itself one (``is_weight_layer``)."""
    return isinstance(module, _WEIGHT_LAYERS) or bool(getattr(type(module), "is_weight_layer", False))


# --- counting ------------------------------------------------------------------------------------

def count_params(model: nn.Module) -> int:
    """Parameters, each shared tensor counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def weights_size_mb(model: nn.Module) -> float:
    """Bytes of parameters and buffers in MiB (what torchvision's metadata calls "MB")."""
    tensors = list({id(p): p for p in model.parameters()}.values()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def _mult_adds_of_call(module: nn.Module, inputs: tuple, output: Any) -> int:
    if not isinstance(output, torch.Tensor):
        return 0
    per_image = output.numel() // max(int(output.shape[0]), 1)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return per_image * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.ConvTranspose2d):
        x = inputs[0]
        return (x.numel() // max(int(x.shape[0]), 1)) * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    if is_weight_layer(module):
        weights = sum(p.numel() for name, p in module.named_parameters(recurse=False) if name != "bias")
        return weights * math.prod(int(d) for d in output.shape[2:])
    return 0


def profile(model: nn.Module, input_shape: Sequence[int],
            device: torch.device | str | None = None) -> tuple[dict[str, int], int]:
    """One no-grad pass for one image: (mult-adds of every convolution / linear module summed over its
    calls, parameters of the modules that actually ran).

    The second number is the papers' parameter count: GoogLeNet's auxiliary classifiers, which only run
    in training, are not part of it. Hooks go through :func:`explorer.core.hooked`. Runs on ``device`` (default: the model's).
    """
    counts, params, _ = profile_with_size(model, input_shape, device)
    return counts, params


def profile_with_size(model: nn.Module, input_shape: Sequence[int],
                      device: torch.device | str | None = None) -> tuple[dict[str, int], int, int]:
    """:func:`profile` plus the bytes of the parameters and buffers of the modules that ran: the size of the
    weights an eval pass uses, counted over the same modules as the parameters (googlenet_paper's auxiliary
    heads are in neither)."""
    if device is None:
        device = device_of(model)
    names = {module: name for name, module in model.named_modules()}
    counts: dict[str, int] = {}
    ran: set[str] = set()

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        name = names[module]
        ran.add(name)
        if is_weight_layer(module):
            counts[name] = counts.get(name, 0) + _mult_adds_of_call(module, inputs, output)

    own = {id(t) for t in (*model.parameters(), *model.buffers())}
    passed: dict[int, torch.Tensor] = {}  # the model's tensors handed to a functional op: used at inference too

    def on_function_exit(call: FunctionalCall) -> None:
        # A network written with F.conv2d / F.linear on its own weights: the same weights × positions (no bias)
        ops = functional_mult_adds(call, bias=False)
        if ops:
            counts[call.name] = counts.get(call.name, 0) + ops
        for tensor in flat_tensors([call.args, call.kwargs]):
            if id(tensor) in own:
                passed[id(tensor)] = tensor

    with hooked(model, evaluate=True) as add:  # the inference pass: auxiliary heads off, BatchNorm untouched
        for module in names:
            add(module.register_forward_hook(on_this_thread(hook)))
        recorder = FunctionalRecorder(model, on_exit=on_function_exit, keep_tensors=False)
        recorder.attach(add)  # calls inside a leaf module are the module's own (counted by the hook above)
        x = torch.zeros(1, *input_shape, device=device)
        recorder.track(x)
        with torch.no_grad(), recorder:
            model(x)
    used = {id(p): p for m, name in names.items() if name in ran or m is model for p in m.parameters(recurse=False)}
    buffers = {id(b): b for m, name in names.items() if name in ran or m is model for b in m.buffers(recurse=False)}
    for key, tensor in passed.items():  # F.conv2d(x, self.proj.weight): proj never ran, its weight did
        (used if isinstance(tensor, nn.Parameter) else buffers)[key] = tensor
    size = sum(t.numel() * t.element_size() for t in [*used.values(), *buffers.values()])
    return counts, sum(p.numel() for p in used.values()), size


def mult_adds_by_module(model: nn.Module, input_shape: Sequence[int],
                        device: torch.device | str | None = None) -> dict[str, int]:
    """Mult-adds of every convolution / linear module for one image (see :func:`profile`)."""
    return profile(model, input_shape, device)[0]


def count_mult_adds(model: nn.Module, input_shape: Sequence[int]) -> int:
    return sum(mult_adds_by_module(model, input_shape).values())


def _guess_input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """An input the model takes, when the caller names none: its declared ``input_shape`` (project and operator
    networks), else its first convolution's channels at 224×224."""
    declared = getattr(model, "input_shape", None)
    if isinstance(declared, (tuple, list)) and len(declared) == 3:
        return tuple(int(v) for v in declared)
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return (first.in_channels, 224, 224) if first is not None else None


def weight_layer_depth(model: nn.Module, input_shape: Sequence[int] | None = None) -> int:
    """The number of weight layers (convolutions, FC) on the longest input→output path of the graph.

    This is how the papers count depth: VGG-16 has 16, GoogLeNet 22, ResNet-18 18 (a shortcut's 1×1
    projection runs beside the block, not after it). The graph is the one the model executes on ``input_shape``
    (default: :func:`_guess_input_shape`) in eval mode (GoogLeNet's auxiliary heads only run in training), read
    by :func:`explorer.diagram.capture_graph`: a pass under the model's lock whose recorder sees only this thread.
    (torch.fx's symbolic tracing, used before, patches ``nn.Module.__call__`` for the whole process while it runs:
    every other session's forward pass failed meanwhile.) Falls back to counting every weight layer when the
    model cannot run on that input.
    """
    shape = tuple(input_shape) if input_shape is not None else _guess_input_shape(model)
    try:
        if shape is None:
            raise ValueError("no input shape")
        graph = capture_graph(model, shape)
    except Exception:  # no input it takes: count modules instead
        return sum(is_weight_layer(m) for m in model.modules())
    incoming: dict[str, list[str]] = {}
    for edge in graph.edges:
        incoming.setdefault(edge.dst, []).append(edge.src)
    depth: dict[str, int] = {}
    best = 0
    for node in graph.nodes:  # in execution order: every producer comes before its consumers
        here = max((depth.get(src, 0) for src in incoming.get(node.id, ())), default=0)
        if node.source == "module":
            module = model.get_submodule(node.module) if node.module else model
            here += int(is_weight_layer(module))
        elif node.source == "function" and node.op in WEIGHT_LAYER_OPS:
            here += 1
        depth[node.id] = here
        best = max(best, here)
    return best


# --- per-model statistics ------------------------------------------------------------------------

@dataclass
class ModelStats:
    model: str
    family: str
    input: str  # "3×224×224"
    params_m: float  # parameters used at inference (millions)
    gflops: float  # mult-adds (G) at ``input``
    weight_layers: int
    receptive_field: float | None  # pixels (largest side) at the last layer with a spatial map
    size_mb: float
    top1: float | None
    top5: float | None


def _imagenet_metrics(weights_enum: Any) -> tuple[float | None, float | None]:
    if weights_enum is None:
        return None, None
    metrics = weights_enum.DEFAULT.meta.get("_metrics", {}).get("ImageNet-1K", {})
    return metrics.get("acc@1"), metrics.get("acc@5")


def _build(name: str, device: str | None) -> tuple[nn.Module, tuple[int, int, int], str, Any]:
    """(model with random weights, input shape, family, weights enum) for a registry or ``arch:`` name."""
    ref = ModelRef.parse(name)
    if ref.kind == "arch":
        if device == "meta":
            with torch.device("meta"):
                model, shape = build_arch(ref.value)
        else:
            model = build_model(ref)
            shape = input_shape_of(ref.value)
        return model, tuple(shape), "custom", None
    if ref.kind == "run":  # a training run folder: its own weights, on the CPU
        loaded = load_model(ref, device="cpu")
        return loaded.model, tuple(loaded.input_shape), "run", None
    entry = get_entry(name)
    if device == "meta":
        with torch.device("meta"):
            model = build_model(name)
    else:
        model = build_model(name)
    return model, tuple(entry.input_shape), entry.family, entry.weights_enum


def _meta_or_cpu(name: str, work: Callable[[nn.Module, tuple[int, int, int]], Any]) -> Any:
    """Run ``work(model, input_shape)`` on a meta-device build, or on a real one if meta fails."""
    try:
        model, shape, _family, _weights = _build(name, "meta")
        return work(model, shape)
    except (NotImplementedError, RuntimeError, TypeError):  # some builders copy data at init (RegNet)
        model, shape, _family, _weights = _build(name, None)
        return work(model, shape)


def final_receptive_field(model: nn.Module, input_shape: tuple[int, int, int]) -> float | None:
    """Receptive field (pixels, larger side) of the last layer that still has a spatial map larger than
    1×1 (VGG-16: pool5, 212; ResNet-18: layer4, 435), from :mod:`explorer.receptive`; None if unknown.

    Later layers (global pooling, FC) see the whole image by construction, so they say nothing.
    """
    try:
        from explorer.receptive import receptive_field_table
    except ImportError:
        return None
    try:
        return _final_field(receptive_field_table(model, input_shape))
    except Exception:  # a model the receptive-field analysis does not support: leave the cell empty
        return None


def _final_field(table: pd.DataFrame | None) -> float | None:
    if table is None or len(table) == 0 or "rf_h" not in table:
        return None
    if "unknown" in table:
        table = table[~table["unknown"].astype(bool)]
    if {"out_h", "out_w"} <= set(table.columns):
        sizes = pd.to_numeric(table["out_h"], errors="coerce") * pd.to_numeric(table["out_w"], errors="coerce")
        table = table[sizes > 1]
    sides = pd.concat([pd.to_numeric(table["rf_h"], errors="coerce"),
                       pd.to_numeric(table.get("rf_w", table["rf_h"]), errors="coerce")], axis=1).max(axis=1).dropna()
    return float(sides.iloc[-1]) if len(sides) else None


def model_stats(name: str, receptive: bool = True) -> ModelStats:
    """Statistics of one model at its natural input shape (random weights suffice: nothing depends on them)."""
    ref = ModelRef.parse(name)
    if ref.kind == "arch":
        family, weights_enum = "custom", None
    elif ref.kind == "run":
        family, weights_enum = "run", None
    else:
        entry = get_entry(name)
        family, weights_enum = entry.family, entry.weights_enum

    def counts(model: nn.Module, shape: tuple[int, int, int]) -> tuple:
        # Parameters and size over the same modules, those an eval pass runs (auxiliary heads in neither).
        by_module, used_params, used_bytes = profile_with_size(model, shape)
        return used_params, sum(by_module.values()), weight_layer_depth(model, shape), used_bytes / 2**20, shape

    params, mult_adds, depth, size_mb, shape = _meta_or_cpu(name, counts)
    rf = None
    if receptive:
        try:
            from explorer.receptive import receptive_field_table
        except ImportError:
            receptive_field_table = None
        if receptive_field_table is not None:
            try:  # shapes are all the analysis needs: try the free meta-device build first
                rf = _meta_or_cpu(name, lambda m, s: _final_field(receptive_field_table(m, s)))
            except Exception:  # an op without meta support: real weights (random) on the CPU
                model, shape_cpu, _f, _w = _build(name, None)
                rf = final_receptive_field(model, shape_cpu)
    top1, top5 = _imagenet_metrics(weights_enum)
    return ModelStats(model=name, family=family, input="×".join(map(str, shape)), params_m=params / 1e6,
                      gflops=mult_adds / 1e9, weight_layers=depth, receptive_field=rf, size_mb=size_mb,
                      top1=top1, top5=top5)


def compare_models(names: Sequence[str], receptive: bool = True) -> pd.DataFrame:
    """One row per model (2–8 distinct names), columns :data:`COLUMNS`; unknown accuracy is NaN. A model that
    cannot be compared raises (:func:`compare_available` leaves it out instead)."""
    names = _checked_names(names)
    return _stats_table([asdict(model_stats(name, receptive=receptive)) for name in names])


def compare_available(names: Sequence[str], receptive: bool = True) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """:func:`compare_models` for the models that can be compared, and ``(name, message)`` for each that cannot
    (an unknown name, a typed network that fails to build): one bad entry does not hide the others."""
    rows, failed = [], []
    for name in _checked_names(names):
        try:
            rows.append(asdict(model_stats(name, receptive=receptive)))
        except Exception as exc:  # said per model by the page; the others are still compared
            failed.append((name, str(exc) or type(exc).__name__))
    return _stats_table(rows), failed


def _checked_names(names: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(names))
    if not MIN_MODELS <= len(names) <= MAX_MODELS:
        raise ValueError(f"compare {MIN_MODELS} to {MAX_MODELS} different models (got {len(names)})")
    return names


def _stats_table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("receptive_field", "top1", "top5"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


# The bubble chart's label layout works in screen pixels: the plot is BUBBLE_HEIGHT_PX tall, and at least
# MIN_PLOT_WIDTH_PX wide (the main column at 150 % zoom on a 1280-px projector); wider screens only spread
# the bubbles further apart, so a layout free of overlaps at this width stays free of them.
BUBBLE_HEIGHT_PX = 480
MIN_PLOT_WIDTH_PX = 480
LABEL_FONT_PX = 12
_PLOT_HEIGHT_PX = BUBBLE_HEIGHT_PX - 110  # less the title margin and the x axis


def _padded_range(values: pd.Series, pad: float = 0.12) -> list[float]:
    low, high = float(values.min()), float(values.max())
    span = (high - low) or max(abs(high), 1.0)
    return [low - pad * span, high + pad * span]


def label_box(x_px: float, y_px: float, text: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in pixels of a label centred on (x_px, y_px): ~0.62 em a character."""
    half_w, half_h = 0.31 * LABEL_FONT_PX * len(text) + 3, 0.6 * LABEL_FONT_PX + 2
    return x_px - half_w, y_px - half_h, x_px + half_w, y_px + half_h


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def place_bubble_labels(x: np.ndarray, y: np.ndarray, diameters: np.ndarray, names: list[str],
                        x_range: list[float], y_range: list[float]) -> list[tuple[float, float]]:
    """Pixel offsets (ax, ay) of each name from its bubble's centre (plotly annotation ``ax``/``ay``; y grows
    downwards), chosen greedily, biggest bubble first: beside the bubble where no placed name, no bubble and
    no plot edge is in the way, else the least overlapping of 16 places."""
    width, height = float(MIN_PLOT_WIDTH_PX), float(_PLOT_HEIGHT_PX)
    px = (np.asarray(x, float) - x_range[0]) / (x_range[1] - x_range[0]) * width
    py = (1.0 - (np.asarray(y, float) - y_range[0]) / (y_range[1] - y_range[0])) * height
    radii = np.asarray(diameters, float) / 2
    bubbles = [(px[i] - radii[i], py[i] - radii[i], px[i] + radii[i], py[i] + radii[i]) for i in range(len(names))]
    directions = [(0, -1), (0, 1), (1, 0), (-1, 0), (1, -1), (-1, -1), (1, 1), (-1, 1)]
    placed: list[tuple[float, float, float, float]] = []
    offsets: list[tuple[float, float]] = [(0.0, 0.0)] * len(names)
    for i in sorted(range(len(names)), key=lambda k: -radii[k]):
        half_w, half_h = 0.31 * LABEL_FONT_PX * len(names[i]) + 3, 0.6 * LABEL_FONT_PX + 2
        best: tuple[float, int, tuple[float, float]] | None = None
        for rank, (gap, (dx, dy)) in enumerate((g, d) for g in (4.0, 28.0) for d in directions):
            ax = dx * (radii[i] + gap + half_w)
            ay = dy * (radii[i] + gap + half_h)
            box = label_box(px[i] + ax, py[i] + ay, names[i])
            cost = sum(_overlap(box, other) for other in placed)
            cost += 0.5 * sum(_overlap(box, bubbles[j]) for j in range(len(names)) if j != i)
            outside = max(0.0, -box[0]) + max(0.0, box[2] - width - 30) + max(0.0, -box[1] + 20) \
                + max(0.0, box[3] - height - 20)
            cost += 40.0 * outside
            if best is None or (cost, rank) < best[:2]:
                best = (cost, rank, (ax, ay))
        assert best is not None
        offsets[i] = best[2]
        placed.append(label_box(px[i] + best[2][0], py[i] + best[2][1], names[i]))
    return offsets


def bubble_chart(table: pd.DataFrame, y: str = "top1", labels: dict[str, str] | None = None,
                 names: Mapping[str, str] | None = None):
    """Operations (x) against ``y`` (default top-1 accuracy), bubble area ∝ parameters.

    Models without a value for ``y`` are left out (the caller says so). ``labels`` renames axis titles (and the
    hover text's quantities); ``names`` gives a shorter label per model (the page's, for typed networks).
    """
    import plotly.graph_objects as go

    labels = {"gflops": "G mult-adds", "top1": "ImageNet top-1 (%)", "top5": "ImageNet top-5 (%)",
              "weight_layers": "weight layers", "params_m": "parameters (M)", **(labels or {})}
    data = table.dropna(subset=[y, "gflops"])
    shown = [str((names or {}).get(m, m)) for m in data["model"]]
    peak = float(table["params_m"].max() or 1.0)
    # Bubble *area* proportional to parameters, like the classic figure; sizeref maps the largest to 60 px.
    sizeref = 2.0 * peak / (60.0 ** 2)
    x_range, y_range = _padded_range(data["gflops"]), _padded_range(data[y])
    diameters = np.maximum(4.0, np.sqrt(2.0 * data["params_m"].to_numpy(dtype=float) / sizeref))
    offsets = place_bubble_labels(data["gflops"].to_numpy(dtype=float), data[y].to_numpy(dtype=float),
                                  diameters, shown, x_range, y_range)
    figure = go.Figure(go.Scatter(
        x=data["gflops"], y=data[y], mode="markers", text=shown,
        marker=dict(size=data["params_m"], sizemode="area", sizeref=sizeref, sizemin=4,
                    color=list(range(len(data))), colorscale="Viridis", opacity=0.7, line=dict(width=1)),
        customdata=data[["params_m"]].to_numpy(),
        hovertemplate=(f"%{{text}}<br>{labels['gflops']}: %{{x:.3g}}<br>{labels.get(y, y)}: %{{y}}"
                       f"<br>{labels['params_m']}: %{{customdata[0]:.3g}}<extra></extra>"),
        cliponaxis=False,
    ))
    # Names as annotations at pixel offsets chosen so that no two overlap each other or another bubble (a thin
    # line joins a name moved away to its bubble): close small models (mobilenet, shufflenet, efficientnet)
    # no longer pile their names on top of one another.
    for (gx, gy, name, diameter), (ax, ay) in zip(zip(data["gflops"], data[y], shown, diameters), offsets):
        figure.add_annotation(x=gx, y=gy, text=str(name), ax=ax, ay=ay, showarrow=True, arrowhead=0,
                              standoff=float(diameter) / 2,  # the line stops at the bubble's edge
                              arrowwidth=1, arrowcolor="rgba(90,90,90,0.6)", font=dict(size=LABEL_FONT_PX))
    figure.update_layout(xaxis_title=labels["gflops"], yaxis_title=labels.get(y, y), showlegend=False,
                         margin=dict(l=10, r=40, t=40, b=10), height=BUBBLE_HEIGHT_PX)
    figure.update_xaxes(range=x_range)
    figure.update_yaxes(range=y_range)
    return figure
