"""The built-in dataset every machine has: coloured geometric shapes drawn by code, one shape per image."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from explorer.data.bundle import DataBundle, ImageTensors, channel_stats
from explorer.data.splits import train_valid_test_counts

# --- built-in synthetic shapes -----------------------------------------------------------------------------

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")
# Images in the default shapes dataset (all classes), split 7:2:1 like the course homework.
DEFAULT_SHAPES_SAMPLES = 10000


def _regular_polygon(cx: float, cy: float, radius: float, sides: int, angle: float) -> list[tuple[float, float]]:
    return [(cx + radius * math.cos(angle + 2 * math.pi * k / sides),
             cy + radius * math.sin(angle + 2 * math.pi * k / sides)) for k in range(sides)]


def _star(cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.42
        a = angle + math.pi * k / 5
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def _cross(cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    arm = radius * 0.36  # half the bar thickness
    outline = [(arm, radius), (arm, arm), (radius, arm), (radius, -arm), (arm, -arm), (arm, -radius),
               (-arm, -radius), (-arm, -arm), (-radius, -arm), (-radius, arm), (-arm, arm), (-arm, radius)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in outline]


def _luma(rgb: np.ndarray) -> float:
    # ITU-R 601, the weights PIL's convert("L") uses: 1-channel models must still see the shape.
    return float(rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114)


def render_shape(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """Draw one ``SHAPE_CLASSES[label]`` at a random place, size, angle and colour on a noisy background."""
    # Draw large and downsample so small images get anti-aliased edges (cheap at the sizes we train on).
    scale = max(1, min(4, 128 // max(size, 1)))
    big = size * scale
    background = rng.uniform(0, 255, 3)
    while True:  # a shape colour whose brightness differs clearly from the background's
        colour = rng.uniform(0, 255, 3)
        if abs(_luma(colour) - _luma(background)) >= 70:
            break
    img = Image.new("RGB", (big, big), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(img)
    radius = rng.uniform(0.22, 0.42) * big  # 44–84 % of the image across
    cx, cy = (rng.uniform(radius, big - radius) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    fill = tuple(int(v) for v in colour)
    name = SHAPE_CLASSES[label]
    if name == "circle":
        r = radius * 0.85
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif name == "square":
        draw.polygon(_regular_polygon(cx, cy, radius * 0.95, 4, angle), fill=fill)
    elif name == "triangle":
        draw.polygon(_regular_polygon(cx, cy, radius, 3, angle), fill=fill)
    elif name == "cross":
        draw.polygon(_cross(cx, cy, radius, angle), fill=fill)
    elif name == "star":
        draw.polygon(_star(cx, cy, radius, angle), fill=fill)
    else:  # pragma: no cover - SHAPE_CLASSES and this switch change together
        raise ValueError(name)
    if scale > 1:
        img = img.resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(img, dtype=np.float32)
    noise = rng.normal(0.0, 14.0, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")


def make_shapes(count: int, channels: int = 3, size: int = 64, seed: int = 0,
                num_classes: int = len(SHAPE_CLASSES)) -> ImageTensors:
    """``count`` shape images with balanced labels, identical for identical arguments."""
    if not 2 <= num_classes <= len(SHAPE_CLASSES):
        raise ValueError(f"the shapes dataset has 2 to {len(SHAPE_CLASSES)} classes")
    if channels not in (1, 3):
        raise ValueError("shapes are generated with 1 or 3 channels")
    if size < 8:
        raise ValueError("shapes need at least 8×8 pixels")
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % num_classes
    rng.shuffle(labels)
    images = np.empty((count, channels, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        img = render_shape(int(label), size, rng)
        if channels == 1:
            images[i, 0] = np.asarray(img.convert("L"))
        else:
            images[i] = np.asarray(img).transpose(2, 0, 1)
    return ImageTensors(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def load_shapes(channels: int = 3, size: int = 64, seed: int = 0, samples: int = DEFAULT_SHAPES_SAMPLES,
                ratios: Sequence[float] = (0.7, 0.2, 0.1), num_classes: int = len(SHAPE_CLASSES)) -> DataBundle:
    """The built-in dataset: ``samples`` images split by ``ratios``; each split drawn from its own seed.

    ``ValueError`` when ``ratios`` is not three shares or leaves the training split empty."""
    if samples < 0:
        raise ValueError(f"samples must be non-negative, got {samples}")
    n_train, n_valid, n_test = train_valid_test_counts(samples, ratios, "shape images")
    # Distinct streams per split: no image is shared between train, valid and test.
    parts = [make_shapes(n, channels, size, seed * 1000 + offset, num_classes)
             for offset, n in ((1, n_train), (2, n_valid), (3, n_test))]
    mean, std = channel_stats(parts[0].images)
    return DataBundle("shapes", list(SHAPE_CLASSES[:num_classes]), *parts, mean=mean, std=std, flip_ok=True)


