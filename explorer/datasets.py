"""Datasets for the training lab: built-in synthetic shapes, torchvision sets, and the user's own photos.

Every dataset ends up as in-memory ``uint8`` tensors ``[N, C, H, W]`` at exactly the size the model takes
(``ImageTensors``), grouped in a ``DataBundle`` with its class names and normalisation. Small tensors make
the training loop a pair of index operations per batch (no per-image decoding, no worker processes on a
2-core machine) and make runs reproducible: the order and the augmentation come from the run's own
``torch.Generator``, not from a DataLoader's workers.

Safety rules for user data live here too: ``extract_zip`` refuses archives that would write outside their
folder, links, and zip bombs; ``split_image_folder`` reports empty classes and unreadable files instead of
failing on them.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import socket
import stat
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable, Sequence
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

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
class Skipped:
    """A file left out of a dataset, and why (shown to the user, never fatal)."""

    path: str
    reason: str


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


class DatasetUnavailableError(RuntimeError):
    """A torchvision dataset that is neither on disk nor downloadable right now (typically: offline)."""

    def __init__(self, dataset: str, root: Path, reason: str) -> None:
        self.dataset = dataset
        self.root = root
        self.reason = reason
        super().__init__(
            f"{dataset} is not on this machine and cannot be downloaded ({reason}). "
            f"Use the built-in 'shapes' dataset, or put the {dataset} files under {root} and try again.")


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


# --- resizing / channel conversion of tensors --------------------------------------------------------------


def fit_tensor_images(images: torch.Tensor, channels: int, size: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` → uint8 ``[N, channels, size, size]`` (luma for 1 channel, repeat for 3)."""
    n, c = images.shape[:2]
    if c == channels and tuple(images.shape[2:]) == (size, size):
        return images
    out = torch.empty((n, channels, size, size), dtype=torch.uint8)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for start in range(0, n, chunk):
        x = images[start:start + chunk].float()
        if c == 3 and channels == 1:
            x = (x * luma).sum(1, keepdim=True)
        elif c == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c != channels:
            raise ValueError(f"cannot convert {c}-channel images to {channels} channels")
        if tuple(x.shape[2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=size < x.shape[-1])
        out[start:start + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


# --- torchvision datasets ----------------------------------------------------------------------------------

TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar10")
BUILTIN_DATASETS = ("shapes",) + TORCHVISION_DATASETS
_DISPLAY = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
NETWORK_TIMEOUT_S = 3.0


def data_root() -> Path:
    """Where torchvision datasets and extracted uploads are kept (``EXPLORER_DATA_DIR`` overrides)."""
    return Path(os.environ.get("EXPLORER_DATA_DIR") or Path.home() / ".cache" / "cnn-explorer" / "data")


def _torchvision_class(name: str):
    from torchvision import datasets as tvd

    return {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]


def _download_urls(name: str) -> list[str]:
    cls = _torchvision_class(name)
    if hasattr(cls, "mirrors"):
        return list(cls.mirrors)
    return [cls.url]


def network_reachable(urls: Iterable[str], timeout: float = NETWORK_TIMEOUT_S) -> tuple[bool, str]:
    """Whether any URL's host accepts a TCP connection within ``timeout`` seconds (DNS included).

    The probe runs in a daemon thread joined with a deadline: name resolution has no timeout of its own
    and can hang for tens of seconds on a machine without network.
    """
    result: dict[str, object] = {"ok": False, "reason": "timed out"}

    def probe() -> None:
        errors = []
        for url in urls:
            parsed = urlparse(url)
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            try:
                with socket.create_connection((parsed.hostname, port), timeout=timeout):
                    result.update(ok=True, reason="")
                    return
            except OSError as exc:
                errors.append(f"{parsed.hostname}: {exc.strerror or type(exc).__name__}")
        result["reason"] = "; ".join(errors) or "no download address"

    thread = threading.Thread(target=probe, daemon=True, name="explorer-net-probe")
    thread.start()
    thread.join(timeout + 0.5)
    if thread.is_alive():
        return False, f"no answer from the download server within {timeout:.0f} s"
    return bool(result["ok"]), str(result["reason"])


def _open_torchvision(name: str, train: bool, root: Path):
    cls = _torchvision_class(name)
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:  # "Dataset not found": try downloading, but only if the network answers fast
        pass
    ok, reason = network_reachable(_download_urls(name))
    if not ok:
        raise DatasetUnavailableError(_DISPLAY[name], root, f"no network: {reason}")
    try:
        return cls(str(root), train=train, download=True)
    except Exception as exc:  # URLError, HTTPError, checksum errors, disk full...
        raise DatasetUnavailableError(_DISPLAY[name], root, f"download failed: {exc}") from exc


def torchvision_status(name: str, root: Path | None = None) -> str:
    """"" when ``name`` can be used now (on disk, or downloaded now), else why not (e.g. offline).

    Opens the test split only: it is small, and proves the files are there."""
    try:
        _open_torchvision(name, False, Path(root) if root is not None else data_root())
        return ""
    except DatasetUnavailableError as exc:
        return exc.reason


def _as_uint8_nchw(data) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(data))
    if t.dim() == 3:  # MNIST: [N, H, W]
        return t.unsqueeze(1).contiguous()
    return t.permute(0, 3, 1, 2).contiguous()  # CIFAR: [N, H, W, C]


def load_torchvision(name: str, channels: int, size: int, seed: int = 0, valid_fraction: float = 0.1,
                     max_train_samples: int | None = None, root: Path | None = None) -> DataBundle:
    """MNIST / Fashion-MNIST / CIFAR-10: the official test set, and ``valid_fraction`` of train held out."""
    if name not in TORCHVISION_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}")
    root = Path(root) if root is not None else data_root()
    train_set = _open_torchvision(name, True, root)
    test_set = _open_torchvision(name, False, root)
    classes = [str(c).split(" - ")[0] for c in train_set.classes]  # MNIST names are "0 - zero"
    images = fit_tensor_images(_as_uint8_nchw(train_set.data), channels, size)
    labels = torch.as_tensor(np.asarray(train_set.targets), dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_valid = int(round(len(order) * valid_fraction))
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    if max_train_samples:
        train_idx = train_idx[:max_train_samples]
        valid_idx = valid_idx[:max(1, max_train_samples // 4)]
    train = ImageTensors(images[train_idx], labels[train_idx])
    valid = ImageTensors(images[valid_idx], labels[valid_idx])
    test_images = fit_tensor_images(_as_uint8_nchw(test_set.data), channels, size)
    test = ImageTensors(test_images, torch.as_tensor(np.asarray(test_set.targets), dtype=torch.int64))
    mean, std = channel_stats(train.images)
    return DataBundle(name, classes, train, valid, test, mean=mean, std=std, flip_ok=name != "mnist")


# --- zip archives ------------------------------------------------------------------------------------------

MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3
MAX_ZIP_RATIO = 100  # uncompressed/compressed; photos barely compress, zip bombs compress ~1000×
_RATIO_CHECK_FROM = 1024 * 1024  # tiny text files may compress well and harm nobody
_IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def _ignored_member(parts: Sequence[str]) -> bool:
    return (parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] in _IGNORED_NAMES)


def _safe_member_parts(name: str) -> tuple[str, ...]:
    """The path components of a zip member, or ``ValueError`` if it could land outside the target."""
    unified = name.replace("\\", "/")  # Windows tools sometimes write backslashes
    if unified.startswith("/") or PurePosixPath(unified).is_absolute():
        raise ValueError(f"unsafe zip member {name!r}: absolute path")
    if len(unified) >= 2 and unified[1] == ":":
        raise ValueError(f"unsafe zip member {name!r}: drive letter")
    parts = tuple(p for p in unified.split("/") if p not in ("", "."))
    if any(p == ".." for p in parts):
        raise ValueError(f"unsafe zip member {name!r}: path traversal ('..')")
    if any("\x00" in p for p in parts):
        raise ValueError(f"unsafe zip member {name!r}: NUL byte in name")
    return parts


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def extract_zip(source: str | Path | bytes | BinaryIO, dest: str | Path, *, max_members: int = MAX_ZIP_MEMBERS,
                max_total_bytes: int = MAX_ZIP_TOTAL_BYTES, max_ratio: float = MAX_ZIP_RATIO) -> Path:
    """Extract a zip of images into ``dest`` safely and return ``dest``.

    Every member is checked before anything is written: ``ValueError`` for ``..`` components, absolute
    paths or drive letters, symbolic links, more than ``max_members`` members, more than
    ``max_total_bytes`` uncompressed, or a member compressed more than ``max_ratio``:1 (zip bombs).
    ``__MACOSX/``, ``._*`` and ``.DS_Store`` are skipped. The archive is unpacked in a staging folder
    beside ``dest`` and moved into place only when complete; if it holds a single top-level folder (the
    usual "zip of a folder"), that folder's content becomes ``dest``. ``dest`` must not exist or be empty.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"the target folder {dest} already exists and is not empty")
    if isinstance(source, (bytes, bytearray)):
        import io

        source = io.BytesIO(source)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"not a readable zip archive: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > max_members:
            raise ValueError(f"the archive has {len(infos)} members; the limit is {max_members}")
        members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        total = 0
        for info in infos:
            parts = _safe_member_parts(info.filename)
            if _is_link(info):
                raise ValueError(f"unsafe zip member {info.filename!r}: symbolic link")
            if not parts or _ignored_member(parts):
                continue
            if info.flag_bits & 0x1:
                raise ValueError(f"zip member {info.filename!r} is encrypted")
            total += info.file_size
            if total > max_total_bytes:
                raise ValueError(f"the archive expands to more than {max_total_bytes // 2**20} MB")
            if info.file_size > _RATIO_CHECK_FROM and info.file_size > max_ratio * max(info.compress_size, 1):
                raise ValueError(f"zip member {info.filename!r} is compressed "
                                 f"{info.file_size / max(info.compress_size, 1):.0f}:1 (a zip bomb?)")
            members.append((info, parts))
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            root = staging.resolve()
            written = 0
            for info, parts in members:
                target = staging.joinpath(*parts)
                # Defence in depth: the name checks above already exclude this.
                if not target.resolve().is_relative_to(root):
                    raise ValueError(f"unsafe zip member {info.filename!r}: resolves outside the target")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "xb") as out:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        # Declared sizes can lie; count what really comes out.
                        if written > max_total_bytes:
                            raise ValueError(f"the archive expands to more than {max_total_bytes // 2**20} MB")
                        out.write(chunk)
            top = [p for p in staging.iterdir()]
            content = top[0] if len(top) == 1 and top[0].is_dir() else staging
            if dest.exists():
                dest.rmdir()
            os.replace(content, dest)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"the archive is corrupt: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


# --- image folders -----------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"train": ("train", "training"), "valid": ("valid", "val", "validation"), "test": ("test",)}


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


def scan_image_folder(src: str | Path, check: bool = True) -> FolderScan:
    """List ``src/<class>/<image>`` files. Non-images are ignored; unreadable images and empty classes reported."""
    root = Path(src)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    classes: dict[str, list[Path]] = {}
    empty: list[str] = []
    skipped: list[Skipped] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        files = []
        for path in sorted(p for p in class_dir.rglob("*") if _is_image_file(p)):
            if path.is_symlink():
                skipped.append(Skipped(str(path), "symbolic link"))
                continue
            reason = _check_image(path) if check else None
            if reason:
                skipped.append(Skipped(str(path), reason))
            else:
                files.append(path)
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
    With ``dst``, the files are copied to ``dst/<split>/<class>/`` (``dst`` must not exist or be empty).
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
                    shutil.copy2(path, folder / path.name)
        result.dst = dst
    return result


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


