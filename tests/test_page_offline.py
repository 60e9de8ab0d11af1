"""Every page without internet, in both languages (issue 13), and the first screen of a fresh session.

The network is unavailable (``urllib.request.urlopen`` fails like a machine without DNS) and the torch cache is
an empty temporary folder, so an ImageNet network falls back to random weights. No page may show raw exception
text ("URLError", "urlopen", "Errno"), and the one short no-internet sentence appears at most once per page.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format

from explorer.core import translate

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p.stem for p in (ROOT / "pages").glob("*.py"))
IMAGENET_MODEL = "squeezenet1_1"  # small: every page runs quickly with it
RAW = ("URLError", "urlopen", "Errno")


def page_text(at) -> str:
    """Every element's text on the page, sidebar included (protobuf text with UTF-8 kept)."""
    parts: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(text_format.MessageToString(proto, as_utf8=True))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("page", PAGES)
def test_no_page_shows_raw_download_errors_offline(app_factory, offline, page, lang):
    from ui.compare_cache import cam_and_predictions  # noqa: F401  (the cache below is cleared per test)
    import streamlit as st

    st.cache_resource.clear()  # a model loaded online by an earlier test must not hide the offline path
    st.cache_data.clear()
    at = app_factory(page, lang=lang, sel_model=IMAGENET_MODEL, sel_sample="grace_hopper",
                     cmp_models=[IMAGENET_MODEL, "mobilenet_v3_small"], cmp_cam_a=IMAGENET_MODEL,
                     cmp_cam_b="mobilenet_v3_small")
    assert not at.exception, at.exception
    text = page_text(at)
    for raw in RAW:
        assert raw not in text, f"{page} ({lang}) shows {raw!r}"
    sentence = translate("weights.offline", lang).split(":")[0]  # "No internet connection" / "인터넷 연결 없음"
    assert text.count(sentence) <= 1, f"{page} ({lang}) says it {text.count(sentence)} times"
    if page in ("home", "feature_maps", "gradcam", "compare"):
        assert text.count(sentence) == 1, f"{page} ({lang}) never says the weights are missing"


def test_sidebar_offers_only_the_weights_that_exist(app_factory):
    at = app_factory(None)
    assert at.session_state["sel_model"] == "tiny_vgg" and at.session_state["sel_sample"] == "shape_star"
    assert at.selectbox(key="sel_weights").options[0] == translate("sidebar.weights.builtin", "en")
    assert translate("sidebar.weights.pretrained", "en") not in at.selectbox(key="sel_weights").options
    at.selectbox(key="sel_model").set_value("resnet18").run()
    assert at.selectbox(key="sel_weights").options[0] == translate("sidebar.weights.pretrained", "en")
    assert at.session_state["sel_sample"] == "grace_hopper"  # a photo for an ImageNet network
    at.selectbox(key="sel_model").set_value("plain18").run()
    options = at.selectbox(key="sel_weights").options
    assert translate("sidebar.weights.pretrained", "en") not in options
    assert translate("sidebar.weights.builtin", "en") not in options
    at.selectbox(key="sel_model").set_value("mnist_cnn").run()
    assert at.session_state["sel_sample"].startswith("digit_")


def test_fresh_session_predicts_its_sample_correctly(app_factory):
    at = app_factory("feature_maps")
    assert not at.exception
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]  # the top-5 chart comes first
    top = max(zip(bars["x"], bars["y"]))[1]
    assert top == "star (4)", bars
    text = page_text(at)
    assert translate("weights.builtin", "en").split("(")[0] in text
    assert translate("pred.pattern", "en") not in text


@pytest.mark.parametrize("sample", ["shapes", "checkerboard", "gradient"])
def test_patterns_are_labelled_as_patterns_where_predictions_show(app_factory, sample):
    at = app_factory("gradcam", sel_sample=sample)
    assert not at.exception
    assert translate("pred.pattern", "en") in page_text(at)


def test_a_digit_shown_to_the_shapes_network_is_labelled(app_factory):
    at = app_factory("feature_maps", sel_sample="digit_3")
    assert not at.exception
    assert translate("pred.dataset.shapes", "en") in page_text(at)
