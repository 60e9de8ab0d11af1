"""timm's CNNs in the registry (issue 18), when timm is installed: listed, built, loaded from a cached checkpoint
with no network, random with the honest notice offline, and every page on resnet, efficientnet and convnext."""
from __future__ import annotations

import urllib.request

import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is not installed (optional: `pip install timm` to run these)")

SWEEP = ("timm/resnet18", "timm/efficientnet_b0", "timm/convnext_atto")
PAGES = ("home", "architecture", "receptive_field", "conv_arithmetic", "feature_maps", "gradcam", "filters",
         "augmentation", "training", "compare", "papers", "build")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_timm_cnns_are_listed_with_timm_input_shapes():
    from explorer.models import TIMM_PREFIX, get_entry, list_models

    names = [n for n in list_models() if n.startswith(TIMM_PREFIX)]
    assert set(SWEEP) <= set(names)
    for name in names:
        entry = get_entry(name)
        cfg = timm.models.get_pretrained_cfg(name[len(TIMM_PREFIX):])
        assert entry.source == "timm" and entry.input_shape == tuple(cfg.input_size)
    assert list_models()[-len(names):] == sorted(names)  # after the project's and torchvision's


def test_pretrained_weights_from_the_cache_need_no_network(tmp_path, monkeypatch, no_network):
    from explorer.models import get_entry, load_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    entry = get_entry("timm/resnet18")
    member = entry.weights_enum.DEFAULT
    reference = timm.create_model("resnet18", pretrained=False)
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0, 0.02, generator=torch.Generator().manual_seed(1))
    member.local_file().parent.mkdir(parents=True)
    torch.save(reference.state_dict(), member.local_file())
    loaded = load_model("timm/resnet18", "pretrained", device="cpu")
    assert loaded.pretrained and loaded.weights_kind == "pretrained" and len(loaded.categories) == 1000
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value, msg=key)


def test_offline_the_model_is_random_and_says_so(tmp_path, monkeypatch, no_network):
    from explorer.models import load_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    loaded = load_model("timm/convnext_atto", "pretrained", device="cpu")
    assert not loaded.pretrained and loaded.weights_kind == "fallback" and loaded.categories is None
    assert "network disabled" in loaded.weights_detail


@pytest.mark.slow
@pytest.mark.parametrize("name", SWEEP)
def test_every_page_on_timm_networks(app_factory, name):
    at = app_factory(None, sel_model=name, sel_weights="none", sel_input="128x128")
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, f"{name} on {page}: {at.exception}"
        assert not at.error, f"{name} on {page}: {[e.value for e in at.error]}"
        assert at.session_state["sel_model"] == name
