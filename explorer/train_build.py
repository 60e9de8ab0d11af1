"""Building a training run's network: seeded initial weights, the teaching toggles, pretrained backbones.

:func:`build_seeded` draws the initial weights under a locked, seeded fork of torch's global generator (see
``explorer.training`` on reproducibility). :func:`model_options` says which toggles a network offers;
``_toggles`` and ``_apply_surgery`` switch BatchNorm layers off or put dropout before the classifier.
``_construct`` builds the network with the run's head (or adapts a pretrained one), and
:func:`build_run_model` rebuilds a saved run's network from its ``config.json``.
"""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from explorer.transfer import find_head, replace_head

if TYPE_CHECKING:
    from explorer.training import TrainConfig

# --- building the network ----------------------------------------------------------------------------------


_INIT_LOCK = threading.Lock()


@contextmanager
def seeded(seed: int):
    """Run the block with torch's global CPU generator seeded to ``seed``, then restore it.

    Held under a lock: the global generator is one per process, and two runs initialising at once would
    otherwise interleave their draws.
    """
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


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


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _native_options(model: str) -> set[str]:
    """The toggles the model's builder takes itself (``mnist_cnn(batch_norm=..., dropout=...)``)."""
    import inspect

    if model.startswith("arch:"):
        return set()
    from explorer.models import get_entry

    return {"batch_norm", "dropout"} & set(inspect.signature(get_entry(model).builder).parameters)


@functools.lru_cache(maxsize=32)
def model_options(model: str) -> frozenset[str]:
    """The teaching toggles available for ``model``: ``dropout`` always (before the classifier), and
    ``batch_norm`` when the network has BatchNorm layers to switch off (or its builder takes the switch)."""
    from explorer.models import build_model

    native = _native_options(model)
    has_bn = "batch_norm" in native or any(isinstance(m, _BATCH_NORMS) for m in build_model(model).modules())
    return frozenset({"dropout"} | ({"batch_norm"} if has_bn else set()))


def _toggles(config: TrainConfig) -> tuple[dict, dict]:
    """(builder keyword arguments, surgery after building) for the BatchNorm/Dropout toggles."""
    native = _native_options(config.model)
    kwargs, surgery = {}, {}
    for option in ("batch_norm", "dropout"):
        value = getattr(config, option)
        if value is None:
            continue
        if option == "batch_norm" and option not in model_options(config.model):
            raise ValueError(f"{config.model} has no BatchNorm layers to switch")
        (kwargs if option in native else surgery)[option] = value
    return kwargs, surgery


def _apply_surgery(model: nn.Module, surgery: dict) -> None:
    """BatchNorm off: every BatchNorm layer becomes an identity. Dropout p: a dropout layer is put in
    front of the classifier head (``fc`` becomes ``Sequential(Dropout(p), fc)``)."""
    if surgery.get("batch_norm") is False:
        for parent in model.modules():
            for child_name, child in parent.named_children():
                if isinstance(child, _BATCH_NORMS):
                    setattr(parent, child_name, nn.Identity())
    if surgery.get("dropout"):
        head = find_head(model)
        parent_name, _, child = head.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Sequential(nn.Dropout(surgery["dropout"]), getattr(parent, child)))


def natural_shape(model: str) -> tuple[int, int, int]:
    from explorer.models import natural_input_shape

    return tuple(natural_input_shape(model))  # type: ignore[return-value]


def _construct(name: str, num_classes: int, build: dict, base: nn.Module | None = None) -> nn.Module:
    """Build the run's network (random init unless ``base`` is given). Call under :func:`seeded`."""
    kwargs = dict(build.get("kwargs", {}))
    if build["head"] == "builder":
        from explorer.models import get_entry

        model = get_entry(name).builder(num_classes=num_classes, **kwargs)
    else:
        if base is None:
            if name.startswith("arch:"):
                from explorer.archparse import build_arch

                base, _ = build_arch(name[len("arch:"):])
            else:
                from explorer.models import get_entry

                base = get_entry(name).builder(**kwargs)
        model = base
        replace_head(model, num_classes)
    _apply_surgery(model, build.get("surgery", {}))
    for attr, value in build.get("attrs", {}).items():
        setattr(model, attr, value)
    return model


def build_run_model(config: dict) -> nn.Module:
    """The network described by a run's ``config.json`` (random weights: the checkpoint supplies them)."""
    with seeded(int(config.get("seed", 0))):
        return _construct(config["model"], len(config["categories"]), config["build"]).eval()


def _load_pretrained(name: str) -> tuple[nn.Module | None, str]:
    """A fresh copy of the model with ImageNet weights, or (None, why not)."""
    if name.startswith("arch:"):
        return None, "custom networks have no pretrained weights"
    from explorer.models import load_model

    loaded = load_model(name, weights="pretrained", device="cpu")
    if not loaded.pretrained:
        return None, loaded.weights_status
    model = loaded.model
    if getattr(model, "AuxLogits", None) is not None:
        # torchvision's pretrained Inception-v3 keeps its auxiliary head, its random-init builder here does
        # not: drop it so that the run's checkpoint fits the network load_run rebuilds.
        model.AuxLogits = None
        model.aux_logits = False
    return model, ""


def _check_forward(model: nn.Module, shape: tuple[int, int, int], name: str) -> None:
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
    from explorer.models import build_model

    channels, natural, _ = natural_shape(model)
    if natural <= QUICK_SIZES[0]:
        return natural
    net = build_model(model)
    for size in QUICK_SIZES:
        try:
            _check_forward(net, (channels, size, size), model)
            return size
        except ValueError:
            continue
    return natural
