"""Trained weights that ship inside the repository, for the teaching networks: meaningful with no internet.

``scripts/train_teaching.py`` trains ``tiny_vgg`` on the built-in colour shapes and ``mnist_cnn`` and ``lenet5``
on scikit-learn's real handwritten digits with the project's own training code (``explorer.training``), seeded,
and writes two small files per network into ``explorer/models/weights/``: ``<name>.pt`` (the ``state_dict``)
and ``<name>.json`` (dataset, class names, test accuracy, normalisation, input shape, the training recipe).
``load_model(name)`` with the default ``weights="pretrained"`` loads them (``weights_kind`` "builtin").
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from explorer.models.catalog import get_entry
from explorer.models.checkpoints import atomic_write
from explorer.models.ref import ModelRef

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class BuiltinWeights:
    """One network's built-in trained weights, described by its JSON file."""

    model: str
    dataset: str  # "shapes" | "digits": what it was trained on (also the kind of sample it knows)
    classes: tuple[str, ...]
    test_accuracy: float  # on the held-out test split, as printed by scripts/train_teaching.py
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_shape: tuple[int, int, int]
    path: Path  # the state_dict file
    sha256: str  # of the state_dict file (the cache key of the loaded model)
    recipe: dict = field(default_factory=dict, compare=False)  # the TrainConfig it was trained with

    @property
    def detail(self) -> str:
        """A short, language-neutral description: ``shapes · 98.6 %`` (dataset and test accuracy)."""
        return f"{self.dataset} · {100 * self.test_accuracy:.1f} %"


def weights_path(name: str, folder: Path | None = None) -> Path:
    return (folder or WEIGHTS_DIR) / f"{name}.pt"


def meta_path(name: str, folder: Path | None = None) -> Path:
    return (folder or WEIGHTS_DIR) / f"{name}.json"


@lru_cache(maxsize=32)
def _read(name: str, folder: Path, stamp: tuple[float, float]) -> BuiltinWeights | None:
    meta = json.loads(meta_path(name, folder).read_text(encoding="utf-8"))
    path = weights_path(name, folder)
    return BuiltinWeights(model=name, dataset=str(meta["dataset"]), classes=tuple(meta["classes"]),
                          test_accuracy=float(meta["test_accuracy"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]),
                          input_shape=tuple(int(v) for v in meta["input_shape"]), path=path,
                          sha256=hashlib.sha256(path.read_bytes()).hexdigest(), recipe=dict(meta.get("recipe", {})))


def builtin_weights(name: str, folder: Path | None = None) -> BuiltinWeights | None:
    """The built-in trained weights of registry model ``name``, or None when it has none."""
    folder = folder or WEIGHTS_DIR
    meta, path = meta_path(name, folder), weights_path(name, folder)
    if not (meta.is_file() and path.is_file()):
        return None
    # Keyed on the files' times: regenerated weights are read again, unchanged ones only once.
    return _read(name, folder, (meta.stat().st_mtime, path.stat().st_mtime))


def builtin_damage(path: Path, exc: BaseException) -> str:
    """One plain line on why a built-in weights file did not load, for the person running the server (nobody
    uploaded anything): which file, and what it looks like instead of the weights."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(64)
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        return f"the built-in weights file {path} cannot be read ({err.strerror or type(err).__name__})"
    if head.startswith(b"version https://git-lfs"):
        what = "a Git LFS pointer, not the weights (the repository was copied without `git lfs pull`)"
    elif size == 0:
        what = "empty"
    elif not is_zip:
        what = "not a complete PyTorch file (cut short while copying, or a disk error?)"
    else:  # a whole file that does not hold this network's weights
        what = f"not this network's weights ({str(exc).split(';')[0][:160]})"
    return f"the built-in weights file {path} ({size} bytes) is damaged: {what}"


def builtin_weight_names(folder: Path | None = None) -> list[str]:
    """Every model with built-in trained weights."""
    folder = folder or WEIGHTS_DIR
    return sorted(p.stem for p in folder.glob("*.json") if weights_path(p.stem, folder).is_file())


def write_builtin_weights(name: str, state: dict[str, torch.Tensor], meta: dict[str, Any],
                          folder: Path | None = None) -> Path:
    """Save ``state`` (as float32 CPU tensors) and ``meta`` atomically as ``<name>.pt`` and ``<name>.json``."""
    folder = folder or WEIGHTS_DIR
    plain = {k: (v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in state.items()}
    atomic_write(weights_path(name, folder), lambda fh: torch.save(plain, fh))
    text = json.dumps(meta, indent=1, ensure_ascii=False) + "\n"
    atomic_write(meta_path(name, folder), lambda fh: fh.write(text), binary=False)
    for path in (weights_path(name, folder), meta_path(name, folder)):
        path.chmod(0o644)  # files of the repository, readable by everyone (temporary files are private)
    return weights_path(name, folder)


def weights_choices(name: str) -> tuple[str, ...]:
    """The trained weights that exist for a model: ``("builtin",)`` for a teaching network with weights in the
    repository, ``("pretrained",)`` where torchvision has ImageNet weights, ``()`` otherwise (a network typed on
    the Build page, a paper network without weights). Run folders carry their own and are not asked."""
    ref = ModelRef.parse(name)
    if ref.kind != "registry":
        return ()
    if builtin_weights(ref.value) is not None:
        return ("builtin",)
    return ("pretrained",) if get_entry(ref.value).weights_enum is not None else ()


def trained_dataset(name: str) -> str:
    """What a model's trained weights know, without loading them: "shapes"/"digits" (built-in), "imagenet", or ""."""
    choices = weights_choices(name)
    if "builtin" in choices:
        return builtin_weights(ModelRef.parse(name).value).dataset
    return "imagenet" if "pretrained" in choices else ""
