"""Loading users' state_dict files safely, and writing checkpoints atomically."""
from __future__ import annotations

import io
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

import torch
import torch.nn as nn


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with a message for people."""


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "name: checkpoint (a, b) vs model (c, d)"
    wrong_types: list[str] = field(default_factory=list)  # "name: checkpoint complex64 vs model float32"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.wrong_types)

    def message(self, limit: int = 6) -> str:
        parts = []
        for label, items in (("missing keys", self.missing), ("unexpected keys", self.unexpected),
                             ("shape mismatches", self.mismatched), ("type mismatches", self.wrong_types)):
            if items:
                shown = ", ".join(items[:limit]) + (f", … ({len(items) - limit} more)" if len(items) > limit else "")
                parts.append(f"{len(items)} {label}: {shown}")
        return "; ".join(parts) or "all keys match"


# The pickle of a state_dict is names and shapes: a few hundred kB even for big networks.
MAX_PICKLE_BYTES = 16 * 2**20


def check_archive(source: bytes | str | Path) -> None:
    """Refuse a checkpoint from its zip directory alone, before ``torch.load`` reads or inflates anything.

    ``torch.save`` writes every record uncompressed (stored), so what loads is as large as the file. A
    record compressed with deflate (2 MB on disk once became 2.9 GB in memory before any key was checked)
    is refused, and so is a file that is not ``torch.save``'s zip format (the legacy format is not read).
    """
    handle = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint not found: {source}") from exc
    except IsADirectoryError as exc:
        raise CheckpointError(f"{source} is a folder, not a checkpoint file") from exc
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError("this file is not a PyTorch checkpoint in torch.save's format (a zip archive); "
                              "save your weights with torch.save(model.state_dict(), 'file.pt')") from exc
    if not any(info.filename.endswith("data.pkl") for info in infos):
        raise CheckpointError("this zip archive is not a PyTorch checkpoint (it has no data.pkl)")
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"the checkpoint's record {info.filename!r} is compressed; torch.save never "
                                  "compresses, so this file was altered: save it again with torch.save")
        if info.filename.endswith("data.pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"the checkpoint's index (data.pkl) is {info.file_size // 2**20} MB; a "
                                  f"state_dict's is far below {MAX_PICKLE_BYTES // 2**20} MB")


def check_tensor_layout(name: str, tensor: torch.Tensor) -> None:
    """Refuse tensors that are not plain dense arrays, or that claim more values than their storage holds
    (a stride-0 view of one stored number can describe a tensor of any shape: 38 KB once described 6.3 GB)."""
    if tensor.is_meta:
        raise CheckpointError(f"the checkpoint's tensor {name!r} holds no values (it was saved from the meta device): "
                              "save the weights of a model that has them")
    if tensor.is_quantized:
        raise CheckpointError(f"the checkpoint's tensor {name!r} is quantized ({str(tensor.dtype).replace('torch.', '')}): "
                              "only float weights are read (call .dequantize() before saving)")
    if tensor.layout != torch.strided:
        raise CheckpointError(f"the checkpoint's tensor {name!r} is {str(tensor.layout).replace('torch.', '')}: "
                              "only dense tensors are read (call .to_dense() before saving)")
    if tensor.numel() == 0:
        return
    if any(stride <= 0 for size, stride in zip(tensor.shape, tensor.stride()) if size > 1):
        raise CheckpointError(f"the checkpoint's tensor {name!r} repeats stored values (a stride of 0, e.g. "
                              "saved from .expand()): save a real copy (.contiguous())")
    needed = (tensor.storage_offset() + sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride()))
              + 1) * tensor.element_size()
    # A span shorter than the values means overlapping windows (as_strided): refused like stride 0.
    if needed > tensor.untyped_storage().nbytes() or tensor.numel() * tensor.element_size() > needed:
        raise CheckpointError(f"the checkpoint's tensor {name!r} describes more values than it stores")


def read_state_dict(source: bytes | str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a state_dict with ``weights_only=True`` (never runs pickled code) and unwrap common wrappers.

    The zip directory is checked first (:func:`check_archive`: no compressed records), then every tensor's
    layout (:func:`check_tensor_layout`: dense, no repeated storage), before the caller builds anything.
    """
    if isinstance(source, (bytes, bytearray)) and not source:
        raise CheckpointError("the checkpoint file is empty")
    check_archive(source)
    try:
        if isinstance(source, (bytes, bytearray)):
            obj = torch.load(io.BytesIO(source), map_location=map_location, weights_only=True)
        else:
            obj = torch.load(str(source), map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint not found: {source}") from exc
    except IsADirectoryError as exc:
        raise CheckpointError(f"{source} is a folder, not a checkpoint file") from exc
    except Exception as exc:  # error types vary widely: UnpicklingError, EOFError, KeyError, RuntimeError...
        raise CheckpointError(
            "this file is not a loadable PyTorch state_dict (it may be truncated, not a checkpoint, "
            f"or contain pickled code, which is refused): {type(exc).__name__}") from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("the file does not hold a state_dict (a mapping of parameter names to tensors)")
    odd_keys = [k for k in obj if not isinstance(k, str)]
    if odd_keys:
        raise CheckpointError(f"the file does not hold a state_dict: its key {odd_keys[0]!r} "
                              f"({type(odd_keys[0]).__name__}) is not a parameter name")
    for name, tensor in obj.items():
        check_tensor_layout(str(name), tensor)
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel / DDP
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _type_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).replace("torch.", "")


def _casts_safely(stored: torch.dtype, own: torch.dtype) -> bool:
    """Whether ``load_state_dict``'s cast from ``stored`` into ``own`` keeps the values' meaning: between float
    types (float16 weights into a float32 model) and between integer types (BatchNorm's step counter). A complex
    weight would lose its imaginary part, a bool or integer tensor is no weight, a float into an integer buffer
    is truncated."""
    if stored == own:
        return True
    if own.is_complex or stored.is_complex:
        return own.is_complex and stored.is_complex
    if own.is_floating_point:
        return stored.is_floating_point
    if own == torch.bool or stored == torch.bool:
        return False
    return not stored.is_floating_point  # integer into integer


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> LoadReport:
    """Load ``state`` into ``model`` only if every key, shape and kind of number matches (float into float,
    integer into integer: never a complex or bool tensor into a float weight); refuse non-finite weights."""
    own = model.state_dict()
    report = LoadReport(
        missing=[k for k in own if k not in state],
        unexpected=[k for k in state if k not in own],
        mismatched=[f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in own.items() if k in state and state[k].shape != v.shape],
        wrong_types=[f"{k}: checkpoint {_type_name(state[k])} vs model {_type_name(v)}"
                     for k, v in own.items() if k in state and not _casts_safely(state[k].dtype, v.dtype)],
    )
    if not report.ok:
        raise CheckpointError(f"the checkpoint does not fit this model — {report.message()}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"the checkpoint holds non-finite values (NaN/inf) in: {', '.join(bad[:6])}")
    model.load_state_dict(state, strict=True)
    return report


def atomic_write(path: str | Path, write: Callable[[IO], None], binary: bool = True) -> None:
    """Write through ``write(file)`` into a temporary file, fsync, then rename over ``path``:
    a crash or a kill never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda fh: torch.save(obj, fh))
