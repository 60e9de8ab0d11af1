"""explorer.imaging.augment: seeded draws, flips and normalisation checked against numpy by hand."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.imaging import augment as A
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8))


def as_float(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64) / 255.0  # (H, W, 3)


def chw(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).double().numpy()  # -> (H, W, 3)


EVERYTHING = A.AugmentConfig(hflip_p=0.5, vflip_p=0.5, rotation_degrees=30, translate=0.2, crop=True, crop_size=32,
                             brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, grayscale_p=0.3, blur_kernel=3,
                             erasing_p=0.5, normalize=True)


def test_same_seed_same_draws_and_other_seeds_differ(image):
    a = A.draws(image, EVERYTHING, 4, seed=7)
    b = A.draws(image, EVERYTHING, 4, seed=7)
    c = A.draws(image, EVERYTHING, 4, seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])  # the draws differ from each other
    assert torch.equal(a[1], c[0])  # draw i uses seed + i
    assert not torch.equal(a[0], c[0])


def test_draws_leave_the_global_random_state_alone(image):
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    A.draws(image, EVERYTHING, 3, seed=1)
    assert torch.equal(torch.rand(5), expected)


def test_draws_are_reproducible_from_concurrent_threads(image):
    want = A.draws(image, EVERYTHING, 3, seed=11)
    results: list[list[torch.Tensor]] = []

    def worker() -> None:
        results.append(A.draws(image, EVERYTHING, 3, seed=11))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(torch.equal(x, y) for got in results for x, y in zip(got, want))


def test_horizontal_and_vertical_flips_really_flip(image):
    h = A.draws(image, A.AugmentConfig(hflip_p=1.0), 1, seed=0)[0]
    v = A.draws(image, A.AugmentConfig(vflip_p=1.0), 1, seed=0)[0]
    np.testing.assert_allclose(chw(h), np.fliplr(as_float(image)), atol=1e-6)
    np.testing.assert_allclose(chw(v), np.flipud(as_float(image)), atol=1e-6)


def test_identity_config_is_just_scaling_to_0_1(image):
    out = A.draws(image, A.AugmentConfig(), 1, seed=0)[0]
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 40, 56)
    np.testing.assert_allclose(chw(out), as_float(image), atol=1e-6)


def test_normalisation_matches_hand_computation(image):
    out = A.draws(image, A.AugmentConfig(normalize=True), 1, seed=0)[0]
    by_hand = (as_float(image) - MEAN) / STD
    np.testing.assert_allclose(chw(out), by_hand, atol=1e-5)
    np.testing.assert_allclose(chw(A.normalize_by_hand(torch.from_numpy(as_float(image)).permute(2, 0, 1))), by_hand)
    stats = A.channel_stats(out)
    np.testing.assert_allclose(stats["min"], by_hand.reshape(-1, 3).min(0), atol=1e-5)
    np.testing.assert_allclose(stats["max"], by_hand.reshape(-1, 3).max(0), atol=1e-5)
    np.testing.assert_allclose(stats["mean"], by_hand.reshape(-1, 3).mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["std"], by_hand.reshape(-1, 3).std(0), atol=1e-5)
    picture, clipped = A.to_display(out, normalized=True)  # de-normalised back to the original pixels
    assert clipped == 0.0
    assert np.abs(picture.astype(int) - np.asarray(image, dtype=int)).max() <= 1


def test_crop_grayscale_and_erasing(image):
    crop = A.draws(image, A.AugmentConfig(crop=True, crop_size=24), 2, seed=3)
    assert all(tuple(t.shape) == (3, 24, 24) for t in crop)
    grey = A.draws(image, A.AugmentConfig(grayscale_p=1.0), 1, seed=0)[0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    erased = A.draws(image, A.AugmentConfig(erasing_p=1.0, normalize=True), 1, seed=0)[0]
    normalised = A.draws(image, A.AugmentConfig(normalize=True), 1, seed=0)[0]
    changed = (erased != normalised).any(dim=0)
    assert changed.any()
    assert torch.all(erased[:, changed] == 0)  # erased to 0 after normalising = the mean colour


def test_pipeline_code_builds_the_same_pipeline(image):
    code = A.pipeline_code(EVERYTHING, seed=5)
    assert "v2.Compose([" in code and "v2.Normalize(mean=(0.485, 0.456, 0.406)" in code
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own generated code
    transform = namespace["transform"]
    draws = A.draws(image, EVERYTHING, 3, seed=5)
    for i, want in enumerate(draws):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5 + i)
            assert torch.equal(transform(image), want)


def test_config_validation():
    with pytest.raises(ValueError, match="probability"):
        A.AugmentConfig(hflip_p=1.5)
    with pytest.raises(ValueError, match="odd"):
        A.AugmentConfig(blur_kernel=4)
    with pytest.raises(ValueError, match="hue"):
        A.AugmentConfig(hue=0.7)
    with pytest.raises(ValueError, match="unknown augmentation option"):
        A.AugmentConfig.from_dict({"hflip": 0.5})
    cfg = A.AugmentConfig.from_dict({"hflip_p": 0.5, "crop_scale": [0.5, 1.0]})
    assert cfg.crop_scale == (0.5, 1.0) and A.AugmentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="draws"):
        A.draws(Image.new("RGB", (8, 8)), cfg, 0, seed=0)


def test_prepare_preview_bounds_the_longer_side():
    big = Image.new("RGB", (1000, 500))
    assert A.prepare_preview(big, 200).size == (200, 100)
    small = Image.new("RGB", (50, 30))
    assert A.prepare_preview(small, 200).size == (50, 30)


def test_tensor_figure_uses_true_values(image):
    out = A.draws(image, A.AugmentConfig(normalize=True), 1, seed=0)[0]
    fig = A.tensor_figure(out)
    assert len(fig.data) == 3
    m = float(out.abs().max())
    assert fig.data[0].zmin == pytest.approx(-m) and fig.data[0].zmax == pytest.approx(m)
    np.testing.assert_allclose(np.asarray(fig.data[1].z), out[1].numpy(), atol=1e-6)
