"""The registry: every model builds and runs at its input shape; loading weights behaves."""
import pytest
import torch
import torch.nn as nn

from explorer import models
from explorer.analysis import default_cam_layer
from explorer.models import CheckpointError, save_atomic

FAST = ["mnist_cnn", "lenet5", "lenet5_dense", "tiny_vgg", "alexnet", "resnet18", "googlenet", "squeezenet1_1",
        "mobilenet_v3_small", "shufflenet_v2_x0_5", "densenet121"]


def test_list_models_has_required_families():
    names = models.list_models()
    for required in ["mnist_cnn", "lenet5", "tiny_vgg", "plain18", "plain34", "alexnet", "vgg16", "googlenet",
                     "inception_v3", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "densenet121",
                     "squeezenet1_0", "mobilenet_v2", "mnasnet1_0", "shufflenet_v2_x1_0", "efficientnet_b0",
                     "regnet_y_400mf", "convnext_tiny"]:
        assert required in names
    assert not [n for n in names if n.startswith(("vit_", "swin_", "maxvit"))]
    assert len(names) == len(set(names))


def test_get_model_is_torchvisions_verb_for_the_registry():
    import torchvision

    import explorer

    net = explorer.get_model("resnet18")
    reference = torchvision.models.resnet18()
    assert not net.training
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in reference.parameters())
    assert explorer.get_model("mnist_cnn", num_classes=10)(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(KeyError):
        explorer.get_model("no_such_net")


def _forward_ok(name: str) -> None:
    loaded = models.load_model(name, weights=None, device="cpu")
    assert not loaded.model.training
    c, h, w = loaded.input_shape
    with torch.no_grad():
        out = loaded.model(torch.randn(1, c, h, w))
    assert out.ndim == 2 and out.shape[0] == 1 and torch.isfinite(out).all()
    assert len(loaded.class_names) == out.shape[1]


@pytest.mark.parametrize("name", FAST)
def test_fast_models_forward(name):
    _forward_ok(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in models.list_models() if n not in FAST])
def test_every_model_forward(name):
    _forward_ok(name)


def test_mnist_cnn_is_the_seed_network():
    model = models.build_model("mnist_cnn")
    assert sum(p.numel() for p in model.parameters()) == 2762
    shapes = []
    x = torch.zeros(1, 1, 28, 28)
    for conv in (model.conv1, model.conv2, model.conv3):
        x = conv(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(8, 12, 12), (8, 4, 4), (8, 2, 2)]


def test_lenet5_per_layer_parameters_match_the_paper():
    model = models.build_model("lenet5")
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    # LeCun et al. 1998, section II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164.
    assert {k: counts[k] for k in ("C1", "S2", "C3", "S4", "C5", "F6")} == {
        "C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164}
    # C3's connection table: 6 maps see 3 inputs, 9 see 4, 1 sees all 6 → zero kernels elsewhere.
    full = model.C3.weight.detach()
    connected = (full.abs().sum(dim=(2, 3)) > 0).sum(dim=1).tolist()
    assert sorted(connected) == [3] * 6 + [4] * 9 + [6]


def test_plain_nets_have_no_shortcuts():
    plain, resnet = models.build_model("plain18"), models.build_model("resnet18")
    assert not any("downsample" in n for n, _ in plain.named_modules())
    conv_count = lambda m: sum(isinstance(x, nn.Conv2d) for x in m.modules())  # noqa: E731
    assert conv_count(resnet) - conv_count(plain) == 3  # the three projection shortcuts
    # Without shortcuts, zeroing the first block's second conv kills the block's output entirely.
    block = plain.layer1[0]
    torch.nn.init.zeros_(block.conv2.weight)
    block.bn2.eval()
    out = block(torch.randn(1, 64, 8, 8))
    assert torch.allclose(out, torch.relu(block.bn2.bias.view(1, -1, 1, 1).expand_as(out) - block.bn2.running_mean.view(1, -1, 1, 1) * 0))


def test_random_init_is_deterministic():
    a = models.build_model("tiny_vgg").state_dict()
    b = models.build_model("tiny_vgg").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretrained_falls_back_visibly_when_offline(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("explorer.models.loading.fetch_pretrained", offline)
    loaded = models.load_model("resnet18", weights="pretrained", device="cpu")
    assert not loaded.pretrained and loaded.categories is None
    assert "could not be loaded" in loaded.weights_status and "network unreachable" in loaded.weights_status
    assert loaded.class_names[0] == "tench"  # names stay available for pickers


def test_pretrained_uses_local_cache(tmp_path, monkeypatch):
    """A weights file already in torch's hub cache is loaded with no network."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    weights = models.get_entry("squeezenet1_1").weights_enum.DEFAULT
    source = models.build_model("squeezenet1_1")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.5)
    path = tmp_path / "checkpoints" / weights.url.rsplit("/", 1)[1]
    save_atomic(source.state_dict(), path)
    loaded = models.load_model("squeezenet1_1", weights="pretrained", device="cpu")
    assert loaded.pretrained and loaded.categories[0] == "tench"
    assert torch.equal(next(loaded.model.parameters()), next(source.parameters()))


def test_user_checkpoint_roundtrip_and_prefix_unwrapping(tmp_path):
    trained = models.build_model("mnist_cnn")
    with torch.no_grad():
        trained.fc.bias.fill_(3.0)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in trained.state_dict().items()}}, path)
    loaded = models.load_model("mnist_cnn", weights=str(path), device="cpu")
    assert torch.equal(loaded.model.fc.bias, trained.fc.bias)
    assert loaded.weights_key.startswith("upload:")


def test_checkpoint_for_fewer_classes_builds_matching_head(tmp_path):
    three = models.build_model("resnet18", num_classes=3)
    path = tmp_path / "r3.pt"
    torch.save(three.state_dict(), path)
    loaded = models.load_model("resnet18", weights=path.read_bytes(), device="cpu")
    assert loaded.model.fc.out_features == 3


def test_mismatched_checkpoint_is_reported_by_name(tmp_path):
    state = models.build_model("mnist_cnn").state_dict()
    state["conv1.weight"] = torch.zeros(8, 1, 3, 3)
    del state["fc.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        models.load_model("mnist_cnn", weights=str(path), device="cpu")
    text = str(info.value)
    assert "fc.bias" in text and "extra.weight" in text and "conv1.weight" in text


def test_non_finite_checkpoint_is_refused(tmp_path):
    state = models.build_model("mnist_cnn").state_dict()
    state["fc.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="non-finite"):
        models.load_model("mnist_cnn", weights=str(path), device="cpu")


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/explorer_pwned",))


def test_pickle_with_code_is_never_executed(tmp_path):
    import os

    if os.path.exists("/tmp/explorer_pwned"):
        os.remove("/tmp/explorer_pwned")
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Evil()}, path)
    with pytest.raises(CheckpointError, match="pickled code"):
        models.load_model("mnist_cnn", weights=str(path), device="cpu")
    assert not os.path.exists("/tmp/explorer_pwned")


@pytest.mark.parametrize("payload", [b"", b"not a checkpoint at all", b"PK\x03\x04broken"])
def test_garbage_checkpoints_get_one_clear_error(payload):
    with pytest.raises(CheckpointError):
        models.load_model("mnist_cnn", weights=payload, device="cpu")


def test_default_cam_layer_picks_last_spatial_block():
    for name, expected in [("resnet18", "layer4"), ("googlenet", "inception5b"), ("lenet5", "C3"),
                           ("mnist_cnn", "conv3")]:
        entry = models.get_entry(name)
        assert default_cam_layer(models.build_model(name), entry.input_shape) == expected


def test_preprocess_gives_model_channels_and_size():
    from explorer.imaging import sample_image

    img = sample_image("shapes")
    for name in ("mnist_cnn", "resnet18"):
        loaded = models.load_model(name, weights=None, device="cpu")
        x = loaded.preprocess(img)
        assert tuple(x.shape) == (1, *loaded.input_shape)
    small = models.with_input_shape(models.load_model("resnet18", weights=None, device="cpu"), (3, 96, 128))
    assert tuple(small.preprocess(img).shape) == (1, 3, 96, 128)


def test_save_atomic_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.pt"
    save_atomic({"a": torch.ones(1)}, target)

    def broken(obj, fh):
        fh.write(b"half")
        raise RuntimeError("killed")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError):
        save_atomic({"a": torch.zeros(1)}, target)
    assert torch.load(target)["a"].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]
