"""The user's photos as a :class:`~explorer.data.bundle.DataBundle`: a folder of class folders, split 7:2:1
(or already split into train/valid/test), decoded once at the model's size."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from explorer.data.bundle import DataBundle, ImageTensors, channel_stats
from explorer.data.splits import SPLITS, Skipped, scan_image_folder, split_image_folder
from explorer.imaging import ImageLoadError, channel_planes, load_image

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
    images = np.empty((len(files), channels, size, size), dtype=np.uint8)
    labels = []
    kept = 0
    for path, label in files:
        try:
            img = load_image(path)
        except ImageLoadError as exc:
            skipped.append(Skipped(str(path), str(exc)))
            continue
        # The same resize the app's inference transform (explorer.imaging.images.basic_transform) applies.
        images[kept] = channel_planes(img, channels, (size, size))
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
        raise ValueError("extract the zip first (explorer.data.datasets.extract_zip)")
    presplit = _presplit_folders(root) if root.is_dir() else None
    skipped: list[Skipped] = []
    if presplit:
        scans = {split: scan_image_folder(path, check=False) for split, path in presplit.items()}
        classes = sorted(set().union(*(s.classes for s in scans.values())))
        # A class without training images, whether its train/ folder is empty or missing (only in valid/ or
        # test/), is reported alike: the network never learns it.
        named = set(classes).union(*(s.empty_classes for s in scans.values()))
        empty = sorted(named - set(scans["train"].classes))
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


