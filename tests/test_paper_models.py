"""The paper models against counts computed here from the papers' layer widths (never from the code)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from explorer.models import build_model, get_entry, list_models

# The VGG paper's Table 1, written here independently: (kernel, filters) per conv, "M" for max pooling.
C3, C1 = 3, 1
VGG_WIDTHS = {
    "vgg_a": [(C3, 64), "M", (C3, 128), "M", (C3, 256), (C3, 256), "M", (C3, 512), (C3, 512), "M",
              (C3, 512), (C3, 512), "M"],
    "vgg_b": [(C3, 64)] * 2 + ["M"] + [(C3, 128)] * 2 + ["M"] + [(C3, 256)] * 2 + ["M"] + [(C3, 512)] * 2 + ["M"]
    + [(C3, 512)] * 2 + ["M"],
    "vgg_c": [(C3, 64)] * 2 + ["M"] + [(C3, 128)] * 2 + ["M"] + [(C3, 256)] * 2 + [(C1, 256), "M"]
    + [(C3, 512)] * 2 + [(C1, 512), "M"] + [(C3, 512)] * 2 + [(C1, 512), "M"],
    "vgg_d": [(C3, 64)] * 2 + ["M"] + [(C3, 128)] * 2 + ["M"] + [(C3, 256)] * 3 + ["M"] + [(C3, 512)] * 3 + ["M"]
    + [(C3, 512)] * 3 + ["M"],
    "vgg_e": [(C3, 64)] * 2 + ["M"] + [(C3, 128)] * 2 + ["M"] + [(C3, 256)] * 4 + ["M"] + [(C3, 512)] * 4 + ["M"]
    + [(C3, 512)] * 4 + ["M"],
}
VGG_WIDTHS["vgg_a_lrn"] = VGG_WIDTHS["vgg_a"]  # LRN has no parameters
# Table 2 of the paper, in millions.
PAPER_MILLIONS = {"vgg_a": 133, "vgg_a_lrn": 133, "vgg_b": 133, "vgg_c": 134, "vgg_d": 138, "vgg_e": 144}
WEIGHT_LAYERS = {"vgg_a": 11, "vgg_a_lrn": 11, "vgg_b": 13, "vgg_c": 16, "vgg_d": 16, "vgg_e": 19}


def expected_vgg_params(widths) -> int:
    total, channels = 0, 3
    for item in widths:
        if item == "M":
            continue
        k, n = item
        total += k * k * channels * n + n
        channels = n
    # 224 / 2**5 = 7: FC-4096, FC-4096, FC-1000 with biases.
    return total + (channels * 7 * 7 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)


def meta_build(name: str) -> nn.Module:
    with torch.device("meta"):  # shapes only: no memory for 138 M parameters, no init cost
        return build_model(name)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(VGG_WIDTHS))
def test_vgg_parameter_count_matches_independent_sum(name):
    model = meta_build(name)
    assert n_params(model) == expected_vgg_params(VGG_WIDTHS[name])
    assert round(n_params(model) / 1e6) == PAPER_MILLIONS[name]


@pytest.mark.parametrize("name", sorted(VGG_WIDTHS))
def test_vgg_layers_follow_the_configuration(name):
    model = meta_build(name)
    convs = [(m.kernel_size[0], m.out_channels) for m in model.features if isinstance(m, nn.Conv2d)]
    assert convs == [w for w in VGG_WIDTHS[name] if w != "M"]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5 and all(p.kernel_size == 2 and p.stride == 2 for p in pools)
    weight_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    assert weight_layers == WEIGHT_LAYERS[name]
    # 1×1 convolutions keep the map size ("same" padding is K // 2).
    assert all(m.padding[0] == m.kernel_size[0] // 2 for m in model.features if isinstance(m, nn.Conv2d))


def test_vgg_a_lrn_has_lrn_after_the_first_convolution_only():
    features = list(meta_build("vgg_a_lrn").features)
    kinds = [type(m).__name__ for m in features[:4]]
    assert kinds == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in features) == 1
    lrn = features[2]
    # Krizhevsky et al.'s n = 5, β = 0.75, k = 2 and α = 1e-4, which PyTorch takes as alpha = α·n (it divides by n);
    # tests/test_review12_arch.py checks the output against the paper's formula.
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, pytest.approx(5e-4), 0.75, 2.0)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in meta_build("vgg_a").modules())


@pytest.mark.parametrize("ours, theirs", [("vgg_a", "vgg11"), ("vgg_b", "vgg13"), ("vgg_d", "vgg16"),
                                          ("vgg_e", "vgg19")])
def test_vgg_state_dict_matches_torchvision(ours, theirs):
    with torch.device("meta"):
        reference = torchvision.models.get_model(theirs).state_dict()
    mine = meta_build(ours).state_dict()
    assert [(k, tuple(v.shape)) for k, v in mine.items()] == [(k, tuple(v.shape)) for k, v in reference.items()]
    assert n_params(meta_build(ours)) == torchvision.models.get_model_weights(theirs).DEFAULT.meta["num_params"]


def test_registry_entries():
    names = list_models()
    for name in list(VGG_WIDTHS) + ["googlenet_paper"]:
        assert name in names
        entry = get_entry(name)
        assert entry.input_shape == (3, 224, 224)
    assert get_entry("vgg_d").weights_enum is torchvision.models.VGG16_Weights
    assert get_entry("vgg_e").weights_enum is torchvision.models.VGG19_Weights
    assert get_entry("vgg_c").weights_enum is None and get_entry("vgg_a_lrn").weights_enum is None
    assert len(get_entry("vgg_d").categories) == 1000


def test_vgg_runs_on_a_small_input_and_shapes_hold_at_224():
    model = meta_build("vgg_c")
    assert model(torch.zeros(2, 3, 224, 224, device="meta")).shape == (2, 1000)
    small = build_model("vgg_a_lrn", num_classes=10)
    assert not small.training
    with torch.no_grad():
        out = small(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_vgg_builder_loads_a_torchvision_state_dict():
    """The builder's ``weights=`` path (used for pretrained weights) accepts torchvision's state dict."""
    entry = get_entry("vgg_d")
    with torch.device("meta"):  # allocated below without paying for a random initialisation
        donor = torchvision.models.vgg16()
    donor = donor.to_empty(device="cpu")
    with torch.no_grad():
        for i, tensor in enumerate(donor.state_dict().values()):
            tensor.fill_(i)

    class FakeWeights:
        @staticmethod
        def get_state_dict(progress=False, check_hash=True):
            return donor.state_dict()

    model = entry.builder(weights=FakeWeights())
    assert torch.equal(model.features[28].weight, donor.features[28].weight)
    assert torch.equal(model.classifier[6].bias, donor.classifier[6].bias)


# --- GoogLeNet ------------------------------------------------------------------------------------

# The paper's Table 1 widths: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def inception_params(cin: int, w: tuple[int, ...]) -> int:
    a, r3, b, r5, c, p = w
    return (cin * a + a) + (cin * r3 + r3) + (9 * r3 * b + b) + (cin * r5 + r5) + (25 * r5 * c + c) + (cin * p + p)


def test_googlenet_paper_structure_and_parameters():
    model = meta_build("googlenet_paper")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    cin = 192
    for key, widths in INCEPTION.items():
        block = getattr(model, f"inception{key}")
        assert block.branch3[1].conv.kernel_size == (5, 5)
        assert n_params(block) == inception_params(cin, widths)
        cin = widths[0] + widths[2] + widths[4] + widths[5]
    assert cin == 1024
    stem = (7 * 7 * 3 * 64 + 64) + (64 * 64 + 64) + (9 * 64 * 192 + 192)
    body = sum(inception_params(c, w) for c, w in zip(
        [192, 256, 480, 512, 512, 512, 528, 832, 832], INCEPTION.values()))
    aux = sum(n_params(getattr(model, a)) for a in ("aux1", "aux2"))
    assert n_params(model) - aux == stem + body + (1024 * 1000 + 1000)
    # Each auxiliary head: 1×1 conv (128) + FC 2048→1024 + FC 1024→1000, on 4a (512) and 4d (528) outputs.
    assert aux == sum(cin * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000 for cin in (512, 528))


def test_googlenet_paper_aux_heads_only_in_training():
    model = build_model("googlenet_paper", num_classes=7)
    x = torch.randn(1, 3, 96, 96)  # small but enough for the aux heads' 5×5/3 pooling after 4a (6×6)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 7)
    model.train()  # our own model, not a shared one
    with torch.no_grad():
        logits, aux2, aux1 = model(x)
    assert logits.shape == aux1.shape == aux2.shape == (1, 7)


def test_googlenet_paper_names_line_up_with_torchvision():
    ours = {n for n, m in meta_build("googlenet_paper").named_modules() if isinstance(m, nn.Conv2d)}
    with torch.device("meta"):
        theirs = {n for n, m in torchvision.models.googlenet(aux_logits=False, init_weights=True).named_modules()
                  if isinstance(m, nn.Conv2d)}
    assert theirs <= ours  # every torchvision conv has a same-named conv here (plus the aux heads)
