"""CNN Architecture Explorer: the library behind the Streamlit app (no Streamlit imports here).

The public face, importable from ``explorer`` itself (``from explorer import load_model, layer_table``). Names
are loaded on first use, so ``import explorer`` (and the CLI's ``--help``) does not import torch.

Packages, by concern: ``core`` (device, locks, translations, byte-budget cache), ``models`` (registry, model
references, loading, checkpoints, typed architectures, run folders), ``imaging`` (images, filters, augmentation,
drawing), ``analysis`` (layer calls, hooks, activations, attribution, shapes), ``receptive`` (receptive fields,
conv arithmetic), ``data`` (datasets), ``training`` (the training lab), ``history`` (comparisons, the papers'
tables), ``devtools`` (benchmarks, app-server helpers). ``commands`` holds the CLI's sub-commands.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# public name -> the package that defines it
_PUBLIC = {
    "ModelRef": "models", "LoadedModel": "models", "list_models": "models", "get_entry": "models",
    "build_model": "models", "get_model": "models", "load_model": "models", "register_model": "models", "natural_input_shape": "models",
    "list_runs": "models", "load_run": "models", "CheckpointError": "models",
    "load_image": "imaging", "sample_image": "imaging", "ImageLoadError": "imaging", "SAMPLES": "imaging",
    "layer_table": "analysis", "model_totals": "analysis", "capture": "analysis", "callable_layers": "analysis",
    "analyze": "analysis", "predict": "analysis", "grad_cam": "analysis", "attribute": "analysis",
    "default_cam_layer": "analysis", "page_analysis": "analysis", "hooked": "core",
    "receptive_field_table": "receptive", "effective_receptive_field": "receptive", "conv_arithmetic": "receptive",
    "compare_stack": "receptive",
    "load_dataset": "data", "TrainConfig": "training", "train": "training", "run_training": "training",
    "compare_models": "history", "pick_device": "core", "model_lock": "core",
}
# names whose module is a namespace inside a package
_FROM_MODULE = {"convolve": "explorer.imaging.filters", "correlate": "explorer.imaging.filters",
                "apply_filter": "explorer.imaging.filters", "kernel_for": "explorer.imaging.filters"}

__all__ = sorted([*_PUBLIC, *_FROM_MODULE])


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module = importlib.import_module(f"explorer.{_PUBLIC[name]}")
    elif name in _FROM_MODULE:
        module = importlib.import_module(_FROM_MODULE[name])
    else:
        raise AttributeError(f"module 'explorer' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
