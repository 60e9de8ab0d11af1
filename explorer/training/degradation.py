"""The degradation experiment's shipped result and the paper's figures beside it.

``scripts/degradation.py`` trains plain18, plain34, resnet18_a and resnet34_a with one setting and writes
``explorer/training/results/degradation.json``; :func:`degradation_result` reads it for the pages. The only typed-in
numbers are the paper's, as citations: He et al. (2016), Table 2, top-1 error (%) on ImageNet validation
(10-crop testing), plain vs ResNet with option-A shortcuts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

RESULT_PATH = Path(__file__).resolve().parent / "results" / "degradation.json"
# He et al. (2016), Table 2: top-1 error (%), ImageNet validation, 10-crop.
PAPER_TABLE2_TOP1: dict[str, float] = {"plain-18": 27.94, "plain-34": 28.54, "ResNet-18": 27.88, "ResNet-34": 25.03}


def degradation_result(path: Path | None = None) -> dict[str, Any] | None:
    """The shipped (or given) result: ``setting``, ``command`` and ``runs`` (per model: ``epochs`` with training
    loss/accuracy and validation accuracy, ``test_acc``); None when the file is missing."""
    target = path or RESULT_PATH
    if not target.is_file():
        return None
    return json.loads(target.read_text(encoding="utf-8"))


def degradation_curves(result: dict[str, Any]) -> pd.DataFrame:
    """One row per (model, epoch): ``model``, ``epoch``, ``train_loss``, ``train_error`` (%), ``valid_error`` (%)."""
    rows = []
    for run in result.get("runs", []):
        for e in run.get("epochs", []):
            rows.append({"model": run["model"], "epoch": e["epoch"], "train_loss": e["train_loss"],
                         "train_error": None if e["train_acc"] is None else 100 * (1 - e["train_acc"]),
                         "valid_error": None if e["valid_acc"] is None else 100 * (1 - e["valid_acc"])})
    return pd.DataFrame(rows, columns=["model", "epoch", "train_loss", "train_error", "valid_error"])


def degradation_verdict(result: dict[str, Any]) -> dict[str, Any]:
    """What the run's last epoch shows, for a caption that says only that: the final training error (%) of each
    network (``plain18``, ``plain34``, ``resnet18_a``, ``resnet34_a``), ``plain_degrades`` (the deeper plain network
    trains worse), ``residual_not_worse`` (with shortcuts the deeper one trains at least as well) and
    ``shortcuts_help_deep`` (the deeper network trains better with shortcuts than without). A short run
    may show the first without the second: the paper's ResNet-34 beats ResNet-18 after a full ImageNet schedule."""
    curves = degradation_curves(result).dropna(subset=["train_error"])
    final = {model: float(group.sort_values("epoch")["train_error"].iloc[-1])
             for model, group in curves.groupby("model", sort=False)}
    missing = [m for m in ("plain18", "plain34", "resnet18_a", "resnet34_a") if m not in final]
    if missing:
        raise ValueError(f"the degradation result has no training error for {', '.join(missing)}")
    return {**final, "plain_degrades": final["plain34"] > final["plain18"],
            "residual_not_worse": final["resnet34_a"] <= final["resnet18_a"],
            "shortcuts_help_deep": final["resnet34_a"] < final["plain34"]}


def paper_table2() -> pd.DataFrame:
    """The paper's Table 2 as printed (top-1 error %), plain and residual side by side per depth."""
    return pd.DataFrame([{"layers": 18, "plain": PAPER_TABLE2_TOP1["plain-18"], "ResNet": PAPER_TABLE2_TOP1["ResNet-18"]},
                         {"layers": 34, "plain": PAPER_TABLE2_TOP1["plain-34"], "ResNet": PAPER_TABLE2_TOP1["ResNet-34"]}])
