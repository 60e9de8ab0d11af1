"""AppTests for pages/receptive_field.py and pages/conv_arithmetic.py."""
from __future__ import annotations

import json

import pytest


def _chart_specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_receptive_field_page_default_model(app_factory):
    at = app_factory("receptive_field", sel_model="resnet18", sel_input="112x112")
    assert not at.exception, at.exception
    assert at.title[0].value == "Receptive fields"
    explanation = " ".join(i.value for i in at.info)
    assert "layer4.1.conv2" in explanation and "435" in explanation  # resnet18's last conv
    # The unit view opens on the largest field of at most half the image (56 px), not on 435 px covering it all.
    # By hand (r += (k−1)·j, j *= s): conv1 7 (j 2), maxpool 11 (j 4), layer1 four 3×3 convs 19 27 35 43,
    # layer2.0.conv1 (stride 2) 43 + 2·4 = 51 ≤ 56; its conv2 51 + 2·8 = 67 > 56.
    assert at.selectbox(key="rf_layer").value == "layer2.0.conv1"
    assert at.get("download_button")
    specs = _chart_specs(at)
    assert len(specs) == 3  # growth chart, box on the image, effective field
    growth = specs[0]
    names = [trace["name"] for trace in growth["data"]]
    assert names[0].startswith("resnet18") and len(names) == 6
    assert any(n.startswith("vgg16 (224×224)") for n in names) and any(n.startswith("lenet5 (32×32)") for n in names)
    assert any(shape.get("y0") == 112 for shape in growth["layout"]["shapes"])  # the image size line
    box = specs[1]["layout"]["shapes"][0]
    assert box["type"] == "rect"
    erf = specs[2]["data"][0]
    assert erf["type"] == "heatmap"


def test_picking_a_layer_and_a_unit(app_factory):
    at = app_factory("receptive_field", sel_model="mnist_cnn")
    assert not at.exception, at.exception
    at.selectbox(key="rf_layer").set_value("conv2").run()
    assert not at.exception, at.exception
    at.slider(key="rf_row").set_value(0).run()
    at.slider(key="rf_col").set_value(0).run()
    assert not at.exception, at.exception
    shape = _chart_specs(at)[1]["layout"]["shapes"][0]
    # conv2 of the notes' MNIST CNN: field 13 px, jump 4, unit (0, 0) sees rows/cols 0–12.
    assert (shape["x0"], shape["x1"], shape["y0"], shape["y1"]) == (-0.5, 12.5, -0.5, 12.5)
    assert any("13×13" in c.value for c in at.caption)
    at.radio(key="rf_show").set_value("all").run()
    assert not at.exception, at.exception


@pytest.mark.parametrize("model,layer,field", [("googlenet", "inception5b", "379"), ("vgg16", "features.28", "196")])
def test_last_convolution_is_explained(app_factory, model, layer, field):
    at = app_factory("receptive_field", sel_model=model, sel_weights="none", sel_input="224x224", rf_models=[])
    assert not at.exception, at.exception
    explanation = " ".join(i.value for i in at.info)
    assert layer in explanation and field in explanation


def test_korean_receptive_field_page(app_factory):
    at = app_factory("receptive_field", lang="ko", sel_model="lenet5", rf_models=["alexnet"])
    assert not at.exception, at.exception
    assert "수용 영역 (receptive field)" in at.title[0].value


def test_input_the_model_cannot_finish_shows_the_part_that_runs(app_factory):
    at = app_factory("receptive_field", sel_model="alexnet", sel_weights="none", rf_models=[])
    at.text_input(key="sel_input").set_value("30x30").run()
    assert not at.exception, at.exception
    assert any("does not fit" in w.value and "features.5" in w.value for w in at.error)
    at = app_factory("receptive_field", sel_model="mnist_cnn", sel_input="36x36", rf_models=[])
    assert not at.exception, at.exception
    assert any("only part" in w.value.lower() for w in at.error)  # the classifier wants 28×28
    # a layer of the part that runs (which one the unit view opens on: test_receptive_field_page_default_model)
    assert at.selectbox(key="rf_layer").value in ("conv1", "conv2", "conv3") and len(at.get("plotly_chart")) == 3


def test_conv_arithmetic_page(app_factory):
    at = app_factory("conv_arithmetic")
    assert not at.exception, at.exception
    assert at.metric[0].value == "3×3"  # (7 − 3 + 0)/2 + 1
    assert any("(7 − 3 + 2×0) / 2 + 1 = 4/2 + 1 = 3" in c.value for c in at.code)
    at.number_input(key="ca_n").set_value(8).run()
    assert not at.exception, at.exception
    assert any("not divisible" in w.value for w in at.warning)
    at.slider(key="ca_pos").set_value(9).run()
    assert not at.exception, at.exception
    at.number_input(key="ca_f").set_value(13).run()  # larger than the padded input
    assert not at.exception, at.exception
    assert any("Impossible" in e.value for e in at.error)
    assert "27C²" in at.dataframe[0].value.to_string() and "49C²" in at.dataframe[0].value.to_string()
    assert any("45 %" in s.value and "1.81" in s.value for s in at.success)
    at.slider(key="ca_l").set_value(2).run()
    assert not at.exception, at.exception
    assert "25C²" in at.dataframe[0].value.to_string()


def test_conv_arithmetic_page_in_korean(app_factory):
    at = app_factory("conv_arithmetic", lang="ko")
    assert not at.exception, at.exception
    assert "합성곱" in at.title[0].value


@pytest.mark.slow
def test_every_registered_model_shows_its_receptive_field_page(app_factory, with_model):
    from explorer.models import list_models

    at = app_factory("receptive_field", sel_weights="none", rf_models=[])
    for name in list_models():
        with_model(at, name)
        assert not at.exception, (name, at.exception)
        assert not at.error, (name, [e.value for e in at.error])
        assert len(at.get("plotly_chart")) == 3, name
