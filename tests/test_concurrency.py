"""One model object shared by many threads, as ``st.cache_resource`` shares it between students.

16 threads call capture / Grad-CAM / analyze / layer table / receptive-field table / effective receptive
field on one shared ResNet-18 (BatchNorm, a ReLU module called twice per block, in-place ops), each with
its own image, all released at once by a barrier. Every thread must get exactly what the same call gives
when run alone, the sequential results must match independent computations (plain forward passes and
hand-written autograd), and afterwards no hook is left, no module is in train mode, no parameter has a
gradient and the BatchNorm running statistics are untouched.
"""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.analysis import analyze, capture
from explorer.analysis import grad_cam
from explorer.models import build_model
from explorer.receptive import effective_receptive_field, receptive_field_table
from explorer.analysis import layer_table

THREADS = 16
ROUNDS = 2
SHAPE = (3, 48, 48)
CAPTURED = ["layer1.0.relu#2", "layer2.0.bn1", "layer4", "fc"]
CAM_LAYER = "layer4"
ERF_LAYER, ERF_POS = "layer2.1.relu#2", (2, 3)


def _hook_total(model: nn.Module) -> int:
    """Hooks of any kind on any module (counted here, not with the library's helper)."""
    total = 0
    for module in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            total += len(getattr(module, attr))
    return total


def _images() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(8)
    # Different statistics per image, so one user's result can never pass for another's.
    return [torch.randn(1, *SHAPE, generator=gen) * (0.5 + 0.1 * i) + 0.05 * i for i in range(THREADS)]


def _reference_gradcam(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Grad-CAM by hand: keep layer4's output, d(top logit)/d(that output), ReLU(sum_k mean(grad_k) A_k)."""
    kept = []
    handle = model.layer4.register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        with torch.enable_grad():
            scores = model(x)
            (grad,) = torch.autograd.grad(scores[0, scores[0].argmax()], kept[0])
    finally:
        handle.remove()
    act = kept[0].detach()[0]
    cam = torch.relu((grad[0].mean(dim=(1, 2))[:, None, None] * act).sum(0))
    up = F.interpolate(cam[None, None], size=SHAPE[1:], mode="bilinear", align_corners=False)[0, 0].clamp_min(0)
    return (up / up.max() if up.max() > 0 else up).numpy()


def _reference_erf(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """|d(sum over channels of layer2's output at ERF_POS) / d input|, summed over input channels."""
    trunk = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2)
    inp = x.clone().requires_grad_(True)
    with torch.enable_grad():
        out = trunk(inp)
        (grad,) = torch.autograd.grad(out[0, :, ERF_POS[0], ERF_POS[1]].sum(), inp)
    return grad.abs().sum(1)[0].numpy()


def _run_all(model: nn.Module, x: torch.Tensor, order: int = 0) -> dict[str, object]:
    ops = [
        ("capture", lambda: capture(model, x, CAPTURED)),
        ("gradcam", lambda: grad_cam(model, x, CAM_LAYER)),
        ("analyze", lambda: analyze(model, x, CAM_LAYER, layers=["layer3", "layer1.0.relu#2"])),
        ("layer_table", lambda: layer_table(model, SHAPE)),
        ("rf_table", lambda: receptive_field_table(model, SHAPE)),
        ("erf", lambda: effective_receptive_field(model, x, ERF_LAYER, ERF_POS)),
    ]
    ops = ops[order % len(ops):] + ops[: order % len(ops)]  # threads start on different operations
    return {name: fn() for name, fn in ops}


def _assert_same(got: dict[str, object], want: dict[str, object], who: str) -> None:
    for layer in CAPTURED:
        assert torch.allclose(got["capture"][layer], want["capture"][layer], rtol=1e-5, atol=1e-6), f"{who}: {layer}"
    np.testing.assert_allclose(got["gradcam"], want["gradcam"], rtol=1e-5, atol=1e-6, err_msg=f"{who}: Grad-CAM")
    a, b = got["analyze"], want["analyze"]
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-5, atol=1e-6, err_msg=f"{who}: analyze logits")
    assert a.target == b.target, who
    np.testing.assert_allclose(a.cam(CAM_LAYER), b.cam(CAM_LAYER), rtol=1e-5, atol=1e-6, err_msg=f"{who}: analyze CAM")
    for layer in ("layer3", "layer1.0.relu#2"):
        assert torch.allclose(a.activations[layer], b.activations[layer], rtol=1e-5, atol=1e-6), f"{who}: {layer}"
    pd.testing.assert_frame_equal(got["layer_table"], want["layer_table"])
    pd.testing.assert_frame_equal(got["rf_table"], want["rf_table"])
    np.testing.assert_allclose(got["erf"], want["erf"], rtol=1e-5, atol=1e-7, err_msg=f"{who}: ERF")


@pytest.fixture(scope="module")
def shared_model() -> nn.Module:
    return build_model("resnet18")


def test_sixteen_threads_get_their_own_sequential_results(shared_model: nn.Module) -> None:
    model = shared_model
    images = _images()
    buffers_before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        plain = [model(x) for x in images]

    sequential = [_run_all(model, x) for x in images]

    # The sequential results themselves are right (independent computations, no library code).
    for i, (x, want) in enumerate(zip(images, sequential)):
        assert torch.allclose(want["capture"]["fc"], plain[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(want["gradcam"], _reference_gradcam(model, x), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(want["erf"], _reference_erf(model, x), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(want["analyze"].logits, plain[i][0].numpy(), rtol=1e-5, atol=1e-6)
    # ...and they differ between users, so cross-talk could not go unnoticed.
    assert not torch.allclose(sequential[0]["capture"]["layer4"], sequential[1]["capture"]["layer4"])
    assert not np.allclose(sequential[0]["erf"], sequential[1]["erf"])

    barrier = threading.Barrier(THREADS)
    results: list[list[dict[str, object]]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def user(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            for r in range(ROUNDS):
                results[i].append(_run_all(model, images[i], order=i + r))
        except BaseException as exc:  # noqa: BLE001 - reported below with the thread's index
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(i,), name=f"user{i}") for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish (deadlock?)"
    assert not errors, f"{len(errors)} thread(s) failed: {errors[0]!r}"
    for i in range(THREADS):
        assert len(results[i]) == ROUNDS
        for r, got in enumerate(results[i]):
            _assert_same(got, sequential[i], f"user {i}, round {r}")

    # The shared model is exactly as it was.
    assert _hook_total(model) == 0
    assert not any(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert after.keys() == buffers_before.keys()
    for key, value in buffers_before.items():
        assert torch.equal(after[key], value), f"{key} changed"
    bn = model.bn1
    assert int(bn.num_batches_tracked) == int(buffers_before["bn1.num_batches_tracked"])


def test_failing_calls_leave_nothing_behind(shared_model: nn.Module) -> None:
    """Errors in many threads at once (unknown layer, position outside the map) leave no hook behind."""
    model = shared_model
    x = _images()[0]
    barrier = threading.Barrier(8)
    raised: list[type] = []

    def user(i: int) -> None:
        barrier.wait(timeout=60)
        calls = [lambda: capture(model, x, ["layer9"]), lambda: grad_cam(model, x, "nope"),
                 lambda: effective_receptive_field(model, x, ERF_LAYER, (999, 0)),
                 lambda: analyze(model, x, "layer4", layers=["no.such"])]
        try:
            calls[i % len(calls)]()
        except (KeyError, ValueError) as exc:
            raised.append(type(exc))

    threads = [threading.Thread(target=user, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(raised) == 8
    assert _hook_total(model) == 0
    assert not any(m.training for m in model.modules())
    # The model still answers correctly after the failures.
    with torch.no_grad():
        want = model(x)
    assert torch.allclose(capture(model, x, ["fc"])["fc"], want, rtol=1e-5, atol=1e-6)
