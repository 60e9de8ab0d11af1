"""Session 13's reviews (the user's own networks, random-network fuzzing, the course notes), one test per confirmed
finding. Every expected value is computed independently: Grad-CAM and gradients by hand with forward hooks and
``torch.autograd.grad``, mult-adds and parameter shares by hand formulas, state_dict checks by building the file.
"""
from __future__ import annotations

import io
import json
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F


# --- Grad-CAM of a call that returns its input (nn.Identity, eval-mode Dropout) --------------------------------
class _IdentityShortcut(nn.Module):
    """``x = c1(x); s = id(x); y = c2(x) + s``: the identity's output is c1's output, used on two paths."""

    def __init__(self, passthrough: nn.Module) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.id = passthrough
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.c1(x)
        s = self.id(x)
        y = self.c2(x) + s
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(y), 1), 1))


def _hand_cam(model: nn.Module, x: torch.Tensor, layer: str, target: int) -> np.ndarray:
    """A forward hook keeps the layer's output; the gradient of the target logit with respect to that tensor
    (every use of it); ReLU of the gradient-mean-weighted sum of its channels."""
    kept = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: kept.append(o))
    try:
        with torch.enable_grad():
            xx = x.clone().requires_grad_(True)  # the graph reaches every layer
            out = model(xx)
            grad, = torch.autograd.grad(out[0, target], kept[0])
    finally:
        handle.remove()
    weights = grad[0].mean(dim=(1, 2))
    return torch.relu((weights[:, None, None] * kept[0][0]).sum(0)).detach().numpy()


@pytest.mark.parametrize("passthrough", [nn.Identity(), nn.Dropout(0.5)], ids=["identity", "dropout_eval"])
def test_grad_cam_of_a_passthrough_call_counts_every_use_of_its_tensor(passthrough):
    from explorer.analysis import analyze, grad_cam, upsample_cam

    torch.manual_seed(0)
    model = _IdentityShortcut(passthrough).eval()
    x = torch.randn(1, 3, 14, 18)
    expected = _hand_cam(model, x, "id", 1)
    alone = analyze(model, x, "id", 1).cam_raw["id"]
    with_another = analyze(model, x, ["c1", "id"], 1).cam_raw["id"]
    np.testing.assert_allclose(alone, expected, atol=1e-6)
    np.testing.assert_allclose(with_another, expected, atol=1e-6)
    np.testing.assert_allclose(grad_cam(model, x, "id", 1), upsample_cam(expected, (14, 18)), atol=1e-5)
    # The recorded activations are untouched by tying the tensor to the graph.
    recorded = analyze(model, x, "id", 1, layers=["c1", "id"]).activations
    with torch.no_grad():
        reference = model.c1(x)
    torch.testing.assert_close(recorded["c1"], reference)
    torch.testing.assert_close(recorded["id"], reference)


# --- vanishing gradients: the gradient reaching each layer's output ---------------------------------------------
def test_output_gradient_norms_match_hand_backprop_through_inplace_relu():
    from explorer.training import layer_gradient_norms

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3), nn.ReLU(inplace=True),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    table = layer_gradient_norms(model, x, y).set_index("layer")
    # by hand, on a copy whose ReLUs are not in place: the conv outputs keep their own values and gradients
    reference = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                              nn.Linear(64, 3))
    reference.load_state_dict(model.state_dict())
    a0 = reference[0](x)
    a2 = reference[2](reference[1](a0))
    out = reference[5](reference[4](reference[3](a2)))
    g0, g2, g5 = torch.autograd.grad(F.cross_entropy(out, y), [a0, a2, out])
    np.testing.assert_allclose(table.loc[["0", "2", "5"], "output_grad_norm"],
                               [g0.norm().item(), g2.norm().item(), g5.norm().item()], rtol=1e-5)
    assert g0.norm() != g2.norm()  # the pre-ReLU gradient differs from the post-ReLU one the test would miss


def test_plain_network_gradient_vanishes_toward_the_input_and_residual_does_not():
    """What the vanishing-gradient tab and its caption say, at the page's own settings (BatchNorm off)."""
    from explorer.training import gradient_experiment

    frame = gradient_experiment(("plain34", "resnet34_a"), batch_norm=False, image_size=16, batch=8)
    ends = frame.groupby("network")["output_grad_norm"].agg(["first", "last"])
    ratio = ends["first"] / ends["last"]
    assert ratio["plain34"] < 1e-4  # orders of magnitude smaller at the first layer
    assert ratio["resnet34_a"] > 0.05  # within a small factor: the shortcut carries it


def test_gradient_tab_plots_the_chosen_gradient_in_korean(app_factory):
    at = app_factory("course_concepts", sel_model="mnist_cnn", sel_weights="none", lang="ko")
    at.radio(key="cc_gr_depth").set_value(18).run()
    at.button(key="cc_gr_run").click().run()
    assert not at.exception, at.exception
    def y_title() -> str:
        chart = [c for c in at.get("plotly_chart") if "plain18" in c.proto.spec]
        assert chart
        return json.loads(chart[0].proto.spec)["layout"]["yaxis"]["title"]["text"]

    assert "∂L/∂a" in y_title() and "기울기" in y_title()
    at.radio(key="cc_gr_quantity").set_value("grad_norm").run()
    assert "∂L/∂W" in y_title()


# --- course notes: AlexNet's dropout, Korean table headers, VGG's FC share -----------------------------------------
def test_alexnet_paper_drops_the_outputs_of_fc6_and_fc7():
    from explorer.models import build_model

    model = build_model("alexnet_paper")
    kinds = [type(m).__name__ for m in model.classifier]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert model.classifier[6].out_features == 1000
    assert torch.all(model.classifier[0].bias == 1) and torch.all(model.classifier[3].bias == 1)  # the paper's init
    assert torch.all(model.classifier[6].bias == 0)


def test_course_concepts_tables_have_korean_headers(app_factory):
    at = app_factory("course_concepts", sel_model="mnist_cnn", sel_weights="none", lang="ko")
    assert not at.exception, at.exception
    headers = {str(c) for frame in at.dataframe for c in frame.value.columns}
    english = {"trainable", "fixed", "connections", "connections (paper)", "paper: params", "torchvision: params",
               "branch", "train_error", "residual, option A (resnetN_a)"}
    assert not headers & english, headers & english
    assert "학습 가능" in headers and "논문: 파라미터" in headers


def test_vgg16_fully_connected_share_by_hand():
    from explorer.history import fully_connected_share

    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56),
             (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14),
             (512, 512, 14)]
    conv_params = sum(9 * cin * cout + cout for cin, cout, _ in convs)
    conv_ops = sum(9 * cin * cout * side * side for cin, cout, side in convs)
    fcs = [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]
    fc_params = sum(i * o + o for i, o in fcs)
    fc_ops = sum(i * o for i, o in fcs)
    share = fully_connected_share("vgg_d")
    assert share["params"] == pytest.approx(100 * fc_params / (fc_params + conv_params))
    assert share["mult_adds"] == pytest.approx(100 * fc_ops / (fc_ops + conv_ops))
    assert 89 < share["params"] < 90 and share["mult_adds"] < 1


# --- the user's own networks -----------------------------------------------------------------------------------------
TUPLE_NETS = '''
import torch
import torch.nn as nn


class PairOut(nn.Module):
    """Returns (logits, features), as much course code does."""
    input_shape = (3, 24, 24)

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.cls = nn.Linear(4 * 22 * 22, 5)

    def forward(self, x):
        f = self.body(x)
        return self.cls(torch.flatten(f, 1)), f


class NoTensorOut(nn.Module):
    input_shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return {"shape": tuple(self.conv(x).shape)}
'''


@pytest.fixture
def tuple_nets(tmp_path, monkeypatch):
    path = tmp_path / "pairs.py"
    path.write_text(TUPLE_NETS)
    monkeypatch.setenv("EXPLORER_MODELS", str(path))
    return path


def test_a_network_returning_a_tuple_loads_with_its_first_tensors_classes(tuple_nets):
    from explorer.models import load_model

    loaded = load_model("PairOut", weights="none", device="cpu")
    with torch.no_grad():
        logits, _features = loaded.model(torch.zeros(1, 3, 24, 24))
    assert len(loaded.class_names) == logits.shape[1] == 5
    with pytest.raises(ValueError, match="no tensor"):
        load_model("NoTensorOut", weights="none", device="cpu")


def _saved(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_state_dicts_with_odd_keys_or_no_values_are_refused_by_name():
    from explorer.models.checkpoints import CheckpointError, read_state_dict

    weight = torch.zeros(2, 3)
    with pytest.raises(CheckpointError, match="key 1 .*int.* not a parameter name"):
        read_state_dict(_saved({1: weight}))
    with pytest.raises(CheckpointError, match="not a parameter name"):
        read_state_dict(_saved({("conv", 1): weight}))
    with pytest.raises(CheckpointError, match="'w'.*meta device"):
        read_state_dict(_saved({"w": torch.empty(2, 3, device="meta")}))
    quantized = torch.quantize_per_tensor(torch.ones(2, 3), 0.1, 0, torch.qint8)
    with pytest.raises(CheckpointError, match="'q'.*quantized"):
        read_state_dict(_saved({"q": quantized}))


def test_complex_or_bool_weights_are_refused_and_half_precision_loads():
    from explorer.models.checkpoints import CheckpointError, apply_state_dict

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    complex_state = dict(state, **{"0.weight": state["0.weight"].to(torch.complex64) * (1 + 1j)})
    with pytest.raises(CheckpointError, match=r"0\.weight: checkpoint complex64 vs model float32"):
        apply_state_dict(model, complex_state)
    with pytest.raises(CheckpointError, match=r"0\.bias: checkpoint bool vs model float32"):
        apply_state_dict(model, dict(state, **{"0.bias": torch.ones(2, dtype=torch.bool)}))
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    apply_state_dict(model, half)
    torch.testing.assert_close(model[0].weight, state["0.weight"].half().float())


FUNCTIONAL_NET = '''
import torch, torch.nn as nn, torch.nn.functional as F

class OwnWeights(nn.Module):
    input_shape = (1, 16, 20)

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 1, 5, 5))
        self.b = nn.Parameter(torch.zeros(6))
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(F.conv2d(x, self.w, self.b, stride=2))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))
'''


def test_compare_counts_functional_convolutions(tmp_path, monkeypatch):
    from explorer.history import mult_adds_by_module
    from explorer.models import build_model

    path = tmp_path / "own.py"
    path.write_text(textwrap.dedent(FUNCTIONAL_NET))
    monkeypatch.setenv("EXPLORER_MODELS", str(path))
    model = build_model("OwnWeights")
    out_h, out_w = (16 - 5) // 2 + 1, (20 - 5) // 2 + 1  # 6 × 8
    expected = 6 * 1 * 5 * 5 * out_h * out_w + 6 * 3  # weights × positions, no bias (Compare's convention)
    assert sum(mult_adds_by_module(model, (1, 16, 20)).values()) == expected


# --- typed networks: the Build page's figures, and a spec without an input token ---------------------------------
def test_build_page_headline_mult_adds_equal_torchinfo(app_factory):
    torchinfo = pytest.importorskip("torchinfo")
    from explorer.models.arch import build_arch

    spec = "in-1x28x28 conv5-6 M conv5-16 M FC-120 FC-84 FC-10"
    at = app_factory("build", build_current=spec)
    assert not at.exception, at.exception
    model, shape = build_arch(spec)
    expected = torchinfo.summary(model, input_size=(1, *shape), verbose=0).total_mult_adds
    metric = [m for m in at.metric if m.label == "Mult-adds"][0]
    assert f"{expected:,}" in metric.proto.help


def test_a_typed_network_without_input_token_is_built_for_the_sidebar_input(app_factory):
    from explorer.analysis import largest_input_side
    from explorer.models.arch import ArchSpecError, spec_with_input

    at = app_factory("architecture", sel_model="arch:conv3-8 M FC-10", sel_weights="none", sel_input="28x28")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # conv3 keeps 28×28, M halves it: the FC takes 8·14·14 inputs (listed in the layer table)
    text = " ".join(str(frame.value.to_dict()) for frame in at.dataframe)
    assert "1,568" in text or "1568" in text
    with pytest.raises(ArchSpecError, match="sides of 1–512 pixels; it was given 3×600×600"):
        spec_with_input("conv3-8 M GAP FC-10", (3, 600, 600))
    assert largest_input_side("arch:conv3-8 M GAP FC-10") <= 512


def test_a_folder_named_as_a_model_file_is_reported_as_a_folder(tmp_path, monkeypatch):
    from explorer.models import list_models, user_model_problems

    folder = tmp_path / "my_models"
    folder.mkdir()
    monkeypatch.setenv("EXPLORER_MODELS", str(folder))
    assert "resnet18" in list_models()
    problems = user_model_problems()
    assert len(problems) == 1 and "is a folder" in problems[0].message and "no such file" not in problems[0].message


# --- attribution methods (review): train mode, reused convs, occlusion's edges, Guided Grad-CAM, inference mode ---
def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.5),
                         nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 3))


@pytest.mark.parametrize("method", ["grad_cam", "saliency", "integrated_gradients", "occlusion", "guided_gradcam",
                                    "analyze", "predict"])
def test_a_model_left_in_train_mode_is_explained_in_eval_mode_and_not_changed(method):
    from explorer.analysis import analyze, attribute, grad_cam, predict

    model = _bn_net()
    x = torch.randn(1, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    calls = {
        "grad_cam": lambda: grad_cam(model, x, "4", 1),
        "analyze": lambda: analyze(model, x, "4", 1).cam_raw["4"],
        "predict": lambda: np.array([p.probability for p in predict(model, x, 3, ["a", "b", "c"])]),
    }
    run = calls.get(method, lambda: attribute(model, x, method, layer="4", target=1))
    model.eval()
    expected = run()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first, second = run(), run()
    assert model.training and all(m.training for m in model.modules())  # the caller's flags come back
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # running statistics untouched
    np.testing.assert_allclose(first, expected, atol=1e-6)
    np.testing.assert_allclose(second, expected, atol=1e-6)


def test_the_default_cam_layer_is_the_last_call_of_a_reused_conv():
    from explorer.analysis import default_cam_layer, executed_output_shapes

    class Reused(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.shared = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            x = self.shared(torch.relu(self.stem(x)))
            x = self.shared(F.max_pool2d(torch.relu(x), 2))  # the last conv call: 12×16
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    model = Reused().eval()
    shapes = executed_output_shapes(model, (3, 24, 32))
    assert shapes["shared"] == (1, 4, 24, 32) and shapes["shared#2"] == (1, 4, 12, 16)
    assert default_cam_layer(model, (3, 24, 32)) == "shared#2"


@pytest.mark.parametrize("side, window, stride", [((64, 64), 9, 9), ((20, 36), 4, 3), ((21, 35), 5, 5)])
def test_occlusion_covers_every_pixel_as_captum_does(side, window, stride):
    from captum.attr import Occlusion

    from explorer.analysis import occlusion

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(16, 3)).eval()
    x = torch.randn(1, 3, *side, generator=torch.Generator().manual_seed(2))
    ours = occlusion(model, x, target=1, window=window, stride=stride)
    theirs = Occlusion(model).attribute(x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
                                        baselines=0, target=1)[0].sum(0).numpy()
    theirs = np.maximum(theirs, 0)
    assert theirs.max() > 0
    np.testing.assert_allclose(ours, theirs / theirs.max(), atol=1e-5)
    assert ours[-1].max() > 0 or theirs[-1].max() == 0  # the last row is covered


def test_guided_gradcam_is_guided_backprop_times_the_bilinear_gradcam():
    from explorer.analysis import guided_gradcam

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    x = torch.randn(1, 3, 24, 40, generator=torch.Generator().manual_seed(1))

    class GuidedReLU(torch.autograd.Function):  # a ReLU whose backward also zeroes negative gradients
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t.clamp_min(0)

        @staticmethod
        def backward(ctx, g):
            (t,) = ctx.saved_tensors
            return g.clamp_min(0) * (t > 0)

    def run(inp, guided):
        out, act = inp, None
        for index, module in enumerate(model):
            out = GuidedReLU.apply(out) if guided and isinstance(module, nn.ReLU) else module(out)
            if index == 6:
                act = out
        return out, act

    xg = x.clone().requires_grad_(True)
    (guided,) = torch.autograd.grad(run(xg, True)[0][0, 1], xg)
    out, act = run(x, False)
    (grad,) = torch.autograd.grad(out[0, 1], act)
    cam = torch.relu((grad[0].mean((1, 2))[:, None, None] * act[0]).sum(0)).detach()
    up = F.interpolate(cam[None, None], size=(24, 40), mode="bilinear", align_corners=False)[0, 0].clamp_min(0)
    values = (guided[0] * up).abs().amax(0).numpy()
    expected = np.clip(values / np.percentile(values, 99.5), 0, 1)
    np.testing.assert_allclose(guided_gradcam(model, x, "6", 1), expected, atol=1e-4)


def test_attributions_work_under_inference_mode():
    from explorer.analysis import grad_cam, saliency

    model = _bn_net().eval()
    x = torch.randn(1, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    expected_cam, expected_saliency = grad_cam(model, x, "4", 1), saliency(model, x, 1)
    with torch.inference_mode():
        inference_x = x.clone()
        np.testing.assert_allclose(grad_cam(model, inference_x, "4", 1), expected_cam, atol=1e-6)
        np.testing.assert_allclose(saliency(model, inference_x, 1), expected_saliency, atol=1e-6)


# --- a whole class on one server: passes that other threads cannot disturb, and that disturb nobody -------------
def test_counting_depth_leaves_other_threads_forward_passes_alone():
    """Compare's depth used torch.fx, which patches nn.Module.__call__ for the whole process while it traces."""
    import threading

    from explorer.history import weight_layer_depth

    other = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    failures: list[BaseException] = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.fc = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.Linear(4, 2)

        def forward(self, x):
            def elsewhere():  # another session's forward pass, at this very moment
                try:
                    other(torch.zeros(1, 3, 8, 8))
                except BaseException as exc:  # noqa: BLE001
                    failures.append(exc)
            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join()
            return self.fc(F.adaptive_avg_pool2d(self.b(torch.relu(self.a(x))), 1).flatten(1))

    assert weight_layer_depth(Probe().eval(), (3, 16, 16)) == 3  # a → b → fc
    assert not failures, failures


def test_tables_ignore_another_threads_unlocked_forward_pass():
    import threading

    from explorer.analysis import executed_output_shapes, layer_table
    from explorer.history import profile

    class Busy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            y = self.inner(x)
            # someone ignoring the model's lock runs a submodule meanwhile, on another thread
            thread = threading.Thread(target=lambda: self.inner(torch.zeros(1, 3, 5, 5)))
            thread.start()
            thread.join()
            return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))

    model = Busy().eval()
    table = layer_table(model, (3, 8, 8))
    assert list(table["layer"]) == ["inner", "adaptive_avg_pool2d", "flatten", "fc"]  # no "inner#2"
    assert table.set_index("layer").loc["inner", "mult_adds"] == (3 * 3 * 9 + 3) * 8 * 8
    counts, _params = profile(model, (3, 8, 8))
    assert counts == {"inner": 3 * 3 * 9 * 8 * 8, "fc": 3 * 2}
    assert set(executed_output_shapes(model, (3, 8, 8))) == {"inner", "fc"}


def test_copies_made_inside_a_pass_do_not_take_the_pass_with_them():
    from explorer.analysis import pass_cost, route_call
    from explorer.core import hook_count
    from explorer.training import layer_gradient_norms

    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()

    x, y = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3)), torch.tensor([0, 1, 2, 0])
    clean = layer_gradient_norms(net(), x, y)
    model = net()
    with route_call(model, "3", lambda t: t):  # a pass in progress on this thread
        inside = layer_gradient_norms(model, x, y)
        cost_inside = pass_cost(model, (3, 32, 32), "shared")
    assert hook_count(model) == 0
    np.testing.assert_allclose(inside[["output_grad_norm", "grad_norm"]].to_numpy(),
                               clean[["output_grad_norm", "grad_norm"]].to_numpy(), rtol=1e-5)
    assert pass_cost(model, (3, 32, 32), "shared") == cost_inside == pass_cost(net(), (3, 32, 32), "shared")


# --- what the pages show: receptive-field summary, conv arithmetic, augmentation, feature maps ---------------------
def test_receptive_field_summary_gives_each_side_on_a_non_square_input(app_factory):
    at = app_factory("receptive_field", sel_model="resnet18", sel_weights="none", sel_input="200x160")
    assert not at.exception, at.exception
    text = " ".join(m.value for m in [*at.markdown, *at.info])
    # resnet18's last conv (layer4.1.conv2) sees 435 pixels: 1 + Σ (k − 1)·jump over its convs and pools
    assert "2.17× the height and 2.72× the width of the 200×160 image" in text


def test_conv_arithmetic_grid_marks_cells_no_dilated_tap_reads():
    from explorer.receptive import UNVISITED, conv_arithmetic, kernel_grid

    for n, f, p, s, d in [(7, 3, 0, 2, 2), (9, 3, 1, 1, 3), (8, 2, 2, 3, 2), (7, 3, 1, 2, 1)]:
        arith = conv_arithmetic(n, f, p, s, d)
        last = arith.output ** 2 - 1  # the last window: the cells it reads never hide others
        grid, (row, col) = kernel_grid(arith, last)
        x = torch.zeros(1, 1, n + 2 * p, n + 2 * p, requires_grad=True)  # the padded input itself
        F.conv2d(x, torch.ones(1, 1, f, f), stride=s, dilation=d).sum().backward()
        read = (x.grad[0, 0] != 0).numpy()
        # outside the window drawn (its own span shows taps and skipped cells) and outside the padding band
        outside = np.ones_like(read)
        r0, c0, span = arith.positions[row], arith.positions[col], arith.effective_kernel
        outside[r0:r0 + span, c0:c0 + span] = False
        inner = np.zeros_like(read)
        inner[p:p + n, p:p + n] = True
        mask = outside & inner
        np.testing.assert_array_equal((grid == UNVISITED)[mask], ~read[mask], err_msg=str((n, f, p, s, d)))
        if (n, f, p, s, d) == (7, 3, 0, 2, 2):
            assert (~read[mask]).any()  # rows and columns 1, 3, 5 are never read


def test_conv_arithmetic_page_clamps_values_set_out_of_range(app_factory):
    at = app_factory("conv_arithmetic", ca_pos=0, ca_hw=500, ca_l=1, ca_n=7)
    assert not at.exception, at.exception
    assert at.slider(key="ca_l").value == 2 and at.slider(key="ca_hw").value == 224
    stack_table = [frame.value for frame in at.dataframe if len(frame.value.columns) == 3]
    assert stack_table  # property, the stack, the big kernel: two columns of figures


def test_augmentation_code_reproduces_the_draws_of_a_large_picture():
    from PIL import Image

    from explorer.imaging import augment as A

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (900, 1500, 3), dtype=np.uint8))
    config = A.AugmentConfig(hflip_p=0.5, rotation_degrees=15.0, crop=True, crop_size=96, brightness=0.3,
                             erasing_p=0.5, normalize=True)
    preview = A.prepare_preview(image, 320)
    shown = A.draws(preview, config, 3, seed=7)
    code = A.pipeline_code(config, 7, preview_size=preview.size, preview_side=320)
    resize = next(line for line in code.splitlines() if ".resize(" in line)
    namespace: dict = {"image": image}
    exec(code, namespace)  # the pipeline itself
    exec("from PIL import Image\n" + resize.lstrip("# ").split("  #")[0], namespace)  # the copy, as the comment says
    for i, draw in enumerate(shown):
        torch.manual_seed(7 + i)
        torch.testing.assert_close(namespace["transform"](namespace["image"]), draw, rtol=0, atol=0)


def test_augmentation_pictures_are_the_draws_own_pixels():
    import io

    from PIL import Image

    from explorer.imaging import augment as A
    from ui.filters_ui import draw_pictures

    draws = [torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(i)).numpy() for i in range(2)]
    pictures = draw_pictures("k", (), 2, 0, 320, False, _draws=draws)
    for (data, _clipped), draw in zip(pictures, draws):
        shown = np.asarray(Image.open(io.BytesIO(data)))
        expected = (np.clip(draw, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
        zoom = shown.shape[0] // 5
        assert zoom >= 2 and shown.shape[:2] == (5 * zoom, 7 * zoom)
        np.testing.assert_array_equal(shown[::zoom, ::zoom], expected)  # PNG, whole pixels: exact


@pytest.mark.parametrize("cmap", ["hot", "jet", "bone", "viridis"])
def test_interactive_heatmaps_use_opencvs_colours(cmap):
    import cv2

    from explorer.imaging import COLORMAPS, plotly_colorscale

    scale = plotly_colorscale(cmap)
    assert scale[0][0] == 0.0 and scale[-1][0] == 1.0
    for position, colour in scale:
        row = round(position * 255)
        bgr = cv2.applyColorMap(np.array([[row]], dtype=np.uint8), COLORMAPS[cmap])[0, 0]
        assert colour == f"rgb({bgr[2]},{bgr[1]},{bgr[0]})"


def test_a_tanh_networks_activation_map_is_not_called_relu(app_factory):
    at = app_factory("feature_maps", sel_model="lenet5", sel_weights="none")
    assert not at.exception, at.exception
    at.selectbox(key="maps_layer").set_value("C1").run()
    assert not at.exception, at.exception
    radio = at.radio(key="maps_kind")
    labels = radio.options
    assert any("ScaledTanh" in label or "Tanh" in label for label in labels), labels
    assert not any("ReLU" in label for label in labels), labels


# --- second read and the Grad-CAM / Compare pages (review) ----------------------------------------------------------
class _InputShortcut(nn.Module):
    """The identity takes the model's input itself: ``body(x) + self.shortcut(x)`` at the top."""

    def __init__(self, rewrite: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shortcut, self.body = nn.Identity(), nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
        self.rewrite = rewrite

    def forward(self, x):
        s = self.shortcut(x)
        if self.rewrite:  # the identity's output changed in place afterwards: no gradient through it exists
            s += self.body(x)
            return self.head(s)
        return self.head(self.body(x) + s)


def test_a_passthrough_cam_never_ties_the_callers_input():
    from explorer.analysis import analyze

    model = _InputShortcut().eval()
    x = torch.rand(1, 3, 8, 8)
    before = x.clone()
    first = analyze(model, x, "shortcut", 1).cam_raw["shortcut"]
    assert not x.requires_grad and x.grad_fn is None and x._version == 0
    torch.testing.assert_close(x, before)
    np.testing.assert_allclose(analyze(model, x, "shortcut", 1).cam_raw["shortcut"], first)
    np.testing.assert_allclose(first, _hand_cam(model, x, "shortcut", 1), atol=1e-6)


def test_a_passthrough_rewritten_in_place_still_gets_a_map():
    from explorer.analysis import analyze

    model = _InputShortcut(rewrite=True).eval()
    x = torch.rand(1, 3, 8, 8)
    cam = analyze(model, x.clone(), "shortcut", 1).cam_raw["shortcut"]
    # the uses of what the call returned: s is the graph's leaf, s += body(x) adds nothing that depends on it
    s = x.clone().requires_grad_(True)
    score = model.head(s + model.body(x))[0, 1]
    (grad,) = torch.autograd.grad(score, s)
    expected = torch.relu((grad[0].mean((1, 2))[:, None, None] * x[0]).sum(0)).detach().numpy()
    np.testing.assert_allclose(cam, expected, atol=1e-6)


def test_the_default_cam_layer_climbs_to_the_enclosing_call_of_a_reused_block():
    from explorer.analysis import default_cam_layer

    class ReusedBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            x = F.max_pool2d(self.block(self.stem(x)), 2)
            x = self.block(x)  # the block's second call holds the last conv call (block.0#2)
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    assert default_cam_layer(ReusedBlock().eval(), (3, 16, 16)) == "block#2"


def test_the_sidebar_names_the_notations_limit_for_a_typed_network(app_factory):
    at = app_factory("architecture", sel_model="arch:conv3-8 M GAP FC-10", sel_weights="none", sel_input="600x600")
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.sidebar.warning)
    assert "typed network" in warnings and "512×" in warnings or "scaled down to 512×512" in warnings, warnings
    assert "memory budget" not in warnings


def test_compare_leaves_out_only_the_model_it_cannot_compare(app_factory):
    from explorer.history import compare_available

    bad = "arch:in-3x8x8 conv3-8 M M M M FC-10"  # the fourth pool gets a 1×1 map: nothing left to pool
    table, failed = compare_available(["mnist_cnn", "tiny_vgg", bad])
    assert list(table["model"]) == ["mnist_cnn", "tiny_vgg"]
    assert [name for name, _ in failed] == [bad] and "token 6" in failed[0][1]
    assert table.set_index("model").loc["mnist_cnn", "params_m"] * 1e6 == pytest.approx(2762)
    at = app_factory("compare", cmp_models=["mnist_cnn", "tiny_vgg", bad])
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Could not compare" in w.value for w in at.warning)
    assert any(len(frame.value) == 2 for frame in at.dataframe)


def test_compare_counts_weights_used_through_functional_calls(tmp_path, monkeypatch):
    from explorer.history import profile_with_size
    from explorer.models import build_model

    path = tmp_path / "proj.py"
    path.write_text(textwrap.dedent('''
        import torch, torch.nn as nn, torch.nn.functional as F

        class ProjFunctional(nn.Module):
            input_shape = (1, 16, 16)

            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(1, 4, 3, padding=1)
                self.proj = nn.Conv2d(4, 6, 3, padding=1)  # never called: its weights are used through F.conv2d
                self.fc = nn.Linear(6, 3)

            def forward(self, x):
                x = F.conv2d(torch.relu(self.stem(x)), self.proj.weight, self.proj.bias, padding=1)
                return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
    '''))
    monkeypatch.setenv("EXPLORER_MODELS", str(path))
    model = build_model("ProjFunctional").eval()
    counts, params, size = profile_with_size(model, (1, 16, 16))
    expected = (9 * 4 + 4) + (36 * 6 + 6) + (6 * 3 + 3)  # stem, proj (through F.conv2d), fc
    assert params == expected == sum(p.numel() for p in model.parameters())
    assert size == 4 * expected
    assert sum(counts.values()) == 9 * 4 * 256 + 36 * 6 * 256 + 18


def test_grad_cam_layers_leave_out_one_by_one_maps(app_factory):
    at = app_factory("gradcam", sel_model="resnet18", sel_weights="none", sel_input="32x32")
    assert not at.exception, at.exception
    options = at.selectbox(key="cam_layer").options
    assert options and not any(option.endswith("×1×1") for option in options), options


def test_a_compare_link_takes_as_many_models_as_the_page():
    from explorer.history import MAX_MODELS
    from ui.links import COMPARE_MAX_MODELS, PAGE_PARAMS

    assert COMPARE_MAX_MODELS == MAX_MODELS
    models = next(p for p in PAGE_PARAMS["compare"] if p.name == "models")
    assert models.max_items == MAX_MODELS


def test_bubble_chart_speaks_the_pages_words():
    from explorer.history import bubble_chart

    table = pd.DataFrame({"model": ["arch:in-1x8x8 conv3-4 GAP FC-2", "mnist_cnn"], "gflops": [0.1, 0.2],
                          "top1": [50.0, 60.0], "params_m": [0.01, 0.02]})
    figure = bubble_chart(table, "top1", labels={"gflops": "G 곱셈-덧셈", "params_m": "파라미터 (M)", "top1": "top-1"},
                          names={"arch:in-1x8x8 conv3-4 GAP FC-2": "my net"})
    trace = figure.data[0]
    assert list(trace.text) == ["my net", "mnist_cnn"]
    assert "G 곱셈-덧셈" in trace.hovertemplate and "파라미터 (M)" in trace.hovertemplate


# --- the training lab (review): transfer toggles, the folder split a run trains on ---------------------------------
@pytest.mark.parametrize("mode, toggle", [("fine_tune", {"batch_norm": False}), ("feature_extract", {"dropout": 0.5})])
def test_a_transfer_run_trains_and_saves_the_network_its_config_describes(tmp_path, mode, toggle):
    from explorer.models import load_run
    from explorer.training import TrainConfig
    from explorer.training.loop import prepare, run_training

    config = TrainConfig(model="mnist_cnn", dataset="shapes", samples=40, epochs=1, batch_size=16, mode=mode,
                         max_steps=1, **toggle)
    trained = prepare(config).model

    def layers(model: nn.Module) -> list[tuple[str, str]]:
        return [(name, type(m).__name__) for name, m in model.named_modules()
                if isinstance(m, (nn.BatchNorm2d, nn.Dropout)) and not (isinstance(m, nn.Dropout) and m.p == 0)]

    if "batch_norm" in toggle:
        assert not any(kind == "BatchNorm2d" for _, kind in layers(trained))  # the toggle was applied
    else:
        assert any(kind == "Dropout" for _, kind in layers(trained))
    run_training(config, tmp_path / mode)
    loaded = load_run(tmp_path / mode, device="cpu")  # failed with "unexpected keys: BN1.weight, ..." before
    assert layers(loaded.model) == layers(trained)


def test_the_folder_split_shown_is_the_one_the_run_trains_on(app_factory, tmp_path, monkeypatch):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp_path / "pets" / cls / f"{i}.png")
    monkeypatch.setenv("EXPLORER_DATA_ROOTS", str(tmp_path))
    at = app_factory("training", trn_dataset="folder", trn_seed=7)
    at.text_input(key="trn_folder").set_value(str(tmp_path / "pets")).run()
    assert not at.exception, at.exception
    assert not [w for w in at.number_input if w.key == "trn_split_seed"]  # one seed for preview and run
    assert any("7" in c.value and "seed" in c.value.lower() for c in at.caption)
