"""Odd and hostile inputs through the real pages (AppTest): a clear ``st.error``, never an exception, and
the page still works afterwards.

- images through the sidebar's uploader (``sel_upload``): truncated, corrupt, not an image, empty, a
  decompression bomb, 1×1 and 10000×1, 16-bit, CMYK, palette, alpha, animated GIF, tiny;
- input sizes too small for a model (AlexNet at 32×32);
- checkpoints through the sidebar's weights uploader (``sel_checkpoint``): pickled code, a state_dict of
  another network, NaN weights;
- a GPU out-of-memory error: ``ui.common.error_box`` / ``explorer.core.device.is_out_of_memory``, and the
  Feature-map page's analysis failing with one.

Small models (Tiny VGG, MNIST CNN) keep the whole matrix within seconds.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.core import is_out_of_memory
from explorer.core import translate
from explorer.models import build_model

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"architecture": "arch.title", "feature_maps": "maps.title", "gradcam": "cam.title",
         "receptive_field": "rf.title", "filters": "filters.title"}
IMAGE_MODEL = "tiny_vgg"  # 3 channels (CMYK/alpha/palette conversions matter), 64×64: quick
REFUSED = translate("sidebar.image_error", "en", message="\x00").split("\x00")[0]  # "This image cannot be used: "


def _existing(pages: dict[str, str]) -> list:
    return list(pages)


# --------------------------------------------------------------------------------------------- images
def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8))


def _bad_images() -> dict[str, tuple[str, bytes, str, bool]]:
    """name -> (file name, bytes, MIME type, refused?)."""
    png = _save(_noise(64, 64), "PNG")
    jpeg = _save(_noise(128, 128, 1), "JPEG", quality=90)
    gradient16 = (np.linspace(0, 65535, 48 * 64).reshape(48, 64)).astype(np.uint16)
    rgba = _noise(40, 30, 2).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))))
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {
        "truncated_png": ("cut.png", png[: len(png) // 2], "image/png", True),
        "truncated_jpeg": ("cut.jpg", jpeg[: int(len(jpeg) * 0.6)], "image/jpeg", True),
        "corrupt_png": ("corrupt.png", b"\x89PNG\r\n\x1a\n" + np.random.default_rng(4).bytes(3000), "image/png", True),
        "not_an_image": ("homework.png", b"%PDF-1.4\n% not an image at all\n" * 40, "image/png", True),
        "zero_bytes": ("empty.png", b"", "image/png", True),
        # 8000×8000 1-bit, a few kB on disk: 64 M pixels (192 MB as RGB) is over the decoder's cap.
        "decompression_bomb": ("bomb.png", _save(Image.new("1", (8000, 8000)), "PNG"), "image/png", True),
        "very_thin": ("thin.png", _save(Image.new("RGB", (10000, 1), (200, 10, 10)), "PNG"), "image/png", True),
        "one_pixel": ("dot.png", _save(Image.new("RGB", (1, 1), (10, 200, 10)), "PNG"), "image/png", False),
        "sixteen_bit": ("depth16.png", _save(Image.fromarray(gradient16), "PNG"), "image/png", False),
        "cmyk": ("print.jpg", _save(Image.new("CMYK", (64, 48), (0, 128, 255, 0)), "JPEG"), "image/jpeg", False),
        "palette": ("palette.png", _save(_noise(50, 40, 3).convert("P"), "PNG"), "image/png", False),
        "alpha": ("alpha.png", _save(rgba, "PNG"), "image/png", False),
        "animated_gif": ("anim.gif", gif.getvalue(), "image/gif", False),
        "tiny": ("tiny.png", _save(_noise(5, 5, 5), "PNG"), "image/png", False),
    }


BAD_IMAGES = _bad_images()
GOOD_PNG = ("good.png", _save(_noise(80, 60, 9), "PNG"), "image/png")


# Images the decoder accepts but a page cannot use, where a clear page error is the right answer. (None now: the
# Filters lab's default zero padding lets a 3×3 kernel filter a 1×1 picture, as torch's conv2d and OpenCV do.)
PAGE_ERRORS: set[tuple[str, str]] = set()


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def _assert_page_alive(at, page: str) -> None:
    assert not at.exception, f"{page}: {at.exception}"
    titles = [t.value for t in at.title]
    assert translate(PAGES[page], "en") in titles, f"{page}: page title missing, got {titles}"


def _run_images(app_factory, page: str, cases: list[str]) -> None:
    at = app_factory(page, sel_model=IMAGE_MODEL, sel_weights="none")
    _assert_page_alive(at, page)
    assert not _errors(at)
    charts = len(at.get("plotly_chart"))  # the page fully drawn; it must stay so after every upload
    for name in cases:
        file_name, data, mime, refused = BAD_IMAGES[name]
        at.file_uploader(key="sel_upload").set_value((file_name, data, mime)).run()
        _assert_page_alive(at, page)
        errors = _errors(at)
        if refused:
            assert any(e.startswith(REFUSED) for e in errors), f"{page}/{name}: no st.error, got {errors}"
            # The page goes on with the sample image: nothing else failed.
            assert all(e.startswith(REFUSED) for e in errors), f"{page}/{name}: {errors}"
        elif (page, name) in PAGE_ERRORS:
            assert errors and not any(e.startswith(REFUSED) for e in errors), f"{page}/{name}: {errors}"
            continue
        else:
            assert not errors, f"{page}/{name}: unexpected errors {errors}"
        assert len(at.get("plotly_chart")) == charts, f"{page}/{name}: the page is no longer fully drawn"
        if name == "animated_gif":
            assert any("first of 3 frames" in c.value for c in at.sidebar.caption), f"{page}: no GIF note"
    # Still usable: a good image is used without complaint, and removing it goes back to the sample.
    at.file_uploader(key="sel_upload").set_value(GOOD_PNG).run()
    _assert_page_alive(at, page)
    assert not _errors(at)
    at.file_uploader(key="sel_upload").set_value(None).run()
    _assert_page_alive(at, page)
    assert not _errors(at)


@pytest.mark.parametrize("page", _existing(PAGES))
def test_every_bad_image_on_every_page(app_factory, page: str) -> None:
    _run_images(app_factory, page, list(BAD_IMAGES))


# --------------------------------------------------------------------------------------- input sizes
@pytest.mark.parametrize("page", _existing({p: "" for p in PAGES if p != "filters"}))
def test_input_too_small_for_alexnet(app_factory, page: str) -> None:
    """AlexNet needs at least 63×63: at 32×32 the model pages say so; a valid size works again after."""
    at = app_factory(page, sel_model="alexnet", sel_weights="none", sel_input="32x32")
    _assert_page_alive(at, page)
    errors = _errors(at)
    assert errors, f"{page}: no st.error for AlexNet at 32×32"
    at.text_input(key="sel_input").set_value("64x64").run()
    _assert_page_alive(at, page)
    assert not _errors(at), f"{page}: errors at 64×64: {_errors(at)}"


# --------------------------------------------------------------------------------------- checkpoints
class _Evil:
    """Pickles to a call that creates a file: loading must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _checkpoint(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_checkpoints(app_factory, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    good_state = build_model("mnist_cnn").state_dict()
    nan_state = {k: v.clone() for k, v in good_state.items()}
    first_weight = next(k for k, v in nan_state.items() if k.endswith("weight") and v.is_floating_point())
    nan_state[first_weight][0].fill_(float("nan"))
    cases = {
        "pickled_code.pt": _checkpoint({"state_dict": _Evil(marker)}),
        "raw_pickle.pth": pickle.dumps(_Evil(marker)),
        "other_network.pt": _checkpoint(build_model("tiny_vgg").state_dict()),
        "nan_weights.pt": _checkpoint(nan_state),
        "truncated.pt": _checkpoint(good_state)[:500],
        "empty.pt": b"",
    }
    prefix = translate("common.model_error", "en", message="\x00").split("\x00")[0]
    at = app_factory("architecture", sel_model="mnist_cnn", sel_weights="upload")
    _assert_page_alive(at, "architecture")
    for name, data in cases.items():
        at.file_uploader(key="sel_checkpoint").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception, f"{name}: {at.exception}"
        errors = _errors(at)
        assert any(e.startswith(prefix) for e in errors), f"{name}: no clear error, got {errors}"
        assert "Traceback" not in " ".join(errors)
        assert not marker.exists(), f"{name}: pickled code ran"
    # A matching checkpoint loads; then the page works with random weights again.
    at.file_uploader(key="sel_checkpoint").set_value(("mine.pt", _checkpoint(good_state), "application/octet-stream")).run()
    _assert_page_alive(at, "architecture")
    assert not _errors(at)
    at.selectbox(key="sel_weights").set_value("none").run()
    _assert_page_alive(at, "architecture")
    assert not _errors(at)


# --------------------------------------------------------------------------------------- out of memory
@pytest.mark.parametrize("exc, expected", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), True),
    (RuntimeError("CUDA error: out of memory"), True),
    (RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)"), True),
    (RuntimeError("Given input size: (192x1x1). Calculated output size: (192x0x0)"), False),
    (ValueError("out of range"), False),
])
def test_is_out_of_memory(exc: BaseException, expected: bool) -> None:
    assert is_out_of_memory(exc) is expected


def _error_box_script() -> None:
    import streamlit as st
    import torch

    from ui.common import error_box

    kind = st.session_state.get("kind", "oom")
    error_box(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB") if kind == "oom"
              else ValueError("the layer 'x' does not exist"))
    st.write("still here")


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_error_box_explains_out_of_memory(lang: str) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_error_box_script, default_timeout=60)
    at.session_state["lang"] = lang
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [translate("common.oom", lang)]
    assert "CUDA" not in at.error[0].value or lang == "en"  # the message suggests what to do, not a trace
    assert [m.value for m in at.markdown][-1] == "still here"
    at.session_state["kind"] = "value"
    at.run()
    assert [e.value for e in at.error] == [translate("common.error", lang, message="the layer 'x' does not exist")]


@pytest.mark.parametrize("page", _existing({"feature_maps": "", "gradcam": ""}))
def test_out_of_memory_during_analysis_then_recovery(app_factory, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    """The page's analysis runs out of GPU memory: the page says so (no exception); once memory is there
    again (here: the patch is undone) the same page works."""
    import explorer.analysis as analysis
    from conftest import patch_analyze

    real = analysis.analyze

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")

    patch_analyze(monkeypatch, out_of_memory)
    # An input size no other test uses, so the page cache (shared by the pages) cannot answer.
    size = {"feature_maps": "40x40", "gradcam": "44x44"}[page]
    at = app_factory(page, sel_model="resnet18", sel_weights="none", sel_input=size, sel_sample="checkerboard")
    assert not at.exception, at.exception
    assert translate("common.oom", "en") in _errors(at)
    patch_analyze(monkeypatch, real)
    at.run()
    _assert_page_alive(at, page)
    assert not _errors(at)
