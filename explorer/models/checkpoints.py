"""Loading users' state_dict files safely, and writing checkpoints atomically."""
from __future__ import annotations

import io
import os
import tempfile
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

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def message(self, limit: int = 6) -> str:
        parts = []
        for label, items in (("missing keys", self.missing), ("unexpected keys", self.unexpected),
                             ("shape mismatches", self.mismatched)):
            if items:
                shown = ", ".join(items[:limit]) + (f", … ({len(items) - limit} more)" if len(items) > limit else "")
                parts.append(f"{len(items)} {label}: {shown}")
        return "; ".join(parts) or "all keys match"


def read_state_dict(source: bytes | str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a state_dict with ``weights_only=True`` (never runs pickled code) and unwrap common wrappers."""
    try:
        if isinstance(source, (bytes, bytearray)):
            if not source:
                raise CheckpointError("the checkpoint file is empty")
            obj = torch.load(io.BytesIO(source), map_location=map_location, weights_only=True)
        else:
            obj = torch.load(str(source), map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint not found: {source}") from exc
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
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel / DDP
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> LoadReport:
    """Load ``state`` into ``model`` only if every key and shape matches; refuse non-finite weights."""
    own = model.state_dict()
    report = LoadReport(
        missing=[k for k in own if k not in state],
        unexpected=[k for k in state if k not in own],
        mismatched=[f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in own.items() if k in state and state[k].shape != v.shape],
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
