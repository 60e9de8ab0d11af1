"""Folders of class folders: listing their images, and splitting them into train/valid/test.

:func:`split_counts` is the 7:2:1 rule (documented there); :func:`split_image_folder` applies it per class,
reproducibly by seed, and reports empty classes and unreadable files (:class:`Skipped`) instead of failing
on them. ``explorer.data.datasets.load_image_folder`` turns the result into tensors.
"""
from __future__ import annotations

import math
import os
import random
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SPLITS = ("train", "valid", "test")


@dataclass
class Skipped:
    """A file left out of a dataset, and why (shown to the user, never fatal)."""

    path: str
    reason: str


def split_counts(n: int, ratios: Sequence[float] = (0.7, 0.2, 0.1)) -> tuple[int, ...]:
    """How many of ``n`` files go to each split: every file is placed, the split follows ``ratios``.

    Rule (largest remainder): each split first gets the whole part of its share, ``floor(n × ratio)``,
    exactly the course homework's ``int(len × 0.7)`` etc.; the files that truncation leaves over
    (at most ``len(ratios) - 1``) then go one each to the splits with the largest fractional parts,
    ties to the earlier split (train before valid before test). Ratios are normalised to sum to 1 and
    computed exactly (fractions), so 0.7/0.2/0.1 behave as 7/10, 2/10, 1/10.

    373 dolphins: 261.1 / 74.6 / 37.3 → homework 261/74/37 (372 files) → here 261/75/37 (373).
    488 sharks: 341.6 / 97.6 / 48.8 → 341/97/48 → 342/97/49.  451 whales: 315.7 / 90.2 / 45.1 → 316/90/45.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    try:
        # Checked as floats first: Fraction(inf) raises OverflowError and Fraction(nan) a ValueError that
        # says nothing about ratios.
        finite = all(math.isfinite(float(r)) for r in ratios)
    except (TypeError, ValueError):
        raise ValueError(f"ratios must be numbers, got {tuple(ratios)!r}") from None
    if not finite:
        raise ValueError(f"ratios must be finite numbers, got {tuple(ratios)!r}")
    exact = [Fraction(r).limit_denominator(10**6) for r in ratios]
    if not exact or any(r < 0 for r in exact) or sum(exact) == 0:
        raise ValueError("ratios must be non-negative and not all zero")
    total = sum(exact)
    shares = [n * r / total for r in exact]
    counts = [math.floor(s) for s in shares]
    left = n - sum(counts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in by_remainder[:left]:
        counts[i] += 1
    return tuple(counts)


def train_valid_test_counts(n: int, ratios: Sequence[float], what: str = "images") -> tuple[int, int, int]:
    """:func:`split_counts` for exactly three shares (train, valid, test), refusing a split that leaves the
    training set empty (its statistics would be NaN and the training loop would have no batch).
    ``what`` names the data in the messages."""
    if len(ratios) != len(SPLITS):
        raise ValueError(f"ratios must give three shares (train, valid, test), got {len(ratios)}: {tuple(ratios)!r}")
    n_train, n_valid, n_test = split_counts(n, ratios)
    if n_train == 0:
        raise ValueError(f"the training split is empty: {n} {what} split {tuple(ratios)!r} leave no training "
                         "image; give the training share more weight or use more images")
    return n_train, n_valid, n_test


def homework_split_counts(n: int, ratios: Sequence[float] = (0.7, 0.2, 0.1)) -> tuple[int, ...]:
    """The course homework's counts: ``int(len × 0.7), int(len × 0.2), int(len × 0.1)`` (floats, each share
    floored on its own). Up to ``len(ratios) - 1`` files are left out: 488 sharks → 341/97/48 (486 files),
    451 whales → 315/90/45 (450). :func:`split_counts` places those left-over files."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return tuple(int(n * r) for r in ratios)


def split_comparison(class_sizes: dict[str, int], ratios: Sequence[float] = (0.7, 0.2, 0.1)) -> list[dict[str, int | str]]:
    """Per class: the homework's floored counts, this app's counts (:func:`split_counts`) and the files the
    homework leaves out, one record per class (``class``, ``homework_<split>``, ``app_<split>``, ``left_out``)."""
    rows: list[dict[str, int | str]] = []
    for name, n in class_sizes.items():
        homework, app = homework_split_counts(n, ratios), split_counts(n, ratios)
        row: dict[str, int | str] = {"class": name, "files": n}
        row.update({f"homework_{s}": c for s, c in zip(SPLITS, homework)})
        row.update({f"app_{s}": c for s, c in zip(SPLITS, app)})
        row["left_out"] = n - sum(homework)
        rows.append(row)
    return rows


def _is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _check_image(path: Path) -> str | None:
    """None if the file looks like a readable image (header + structure), else a reason."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.verify()
        return None
    except Exception as exc:  # UnidentifiedImageError, truncated data, bombs...
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass
class FolderScan:
    """What an ImageFolder-style directory holds: class → readable image files (sorted)."""

    root: Path
    classes: dict[str, list[Path]]
    empty_classes: list[str]
    skipped: list[Skipped]


def _class_files(class_dir: Path, skipped: list[Skipped], check: bool) -> list[Path]:
    """Readable image files anywhere under ``class_dir`` (sorted). Links, to files or folders, are reported and
    never followed: a link can reach outside the dataset (server files, another student's photos)."""
    found: list[tuple[Path, bool]] = []  # (path, is a link)
    folders = [class_dir]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # an unreadable sub-folder holds nothing we can use (rglob skipped it silently too)
        for entry in entries:
            path = folder / entry.name
            if entry.is_symlink():
                if path.is_dir() or _is_image_file(path):
                    found.append((path, True))
            elif entry.is_dir(follow_symlinks=False):
                folders.append(path)
            elif _is_image_file(path):
                found.append((path, False))
    files = []
    for path, is_link in sorted(found):
        if is_link:
            skipped.append(Skipped(str(path), "symbolic link"))
            continue
        reason = _check_image(path) if check else None
        if reason:
            skipped.append(Skipped(str(path), reason))
        else:
            files.append(path)
    return files


def scan_image_folder(src: str | Path, check: bool = True) -> FolderScan:
    """List ``src/<class>/<image>`` files (sub-folders of a class included). Non-images are ignored; unreadable
    images, symbolic links (class folders, sub-folders or files: never followed) and empty classes reported."""
    root = Path(src)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    classes: dict[str, list[Path]] = {}
    empty: list[str] = []
    skipped: list[Skipped] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        if class_dir.is_symlink():
            skipped.append(Skipped(str(class_dir), "symbolic link"))
            continue
        files = _class_files(class_dir, skipped, check)
        if files:
            classes[class_dir.name] = files
        else:
            empty.append(class_dir.name)
    return FolderScan(root, classes, empty, skipped)


class SplitResult(dict):
    """``split → class → list of files`` (a plain dict), plus what was left out.

    Attributes: ``classes`` (names with at least one image), ``empty_classes``, ``skipped``
    (unreadable files with reasons), ``ratios``, ``seed``, and ``dst`` when the split was written.
    """

    classes: list[str]
    empty_classes: list[str]
    skipped: list[Skipped]
    ratios: tuple[float, ...]
    seed: int
    dst: Path | None

    def counts(self) -> dict[str, dict[str, int]]:
        return {split: {c: len(files) for c, files in per_class.items()} for split, per_class in self.items()}


def split_image_folder(src: str | Path, dst: str | Path | None = None,
                       ratios: Sequence[float] = (0.7, 0.2, 0.1), seed: int = 0,
                       check: bool = True) -> SplitResult:
    """Split ``src/<class>/*`` into train/valid/test per class (stratified), reproducibly by ``seed``.

    Each class's files are sorted, shuffled with a generator seeded by ``(seed, class name)`` and cut by
    ``split_counts`` (documented there): the splits are disjoint and together hold every readable file.
    With ``dst``, the files are copied to ``dst/<split>/<class>/``, each at its path inside its class folder
    (``cat/a/0.png`` and ``cat/b/0.png`` stay two files); ``dst`` must not exist or be empty.
    The lists always name the source files. Empty classes and unreadable images are reported on the
    result (``.empty_classes``, ``.skipped``), never fatal.
    """
    if len(ratios) != len(SPLITS):
        raise ValueError("ratios must give train, valid and test shares")
    scan = scan_image_folder(src, check=check)
    result = SplitResult({split: {} for split in SPLITS})
    for name, files in scan.classes.items():
        shuffled = list(files)
        random.Random(f"{seed}/{name}").shuffle(shuffled)
        start = 0
        for split, n in zip(SPLITS, split_counts(len(shuffled), ratios)):
            result[split][name] = sorted(shuffled[start:start + n])
            start += n
    result.classes = list(scan.classes)
    result.empty_classes = scan.empty_classes
    result.skipped = scan.skipped
    result.ratios = tuple(float(r) for r in ratios)
    result.seed = seed
    result.dst = None
    if dst is not None:
        dst = Path(dst)
        if dst.exists() and any(dst.iterdir()):
            raise ValueError(f"the target folder {dst} already exists and is not empty")
        for split, per_class in result.items():
            for name, files in per_class.items():
                folder = dst / split / name
                folder.mkdir(parents=True, exist_ok=True)
                for path in files:
                    # Keep sub-folders: flattening to the file name overwrote same-named files of two sub-folders.
                    target = folder / path.relative_to(scan.root / name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
        result.dst = dst
    return result
