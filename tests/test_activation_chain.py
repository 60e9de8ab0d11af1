"""explorer.analysis.activation_chain: the steps a conv's output goes through in a ResNet block, each one
compared with the same step recomputed by hand from the block's own modules (torchvision BasicBlock:
relu(bn2(conv2(x)) + identity or downsample(x)))."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from explorer.analysis import activation_chain, activation_pair, analyze


@pytest.fixture(scope="module")
def resnet_pass():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    for module in model.modules():  # non-trivial eval statistics, so BN is not close to the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    x = torch.randn(1, 3, 32, 32)
    return model, x, analyze(model, x, None)


def block_input(model, x, layer: str, index: int) -> torch.Tensor:
    """The input of ``model.<layer>[index]``, by calling the stem and the earlier blocks one by one."""
    with torch.no_grad():
        out = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            for i, block in enumerate(getattr(model, name)):
                if (name, i) == (layer, index):
                    return out
                out = block(out)
    raise KeyError(layer)


@pytest.mark.parametrize("layer, index", [("layer1", 0), ("layer2", 0), ("layer3", 1)])
def test_conv2_chain_is_conv_bn_add_relu(resnet_pass, layer, index):
    model, x, result = resnet_pass
    block = getattr(model, layer)[index]
    prefix = f"{layer}.{index}"
    steps = activation_chain(result.calls, f"{prefix}.conv2", result.activations)
    assert [s.role for s in steps] == ["output", "norm", "add", "activation"]
    assert [s.name for s in steps] == [f"{prefix}.conv2", f"{prefix}.bn2", f"{prefix}.relu#2:in", f"{prefix}.relu#2"]
    inp = block_input(model, x, layer, index)
    with torch.no_grad():
        mid = F.relu(F.batch_norm(F.conv2d(inp, block.conv1.weight, stride=block.conv1.stride, padding=1),
                                  block.bn1.running_mean, block.bn1.running_var, block.bn1.weight, block.bn1.bias,
                                  False, 0.0, block.bn1.eps))
        conv = F.conv2d(mid, block.conv2.weight, padding=1)
        bn = F.batch_norm(conv, block.bn2.running_mean, block.bn2.running_var, block.bn2.weight, block.bn2.bias,
                          False, 0.0, block.bn2.eps)
        shortcut = block.downsample(inp) if block.downsample is not None else inp
        expected = [conv, bn, bn + shortcut, F.relu(bn + shortcut)]
    for step, want in zip(steps, expected):
        torch.testing.assert_close(result.activations[step.name], want, rtol=1e-4, atol=1e-4)
    # The shortcut named is the tensor added: the block's input (identity) or the downsample's output.
    torch.testing.assert_close(result.activations[steps[2].shortcut], shortcut, rtol=1e-4, atol=1e-4)
    assert (block.downsample is not None) == steps[2].shortcut.endswith("downsample")
    # The activation map differs from ReLU(BN(conv2)): the shortcut is part of it.
    assert (F.relu(bn) - result.activations[steps[-1].name]).abs().max() > 0.1


def test_conv1_chain_is_conv_bn_relu(resnet_pass):
    model, x, result = resnet_pass
    steps = activation_chain(result.calls, "layer1.0.conv1", result.activations)
    assert [(s.name, s.role) for s in steps] == [("layer1.0.conv1", "output"), ("layer1.0.bn1", "norm"),
                                                 ("layer1.0.relu", "activation")]
    block = model.layer1[0]
    inp = block_input(model, x, "layer1", 0)
    with torch.no_grad():
        bn = block.bn1(block.conv1(inp))
    torch.testing.assert_close(result.activations["layer1.0.bn1"], bn, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(result.activations["layer1.0.relu"], F.relu(bn), rtol=1e-4, atol=1e-4)


def test_pair_reaches_the_activation_past_the_downsample_branch(resnet_pass):
    """layer2.0.conv2 is followed by the downsample's conv before relu#2: the values prove the link."""
    _, _, result = resnet_pass
    assert activation_pair(result.calls, "layer2.0.conv2", result.activations) == ("layer2.0.conv2", "layer2.0.relu#2")
    # Without values, no guess across another layer.
    assert activation_pair(result.calls, "layer2.0.conv2") == ("layer2.0.conv2", None)


def test_feature_maps_page_offers_every_step_of_the_chain(app_factory):
    """The page's steps for layer1.0.conv2 are conv2 → bn2 → + shortcut → relu#2, and the shortcut step's
    minimum matches bn2 + the block's input recomputed by hand."""
    from explorer.imaging import sample_image
    from explorer.models import load_model

    at = app_factory("feature_maps", sel_model="resnet18", sel_weights="none", sel_input="64x64", sel_sample="shapes")
    at.selectbox(key="maps_block").set_value("layer1.0").run()
    at.selectbox(key="maps_layer").set_value("layer1.0.conv2").run()
    assert not at.exception, at.exception
    radio = at.radio(key="maps_kind")
    assert len(radio.options) == 4 and "layer1.0.bn2" in radio.options[1] and "shortcut" in radio.options[2]
    assert any("ReLU(F(x) + x)" in i.value for i in at.info)
    at.number_input(key="maps_channel").set_value(3).run()
    radio.set_value("step2").run()
    assert not at.exception, at.exception
    shown_min = float(at.metric[0].value)
    loaded = load_model("resnet18", weights=None, device="cpu", input_shape=(3, 64, 64))
    m = loaded.model
    x = loaded.preprocess(sample_image("shapes"))
    with torch.no_grad():
        inp = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        block = m.layer1[0]
        summed = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(inp))))) + inp
    assert shown_min == pytest.approx(float(summed[0, 3].min()), rel=1e-3, abs=1e-4)


def test_a_block_whose_output_is_a_concatenation_claims_no_addition():
    """Two branches concatenated (GoogLeNet, AlexNet's two groups): the output has more channels than the conv,
    so no shortcut can have been added; the chain ends without an "add" step instead of failing."""

    class TwoBranches(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.b = torch.nn.Conv2d(3, 2, 1)
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            return self.relu(torch.cat([self.a(x), self.b(x)], 1))

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = TwoBranches()
            self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6 * 8 * 8, 3))

        def forward(self, x):
            return self.head(self.block(x))

    torch.manual_seed(0)
    model = Net().eval()
    result = analyze(model, torch.rand(1, 3, 8, 8), "block.a", layers=None)
    steps = activation_chain(result.calls, "block.a", result.activations)
    assert all(step.role != "add" for step in steps)


def test_chain_stops_where_the_output_is_reshaped():
    """AlexNet flattens ``avgpool``'s output before its classifier's Dropout: a flat vector is no map of that
    layer, so the chain ends at the layer (every step of a chain has the layer's own shape)."""
    from explorer.analysis import callable_layers

    model = torchvision.models.alexnet(num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    calls = callable_layers(model, x)
    result = analyze(model, x, None)
    shape = next(c.shape for c in calls if c.name == "avgpool")
    chain = activation_chain(result.calls, "avgpool", result.activations)
    assert [s.name for s in chain] == ["avgpool"]
    for layer in ("features.0", "features.3"):  # conv -> ReLU keeps the shape: the chain still reaches the ReLU
        steps = activation_chain(result.calls, layer, result.activations)
        assert steps[-1].role == "activation"
        own = tuple(result.activations[layer].shape[1:])
        assert all(tuple(result.activations[s.name].shape[1:]) == own for s in steps)
    assert shape == (256, 6, 6)
