"""Review 14, Filters page (findings 1, 3, 4, 5): legends that match the pictures, the cyclic direction scale in
every picture, the direction note under true convolution, and pictures smaller than the kernel.

Every expected value comes from an independent computation: cv2.filter2D / torch's conv2d, plotly's own
"Twilight" colourscale (``plotly.colors.sample_colorscale``) and angles worked out by hand.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import plotly.colors as pc
import pytest
from conftest import z_of
import torch
import torch.nn.functional as torch_f
from PIL import Image

from explorer.core import translate
from explorer.imaging import filter_display as D
from explorer.imaging import filters as F

ROOT = Path(__file__).resolve().parents[1]
LUMA = np.array([0.299, 0.587, 0.114])
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
SOBEL_Y = SOBEL_X.T.copy()
TWILIGHT = pc.get_colorscale("Twilight")  # what plotly draws for colorscale="Twilight"


# ------------------------------------------------------------------------------------------- helpers
def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int64)


def twilight(angles: np.ndarray) -> np.ndarray:
    """plotly's own colours of angles (degrees) on its Twilight scale, -180° at 0 and 180° at 1."""
    flat = np.asarray(angles, dtype=np.float64).ravel()
    colours = pc.sample_colorscale(TWILIGHT, list((flat + 180.0) / 360.0))
    rgb = np.array([pc.unlabel_rgb(c) for c in colours], dtype=np.float64)
    return rgb.reshape(*np.shape(angles), 3)


def as_rgb_stops(scale) -> list[tuple[float, tuple[float, ...]]]:
    out = []
    for position, colour in scale:
        rgb = pc.hex_to_rgb(colour) if colour.startswith("#") else pc.unlabel_rgb(colour)
        out.append((float(position), tuple(float(v) for v in rgb)))
    return out


def directions_by_hand(gray: np.ndarray, border: int, flipped: bool = False) -> np.ndarray:
    """atan2(gy, gx) in degrees from cv2.filter2D's Sobel responses (kernels flipped for true convolution);
    + 0.0 turns a -0.0 of a flat area into 0.0 (atan2(-0, -0) would be -180°)."""
    kx, ky = (SOBEL_X[::-1, ::-1], SOBEL_Y[::-1, ::-1]) if flipped else (SOBEL_X, SOBEL_Y)
    gx = cv2.filter2D(gray, cv2.CV_64F, np.ascontiguousarray(kx), borderType=border) + 0.0
    gy = cv2.filter2D(gray, cv2.CV_64F, np.ascontiguousarray(ky), borderType=border) + 0.0
    return np.degrees(np.arctan2(gy, gx))


def open_filters(lang: str, upload: np.ndarray, **state):
    """The Filters page in ``lang`` on ``upload`` (sent through the sidebar's uploader), with session state."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["lang"] = lang
    at.session_state["sel_sample"] = "shapes"
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.file_uploader(key="sel_upload").set_value(("x.png", png_bytes(upload), "image/png")).run()
    at.switch_page("pages/filters.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


GREY_WORD = {"en": "grey", "ko": "회색"}
BLUE_WORD = {"en": "blue", "ko": "파랑"}


# ---------------------------------------------------------------- 1. colour "signed" results: the legend
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_colour_signed_result_has_the_legend_of_its_picture(lang):
    """Per channel, "signed" draws 0 as mid grey, + brighter, − darker: the caption and the option say so."""
    stripe = np.full((40, 40, 3), 100, np.uint8)
    stripe[:, 14:26] = 180  # a rising (+) and a falling (−) edge
    at = open_filters(lang, stripe, flt_color="rgb", flt_preset="sobel_x", flt_padding="replicate",
                      flt_display="auto")
    assert not at.error, [e.value for e in at.error]

    # Independent numbers: cv2 per channel, replicate border, m = 95th percentile of |value| (a value that occurs).
    result = np.stack([cv2.filter2D(stripe[..., c].astype(np.float64), cv2.CV_64F, SOBEL_X,
                                    borderType=cv2.BORDER_REPLICATE) for c in range(3)], axis=-1)
    m = float(np.percentile(np.abs(result), 95, method="higher"))
    assert m == 320.0  # 80 grey levels × (1 + 2 + 1)
    expected = translate("filters.mapping.diverging_rgb", lang, zmin=-m, zmax=m,
                         clipped=100 * float(np.mean(np.abs(result) > m)))
    shown = captions(at)
    assert expected in shown, shown
    assert GREY_WORD[lang] in expected and BLUE_WORD[lang] not in expected.split("(")[0]
    assert not any(BLUE_WORD[lang] + " = " in c or "= " + BLUE_WORD[lang] in c for c in shown), shown
    # The option's label for a colour result names no blue or red either.
    labels = at.selectbox(key="flt_display").options
    signed = [label for label in labels if GREY_WORD[lang] in label]
    assert signed and not any(BLUE_WORD[lang] in label for label in labels), labels

    # The picture is what that legend says: 0 mid grey, +m full brightness, −m dark.
    rgb = D.display_mapping(result, "auto").rgb
    assert rgb[5, 5].tolist() == [128, 128, 128]  # flat: 0
    assert rgb[5, 14].tolist() == [255, 255, 255] and result[5, 14, 0] == m  # rising edge
    assert rgb[5, 25].tolist() == [0, 0, 0] and result[5, 25, 0] == -m  # falling edge

    # A grey result keeps its blue / white / red legend (and picture).
    at.segmented_control(key="flt_color").set_value("gray").run()
    assert not at.exception
    assert any(BLUE_WORD[lang] in c for c in captions(at)), captions(at)
    assert any(BLUE_WORD[lang] in label for label in at.selectbox(key="flt_display").options)


# ------------------------------------------------------------ 3. direction: one cyclic scale everywhere
def test_direction_png_has_the_screens_cyclic_colours():
    angles = np.linspace(-180.0, 180.0, 361)[None, :]
    png = decode_png(D.to_png(angles, "direction"))
    assert png.shape == (1, 361, 3)
    assert np.abs(png[0] - twilight(angles[0])).max() <= 1  # plotly's colours, within rounding
    # -179° and +179° are almost the same direction, so almost the same colour; -180° and 180° the same.
    assert np.abs(png[0, 1] - png[0, 359]).max() <= 3
    assert png[0, 0].tolist() == png[0, 360].tolist()
    # The heatmap on screen uses those very stops (plotly's Twilight).
    fig, mapping = D.result_figure(angles, "direction")
    trace = json.loads(fig.to_json())["data"][0]
    assert trace["type"] == "heatmap" and (trace["zmin"], trace["zmax"]) == (-180, 180)
    assert as_rgb_stops(trace["colorscale"]) == as_rgb_stops(TWILIGHT)


def test_colour_direction_is_three_cyclic_panels_on_screen_and_in_the_png():
    rng = np.random.default_rng(3)
    angles = rng.uniform(-180.0, 180.0, (6, 20, 3))
    png = decode_png(D.to_png(angles, "direction"))
    h, width, _ = png.shape
    gap = (width - 3 * 20) // 2
    assert h == 6 and gap >= 1 and width == 3 * 20 + 2 * gap
    for c in range(3):  # R, G, B from left to right, each on plotly's Twilight
        panel = png[:, c * (20 + gap): c * (20 + gap) + 20]
        assert np.abs(panel - twilight(angles[..., c])).max() <= 1, c
    # On screen: one heatmap on the same scale with the three panels' angles and empty gaps.
    fig, _ = D.result_figure(angles, "direction")
    trace = json.loads(fig.to_json())["data"][0]
    assert trace["type"] == "heatmap" and as_rgb_stops(trace["colorscale"]) == as_rgb_stops(TWILIGHT)
    z = np.asarray(fig.data[0].z, dtype=np.float64)
    for c in range(3):
        np.testing.assert_allclose(z[:, c * (20 + gap): c * (20 + gap) + 20], angles[..., c], atol=1e-4)
    assert np.isnan(z[:, 20:20 + gap]).all()


def test_cli_direction_png_uses_the_cyclic_scale(tmp_path):
    from explorer.cli import main

    yy, xx = np.mgrid[0:24, 0:24]
    disc = (255 * (np.hypot(yy - 11.5, xx - 11.5) < 8)).astype(np.uint8)  # edges in every direction
    path = tmp_path / "disc.png"
    path.write_bytes(png_bytes(np.repeat(disc[..., None], 3, axis=2)))
    out, raw = tmp_path / "dir.png", tmp_path / "dir.npy"
    assert main(["filter", str(path), "--kernel", "sobel_direction", "--padding", "zero",
                 "--png", str(out), "--npy", str(raw)]) == 0
    gray = np.repeat(disc[..., None], 3, axis=2).astype(np.float64) @ LUMA
    angles = directions_by_hand(gray, cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(np.load(raw), angles, atol=1e-9)
    assert np.ptp(angles) > 300  # really every direction
    assert np.abs(decode_png(out.read_bytes()) - twilight(angles)).max() <= 1


# ----------------------------------------------------------- 4. the direction note under true convolution
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_direction_note_follows_the_operation(lang):
    ramp = np.tile(np.linspace(0, 255, 32).astype(np.uint8)[None, :, None], (32, 1, 3))  # brighter to the right
    at = open_filters(lang, ramp, flt_preset="sobel_direction", flt_operation="convolve",
                      flt_padding="replicate")
    assert not at.error, [e.value for e in at.error]
    note = translate("filters.composite_note_convolve", lang)
    assert note in captions(at) and translate("filters.composite_note", lang) not in captions(at)
    left, up = {"en": ("0° = brighter to the left", "90° = brighter upwards"),
                "ko": ("0° = 왼쪽이 더 밝음", "90° = 위쪽이 더 밝음")}[lang]
    assert left in note and up in note
    # What the note claims, by hand: flipped Sobel kernels on a ramp brighter to the left give 0°, upwards 90°.
    ramp_f = np.tile(np.linspace(0, 255, 32)[None, :], (32, 1))
    assert abs(directions_by_hand(ramp_f[:, ::-1].copy(), cv2.BORDER_REPLICATE, flipped=True)[16, 16]) < 1e-9
    assert directions_by_hand(ramp_f.T[::-1].copy(), cv2.BORDER_REPLICATE, flipped=True)[16, 16] == pytest.approx(90)
    # ... and the page's own values on this ramp (brighter to the right) are 180°, the opposite of 0°.
    gray = ramp.astype(np.float64) @ LUMA
    expected = directions_by_hand(gray, cv2.BORDER_REPLICATE, flipped=True)
    z = z_of(json.loads(at.get("plotly_chart")[-1].proto.spec)["data"][0])
    np.testing.assert_allclose(np.abs(z), np.abs(expected), atol=1e-3)
    assert abs(abs(float(z[16, 16])) - 180.0) < 1e-3
    # By correlation the first note (0° = brighter to the right) is shown.
    at.selectbox(key="flt_operation").set_value("correlate").run()
    assert not at.exception
    assert translate("filters.composite_note", lang) in captions(at) and note not in captions(at)


# ------------------------------------------------------------ 5. pictures smaller than the kernel
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 5), (3, 2), (4, 6)])
@pytest.mark.parametrize("size", [3, 5, 11, 15])
def test_a_picture_smaller_than_the_kernel_is_filtered_with_same_padding(shape, size):
    rng = np.random.default_rng(size * 100 + shape[0] * 10 + shape[1])
    x = rng.uniform(0, 255, shape)
    k = rng.normal(size=(size, size))
    for padding, border in (("zero", cv2.BORDER_CONSTANT), ("replicate", cv2.BORDER_REPLICATE)):
        expected = cv2.filter2D(x, cv2.CV_64F, k, borderType=border)
        np.testing.assert_allclose(F.correlate(x, k, padding), expected, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(F.correlate(x, k, padding, stride=2), expected[::2, ::2], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(F.convolve(x, k, padding), cv2.filter2D(x, cv2.CV_64F, k[::-1, ::-1].copy(),
                                                                             borderType=border), rtol=1e-9, atol=1e-9)
    torch_zero = torch_f.conv2d(torch.tensor(x)[None, None], torch.tensor(k)[None, None], padding=size // 2)[0, 0]
    np.testing.assert_allclose(F.correlate(x, k, "zero"), torch_zero.numpy(), rtol=1e-9, atol=1e-9)


def test_only_a_padded_picture_smaller_than_the_kernel_is_refused():
    x = np.arange(4.0).reshape(2, 2)
    gx = cv2.filter2D(x, cv2.CV_64F, SOBEL_X, borderType=cv2.BORDER_CONSTANT)
    gy = cv2.filter2D(x, cv2.CV_64F, SOBEL_Y, borderType=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(F.apply_filter(x, "sobel_magnitude", "zero"), np.hypot(gx, gy), atol=1e-12)
    with pytest.raises(ValueError, match="larger than the image"):
        F.correlate(x, SOBEL_X, "none")  # no padding: no 3x3 window fits in 2x2
    with pytest.raises(ValueError, match="larger than the image"):
        F.correlate(x, np.ones((5, 5)), "zero", pad=1)  # 2 + 2·1 = 4 < 5
    with pytest.raises(ValueError, match="reflect padding"):
        F.correlate(x, np.ones((5, 5)), "reflect")  # reflect's own limit: P = 2 is not below 2
    np.testing.assert_allclose(F.correlate(x, SOBEL_X, "reflect"),
                               cv2.filter2D(x, cv2.CV_64F, SOBEL_X, borderType=cv2.BORDER_REFLECT_101), atol=1e-12)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_page_filters_a_two_by_two_picture(lang):
    tiny = np.array([[[0, 0, 0], [255, 255, 255]], [[255, 0, 0], [0, 0, 255]]], np.uint8)
    at = open_filters(lang, tiny)  # Sobel x, zero padding, grey, correlation: the page's defaults
    assert at.selectbox(key="flt_preset").value == "sobel_x" and at.selectbox(key="flt_padding").value == "zero"
    assert not at.error, [e.value for e in at.error]
    gray = tiny.astype(np.float64) @ LUMA
    expected = torch_f.conv2d(torch.tensor(gray)[None, None], torch.tensor(SOBEL_X)[None, None], padding=1)[0, 0]
    np.testing.assert_allclose(expected.numpy(), [[539.07, -76.245], [313.14, -152.49]], atol=0.01)
    z = z_of(json.loads(at.get("plotly_chart")[-1].proto.spec)["data"][0])
    np.testing.assert_allclose(z, expected.numpy(), rtol=1e-5)
    assert any("2×2" in c for c in captions(at)), captions(at)
