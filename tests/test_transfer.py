"""explorer.training.transfer: head replacement for every model family, freezing, parameter groups and counts."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn as nn
import torchvision

from explorer.models import heads as H
from explorer.training import transfer as T
from explorer.data import load_shapes
from explorer.models import build_model
from explorer.training import TrainConfig, prepare, train


def _linear_params(in_features: int, k: int) -> int:
    return in_features * k + k


@pytest.mark.parametrize("name, heads, in_features", [
    ("mnist_cnn", ["fc"], 32),
    ("tiny_vgg", ["classifier"], 32),  # global average pooling over block3's 32 maps
    ("lenet5_dense", ["11"], 84),
    ("plain18", ["fc"], 512),
    ("resnet18", ["fc"], 512),
    ("mobilenet_v3_small", ["classifier.3"], 1024),
    ("densenet121", ["classifier"], 1024),
    ("squeezenet1_1", ["classifier.1"], 512),
    ("googlenet", ["fc"], 1024),
])
def test_head_is_found_and_resized(name, heads, in_features):
    model = build_model(name)
    assert H.head_names(model) == heads
    replaced = H.replace_head(model, 3)
    assert replaced == heads
    head = model.get_submodule(heads[0])
    assert (getattr(head, "out_features", None) or head.out_channels) == 3
    assert T.trainable_counts(model).head == _linear_params(in_features, 3)


def test_vgg_classifier_sequential_last_layer():
    model = torchvision.models.vgg11(weights=None)
    assert H.head_names(model) == ["classifier.6"]
    H.replace_head(model, 4)
    assert model.classifier[6].out_features == 4 and model.classifier[0].out_features == 4096


def test_squeezenet_conv_head_runs_with_new_class_count():
    model = build_model("squeezenet1_1")
    H.replace_head(model, 5)
    assert isinstance(model.classifier[1], nn.Conv2d) and model.classifier[1].kernel_size == (1, 1)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 5)


def test_googlenet_and_inception_auxiliary_heads_are_resized():
    g = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    assert H.head_names(g) == ["fc", "aux1.fc2", "aux2.fc2"]
    H.replace_head(g, 3)
    g.train()
    out = g(torch.zeros(2, 3, 96, 96))
    assert [o.shape[1] for o in out] == [3, 3, 3]
    inc = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    assert H.head_names(inc) == ["fc", "AuxLogits.fc"]
    paper = build_model("googlenet_paper")
    assert H.head_names(paper) == ["fc", "aux1.fc2", "aux2.fc2"]


def test_lenet5_rbf_output_is_resized_with_its_own_type():
    model = build_model("lenet5")
    H.replace_head(model, 4)
    assert type(model.output).__name__ == "EuclideanRBF" and model.output.prototypes.shape == (4, 84)
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 4)


def test_custom_arch_head():
    model = build_model("arch:in-1x16x16 conv3-4 M FC-10")
    H.replace_head(model, 2)
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 2)


def test_modes_set_requires_grad_and_counts():
    model = build_model("resnet18")
    H.replace_head(model, 3)
    total = sum(p.numel() for p in model.parameters())
    counts = T.trainable_counts(model)
    assert counts.feature_extract == 512 * 3 + 3 and counts.fine_tune == total == counts.scratch
    T.apply_mode(model, "feature_extract")
    assert T.count_trainable(model) == 512 * 3 + 3
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    T.apply_mode(model, "fine_tune")
    assert T.count_trainable(model) == total
    with pytest.raises(ValueError):
        T.apply_mode(model, "freeze_everything")


def test_fine_tune_groups_give_the_backbone_a_lower_learning_rate():
    model = build_model("mnist_cnn")
    groups = T.parameter_groups(model, "fine_tune", lr=0.01, backbone_lr_factor=0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01])
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    assert {id(p) for p in groups[1]["params"]} == {id(model.fc.weight), id(model.fc.bias)}
    only_head = T.parameter_groups(model, "feature_extract", lr=0.01)
    assert len(only_head) == 1 and {id(p) for p in only_head[0]["params"]} == {id(model.fc.weight), id(model.fc.bias)}


def test_feature_extraction_changes_only_the_head():
    data = load_shapes(channels=1, size=28, seed=0, samples=120)
    # mnist_cnn has BatchNorm: its running statistics must not move either (frozen backbone in eval mode).
    config = TrainConfig(model="mnist_cnn", mode="feature_extract", epochs=1, batch_size=16, lr=0.05,
                         optimizer="sgd", max_steps=4, device="cpu")
    prep = prepare(config, data)
    before = {k: v.clone() for k, v in prep.model.state_dict().items()}
    for _ in train(config, None, prepared=prep):
        pass
    after = prep.model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["fc.bias", "fc.weight"]


class _AuxOut(NamedTuple):
    logits: torch.Tensor
    aux: torch.Tensor


class _AuxNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.aux_head = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 10))
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        h = self.body(x)
        return _AuxOut(self.fc(h), self.aux_head(h)) if self.training else self.fc(h)


def test_aux_heads_follow_the_main_head_and_join_feature_extraction():
    net = _AuxNet()
    assert H.head_names(net) == ["fc", "aux_head.1"]
    H.replace_head(net, 3)
    assert net.aux_head[1].out_features == 3 and net.aux_head[0].out_features == 8
    T.apply_mode(net, "feature_extract")
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias", "aux_head.1.weight", "aux_head.1.bias"}
