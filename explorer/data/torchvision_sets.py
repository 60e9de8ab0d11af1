"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision, as ``DataBundle``s of uint8 tensors.

Files already on disk (under ``explorer.data.datasets.data_root()``) are used without touching the network;
otherwise a download is tried only if :func:`network_reachable` answers within ``NETWORK_TIMEOUT_S``, so an
offline machine fails fast and clearly (:class:`DatasetUnavailableError`).
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F

from explorer.data.bundle import DataBundle, ImageTensors, channel_stats, data_root

TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DISPLAY_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}

NETWORK_TIMEOUT_S = 3.0


class DatasetUnavailableError(RuntimeError):
    """A torchvision dataset that is neither on disk nor downloadable right now (typically: offline)."""

    def __init__(self, dataset: str, root: Path, reason: str) -> None:
        self.dataset = dataset
        self.root = root
        self.reason = reason
        super().__init__(
            f"{dataset} is not on this machine and cannot be downloaded ({reason}). "
            f"Use the built-in 'shapes' dataset, or put the {dataset} files under {root} and try again.")


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
        raise DatasetUnavailableError(DISPLAY_NAMES[name], root, f"no network: {reason}")
    try:
        return cls(str(root), train=train, download=True)
    except Exception as exc:  # URLError, HTTPError, checksum errors, disk full...
        raise DatasetUnavailableError(DISPLAY_NAMES[name], root, f"download failed: {exc}") from exc


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
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(TORCHVISION_DATASETS)}")
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
