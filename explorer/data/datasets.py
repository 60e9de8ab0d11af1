"""Datasets for the training lab: built-in synthetic shapes, torchvision sets, and the user's own photos.

Every dataset ends up as in-memory ``uint8`` tensors ``[N, C, H, W]`` at exactly the size the model takes
(``ImageTensors``), grouped in a ``DataBundle`` with its class names and normalisation. Small tensors make
the training loop a pair of index operations per batch (no per-image decoding, no worker processes on a
2-core machine) and make runs reproducible: the order and the augmentation come from the run's own
``torch.Generator``, not from a DataLoader's workers.

:func:`load_dataset` is the one entry point. The parts live beside this module: ``explorer.data.torchvision_sets``
(MNIST, Fashion-MNIST, CIFAR-10, with a fast offline check), ``explorer.data.splits`` (the 7:2:1 split of a folder
of class folders) and ``explorer.data.zips`` (safe extraction of an uploaded zip). Safety rules for user data
live there: ``extract_zip`` refuses archives that would write outside their folder, links, and zip bombs;
``split_image_folder`` reports empty classes and unreadable files instead of failing on them. Both stay
importable from ``explorer.data``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path
from typing import Sequence

from explorer.data.bundle import DataBundle, data_root
from explorer.data.digits import load_digits_bundle
from explorer.data.folders import load_image_folder
from explorer.data.synthetic import DEFAULT_SHAPES_SAMPLES, load_shapes
from explorer.data.torchvision_sets import DISPLAY_NAMES, TORCHVISION_DATASETS, load_torchvision
from explorer.data.zips import ZipTargetExistsError, extract_zip, extraction_complete

BUILTIN_DATASETS = ("shapes", "digits") + TORCHVISION_DATASETS
# The owner folder of archives load_dataset extracts: uploads/<owner>/<digest>/, the two levels that
# clean_extractions expects (it once took uploads/<digest>/ for a session and deleted its class folders).
LIBRARY_UPLOADS = "library"


def extracted_zip(path: str | Path) -> Path:
    """The folder holding the archive at ``path`` extracted (``uploads/library/<content digest>/``): reused when
    it holds exactly what the archive extracts to, extracted again otherwise (a clean-up of old uploads may
    have deleted part of it). ``ValueError`` for an archive ``extract_zip`` refuses."""
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    folder = data_root() / "uploads" / LIBRARY_UPLOADS / digest
    if folder.exists() and not extraction_complete(folder, path):
        shutil.rmtree(folder, ignore_errors=True)
    if not folder.is_dir():
        try:
            extract_zip(path, folder)
        except ZipTargetExistsError:
            pass  # the same archive (same digest), extracted at the same moment by another caller
        if not extraction_complete(folder, path):
            raise ValueError(f"the archive {path.name} could not be extracted completely to {folder} "
                             "(deleted meanwhile?): try again")
    try:
        os.utime(folder)  # in use: the clean-up of old uploads counts its age from now
    except OSError:
        pass
    return folder


# --- one entry point ---------------------------------------------------------------------------------------


def load_dataset(name_or_path: str | Path, channels: int, size: int, seed: int = 0,
                 samples: int = DEFAULT_SHAPES_SAMPLES, ratios: Sequence[float] = (0.7, 0.2, 0.1),
                 max_train_samples: int | None = None) -> DataBundle:
    """``shapes`` | ``digits`` | ``mnist`` | ``fashion_mnist`` | ``cifar10`` | a folder path | a ``.zip`` path."""
    name = str(name_or_path)
    if name == "shapes":
        return load_shapes(channels, size, seed=seed, samples=samples, ratios=ratios)
    if name == "digits":  # scikit-learn's 1,797 real handwritten digits (offline); ``samples`` does not apply
        return load_digits_bundle(channels, size, seed=seed, ratios=ratios)
    if name in TORCHVISION_DATASETS:
        return load_torchvision(name, channels, size, seed=seed, max_train_samples=max_train_samples)
    path = Path(name).expanduser()
    if path.is_file() and zipfile.is_zipfile(path):
        path = extracted_zip(path)
    if path.is_dir():
        return load_image_folder(path, channels, size, ratios=ratios, seed=seed)
    raise ValueError(f"unknown dataset {name!r}: use {', '.join(BUILTIN_DATASETS)}, a folder of class "
                     "folders, or a .zip of one")


def dataset_label(name_or_path: str) -> str:
    """A short display name: "MNIST", "shapes", or the folder's name."""
    return DISPLAY_NAMES.get(name_or_path, name_or_path if name_or_path in ("shapes", "digits") else Path(name_or_path).name)
