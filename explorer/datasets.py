"""Datasets for the training lab: built-in synthetic shapes, torchvision sets, and the user's own photos.

Every dataset ends up as in-memory ``uint8`` tensors ``[N, C, H, W]`` at exactly the size the model takes
(``ImageTensors``), grouped in a ``DataBundle`` with its class names and normalisation. Small tensors make
the training loop a pair of index operations per batch (no per-image decoding, no worker processes on a
2-core machine) and make runs reproducible: the order and the augmentation come from the run's own
``torch.Generator``, not from a DataLoader's workers.

:func:`load_dataset` is the one entry point. The parts live beside this module: ``explorer.torchvision_data``
(MNIST, Fashion-MNIST, CIFAR-10, with a fast offline check), ``explorer.splits`` (the 7:2:1 split of a folder
of class folders) and ``explorer.zips`` (safe extraction of an uploaded zip). Safety rules for user data
live there: ``extract_zip`` refuses archives that would write outside their folder, links, and zip bombs;
``split_image_folder`` reports empty classes and unreadable files instead of failing on them. Both stay
importable from here (``explorer.datasets.extract_zip``, ``explorer.datasets.split_image_folder``).
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from explorer.splits import SPLITS, Skipped, scan_image_folder, split_counts, split_image_folder
from explorer.zips import extract_zip

# --- containers ------------------------------------------------------------------------------------------


@dataclass
class ImageTensors:
    """One split held in memory: ``images`` uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("images must be a uint8 tensor [N, C, H, W]")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must hold one class index per image")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()


@dataclass
class DataBundle:
    """A dataset ready to train on: three splits at one size, class names and per-channel statistics."""

    name: str
    classes: list[str]
    train: ImageTensors
    valid: ImageTensors
    test: ImageTensors
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip_ok: bool = True  # a mirrored image keeps its class (false for digits)
    empty_classes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def counts(self) -> dict[str, dict[str, int]]:
        """split → class → number of images."""
        out = {}
        for split in ("train", "valid", "test"):
            per_class = getattr(self, split).class_counts(self.num_classes)
            out[split] = dict(zip(self.classes, per_class))
        return out


# --- built-in synthetic shapes -----------------------------------------------------------------------------

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")
# Images in the default shapes dataset (all classes), split 7:2:1 like the course homework.
DEFAULT_SHAPES_SAMPLES = 10000


def _regular_polygon(cx: float, cy: float, radius: float, sides: int, angle: float) -> list[tuple[float, float]]:
    return [(cx + radius * math.cos(angle + 2 * math.pi * k / sides),
             cy + radius * math.sin(angle + 2 * math.pi * k / sides)) for k in range(sides)]


def _star(cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.42
        a = angle + math.pi * k / 5
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def _cross(cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    arm = radius * 0.36  # half the bar thickness
    outline = [(arm, radius), (arm, arm), (radius, arm), (radius, -arm), (arm, -arm), (arm, -radius),
               (-arm, -radius), (-arm, -arm), (-radius, -arm), (-radius, arm), (-arm, arm), (-arm, radius)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in outline]


def _luma(rgb: np.ndarray) -> float:
    # ITU-R 601, the weights PIL's convert("L") uses: 1-channel models must still see the shape.
    return float(rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114)


def render_shape(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """Draw one ``SHAPE_CLASSES[label]`` at a random place, size, angle and colour on a noisy background."""
    # Draw large and downsample so small images get anti-aliased edges (cheap at the sizes we train on).
    scale = max(1, min(4, 128 // max(size, 1)))
    big = size * scale
    background = rng.uniform(0, 255, 3)
    while True:  # a shape colour whose brightness differs clearly from the background's
        colour = rng.uniform(0, 255, 3)
        if abs(_luma(colour) - _luma(background)) >= 70:
            break
    img = Image.new("RGB", (big, big), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(img)
    radius = rng.uniform(0.22, 0.42) * big  # 44–84 % of the image across
    cx, cy = (rng.uniform(radius, big - radius) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    fill = tuple(int(v) for v in colour)
    name = SHAPE_CLASSES[label]
    if name == "circle":
        r = radius * 0.85
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif name == "square":
        draw.polygon(_regular_polygon(cx, cy, radius * 0.95, 4, angle), fill=fill)
    elif name == "triangle":
        draw.polygon(_regular_polygon(cx, cy, radius, 3, angle), fill=fill)
    elif name == "cross":
        draw.polygon(_cross(cx, cy, radius, angle), fill=fill)
    elif name == "star":
        draw.polygon(_star(cx, cy, radius, angle), fill=fill)
    else:  # pragma: no cover - SHAPE_CLASSES and this switch change together
        raise ValueError(name)
    if scale > 1:
        img = img.resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(img, dtype=np.float32)
    noise = rng.normal(0.0, 14.0, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")


def make_shapes(count: int, channels: int = 3, size: int = 64, seed: int = 0,
                num_classes: int = len(SHAPE_CLASSES)) -> ImageTensors:
    """``count`` shape images with balanced labels, identical for identical arguments."""
    if not 2 <= num_classes <= len(SHAPE_CLASSES):
        raise ValueError(f"the shapes dataset has 2 to {len(SHAPE_CLASSES)} classes")
    if channels not in (1, 3):
        raise ValueError("shapes are generated with 1 or 3 channels")
    if size < 8:
        raise ValueError("shapes need at least 8×8 pixels")
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % num_classes
    rng.shuffle(labels)
    images = np.empty((count, channels, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        img = render_shape(int(label), size, rng)
        if channels == 1:
            images[i, 0] = np.asarray(img.convert("L"))
        else:
            images[i] = np.asarray(img).transpose(2, 0, 1)
    return ImageTensors(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def load_shapes(channels: int = 3, size: int = 64, seed: int = 0, samples: int = DEFAULT_SHAPES_SAMPLES,
                ratios: Sequence[float] = (0.7, 0.2, 0.1), num_classes: int = len(SHAPE_CLASSES)) -> DataBundle:
    """The built-in dataset: ``samples`` images split by ``ratios``; each split drawn from its own seed."""
    n_train, n_valid, n_test = split_counts(samples, ratios)
    # Distinct streams per split: no image is shared between train, valid and test.
    parts = [make_shapes(n, channels, size, seed * 1000 + offset, num_classes)
             for offset, n in ((1, n_train), (2, n_valid), (3, n_test))]
    mean, std = channel_stats(parts[0].images)
    return DataBundle("shapes", list(SHAPE_CLASSES[:num_classes]), *parts, mean=mean, std=std, flip_ok=True)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale (computed on the training split)."""
    x = images[: 20000].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


# --- the built-in datasets, and where data are kept ----------------------------------------------------

TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar10")
BUILTIN_DATASETS = ("shapes",) + TORCHVISION_DATASETS
_DISPLAY = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def data_root() -> Path:
    """Where torchvision datasets and extracted uploads are kept (``EXPLORER_DATA_DIR`` overrides)."""
    return Path(os.environ.get("EXPLORER_DATA_DIR") or Path.home() / ".cache" / "cnn-explorer" / "data")


# --- the user's photos, as tensors ---------------------------------------------------------------------

_SPLIT_ALIASES = {"train": ("train", "training"), "valid": ("valid", "val", "validation"), "test": ("test",)}


def _presplit_folders(root: Path) -> dict[str, Path] | None:
    """``{"train": ..., "valid": ..., "test": ...}`` if ``root`` is already split into those folders."""
    found = {}
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    for split, aliases in _SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in children:
                found[split] = children[alias]
                break
    return found if len(found) == 3 else None


def _decode_files(files: list[tuple[Path, int]], channels: int, size: int,
                  skipped: list[Skipped]) -> ImageTensors:
    from explorer.images import ImageLoadError, load_image, to_channels

    images = np.empty((len(files), channels, size, size), dtype=np.uint8)
    labels = []
    kept = 0
    for path, label in files:
        try:
            img = load_image(path)
        except ImageLoadError as exc:
            skipped.append(Skipped(str(path), str(exc)))
            continue
        # The same resize the app's inference transform (explorer.images.basic_transform) applies.
        arr = np.asarray(to_channels(img, channels).resize((size, size), Image.Resampling.BILINEAR))
        images[kept] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        labels.append(label)
        kept += 1
    return ImageTensors(torch.from_numpy(images[:kept].copy()), torch.tensor(labels, dtype=torch.int64))


MAX_FOLDER_BYTES = 2 * 1024**3


def load_image_folder(src: str | Path, channels: int, size: int, ratios: Sequence[float] = (0.7, 0.2, 0.1),
                      seed: int = 0, max_bytes: int = MAX_FOLDER_BYTES) -> DataBundle:
    """The user's photos as a DataBundle: ``src/<class>/*`` split by ``split_image_folder``, or
    ``src/train|valid|test/<class>/*`` used as it is. Images are decoded once at the model's size."""
    root = Path(src)
    if root.is_file() and zipfile.is_zipfile(root):
        raise ValueError("extract the zip first (explorer.datasets.extract_zip)")
    presplit = _presplit_folders(root) if root.is_dir() else None
    skipped: list[Skipped] = []
    if presplit:
        scans = {split: scan_image_folder(path, check=False) for split, path in presplit.items()}
        classes = sorted(set().union(*(s.classes for s in scans.values())))
        empty = sorted(set().union(*(s.empty_classes for s in scans.values())) - set(scans["train"].classes))
        per_split = {split: s.classes for split, s in scans.items()}
        for s in scans.values():
            skipped.extend(s.skipped)
    else:
        split = split_image_folder(root, ratios=ratios, seed=seed, check=False)
        classes, empty, per_split = split.classes, split.empty_classes, dict(split)
        skipped.extend(split.skipped)
    if len(classes) < 2:
        raise ValueError(f"{root} needs at least two class folders with images (found {len(classes)})")
    total = sum(len(files) for per_class in per_split.values() for files in per_class.values())
    if total * channels * size * size > max_bytes:
        raise ValueError(f"{total} images at {channels}×{size}×{size} need more than "
                         f"{max_bytes // 2**20} MB of memory: choose a smaller image size")
    index = {name: i for i, name in enumerate(classes)}
    tensors = {}
    for split_name in SPLITS:
        files = [(path, index[name]) for name, paths in sorted(per_split.get(split_name, {}).items())
                 for path in paths]
        tensors[split_name] = _decode_files(files, channels, size, skipped)
    if len(tensors["train"]) == 0:
        raise ValueError(f"no readable training images in {root}")
    mean, std = channel_stats(tensors["train"].images)
    return DataBundle(root.name, classes, tensors["train"], tensors["valid"], tensors["test"], mean=mean, std=std,
                      flip_ok=True, empty_classes=empty, skipped=skipped)


# --- one entry point ---------------------------------------------------------------------------------------


def load_dataset(name_or_path: str | Path, channels: int, size: int, seed: int = 0,
                 samples: int = DEFAULT_SHAPES_SAMPLES, ratios: Sequence[float] = (0.7, 0.2, 0.1),
                 max_train_samples: int | None = None) -> DataBundle:
    """``shapes`` | ``mnist`` | ``fashion_mnist`` | ``cifar10`` | a folder path | a ``.zip`` path."""
    name = str(name_or_path)
    if name == "shapes":
        return load_shapes(channels, size, seed=seed, samples=samples, ratios=ratios)
    if name in TORCHVISION_DATASETS:
        from explorer.torchvision_data import load_torchvision  # it builds on this module

        return load_torchvision(name, channels, size, seed=seed, max_train_samples=max_train_samples)
    path = Path(name).expanduser()
    if path.is_file() and zipfile.is_zipfile(path):
        import hashlib

        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        folder = data_root() / "uploads" / digest
        if not folder.is_dir():
            extract_zip(path, folder)
        path = folder
    if path.is_dir():
        return load_image_folder(path, channels, size, ratios=ratios, seed=seed)
    raise ValueError(f"unknown dataset {name!r}: use {', '.join(BUILTIN_DATASETS)}, a folder of class "
                     "folders, or a .zip of one")


def dataset_label(name_or_path: str) -> str:
    """A short display name: "MNIST", "shapes", or the folder's name."""
    return _DISPLAY.get(name_or_path, "shapes" if name_or_path == "shapes" else Path(name_or_path).name)
