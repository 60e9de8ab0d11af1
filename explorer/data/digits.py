"""Real handwritten digits that every machine has: scikit-learn's 1,797 8×8 digits, upscaled to the model.

scikit-learn bundles them in its wheel (``sklearn.datasets.load_digits``: no download), so the digit networks
(``mnist_cnn``, ``lenet5``) can be trained and shown on real handwriting offline. Each 8×8 digit gets a 1-pixel
border and is upscaled bilinearly to the model's input (``explorer.imaging.teaching_samples.digit_picture``,
the same code that makes the app's digit samples), white ink on black like MNIST. The split is 7:2:1 of a
seeded permutation; mirror images are not used for augmentation (a mirrored 2 is no digit).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from explorer.data.bundle import DataBundle, ImageTensors, channel_stats
from explorer.data.splits import train_valid_test_counts
from explorer.imaging import digit_picture, sklearn_digits

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
DIGITS_COUNT = 1797


def digits_split_indices(seed: int = 0, ratios: Sequence[float] = (0.7, 0.2, 0.1)) -> tuple[np.ndarray, ...]:
    """(train, valid, test) indices into ``load_digits()``: a permutation drawn from ``seed``, cut by ``ratios``
    (7:2:1 by default). ``ValueError`` when ``ratios`` is not three shares or leaves the training split empty."""
    n_train, n_valid, _ = train_valid_test_counts(DIGITS_COUNT, ratios, "digits")
    order = np.random.default_rng(seed).permutation(DIGITS_COUNT)
    return order[:n_train], order[n_train:n_train + n_valid], order[n_train + n_valid:]


def _tensors(images: np.ndarray, labels: np.ndarray, channels: int, size: int) -> ImageTensors:
    out = np.empty((len(images), channels, size, size), dtype=np.uint8)
    for i, pixels in enumerate(images):
        out[i] = np.asarray(digit_picture(pixels, size))[None]  # broadcast to 1 or 3 channels
    return ImageTensors(torch.from_numpy(out), torch.from_numpy(labels.astype(np.int64)))


def load_digits_bundle(channels: int = 1, size: int = 28, seed: int = 0,
                       ratios: Sequence[float] = (0.7, 0.2, 0.1)) -> DataBundle:
    """The 1,797 digits at ``size``×``size`` with ``channels`` (1, or 3 identical ones), split by ``ratios``."""
    if channels not in (1, 3):
        raise ValueError("digits are made with 1 or 3 channels")
    if size < 8:
        raise ValueError("digits need at least 8×8 pixels")
    images, labels = sklearn_digits()
    parts = [_tensors(images[idx], labels[idx], channels, size) for idx in digits_split_indices(seed, ratios)]
    mean, std = channel_stats(parts[0].images)
    return DataBundle("digits", list(DIGIT_CLASSES), *parts, mean=mean, std=std, flip_ok=False)
