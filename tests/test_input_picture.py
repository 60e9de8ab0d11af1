"""The picture of the model's input shows the colours the network receives: the transform's own normalisation is
undone exactly, checked against the image resized (and cropped) with OpenCV/PIL directly."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from explorer.analysis import page_analysis
from explorer.imaging import InputTransform, basic_transform, input_picture, sample_image
from explorer.models import load_model


def _resized(img: Image.Image, side: int) -> np.ndarray:
    return cv2.resize(np.asarray(img.convert("RGB")), (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_an_orange_star_stays_orange_for_the_shapes_network():
    loaded = load_model("tiny_vgg")
    assert loaded.weights_kind == "builtin"
    mean, std = loaded.normalization
    assert mean is not None and len(mean) == 3 and all(0 < s < 1 for s in std)
    img = sample_image("shape_star")
    picture = page_analysis(loaded, img)["picture"].astype(np.float32)
    expected = _resized(img, 64)
    assert picture.shape == expected.shape
    assert np.abs(picture - expected).mean() < 4  # 0-255 scale; bilinear (PIL) vs area (OpenCV) resampling
    centre = picture[28:36, 28:36].reshape(-1, 3).mean(axis=0)
    assert centre[0] > 180 and centre[2] < 80, centre  # orange, not the black a per-channel stretch made of it


def test_imagenet_preset_picture_is_the_centre_crop_in_its_colours():
    loaded = load_model("resnet18", weights="none")
    img = sample_image("grace_hopper")
    picture = page_analysis(loaded, img)["picture"].astype(np.float32)
    # torchvision's preset: the short side to 256, then the central 224×224.
    rgb = np.asarray(img.convert("RGB"))
    h, w = rgb.shape[:2]
    scale = 256 / min(h, w)
    resized = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    top, left = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
    expected = resized[top:top + 224, left:left + 224].astype(np.float32)
    assert picture.shape == expected.shape
    assert np.abs(picture - expected).mean() < 4


def test_normalisation_is_undone_with_the_given_statistics_not_guessed():
    mean, std = (0.2, 0.5, 0.8), (0.1, 0.2, 0.3)
    transform = basic_transform((3, 16, 16), mean, std)
    assert isinstance(transform, InputTransform) and transform.mean == mean and transform.std == std
    img = Image.new("RGB", (16, 16), (200, 120, 40))
    x = transform(img)
    # By hand: (pixel / 255 - mean) / std, undone.
    np.testing.assert_allclose(x[:, 0, 0].numpy(), (np.array([200, 120, 40]) / 255 - mean) / std, rtol=1e-5)
    assert input_picture(x, transform.mean, transform.std)[0, 0].tolist() == [200, 120, 40]
    plain = basic_transform((3, 16, 16))
    assert plain.mean is None and plain.std is None


@pytest.mark.parametrize("name", ["mnist_cnn", "lenet5"])
def test_digit_networks_report_their_grey_normalisation(name):
    loaded = load_model(name)
    mean, std = loaded.normalization
    assert mean is not None and len(mean) == 1 and len(std) == 1
    img = sample_image("digit_3")
    picture = page_analysis(loaded, img)["picture"]
    assert picture.ndim == 3 and picture.shape[2] == 3
    assert np.array_equal(picture[..., 0], picture[..., 2])  # grey shown as grey
