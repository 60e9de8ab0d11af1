"""Training runs on disk: ``runs/NAME/`` with ``config.json``, ``metrics.json`` and ``best.pt``.

A run folder is what makes a trained model usable everywhere in the app: ``explorer.models.loading.load_model``
hands a run folder to :func:`load_run`, which rebuilds the network from ``config.json`` and loads the best
checkpoint (``torch.load(weights_only=True)``: never pickled code). Every file is written atomically
(temporary file, fsync, ``os.replace``), so a crash or a stop mid-write never leaves a run that cannot load.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.core import pick_device
from explorer.imaging import basic_transform
from explorer.models.checkpoints import CheckpointError, apply_state_dict, atomic_write, read_state_dict, save_atomic
from explorer.models.loaded import LoadedModel
from explorer.models.ref import RUN_CONFIG_FILE, ModelRef
from explorer.models.run_build import build_run_model

CONFIG_FILE = RUN_CONFIG_FILE
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "best.pt"
EVALUATION_FILE = "evaluation.json"
MISCLASSIFIED_FILE = "misclassified.npz"
RUNS_ENV = "EXPLORER_RUNS_DIR"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def runs_root() -> Path:
    """The folder runs are saved in: ``$EXPLORER_RUNS_DIR`` or ``runs`` (relative to the working folder)."""
    return Path(os.environ.get(RUNS_ENV) or "runs")


def check_run_name(name: str) -> str:
    """A run name is one folder name: letters, digits, ``_ . -`` (no separators, no ``..``)."""
    if not _NAME_RE.match(name or "") or ".." in name:
        raise ValueError(f"run name {name!r} must be 1–80 letters, digits, '_', '.' or '-' "
                         "and start with a letter or digit")
    return name


def confine_run_dir(out: str | Path, root: str | Path | None = None) -> Path:
    """The run folder ``out`` names, which must lie inside the runs root (``$EXPLORER_RUNS_DIR`` or ``runs``).

    A bare name (``my-run``) is a folder of the root; a path must resolve inside it (``runs/../../x`` once
    wrote outside: only its last part was checked). Its last part is a valid run name (:func:`check_run_name`).
    """
    root_dir = (runs_root() if root is None else Path(root)).resolve()
    path = Path(out).expanduser()
    if len(path.parts) == 1 and not path.is_absolute():
        path = root_dir / path
    resolved = path.resolve()
    if resolved == root_dir or not resolved.is_relative_to(root_dir):
        raise ValueError(f"run folders are created inside the runs folder {root_dir} (set {RUNS_ENV} to use "
                         f"another one); {out} is outside it")
    check_run_name(resolved.name)
    return resolved


def suggest_run_name(model: str, dataset: str, root: str | Path | None = None) -> str:
    """``mnist_cnn-shapes-20250101-120000`` (made unique in ``root``)."""
    model_part = "arch" if ModelRef.parse(model).kind == "arch" else Path(model).name
    data_part = Path(str(dataset)).stem if dataset not in ("shapes",) else dataset
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model_part}-{data_part}")[:60].strip("._-") or "run"
    base = f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"
    root = runs_root() if root is None else Path(root)
    name, k = base, 2
    while (root / name).exists():
        name, k = f"{base}-{k}", k + 1
    return name


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinity as None: standard JSON has no NaN (JavaScript's ``JSON.parse`` and jq refuse
    the bare ``NaN`` Python writes), and an undefined figure (a class absent from the test split, a diverged loss) is
    missing, not a number."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(path: str | Path, obj: Any) -> None:
    safe = json_safe(obj)
    atomic_write(path, lambda fh: json.dump(safe, fh, indent=1, ensure_ascii=False, allow_nan=False), binary=False)


def write_npz_atomic(path: str | Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def save_checkpoint(run_dir: str | Path, state_dict: dict[str, torch.Tensor], **meta: int | float | str) -> Path:
    """Write ``best.pt`` = ``{"state_dict": CPU tensors, **meta}`` atomically (loadable with weights_only)."""
    path = Path(run_dir) / CHECKPOINT_FILE
    cpu_state = {k: v.detach().cpu() for k, v in state_dict.items()}  # no copy for tensors already on the CPU
    save_atomic({"state_dict": cpu_state, **meta}, path)
    return path


def read_json(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not readable JSON: {exc}") from exc


def read_config(run_dir: str | Path) -> dict:
    config = read_json(Path(run_dir) / CONFIG_FILE)
    if not config:
        raise FileNotFoundError(f"{run_dir} is not a training run (no {CONFIG_FILE})")
    return config


def read_metrics(run_dir: str | Path) -> dict:
    """``{"epochs": [{epoch, train_loss, train_acc, valid_loss, valid_acc, lr, seconds}...],
    "test_accuracy": float | None, "status": ..., "best_epoch": ...}`` (empty dict if none yet)."""
    return read_json(Path(run_dir) / METRICS_FILE)


def read_misclassified(run_dir: str | Path) -> dict[str, np.ndarray]:
    """The saved misclassified test images: ``images`` uint8 [N, C, H, W], ``true``, ``pred``, ``confidence``."""
    path = Path(run_dir) / MISCLASSIFIED_FILE
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@dataclass(frozen=True)
class RunInfo:
    name: str
    path: Path
    model_name: str  # the architecture trained: "mnist_cnn", "resnet18", "arch:..."
    categories: list[str]
    input_shape: tuple[int, int, int]
    test_accuracy: float | None
    status: str  # "running" | "finished" | "stopped" | "failed"
    dataset: str
    mode: str
    epochs: int  # epochs completed
    created: float


def run_info(run_dir: str | Path) -> RunInfo:
    path = Path(run_dir)
    config = read_config(path)
    metrics = read_metrics(path)
    return RunInfo(
        name=path.name, path=path, model_name=str(config.get("model", "?")),
        categories=list(config.get("categories", [])), input_shape=tuple(config.get("input_shape", (3, 32, 32))),
        test_accuracy=metrics.get("test_accuracy"), status=str(metrics.get("status", "running")),
        dataset=str(config.get("dataset", "?")), mode=str(config.get("mode", "scratch")),
        epochs=len(metrics.get("epochs", [])), created=float(config.get("created", path.stat().st_mtime)))


def list_runs(root: str | Path | None = "runs") -> list[RunInfo]:
    """Runs in ``root`` that have a checkpoint (so they can be loaded), sorted by name.

    ``root=None`` means :func:`runs_root` (``$EXPLORER_RUNS_DIR`` or ``runs``). Folders that are not runs,
    or whose files are unreadable, are skipped.
    """
    root = runs_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    infos = []
    for path in sorted(root.iterdir()):
        if not (path / CONFIG_FILE).is_file() or not (path / CHECKPOINT_FILE).is_file():
            continue
        try:
            infos.append(run_info(path))
        except (ValueError, OSError, TypeError):
            continue
    return infos


def load_run(path: str | Path, device: torch.device | str | None = None) -> LoadedModel:
    """Rebuild a run's network from ``config.json`` and load ``best.pt``: an ``explorer.models.loading.LoadedModel``
    whose ``categories`` are the run's class names and whose transform normalises as training did."""
    run_dir = Path(path)
    config = read_config(run_dir)
    checkpoint = run_dir / CHECKPOINT_FILE
    if not checkpoint.is_file():
        raise CheckpointError(f"the run {run_dir.name} has no checkpoint yet (still in its first epoch?)")
    device = pick_device() if device is None else torch.device(device)
    classes = list(config["categories"])
    model = build_run_model(config)
    apply_state_dict(model, read_state_dict(checkpoint))
    model = model.eval().to(device)
    shape = tuple(int(v) for v in config["input_shape"])
    metrics = read_metrics(run_dir)
    acc = metrics.get("test_accuracy")
    detail = run_dir.name + (f" · test acc {acc * 100:.1f} %" if isinstance(acc, (int, float)) else "")
    return LoadedModel(model=model, name=str(path), input_shape=shape, categories=classes,
                       weights_status=f"trained in this app ({detail})",
                       weights_key=f"run:{run_dir.resolve()}:{checkpoint.stat().st_mtime_ns}", pretrained=True,
                       device=device, transform=basic_transform(shape, tuple(config["mean"]), tuple(config["std"])),
                       class_names=classes, weights_kind="run", weights_detail=detail)
