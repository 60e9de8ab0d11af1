"""Plotly figures of the training lab: learning curves, the step loss, the confusion matrix, saved runs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from explorer.models import runfolder as runs_io
_DEFAULT_LABELS = {"epoch": "epoch", "loss": "loss", "accuracy": "accuracy", "train": "train", "valid": "valid",
                   "step": "step", "true": "true class", "pred": "predicted class"}


def curves_figure(histories: dict[str, list[dict]], labels: dict[str, str] | None = None, height: int = 360):
    """Train (dashed) and valid (solid) loss and accuracy per epoch, one colour per run."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    text = {**_DEFAULT_LABELS, **(labels or {})}
    fig = make_subplots(rows=1, cols=2, subplot_titles=(text["loss"], text["accuracy"]))
    palette = qualitative.Plotly
    for i, (name, history) in enumerate(histories.items()):
        colour = palette[i % len(palette)]
        epochs = [h["epoch"] for h in history]
        for col, metric in ((1, "loss"), (2, "acc")):
            for split, dash in (("train", "dash"), ("valid", "solid")):
                values = [h.get(f"{split}_{metric}") for h in history]
                if all(v is None for v in values):
                    continue
                fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=f"{name} · {text[split]}",
                                         line=dict(color=colour, dash=dash), legendgroup=name,
                                         showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text=text["epoch"], dtick=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def steps_figure(steps: list[dict], labels: dict[str, str] | None = None, height: int = 260):
    """Training loss as reported during the run (mean over each reporting interval)."""
    import plotly.graph_objects as go

    text = {**_DEFAULT_LABELS, **(labels or {})}
    fig = go.Figure(go.Scatter(x=[s["step"] for s in steps], y=[s["loss"] for s in steps], mode="lines",
                               name=text["loss"]))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=text["step"],
                      yaxis_title=text["loss"])
    return fig


def confusion_figure(confusion: np.ndarray, classes: list[str], labels: dict[str, str] | None = None):
    """Confusion matrix heat map: rows are true classes, columns predictions; counts written in cells."""
    import plotly.graph_objects as go

    text = {**_DEFAULT_LABELS, **(labels or {})}
    fig = go.Figure(go.Heatmap(z=confusion, x=classes, y=classes, colorscale="Blues", text=confusion,
                               texttemplate="%{text}", showscale=False))
    size = max(300, min(700, 60 * len(classes) + 120))
    fig.update_layout(height=size, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=text["pred"],
                      yaxis_title=text["true"], yaxis_autorange="reversed")
    return fig


def compare_runs_figure(run_dirs: Sequence[str | Path], metric: str = "valid_acc",
                        labels: dict[str, str] | None = None, height: int = 360):
    """One line per saved run: ``metric`` (e.g. valid_acc, train_loss) per epoch."""
    import plotly.graph_objects as go

    text = {**_DEFAULT_LABELS, **(labels or {})}
    fig = go.Figure()
    for run_dir in run_dirs:
        history = runs_io.read_metrics(run_dir).get("epochs", [])
        fig.add_trace(go.Scatter(x=[h["epoch"] for h in history], y=[h.get(metric) for h in history],
                                 mode="lines+markers", name=Path(run_dir).name))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=text["epoch"],
                      yaxis_title=text.get(metric, metric), legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(dtick=1)
    return fig
