"""Activations stay on the model's device until a page reads a layer; static tables are keyed by architecture."""
import numpy as np
import pytest
import torch
import torchvision
from types import SimpleNamespace

from explorer.analysis import HostActivations, page_analysis
from explorer.core import architecture_fingerprint, nbytes_of
from explorer.imaging import sample_image
from explorer.models import load_model
from hook_reference import plain_outputs


@pytest.fixture(scope="module")
def resnet():
    return load_model("resnet18", weights=None, input_shape=(3, 96, 96))


def test_layers_are_copied_when_read_and_equal_a_plain_forward(resnet):
    image = sample_image("grace_hopper")
    data = page_analysis(resnet, image)
    acts = data["activations"]
    assert isinstance(acts, HostActivations) and acts.converted == 0 and len(acts) > 50
    names = ["conv1", "layer2.0.conv1", "layer4.1.bn2"]
    expected = {n: t[0].numpy() for n, t in plain_outputs(resnet.model, resnet.preprocess(image), names).items()}
    for i, name in enumerate(names, start=1):
        assert acts.shape_of(name) == expected[name].shape
        array = acts[name]
        assert acts.converted == i  # one more layer copied, no other
        assert array.dtype == np.float32 and not array.flags.writeable
        np.testing.assert_allclose(array, expected[name], rtol=1e-5, atol=1e-5)
        assert acts[name] is array  # a second reader gets the same array
    assert acts.converted == len(names)


def test_names_that_share_a_tensor_share_one_array_and_bytes_count_once(resnet):
    data = page_analysis(resnet, sample_image("grace_hopper"))
    acts = data["activations"]
    # A BasicBlock's output is the tensor its last ReLU returned: the same object, counted and copied once.
    assert acts["layer1.0"] is acts["layer1.0.relu#2"]
    # Layers kept as their call (a BatchNorm output that ReLU(inplace=True) overwrites) hold no tensor of their own
    # until read; what they keep alive is their input, itself a recorded layer here.
    names = list(acts)
    kept = {id(t): t for n in names if not acts.is_recomputed(n) for t in [acts._tensors[n]]}
    assert any(acts.is_recomputed(n) for n in names)
    assert acts.device_bytes == sum(t.element_size() * t.nelement() for t in kept.values())
    # A byte budget counts each of those as the float32 array it becomes when read: nothing is left uncounted.
    pending = {id(acts._tensors[n]): 4 * int(np.prod(acts.shape_of(n))) for n in names if acts.is_recomputed(n)}
    assert nbytes_of(acts) == acts.device_bytes + sum(pending.values())
    for name in names:
        acts[name]
    assert nbytes_of(acts) == acts.device_bytes + sum(pending.values())  # the same once they are arrays


def test_the_fingerprint_names_the_architecture_not_the_weights():
    torch.manual_seed(0)
    a = torchvision.models.resnet18()
    torch.manual_seed(1)
    b = torchvision.models.resnet18()
    assert not torch.equal(a.conv1.weight, b.conv1.weight)
    assert architecture_fingerprint(a) == architecture_fingerprint(b)
    assert architecture_fingerprint(a) != architecture_fingerprint(torchvision.models.resnet18(num_classes=10))
    assert architecture_fingerprint(a) != architecture_fingerprint(torchvision.models.resnet34())


def test_the_receptive_field_table_is_computed_once_per_architecture_and_input(monkeypatch):
    import explorer.receptive as receptive
    from ui import receptive_cache

    calls = []
    real = receptive.receptive_field_table

    def counting(model, shape, **kwargs):
        calls.append(tuple(shape))
        return real(model, shape, **kwargs)

    monkeypatch.setattr(receptive, "receptive_field_table", counting)
    receptive_cache._rf_table.clear()
    torch.manual_seed(3)
    one = SimpleNamespace(model=torchvision.models.resnet18(), input_shape=(3, 64, 64))
    torch.manual_seed(4)
    two = SimpleNamespace(model=torchvision.models.resnet18(), input_shape=(3, 64, 64))  # other weights
    first, second = receptive_cache.rf_table(one), receptive_cache.rf_table(two)
    assert calls == [(3, 64, 64)]
    assert first.equals(second)
    receptive_cache.rf_table(SimpleNamespace(model=two.model, input_shape=(3, 96, 96)))
    assert calls == [(3, 64, 64), (3, 96, 96)]
