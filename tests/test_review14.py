"""Session 14: the notes' MLP-vs-CNN comparison (Lab 4: 25,514 → 2,762 parameters) and the registry's ``get_model``.

Counts are checked against torchinfo and hand formulas, never against the module's own arithmetic."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torchinfo

from explorer.history import NOTES_TOTALS, NotesMLP, mlp_vs_cnn_layers, mlp_vs_cnn_summary, params_by_input_side


def _conv_out(n: int, f: int, s: int) -> int:
    return (n - f) // s + 1  # (N − F + 2P)/S + 1 with P = 0, floored as PyTorch does


def test_the_mlp_has_the_notes_25514_parameters_by_torchinfo_and_by_hand():
    assert torchinfo.summary(NotesMLP(), (1, 1, 28, 28), verbose=0).total_params == 25_514
    assert (784 * 32 + 32) + 2 * 32 + (32 * 10 + 10) == 25_514
    summary = mlp_vs_cnn_summary().set_index("model")
    assert summary.loc["mlp", "params"] == NOTES_TOTALS["mlp"]["params"] == 25_514
    assert summary.loc["cnn", "params"] == NOTES_TOTALS["cnn"]["params"] == 2_762
    # "layer count 2 → 4": weight layers (Linear, Conv2d), not BatchNorm
    assert summary.loc["mlp", "weight layers"] == 2 and summary.loc["cnn", "weight layers"] == 4


def test_multiply_adds_match_a_hand_count_of_each_layer():
    # each weight times one input value, per output position (the Compare page's and the papers' count)
    h1 = _conv_out(28, 5, 2)
    h2 = _conv_out(h1, 5, 2)
    h3 = _conv_out(h2, 3, 1)
    assert (h1, h2, h3) == (12, 4, 2)
    cnn = 1 * 25 * 8 * h1 * h1 + 8 * 25 * 8 * h2 * h2 + 8 * 9 * 8 * h3 * h3 + 32 * 10
    mlp = 784 * 32 + 32 * 10
    summary = mlp_vs_cnn_summary().set_index("model")
    assert summary.loc["cnn", "mult_adds"] == cnn == 57_024
    assert summary.loc["mlp", "mult_adds"] == mlp
    assert summary.loc["cnn", "mult_adds"] > summary.loc["mlp", "mult_adds"]  # fewer weights, each used more
    from explorer.history import compare_models

    compared = compare_models(["mnist_cnn", "lenet5"], receptive=False).set_index("model")
    # the Compare page's figure for the same network (its GFLOPs column is mult-adds in billions)
    assert compared.loc["mnist_cnn", "gflops"] * 1e9 == pytest.approx(cnn)
    layers = mlp_vs_cnn_layers()
    assert layers.groupby("model")["params"].sum().to_dict() == {"mlp": 25_514, "cnn": 2_762}
    assert layers.set_index(["model", "layer"]).loc[("cnn", "conv2"), "output"] == "8x4x4"


@pytest.mark.parametrize("side", [28, 57, 224])
def test_parameters_by_input_side_against_torch_modules_built_by_hand(side):
    row = params_by_input_side([side]).iloc[0]
    assert row["mlp"] == side * side * 32 + 32 + 64 + 330
    h = _conv_out(_conv_out(_conv_out(side, 5, 2), 5, 2), 3, 1)
    convs = nn.Sequential(nn.Conv2d(1, 8, 5, 2), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 5, 2), nn.BatchNorm2d(8),
                          nn.Conv2d(8, 8, 3))
    head = nn.Linear(8 * h * h, 10)
    conv_params = sum(p.numel() for m in convs if isinstance(m, nn.Conv2d) for p in m.parameters())
    assert row["cnn convolutions"] == conv_params == 2_400
    assert row["cnn batchnorm"] == 32
    assert row["cnn head"] == sum(p.numel() for p in head.parameters())
    assert row["cnn"] == row["cnn convolutions"] + row["cnn batchnorm"] + row["cnn head"]


def test_a_side_the_cnn_cannot_take_is_refused_clearly():
    with pytest.raises(ValueError, match="21"):
        params_by_input_side([20])


def test_the_mlp_learns_like_a_network(monkeypatch):
    """The stand-in MLP is a real network: it trains (loss falls) on a separable toy problem."""
    torch.manual_seed(0)
    model = NotesMLP(side=8, hidden=8, num_classes=2)
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def _values(array) -> list:
    """A plotly array as the figure JSON holds it: a list, or base64 ``bdata`` with its dtype."""
    import base64

    import numpy as np

    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_course_concepts_tab_shows_the_comparison(app_factory, lang):
    at = app_factory("course_concepts", sel_model="mnist_cnn", sel_weights="none", lang=lang)
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    summary = [f for f in frames if f.isin([25_514]).any().any() and f.isin([2_762]).any().any()]
    assert summary, "the summary table with both totals"
    shown = summary[0]
    names = ("MLP (2층)", "CNN (mnist_cnn)") if lang == "ko" else ("MLP (2 layers)", "CNN (mnist_cnn)")
    assert list(shown.iloc[:, 0]) == list(names)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    mlp_trace = [s for s in specs if s["data"] and s["data"][0].get("name") == "MLP"][-1]["data"][0]
    assert _values(mlp_trace["x"])[-1] == 224 and _values(mlp_trace["y"])[-1] == 224 * 224 * 32 + 32 + 64 + 330
    captions = " ".join(c.value for c in at.caption)
    assert "9.2" in captions and "2.2" in captions  # 25,514 / 2,762 fewer parameters, 57,024 / 25,408 more mult-adds


def test_get_model_builds_what_the_registry_names():
    import explorer

    net = explorer.get_model("mnist_cnn")
    assert sum(p.numel() for p in net.parameters()) == 2_762
    assert not net.training


def _result(final_acc: dict[str, float]) -> dict:
    """A degradation result whose networks end at the given training accuracies (two epochs each)."""
    return {"setting": {"dataset": "digits", "image_size": 32, "epochs": 2, "batch_size": 64, "lr": 0.05},
            "runs": [{"model": m, "epochs": [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "valid_acc": 0.5},
                                             {"epoch": 2, "train_loss": 0.5, "train_acc": acc, "valid_acc": acc}]}
                     for m, acc in final_acc.items()]}


def test_degradation_verdict_reads_the_last_epoch_of_each_network():
    from explorer.training import degradation_result, degradation_verdict

    shipped = json.loads((__import__("pathlib").Path(__file__).resolve().parents[1]
                          / "explorer/training/results/degradation.json").read_text())
    last = {run["model"]: 100 * (1 - run["epochs"][-1]["train_acc"]) for run in shipped["runs"]}
    verdict = degradation_verdict(degradation_result())
    for model, error in last.items():
        assert verdict[model] == pytest.approx(error)
    assert verdict["plain_degrades"] == (last["plain34"] > last["plain18"])
    assert verdict["residual_not_worse"] == (last["resnet34_a"] <= last["resnet18_a"])
    paper_like = degradation_verdict(_result({"plain18": 0.9, "plain34": 0.8, "resnet18_a": 0.9, "resnet34_a": 0.95}))
    assert paper_like["plain_degrades"] and paper_like["residual_not_worse"]
    assert paper_like["resnet34_a"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="resnet34_a"):
        degradation_verdict(_result({"plain18": 0.9, "plain34": 0.8, "resnet18_a": 0.9}))


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_residual_tab_caption_says_what_the_shipped_run_shows(app_factory, lang):
    from explorer.core import translate
    from explorer.training import degradation_result, degradation_verdict

    verdict = degradation_verdict(degradation_result())
    at = app_factory("course_concepts", sel_model="mnist_cnn", sel_weights="none", lang=lang)
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    errors = {k: f"{v:.1f}" for k, v in verdict.items() if not isinstance(v, bool)}
    residual = "not_worse" if verdict["residual_not_worse"] else "short_run"
    assert translate(f"cc.res.residual_{residual}", lang, **errors) in captions
    assert translate("cc.res.residual_" + ("short_run" if residual == "not_worse" else "not_worse"), lang,
                     **errors) not in captions
    assert f"{verdict['resnet34_a']:.1f} %" in captions and f"{verdict['resnet18_a']:.1f} %" in captions


def test_lenet5_has_the_papers_seven_weight_layers_on_the_compare_page():
    """LeCun et al. (1998): "LeNet-5 comprises seven layers ... all of which contain trainable parameters"; S2 and
    S4 add one multiply per output unit (6·14·14 and 16·5·5) to the conv and FC layers' weight products."""
    from explorer.history import compare_models

    table = compare_models(["lenet5", "lenet5_dense"], receptive=False).set_index("model")
    assert table.loc["lenet5", "weight_layers"] == 7
    assert table.loc["lenet5_dense", "weight_layers"] == 5  # 2 convs + 3 FC, max pools hold no weights
    c3 = 10 * 10 * 25 * (6 * 3 + 6 * 4 + 3 * 4 + 1 * 6)  # C3's 60 connected 5×5 kernels at 10×10
    hand = 28 * 28 * 6 * 25 + 6 * 14 * 14 + c3 + 16 * 5 * 5 + 120 * 400 + 84 * 120 + 10 * 84
    assert table.loc["lenet5", "gflops"] * 1e9 == pytest.approx(hand)
