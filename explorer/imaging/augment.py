"""Data augmentation preview: torchvision ``transforms.v2`` pipelines built from a plain config.

One list of steps (``pipeline_steps``) is the single source for both the live pipeline
(``build_pipeline``) and the code shown for copying (``pipeline_code``), so the two cannot drift.

Random draws are reproducible: draw ``i`` runs with ``torch.manual_seed(seed + i)``. torchvision's random
transforms use torch's *global* generator (they take no ``generator`` argument), so each draw runs inside
``torch.random.fork_rng`` (the global state is restored afterwards: other code's random streams continue
as if nothing happened) and under the process-wide generator lock ``explorer.core.seeded_global`` (two sessions, or a model build, seeding the one global generator at the same
time would otherwise mix their draws). Code in other threads that consumes the global generator *during*
a draw is the one thing a process-wide generator cannot isolate; draws are a few milliseconds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots
from torchvision.transforms import v2

from explorer.core import seeded_global

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to apply; the defaults switch everything off (the identity pipeline)."""

    hflip_p: float = 0.0  # probability of a horizontal (left-right) flip
    vflip_p: float = 0.0  # probability of a vertical (up-down) flip
    rotation_degrees: float = 0.0  # rotate by an angle drawn from [-d, d]
    translate: float = 0.0  # shift by up to this fraction of width/height (RandomAffine)
    crop: bool = False  # RandomResizedCrop to crop_size x crop_size
    crop_size: int = 224
    crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction of the crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range of the crop
    brightness: float = 0.0  # ColorJitter factors; 0 = unchanged
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0  # 0 .. 0.5
    grayscale_p: float = 0.0  # probability of RandomGrayscale (keeps 3 channels)
    blur_kernel: int = 0  # GaussianBlur kernel size (odd); 0 = off
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    erasing_p: float = 0.0  # probability of RandomErasing (a rectangle set to 0)
    erasing_scale: tuple[float, float] = (0.02, 0.33)
    normalize: bool = False  # Normalize with the ImageNet mean/std

    def __post_init__(self) -> None:
        for name in ("hflip_p", "vflip_p", "grayscale_p", "erasing_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability and must lie in 0..1, got {value}")
        if not 0.0 <= self.rotation_degrees <= 180.0:
            raise ValueError(f"rotation_degrees must lie in 0..180, got {self.rotation_degrees}")
        if not 0.0 <= self.translate <= 1.0:
            raise ValueError(f"translate is a fraction of the size and must lie in 0..1, got {self.translate}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must lie in 0..0.5, got {self.hue}")
        if self.blur_kernel and (self.blur_kernel < 0 or self.blur_kernel % 2 == 0):
            raise ValueError(f"blur_kernel must be 0 (off) or a positive odd number, got {self.blur_kernel}")
        if self.crop and self.crop_size < 1:
            raise ValueError(f"crop_size must be 1 or more, got {self.crop_size}")
        for name in ("crop_scale", "crop_ratio", "blur_sigma", "erasing_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 < low <= high, got {(low, high)}")
        if self.crop_scale[1] > 1 or self.erasing_scale[1] > 1:
            raise ValueError("crop_scale and erasing_scale are area fractions and must not exceed 1")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "AugmentConfig":
        """Build from a plain dict (e.g. widget values); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown augmentation option(s): {', '.join(unknown)}")
        clean = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pipeline_steps(config: AugmentConfig) -> list[tuple[str, dict[str, Any]]]:
    """The ordered ``(v2 class name, keyword arguments)`` of the pipeline for ``config``.

    Order follows torchvision's reference training recipe: geometry and colour on the uint8 image, then
    conversion to float 0..1, normalisation, and random erasing last (so the erased rectangle is 0 in the
    normalised tensor, i.e. the mean colour).
    """
    steps: list[tuple[str, dict[str, Any]]] = [("ToImage", {})]
    if config.crop:
        steps.append(("RandomResizedCrop", {
            "size": (config.crop_size, config.crop_size),
            "scale": tuple(config.crop_scale), "ratio": tuple(config.crop_ratio), "antialias": True,
        }))
    if config.hflip_p > 0:
        steps.append(("RandomHorizontalFlip", {"p": config.hflip_p}))
    if config.vflip_p > 0:
        steps.append(("RandomVerticalFlip", {"p": config.vflip_p}))
    if config.rotation_degrees > 0:
        steps.append(("RandomRotation", {"degrees": config.rotation_degrees, "interpolation": "bilinear"}))
    if config.translate > 0:
        steps.append(("RandomAffine", {
            "degrees": 0, "translate": (config.translate, config.translate), "interpolation": "bilinear",
        }))
    if any((config.brightness, config.contrast, config.saturation, config.hue)):
        steps.append(("ColorJitter", {
            "brightness": config.brightness, "contrast": config.contrast,
            "saturation": config.saturation, "hue": config.hue,
        }))
    if config.grayscale_p > 0:
        steps.append(("RandomGrayscale", {"p": config.grayscale_p}))
    if config.blur_kernel:
        steps.append(("GaussianBlur", {"kernel_size": config.blur_kernel, "sigma": tuple(config.blur_sigma)}))
    steps.append(("ToDtype", {"dtype": torch.float32, "scale": True}))
    if config.normalize:
        steps.append(("Normalize", {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}))
    if config.erasing_p > 0:
        steps.append(("RandomErasing", {"p": config.erasing_p, "scale": tuple(config.erasing_scale), "value": 0.0}))
    return steps


def build_pipeline(config: AugmentConfig) -> v2.Compose:
    """The live ``v2.Compose`` for ``config``: PIL RGB image in, float32 tensor ``[3, H, W]`` out."""
    return v2.Compose([getattr(v2, name)(**kwargs) for name, kwargs in pipeline_steps(config)])


def _literal(value: Any) -> str:
    if isinstance(value, torch.dtype):
        return repr(value)  # "torch.float32"
    if isinstance(value, float):
        return repr(value)  # shortest exact form: the code builds the very same pipeline
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def pipeline_code(config: AugmentConfig, seed: int | None = None, preview_size: tuple[int, int] | None = None,
                  preview_side: int | None = None, input_file: str | None = None) -> str:
    """Python source for the same pipeline, ready to paste (and to reproduce draw ``i`` with the seed).

    ``input_file``: the name of a file holding the very picture the draws start from (the app offers it as a
    download: an upload's EXIF rotation, its transparency on white and its size caps are already applied there), so
    the code opens it and draws exactly what the app drew. Without it, ``preview_size`` (width, height) says that the
    draws were made from a smaller copy of the picture (:func:`prepare_preview`) and how to make that very copy."""
    lines = ["import torch", "from torchvision.transforms import v2", "", "transform = v2.Compose(["]
    for name, kwargs in pipeline_steps(config):
        args = ", ".join(f"{k}={_literal(v)}" for k, v in kwargs.items())
        lines.append(f"    v2.{name}({args}),")
    lines.append("])")
    if seed is not None:
        if input_file is not None:
            lines += ["", "# draw i as shown in the app, from the picture it draws from (downloaded beside this code):",
                      "from PIL import Image", "",
                      f"image = Image.open({input_file!r}).convert(\"RGB\")"]
        else:
            lines += ["", "# draw i as shown in the app (image: a PIL RGB image):"]
            if preview_size is not None:
                width, height = (int(v) for v in preview_size)
                limit = f" at most {int(preview_side)} px" if preview_side else ""
                lines += [f"# the app draws from its copy{limit} on the longer side:",
                          f"# image = image.convert(\"RGB\").resize(({width}, {height}), Image.Resampling.LANCZOS)"
                          "  # from PIL import Image"]
        lines.append(f"# torch.manual_seed({int(seed)} + i); x = transform(image)")
    return "\n".join(lines) + "\n"


def prepare_preview(image: Image.Image, max_side: int = 384) -> Image.Image:
    """A copy no larger than ``max_side`` on its longer side (previews stay fast for big uploads)."""
    img = image.convert("RGB")
    scale = max_side / max(img.size)
    if scale >= 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def seeded_draw(pipeline: v2.Compose, image: Image.Image, seed: int) -> torch.Tensor:
    """One draw with ``torch.manual_seed(seed)``, leaving the global random state as it was."""
    with seeded_global(int(seed)):  # the process-wide lock: a model build seeding meanwhile would mix streams
        out = pipeline(image)
    return out


def check_picture_size(config: AugmentConfig, size: tuple[int, int]) -> None:
    """Raise ``ValueError`` when ``config`` cannot run on a picture of ``size`` (width, height).

    GaussianBlur pads by ``kernel // 2`` pixels in reflect mode, which needs more pixels than that on each
    side of the picture it blurs (the crop's size when cropping, else the picture's: the other geometry
    steps keep the size); torchvision would otherwise fail deep inside with a padding error.
    """
    if not config.blur_kernel:
        return
    width, height = (config.crop_size, config.crop_size) if config.crop else (int(size[0]), int(size[1]))
    reach = config.blur_kernel // 2
    if reach >= min(width, height):
        what = f"the {width}×{height} crop" if config.crop else f"this {width}×{height} picture"
        raise ValueError(f"a Gaussian blur kernel of {config.blur_kernel} needs a picture at least {reach + 1} "
                         f"pixels on each side, but {what} is smaller; choose a kernel of at most "
                         f"{2 * min(width, height) - 1}")


def draws(image: Image.Image, config: AugmentConfig, n: int, seed: int) -> list[torch.Tensor]:
    """``n`` augmented versions of ``image``; draw ``i`` uses seed ``seed + i`` (same seed, same draws).

    A configuration the picture is too small for raises ``ValueError`` (``check_picture_size``)."""
    if n < 1:
        raise ValueError(f"the number of draws must be 1 or more, got {n}")
    check_picture_size(config, image.size)
    pipeline = build_pipeline(config)
    return [seeded_draw(pipeline, image, seed + i) for i in range(n)]


def normalize_by_hand(x: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN,
                      std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """``(x - mean) / std`` per channel, for explaining (and checking) ``v2.Normalize``."""
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


def denormalize(x: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN,
                std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """The exact inverse of ``normalize_by_hand``: ``x * std + mean``."""
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return x * s + m


def to_display(x: torch.Tensor, normalized: bool) -> tuple[np.ndarray, float]:
    """A tensor ``[3, H, W]`` as an ``(H, W, 3)`` uint8 picture and the share of values clipped.

    A normalised tensor is not an image (values roughly -2..2.6): it is de-normalised first
    (``x * std + mean``), then values are clipped to 0..1 and scaled to 0..255.
    """
    t = denormalize(x) if normalized else x
    t = t.detach().to(torch.float64)
    clipped = float(((t < 0) | (t > 1)).double().mean())
    arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(arr), clipped


CHANNEL_NAMES = ("R", "G", "B")


def channel_stats(x: torch.Tensor) -> pd.DataFrame:
    """Per-channel min, max, mean and std of a ``[C, H, W]`` tensor (the numbers a model receives)."""
    t = x.detach().to(torch.float64).reshape(x.shape[0], -1)
    names = CHANNEL_NAMES if x.shape[0] == 3 else tuple(str(i) for i in range(x.shape[0]))
    return pd.DataFrame({
        "channel": list(names),
        "min": t.min(dim=1).values.numpy(),
        "max": t.max(dim=1).values.numpy(),
        "mean": t.mean(dim=1).numpy(),
        "std": t.std(dim=1, unbiased=False).numpy(),
    })


def tensor_figure(x: torch.Tensor, max_side: int = 160, height: int = 260) -> go.Figure:
    """The tensor's channels as heatmaps in their own units: one shared diverging scale, 0 in white."""
    t = x.detach().to(torch.float32)
    step = max(1, int(np.ceil(max(t.shape[1:]) / max_side)))  # subsample for drawing only
    t = t[:, ::step, ::step]
    m = float(t.abs().max()) or 1.0
    names = CHANNEL_NAMES if t.shape[0] == 3 else tuple(str(i) for i in range(t.shape[0]))
    fig = make_subplots(rows=1, cols=t.shape[0], subplot_titles=list(names), horizontal_spacing=0.03)
    scale = [[0.0, "rgb(33,102,172)"], [0.5, "rgb(247,247,247)"], [1.0, "rgb(178,24,43)"]]
    for c in range(t.shape[0]):
        fig.add_trace(go.Heatmap(z=t[c].numpy(), zmin=-m, zmax=m, colorscale=scale, showscale=(c == 0),
                                 hovertemplate="x=%{x} y=%{y}: %{z:.3f}<extra></extra>",
                                 colorbar={"thickness": 12}), row=1, col=c + 1)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{c + 1 if c else ''}", showticklabels=False,
                         showgrid=False, zeroline=False, row=1, col=c + 1)
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=c + 1)
    fig.update_layout(margin={"l": 0, "r": 0, "t": 30, "b": 0}, height=height)
    return fig
