"""Sample images the built-in trained teaching networks know: single shapes and real handwritten digits.

The shapes are drawn here with their own code (plain background, centred, no noise), not by the training
generator (``explorer.data.synthetic``), so that classifying them is a small test of generalisation. The
digits are real: scikit-learn bundles 1,797 handwritten 8×8 digits inside its wheel (no download); the
samples are images of the held-out test split of ``explorer.data.digits`` (``tests/test_teaching_weights.py``
checks that none of them was trained on).

:data:`SAMPLE_KINDS` says what each built-in sample is: a ``photo``, a ``pattern`` (not an input any of the
app's classifiers was trained to name), a ``shapes`` image or a ``digits`` image (the dataset names of the
built-in trained networks, so a page can tell whether an image is one of the network's classes).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

SHAPE_NAMES = ("circle", "square", "triangle", "cross", "star")
# Indices into sklearn's load_digits() of one test-split image per digit (seed 0 split of explorer.data.digits).
DIGIT_SAMPLE_INDEX = {0: 30, 1: 1, 2: 51, 3: 3, 4: 110, 5: 176, 6: 16, 7: 7, 8: 76, 9: 29}
SAMPLE_SIDE = 224
# The 8×8 digits get a 1-pixel empty border before upscaling (their ink touches the edges), as in training.
DIGIT_BORDER = 1


def _polygon(name: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if name == "square":
        return [(cx - r * 0.7, cy - r * 0.7), (cx + r * 0.7, cy - r * 0.7), (cx + r * 0.7, cy + r * 0.7),
                (cx - r * 0.7, cy + r * 0.7)]
    if name == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if name == "star":
        return [(cx + (r if k % 2 == 0 else r * 0.42) * math.cos(-math.pi / 2 + math.pi * k / 5),
                 cy + (r if k % 2 == 0 else r * 0.42) * math.sin(-math.pi / 2 + math.pi * k / 5)) for k in range(10)]
    if name == "cross":
        a = r * 0.33
        return [(cx - a, cy - r), (cx + a, cy - r), (cx + a, cy - a), (cx + r, cy - a), (cx + r, cy + a),
                (cx + a, cy + a), (cx + a, cy + r), (cx - a, cy + r), (cx - a, cy + a), (cx - r, cy + a),
                (cx - r, cy - a), (cx - a, cy - a)]
    raise ValueError(f"unknown shape {name!r}")


# One colour per shape on a light background: every sample is readable when projected.
_SHAPE_COLOURS = {"circle": (220, 50, 40), "square": (40, 90, 210), "triangle": (30, 150, 60),
                  "cross": (120, 40, 160), "star": (230, 150, 0)}


def draw_single_shape(name: str, side: int = SAMPLE_SIDE, background: tuple[int, int, int] = (240, 240, 235),
                      colour: tuple[int, int, int] | None = None) -> Image.Image:
    """One shape, centred, about 70 % of the image across, on a plain background (anti-aliased)."""
    scale = 4
    big = side * scale
    img = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(img)
    fill = colour or _SHAPE_COLOURS[name]
    c, r = big / 2, big * 0.35
    if name == "circle":
        draw.ellipse([c - r * 0.85, c - r * 0.85, c + r * 0.85, c + r * 0.85], fill=fill)
    else:
        draw.polygon(_polygon(name, c, c, r), fill=fill)
    return img.resize((side, side), Image.Resampling.BOX)


def digit_picture(pixels: np.ndarray, side: int) -> Image.Image:
    """An 8×8 digit (values 0–16, ink high) as a ``side``×``side`` grayscale picture: a 1-pixel border,
    then bilinear upscaling. The training data (``explorer.data.digits``) are made the same way."""
    arr = np.clip(np.asarray(pixels, dtype=np.float32) * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    padded = np.pad(arr, DIGIT_BORDER)
    return Image.fromarray(padded, "L").resize((side, side), Image.Resampling.BILINEAR)


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8×8 handwritten digits and their labels (bundled in its wheel)."""
    from sklearn.datasets import load_digits  # heavy, and only needed for the digits

    data = load_digits()
    return np.asarray(data.images), np.asarray(data.target)


def _digit_sample(digit: int) -> Callable[[], Image.Image]:
    def sample() -> Image.Image:
        images, _ = sklearn_digits()
        return digit_picture(images[DIGIT_SAMPLE_INDEX[digit]], SAMPLE_SIDE).convert("RGB")

    return sample


def _shape_sample(name: str) -> Callable[[], Image.Image]:
    return lambda: draw_single_shape(name)


TEACHING_SAMPLES: dict[str, Callable[[], Image.Image]] = {
    **{f"shape_{name}": _shape_sample(name) for name in SHAPE_NAMES},
    **{f"digit_{d}": _digit_sample(d) for d in range(10)},
}

SAMPLE_KINDS: dict[str, str] = {
    "grace_hopper": "photo", "checkerboard": "pattern", "shapes": "pattern", "gradient": "pattern",
    **{f"shape_{name}": "shapes" for name in SHAPE_NAMES},
    **{f"digit_{d}": "digits" for d in range(10)},
}


def sample_kind(name: str) -> str:
    """``photo``, ``pattern``, ``shapes``, ``digits``, or ``""`` for an image that is not a built-in sample."""
    return SAMPLE_KINDS.get(name, "")


def sample_label(name: str) -> str | None:
    """The class a shape or digit sample shows (``"star"``, ``"7"``), else None."""
    kind = sample_kind(name)
    if kind in ("shapes", "digits"):
        return name.split("_", 1)[1]
    return None


# The sample a fresh choice of network starts on: one it was trained to name.
FITTING_SAMPLE = {"shapes": "shape_star", "digits": "digit_3", "imagenet": "grace_hopper"}


def fitting_sample(dataset: str, current: str) -> str:
    """The sample to show after switching to a network trained on ``dataset`` ("shapes", "digits", "imagenet"):
    ``current`` when it fits (or is a pattern, or the network's data are unknown), else one that fits."""
    kind = sample_kind(current)
    wanted = "photo" if dataset == "imagenet" else dataset
    if dataset not in FITTING_SAMPLE or kind in ("", "pattern", wanted):
        return current
    return FITTING_SAMPLE[dataset]
