"""AppTests of the Compare page (small models, random weights: no network)."""
import json
import re

SMALL = {"sel_model": "tiny_vgg", "sel_weights": "none"}


def test_compare_two_small_models(app_factory):
    at = app_factory("compare", cmp_models=["tiny_vgg", "lenet5_dense"], **SMALL)
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert table["model"].tolist() == ["tiny_vgg", "lenet5_dense"]
    assert table.set_index("model").loc["lenet5_dense", "weight_layers"] == 5  # 2 convs + 3 FC
    # No accuracy known: the chart falls back to depth and says which models have no value.
    assert at.radio(key="cmp_y").value == "weight_layers"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert set(spec["data"][0]["text"]) == {"tiny_vgg", "lenet5_dense"}
    assert at.selectbox(key="cmp_cam_a").value == "tiny_vgg" and at.selectbox(key="cmp_cam_b").value == "lenet5_dense"
    images = at.main.get("image")
    assert len(images) == 2
    captions = [img.proto.imgs[0].caption for img in images]
    assert captions[0].startswith("Grad-CAM of") and "3×64×64" in captions[0] and "1×32×32" in captions[1]


def test_accuracy_axis_and_custom_network(app_factory):
    spec = "in-3x32x32 conv3-8 M FC-10"
    at = app_factory("compare", cmp_models=["resnet18", "arch:" + spec], custom_archs=[spec], cmp_cam_on=False,
                     **SMALL)
    assert not at.exception
    at.radio(key="cmp_y").set_value("top1").run()
    assert not at.exception
    assert any("arch:" not in i.value and "your network" in i.value for i in at.info)  # no accuracy: named
    spec_json = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec_json["data"][0]["text"] == ["resnet18"]
    table = at.dataframe[0].value.set_index("model")
    assert table.loc["resnet18", "top1"] == 69.758


def test_fewer_than_two_models(app_factory):
    at = app_factory("compare", cmp_models=["tiny_vgg"], **SMALL)
    assert not at.exception
    assert at.info and not at.get("plotly_chart")


def test_korean(app_factory):
    at = app_factory("compare", cmp_models=["tiny_vgg", "lenet5_dense"], cmp_cam_on=False, lang="ko", **SMALL)
    assert not at.exception
    assert "모델 비교" in at.title[0].value
    # every header in Korean (top-1 included), from the Korean catalogue
    from explorer.core import translate

    headers = {column: config["label"] for column, config in json.loads(at.dataframe[0].proto.columns).items()
               if "label" in config}  # the index's entry has no label
    assert {"model", "top1", "top5", "params_m"} <= set(headers)
    assert headers["top1"] == translate("cmp.col.top1", "ko") and "정확도" in headers["top1"]
    assert all(re.search(r"[\uac00-\ud7a3]", label) for label in headers.values()), headers
