"""torchvision's ImageNet weights in torch's hub cache: where each file goes, downloading it ahead of class,
listing what is cached, and saying in one plain sentence why a download failed.

A file named as the weights URL's last part under ``$TORCH_HOME/hub/checkpoints/`` is used as it is, with no
network (``torch.hub.load_state_dict_from_url`` downloads only when the file is missing). That is how an offline
classroom server is prepared: ``python -m explorer weights fetch resnet18 vgg16`` where there is internet, then
copy the folder (``explorer.commands.weights``).
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
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


class WeightsCacheError(OSError):
    """The hub cache folder cannot be written (read-only, another user's, full disk): the network was never the
    problem, so this is no "no internet" failure."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(f"the weights cache folder {folder} cannot be written ({reason})")
        self.folder, self.reason = folder, reason


class WrongDownloadError(ValueError):
    """The server answered, but not with the weights file the name promises (a Wi-Fi login page, a proxy's page,
    a cut download): its SHA-256 does not start with the digits in the file's name. Nothing was kept."""


class DamagedCacheFileError(ValueError):
    """A file in the hub cache that neither loads nor matches the SHA-256 in its name; it has been deleted, so the
    next load downloads it again instead of failing on it for good."""


_NETWORK_ERRNOS = frozenset({errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.EHOSTDOWN,
                             errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT})


def expected_hash_prefix(file_name: str) -> str | None:
    """The SHA-256 digits a torchvision file name carries (``resnet18-f37072fd.pth`` → ``f37072fd``), or None."""
    match = _HASH_IN_NAME.search(file_name)
    return match.group(1) if match else None


def _looks_like_a_web_page(head: bytes) -> bool:
    return head.lstrip()[:15].lower().startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body"))


def _wrong_contents(name: str, digest: str, size: int, head: bytes, where: str) -> str:
    """One plain line: what the file's SHA-256 says, and what the bytes look like."""
    expected = expected_hash_prefix(name) or ""
    what = ("a web page (a Wi-Fi login page or a proxy's page?)" if _looks_like_a_web_page(head)
            else "not the file the name promises (cut short or altered?)")
    return (f"{where} {name} is {what}: its SHA-256 starts with {digest[:len(expected)]}, not {expected} "
            f"({size} bytes)")


@lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:  # keyed on the file's stamp: hashed once per version
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_mismatch(path: Path) -> tuple[str, str] | None:
    """None when ``path``'s SHA-256 starts with the digits in its name (or the name carries none), else (the digits
    in the name, the file's own first digits)."""
    expected = expected_hash_prefix(path.name)
    if expected is None:
        return None
    stat = path.stat()
    digest = _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)
    return None if digest.startswith(expected) else (expected, digest[:len(expected)])


def download_to_cache(weights: Any, timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Make sure the weights file is in torch's hub cache: used as is when present, else downloaded with a short
    timeout into a temporary file that is renamed into place only when complete and its SHA-256 matches the
    digits in its name (what torch.hub's ``check_hash`` checks). Raises :class:`WeightsCacheError` when the cache
    folder cannot be written, :class:`WrongDownloadError` when the server sent something else (nothing is kept),
    and the network's own errors (``urllib.error.URLError``, ``HTTPError``, timeouts) otherwise."""
    path = hub_checkpoint_path(weights)
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    except OSError as exc:  # before any network: a read-only or foreign folder, a full disk
        raise WeightsCacheError(path.parent, plain_reason(exc)) from None
    try:
        digest, size, head = hashlib.sha256(), 0, b""
        with os.fdopen(fd, "wb") as out:
            # Looked up on the module at call time, so tests can make the network unavailable.
            with urllib.request.urlopen(weights.url, timeout=timeout) as response:
                while True:
                    block = response.read(1 << 20)  # the network's errors pass as they are
                    if not block:
                        break
                    digest.update(block)
                    head = head or block[:64]
                    size += len(block)
                    try:
                        out.write(block)
                    except OSError as exc:  # the disk's, not the network's
                        raise WeightsCacheError(path.parent, plain_reason(exc)) from None
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise WeightsCacheError(path.parent, plain_reason(exc)) from None
        expected = expected_hash_prefix(path.name)
        if expected is not None and not digest.hexdigest().startswith(expected):
            host = urlparse(weights.url).hostname or weights.url
            raise WrongDownloadError(_wrong_contents(path.name, digest.hexdigest(), size, head,
                                                     f"what {host} sent as") + "; nothing was kept")
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise WeightsCacheError(path.parent, plain_reason(exc)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def drop_damaged_cache_file(path: Path, exc: BaseException) -> None:
    """After ``path`` failed to load: when it is not the file its name promises, delete it and raise
    :class:`DamagedCacheFileError` (the next load downloads it again); otherwise return (the caller re-raises)."""
    try:
        if hash_mismatch(path) is None:
            return
        stat = path.stat()
        with open(path, "rb") as fh:
            head = fh.read(64)
        wrong = _wrong_contents(path.name, _sha256_of(str(path), stat.st_size, stat.st_mtime_ns), stat.st_size, head,
                                "the cached file")
    except OSError:
        return
    try:
        path.unlink()
        after = "and has been deleted: it is downloaded again on the next try"
    except OSError as err:
        after = f"and could not be deleted ({plain_reason(err)}): delete it by hand"
    raise DamagedCacheFileError(f"{wrong}, in {path.parent}, {after}") from exc


def is_offline_error(exc: BaseException) -> bool:
    """True when ``exc`` means the download server could not be reached (no internet, DNS, timeout, refused
    connection). Not for an answer from the server (``HTTPError``), nor for the local cache folder."""
    if isinstance(exc, (urllib.error.HTTPError, WeightsCacheError, WrongDownloadError, DamagedCacheFileError)):
        return False  # the server answered (404, 403...), or the problem is on this machine
    if isinstance(exc, (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, socket.gaierror)):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


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


def _first_sentence(text: str, limit: int = 200) -> str:
    """A long library message cut where its first sentence ends (never mid-sentence when it can be helped)."""
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0] + " …"


def download_failure(exc: BaseException, weights: Any) -> tuple[str, str]:
    """(kind, one technical line without raw exception text) for a failed weights load. Kinds: "offline" (the
    download server could not be reached), "refused" (it answered with an HTTP error), "bad_download" (it sent
    something else than the weights file), "cache_unwritable" (the hub cache folder cannot be written),
    "fallback" (anything else: a cached file that does not load, a damaged one that was deleted)."""
    host = urlparse(weights.url).hostname or weights.url
    file = hub_checkpoint_path(weights)
    when = time.strftime("%H:%M")  # the line is shown later: it says when it was true
    if isinstance(exc, WeightsCacheError):
        return "cache_unwritable", f"{exc} at {when}; {file.name} was not in it, and the download was not tried"
    if isinstance(exc, (WrongDownloadError, DamagedCacheFileError)):
        return ("bad_download" if isinstance(exc, WrongDownloadError) else "fallback"), f"{exc} (at {when})"
    if isinstance(exc, urllib.error.HTTPError):
        return "refused", (f"{host} refused the download of {file.name} ({plain_reason(exc)}) at {when}; "
                           f"{file.name} was not in {file.parent}")
    if is_offline_error(exc):
        return "offline", (f"{host} could not be reached ({plain_reason(exc)}) at {when}; {file.name} was not in "
                           f"{file.parent}")
    return "fallback", f"{file.name} could not be loaded ({_first_sentence(plain_reason(exc))})"


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
    if hash_mismatch(path) is not None:
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
        if isinstance(exc, WrongDownloadError):
            raise ValueError(f"the download of {name} is damaged: {exc}") from None
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
