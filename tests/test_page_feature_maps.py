"""AppTests for pages/feature_maps.py: the page runs, shows numbers that match the network, and redraws
from the cached pass (one forward pass per model/weights/image/input size) when widgets change."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

import explorer.analysis as analysis
from conftest import patch_analyze
from explorer.models import build_model


@pytest.fixture
def count_passes(monkeypatch):
    """Counts network passes made through explorer.analysis.analysis.analyze (the page cache's only entry)."""
    calls = []
    real = analysis.analyze

    def counting(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("cam_layer"))
        return real(*args, **kwargs)

    patch_analyze(monkeypatch, counting)
    return calls


def test_page_runs_with_random_weights_note(app_factory):
    at = app_factory("feature_maps", sel_model="mnist_cnn", sel_weights="none")  # it has built-in trained weights
    assert not at.exception, at.exception
    assert at.title[0].value == "Feature maps"
    assert any("random" in i.value for i in at.info)  # no meaningless predictions
    assert at.selectbox(key="maps_layer").value == "conv1"  # the first conv by default
    assert at.get("plotly_chart")  # the tiled channels
    assert len(at.get("download_button")) >= 3


def test_widgets_redraw_without_running_the_network_again(app_factory, count_passes):
    at = app_factory("feature_maps", sel_model="mnist_cnn", sel_sample="gradient")  # a key no other test uses
    assert not at.exception, at.exception
    assert len(count_passes) == 1
    at.selectbox(key="maps_layer").set_value("conv2").run()
    at.radio(key="maps_kind").set_value("activation").run()
    at.radio(key="maps_order").set_value("mean").run()
    at.radio(key="maps_scale").set_value("channel").run()
    at.selectbox(key="maps_cmap").set_value("inferno").run()
    at.number_input(key="maps_channel").set_value(3).run()
    at.slider(key="maps_alpha").set_value(0.8).run()
    assert not at.exception, at.exception
    assert len(count_passes) == 1, "changing layer/channel/colours must not recompute the network"


def test_feature_map_before_relu_and_activation_map_after(app_factory):
    """resnet18's conv1 feeds bn1 then an in-place ReLU: the feature map keeps negative values, the
    activation map (the ReLU's output) has none; numbers compared with a hand computation."""
    at = app_factory("feature_maps", sel_model="resnet18", sel_input="64x64", sel_sample="shapes")
    assert not at.exception, at.exception
    at.selectbox(key="maps_layer").set_value("conv1").run()
    at.number_input(key="maps_channel").set_value(5).run()
    minimum = float(at.metric[0].value)
    assert minimum < 0
    at.radio(key="maps_kind").set_value("activation").run()
    assert not at.exception, at.exception
    assert float(at.metric[0].value) >= 0
    assert any("relu" in c.value and "conv1" in c.value for c in at.caption)

    from explorer.imaging import sample_image
    from explorer.models import load_model

    loaded = load_model("resnet18", weights=None, device="cpu", input_shape=(3, 64, 64))
    x = loaded.preprocess(sample_image("shapes"))
    with torch.no_grad():
        conv = F.conv2d(x, loaded.model.conv1.weight, stride=2, padding=3)
    assert minimum == pytest.approx(float(conv[0, 5].min()), rel=1e-3, abs=1e-4)


def test_a_module_called_twice_is_offered_per_call(app_factory):
    at = app_factory("feature_maps", sel_model="resnet18", sel_input="64x64", sel_sample="shapes")
    options = at.selectbox(key="maps_layer").options
    assert any(o.startswith("layer1.0.relu · ") for o in options)
    assert any(o.startswith("layer1.0.relu#2 · ") for o in options)
    at.selectbox(key="maps_block").set_value("layer1.0").run()
    at.selectbox(key="maps_layer").set_value("layer1.0.relu#2").run()
    assert not at.exception, at.exception
    # A ReLU picked itself: its feature map is its input (bn2 + identity, negatives included) ...
    assert any("layer1.0.relu#2:in" in c.value for c in at.caption)
    assert float(at.metric[0].value) < 0
    at.radio(key="maps_kind").set_value("activation").run()
    assert float(at.metric[0].value) >= 0  # ... and its activation map is its output


def test_predictions_with_trained_weights(app_factory):
    model = build_model("mnist_cnn")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    at = app_factory("feature_maps", sel_model="mnist_cnn", sel_weights="upload")
    at.sidebar.file_uploader(key="sel_checkpoint").set_value(("w.pt", buffer.getvalue(), "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    bars = [c for c in at.get("plotly_chart") if '"type":"bar"' in c.proto.spec.replace(" ", "")]
    assert bars, "the top-5 chart"
    assert not any("class scores mean nothing" in i.value for i in at.info)


def test_korean_page(app_factory):
    at = app_factory("feature_maps", sel_model="mnist_cnn", lang="ko")
    assert not at.exception, at.exception
    assert "특징 맵 (feature map)" in at.title[0].value
    assert any("활성화 맵 (activation map" in o for o in at.radio(key="maps_kind").options)


def test_layers_beyond_the_memory_budget_are_captured_when_picked(app_factory, monkeypatch):
    import ui.analysis_cache

    monkeypatch.setattr(ui.analysis_cache, "ANALYSIS_BUDGET_BYTES", 8 * 12 * 12 * 4)  # conv1's map only
    at = app_factory("feature_maps", sel_model="mnist_cnn", sel_sample="checkerboard", sel_weights="none")
    at.selectbox(key="maps_layer").set_value("conv3").run()
    at.number_input(key="maps_channel").set_value(2).run()
    assert not at.exception, at.exception

    from explorer.analysis import capture
    from explorer.imaging import sample_image
    from explorer.models import load_model

    loaded = load_model("mnist_cnn", weights=None, device="cpu")
    conv3 = capture(loaded.model, loaded.preprocess(sample_image("checkerboard")), ["conv3"])["conv3"][0, 2]
    assert float(at.metric[1].value) == pytest.approx(float(conv3.max()), rel=1e-3, abs=1e-4)


def test_cached_values_are_shared_read_only_and_figures_are_not_rebuilt(app_factory, monkeypatch):
    """A rerun after an opacity change reuses the cached objects (no copy, no figure rebuilt); the arrays
    every session shares are read-only, so no page can draw into what other students see."""
    import ui.analysis_cache as cache

    built = []
    for name in ("image_figure", "heatmap_figure", "_prediction_figure"):
        real = getattr(cache, name)
        monkeypatch.setattr(cache, name, lambda *a, _real=real, _name=name, **k: built.append(_name) or _real(*a, **k))
    returned = []
    real_maps = cache.layer_maps

    def recording(*args, **kwargs):
        returned.append(real_maps(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(cache, "layer_maps", recording)
    at = app_factory("feature_maps", sel_model="lenet5_dense", sel_sample="shapes",
                     sel_weights="none")
    assert not at.exception, at.exception
    assert "image_figure" in built and "heatmap_figure" in built
    first_spec = [c.proto.spec for c in at.get("plotly_chart")]
    count = len(built)
    at.slider(key="maps_alpha").set_value(0.9).run()
    assert not at.exception, at.exception
    assert len(built) == count, "an opacity change must not rebuild any figure"
    assert [c.proto.spec for c in at.get("plotly_chart")] == first_spec
    assert len(returned) >= 2 and returned[-1] is returned[0], "the cached maps are one shared object"
    assert not returned[0].flags.writeable
    with pytest.raises(ValueError):
        returned[0][0, 0, 0] = 1.0


def test_frozen_makes_every_nested_array_read_only():
    import numpy as np

    from ui.analysis_cache import frozen

    value = frozen({"a": np.zeros(3), "b": [np.ones(2), (np.ones(1), "text")], "c": None})
    assert not value["a"].flags.writeable and not value["b"][0].flags.writeable
    assert not value["b"][1][0].flags.writeable and value["c"] is None
    from explorer.imaging import tile_channels

    tiling = frozen(tile_channels(np.ones((4, 3, 3), dtype=np.float32)))
    assert not tiling.image.flags.writeable and not tiling.channels.flags.writeable


def test_heatmap_figure_draws_row_zero_on_top_with_square_pixels():
    import numpy as np

    from ui.analysis_cache import heatmap_figure

    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    fig = heatmap_figure(values, "bone", 300, title="t", zmin=0, zmax=11)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), values)
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"
    assert fig.data[0].zmin == 0 and fig.data[0].zmax == 11 and fig.layout.title.text == "t"
    assert fig.data[0].colorscale[0][1] in ("rgb(0,0,0)", "rgb(0, 0, 0)")  # "bone" drawn with plotly's gray


def test_image_figure_embeds_a_jpeg_of_the_picture():
    import base64

    import numpy as np
    from PIL import Image

    from explorer.imaging import colorize
    from ui.analysis_cache import image_figure

    yy, xx = np.mgrid[0:50, 0:80]
    rgb = colorize(xx / 80.0, "viridis")
    source = image_figure(rgb).data[0].source
    assert source.startswith("data:image/jpeg;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB"))
    assert decoded.shape == rgb.shape and np.abs(decoded.astype(int) - rgb).mean() < 3


def test_a_class_of_sessions_keeps_every_analysis(app_factory, count_passes):
    """Several students, each with their own input: after everyone has loaded the page, changing layer or
    opacity recomputes nobody's network (the passes are kept by bytes, not by a handful of entries)."""
    sizes = ["50x50", "58x58", "66x66", "74x74", "82x82", "90x90"]  # sizes no other test uses
    sessions = [app_factory("feature_maps", sel_model="resnet18", sel_input=size, sel_sample="checkerboard",
                            sel_weights="none") for size in sizes]
    assert all(not at.exception for at in sessions)
    assert len(count_passes) == len(sizes)
    for at in sessions:
        at.selectbox(key="maps_layer").set_value("layer2.0.conv1").run()
        at.slider(key="maps_alpha").set_value(0.2).run()
        assert not at.exception, at.exception
    assert len(count_passes) == len(sizes), "no session's network ran again"


def _tile_picture(at):
    """The channel grid's picture as the browser gets it: (RGB pixels, "png"|"jpeg")."""
    import base64
    import json

    import numpy as np
    from PIL import Image

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    source = spec["data"][0]["source"]
    kind = source.split(";", 1)[0].removeprefix("data:image/")
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB"))
    return picture, kind


def test_small_maps_are_drawn_as_exact_pixels(app_factory):
    """mnist_cnn at 28×28: conv1's 8 maps of 12×12 in a 3×3 grid (1-px white gaps), drawn in grey on one
    shared scale, enlarged by whole pixels and sent as PNG: the picture is an exact nearest-neighbour upscale
    of the grid built here by hand with numpy."""
    import math

    import numpy as np

    from explorer.analysis import capture
    from explorer.imaging import sample_image
    from explorer.models import load_model

    at = app_factory("feature_maps", sel_model="mnist_cnn", sel_sample="checkerboard", sel_weights="none",
                     maps_cmap="gray")
    assert not at.exception, at.exception
    picture, kind = _tile_picture(at)
    assert kind == "png"

    loaded = load_model("mnist_cnn", weights=None, device="cpu")
    maps = capture(loaded.model, loaded.preprocess(sample_image("checkerboard")), ["conv1"])["conv1"][0].numpy()
    assert maps.shape == (8, 12, 12)
    grey = (maps - maps.min()) / (maps.max() - maps.min()) * 255
    grid = np.full((3 * 13 - 1, 3 * 13 - 1), 255.0)
    for channel in range(8):
        row, col = divmod(channel, 3)
        grid[row * 13: row * 13 + 12, col * 13: col * 13 + 12] = grey[channel]
    zoom = math.ceil(900 / grid.shape[0])  # whole pixels up to at least 900 px
    assert picture.shape == (grid.shape[0] * zoom, grid.shape[1] * zoom, 3)
    expected = np.repeat(np.repeat(grid, zoom, axis=0), zoom, axis=1)
    for c in range(3):
        assert np.abs(picture[:, :, c].astype(float) - expected).max() <= 1.0  # colour quantisation only
    # every zoom×zoom block is one flat colour: no smoothing, no JPEG ringing
    blocks = picture.reshape(grid.shape[0], zoom, grid.shape[1], zoom, 3)
    assert (blocks == blocks[:, :1, :, :1, :]).all()


def test_index_order_caption_names_the_strongest_channels_by_mean(app_factory):
    """In the default index order the caption still names the channels with the largest mean (numpy on a
    capture of its own), not the grid's first five."""
    import re

    import numpy as np

    from explorer.analysis import capture
    from explorer.imaging import sample_image
    from explorer.models import load_model

    at = app_factory("feature_maps", sel_model="mnist_cnn", sel_sample="shapes", sel_weights="none")
    at.selectbox(key="maps_layer").set_value("conv2").run()
    assert not at.exception, at.exception
    assert at.radio(key="maps_order").value == "index"
    loaded = load_model("mnist_cnn", weights=None, device="cpu")
    maps = capture(loaded.model, loaded.preprocess(sample_image("shapes")), ["conv2"])["conv2"][0].numpy()
    strongest = np.argsort(-maps.reshape(maps.shape[0], -1).mean(axis=1), kind="stable")[:5].tolist()
    assert strongest != [0, 1, 2, 3, 4]  # the test would not tell the two apart otherwise
    caption = next(c.value for c in at.caption if "Strongest" in c.value)
    named = [int(n) for n in re.search(r"Strongest channels by mean: ([\d, ]+)", caption).group(1).split(", ")]
    assert named == strongest


def test_switching_the_weights_keeps_the_layer_and_channel(app_factory):
    """Trained, then random weights of the same network at the same input: the same layers, so the lecturer's
    layer and channel stay (they used to reset); another network still resets them."""
    at = app_factory("feature_maps", sel_model="mnist_cnn")
    at.session_state["maps_layer"] = "conv2"
    at.run()
    at.number_input(key="maps_channel").set_value(5).run()
    at.selectbox(key="sel_weights").set_value("none").run()
    assert not at.exception
    assert (at.session_state["maps_layer"], at.session_state["maps_channel"]) == ("conv2", 5)
    at.selectbox(key="sel_model").set_value("tiny_vgg").run()  # another network: its own first layer, channel 0
    assert not at.exception
    assert at.session_state["maps_layer"] != "conv2" and at.session_state["maps_channel"] == 0
