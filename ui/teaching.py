"""What the pages say about whether an image is one the network was trained to name, and the short weights
label for places that show several models at once (Compare).

A built-in sample is a photo, a pattern, a single shape or a handwritten digit (``explorer.imaging.sample_kind``);
a network's trained weights know ImageNet photos, shapes or digits (``LoadedModel.trained_on``). Scores for a
pattern, or for a digit shown to the shapes network, are confident nonsense: the pages say so instead.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ui.common import WEIGHTS_PROBLEM_KINDS, selection, t, weights_text


def prediction_note(loaded: Any, image_name: str | None = None) -> str | None:
    """A sentence saying the image is not one of the network's classes, or None when it may well be (or when
    nothing is known: an upload, a camera photo, a network trained elsewhere)."""
    from explorer.imaging import sample_kind

    if loaded.categories is None:
        return None  # random weights: the pages already show no predictions
    kind = sample_kind(selection().image_name if image_name is None else image_name)
    if kind == "pattern":
        return t("pred.pattern")
    trained = getattr(loaded, "trained_on", "")
    if not kind or not trained:
        return None
    if kind == ("photo" if trained == "imagenet" else trained):
        return None
    names = list(loaded.categories)
    classes = ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
    return t("pred.other_data", dataset=t(f"pred.dataset.{trained}"), classes=classes)


def weights_badge(loaded: Any) -> str:
    """A one-line weights label that never repeats the long no-internet sentence (shown once per page)."""
    if is_weights_problem(loaded):
        return t("common.weights_ok", status=t("sidebar.weights.none"))
    return t("common.weights_ok", status=weights_text(loaded))


def is_weights_problem(loaded: Any) -> bool:
    return getattr(loaded, "weights_kind", "") in WEIGHTS_PROBLEM_KINDS
