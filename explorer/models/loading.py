"""Build and load every model the app knows, given a :class:`~explorer.models.ref.ModelRef` (or its text).

A registry name is built by its registered builder (random, seeded weights) or with its pretrained weights;
an ``arch:`` spec by the grammar's builder; a run folder by :func:`~explorer.models.runfolder.load_run`.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from PIL import Image

from explorer.core import device_of, flat_tensors
from explorer.core import is_count, pick_device
from explorer.core import model_lock
from explorer.core import seeded_global
from explorer.imaging import InputTransform, basic_transform
from explorer.models.arch.build import build_arch
from explorer.models.arch.grammar import input_shape_of, spec_with_input
from explorer.models.builtin import builtin_damage, builtin_weights
from explorer.models.catalog import get_entry
from explorer.models.checkpoints import CheckpointError, apply_state_dict, read_state_dict
from explorer.models.hub import (adapt_torchvision_state, download_failure, download_to_cache, drop_damaged_cache_file,
                                 hash_mismatch)
from explorer.models.loaded import LoadedModel
from explorer.models.ref import ModelRef
from explorer.models.registry import ModelEntry
from explorer.models.runfolder import CHECKPOINT_FILE, load_run, read_config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 5.0
INIT_SEED = 0


def build_model(name: str | ModelRef, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a randomly initialised model in eval mode. Initialisation is seeded, so every process and
    session gets the same "random" weights (results are reproducible and comparable)."""
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ValueError(f"num_classes is the number of classes the head predicts: a whole number from 1, "
                         f"not {num_classes!r}")
    if "weights" in kwargs:  # a download inside the seeded lock would hold every other session's seeded work
        raise ValueError("build_model/get_model build random (seeded) weights; load trained ones with "
                         f"load_model({str(name)!r}, weights=...)")
    with seeded_global(INIT_SEED):  # locked: another thread's seeding or draws would change these weights
        ref = ModelRef.parse(name)
        if ref.kind == "arch":
            given = (["num_classes"] if num_classes is not None else []) + list(kwargs)
            if given:
                raise ValueError("a typed architecture (arch:) fixes its own layers, classes included: write them in "
                                 "the spec instead of passing " + ", ".join(given))
            model, _ = build_arch(ref.value)
        elif ref.kind == "registry":
            model = get_entry(ref.value).builder(num_classes=num_classes, **kwargs)
        else:
            raise ValueError(f"{ref.value} is a training run: load it with load_model")
    return model.eval()


def get_model(name: str | ModelRef, **config: Any) -> nn.Module:
    """torchvision's verb for the registry (``torchvision.models.get_model``): the network registered as ``name`` (or
    an ``arch:`` spec), randomly initialised with the seeded weights, in eval mode. ``config``: the builder's own
    arguments (``num_classes=10``). The same as :func:`build_model`; weights come with :func:`load_model`."""
    return build_model(name, **config)


def fetch_pretrained(weights: Any, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Make sure the weights file is in torch's hub cache (used as is when there), downloading with a short timeout."""
    return download_to_cache(weights, timeout)


def load_model(name: str | ModelRef, weights: str | Path | bytes | None = "pretrained", device: torch.device | str | None = None,
               input_shape: tuple[int, int, int] | None = None) -> LoadedModel:
    """Build ``name`` with the requested weights, in eval mode, on ``device`` (default: best available).

    ``weights``: "pretrained" (the built-in trained weights of a teaching network, else torchvision's ImageNet
    weights from the hub cache or a download; falls back to random init with a clear status),
    None/"none" (random init), a path to a ``state_dict`` file, or its bytes.
    """
    if input_shape is not None and not (len(tuple(input_shape)) == 3 and all(map(is_count, input_shape))):
        raise ValueError(f"input_shape is one image's (C, H, W), each at least 1; got {tuple(input_shape)!r}")
    device = pick_device() if device is None else torch.device(device)
    ref = ModelRef.parse(name)
    name = ref.key
    if ref.kind == "run":
        if weights not in (None, "none", "random", "pretrained", "run"):
            raise ValueError(f"the run {Path(ref.value).name} brings its own trained weights ({CHECKPOINT_FILE}); "
                             "other weights do not apply to it")
        return with_input_shape(load_run(ref.value, device=device), input_shape)
    if ref.kind == "arch":
        # A spec typed without an input token takes the input it is given (channels and size): "conv3-8 M FC-10"
        # at 1x28x28 gets a 1-channel first conv and an FC sized for 28×28.
        with seeded_global(INIT_SEED):
            model, natural = build_arch(spec_with_input(ref.value, input_shape))
        entry = None
        entry_categories: tuple[str, ...] | None = None
        weights_enum = None
    else:
        entry = get_entry(ref.value)
        natural, entry_categories, weights_enum = entry.input_shape, entry.categories, entry.weights_enum
        model = None
    if input_shape is not None:  # a spec that declares its input keeps it
        _check_channels(name, tuple(input_shape), tuple(natural))
    known_classes = entry.num_classes if entry is not None else None
    pretrained = False
    categories: list[str] | None = None
    builtin = builtin_weights(ref.value) if entry is not None and weights == "pretrained" else None
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    trained_on = ""
    if weights in (None, "none", "random"):
        status, key, kind, detail = "random initialisation (no trained weights)", "none", "random", ""
    elif builtin is not None:  # trained by scripts/train_teaching.py, shipped in the repository
        try:
            trained = build_model(name, num_classes=len(builtin.classes))
            apply_state_dict(trained, read_state_dict(builtin.path))
        except Exception as exc:  # a damaged file (a Git LFS pointer, a half-copied repository): random, and said so
            # The same network as weights "none" (the registry's head and input), so the key "none" holds.
            kind, detail, key = "builtin_damaged", builtin_damage(builtin.path, exc), "none"
            status = (f"random initialisation: the built-in weights could not be loaded ({detail}); results below "
                      "are from an untrained network")
        else:
            model = trained
            entry_categories, known_classes = builtin.classes, len(builtin.classes)
            categories, pretrained, trained_on = list(builtin.classes), True, builtin.dataset
            key, kind, detail = f"builtin:{builtin.sha256[:16]}", "builtin", builtin.detail
            status = f"built-in trained weights ({builtin.detail} test accuracy)"
            mean_std, weights_enum = (builtin.mean, builtin.std), None
    elif weights == "pretrained":
        if weights_enum is None:
            status, key, kind, detail = "random initialisation: this model has no pretrained weights", "none", "no_pretrained", ""
        else:
            member = weights_enum.DEFAULT
            try:
                model, not_as_published = _pretrained_model(entry, member)
                pretrained, key = True, f"pretrained:{member}"
                top1 = member.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1", "?")
                kind, detail = "pretrained", f"{member}, {top1} % top-1" + (
                    f"; {not_as_published}: not the file as published" if not_as_published else "")
                status = f"pretrained ({detail})"
                categories = list(member.meta["categories"])
                trained_on = "imagenet"
            except Exception as exc:  # offline, refused, a wrong download, an unwritable or damaged cache...
                kind, detail = download_failure(exc, member)  # one plain line, no raw exception text
                status = ("random initialisation: the ImageNet weights could not be loaded "
                          f"({detail}); results below are from an untrained network")
                key = "none"
                model = None
    else:
        if isinstance(weights, (bytes, bytearray)):
            data = bytes(weights)
        elif Path(weights).is_file():
            data = Path(weights).read_bytes()  # read once: parsed below and hashed for the cache key
        else:
            raise CheckpointError(f"{weights} is a folder, not a checkpoint file" if Path(weights).is_dir()
                                  else f"checkpoint not found: {weights}")
        state = read_state_dict(data)
        head = _num_classes_in(state, entry)
        model = model if model is not None else build_model(name, num_classes=head)
        state = adapt_torchvision_state(state, set(model.state_dict()))  # torchvision's own files fit too
        if head is not None:
            entry_categories, known_classes = None, head  # re-headed: ImageNet names no longer apply
        apply_state_dict(model, state)
        key = f"upload:{hashlib.sha256(data).hexdigest()[:16]}"
        status = "your checkpoint (loaded: every key and shape matched)"
        kind, detail = "checkpoint", ""
        categories = list(entry_categories) if entry_categories else None
        pretrained = True
    if model is None:
        model = build_model(name)
    model = model.eval().to(device)
    shape = tuple(input_shape) if input_shape else tuple(natural)
    transform = basic_transform(shape, *mean_std) if mean_std else _transform_for(shape, natural, weights_enum)
    n_out = _num_outputs(model, natural, known_classes)
    class_names = list(entry_categories) if entry_categories and len(entry_categories) == n_out else [
        f"class {i}" for i in range(n_out or 0)]
    if categories is not None and len(categories) != n_out:
        categories = None
    return LoadedModel(model=model, name=name, input_shape=shape, categories=categories, weights_status=status,
                       weights_kind=kind, weights_detail=detail,
                       weights_key=key, pretrained=pretrained, device=device, transform=transform,
                       class_names=class_names, trained_on=trained_on)


def _pretrained_model(entry: ModelEntry, member: Any) -> tuple[nn.Module, str | None]:
    """The network with its pretrained weights from the hub cache (downloaded first when missing), and None, or one
    line when the cached file loads but is not the one its name promises (a hand-saved ``state_dict``). A cached
    file that neither loads nor matches its name is deleted, so the next load fetches it again."""
    path = fetch_pretrained(member)
    try:
        with seeded_global(None):
            model = entry.builder(weights=member)
    except Exception as exc:
        drop_damaged_cache_file(path, exc)  # raises DamagedCacheFileError when it deleted the file
        raise
    try:
        wrong = hash_mismatch(path)
    except OSError:  # the file went away meanwhile: its weights are loaded all the same
        wrong = None
    return model, (f"{path.name}'s SHA-256 starts with {wrong[1]}, not {wrong[0]}" if wrong else None)


def _num_classes_in(state: dict[str, torch.Tensor], entry: ModelEntry | None) -> int | None:
    """A checkpoint's head size, so a fine-tuned 3-class ResNet loads into a 3-class model."""
    if entry is None:
        return None
    model = build_model(entry.name)
    own = model.state_dict()
    for key in reversed(list(own)):
        if key.endswith(".weight") and key in state and own[key].ndim >= 2:
            if state[key].shape[1:] == own[key].shape[1:] and state[key].shape[0] != own[key].shape[0]:
                return int(state[key].shape[0])
            return None
    return None


def _transform_for(shape: tuple[int, int, int], natural: tuple[int, int, int], weights_enum: Any):
    if weights_enum is None:
        return basic_transform(shape)
    preset = weights_enum.DEFAULT.transforms()
    if tuple(shape) == tuple(natural):
        def transform(img: Image.Image) -> torch.Tensor:
            return preset(img if img.mode == "RGB" else img.convert("RGB"))  # the preset copies anyway

        return InputTransform(transform, tuple(preset.mean), tuple(preset.std))
    return basic_transform(shape, tuple(preset.mean), tuple(preset.std))


def _num_outputs(model: nn.Module, natural: tuple[int, int, int], known: int | None) -> int:
    """How many classes the model outputs: registry metadata when it applies, else one cheap pass."""
    if known:
        return known
    device = device_of(model)
    with model_lock(model), torch.no_grad():
        out = model(torch.zeros(1, *natural, device=device))
    found = flat_tensors(out)  # a tuple or dict output: its first tensor holds the class scores (as the pages read it)
    if not found:
        raise ValueError(f"the model's output holds no tensor ({type(out).__name__}): there are no class scores to show")
    return int(found[0].shape[-1])


def with_input_shape(loaded: LoadedModel, input_shape: tuple[int, int, int] | None) -> LoadedModel:
    """The same loaded model viewed at another input size (cheap: only the transform changes)."""
    if input_shape is None or tuple(input_shape) == tuple(loaded.input_shape):
        return loaded
    _check_channels(loaded.name, tuple(input_shape), tuple(loaded.input_shape))
    # The normalisation stays what the weights were trained with, whatever their source (a run's own data
    # statistics, built-in weights' JSON, torchvision's preset): only the size changes. (A run viewed at another
    # size once lost its normalisation.)
    mean, std = loaded.normalization
    return dataclasses.replace(loaded, input_shape=tuple(input_shape),
                               transform=basic_transform(tuple(input_shape), mean, std))


def _check_channels(name: str, requested: tuple[int, ...], natural: tuple[int, ...]) -> None:
    """The first layer's weights fix the channel count: a clear refusal, not a shape error in the first pass."""
    if int(requested[0]) != int(natural[0]):
        raise ValueError(f"{name} takes {natural[0]}-channel input, not {requested[0]}-channel (requested "
                         f"{'x'.join(map(str, requested))}): its first layer's weights fix the channel count")


def natural_input_shape(name: str | ModelRef) -> tuple[int, int, int]:
    """A model's natural input shape, read from its description (nothing is built)."""
    ref = ModelRef.parse(name)
    if ref.kind == "arch":
        return input_shape_of(ref.value)
    if ref.kind == "run":
        return tuple(int(v) for v in read_config(ref.value)["input_shape"])  # type: ignore[return-value]
    return get_entry(ref.value).input_shape
