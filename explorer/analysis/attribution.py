"""Where the network looks: Grad-CAM and other attributions through captum, safe on a shared model.

Every function returns an (H, W) float32 map at the input's spatial size, scaled to [0, 1].

Shared models: everything runs under ``explorer.core.hooked(model, evaluate=True)`` (the model's lock; eval mode
while it runs, modes and grad flags restored: a model left in training mode is explained as it predicts, and its
BatchNorm statistics are never updated). Guided backprop (inside
Guided Grad-CAM) registers hooks on every ``nn.ReLU`` of the model; holding the lock means no other
analysis of this project runs a forward or backward pass while they exist, and captum removes them in
``finally`` (``tests/test_attribution.py`` checks no hook is left, also after a failing call).

Layers are call names (see ``explorer.analysis.activations``): ``layer1.0.relu#2`` is the second call of a module
used twice. captum hooks *modules*, so the chosen call is routed through a private ``nn.Identity`` probe
and captum is handed the probe: it sees exactly that call, and in-place ops downstream
(``ReLU(inplace=True)``, ``out += identity``) work on captum's clone, not on the recorded activation.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from explorer.analysis.shared_pass import upsample_cam
from explorer.analysis.layer_calls import logits_of
from explorer.analysis.hooks import route_call
from explorer.core import device_of, hooked

# captum announces its ReLU hooks on every Guided Grad-CAM call; we document and test their removal.
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations", module="captum")

METHODS: tuple[str, ...] = ("guided_gradcam", "integrated_gradients", "saliency", "occlusion")
# Methods whose map depends on the chosen layer.
LAYER_METHODS: frozenset[str] = frozenset({"guided_gradcam"})


def _single_image(x: torch.Tensor, model: nn.Module, requires_grad: bool = False) -> torch.Tensor:
    """A private copy of one image on the model's device (the caller's tensor is never modified; one made under
    ``torch.inference_mode`` becomes a normal tensor, which autograd can follow)."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image [1,C,H,W], got {tuple(x.shape)}")
    with torch.inference_mode(False):
        image = x.detach().to(device_of(model))
        if image.is_inference():
            image = image.clone()
        return image.requires_grad_(requires_grad)


@contextmanager
def _gradients_on() -> Iterator[None]:
    """Grad mode on, whatever the caller's (``no_grad``, ``inference_mode``), as ``analyze`` does."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def _selected_logit(model: nn.Module, target: int | None, chosen: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A forward function returning the target logit as column 0 (target None: top-1 of the first call).

    Lets captum explain the top-1 class without a separate forward pass to find it; the choice made on
    the first call is kept for later calls (``chosen``).
    """

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        scores = logits_of(model(inputs))
        if scores.dim() != 2:
            raise ValueError(f"the model's output is not class scores [N, classes]: {tuple(scores.shape)}")
        if not chosen:
            index = int(scores[0].detach().argmax()) if target is None else int(target)
            if not 0 <= index < scores.shape[1]:
                raise ValueError(f"target class {index} is outside 0..{scores.shape[1] - 1}")
            chosen.append(index)
        return scores[:, chosen[0]: chosen[0] + 1]

    return forward


class _Logits(nn.Module):
    """The model returning plain class scores (the first tensor of a namedtuple output).

    Wrapping registers the shared model as a child of this throw-away module only; the shared model
    itself is not changed. captum's guided backprop needs a Module to find the ReLUs in.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(inputs))


def resolve_target(model: nn.Module, x: torch.Tensor, target: int | None) -> int:
    """``target`` checked against the model's classes (``ValueError`` outside them), or the top-1 class for ``x``:
    one no-grad forward pass either way (a negative index would silently explain the last classes)."""
    with hooked(model, evaluate=True), torch.no_grad():
        scores = logits_of(model(_single_image(x, model)))
    if target is None:
        return int(scores[0].argmax())
    if not 0 <= int(target) < scores.shape[1]:
        raise ValueError(f"target class {int(target)} is outside 0..{scores.shape[1] - 1}")
    return int(target)


def _spatial_probe(layer: str, probe: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """What ``route_call`` passes ``layer``'s output through: the probe captum hooks, after a check that the output
    is a map (a vector, e.g. ``fc``'s, made captum's upsampling fail with an IndexError)."""

    def through(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() != 4:
            raise ValueError(f"layer {layer!r} has no spatial output (Grad-CAM needs a [C,H,W] map)")
        return probe(tensor)

    return through


def _unit(values: torch.Tensor | np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """Non-negative map scaled to [0, 1], the top (100 - percentile) % clipped so a few pixels do not
    wash out the rest (the usual display for gradient maps)."""
    arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float32)
    arr = np.nan_to_num(np.maximum(arr, 0), nan=0.0, posinf=0.0)
    top = float(np.percentile(arr, percentile)) if arr.size else 0.0
    if top <= 0:
        top = float(arr.max()) if arr.size else 0.0
    if top <= 0:
        return np.zeros_like(arr, dtype=np.float32)
    return np.clip(arr / top, 0, 1).astype(np.float32)


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str, target: int | None = None) -> np.ndarray:
    """Grad-CAM (captum ``LayerGradCam``) of ``layer`` for class ``target`` (None: top-1).

    ReLU(sum_k mean_ij(dy/dA_k) A_k) at the layer's resolution, bilinearly upsampled to x's (H, W) and
    divided by its maximum (all zeros when nothing speaks for the class at this layer).
    """
    from captum.attr import LayerGradCam

    x = _single_image(x, model)
    probe = nn.Identity()
    chosen: list[int] = []
    with hooked(model, evaluate=True), route_call(model, layer, probe), _gradients_on():
        cam = LayerGradCam(_selected_logit(model, target, chosen), probe).attribute(
            x, target=0, relu_attributions=True
        )
    if cam.dim() != 4:
        raise ValueError(f"layer {layer!r} has no spatial output (Grad-CAM needs a [C,H,W] map)")
    return upsample_cam(cam[0, 0].detach().float().cpu(), tuple(x.shape[-2:]))


def guided_gradcam(model: nn.Module, x: torch.Tensor, layer: str, target: int | None = None) -> np.ndarray:
    """Guided Grad-CAM: guided backprop (ReLU gradients clipped at 0) times the layer's Grad-CAM, upsampled
    bilinearly to the input (as Selvaraju et al. and :func:`grad_cam`'s heatmap; captum's default is nearest).

    Only ``nn.ReLU`` modules are guided; a functional ``F.relu`` (GoogLeNet, Inception) passes plain
    gradients.
    """
    from captum.attr import GuidedGradCam

    x = _single_image(x, model, requires_grad=True)
    target = resolve_target(model, x, target)
    probe = nn.Identity()
    with hooked(model, evaluate=True), route_call(model, layer, _spatial_probe(layer, probe)), _gradients_on():
        attr = GuidedGradCam(_Logits(model), probe).attribute(x, target=target, interpolate_mode="bilinear")
    return _unit(attr[0].abs().amax(0))



def saliency(model: nn.Module, x: torch.Tensor, target: int | None = None) -> np.ndarray:
    """|d score / d pixel|, maximum over colour channels (Simonyan et al. 2014)."""
    from captum.attr import Saliency

    x = _single_image(x, model, requires_grad=True)
    chosen: list[int] = []
    with hooked(model, evaluate=True), _gradients_on():
        attr = Saliency(_selected_logit(model, target, chosen)).attribute(x, target=0, abs=True)
    return _unit(attr[0].amax(0))


def _chunks(count: int, size: int):
    for start in range(0, count, max(1, size)):
        yield range(start, min(count, start + max(1, size)))


def integrated_gradients(
    model: nn.Module, x: torch.Tensor, target: int | None = None, n_steps: int = 24, internal_batch_size: int = 1
) -> np.ndarray:
    """Integrated Gradients from the all-zero input (zeros after preprocessing: black for a network fed [0, 1] values,
    the mean colour for an ImageNet-normalised one), |.| summed over channels.

    The path integral uses Gauss-Legendre nodes (captum's default). The gradients are computed
    ``internal_batch_size`` steps at a time, each chunk under the model's lock and the lock released between
    chunks: on a shared model nobody waits for the whole attribution (resnet18 at 1024² once held the lock
    for 37 s), only for one chunk, and memory is one chunk's graph.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be 1 or more, got {n_steps}")
    x = _single_image(x, model)
    target = resolve_target(model, x, target)
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    alphas, step_sizes = (nodes + 1) / 2, weights / 2  # from [-1, 1] to the path [0, 1]
    baseline = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for chunk in _chunks(n_steps, internal_batch_size):
        alpha = torch.tensor(alphas[list(chunk)], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
        with hooked(model, evaluate=True), _gradients_on():
            batch = (baseline + alpha * (x - baseline)).requires_grad_(True)
            scores = logits_of(model(batch))
            if not 0 <= target < scores.shape[1]:
                raise ValueError(f"target class {target} is outside 0..{scores.shape[1] - 1}")
            grads = torch.autograd.grad(scores[:, target].sum(), batch)[0]
        step = torch.tensor(step_sizes[list(chunk)], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
        total += (grads.detach() * step).sum(0, keepdim=True)
    attr = total * (x - baseline)
    return _unit(attr[0].abs().sum(0))


def occlusion(
    model: nn.Module, x: torch.Tensor, target: int | None = None, window: int | None = None,
    stride: int | None = None, perturbations_per_eval: int = 1,
) -> np.ndarray:
    """How much the class score drops when a zero square hides each place (Zeiler & Fergus 2014): zero after
    preprocessing, so black for a network fed [0, 1] values and the mean colour for an ImageNet-normalised one.

    The window defaults to 1/7 of the image side and the stride to the window (about 50 forward passes).
    Each pixel gets the mean score drop of the windows that cover it (captum's ``Occlusion``: the last window of a
    row or column is clipped at the edge when the stride does not divide the rest). The passes run
    ``perturbations_per_eval`` at a time, each batch under the model's lock and the lock released between
    batches, so other users of a shared model wait for one batch at most, never for the whole map.
    """
    x = _single_image(x, model)
    target = resolve_target(model, x, target)
    _batch, channels, height, width = x.shape
    window = window or max(1, min(height, width) // 7)
    stride = stride or window
    if window > min(height, width):
        raise ValueError(f"the occlusion window ({window}) is larger than the image ({height}x{width})")
    # As captum's Occlusion: ⌈(side − window) / stride⌉ + 1 positions per axis, the last window clipped at the
    # edge, so every row and column is covered when the stride does not divide (side − window).
    def starts(side: int) -> range:
        return range(0, (-(-(side - window) // stride)) * stride + 1, stride)

    places = [(top, left) for top in starts(height) for left in starts(width)]
    with hooked(model, evaluate=True), torch.no_grad():
        scores = logits_of(model(x))
        if not 0 <= target < scores.shape[1]:
            raise ValueError(f"target class {target} is outside 0..{scores.shape[1] - 1}")
        reference = float(scores[0, target])
    drop = torch.zeros(height, width, dtype=torch.float64)
    covered = torch.zeros(height, width, dtype=torch.float64)
    for chunk in _chunks(len(places), perturbations_per_eval):
        batch = x.repeat(len(chunk), 1, 1, 1)
        for row, index in enumerate(chunk):
            top, left = places[index]
            batch[row, :, top:top + window, left:left + window] = 0.0
        with hooked(model, evaluate=True), torch.no_grad():
            occluded = logits_of(model(batch))[:, target].double().cpu()
        for row, index in enumerate(chunk):
            top, left = places[index]
            drop[top:top + window, left:left + window] += reference - float(occluded[row])
            covered[top:top + window, left:left + window] += 1
    attr = torch.where(covered > 0, drop / covered.clamp_min(1), torch.zeros_like(drop)) * channels
    return _unit(attr.float(), percentile=100.0)


def attribute(model: nn.Module, x: torch.Tensor, method: str, layer: str | None = None,
              target: int | None = None) -> np.ndarray:
    """Run one of :data:`METHODS` (``layer`` is needed by the layer methods, Guided Grad-CAM)."""
    if method == "guided_gradcam":
        if layer is None:
            raise ValueError("Guided Grad-CAM needs a layer")
        return guided_gradcam(model, x, layer, target)
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target)
    if method == "saliency":
        return saliency(model, x, target)
    if method == "occlusion":
        return occlusion(model, x, target)
    raise ValueError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")
