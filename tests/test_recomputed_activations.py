"""Outputs that the pass overwrites in place are kept as their call and computed again when read (issue 19).

A BatchNorm's output that ``ReLU(inplace=True)`` overwrites next used to be copied during every pass; the pages'
shared pass now keeps the call (its input and the BatchNorm's own tensors) instead. The values a page reads must be
exactly those of the pass: checked against plain forward hooks that clone every output (tests/hook_reference.py).
"""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from explorer.analysis import page_analysis
from explorer.imaging import sample_image
from explorer.models import LoadedModel
from hook_reference import plain_outputs


def _loaded(model: nn.Module, side: int) -> LoadedModel:
    from explorer.imaging import basic_transform

    model.eval()
    shape = (3, side, side)
    return LoadedModel(model=model, name="test", input_shape=shape, categories=None, weights_status="random",
                       weights_key="random", pretrained=False, device=torch.device("cpu"),
                       transform=basic_transform(shape), weights_kind="random")


class ConvBnRelu(nn.Module):
    """googlenet's BasicConv2d: the ReLU is functional and in place."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class RewritesTheSource(nn.Module):
    """The conv output (a BatchNorm's input) is itself rewritten after the BatchNorm ran: recomputing the
    BatchNorm from it would give other values, so the pass must copy instead."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)  # the Grad-CAM layer: the graph starts after the rewrite
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        a = self.conv(x)
        b = self.relu(self.bn(a))
        a.mul_(2.0)
        return self.head(self.conv2(b + a))


def _randomise_batchnorm(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):  # fresh statistics are 0/1: make the BatchNorm do something
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


MODELS = {
    "resnet18 (BatchNorm, ReLU(inplace), out += identity)": lambda: torchvision.models.resnet18(num_classes=7),
    "vgg11_bn (conv, BatchNorm, ReLU(inplace))": lambda: torchvision.models.vgg11_bn(num_classes=7),
    "vgg11 (conv then ReLU(inplace): copied)": lambda: torchvision.models.vgg11(num_classes=7),
    "mobilenet_v2 (ReLU6(inplace))": lambda: torchvision.models.mobilenet_v2(num_classes=7),
    "functional in-place ReLU": lambda: nn.Sequential(ConvBnRelu(3, 6), ConvBnRelu(6, 8), nn.AdaptiveAvgPool2d(1),
                                                      nn.Flatten(), nn.Linear(8, 5)),
    "a rewritten source": RewritesTheSource,
}


@pytest.mark.parametrize("label", list(MODELS))
def test_every_layer_equals_a_plain_forward_exactly(label):
    torch.manual_seed(0)
    model = _randomise_batchnorm(MODELS[label]())
    side = 64 if "vgg" not in label else 32
    loaded = _loaded(model, side)
    image = sample_image("grace_hopper")
    for _ in range(3):  # the first pass learns which outputs are rewritten; later ones recompute or copy them
        data = page_analysis(loaded, image)
    acts = data["activations"]
    reference = plain_outputs(model, loaded.preprocess(image))
    compared = 0
    for name, tensor in reference.items():
        if name in acts:
            np.testing.assert_array_equal(acts[name], tensor[0].numpy(), err_msg=f"{label}: {name}")
            compared += 1
    assert compared >= len(reference) - 1  # every layer but possibly the model's own output
    recomputed = [n for n in acts if acts.is_recomputed(n)]
    if "copied" in label:
        assert not recomputed  # no BatchNorm: the conv outputs the ReLUs overwrite are copies
    elif label == "a rewritten source":
        assert not any(n.startswith("bn") for n in recomputed)  # its input was rewritten: copied instead
        model.passes = 0
        page_analysis(loaded, image)
        assert model.passes == 1  # learnt once: no pass redone because a kept call's input changed
    else:
        assert recomputed, "no layer was kept as its call"


def _resnet18_analysis() -> tuple[nn.Module, LoadedModel, object, object]:
    """resnet18 (7 classes, 64×64) analysed twice: the second pass uses the learnt plan, so its BatchNorm outputs
    are kept as their calls. Returns (model, loaded, image, activations)."""
    torch.manual_seed(0)
    model = _randomise_batchnorm(torchvision.models.resnet18(num_classes=7))
    loaded = _loaded(model, 64)
    image = sample_image("grace_hopper")
    page_analysis(loaded, image)
    return model, loaded, image, page_analysis(loaded, image)["activations"]


def test_a_recomputed_layer_holds_no_copy_until_read():
    model, loaded, image, acts = _resnet18_analysis()
    assert acts.is_recomputed("bn1") and acts.is_recomputed("layer1.0.bn2")
    assert not acts.is_recomputed("conv1")  # never rewritten: kept by reference
    before = acts.device_bytes
    conv1 = acts["conv1"]
    # Reading conv1 (a view of a kept tensor on the CPU) adds no bytes; bn1 was never among them.
    assert before == acts.device_bytes
    bn1 = acts["bn1"]
    assert bn1.shape == conv1.shape and acts.converted == 2
    # Exactly BatchNorm's formula over the conv output (an independent computation in numpy).
    bn = model.bn1
    mean = bn.running_mean.numpy()[:, None, None]
    std = np.sqrt(bn.running_var.numpy()[:, None, None] + bn.eps)
    expected = (conv1 - mean) / std * bn.weight.detach().numpy()[:, None, None] + bn.bias.detach().numpy()[:, None, None]
    np.testing.assert_allclose(bn1, expected, rtol=1e-4, atol=1e-5)
    assert (bn1 < 0).any()  # the values before the in-place ReLU, not after it


def test_statistics_changed_in_place_after_the_pass_are_refused_not_shown():
    model, loaded, image, acts = _resnet18_analysis()
    with torch.no_grad():
        model.layer1[0].bn1.weight.mul_(3.0)
    with pytest.raises(RuntimeError, match="changed after this analysis"):
        acts["layer1.0.bn1"]
    assert acts["layer1.0.conv1"].shape[0] == 64  # layers kept as tensors still read


def test_a_model_switched_to_train_mode_after_the_pass_changes_nothing():
    """Another session may put a shared model in train mode: reading a kept BatchNorm call must neither use batch
    statistics nor update the running ones."""
    model, loaded, image, acts = _resnet18_analysis()
    expected = plain_outputs(model, loaded.preprocess(image), ["layer2.0.bn1"])["layer2.0.bn1"][0].numpy()
    running = model.layer2[0].bn1.running_mean.clone()
    model.train()
    try:
        np.testing.assert_array_equal(acts["layer2.0.bn1"], expected)
    finally:
        model.eval()
    assert torch.equal(model.layer2[0].bn1.running_mean, running)


def test_a_replaced_parameter_does_not_change_what_was_recorded():
    model, loaded, image, acts = _resnet18_analysis()
    expected = plain_outputs(model, loaded.preprocess(image), ["layer1.0.bn1"])["layer1.0.bn1"][0].numpy()
    model.layer1[0].bn1.weight = nn.Parameter(torch.full((64,), 3.0))  # a new tensor, version 0 like the old
    np.testing.assert_array_equal(acts["layer1.0.bn1"], expected)


def test_an_analysis_does_not_keep_a_dropped_models_weights():
    import gc
    import weakref

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=7)
    loaded = _loaded(model, 64)
    image = sample_image("grace_hopper")
    page_analysis(loaded, image)
    acts = page_analysis(loaded, image)["activations"]
    weight = weakref.ref(model.layer4[1].conv2.weight)
    assert acts.is_recomputed("layer4.1.bn2")
    del model, loaded
    gc.collect()
    assert weight() is None  # 2.4 MB of conv weights: not held by the kept BatchNorm calls
    assert acts["layer4.1.bn2"].shape == (512, 2, 2)


def test_a_batchnorm_whose_input_is_not_recorded_is_copied_not_kept_as_its_call():
    """Keeping the call would keep alive a tensor the analysis does not hold otherwise (here the model's input)."""
    model = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(inplace=True), nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2))
    _randomise_batchnorm(model)
    loaded = _loaded(model, 32)
    image = sample_image("grace_hopper")
    for _ in range(3):
        acts = page_analysis(loaded, image)["activations"]
    assert not acts.is_recomputed("0")
    reference = plain_outputs(model, loaded.preprocess(image), ["0"])["0"][0].numpy()
    np.testing.assert_array_equal(acts["0"], reference)
