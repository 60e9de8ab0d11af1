"""Building a training run's network: seeded initial weights, the teaching toggles, pretrained backbones.

:func:`build_seeded` draws the initial weights under a locked, seeded fork of torch's global generator (see
``explorer.training.loop`` on reproducibility). :func:`model_options` says which toggles a network offers and
:func:`toggles_of` splits them into builder arguments and surgery after building. The network itself is
built by :func:`explorer.models.run_build.construct_network`, the same code that rebuilds a saved run.
"""
from __future__ import annotations

import functools
import inspect

import torch
import torch.nn as nn

from explorer.models import IMAGENET_MEAN, IMAGENET_STD, ModelRef, build_model, get_entry, load_model, natural_input_shape
from explorer.models import BATCH_NORMS, seeded
from explorer.training.config import TrainConfig

# --- building the network ----------------------------------------------------------------------------------


def build_seeded(seed: int, make, attempts: int = 3) -> tuple[nn.Module, bool]:
    """``make()`` under :func:`seeded`, built twice and compared: (model, True when both builds agree).

    The lock keeps this module's runs apart (their training draws only from per-run generators), but
    other code may reseed or draw from torch's global generator meanwhile (a page building a model or
    sampling augmentations) and shift the initial weights. Two identical builds mean such a draw almost
    surely did not come in between; otherwise build again, and after ``attempts`` say so (False) rather
    than fail. (A best effort: interference that hits both builds identically cannot be seen.)
    """
    model = None
    for _ in range(attempts):
        with seeded(seed):
            model = make()
        with seeded(seed):
            twin = make()
        twin_state = twin.state_dict()
        if all(torch.equal(v, twin_state[k]) for k, v in model.state_dict().items()):
            return model, True
    return model, False


def _native_options(model: str) -> set[str]:
    """The toggles the model's builder takes itself (``mnist_cnn(batch_norm=..., dropout=...)``)."""
    ref = ModelRef.parse(model)
    if ref.kind != "registry":
        return set()
    return {"batch_norm", "dropout"} & set(inspect.signature(get_entry(ref.value).builder).parameters)


@functools.lru_cache(maxsize=32)
def model_options(model: str) -> frozenset[str]:
    """The teaching toggles available for ``model``: ``dropout`` always (before the classifier), and
    ``batch_norm`` when the network has BatchNorm layers to switch off (or its builder takes the switch)."""
    native = _native_options(model)
    has_bn = "batch_norm" in native or any(isinstance(m, BATCH_NORMS) for m in build_model(model).modules())
    return frozenset({"dropout"} | ({"batch_norm"} if has_bn else set()))


def toggles_of(config: TrainConfig) -> tuple[dict, dict]:
    """(builder keyword arguments, surgery after building) for the BatchNorm/Dropout toggles.

    In the transfer modes the network is a pretrained copy, built without arguments: every toggle is surgery on it,
    so the run trains (and its ``config.json`` rebuilds) the network the config describes."""
    native = _native_options(config.model) if config.mode == "scratch" else set()
    kwargs, surgery = {}, {}
    for option in ("batch_norm", "dropout"):
        value = getattr(config, option)
        if value is None:
            continue
        if option == "batch_norm" and option not in model_options(config.model):
            raise ValueError(f"{config.model} has no BatchNorm layers to switch")
        (kwargs if option in native else surgery)[option] = value
    return kwargs, surgery


def natural_shape(model: str) -> tuple[int, int, int]:
    return tuple(natural_input_shape(model))  # type: ignore[return-value]


Normalization = tuple[tuple[float, ...], tuple[float, ...]]


def load_pretrained(name: str) -> tuple[nn.Module | None, str, Normalization | None]:
    """(a fresh copy of the model with its pretrained weights, "", the (mean, std) those weights were trained
    with), or (None, why not, None).

    The built-in teaching weights (``explorer.models.builtin``) were trained on their own data's statistics,
    which their JSON records; torchvision's (and every other download) on ImageNet's.
    """
    if ModelRef.parse(name).kind != "registry":
        return None, "custom networks have no pretrained weights", None
    loaded = load_model(name, weights="pretrained", device="cpu")
    if not loaded.pretrained:
        return None, loaded.weights_status, None
    mean, std = loaded.normalization
    if loaded.weights_kind == "builtin" and mean is not None and std is not None:
        normalization: Normalization = (tuple(mean), tuple(std))
    else:
        normalization = (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD))
    model = loaded.model
    if getattr(model, "AuxLogits", None) is not None:
        # torchvision's pretrained Inception-v3 keeps its auxiliary head, its random-init builder here does
        # not: drop it so that the run's checkpoint fits the network load_run rebuilds.
        model.AuxLogits = None
        model.aux_logits = False
    return model, "", normalization


def check_forward(model: nn.Module, shape: tuple[int, int, int], name: str) -> None:
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape))
    except Exception as exc:
        raise ValueError(f"{name} cannot take {shape[0]}×{shape[1]}×{shape[2]} inputs ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); choose another image size") from exc


QUICK_SIZES = (64, 96, 128)


def suggested_image_size(model: str) -> int:
    """A training size that keeps CPU runs short: the natural size when it is at most 64, else the first of
    ``QUICK_SIZES`` the network accepts (global pooling makes most accept any), else the natural size."""
    channels, natural, _ = natural_shape(model)
    if natural <= QUICK_SIZES[0]:
        return natural
    net = build_model(model)
    for size in QUICK_SIZES:
        try:
            check_forward(net, (channels, size, size), model)
            return size
        except ValueError:
            continue
    return natural
