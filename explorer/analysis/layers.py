"""Layer helpers shared by the pages: the convolutions of a model and the usual Grad-CAM layer."""
from __future__ import annotations

import weakref

import torch
import torch.nn as nn

from explorer.analysis.hooks import run_pass
from explorer.analysis.layer_calls import call_name, is_conv, parse_call
from explorer.core import hooked, model_device_dtype, on_this_thread, watchable_modules


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of every convolution a hook can watch, in registration order (none inside TorchScript)."""
    return [name for name, module in watchable_modules(model).items() if name and is_conv(module)]


_executed_cache: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def executed_output_shapes(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """The output shape of every module call, in the order the calls end, from one no-grad pass on zeros in eval
    mode; keyed by call name (``name`` for a module's first call, ``name#k`` for its k-th: a module used twice has
    two entries). Only this thread's pass is recorded."""
    per_model = _executed_cache.setdefault(model, {})
    key = tuple(input_shape)
    if key in per_model:
        return per_model[key]
    shapes: dict[str, tuple[int, ...]] = {}
    counts: dict[str, int] = {}

    def hook(name: str):
        def fn(_m, _i, out):
            k = counts[name] = counts.get(name, 0) + 1
            if isinstance(out, torch.Tensor):
                shapes[call_name(name, k)] = tuple(out.shape)
        return on_this_thread(fn)

    device, dtype = model_device_dtype(model)
    # eval: shapes only, and a model in training mode must not fold these zeros into its BatchNorm statistics
    with hooked(model, evaluate=True) as add:
        for name, module in watchable_modules(model).items():
            if name:
                add(module.register_forward_hook(hook(name)))
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    per_model[key] = shapes
    return shapes


_default_layers: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def default_cam_layer(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> str:
    """The last convolution block that still has a spatial map: the usual Grad-CAM choice.

    Takes the last *executed* conv with an output larger than 1×1, then climbs to the largest enclosing
    block whose output keeps that spatial size (ResNet → ``layer4``, GoogLeNet → ``inception5b``).
    Remembered per model and input shape (every new image's analysis asks).
    """
    key = None if input_shape is None else tuple(input_shape)
    per_model = _default_layers.setdefault(model, {})
    if key not in per_model:
        per_model[key] = _find_default_cam_layer(model, key)
    return per_model[key]


def _find_default_cam_layer(model: nn.Module, input_shape: tuple[int, int, int] | None) -> str:
    convs = conv_layer_names(model)
    if not convs and input_shape is not None:
        return _last_functional_map(model, input_shape)
    if not convs:
        raise ValueError("this model has no convolution layer")
    if input_shape is None:
        return convs[-1]
    shapes = executed_output_shapes(model, input_shape)
    conv_names = set(convs)
    # every call of every conv, in execution order: a conv used twice is last at its second call (``name#2``)
    executed = [n for n in shapes if parse_call(n).module in conv_names and len(shapes[n]) == 4]
    spatial = [n for n in executed if shapes[n][2] * shapes[n][3] > 1] or executed or convs
    best = spatial[-1]
    size = shapes.get(best, (0, 0, 0, 0))[2:]
    calls = list(shapes)  # in the order the calls end: a call's enclosing call ends after it
    parts = parse_call(best).module.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:cut])
        # the parent's call that encloses ``best``: the first of its calls to end after it (a block used twice
        # encloses its conv's second call in its own second call)
        start = calls.index(best) if best in shapes else 0
        enclosing = next((c for c in calls[start + 1:] if parse_call(c).module == parent), None)
        out = shapes.get(enclosing) if enclosing is not None else None
        if out is None or len(out) != 4 or out[2:] != size:
            break
        best = enclosing
    return best


def _last_functional_map(model: nn.Module, input_shape: tuple[int, int, int]) -> str:
    """A network without conv modules (``F.conv2d`` on its own parameters): its last functional convolution
    with a spatial map, else its last functional call with one."""
    device, dtype = model_device_dtype(model)
    with hooked(model, evaluate=True):  # as above: zeros must not reach a training model's BatchNorm statistics
        calls = run_pass(model, torch.zeros(1, *input_shape, device=device, dtype=dtype), record=[],
                         list_calls=True).calls
    spatial = [c for c in calls if c.is_function and c.shape and len(c.shape) == 3 and c.shape[1] * c.shape[2] > 1]
    convs = [c for c in spatial if c.module_type.startswith("conv")]
    if not (convs or spatial):
        raise ValueError("this model has no convolution layer and no spatial map")
    return (convs or spatial)[-1].name
