"""AppTests for pages/filters.py: every view runs, numbers shown match independent computations."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import z_of
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer.imaging import filter_display as D
from explorer.imaging import filters as F
from explorer.imaging import sample_image
from explorer.core import catalogue

ROOT = Path(__file__).resolve().parents[1]


def open_page(**state) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.session_state["sel_sample"] = "shapes"  # 256x256, fast
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/filters.py").run()
    assert not at.exception, at.exception
    return at


def spec(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def heatmap_limits(at: AppTest, index: int) -> tuple[float, float]:
    trace = spec(at, index)["data"][0]
    return trace["zmin"], trace["zmax"]


def grey_shapes() -> np.ndarray:
    return np.asarray(sample_image("shapes"), dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def test_single_view_sobel_x_range_matches_cv2():
    at = open_page()
    assert at.selectbox(key="flt_preset").value == "sobel_x"
    gx = cv2.Sobel(grey_shapes(), cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT)  # zero padding
    magnitude = np.sort(np.abs(gx).ravel())  # colours saturate at the 95th percentile of |value| (or the max if 0)
    m = magnitude[int(np.ceil(0.95 * (magnitude.size - 1)))] or magnitude[-1]
    zmin, zmax = heatmap_limits(at, 1)  # [0] is the kernel
    assert zmin == pytest.approx(-m) and zmax == pytest.approx(m)
    captions = " ".join(c.value for c in at.caption)
    assert f"{gx.min():.4g}" in captions and f"{gx.max():.4g}" in captions
    markdown = " ".join(m.value for m in at.markdown)
    assert "(256 − 3 + 2·1)/1 + 1 = 256" in markdown
    assert not at.error


def test_padding_stride_and_colour_change_the_output():
    at = open_page()
    at.selectbox(key="flt_padding").set_value("none")
    at.slider(key="flt_stride").set_value(3)
    at.segmented_control(key="flt_color").set_value("rgb")
    at.selectbox(key="flt_preset").set_value("box_blur").run()
    assert not at.exception and not at.error
    assert "(256 − 3 + 2·0)/3 + 1 = 85.3333 → **85**" in " ".join(m.value for m in at.markdown)
    image = spec(at, 1)["data"][0]
    assert image["type"] == "image"  # per-channel results are drawn as an RGB picture
    assert any("Output 85×85×3" in c.value for c in at.caption)


def test_kernel_editor_normalise_and_flip():
    at = open_page()
    at.selectbox(key="flt_preset").set_value("custom").run()
    assert not at.exception
    at.segmented_control(key="flt_ed_size").set_value(3).run()
    at.selectbox(key="flt_ed_from").set_value("emboss")
    at.button(key="flt_ed_load").click().run()
    assert at.number_input(key="flt_ed3_0_0").value == -2.0
    at.button(key="flt_ed_flip").click().run()
    assert at.number_input(key="flt_ed3_0_0").value == 2.0 and at.number_input(key="flt_ed3_2_2").value == -2.0
    at.button(key="flt_ed_norm").click().run()  # emboss sums to 1: normalising keeps it
    assert at.number_input(key="flt_ed3_1_1").value == pytest.approx(1.0)
    at.selectbox(key="flt_ed_from").set_value("laplacian")
    at.button(key="flt_ed_load").click().run()
    at.button(key="flt_ed_norm").click().run()
    assert any("sum to 0" in w.value for w in at.warning)  # refused with a message, not an exception
    at.number_input(key="flt_ed3_1_1").set_value(-3.0).run()
    assert not at.exception
    assert any("1,1,1" in c.value or "0,1,0;1,-3,1;0,1,0" in c.value for c in at.caption)


def test_compare_filters_shows_up_to_four():
    at = open_page(flt_view="filters")
    charts = at.get("plotly_chart")
    assert len(charts) == 4 and not at.error
    at.multiselect(key="flt_cmp").set_value(["sobel_x", "custom"]).run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_compare_images_with_uploads_and_a_bad_file():
    at = open_page(flt_view="images")
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 30:] = 255  # a vertical edge
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    at.file_uploader(key="flt_uploads").set_value([("edge.png", buf.getvalue(), "image/png"),
                                                   ("bad.png", b"not an image", "image/png")]).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # sidebar image + the good upload
    assert any("bad.png" in e.value for e in at.error)
    zmin, zmax = heatmap_limits(at, 1)
    # Sobel x on a 0 -> 255 step with zero padding (the step and the right border), as OpenCV computes it;
    # colours saturate at the 95th percentile of |value| (numpy's "higher": a value that occurs)
    gx = cv2.Sobel(rgb[..., 0].astype(np.float64), cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT)
    magnitude = np.sort(np.abs(gx).ravel())
    assert zmax == pytest.approx(magnitude[int(np.ceil(0.95 * (magnitude.size - 1)))])
    assert np.abs(gx).max() == 4 * 255  # (1 + 2 + 1) * 255: the range caption still states it


def test_convolution_by_hand_course_example_and_stepping():
    at = open_page(flt_view="hand")
    assert not at.error
    charts = at.get("plotly_chart")
    output = [json.loads(c.proto.spec) for c in charts if "Whole output" in json.dumps(json.loads(c.proto.spec)["layout"].get("title", ""))]
    assert output
    np.testing.assert_array_equal(z_of(output[0]["data"][0]), [[4, 3, 4], [2, 4, 3], [2, 3, 4]])
    at.slider(key="flt_hand_pos").set_value(5).run()  # centre position (row 1, column 1)
    assert any("**4**" in m.value for m in at.markdown)
    assert "= 4" in at.code[0].value
    at.selectbox(key="flt_hand_kernel").set_value("sobel_x")
    at.selectbox(key="flt_hand_op").set_value("convolve").run()
    assert not at.exception
    patch = np.asarray(F.EXAMPLE_PATCH)
    xp = patch[1:4, 1:4]
    want = float((xp * np.asarray(F.KERNELS["sobel_x"])[::-1, ::-1]).sum())
    assert f"**{want:g}**" in " ".join(m.value for m in at.markdown)


def test_convolution_by_hand_on_an_image_patch_clamps_positions():
    at = open_page(flt_view="hand")
    at.slider(key="flt_hand_pos").set_value(9).run()
    at.segmented_control(key="flt_hand_src").set_value("image").run()
    at.select_slider(key="flt_hand_size").set_value(9)
    at.selectbox(key="flt_hand_pad").set_value("zero").run()
    assert not at.exception and not at.error
    at.selectbox(key="flt_hand_pad").set_value("none")
    at.slider(key="flt_hand_stride").set_value(3).run()  # 9x9, 3x3, stride 3 -> 3x3 outputs
    assert not at.exception and at.slider(key="flt_hand_pos").value <= 9


def test_korean_page_runs():
    at = open_page(lang="ko")
    assert at.title[0].value == catalogue("ko")["filters.title"]
    at.segmented_control(key="flt_view").set_value("hand").run()
    assert not at.exception


def test_every_page_key_exists_in_both_languages():
    keys = set()
    for path in ("pages/filters.py", "ui/filters_ui.py", "pages/augmentation.py"):
        keys |= set(re.findall(r't\("((?:filters|aug)\.[a-z_.]+)"', (ROOT / path).read_text()))
    dynamic = ({f"filters.k.{n}" for n in (*F.FILTER_NAMES, "custom", "example_x")}
               | {f"filters.padding.{m}" for m in F.PADDING_MODES}
               | {f"filters.operation.{m}" for m in F.OPERATIONS}
               | {f"filters.display.{m}" for m in D.DISPLAY_MODES[:4]}
               | {f"filters.mapping.{m}" for m in D.DISPLAY_MODES[1:]}
               | {f"filters.view.{v}" for v in ("single", "filters", "images", "hand")}
               | {f"filters.kernel_as.{m}" for m in F.OPERATIONS} | {f"filters.hand.kernel.{m}" for m in F.OPERATIONS}
               | {f"filters.hand.src.{s}" for s in ("example", "image")} | {"filters.color.gray", "filters.color.rgb"}
               | {f"aug.stats.{c}" for c in ("channel", "min", "max", "mean", "std")})
    for lang in ("en", "ko"):
        missing = (keys | dynamic) - set(catalogue(lang))
        assert not missing, (lang, missing)


def test_a_kernel_cell_beyond_the_library_bound_is_refused_by_the_box(app_factory):
    """The editor's boxes stop at ±1e6 (explorer.imaging.filters.MAX_KERNEL_VALUE): 2e6 crashed the page."""
    at = app_factory("filters")
    at.selectbox(key="flt_preset").set_value("custom").run()
    at.number_input(key="flt_ed3_1_1").set_value(2_000_000.0).run()
    assert not at.exception, [e.value for e in at.exception]
    assert abs(at.number_input(key="flt_ed3_1_1").value) <= 1e6
