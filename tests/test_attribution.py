"""explorer.analysis.attribution: Grad-CAM against its formula, localisation, concurrency, hook hygiene, every model.

The expected Grad-CAM is computed by hand in this file (autograd on a functional copy of the network);
the localisation test trains its own CNN on generated images.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.analysis import analyze, callable_layers, capture
from explorer.analysis import METHODS, attribute, grad_cam, guided_gradcam, integrated_gradients, occlusion, saliency

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def assert_no_hooks(model: nn.Module) -> None:
    for name, module in model.named_modules():
        for attr in HOOK_DICTS:
            assert len(getattr(module, attr)) == 0, f"{attr} left on {name or 'model'}"


def small_cnn(seed: int = 0, classes: int = 4) -> nn.Sequential:
    """conv-relu-conv | relu(inplace)-GAP-linear: the Grad-CAM layer is followed by an in-place ReLU."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes),
    ).eval()


def gradcam_by_hand(model: nn.Sequential, x: torch.Tensor, target: int | None) -> np.ndarray:
    """Gradient of the target logit w.r.t. layer 2's output, averaged over space as channel weights;
    weighted sum of the activations; ReLU; bilinear upsampling to the input; division by the maximum."""
    c1, c2, lin = model[0], model[2], model[6]
    a = F.conv2d(F.relu(F.conv2d(x, c1.weight, c1.bias, padding=1)), c2.weight, c2.bias, padding=1)
    a = a.detach().requires_grad_(True)
    logits = F.linear(F.relu(a).mean((2, 3)), lin.weight, lin.bias)
    target = int(logits[0].argmax()) if target is None else target
    (grad,) = torch.autograd.grad(logits[0, target], a)
    weights = grad[0].mean((1, 2))
    cam = F.relu((weights[:, None, None] * a[0]).sum(0)).detach()
    up = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (up / up.max()).numpy() if up.max() > 0 else up.numpy()


@pytest.mark.parametrize("target", [None, 0, 3])
def test_grad_cam_equals_formula(target):
    model = small_cnn()
    x = torch.randn(1, 3, 7, 9, generator=torch.Generator().manual_seed(2))
    got = grad_cam(model, x, "2", target)
    expected = gradcam_by_hand(model, x, target)
    assert got.shape == (7, 9) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert got.min() >= 0 and got.max() <= 1
    # The shared analysis pass computes the same map without captum.
    np.testing.assert_allclose(analyze(model, x, "2", target).cam(), expected, rtol=1e-5, atol=1e-6)
    assert_no_hooks(model)


def test_grad_cam_of_a_module_called_twice_picks_the_call():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(3)
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.relu = nn.ReLU(inplace=True)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(self.relu(self.conv(self.relu(self.conv(x)))).mean((2, 3)))

    model = Twice().eval()
    x = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    w, b = model.conv.weight, model.conv.bias
    first = F.conv2d(x, w, b, padding=1).detach().requires_grad_(True)
    second = F.conv2d(F.relu(first), w, b, padding=1)
    logits = F.linear(F.relu(second).mean((2, 3)), model.fc.weight, model.fc.bias)
    target = int(logits[0].argmax())
    g1, g2 = torch.autograd.grad(logits[0, target], [first, second])
    for name, act, grad in (("conv", first, g1), ("conv#2", second, g2)):
        cam = F.relu((grad[0].mean((1, 2))[:, None, None] * act[0]).sum(0)).detach()
        cam = F.interpolate(cam[None, None], size=(6, 6), mode="bilinear", align_corners=False)[0, 0]
        expected = (cam / cam.max()).numpy() if cam.max() > 0 else cam.numpy()
        np.testing.assert_allclose(grad_cam(model, x, name), expected, rtol=1e-5, atol=1e-6)
    assert_no_hooks(model)


# --------------------------------------------------------------------------------------------- localisation
def bright_square_images(n: int, size: int, generator: torch.Generator):
    """Noise images, half of them with a bright 6x6 square at a random place (label 1), and its box."""
    images = torch.rand(n, 3, size, size, generator=generator) * 0.4
    labels = torch.randint(0, 2, (n,), generator=generator)
    boxes = []
    for i in range(n):
        top, left = (int(v) for v in torch.randint(0, size - 6, (2,), generator=generator))
        boxes.append((top, left, top + 6, left + 6))
        if labels[i] == 1:
            images[i, :, top:top + 6, left:left + 6] = 1.0
    return images, labels, boxes


def test_grad_cam_peak_lies_on_the_shape():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    size = 24
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )
    images, labels, _ = bright_square_images(512, size, g)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()  # our own model: training it here is fine
    for _epoch in range(5):
        for start in range(0, len(images), 64):
            loss = F.cross_entropy(model(images[start:start + 64]), labels[start:start + 64])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()

    test_images, test_labels, boxes = bright_square_images(120, size, g)
    with torch.no_grad():
        accuracy = (model(test_images).argmax(1) == test_labels).float().mean().item()
    assert accuracy > 0.9, f"the test network did not learn the task ({accuracy:.2f})"
    hits, total = 0, 0
    for image, label, (top, left, bottom, right) in zip(test_images, test_labels, boxes):
        if label != 1:
            continue
        cam = grad_cam(model, image[None], "2", target=1)
        row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
        hits += int(top <= row < bottom and left <= col < right)
        total += 1
    assert total > 40
    assert hits / total >= 0.9, f"Grad-CAM peak inside the square on {hits}/{total} images"


# --------------------------------------------------------------------------------------------- concurrency
class SharedModel(nn.Module):
    """BatchNorm, an in-place ReLU module called twice and a residual `+=`: the hard cases, shared."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        out = self.relu(self.bn(self.conv1(x)))
        identity = out
        out = self.conv2(out)
        out += identity
        return self.fc(self.relu(out).mean((2, 3)))


def test_threads_sharing_one_model_get_the_sequential_results():
    model = SharedModel().eval()
    images = [torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(10 + i)) for i in range(8)]
    layers = ["conv1", "relu", "relu#2", "conv2"]

    def work(x):
        maps = capture(model, x, layers)
        return maps, grad_cam(model, x, "conv2"), grad_cam(model, x, "relu"), guided_gradcam(model, x, "conv2")

    expected = [work(x) for x in images]
    results: dict[tuple[int, int], tuple] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def thread_main(i: int) -> None:
        try:
            barrier.wait()
            for rep in range(6):
                results[(i, rep)] = work(images[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (i, _rep), (maps, cam, cam_relu, guided) in results.items():
        want_maps, want_cam, want_cam_relu, want_guided = expected[i]
        for name in layers:
            assert torch.equal(maps[name], want_maps[name]), f"thread {i}: {name} differs"
        assert np.array_equal(cam, want_cam) and np.array_equal(cam_relu, want_cam_relu)
        assert np.array_equal(guided, want_guided)
    assert len(results) == 48
    assert_no_hooks(model)
    assert not model.training and not model.bn.training


def test_failing_calls_leave_no_hooks_and_guided_hooks_do_not_leak():
    model = SharedModel().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    for call in (
        lambda: grad_cam(model, x, "conv2", target=99),
        lambda: grad_cam(model, x, "nope"),
        lambda: guided_gradcam(model, x, "conv2", target=99),
        lambda: grad_cam(model, torch.randn(1, 4, 8, 8), "conv2"),
        lambda: integrated_gradients(model, x, target=99),
    ):
        with pytest.raises((ValueError, KeyError, RuntimeError, IndexError, AssertionError)):
            call()
        assert_no_hooks(model)
    guided_gradcam(model, x, "conv2")
    assert_no_hooks(model)
    # A plain gradient afterwards is the true gradient: no guided-backprop ReLU hook survived.
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    target = int(logits[0].argmax())
    (grad,) = torch.autograd.grad(logits[0, target], xg)
    plain = grad[0].abs().amax(0).numpy()
    plain = np.clip(plain / np.percentile(plain, 99.5), 0, 1)
    np.testing.assert_allclose(saliency(model, x), plain, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- other methods
def test_integrated_gradients_of_a_linear_model_is_input_times_weight():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, 2)).eval()
    x = torch.rand(1, 3, 5, 5)
    got = integrated_gradients(model, x, target=1, n_steps=8)
    hand = (x[0] * model[1].weight[1].reshape(3, 5, 5)).abs().sum(0).detach().numpy()
    hand = np.clip(hand / np.percentile(hand, 99.5), 0, 1)
    np.testing.assert_allclose(got, hand, rtol=1e-4, atol=1e-5)


def test_occlusion_finds_the_region_the_score_reads():
    class TopLeft(nn.Module):  # class 0 scores the mean brightness of the top-left 8x8 corner
        def forward(self, x):
            corner = x[:, :, :8, :8].mean((1, 2, 3))
            return torch.stack([corner, -corner], 1)

    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) + 0.5
    got = occlusion(TopLeft(), x, target=0, window=4, stride=4)
    assert got.shape == (16, 16)
    assert (got[:8, :8] > 0).all() and (got[8:, :] == 0).all() and (got[:, 8:] == 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_a_unit_map(method):
    model = SharedModel().eval()
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(8))
    got = attribute(model, x, method, layer="conv2")
    assert got.shape == (12, 12) and got.dtype == np.float32
    assert got.min() >= 0 and got.max() <= 1 and got.max() > 0
    assert_no_hooks(model)


# --------------------------------------------------------------------------------------------- every model
FAST_MODELS = ["mnist_cnn", "lenet5", "tiny_vgg", "resnet18", "googlenet"]


def _all_models() -> list[str]:
    from explorer.models import list_models

    return list_models()


def _check_model(name: str) -> None:
    from explorer.models import build_model, get_entry

    model = build_model(name)
    shape = get_entry(name).input_shape
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    calls = callable_layers(model, x)
    last_conv = [c.name for c in calls if c.is_conv][-1]
    maps = capture(model, x, [last_conv])
    assert maps[last_conv].shape[1:] == next(c.shape for c in calls if c.name == last_conv)
    cam = grad_cam(model, x, last_conv)
    assert cam.shape == shape[1:] and np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    assert_no_hooks(model)
    assert not model.training


@pytest.mark.parametrize("name", FAST_MODELS)
def test_fast_models_capture_and_grad_cam(name):
    _check_model(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in _all_models() if n not in FAST_MODELS])
def test_every_registered_model_capture_and_grad_cam(name):
    _check_model(name)


def test_cli_gradcam_saves_overlay_and_map(tmp_path, capsys):
    from PIL import Image

    from explorer.cli import main
    from explorer.imaging import load_image
    from explorer.models import load_model

    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(image)
    png, raw = tmp_path / "cam.png", tmp_path / "cam.npy"
    code = main(["gradcam", "tiny_vgg", str(image), "--layer", "block2.0", "--target", "3", "--png", str(png),
                 "--npy", str(raw)])
    assert code == 0
    assert "block2.0 for class 3" in capsys.readouterr().out
    assert Image.open(png).size == (64, 64)
    loaded = load_model("tiny_vgg", weights=None, device="cpu")
    expected = grad_cam(loaded.model, loaded.preprocess(load_image(image)), "block2.0", target=3)
    np.testing.assert_allclose(np.load(raw), expected, rtol=1e-5, atol=1e-6)
    assert main(["gradcam", "tiny_vgg", str(image), "--method", "saliency", "--png", str(png)]) == 0


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_analysis_inside_the_callers_no_grad_or_inference_mode(mode):
    """A caller's torch.no_grad() used to crash analyze(); inference_mode() gave an all-zero Grad-CAM and made
    capture() fail on the missing version counter. The results equal the hand formula either way."""
    model = small_cnn()
    x = torch.randn(1, 3, 7, 9, generator=torch.Generator().manual_seed(2))
    expected = gradcam_by_hand(model, x, None)
    context = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with context:
        inside = x.clone()  # under inference_mode: an inference tensor
        cam = analyze(model, inside, "2").cam()
        kept = capture(model, inside, ["2", "2:in"])
    np.testing.assert_allclose(cam, expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        by_hand = model[2](model[1](model[0](x)))
    torch.testing.assert_close(kept["2"], by_hand)
    assert_no_hooks(model)


@pytest.mark.parametrize("method", ["guided_gradcam", "saliency", "integrated_gradients", "occlusion"])
@pytest.mark.parametrize("target", [-1, 4])
def test_a_target_outside_the_classes_is_refused_by_every_method(method, target):
    model = small_cnn(classes=4)
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=f"target class {target} is outside 0..3"):
        attribute(model, x, method, "2", target=target)
    assert_no_hooks(model)


def test_layer_methods_name_a_vector_layer_and_a_call_that_never_happens():
    model = small_cnn()
    x = torch.randn(1, 3, 8, 8)
    for run in (lambda layer: grad_cam(model, x, layer), lambda layer: guided_gradcam(model, x, layer)):
        with pytest.raises(ValueError, match="no spatial output"):
            run("6")  # the Linear layer
        with pytest.raises(ValueError, match="not called in the forward pass"):
            run("1#2")  # the first ReLU runs once
    assert_no_hooks(model)


class _InPlaceStatements(nn.Module):
    """Layers whose results the forward drops: it goes on with the tensor they changed in place."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.conv(x)
        y.add_(1)  # a functional layer named "add"
        self.relu(y)  # a module called as a statement
        return self.fc(y.mean((2, 3)))


def _cam_by_hand(activation: torch.Tensor, rest, target: int | None = None) -> tuple[np.ndarray, int]:
    a = activation.detach().clone().requires_grad_(True)
    scores = rest(a)
    target = int(scores[0].argmax()) if target is None else target
    (grad,) = torch.autograd.grad(scores[0, target], a)
    return F.relu((grad[0].mean((1, 2))[:, None, None] * a.detach()[0]).sum(0)).numpy(), target


def test_grad_cam_of_layers_whose_result_the_forward_drops():
    """It was all zero: the pass started its graph on a copy the forward never used."""
    model = _InPlaceStatements().eval()
    x = torch.randn(1, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        conv = model.conv(x)
    head = lambda a: model.fc(a.mean((2, 3)))  # noqa: E731
    after_add, target = _cam_by_hand(conv + 1, lambda a: head(F.relu(a)))
    after_relu, _ = _cam_by_hand(F.relu(conv + 1), head, target)
    after_conv, _ = _cam_by_hand(conv, lambda a: head(F.relu(a + 1)), target)
    # ["conv", "add"]: the graph already runs when "add" changes its tensor, and "relu" changes it again afterwards
    for names in (["add"], ["relu"], ["add", "relu"], ["conv", "add"], ["conv", "add", "relu"]):
        result = analyze(model, x, names)
        assert result.target == target
        for name, expected in (("conv", after_conv), ("add", after_add), ("relu", after_relu)):
            if name in names:
                assert expected.max() > 0
                np.testing.assert_allclose(result.cam_raw[name], expected, rtol=1e-5, atol=1e-7, err_msg=name)
    every = analyze(model, x, None, cam_all=True)  # the Grad-CAM page's pass over every CAM layer
    np.testing.assert_allclose(every.cam_raw["add"], after_add, rtol=1e-5, atol=1e-7)
    assert_no_hooks(model)
