"""AppTests for pages/gradcam.py: default layer, class choice, cached redraws, the other captum methods."""
from __future__ import annotations

import numpy as np
import pytest

import explorer.analysis as analysis
from conftest import patch_analyze
import explorer.analysis.attribution as attribution


@pytest.fixture
def count_passes(monkeypatch):
    calls = []
    real = analysis.analyze

    def counting(*args, **kwargs):
        calls.append(kwargs.get("target"))
        return real(*args, **kwargs)

    patch_analyze(monkeypatch, counting)
    return calls


def test_page_runs_with_default_layer_and_three_layers(app_factory):
    at = app_factory("gradcam", sel_model="resnet18", sel_input="64x64", sel_sample="shapes")
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("Grad-CAM")
    assert at.selectbox(key="cam_layer").value == "layer4"  # explorer.models.loading.default_cam_layer
    assert at.selectbox(key="cam_class").value == -1  # top-1
    compared = at.multiselect(key="cam_compare").value
    assert len(compared) == 3 and compared[-1] == "layer4"
    assert at.get("plotly_chart")  # the heatmap with its colour scale
    assert elements(at.main, "Image")  # the overlay and the layer comparison
    assert len(at.get("download_button")) >= 2


def test_redraws_are_cached_and_a_new_class_costs_one_pass(app_factory, count_passes):
    at = app_factory("gradcam", sel_model="tiny_vgg", sel_sample="gradient")
    assert not at.exception, at.exception
    # The shared pass (activations + the default layer's map), then every layer's map for the top-1 class.
    assert len(count_passes) == 2 and count_passes[0] is None
    top1 = count_passes[1]
    at.slider(key="cam_alpha").set_value(0.3).run()
    at.selectbox(key="cam_cmap").set_value("viridis").run()
    layers = at.selectbox(key="cam_layer").options
    at.selectbox(key="cam_layer").set_value(at.selectbox(key="cam_layer").options[0].split(" · ")[0]).run()
    assert not at.exception, at.exception
    assert len(count_passes) == 2, "layer, opacity and colormap come from the cached passes"
    other = 3 if top1 != 3 else 1  # tiny_vgg has five classes (the built-in shapes)
    at.selectbox(key="cam_class").set_value(other).run()
    assert not at.exception, at.exception
    assert count_passes[2:] == [other]
    assert len(layers) >= 4


def test_the_pages_maps_are_captums_grad_cam():
    """The page draws CAMs from its one shared pass; they equal explorer.analysis.attribution.grad_cam (captum)."""
    from explorer.imaging import sample_image
    from explorer.models import load_model
    from explorer.analysis import page_analysis

    loaded = load_model("tiny_vgg", weights=None, device="cpu")
    image = sample_image("checkerboard")
    shared = page_analysis(loaded, image)
    x = loaded.preprocess(image)
    every = analysis.analyze(loaded.model, x, shared["default_layer"], target=shared["top1"], layers=[],
                                cam_all=True).cam_raw  # what the page's per-class pass computes
    for layer, cams in ((shared["default_layer"], shared["cams"]), (next(iter(sorted(every))), every)):
        expected = attribution.grad_cam(loaded.model, x, layer, target=shared["top1"])
        got = analysis.upsample_cam(cams[layer], shared["picture"].shape[:2])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert shared["picture"].shape == (64, 64, 3) and shared["picture"].dtype == np.uint8


def elements(node, kind: str) -> list:
    """Every element of ``kind`` (e.g. "Image", "Status") under ``node``, depth first."""
    found = []
    for child in getattr(node, "children", {}).values():
        if type(child).__name__ == kind:
            found.append(child)
        found += elements(child, kind)
    return found


def test_other_methods_run_on_demand(app_factory):
    at = app_factory("gradcam", sel_model="mnist_cnn")
    assert not at.exception, at.exception
    assert at.multiselect(key="cam_methods").value == ["guided_gradcam", "integrated_gradients", "saliency"]
    images_before = len(elements(at.main, "Image"))
    at.multiselect(key="cam_methods").set_value(["guided_gradcam", "integrated_gradients", "saliency", "occlusion"])
    at.toggle(key="cam_methods_on").set_value(True).run()
    assert not at.exception, at.exception
    assert not at.error
    assert len(elements(at.main, "Image")) == images_before + 4
    captions = [c.value for c in at.caption]
    for method in ("Guided backprop", "Gradients summed", "gradient of the class score", "Hide one square"):
        assert any(method in c for c in captions), method
    status = elements(at.main, "Status")
    assert status and elements(status[0], "Progress")  # long work shows its progress


def test_korean_page(app_factory):
    at = app_factory("gradcam", sel_model="mnist_cnn", lang="ko")
    assert not at.exception, at.exception
    assert "네트워크가 보는 곳" in at.title[0].value


@pytest.mark.slow
def test_every_registered_model_on_the_feature_map_and_grad_cam_pages(app_factory, with_model):
    """Every view works for every registered model (branchy ones included): the Feature-map page with
    another layer and opacity, then the Grad-CAM page with another layer, at most 160×160."""
    from explorer.models import list_models

    maps = app_factory("feature_maps", sel_weights="none")
    cams = app_factory("gradcam", sel_weights="none")
    for name in list_models():
        for at in (maps, cams):
            with_model(at, name)
            assert not at.exception, (name, at.exception)
            assert not at.error, (name, [e.value for e in at.error])
            assert at.get("plotly_chart"), name
        layers = maps.selectbox(key="maps_layer").options
        maps.selectbox(key="maps_layer").set_value(layers[len(layers) // 2].split(" · ")[0]).run()
        maps.slider(key="maps_alpha").set_value(0.8).run()
        assert not maps.exception, (name, maps.exception)
        cam_layers = cams.selectbox(key="cam_layer").options
        cams.selectbox(key="cam_layer").set_value(cam_layers[0].split(" · ")[0]).run()
        assert not cams.exception and not cams.error, (name, cams.exception, [e.value for e in cams.error])
