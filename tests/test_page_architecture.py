"""AppTests: the entry script, home and architecture pages, the shared sidebar."""
import io

import pytest
from PIL import Image


def test_home_runs_with_default_sample(app_factory):
    at = app_factory()
    assert not at.exception
    assert at.title[0].value
    assert at.selectbox(key="sel_model").value == "tiny_vgg"  # a trained teaching network (issue 13)
    # The input picture undoes the transform's own normalisation, and says which (the built-in weights' statistics).
    captions = " ".join(c.value for c in at.caption)
    assert "Normalised per channel" in captions and "0.498" in captions  # tiny_vgg's shapes mean (0.4965, 0.4981, ...)


def test_architecture_page_shows_totals(app_factory):
    at = app_factory("architecture", sel_model="vgg16")
    assert not at.exception
    # 138,357,544 parameters to 3 significant digits, the exact count in the help (not cut on a projector)
    assert at.metric[0].value == "138 M"
    assert "138,357,544" in at.metric[0].proto.help
    assert at.get("plotly_chart")


def test_model_choice_persists_across_pages(app_factory):
    at = app_factory("architecture")
    at.selectbox(key="sel_model").set_value("mnist_cnn").run()
    assert at.metric[0].value == "2,762"
    assert at.text_input(key="sel_input").value == "28x28"
    at.switch_page("pages/home.py").run()
    assert at.selectbox(key="sel_model").value == "mnist_cnn"


def test_too_small_input_is_an_error_not_a_crash(app_factory):
    at = app_factory("architecture", sel_model="alexnet")
    at.text_input(key="sel_input").set_value("30x30").run()
    assert not at.exception
    assert any("too small" in e.value or "does not fit" in e.value for e in at.error)


def test_bad_upload_shows_error_and_falls_back(app_factory):
    at = app_factory("architecture")
    at.sidebar.file_uploader(key="sel_upload").set_value(("photo.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.sidebar.error)


def test_good_upload_is_used(app_factory):
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), "red").save(buf, format="PNG")
    at = app_factory()
    at.sidebar.file_uploader(key="sel_upload").set_value(("red.png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    assert any("80×60" in c.value for c in at.caption)


def test_korean_ui(app_factory):
    at = app_factory("architecture", lang="ko")
    assert not at.exception
    assert "레이어" in at.title[0].value


@pytest.mark.slow
def test_every_model_renders_its_architecture_page(app_factory):
    from explorer.models import list_models

    at = app_factory("architecture")
    for index, name in enumerate(list_models()):
        at.session_state["lang"] = ("en", "ko")[index % 2]  # both languages across the sweep
        at.selectbox(key="sel_model").set_value(name).run()
        assert not at.exception, name
        assert not at.error, (name, [e.value for e in at.error])
        charts = at.get("graphviz_chart")
        assert len(charts) == 1 and "digraph" in charts[0].proto.spec, name  # the architecture diagram


def _dot_of(at) -> str:
    charts = at.get("graphviz_chart")
    assert len(charts) == 1
    return charts[0].proto.spec


def test_architecture_page_draws_the_executed_graph_with_shortcuts(app_factory):
    at = app_factory("architecture", sel_model="resnet18", sel_input="64x64")
    assert not at.exception, at.exception
    assert at.selectbox(key="diagram_depth").value == 0  # 71 boxes: small enough to open on every layer
    dot = _dot_of(at)
    assert dot.count("layer1.0.add") >= 3 and "dashed" in dot  # adds drawn, shortcuts dashed
    at.selectbox(key="diagram_depth").set_value(1).run()  # blocks
    dot = _dot_of(at)
    for child in ("conv1", "layer1", "layer4", "fc"):  # the top-level children that ran
        assert f'"{child}"' in dot
    assert "layer1.0.add" not in dot


def test_a_large_network_opens_at_block_level(app_factory):
    at = app_factory("architecture", sel_model="resnet50", sel_input="64x64")
    assert not at.exception, at.exception
    assert at.selectbox(key="diagram_depth").value == 1
    assert '"layer3"' in _dot_of(at)


def test_a_box_opens_its_layer_on_the_feature_map_page(app_factory):
    at = app_factory("architecture", sel_model="mnist_cnn", sel_input="28x28")
    at.selectbox(key="diagram_depth").set_value(0).run()
    at.selectbox(key="diagram_box").set_value("conv2").run()
    at.button(key="diagram_open_maps_layer").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="maps_layer").value == "conv2"


def test_paper_tables_draw_their_networks(app_factory):
    at = app_factory("papers")
    assert not at.exception, at.exception
    assert len(at.get("graphviz_chart")) == 3


def test_layer_table_for_people_in_korean(app_factory):
    """Headers are the Korean catalogue's, key columns come first, no cell is None/NaN, counts read as people
    read them (hand computed: resnet18's layer1 is 4 convs of 64·64·3·3 plus 4 BatchNorms of 2·64)."""
    import math

    from explorer.core import translate

    at = app_factory("architecture", sel_model="resnet18", sel_input="64x64", lang="ko")
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    first = ["layer", "type", "output_shape", "params", "formula"]
    assert list(frame.columns[:5]) == [translate(f"table.col.{c}", "ko") for c in first]
    assert all("_" not in str(c) for c in frame.columns)  # no snake_case header left
    for value in frame.to_numpy().ravel():
        assert value is not None and not (isinstance(value, float) and math.isnan(value))
        assert str(value).strip() not in ("None", "nan", "NaN", "<NA>", "")
    rows = frame.set_index(translate("table.col.layer", "ko"))
    layer1 = 4 * 64 * 64 * 3 * 3 + 4 * 2 * 64  # 147,968
    assert rows.loc["layer1", translate("table.col.params", "ko")] == "148 k"
    assert rows.loc["conv1", translate("table.col.params", "ko")] == "9,408"  # 64·3·7·7, exact below 100,000
    assert layer1 == 147_968  # "148 k" above
    assert rows.loc["conv1", translate("table.col.formula", "ko")] == "⌊(64 − 7 + 2·3)/2⌋ + 1 = 32"
    assert rows.loc["relu", translate("table.col.formula", "ko")] == "\u2014"  # no formula: an em dash
    # resnet18's totals: 11,689,512 parameters shown as 11.7 M
    assert at.metric[0].value == "11.7 M" and "11,689,512" in at.metric[0].proto.help


def test_size_chart_follows_the_main_path_of_googlenet(app_factory):
    """One point per inception block (its concatenated output), never the branches inside it; the x axis is
    categorical, named by layer."""
    import json

    at = app_factory("architecture", sel_model="googlenet", sel_input="224x224", sel_weights="none")
    assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    channels = spec["data"][1]
    assert channels["x"][5:7] == ["inception3a", "inception3b"]
    assert not any(".branch" in name for name in channels["x"])
    # torchvision's googlenet: 3a = 64 + 128 + 32 + 32 channels, 3b = 128 + 192 + 96 + 64, 5b = 384 + 384 + 128 + 128
    assert channels["y"][5:7] == [64 + 128 + 32 + 32, 128 + 192 + 96 + 64]
    assert max(channels["y"]) == 384 + 384 + 128 + 128
    assert spec["layout"]["xaxis"]["type"] == "category"


def test_an_input_too_small_is_said_in_korean_around_the_details(app_factory):
    at = app_factory("architecture", lang="ko", sel_model="alexnet", sel_weights="none", sel_input="32x32")
    assert not at.exception
    message = next(e.value for e in at.error if "features.12" in e.value)
    assert message.startswith("이 입력 크기는 이 모델에 맞지 않습니다")
