"""AppTests: the entry script, home and architecture pages, the shared sidebar."""
import io

import pytest
from PIL import Image


def test_home_runs_with_default_sample(app_factory):
    at = app_factory()
    assert not at.exception
    assert at.title[0].value
    assert at.selectbox(key="sel_model").value == "resnet18"


def test_architecture_page_shows_totals(app_factory):
    at = app_factory("architecture", sel_model="vgg16")
    assert not at.exception
    assert at.metric[0].value == "138,357,544"
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
    for name in list_models():
        at.selectbox(key="sel_model").set_value(name).run()
        assert not at.exception, name
        assert not at.error, (name, [e.value for e in at.error])
