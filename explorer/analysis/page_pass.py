"""The one pass behind the Feature-map and Grad-CAM pages, as plain numpy that a cache can share.

The app caches it per (model, weights, input, device, image) and derives every redraw from it; the benchmark
times exactly this function, so what is measured is what the pages run.
"""
from __future__ import annotations

from typing import Any

from PIL import Image

from explorer.analysis.host_arrays import HostActivations
from explorer.analysis.layers import default_cam_layer
from explorer.analysis.shared_pass import analyze
from explorer.imaging import input_picture
from explorer.models import LoadedModel

# Activations kept by one pass; later layers of bigger networks (efficientnet_b7 at 600x600 records ~4 GB)
# are captured on demand, one pass per layer, when picked.
ANALYSIS_BUDGET_BYTES = 256 * 2**20


def page_analysis(loaded: LoadedModel, image: Image.Image, max_bytes: int | None = ANALYSIS_BUDGET_BYTES) -> dict[str, Any]:
    """The shared pass, uncached: every call's output (and activation inputs) as float32 numpy without
    the batch dimension (a :class:`HostActivations` mapping: copied from the device layer by layer, when read), calls, probabilities, Grad-CAM of the default layer for the top-1 class, the
    input picture and the first conv's weights. Arrays seen twice (a block's output is its last
    layer's) are one object, so the cache stores them once."""
    x = loaded.preprocess(image)
    default_layer = default_cam_layer(loaded.model, tuple(loaded.input_shape))
    # Grad-CAM of the default layer only: every other layer's map would need the gradient through the whole
    # network (2.1-2.8x a forward instead of ~1.1x); the Grad-CAM page asks for those in its own cached pass.
    # Recorded tensors stay on the model's device; a layer is copied to the host when a page first draws it.
    result = analyze(loaded.model, x, default_layer, layers=None, cam_all=False, max_bytes=max_bytes, on_device=True)
    activations = HostActivations(result.activations)
    first_conv = next((c for c in result.calls if c.is_conv), None)
    filters = None
    if first_conv is not None:
        weight = getattr(loaded.model.get_submodule(first_conv.module), "weight", None)
        if weight is not None and weight.dim() == 4:
            filters = weight.detach().float().cpu().numpy()
    return {
        # A shallow copy per call: its fields are str, int, bool and tuples (``asdict`` deep-copies: ~5 ms).
        "calls": [dict(vars(c)) for c in result.calls],
        "activations": activations,
        "probabilities": result.probabilities,
        "top1": result.target,
        "cams": result.cam_raw,
        "default_layer": default_layer,
        "picture": input_picture(x, *loaded.normalization),  # undone exactly: the colours the network saw
        "first_conv": first_conv.name if first_conv else None,
        "filters": filters,
        "skipped": result.skipped,
    }
