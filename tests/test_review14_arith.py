"""Review 14, findings 6, 7, 9 and 10: the conv-arithmetic page's even-kernel note with dilation, the never-visited
rows that are padding, N up to the course notes' 227 (and 512), and receptive fields after transposed convolutions.

Every expected value comes from outside the code under test: torch's own conv / conv-transpose output shapes,
autograd (which padded cells a convolution reads, which input pixels reach a unit) and the formulas by hand.
"""
from __future__ import annotations

import base64
import itertools
import json
import random
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from conftest import ROOT


def _torch_output(n: int, f: int, p: int, s: int, d: int) -> int:
    with torch.no_grad():
        return int(F.conv2d(torch.zeros(1, 1, n, n), torch.ones(1, 1, f, f), stride=s, padding=p, dilation=d).shape[-1])


def _read_cells(n: int, f: int, p: int, s: int, d: int) -> np.ndarray:
    """Which cells of the padded input (N + 2P)² some window of the convolution reads (autograd, no padding
    argument: the padded input itself is the leaf)."""
    x = torch.zeros(1, 1, n + 2 * p, n + 2 * p, requires_grad=True)
    F.conv2d(x, torch.ones(1, 1, f, f), stride=s, dilation=d).sum().backward()
    return (x.grad[0, 0] != 0).numpy()


def _specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _grid_spec(at) -> dict | None:
    """The kernel-position figure (two heatmaps), or None when the page did not draw it."""
    for spec in _specs(at):  # its heatmaps name each cell's row and column (the 3×3-stack diagram's do not)
        if any(trace.get("type") == "heatmap" and "col %{x}" in trace.get("hovertemplate", "") for trace in spec["data"]):
            return spec
    return None


def _z(trace: dict) -> np.ndarray:
    """A heatmap's z, also when plotly sent it as a typed array ({"dtype", "bdata" (base64), "shape"})."""
    z = trace["z"]
    if isinstance(z, dict):
        shape = tuple(int(v) for v in str(z["shape"]).split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z)


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


def _legend(spec: dict) -> dict[str, tuple[int, int, int]]:
    return {trace["name"]: _rgb(trace["marker"]["color"]) for trace in spec["data"]
            if trace.get("type") == "scatter" and trace.get("name")}


def _page(app_factory, lang: str = "en", **state):
    at = app_factory("conv_arithmetic", lang=lang, **state)
    assert not at.exception, at.exception
    return at


# --- 6: the even-kernel note names the formula of the number it prints ----------------------------------------
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_even_kernel_note_names_the_formula_it_prints(app_factory, lang):
    n, f, p, s, d = 20, 4, 0, 1, 3
    # By hand: D(F − 1)/2 = 3·3/2 = 4.5, while (F − 1)/2 = 1.5; and torch: no symmetric padding keeps N at stride 1.
    assert all(_torch_output(n, f, pad, 1, d) != n for pad in range(0, 10))
    at = _page(app_factory, lang, ca_n=n, ca_f=f, ca_p=p, ca_s=s, ca_d=d)
    notes = [i.value for i in at.info]
    expected = f"D(F − 1)/2 = {d * (f - 1) / 2:g}"
    assert any(expected in note for note in notes), notes
    # Nowhere is 4.5 called (F − 1)/2 (which is 1.5)
    assert not any(re.search(r"(?<!D)\(F − 1\)/2 = 4\.5", note) for note in notes), notes
    # Without dilation the plain formula and its own value: (4 − 1)/2 = 1.5
    at = _page(app_factory, lang, ca_n=n, ca_f=f, ca_p=p, ca_s=s, ca_d=1)
    notes = [i.value for i in at.info]
    assert any(f"(F − 1)/2 = {(f - 1) / 2:g}" in note for note in notes), notes
    assert not any("D(F − 1)/2 = " in note for note in notes), notes


# --- 7: never-visited rows/columns that are padding: picture and text agree ------------------------------------
CONFIGS = [(8, 3, 1, 2, 1), (6, 3, 1, 2, 1), (8, 3, 0, 2, 1), (8, 3, 1, 4, 1), (9, 2, 2, 3, 2), (7, 3, 2, 2, 2),
           (10, 3, 3, 4, 1), (5, 1, 2, 3, 1)]


@pytest.mark.parametrize("n, f, p, s, d", CONFIGS)
def test_kernel_grid_draws_every_never_read_cell_padding_included(n, f, p, s, d):
    from explorer.receptive import PADDING, UNVISITED, UNVISITED_PADDING, conv_arithmetic, kernel_grid

    arith = conv_arithmetic(n, f, p, s, d)
    read = _read_cells(n, f, p, s, d)
    padded = n + 2 * p
    is_pad = np.ones((padded, padded), dtype=bool)
    is_pad[p:p + n, p:p + n] = False
    for index in (0, arith.output ** 2 - 1):
        grid, (row, col) = kernel_grid(arith, index)
        outside = np.ones_like(read)  # the window drawn shows its own taps and skipped cells
        r0, c0, span = arith.positions[row], arith.positions[col], arith.effective_kernel
        outside[r0:r0 + span, c0:c0 + span] = False
        m = outside
        np.testing.assert_array_equal((grid == UNVISITED)[m], (~read & ~is_pad)[m])
        np.testing.assert_array_equal((grid == UNVISITED_PADDING)[m], (~read & is_pad)[m])
        np.testing.assert_array_equal((grid == PADDING)[m], (read & is_pad)[m])
    # The last rows torch never reads, split into input and padding, by hand: padding is the last P.
    never = [r for r in range(padded) if not read[r].any()]
    tail = [r for r in never if r >= max((i for i in range(padded) if read[i].any()), default=-1)]
    assert len(tail) == arith.leftover
    assert arith.leftover_padding == sum(r >= p + n for r in tail)
    assert arith.leftover_input == sum(r < p + n for r in tail)


@pytest.mark.parametrize("lang, red, grey", [("en", "red", "dark grey"), ("ko", "빨간색", "진한 회색")])
def test_leftover_text_names_only_colours_the_grid_draws(app_factory, lang, red, grey):
    from explorer.receptive import UNVISITED, UNVISITED_PADDING

    cases = {  # (N, F, P, S) → never-visited last rows that are (input, padding), from torch's reads
        (8, 3, 1, 2): None, (8, 3, 0, 2): None, (8, 3, 1, 4): None,
    }
    for key in cases:
        n, f, p, s = key
        read = _read_cells(n, f, p, s, 1)
        last = max(i for i in range(n + 2 * p) if read[i].any())
        tail = range(last + 1, n + 2 * p)
        cases[key] = (sum(r < p + n for r in tail), sum(r >= p + n for r in tail))
    assert cases == {(8, 3, 1, 2): (0, 1), (8, 3, 0, 2): (1, 0), (8, 3, 1, 4): (2, 1)}
    for (n, f, p, s), (k_in, k_pad) in cases.items():
        at = _page(app_factory, lang, ca_n=n, ca_f=f, ca_p=p, ca_s=s, ca_d=1)
        warning = " ".join(w.value for w in at.warning if f"/{s} = " in w.value)  # not the 3×3-stack note
        assert str(k_in + k_pad) in warning
        spec = _grid_spec(at)
        assert spec is not None
        legend = _legend(spec)
        cells = _z(spec["data"][0])
        unvisited_input = [name for name, rgb in legend.items()  # red: red well above equal green and blue
                           if rgb[0] > rgb[1] + 40 and rgb[0] > rgb[2] + 40 and abs(rgb[1] - rgb[2]) < 30]
        dark_greys = [name for name, rgb in legend.items() if rgb[0] == rgb[1] == rgb[2] and rgb[0] < 200]
        # The text names red exactly when the grid has red cells, dark grey exactly when it has dark grey ones
        assert (red in warning) == bool(k_in) == bool(unvisited_input), (n, f, p, s, warning, legend)
        assert (grey in warning) == bool(k_pad) == bool(dark_greys), (n, f, p, s, warning, legend)
        if k_in and k_pad:
            assert str(k_in) in warning and str(k_pad) in warning
        # The last padded row is drawn as never visited, in the colour the text gives it
        assert set(np.unique(cells[-1]).tolist()) == {UNVISITED_PADDING if k_pad else UNVISITED}
        if k_pad:
            assert ("padding" if lang == "en" else "패딩") in dark_greys[0]


# --- 10: N up to 512, the notes' AlexNet example; the grid only while legible --------------------------------
@pytest.mark.parametrize("lang, too_large", [("en", "too large"), ("ko", "너무 큽니다")])
def test_conv_arithmetic_takes_the_notes_alexnet_example(app_factory, lang, too_large):
    n, f, p, s = 227, 11, 0, 4
    out = _torch_output(n, f, p, s, 1)
    assert out == (227 - 11) // 4 + 1 == 55
    at = _page(app_factory, lang, ca_n=n, ca_f=f, ca_p=p, ca_s=s, ca_d=1)
    assert at.number_input(key="ca_n").value == n
    assert at.metric[0].value == f"{out}×{out}"
    assert any(f"= {out}" in c.value and "kernel_size=11, stride=4" in c.value for c in at.code)
    assert at.slider(key="ca_pos").max == out * out
    assert _grid_spec(at) is None  # 227×227 cells are not drawn ...
    assert any(too_large in c.value and "227×227" in c.value for c in at.caption)  # ... and the page says so
    # The largest input: N = 512 with P = 16 and a 1×1 kernel, the last of its 544² positions
    at = _page(app_factory, lang, ca_n=512, ca_f=1, ca_p=16, ca_s=1, ca_d=1, ca_pos=544 * 544)
    big = _torch_output(512, 1, 16, 1, 1)
    assert at.metric[0].value == f"{big}×{big}" and at.slider(key="ca_pos").value == big * big
    assert _grid_spec(at) is None and not [w for w in at.warning if "/1 = " in w.value]
    # A leftover past the drawing limit names no colour (nothing is drawn)
    at = _page(app_factory, lang, ca_n=300, ca_f=3, ca_p=1, ca_s=2, ca_d=1)
    assert at.metric[0].value == f"{_torch_output(300, 3, 1, 2, 1)}×{_torch_output(300, 3, 1, 2, 1)}"
    warning = " ".join(w.value for w in at.warning if "/2 = " in w.value)  # not the 3×3-stack note
    assert warning and not any(word in warning for word in ("red", "grey", "빨간", "회색"))
    # A small input is still drawn: 60 + 2·2 = 64 cells; 62 + 2·2 = 66 are not
    assert _grid_spec(_page(app_factory, lang, ca_n=60, ca_f=3, ca_p=2, ca_s=1, ca_d=1)) is not None
    assert _grid_spec(_page(app_factory, lang, ca_n=62, ca_f=3, ca_p=2, ca_s=1, ca_d=1)) is None


def test_a_link_carries_the_notes_example_and_the_largest_position():
    query = {"model": "mnist_cnn", "weights": "none", "input": "28x28", "n": "227", "kernel": "11", "pad": "0",
             "stride": "4", "dilation": "1", "pos": "3025"}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for name, value in query.items():
        at.query_params[name] = value
    at.switch_page("pages/conv_arithmetic.py")
    at.run()
    assert not at.exception, at.exception
    assert not [w.value for w in at.warning if "link" in w.value.lower()]
    assert at.session_state["ca_n"] == 227 and at.session_state["ca_pos"] == 3025  # 55² (torch: 55 per side)
    assert at.metric[0].value == f"{_torch_output(227, 11, 0, 4, 1)}×{_torch_output(227, 11, 0, 4, 1)}"
    assert at.query_params["n"] == "227" and at.query_params["pos"] == "3025"
    from ui.links import PAGE_PARAMS

    limits = {p.name: (p.low, p.high) for p in PAGE_PARAMS["conv_arithmetic"]}
    assert limits["n"] == (1, 512)
    assert limits["pos"][1] >= _torch_output(512, 1, 16, 1, 1) ** 2  # every position of the largest input


# --- 9: receptive fields after transposed convolutions hold every pixel that reaches a unit --------------------
def _support(model: nn.Module, size: int) -> tuple[np.ndarray, torch.Size]:
    """Jacobian of the (linear, all-ones) model: which input pixels reach each output unit."""
    x = torch.rand(1, 1, size, size) + 0.1
    jac = torch.autograd.functional.jacobian(model, x, vectorize=True)  # out × in, counts ≥ 0: no cancellation
    out_shape = jac.shape[2:4]
    return (jac[0, 0, :, :, 0, 0] != 0).numpy(), out_shape


def _check_boxes(model: nn.Module, size: int) -> tuple[list[float], list[float]]:
    from explorer.receptive import field_box, receptive_field_table

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.constant_(m.weight, 1.0)
    table = receptive_field_table(model, (1, size, size))
    layer = table.iloc[-1]["layer"]
    support, (oh, ow) = _support(model, size)
    gaps_lo, gaps_hi = [], []
    for r, c in itertools.product(range(oh), range(ow)):
        rows, cols = np.nonzero(support[r, c])
        if not len(rows):
            continue
        box = field_box(table, layer, (r, c), (size, size))
        assert box.top <= rows.min() and rows.max() <= box.bottom, (model, (r, c), box, rows.min(), rows.max())
        assert box.left <= cols.min() and cols.max() <= box.right, (model, (r, c), box, cols.min(), cols.max())
        gaps_lo.append(rows.min() - box.top)
        gaps_hi.append(box.bottom - rows.max())
    return gaps_lo, gaps_hi


def test_unet_up_convolution_field_holds_the_pixels_that_reach_every_unit():
    # The reviewer's case: Conv2d(k=4, s=4) then ConvTranspose2d(k=2, s=2). Unit 4 is reached by rows 8..11
    model = nn.Sequential(nn.Conv2d(1, 1, 4, stride=4, bias=False), nn.ConvTranspose2d(1, 1, 2, stride=2, bias=False))
    gaps_lo, gaps_hi = _check_boxes(model, 32)
    assert min(gaps_lo) < 1 and min(gaps_hi) < 1  # as tight as one box per stride phase allows
    from explorer.receptive import receptive_field_table

    row = receptive_field_table(model, (1, 32, 32)).iloc[-1]
    assert not row["exact"] and "larger" in row["note"]


def test_transposed_convolution_fields_are_supersets_over_a_sweep():
    rng = random.Random(14)
    configs = [c for c in itertools.product([2, 3, 4, 5], [1, 2, 3], [0, 1, 2], [1, 2]) if c[2] <= c[3] * (c[0] - 1)]
    rng.shuffle(configs)
    for k, s, p, d in configs[:14] + [(4, 2, 1, 1), (2, 2, 0, 1), (3, 3, 0, 2)]:  # + DCGAN's and U-Net's
        k1, s1, p1 = rng.choice([1, 3]), rng.choice([1, 2]), rng.choice([0, 1])
        model = nn.Sequential(nn.Conv2d(1, 1, k1, s1, p1, bias=False),
                              nn.ConvTranspose2d(1, 1, k, s, p, dilation=d, bias=False))
        gaps_lo, gaps_hi = _check_boxes(model, 13)
        assert min(gaps_lo) < 1 and min(gaps_hi) < 1, (k, s, p, d)
    # Two in a row, and an ordinary convolution after one
    for model in (nn.Sequential(nn.ConvTranspose2d(1, 1, 4, 2, 1, bias=False), nn.ConvTranspose2d(1, 1, 3, 3, 1, bias=False)),
                  nn.Sequential(nn.ConvTranspose2d(1, 1, 3, 2, 0, bias=False), nn.Conv2d(1, 1, 3, 2, 1, bias=False))):
        _check_boxes(model, 9)


def test_stride_one_transposed_convolution_stays_exact():
    from explorer.receptive import field_box, receptive_field_table

    model = nn.Sequential(nn.Conv2d(1, 1, 3, 2, 1, bias=False), nn.ConvTranspose2d(1, 1, 3, 1, 1, bias=False))
    for m in model:
        nn.init.constant_(m.weight, 1.0)
    table = receptive_field_table(model, (1, 15, 15))
    row = table.iloc[-1]
    assert row["exact"]
    support, (oh, ow) = _support(model, 15)
    for r in range(2, oh - 2):  # interior units (no padding reached): the box is the support itself
        rows, _ = np.nonzero(support[r, r])
        box = field_box(table, row["layer"], (r, r), (15, 15))
        assert (box.top, box.bottom) == (rows.min(), rows.max())
    # Strided ones are flagged, in both languages, as "may be larger"
    from explorer.core import translate

    assert "larger" in translate("rf.note.transposed", "en") and "클 수" in translate("rf.note.transposed", "ko")


# --- dilated taps with a stride that shares their spacing leave input rows unread (second read, review 14) ------
def _rows_read_by_torch(n: int, f: int, p: int, s: int, d: int) -> set[int]:
    """Input rows whose value reaches some output: the gradient of the summed output with respect to the input."""
    import torch

    x = torch.ones(1, 1, n, 1, requires_grad=True)
    w = torch.ones(1, 1, f, 1)
    torch.nn.functional.conv2d(x, w, padding=(p, 0), stride=(s, 1), dilation=(d, 1)).sum().backward()
    return {i for i in range(n) if x.grad[0, 0, i, 0] != 0}


@pytest.mark.parametrize("n,f,p,s,d", [(8, 3, 1, 2, 2), (7, 3, 1, 2, 2), (9, 2, 0, 2, 2), (8, 3, 1, 2, 1),
                                       (10, 3, 0, 3, 3), (12, 4, 2, 2, 3)])
def test_never_read_input_rows_are_what_torch_never_reads(n, f, p, s, d):
    from explorer.receptive import conv_arithmetic

    a = conv_arithmetic(n, f, p, s, d)
    assert set(a.never_read_input) == set(range(n)) - _rows_read_by_torch(n, f, p, s, d)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_page_never_says_no_input_is_skipped_when_torch_skips_some(app_factory, lang):
    from explorer.core import translate

    skipped = sorted(set(range(8)) - _rows_read_by_torch(8, 3, 1, 2, 2))
    assert skipped == [0, 2, 4, 6]
    at = app_factory("conv_arithmetic", sel_model="mnist_cnn", sel_weights="none", lang=lang,
                     ca_n=8, ca_f=3, ca_p=1, ca_s=2, ca_d=2)
    assert not at.exception, at.exception
    text = " ".join(str(w.value) for w in at.warning) + " ".join(str(s.value) for s in at.success)
    assert translate("rf.arith_no_input_skipped", lang) not in text
    assert "(0, 2, 4, 6)" in text
    at = app_factory("conv_arithmetic", sel_model="mnist_cnn", sel_weights="none", lang=lang,
                     ca_n=8, ca_f=3, ca_p=1, ca_s=2, ca_d=1)  # no gaps: the trailing padding is all that is skipped
    text = " ".join(str(w.value) for w in at.warning)
    assert translate("rf.arith_no_input_skipped", lang) in text and not _rows_read_by_torch(8, 3, 1, 2, 1) ^ set(range(8))
