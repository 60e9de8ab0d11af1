"""Decoding images safely and the built-in sample images."""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from explorer.imaging.teaching_samples import TEACHING_SAMPLES

# Far below Pillow's default (~89 M pixels warns, ~179 M errors): a 1-bit PNG of 18 kB can be 432 MB as RGB.
MAX_PIXELS = 40_000_000
# Longest side we keep after decoding: models see a few hundred pixels, and a 10000×1 strip resized
# by its short side would explode.
MAX_SIDE = 2048
MAX_ASPECT = 20.0
MAX_BYTES = 50 * 1024 * 1024
# The only decoders ever used: Pillow would otherwise try every plugin it has, and on a server with
# Ghostscript an EPS renamed ``.png`` would be rendered by it. MPO is what phone cameras write as JPEG.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "BMP", "GIF", "WEBP", "TIFF")
# Rows converted at a time from 16-bit / float images (bounded float32 scratch memory, never float64).
_ROWS_PER_CHUNK_PIXELS = 1 << 20


class ImageLoadError(ValueError):
    """An image that cannot be used, with a message for people."""


def load_image(source: bytes | str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``source`` into an 8-bit RGB PIL image.

    EXIF orientation is applied; 16-bit and float images are scaled by their real range; alpha is
    composited on white; only the first frame of animations is kept (``image.info['explorer_note']`` says so);
    very large or extreme images are refused or bounded.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"{path} is a folder, not an image file" if path.is_dir()
                                 else f"no such image file: {path}")
        if path.stat().st_size > MAX_BYTES:
            raise ImageLoadError(f"the file is larger than {MAX_BYTES // 2**20} MB")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise ImageLoadError("the file is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageLoadError(f"the file is larger than {MAX_BYTES // 2**20} MB")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # MPO has no opener of its own: the JPEG plugin opens it (and reports MPO).
            img = Image.open(io.BytesIO(data), formats=[f for f in ALLOWED_FORMATS if f != "MPO"])
            if img.format not in ALLOWED_FORMATS:  # defence in depth: checked before any pixel is decoded
                raise ImageLoadError(f"images in {img.format} format are not read (PNG, JPEG, BMP, GIF, WebP, TIFF)")
            w, h = img.size
            if w * h > max_pixels:
                raise ImageLoadError(f"the image is too large ({w}×{h} = {w * h / 1e6:.0f} M pixels; "
                                     f"the limit is {max_pixels / 1e6:.0f} M)")
            if w < 1 or h < 1:
                raise ImageLoadError("the image has no pixels")
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                img.seek(0)
                if img.format != "MPO":  # a phone photo's second MPO image is a gain map or preview: not a frame
                    notes.append(f"only the first of {frames} frames is used")
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img, notes)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError("the image is a decompression bomb (far more pixels than its file size suggests)") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError("the file is not an image this app can read (PNG, JPEG, BMP, WebP, TIFF, GIF)") from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders also fail with struct.error, TypeError... on crafted files
        raise ImageLoadError(f"the image is corrupt or truncated ({type(exc).__name__}: {exc})") from exc
    rgb = _bound_size(rgb, notes)
    if notes:
        rgb.info["explorer_note"] = "; ".join(notes)
    return rgb


def _to_rgb(img: Image.Image, notes: list[str] | None = None) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # A plain convert('RGB') saturates these: scale by the real range first. In bands of rows and in
        # float32: a float64 copy of a 6300² 16-bit image (and its temporaries) once took 1.6 GB.
        return Image.fromarray(_scaled_to_uint8(img, notes), "L").convert("RGB")
    # Alpha, or a PNG colour key (tRNS: one transparent value in P, L or RGB): composited on white.
    if mode in ("RGBA", "LA", "PA") or (mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _row_bands(img: Image.Image):
    w, h = img.size
    step = max(1, _ROWS_PER_CHUNK_PIXELS // max(w, 1))
    for top in range(0, h, step):
        yield top, np.asarray(img.crop((0, top, w, min(h, top + step))), dtype=np.float32)


def _nominal_top(mode: str, value: float) -> float:
    """The white of a 16-bit, 32-bit or float grey image holding ``value``: 65535 for 16-bit, else the smallest of
    1 (floats in [0, 1]), 255 and 65535 that holds it."""
    if mode.startswith("I;16"):
        return 65535.0
    for top in ((1.0,) if mode == "F" else ()) + (255.0, 65535.0):
        if value <= top:
            return top
    return max(value, 1.0)


def _scaled_to_uint8(img: Image.Image, notes: list[str] | None = None) -> np.ndarray:
    """A 16-bit, 32-bit or float grey image as uint8, scaled by its finite range (NaN as the minimum): 12-bit data in
    a 16-bit file would otherwise be nearly black. The stretch is said in ``notes`` (the picture is brighter or more
    contrasted than a viewer that shows the values on their nominal scale)."""
    lo, hi = np.inf, -np.inf
    for _top, band in _row_bands(img):
        finite = band[np.isfinite(band)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    out = np.zeros((img.height, img.width), dtype=np.uint8)
    if hi <= lo:  # one level everywhere: no range to stretch, so its place on the format's own scale
        out[:] = round(255 * min(max(lo, 0.0) / _nominal_top(img.mode, lo), 1.0))
        return out
    if notes is not None:
        nominal = _nominal_top(img.mode, hi)
        if lo > 0 or hi < nominal:
            bits = "16-bit" if img.mode.startswith("I;16") else "32-bit" if img.mode == "I" else "floating-point"
            notes.append(f"{bits} grey values {lo:g}–{hi:g} stretched to the full 0–255 range "
                         f"(on their own 0–{nominal:g} scale the picture has less contrast)")
    scale = 255.0 / (hi - lo)
    for top, band in _row_bands(img):
        band = np.nan_to_num(band, nan=lo, posinf=hi, neginf=lo)
        out[top:top + band.shape[0]] = np.clip((band - lo) * scale, 0, 255).round().astype(np.uint8)
    return out


def _bound_size(img: Image.Image, notes: list[str]) -> Image.Image:
    w, h = img.size
    aspect = max(w, h) / min(w, h)
    if aspect > MAX_ASPECT:
        raise ImageLoadError(f"the image is {w}×{h}: an aspect ratio over {MAX_ASPECT:.0f}:1 cannot be shown "
                             "to a CNN meaningfully; crop it first")
    if max(w, h) > MAX_SIDE:
        scale = MAX_SIDE / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
        notes.append(f"downscaled from {w}×{h} to {img.width}×{img.height}")
    return img


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """RGB for 3-channel models, luminance for 1-channel ones."""
    if channels == 1:
        return img.convert("L")
    if channels == 3:
        return img.convert("RGB")
    raise ValueError(f"models with {channels} input channels are not supported")


def channel_planes(img: Image.Image, channels: int, size: tuple[int, int]) -> np.ndarray:
    """``img`` resized to ``size`` (W, H) as uint8 planes ``(channels, H, W)``.

    One channel is the luminance, three are R, G, B. A network built with another count (the Build page
    allows 1–16 input channels) gets R, G, B repeated in turn: a photo has no fourth channel, and refusing it
    crashed the Home and Receptive-field pages."""
    base = to_channels(img, channels if channels in (1, 3) else 3).resize(size, Image.Resampling.BILINEAR)
    arr = np.asarray(base)
    planes = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if channels not in (1, 3):
        planes = planes[[i % 3 for i in range(channels)]]
    return np.ascontiguousarray(planes)


class InputTransform:
    """An image → model-input function together with the per-channel normalisation it applies (``mean``/``std``;
    None: the values stay in [0, 1]), so a picture of the input can undo it exactly
    (:func:`explorer.imaging.input_picture`) instead of guessing it from the values."""

    __slots__ = ("fn", "mean", "std")

    def __init__(self, fn: Callable[[Image.Image], "torch.Tensor"], mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None) -> None:
        self.fn = fn
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None

    def __call__(self, img: Image.Image) -> "torch.Tensor":
        return self.fn(img)


def basic_transform(input_shape: tuple[int, int, int], mean: tuple[float, ...] | None = None,
                    std: tuple[float, ...] | None = None) -> InputTransform:
    """Resize to the model's input (H, W), convert channels, scale to [0, 1] and optionally normalise."""
    import torch

    c, h, w = input_shape

    def transform(img: Image.Image) -> torch.Tensor:
        arr = channel_planes(img, c, (w, h)).astype(np.float32) / 255.0
        tensor = torch.from_numpy(arr)
        if mean is not None and std is not None:
            tensor = (tensor - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
        return tensor

    normalised = mean is not None and std is not None
    return InputTransform(transform, mean if normalised else None, std if normalised else None)


def image_to_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def preview_picture(img: Image.Image, max_side: int = 640) -> tuple[bytes, str]:
    """``img`` shrunk to at most ``max_side`` pixels on its long side (aspect kept), encoded once for the screen:
    ``(bytes, "JPEG")`` for opaque pictures, ``(bytes, "PNG")`` for those with transparency or a palette.

    The sidebar shows the chosen image on every page; handed a PIL image, ``st.image`` encodes it again on every
    rerun (~2 ms for the 512×600 sample, more for a large upload that it must also shrink)."""
    shown = img.copy()
    shown.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if shown.mode in ("RGBA", "LA", "P", "PA"):
        shown.save(buf, format="PNG")
        return buf.getvalue(), "PNG"
    if shown.mode not in ("RGB", "L"):
        shown = shown.convert("RGB")
    shown.save(buf, format="JPEG", quality=92)
    return buf.getvalue(), "JPEG"


# --- built-in samples (no upload, no network) -------------------------------------------------

def _grace_hopper() -> Image.Image:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return load_image(fh.read())


def _checkerboard(size: int = 256, cells: int = 8) -> Image.Image:
    idx = (np.arange(size) * cells // size)
    board = ((idx[:, None] + idx[None, :]) % 2 * 255).astype(np.uint8)
    return Image.fromarray(board, "L").convert("RGB")


def _shapes(size: int = 256) -> Image.Image:
    img = Image.new("RGB", (size, size), (235, 235, 235))
    draw = ImageDraw.Draw(img)
    s = size / 256
    draw.ellipse([20 * s, 20 * s, 110 * s, 110 * s], fill=(220, 40, 40))
    draw.rectangle([140 * s, 30 * s, 230 * s, 120 * s], fill=(40, 90, 220))
    draw.polygon([(60 * s, 230 * s), (120 * s, 140 * s), (180 * s, 230 * s)], fill=(40, 170, 60))
    draw.line([(150 * s, 150 * s), (240 * s, 240 * s)], fill=(30, 30, 30), width=max(1, int(8 * s)))
    return img


def _gradient(size: int = 256) -> Image.Image:
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    r = np.tile(ramp, (size, 1))
    g = r.T
    b = np.full((size, size), 128.0)
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8), "RGB")


SAMPLES: dict[str, Callable[[], Image.Image]] = {
    "grace_hopper": _grace_hopper,
    "checkerboard": _checkerboard,
    "shapes": _shapes,
    "gradient": _gradient,
    **TEACHING_SAMPLES,  # single shapes and real digits: what the built-in trained networks know
}


def sample_image(name: str) -> Image.Image:
    if name not in SAMPLES:
        raise ImageLoadError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLES)}")
    return SAMPLES[name]()
