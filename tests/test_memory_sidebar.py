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


def test_the_cap_is_kept_across_restarts_only_for_shipped_code(tmp_path, monkeypatch):
    """The cap's disk key (``largest_side_key``) exists for the registry's shipped networks and names the versions it
    depends on; it is None for an operator's file, a training run, a typed architecture or an unknown name."""
    import importlib.metadata

    import explorer
    from explorer.analysis import largest_side_key

    key = largest_side_key("tiny_vgg")
    assert key is not None and torch.__version__ in key and importlib.metadata.version("torchvision") in key
    assert largest_side_key("resnet18") == key  # one text for all shipped code: a new version measures everything
    assert largest_side_key("arch:C3-16,P2,FC10") is None
    assert largest_side_key("no_such_network") is None
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert explorer.models.ModelRef.parse(str(run)).kind == "run" and largest_side_key(str(run)) is None

    source = tmp_path / "my_cnn.py"
    source.write_text("import torch.nn as nn\n"
                      "class MyCNN(nn.Module):\n"
                      "    def __init__(self):\n"
                      "        super().__init__(); self.conv = nn.Conv2d(3, 4, 3); self.fc = nn.Linear(4, 2)\n"
                      "    def forward(self, x):\n"
                      "        return self.fc(self.conv(x).mean((2, 3)))\n")
    monkeypatch.setenv("EXPLORER_MODELS", str(source))
    names = explorer.models.list_models()
    user = next(n for n in names if "mycnn" in n.lower() or "my_cnn" in n.lower())
    assert largest_side_key(user) is None


def _budgets():
    return 64 * 2**20, 256 * 2**20


def test_a_cap_that_cannot_be_read_from_disk_is_measured_here(monkeypatch):
    """A read-only home or a file half written by another replica: the sidebar still gets the measured side."""
    from explorer.analysis import largest_input_side
    from ui import memory_budget

    def unreadable(*args, **kwargs):
        raise OSError("read-only file system")

    monkeypatch.setattr(memory_budget, "_kept_largest_side", unreadable)
    memory_budget.largest_side.clear()
    budget, max_bytes = _budgets()
    assert memory_budget.largest_side("tiny_vgg", budget, max_bytes) == largest_input_side(
        "tiny_vgg", budget=budget, max_bytes=max_bytes)


def test_a_cap_measured_but_not_written_is_not_measured_twice(monkeypatch):
    """Streamlit measures, then fails to write the file: the value measured is returned, not measured again."""
    import explorer.analysis
    from streamlit.runtime.caching.cache_errors import CacheError

    from ui import memory_budget

    def measured_then_unwritable(name, budget, max_bytes, code_key):
        memory_budget._measured[(name, budget, max_bytes, code_key)] = 321
        raise CacheError("Unable to write to cache")

    def measure_again(*args, **kwargs):
        raise AssertionError("measured a second time")

    monkeypatch.setattr(memory_budget, "_kept_largest_side", measured_then_unwritable)
    monkeypatch.setattr(explorer.analysis, "largest_input_side", measure_again)
    memory_budget.largest_side.clear()
    assert memory_budget.largest_side("tiny_vgg", *_budgets()) == 321
    assert not memory_budget._measured  # nothing left behind


def test_a_failed_measurement_is_not_reported_as_a_disk_problem(monkeypatch):
    from ui import memory_budget

    def broken_estimate(*args, **kwargs):
        raise ValueError("the estimate itself failed")

    monkeypatch.setattr(memory_budget, "_kept_largest_side", broken_estimate)
    memory_budget.largest_side.clear()
    import pytest

    with pytest.raises(ValueError, match="estimate itself"):
        memory_budget.largest_side("tiny_vgg", *_budgets())


def test_a_size_over_the_apps_limit_is_scaled_down_not_called_malformed(app_factory):
    """2048x1024 used to be "not H×W" and fell back to the natural size; it is well formed, so it is scaled down to
    the app's 1024 per side, aspect kept, with the reason."""
    at = app_factory("home", sel_model="mnist_cnn", sel_weights="none", sel_input="2048x1024")
    assert not at.exception
    assert at.session_state["_selection"].input_shape == (1, 1024, 512)
    warnings = sidebar_texts(at, "warning")
    assert any("limit of 1024 pixels per side: using 1024×512" in w for w in warnings), warnings
    assert not any("not H×W" in w for w in warnings)
