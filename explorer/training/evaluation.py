"""A model's results on one split (accuracy, loss, confusion matrix, misclassified examples), and a run's
saved results: ``save_results`` writes them when training ends, :func:`read_evaluation` reads them back."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.models import runfolder as runs_io
from explorer.data import ImageTensors
from explorer.training.parts import autocast_for, main_output, normalise_uint8

MAX_MISCLASSIFIED_SAVED = 48


@dataclass
class Evaluation:
    """A model's results on one split."""

    accuracy: float
    loss: float
    confusion: np.ndarray  # [true, predicted] counts
    classes: list[str]
    misclassified: list[dict]  # {"index", "true", "pred", "confidence"}, most confident mistakes first
    # How many test images were wrong in all: a run's files keep only the first 500 in ``misclassified``.
    misclassified_total: int | None = None

    @property
    def wrong(self) -> int:
        """The number of misclassified images (all of them, also when only some are listed)."""
        return len(self.misclassified) if self.misclassified_total is None else self.misclassified_total

    def per_class_accuracy(self) -> dict[str, float]:
        totals = self.confusion.sum(axis=1)
        return {c: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan")
                for i, c in enumerate(self.classes)}


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageTensors, mean: Sequence[float], std: Sequence[float],
             classes: list[str], device: torch.device | str = "cpu", batch_size: int = 256,
             amp: bool = True) -> Evaluation:
    """Accuracy, mean loss, confusion matrix and misclassified examples of ``model`` on ``data``.

    The model is put in eval mode for the pass and its previous train/eval mode restored.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    k = len(classes)
    preds, confs, losses = [], [], []
    try:
        for start in range(0, len(data), batch_size):
            x = normalise_uint8(data.images[start:start + batch_size].to(device, non_blocking=True), mean_t, std_t)
            y = data.labels[start:start + batch_size].to(device, non_blocking=True)
            with autocast_for(device, amp):
                logits, _ = main_output(model(x))
            logits = logits.float()
            losses.append(F.cross_entropy(logits, y, reduction="sum"))
            prob, pred = logits.softmax(1).max(1)
            preds.append(pred.cpu())
            confs.append(prob.cpu())
    finally:
        model.train(was_training)
    if not preds:
        return Evaluation(float("nan"), float("nan"), np.zeros((k, k), dtype=np.int64), classes, [])
    pred = torch.cat(preds).numpy()
    conf = torch.cat(confs).numpy()
    true = data.labels.cpu().numpy()
    confusion = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    wrong = np.flatnonzero(pred != true)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")]
    misclassified = [{"index": int(i), "true": int(true[i]), "pred": int(pred[i]), "confidence": float(conf[i])}
                     for i in wrong]
    return Evaluation(accuracy=float((pred == true).mean()), loss=float(sum(losses).item() / len(true)),
                      confusion=confusion, classes=list(classes), misclassified=misclassified)


def save_results(run_dir: Path, history: list[dict], best_epoch: int, stopped: bool,
                  evaluation: Evaluation | None, test: ImageTensors) -> None:
    # "best" marks the epoch whose weights the checkpoint holds (during training it marked each new best)
    history = [{**record, "best": record.get("epoch") == best_epoch} for record in history]
    metrics = {"epochs": history, "status": "stopped" if stopped else "finished", "best_epoch": best_epoch,
               "test_accuracy": evaluation.accuracy if evaluation else None,
               "test_loss": evaluation.loss if evaluation else None}
    if evaluation is not None:
        runs_io.write_json_atomic(run_dir / runs_io.EVALUATION_FILE, {
            "accuracy": evaluation.accuracy, "loss": evaluation.loss, "classes": evaluation.classes,
            "confusion": evaluation.confusion.tolist(), "per_class_accuracy": evaluation.per_class_accuracy(),
            "misclassified": evaluation.misclassified[:500], "misclassified_total": evaluation.wrong})
        shown = evaluation.misclassified[:MAX_MISCLASSIFIED_SAVED]
        index = [m["index"] for m in shown]
        runs_io.write_npz_atomic(
            run_dir / runs_io.MISCLASSIFIED_FILE, images=test.images[index].cpu().numpy(),
            true=np.array([m["true"] for m in shown], dtype=np.int64),
            pred=np.array([m["pred"] for m in shown], dtype=np.int64),
            confidence=np.array([m["confidence"] for m in shown], dtype=np.float32))
    # metrics.json last: its status says the run's files are complete.
    runs_io.write_json_atomic(run_dir / runs_io.METRICS_FILE, metrics)


def read_evaluation(run_dir: str | Path) -> Evaluation | None:
    data = runs_io.read_json(Path(run_dir) / runs_io.EVALUATION_FILE)
    if not data:
        return None
    return Evaluation(data["accuracy"], data["loss"], np.array(data["confusion"], dtype=np.int64),
                      list(data["classes"]), list(data["misclassified"]),
                      misclassified_total=data.get("misclassified_total"))
