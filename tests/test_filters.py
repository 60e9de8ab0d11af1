"""explorer.imaging.filters against independent computations: explicit numpy loops, cv2.Sobel, torch conv2d."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F_t
from PIL import Image

from explorer.imaging import filter_display as D
from explorer.imaging import filters as F
from explorer.cli import main as cli_main

# The test's own mapping from padding names to numpy's np.pad modes (written from numpy's docs, not
# taken from the module): reflect = mirror without repeating the edge ("dcb|abcd").
NP_PAD = {"zero": "constant", "reflect": "reflect", "replicate": "edge"}
TORCH_PAD = {"reflect": "reflect", "replicate": "replicate"}


def loop_correlate(x: np.ndarray, k: np.ndarray, padding: str, stride: int) -> np.ndarray:
    """Correlation by explicit loops over output positions (no flip)."""
    kh, kw = k.shape
    if padding == "none":
        xp = x
    else:
        xp = np.pad(x, (((kh - 1) // 2,) * 2, ((kw - 1) // 2,) * 2), mode=NP_PAD[padding])
    rows = (xp.shape[0] - kh) // stride + 1
    cols = (xp.shape[1] - kw) // stride + 1
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            total = 0.0
            for u in range(kh):
                for v in range(kw):
                    total += k[u, v] * xp[i * stride + u, j * stride + v]
            out[i, j] = total
    return out


def loop_true_convolve(x: np.ndarray, k: np.ndarray, padding: str, stride: int) -> np.ndarray:
    """(m * f)[n] = sum_k m[k] f[n - k]: the kernel index runs backwards over the window."""
    kh, kw = k.shape
    xp = x if padding == "none" else np.pad(x, (((kh - 1) // 2,) * 2, ((kw - 1) // 2,) * 2), mode=NP_PAD[padding])
    rows = (xp.shape[0] - kh) // stride + 1
    cols = (xp.shape[1] - kw) // stride + 1
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            out[i, j] = sum(k[kh - 1 - u, kw - 1 - v] * xp[i * stride + u, j * stride + v]
                            for u in range(kh) for v in range(kw))
    return out


@pytest.fixture(scope="module")
def rand_image() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, size=(11, 14))


@pytest.mark.parametrize("name", sorted(F.KERNELS))
@pytest.mark.parametrize("padding", ["zero", "reflect", "replicate", "none"])
def test_correlate_matches_numpy_loops_for_every_preset(rand_image, name, padding):
    k = np.asarray(F.KERNELS[name])
    for stride in (1, 2, 3):
        got = F.correlate(rand_image, k, padding, stride)
        want = loop_correlate(rand_image, k, padding, stride)
        assert got.dtype == np.float64
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("padding", ["zero", "reflect", "replicate"])
@pytest.mark.parametrize("name", ["sobel_x", "emboss", "scharr_y", "prewitt_x"])
def test_convolve_is_true_convolution(rand_image, name, padding):
    k = np.asarray(F.KERNELS[name])
    for stride in (1, 2, 3):
        np.testing.assert_allclose(F.convolve(rand_image, k, padding, stride),
                                   loop_true_convolve(rand_image, k, padding, stride), atol=1e-9)


def test_random_kernels_and_gaussian_sizes_match_loops():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(13, 10))
    for size in (1, 3, 5, 7):
        k = rng.normal(size=(size, size))
        for padding in ("zero", "reflect", "replicate"):
            for stride in (1, 2, 3):
                np.testing.assert_allclose(F.correlate(x, k, padding, stride), loop_correlate(x, k, padding, stride),
                                           atol=1e-9)
    g = F.gaussian_kernel(7, 1.5)
    np.testing.assert_allclose(F.correlate(x, g, "reflect", 2), loop_correlate(x, g, "reflect", 2), atol=1e-9)


def test_per_channel_filters_each_channel_with_the_same_kernel():
    x = np.random.default_rng(2).uniform(0, 255, size=(9, 8, 3))
    k = np.asarray(F.KERNELS["sharpen"])
    got = F.correlate(x, k, "replicate", 2)
    assert got.shape == (5, 4, 3)
    for c in range(3):
        np.testing.assert_allclose(got[..., c], loop_correlate(x[..., c], k, "replicate", 2), atol=1e-9)
    single = F.correlate(x[..., :1], k, "zero", 1)  # one channel keeps its channel axis
    assert single.shape == (9, 8, 1)


def test_sobel_equals_cv2_sobel_ksize3():
    g = np.random.default_rng(3).uniform(0, 255, size=(24, 31))
    gx, gy, mag = F.sobel(g)
    np.testing.assert_allclose(gx, cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3), atol=1e-9)
    np.testing.assert_allclose(gy, cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3), atol=1e-9)
    np.testing.assert_allclose(mag, np.sqrt(gx**2 + gy**2))
    gx0, gy0, _ = F.sobel(g, padding="zero")
    np.testing.assert_allclose(gx0, cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT), atol=1e-9)
    np.testing.assert_allclose(gy0, cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_CONSTANT), atol=1e-9)


def test_vertical_step_edge_responds_in_gx_only():
    step = np.zeros((10, 12))
    step[:, 6:] = 200.0  # dark left, bright right: a vertical edge between columns 5 and 6
    gx, gy, mag = F.sobel(step)
    assert np.all(gy == 0)
    assert np.all(gx[:, 5:7] == 4 * 200.0)  # (1 + 2 + 1) * 200 on both sides of the edge
    assert np.all(gx[:, :5] == 0) and np.all(gx[:, 7:] == 0)
    np.testing.assert_array_equal(mag, np.abs(gx))
    direction = F.gradient_direction(gx, gy)
    assert np.all(direction[:, 5:7] == 0.0)  # brighter to the right


def test_course_notes_sobel_y_is_the_flipped_form():
    # The notes write the y filter with +1 on top; applied as true convolution that is our sobel_y.
    notes_y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=float)
    np.testing.assert_array_equal(F.flip_kernel(notes_y), F.KERNELS["sobel_y"])


@pytest.mark.parametrize("n,f,p,s", [(9, 3, 1, 2), (10, 3, 1, 1), (10, 5, 2, 3), (12, 7, 3, 2), (8, 3, 0, 3),
                                     (7, 7, 0, 1), (15, 5, 0, 2), (224, 7, 3, 2)])
def test_output_size_matches_formula_and_torch_conv2d(n, f, p, s):
    assert F.output_size(n, f, p, s) == (n - f + 2 * p) // s + 1
    rng = np.random.default_rng(n * 100 + f)
    x = rng.normal(size=(n, n + 1))
    k = rng.normal(size=(f, f))
    tx = torch.from_numpy(x)[None, None]
    tk = torch.from_numpy(k)[None, None]
    want = F_t.conv2d(tx, tk, stride=s, padding=p)[0, 0].numpy()
    got = F.correlate(x, k, "zero", s, pad=p)
    assert got.shape == want.shape == F.output_shape(x.shape, k.shape, "zero", s, pad=p)
    np.testing.assert_allclose(got, want, atol=1e-9)  # PyTorch "convolution" is correlation


@pytest.mark.parametrize("padding", ["reflect", "replicate"])
def test_reflect_and_replicate_match_torch_padding_modes(padding):
    rng = np.random.default_rng(4)
    x, k = rng.normal(size=(9, 12)), rng.normal(size=(5, 5))
    padded = F_t.pad(torch.from_numpy(x)[None, None], (2, 2, 2, 2), mode=TORCH_PAD[padding])
    for s in (1, 2, 3):
        want = F_t.conv2d(padded, torch.from_numpy(k)[None, None], stride=s)[0, 0].numpy()
        np.testing.assert_allclose(F.correlate(x, k, padding, s), want, atol=1e-9)


def test_explain_output_size_course_example():
    e = F.explain_output_size(9, 3, 1, 2)  # the notes: (9 - 3 + 2) / 2 + 1 = 5
    assert (e.numerator, e.exact, e.size, e.divides_evenly) == (8, 5.0, 5, True)
    e = F.explain_output_size(10, 3, 1, 2)
    assert e.size == 5 and e.exact == 5.5 and not e.divides_evenly


@pytest.mark.parametrize("bad,message", [
    ([], "empty"),
    ([[1, 2, 3], [4, 5]], "ragged"),
    ([["a", "b"], ["c", "d"]], "not numbers"),
    ([[1, np.nan, 0]] * 3, "not finite"),
    ([[1, np.inf, 0]] * 3, "not finite"),
    ([[1, 0], [0, 1]], "centre"),
    (np.ones((1, 2, 3)), "2-D"),
])
def test_bad_kernels_are_refused_with_clear_messages(bad, message):
    with pytest.raises(ValueError, match=message):
        F.correlate(np.zeros((8, 8)), bad)


def test_kernel_larger_than_image_is_refused_but_even_kernel_works_without_padding():
    with pytest.raises(ValueError, match="larger than the image"):  # a padded 4×6 is still 4×6: no 5×5 window fits
        F.correlate(np.zeros((4, 6)), np.ones((5, 5)), pad=0)
    with pytest.raises(ValueError, match="larger than the image"):
        F.correlate(np.zeros((4, 6)), np.ones((5, 5)), padding="none")
    x = np.arange(20.0).reshape(4, 5)
    np.testing.assert_allclose(F.correlate(x, [[1, 2], [3, 4]], "none"), loop_correlate(x, np.array([[1., 2], [3, 4]]), "none", 1))
    with pytest.raises(ValueError, match="stride"):
        F.correlate(x, np.ones((3, 3)), stride=0)
    with pytest.raises(ValueError, match="padding"):
        F.correlate(x, np.ones((3, 3)), padding="circular")
    with pytest.raises(ValueError, match="reflect padding"):
        F.correlate(x, np.ones((3, 3)), padding="reflect", pad=4)


@pytest.mark.parametrize("text,message", [
    ("", "empty"), ("  ;  ; ", "empty"), ("1,2,3;4,5", "ragged"), ("1,x,3;4,5,6;7,8,9", "'x'.*not a number"),
    ("1,nan,0;0,1,0;0,0,1", "not a finite"), ("1,inf", "not a finite"), ("1/0,1,1", "not a number"),
])
def test_parse_kernel_refuses_bad_text(text, message):
    with pytest.raises(ValueError, match=message):
        F.parse_kernel(text)


def test_parse_kernel_accepts_rows_fractions_and_round_trips():
    k = F.parse_kernel("1/16, 2/16, 1/16; 2/16 4/16 2/16\n1/16,2/16,1/16")
    np.testing.assert_allclose(k, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    np.testing.assert_array_equal(F.parse_kernel(F.format_kernel(F.KERNELS["emboss"])), F.KERNELS["emboss"])
    np.testing.assert_array_equal(F.parse_kernel("-1,0,1;-2,0,2;-1,0,1"), F.KERNELS["sobel_x"])


def test_gaussian_and_box_kernels():
    g = F.gaussian_kernel(5, 1.2)
    want = cv2.getGaussianKernel(5, 1.2, cv2.CV_64F)
    np.testing.assert_allclose(g, want @ want.T, atol=1e-12)
    assert F.box_kernel(3).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="odd"):
        F.gaussian_kernel(4, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        F.gaussian_kernel(3, 0.0)


def test_presets_are_read_only_and_normalise_refuses_zero_sum():
    with pytest.raises(ValueError):
        F.KERNELS["sobel_x"][0, 0] = 5.0
    np.testing.assert_allclose(F.normalise_kernel(np.ones((3, 3))), np.full((3, 3), 1 / 9))
    with pytest.raises(ValueError, match="sum to 0"):
        F.normalise_kernel(F.KERNELS["laplacian"])


def test_convolution_by_hand_reproduces_the_course_example():
    step = F.convolution_by_hand(F.EXAMPLE_PATCH, F.EXAMPLE_KERNEL, (0, 1))
    # The notes' output grid for this 5x5 image and 3x3 "X" kernel.
    np.testing.assert_array_equal(step.output, [[4, 3, 4], [2, 4, 3], [2, 3, 4]])
    np.testing.assert_array_equal(step.window, np.asarray(F.EXAMPLE_PATCH)[0:3, 1:4])
    np.testing.assert_array_equal(step.products, step.window * np.asarray(F.EXAMPLE_KERNEL))
    assert step.total == 3.0 == step.output[0, 1]
    with pytest.raises(ValueError, match="outside"):
        F.convolution_by_hand(F.EXAMPLE_PATCH, F.EXAMPLE_KERNEL, (3, 0))


def test_convolution_by_hand_with_asymmetric_kernel_padding_and_stride():
    patch = np.random.default_rng(5).integers(0, 9, size=(5, 5)).astype(float)
    k = np.asarray(F.KERNELS["sobel_x"])
    corr = F.convolution_by_hand(patch, k, (1, 2), padding="zero", stride=2)
    conv = F.convolution_by_hand(patch, k, (1, 2), padding="zero", stride=2, operation="convolve")
    np.testing.assert_allclose(corr.output, loop_correlate(patch, k, "zero", 2))
    np.testing.assert_allclose(conv.output, loop_true_convolve(patch, k, "zero", 2))
    np.testing.assert_allclose(conv.output, -corr.output)  # Sobel x flipped is minus itself
    assert corr.total == pytest.approx(corr.output[1, 2]) and conv.total == pytest.approx(conv.output[1, 2])
    np.testing.assert_array_equal(conv.kernel_used, k[::-1, ::-1])


def test_display_mapping_keeps_sign_and_range_honest():
    values = np.array([[-50.0, 0.0], [25.0, 100.0]])
    m = D.display_mapping(values)
    assert m.mode == "diverging" and (m.zmin, m.zmax) == (-100.0, 100.0)
    assert (m.value_min, m.value_max) == (-50.0, 100.0)
    assert tuple(m.rgb[0, 1]) == (247, 247, 247)  # zero is the neutral colour
    assert m.rgb[0, 0, 2] > m.rgb[0, 0, 0]  # negative is blue
    assert m.rgb[1, 1, 0] > m.rgb[1, 1, 2]  # positive is red
    a = D.display_mapping(values, "abs")
    assert a.rgb[1, 1, 0] == 255 and a.rgb[0, 0, 0] == 128 and a.rgb[0, 1, 0] == 0
    c = D.display_mapping(np.array([[-10.0, 100.0], [300.0, 50.0]]), "clip")
    assert c.clipped_fraction == 0.5 and c.rgb[1, 0, 0] == 255 and c.rgb[0, 0, 0] == 0
    assert D.choose_display_mode(np.array([[0.0, 255.0]])) == "clip"
    assert D.choose_display_mode(np.array([[0.0, 900.0]])) == "abs"


def test_large_upload_is_downscaled_for_display_only():
    rng = np.random.default_rng(6)
    big = rng.uniform(0, 255, size=(1536, 2048))
    before = big.copy()
    result = F.correlate(big, F.KERNELS["sobel_x"], "reflect")
    assert result.shape == big.shape  # computed at full resolution
    for r, c in [(0, 0), (700, 1999), (1535, 2047), (1, 1024)]:  # spot-check against the definition
        xp = np.pad(big, 1, mode="reflect")
        assert result[r, c] == pytest.approx(float((xp[r:r + 3, c:c + 3] * F.KERNELS["sobel_x"]).sum()), abs=1e-8)
    fig, mapping = D.result_figure(result, max_side=256)
    z = np.asarray(fig.data[0].z)
    assert max(z.shape) <= 256
    assert (mapping.value_min, mapping.value_max) == (result.min(), result.max())  # the full range is stated
    # colours saturate at the 95th percentile of |value| (a value that occurs), and the share beyond is stated
    limit = np.sort(np.abs(result).ravel())[int(np.ceil(0.95 * (result.size - 1)))]
    assert mapping.zmax == limit and mapping.clipped_fraction == pytest.approx(np.mean(np.abs(result) > limit))
    np.testing.assert_array_equal(big, before)
    small, scale = D.downscale_for_display(result, 512)
    assert small.shape == (384, 512) and scale == pytest.approx(0.25)
    png = D.to_png(result)
    decoded = np.asarray(Image.open(__import__("io").BytesIO(png)))
    assert decoded.shape == (1536, 2048, 3)  # downloads are full resolution


def test_apply_filter_composites_and_per_channel():
    x = np.random.default_rng(7).uniform(0, 255, size=(12, 10, 3))
    mag = F.apply_filter(x, "sobel_magnitude", "reflect")
    for c in range(3):
        gx = cv2.Sobel(x[..., c], cv2.CV_64F, 1, 0, ksize=3)
        gy = cv2.Sobel(x[..., c], cv2.CV_64F, 0, 1, ksize=3)
        np.testing.assert_allclose(mag[..., c], np.hypot(gx, gy), atol=1e-9)
    direction = F.apply_filter(x[..., 0], "sobel_direction", "reflect")
    assert direction.min() >= -180 and direction.max() <= 180
    with pytest.raises(ValueError, match="unknown kernel"):
        F.apply_filter(x, "sobel_z")


def test_to_array_grey_is_bt601_luma():
    rgb = np.random.default_rng(8).integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    grey = F.to_array(Image.fromarray(rgb), grayscale=True)
    want = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(grey, want)
    assert F.to_array(Image.fromarray(rgb), grayscale=False).shape == (6, 7, 3)


def test_cli_filter_writes_png_and_npy(tmp_path, capsys):
    rgb = np.random.default_rng(9).integers(0, 256, size=(20, 26, 3), dtype=np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(rgb).save(src)
    out_png, out_npy = tmp_path / "out" / "sx.png", tmp_path / "sx.npy"
    rc = cli_main(["filter", str(src), "--kernel", "sobel_x", "--padding", "replicate", "--stride", "2",
                   "--png", str(out_png), "--npy", str(out_npy)])
    assert rc == 0
    grey = rgb.astype(float) @ np.array([0.299, 0.587, 0.114])
    want = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)[::2, ::2]
    np.testing.assert_allclose(np.load(out_npy), want, atol=1e-9)
    assert np.asarray(Image.open(out_png)).shape == (10, 13, 3)
    assert "10x13" in capsys.readouterr().out

    rc = cli_main(["filter", str(src), "--kernel-values", "0,0,0;0,1,0;0,0,0", "--per-channel", "--padding", "none",
                   "--png", str(out_png), "--npy", str(out_npy)])
    assert rc == 0
    np.testing.assert_array_equal(np.load(out_npy), rgb[1:-1, 1:-1].astype(float))


def test_cli_filter_refuses_bad_input(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    assert cli_main(["filter", str(src), "--kernel-values", "1,2;3", "--png", str(tmp_path / "o.png")]) == 2
    assert "ragged" in capsys.readouterr().err
    assert cli_main(["filter", str(src), "--kernel", "nope", "--png", str(tmp_path / "o.png")]) == 2
    assert cli_main(["filter", str(tmp_path / "missing.png"), "--kernel", "sobel_x", "--png", str(tmp_path / "o.png")]) == 2
    assert not (tmp_path / "o.png").exists()


def test_cli_lists_every_filter_name():
    from explorer.commands import filter as filter_cmd

    assert filter_cmd._filter_names() == list(F.FILTER_NAMES)
