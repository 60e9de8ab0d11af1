"""explorer.analysis.activations: capture, call names, feature vs activation maps, the shared analysis pass.

Expected values come from computing the layers by hand (F.conv2d, F.relu...) on tiny seeded models.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.analysis import activation_pair, analyze, callable_layers, capture, predict, top_k
from explorer.analysis import block_of, parse_call

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def assert_no_hooks(model: nn.Module) -> None:
    for name, module in model.named_modules():
        for attr in HOOK_DICTS:
            assert len(getattr(module, attr)) == 0, f"{attr} left on {name or 'model'}"


class SharedReluNet(nn.Module):
    """conv -> bn -> relu ; conv -> bn -> (+ identity) -> relu (the *same* relu module, in place)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4, 3)
        for bn in (self.bn1, self.bn2):  # non-trivial eval statistics
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.3, 0.3)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        identity = out
        out = self.bn2(self.conv2(out))
        out += identity
        out = self.relu(out)
        return self.fc(out.mean((2, 3)))

    def by_hand(self, x):
        """Every intermediate, computed functionally (no in-place ops, no hooks)."""
        def bn(m, t):
            return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

        c1 = F.conv2d(x, self.conv1.weight, self.conv1.bias, padding=1)
        b1 = bn(self.bn1, c1)
        r1 = F.relu(b1)
        c2 = F.conv2d(r1, self.conv2.weight, self.conv2.bias, padding=1)
        b2 = bn(self.bn2, c2)
        s = b2 + r1
        r2 = F.relu(s)
        logits = F.linear(r2.mean((2, 3)), self.fc.weight, self.fc.bias)
        return dict(conv1=c1, bn1=b1, relu=r1, conv2=c2, bn2=b2, sum=s, relu2=r2, logits=logits)


@pytest.fixture
def net() -> SharedReluNet:
    return SharedReluNet().eval()


@pytest.fixture
def image() -> torch.Tensor:
    return torch.randn(1, 3, 10, 12, generator=torch.Generator().manual_seed(1))


def test_conv_before_inplace_relu_keeps_negative_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(inplace=True), nn.Conv2d(6, 2, 1)).eval()
    x = torch.randn(1, 3, 9, 9)
    got = capture(model, x, ["0", "1"])
    expected = F.conv2d(x, model[0].weight, model[0].bias)
    assert (got["0"] < 0).any(), "the feature map before ReLU must keep its negative values"
    torch.testing.assert_close(got["0"], expected)
    torch.testing.assert_close(got["1"], F.relu(expected))
    assert not got["0"].requires_grad and got["0"].device.type == "cpu"


def test_module_called_twice_gets_one_name_per_call(net, image):
    hand = net.by_hand(image)
    got = capture(net, image, ["relu", "relu#2", "relu:in", "relu#2:in", "conv1", "bn2"])
    torch.testing.assert_close(got["relu"], hand["relu"])
    torch.testing.assert_close(got["relu#2"], hand["relu2"])
    torch.testing.assert_close(got["relu:in"], hand["bn1"])
    torch.testing.assert_close(got["relu#2:in"], hand["sum"])  # bn2 + identity, before the ReLU
    torch.testing.assert_close(got["conv1"], hand["conv1"])
    torch.testing.assert_close(got["bn2"], hand["bn2"])  # before `out += identity` rewrote it


def test_callable_layers_lists_every_call_in_forward_order(net, image):
    everything = callable_layers(net, image)
    # `out += identity` and `out.mean((2, 3))` in forward are functional calls (issue 18): listed in order too.
    assert [c.name for c in everything] == ["conv1", "bn1", "relu", "conv2", "bn2", "add", "relu#2", "mean", "fc"]
    assert [c.module_type for c in everything if c.is_function] == ["add", "mean"]
    calls = [c for c in everything if not c.is_function]
    relu2 = calls[5]
    assert (relu2.module, relu2.call, relu2.module_type, relu2.is_activation) == ("relu", 2, "ReLU", True)
    assert calls[0].shape == (4, 10, 12) and calls[0].is_conv
    assert calls[-1].shape == (3,)
    assert_no_hooks(net)


def test_unknown_layer_and_missing_call_raise_and_leave_no_hook(net, image):
    with pytest.raises(KeyError, match="conv9"):
        capture(net, image, ["conv9"])
    with pytest.raises(ValueError, match="relu#3"):
        capture(net, image, ["relu#3"])
    with pytest.raises(RuntimeError):  # a forward pass that fails half-way (wrong channel count)
        capture(net, torch.randn(1, 5, 8, 8), ["conv1", "relu#2"])
    assert_no_hooks(net)
    with pytest.raises(ValueError):
        parse_call("relu#1")


def test_train_eval_mode_untouched(net, image):
    net.bn2.train()  # a mixed state must come back exactly as it was
    before = [m.training for m in net.modules()]
    capture(net, image, ["conv1"])
    analyze(net, image, "conv2")
    assert [m.training for m in net.modules()] == before


def test_analyze_matches_hand_computation(net, image):
    hand = net.by_hand(image)
    result = analyze(net, image, "conv2", target=None)
    torch.testing.assert_close(torch.from_numpy(result.logits), hand["logits"][0])
    np.testing.assert_allclose(result.probabilities.sum(), 1.0, rtol=1e-6)
    assert result.target == int(hand["logits"][0].argmax())
    torch.testing.assert_close(result.activations["conv1"], hand["conv1"])
    torch.testing.assert_close(result.activations["relu#2:in"], hand["sum"])
    torch.testing.assert_close(result.activations["relu#2"], hand["relu2"])
    assert [c.name for c in result.calls][:3] == ["conv1", "bn1", "relu"]

    # Grad-CAM by hand for another class: gradients of the logit w.r.t. conv2's output.
    target = (result.target + 1) % 3
    a = F.conv2d(hand["relu"], net.conv2.weight, net.conv2.bias, padding=1).detach().requires_grad_(True)
    b = F.batch_norm(a, net.bn2.running_mean, net.bn2.running_var, net.bn2.weight, net.bn2.bias, False, 0.0, net.bn2.eps)
    logit = F.linear(F.relu(b + hand["relu"]).mean((2, 3)), net.fc.weight, net.fc.bias)[0, target]
    (grad,) = torch.autograd.grad(logit, a)
    cam = F.relu((grad.mean((2, 3))[0, :, None, None] * a[0]).sum(0)).detach()
    other = analyze(net, image, ["conv2", "relu#2"], target=target, layers=[])
    assert other.target == target and other.activations == {}
    np.testing.assert_allclose(other.cam_raw["conv2"], cam.numpy(), rtol=1e-5, atol=1e-6)
    assert set(other.cam_raw) == {"conv2", "relu#2"}
    assert_no_hooks(net)


def test_activation_pair_feature_vs_activation(net, image):
    calls = callable_layers(net, image)
    assert activation_pair(calls, "conv1") == ("conv1", "relu")  # skips bn1
    assert activation_pair(calls, "conv2") == ("conv2", "relu#2")
    assert activation_pair(calls, "relu#2") == ("relu#2:in", "relu#2")
    assert activation_pair(calls, "fc") == ("fc", None)


class BasicConv(nn.Module):
    """GoogLeNet's pattern: the ReLU is functional, so only the block's output is post-activation."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def test_activation_pair_functional_relu_uses_block_output():
    torch.manual_seed(0)
    model = nn.Sequential(BasicConv(3, 4), nn.Conv2d(4, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    x = torch.randn(1, 3, 6, 6)
    result = analyze(model, x, None)
    feature, activation = activation_pair(result.calls, "0.conv", result.activations)
    # The functional F.relu is a call of its own (issue 18): it is the activation, named after its block.
    assert (feature, activation) == ("0.conv", "0.relu")
    conv = F.conv2d(x, model[0].conv.weight, padding=1)
    torch.testing.assert_close(result.activations[feature], conv)
    assert (result.activations[activation] >= 0).all() and (result.activations[feature] < 0).any()
    torch.testing.assert_close(result.activations[activation], result.activations["0"])  # the block's output
    assert activation_pair(result.calls, "0.conv") == ("0.conv", "0.relu")


def test_block_of_groups_by_block_class():
    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(3, 3, 1))
    model.add_module("layer1", nn.Sequential(BasicConv(3, 3), BasicConv(3, 3)))
    assert block_of(model, "stem") == ""
    assert block_of(model, "layer1.0.conv") == "layer1.0"
    assert block_of(model, "layer1.0") == "layer1"
    flat = nn.Sequential(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()))
    assert block_of(flat, "0.1") == "0"


def test_top_k_and_predict(net, image):
    probs = np.array([0.1, 0.6, 0.3])
    top = top_k(probs, 2, ["a", "b", "c"])
    assert [(p.index, p.label) for p in top] == [(1, "b"), (2, "c")]
    assert top_k(probs, 2, None) is None  # random weights: no classes to name
    with torch.no_grad():
        hand = torch.softmax(net.by_hand(image)["logits"][0], 0)
    best = predict(net, image, k=1, categories=["x", "y", "z"])[0]
    assert best.index == int(hand.argmax()) and best.probability == pytest.approx(float(hand.max()), rel=1e-5)


def test_byte_budget_keeps_early_layers_and_lists_the_rest(net, image):
    full = analyze(net, image, None)
    one_map = full.activations["conv1"].numel() * 4
    budget = analyze(net, image, "conv2", max_bytes=2 * one_map)
    assert len({id(t) for t in budget.activations.values()}) == 2  # room for two maps, shared by aliases
    assert "conv1" in budget.activations and "fc" not in budget.activations and budget.skipped
    for name in budget.skipped:  # what was left out can be captured alone, and is the same
        torch.testing.assert_close(capture(net, image, [name])[name], full.activations[name])
    np.testing.assert_allclose(budget.cam(), analyze(net, image, "conv2").cam())


def test_cli_activations_writes_the_channel_grid(tmp_path, capsys):
    from PIL import Image

    from explorer.cli import main
    from explorer.imaging import load_image
    from explorer.models import load_model

    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 0).save(image)
    out, raw = tmp_path / "maps.png", tmp_path / "maps.npy"
    assert main(["activations", "mnist_cnn", str(image), "--layer", "conv1", "--png", str(out), "--npy", str(raw)]) == 0
    assert "conv1: 8 channels of 12x12" in capsys.readouterr().out
    grid = Image.open(out)
    assert grid.size == (3 * 13 - 1, 3 * 13 - 1)  # 8 maps in a 3x3 grid, 1-pixel gaps
    loaded = load_model("mnist_cnn", weights=None, device="cpu")
    x = loaded.preprocess(load_image(image))
    with torch.no_grad():
        expected = F.conv2d(x, loaded.model.conv1.weight, loaded.model.conv1.bias, stride=loaded.model.conv1.stride)
    np.testing.assert_allclose(np.load(raw), expected[0].numpy(), rtol=1e-5, atol=1e-6)
    assert main(["activations", "mnist_cnn", str(image), "--list"]) == 0
    assert "relu1" in capsys.readouterr().out
    assert main(["activations", "mnist_cnn", str(image), "--layer", "nope", "--png", str(out)]) == 2


def test_a_later_pass_lists_the_same_calls_and_another_size_its_own_shapes():
    """The call list a pass returns is remembered per model: the same input again gives the very same (frozen) call
    objects; another input size gives calls whose shapes are that size's (against a plain forward hook), and a model
    with a replaced head lists the new module's type."""
    model = SharedReluNet().eval()
    first = analyze(model, torch.randn(1, 3, 16, 16), None, layers=None).calls
    again = analyze(model, torch.randn(1, 3, 16, 16), None, layers=None).calls
    assert [c.name for c in first] == [c.name for c in again]
    assert all(a is b for a, b in zip(first, again))

    seen: dict[str, tuple[int, ...]] = {}

    def shape_hook(name):
        def hook(module, args, out):
            seen.setdefault(name, tuple(out.shape[1:]))  # the first call's output; returns None
        return hook

    handles = [m.register_forward_hook(shape_hook(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 24, 20))
    finally:
        for handle in handles:
            handle.remove()
    bigger = analyze(model, torch.randn(1, 3, 24, 20), None, layers=None).calls
    for call in bigger:
        if not call.is_function and call.call == 1:
            assert call.shape == seen[call.module], call.name
    assert any(c.shape != d.shape for c, d in zip(first, bigger) if c.name == d.name)
    model.fc = nn.Sequential(nn.Linear(4, 3))  # a new head: its calls, not the remembered ones
    replaced = analyze(model, torch.randn(1, 3, 16, 16), None, layers=None).calls
    assert next(c for c in replaced if c.name == "fc").module_type == "Sequential"
    assert any(c.name == "fc.0" and c.module_type == "Linear" for c in replaced)


class _PartlyScripted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
        self.head = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.head(self.features(x)).mean((2, 3)))


def test_a_torchscript_submodule_is_left_unwatched_and_named_clearly():
    """PyTorch refuses Python hooks on a ScriptModule: every pass failed on such a model. The rest is analysed."""
    from explorer.analysis import analyze, callable_layers, capture, grad_cam, layer_table
    from explorer.core import hook_count

    model = _PartlyScripted().eval()
    x = torch.randn(1, 3, 12, 12)
    names = [c.name for c in callable_layers(model, x)]
    assert "head" in names and "fc" in names and not any(n.startswith("features") for n in names)
    with torch.no_grad():
        expected = model.head(model.features(x))
    torch.testing.assert_close(capture(model, x, ["head"])["head"], expected)
    assert analyze(model, x, "head").cam_raw["head"].shape == (10, 10)
    assert layer_table(model, (3, 12, 12))["layer"].tolist() == ["head", "fc"]
    for run in (lambda: grad_cam(model, x, "features"), lambda: analyze(model, x, "features"),
                lambda: capture(model, x, ["features.0"])):
        with pytest.raises(KeyError, match="TorchScript"):
            run()
    from explorer.analysis import default_cam_layer
    from explorer.diagram import DiagramError, capture_graph
    from explorer.receptive import receptive_field_table

    assert default_cam_layer(model, (3, 12, 12)) == "head"  # the scripted conv is no candidate
    with pytest.raises(ValueError, match="TorchScript"):  # tracers cannot follow the ops inside: said, not empty
        receptive_field_table(model, (3, 12, 12))
    with pytest.raises(DiagramError, match="TorchScript"):
        capture_graph(model, (3, 12, 12))
    with pytest.raises(TypeError, match="TorchScript as a whole"):
        layer_table(torch.jit.script(nn.Sequential(nn.Conv2d(3, 2, 3))), (3, 8, 8))
    assert hook_count(model) == 0


def test_capture_never_hands_back_the_callers_own_input():
    """An input (``1:in``) or an Identity's output is ``x`` itself for the pass: the caller may reuse its buffer."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Identity(), nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    for _ in range(3):  # from the second pass on the clone plan keeps untouched tensors by reference
        x = torch.rand(1, 3, 8, 8)
        given = x.clone()
        kept = capture(model, x, ["0", "1:in"])
        x.mul_(0)
        torch.testing.assert_close(kept["0"], given)
        torch.testing.assert_close(kept["1:in"], given)
