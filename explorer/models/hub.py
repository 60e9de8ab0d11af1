"""torchvision's ImageNet weights in torch's hub cache: where each file goes, downloading it ahead of class,
listing what is cached, and saying in one plain sentence why a download failed.

A file named as the weights URL's last part under ``$TORCH_HOME/hub/checkpoints/`` is used as it is, with no
network (``torch.hub.load_state_dict_from_url`` downloads only when the file is missing). That is how an offline
classroom server is prepared: ``python -m explorer weights fetch resnet18 vgg16`` where there is internet, then
copy the folder (``explorer.commands.weights``).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from explorer.models.catalog import get_entry, list_models

DEFAULT_TIMEOUT_S = 5.0
# torchvision's file names carry the first hex digits of the file's SHA-256: resnet18-f37072fd.pth.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def hub_checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torch's own rule: ``TORCH_HOME``, else ``~/.cache/torch``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_checkpoint_path(weights: Any) -> Path:
    """Where torch looks for a torchvision weights entry (``ResNet18_Weights.IMAGENET1K_V1``)."""
    return hub_checkpoints_dir() / os.path.basename(weights.url)


def download_to_cache(weights: Any, timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Make sure the weights file is in torch's hub cache: used as is when present, else downloaded with a short
    timeout into a temporary file that is renamed into place only when complete."""
    path = hub_checkpoint_path(weights)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        # Looked up on the module at call time, so tests can make the network unavailable.
        with urllib.request.urlopen(weights.url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(response, out)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def is_offline_error(exc: BaseException) -> bool:
    """True when ``exc`` means the download server could not be reached (no internet, DNS, timeout, refused)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False  # the server answered (404, 403...): the network works
    return isinstance(exc, (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, socket.gaierror)) or (
        isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.errno is not None)


def plain_reason(exc: BaseException) -> str:
    """The human part of an error, without Python class names or ``[Errno N]``: "Name or service not known"."""
    inner: Any = exc
    while isinstance(inner, urllib.error.URLError) and not isinstance(inner, urllib.error.HTTPError):
        inner = inner.reason
    if isinstance(inner, urllib.error.HTTPError):
        return f"HTTP {inner.code} {inner.reason}"
    if isinstance(inner, BaseException):
        if isinstance(inner, OSError) and inner.strerror:
            return str(inner.strerror)
        text = str(inner) or type(inner).__name__.replace("Error", " error").strip()
    else:
        text = str(inner)
    return re.sub(r"\[Errno -?\d+\]\s*", "", text).replace("<urlopen error", "").strip(" <>") or "unknown error"


def download_failure(exc: BaseException, weights: Any) -> tuple[str, str]:
    """("offline" or "fallback", one technical line without raw exception text) for a failed weights load."""
    host = urlparse(weights.url).hostname or weights.url
    file = hub_checkpoint_path(weights)
    if is_offline_error(exc):
        return "offline", (f"{host} could not be reached ({plain_reason(exc)}); {file.name} is not in "
                           f"{file.parent}")
    return "fallback", f"{file.name} could not be loaded ({plain_reason(exc)[:160]})"


# --- preparing an offline server --------------------------------------------------------------------------


@dataclass(frozen=True)
class HubWeights:
    """One model's default ImageNet weights file: where it goes and whether it is there."""

    model: str
    weights: str  # "ResNet18_Weights.IMAGENET1K_V1"
    url: str
    path: Path
    size_bytes: int | None  # None: not cached

    @property
    def cached(self) -> bool:
        return self.size_bytes is not None


def default_weights(name: str) -> Any:
    """The default torchvision weights entry of registry model ``name``; ValueError when it has none."""
    entry = get_entry(name)
    if entry.weights_enum is None:
        raise ValueError(f"{name} has no ImageNet weights in torchvision (built-in teaching networks carry their "
                         "own; see `python -m explorer weights list`)")
    return entry.weights_enum.DEFAULT


def hub_weights(name: str) -> HubWeights:
    member = default_weights(name)
    path = hub_checkpoint_path(member)
    return HubWeights(name, str(member), member.url, path, path.stat().st_size if path.is_file() else None)


def hub_weights_table() -> list[HubWeights]:
    """Every registered model with ImageNet weights, each with its cache file and whether it is cached."""
    return [hub_weights(name) for name in list_models() if get_entry(name).weights_enum is not None]


def check_file_hash(path: Path) -> None:
    """Refuse a file whose SHA-256 does not start with the digits in its torchvision name (a broken download)."""
    match = _HASH_IN_NAME.search(path.name)
    if not match:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match.group(1)):
        raise ValueError(f"{path.name} is damaged (its SHA-256 does not match the name); delete it and fetch again")


def fetch_model_weights(name: str, timeout: float = DEFAULT_TIMEOUT_S) -> tuple[Path, bool]:
    """Download ``name``'s default ImageNet weights into the hub cache (checked against the hash in the file
    name, a file already there too). Returns (path, True when it was downloaded now). Raises ConnectionError with one plain line offline."""
    member = default_weights(name)
    path = hub_checkpoint_path(member)
    existed = path.is_file()
    if existed:  # a truncated or corrupt copy (a cache folder copied over by hand) is fetched again, not reported ready
        try:
            check_file_hash(path)
        except ValueError:
            path.unlink(missing_ok=True)
            existed = False
    try:
        download_to_cache(member, timeout)
    except Exception as exc:
        if is_offline_error(exc):
            host = urlparse(member.url).hostname
            raise ConnectionError(f"no internet connection: {host} could not be reached ({plain_reason(exc)}) for "
                                  f"{name}; copy {path.name} into {path.parent} instead") from None
        raise
    if not existed:
        try:
            check_file_hash(path)
        except ValueError:
            path.unlink(missing_ok=True)
            raise
    return path, not existed


# --- torchvision's own files as user checkpoints ---------------------------------------------------------

# DenseNet files from torchvision name BatchNorm/conv parameters "norm.1.weight" where the modules say "norm1.weight".
_DENSENET_LEGACY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:1|2)\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")
# Auxiliary heads that torchvision's GoogLeNet/Inception files carry and the app's networks run without.
_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")


def adapt_torchvision_state(state: dict[str, torch.Tensor], own_keys: set[str]) -> dict[str, torch.Tensor]:
    """A torchvision weights file made to fit the app's network, as torchvision's own builders do when they load
    it: DenseNet's old key names renamed, auxiliary heads the network does not have dropped, BatchNorm's
    ``num_batches_tracked`` counters (absent from files saved before PyTorch 0.4.1) set to 0 as
    ``BatchNorm._load_from_state_dict`` does. Other files pass unchanged (a key that does not fit is still
    refused by ``apply_state_dict``)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _DENSENET_LEGACY.match(key)
        if match and key not in own_keys:
            key = match.group(1) + match.group(2)
        if key.startswith(_AUX_PREFIXES) and key not in own_keys:
            continue
        out[key] = value
    for key in own_keys:
        if key.endswith("num_batches_tracked") and key not in out and key.rsplit(".", 1)[0] + ".running_mean" in out:
            out[key] = torch.tensor(0, dtype=torch.long)
    return out
