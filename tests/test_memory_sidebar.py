"""The sidebar's largest input follows the model (issue 14): capped at the largest side whose shared pass fits the
memory budget per request, with a caption saying why, and a larger typed input scaled down with a warning."""
from __future__ import annotations

import torch


def sidebar_texts(at, kind: str) -> list[str]:
    return [element.value for element in getattr(at.sidebar, kind)]


def test_a_big_model_is_capped_lower_than_a_small_one(app_factory, monkeypatch):
    from explorer.analysis import MAX_INPUT_SIDE, pass_cost
    from explorer.models import build_model

    budget_mb = 160
    monkeypatch.setenv("EXPLORER_REQUEST_MB", str(budget_mb))
    at = app_factory("architecture", sel_model="mnist_cnn", sel_weights="none", sel_input="1024x1024")
    assert not at.exception
    assert not any("larger than this model may use" in w for w in sidebar_texts(at, "warning"))
    assert not any("Largest input for this model" in c for c in sidebar_texts(at, "caption"))

    at = app_factory("architecture", sel_model="efficientnet_b0", sel_weights="none", sel_input="1024x512")
    assert not at.exception
    warning = next(w for w in sidebar_texts(at, "warning") if "larger than this model may use" in w)
    side = int(warning.split("using ")[1].split("×")[0])
    assert side < MAX_INPUT_SIDE and f"budget per request: {budget_mb} MB" in warning
    # Checked against the estimate at that side and a little above it.
    with torch.device("meta"):
        model = build_model("efficientnet_b0")
    budget = budget_mb * 2**20
    assert pass_cost(model, (3, side, side), "shared") <= budget < pass_cost(model, (3, side + 32, side + 32), "shared")

    at = app_factory("architecture", sel_model="efficientnet_b0", sel_weights="none", sel_input="64x64")
    assert not at.exception
    assert not any("larger than this model may use" in w for w in sidebar_texts(at, "warning"))
    assert any(f"Largest input for this model here: {side}×{side}" in c for c in sidebar_texts(at, "caption"))


def test_the_cap_is_explained_in_korean_too(app_factory, monkeypatch):
    monkeypatch.setenv("EXPLORER_REQUEST_MB", "160")
    at = app_factory("architecture", lang="ko", sel_model="efficientnet_b0", sel_weights="none", sel_input="1024x1024")
    assert not at.exception
    assert any("메모리 예산" in w for w in sidebar_texts(at, "warning"))
