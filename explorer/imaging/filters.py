"""Hand-made convolution filters: what one filter does to an image before a CNN learns its own.

Correlation or convolution? Both slide a kernel over the image and sum element-wise products; they differ
only in whether the kernel is flipped first:

- ``correlate`` does **not** flip: ``out[i, j] = sum_uv K[u, v] * X[i*S + u, j*S + v]`` (padded X).
  This is what ``cv2.filter2D``, ``torch.nn.functional.conv2d`` and every CNN "convolution" layer compute.
- ``convolve`` is the **true** (mathematical) convolution ``m * f`` of the course notes: the kernel is
  flipped in both axes (rotated 180 degrees) and then correlated. For a symmetric kernel (box, Gaussian,
  Laplacian) the two agree; for an asymmetric one (Sobel, emboss) the result differs (Sobel: sign flips).

The presets in ``KERNELS`` are written the way they are *applied by correlation* (as OpenCV and PyTorch
apply weights), so ``correlate(gray, KERNELS["sobel_x"], "reflect")`` equals ``cv2.Sobel(gray, CV_64F, 1, 0)``.
Image rows grow downwards, so ``sobel_y`` responds positively where the image gets brighter going *down*.

Padding modes (P = (F-1)/2 on each side, "same" size at stride 1, unless ``pad`` is given):

==========  =========================  ======================  ==========================  ==========
mode        what the border holds      numpy ``np.pad`` mode   OpenCV border               PyTorch
==========  =========================  ======================  ==========================  ==========
zero        0                          ``constant``            ``BORDER_CONSTANT`` (0)     ``zeros``
reflect     mirror, edge *not* repeated ``reflect``   (dcb|abcd) ``BORDER_REFLECT_101``    ``reflect``
replicate   the edge pixel repeated    ``edge``                ``BORDER_REPLICATE``        ``replicate``
none        no padding (P = 0, "valid")
==========  =========================  ======================  ==========================  ==========

numpy's ``symmetric`` (cba|abcd, edge repeated) is OpenCV's ``BORDER_REFLECT``; it is *not* used here.
``BORDER_REFLECT_101`` is also OpenCV's default border (``cv2.Sobel``, ``cv2.filter2D``).

Stride S keeps every S-th position of the stride-1 result starting at the first one, which is exactly
where a strided convolution places its windows; the output size is ``floor((N - F + 2P) / S) + 1``.

Images are float64 arrays, grey ``(H, W)`` or per-channel ``(H, W, C)``, values 0-255 as loaded.
Turning results into pictures (display mappings, figures, PNG/.npy bytes) is ``explorer.imaging.filter_display``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

PADDING_MODES: tuple[str, ...] = ("zero", "reflect", "replicate", "none")
OPERATIONS: tuple[str, ...] = ("correlate", "convolve")

_CV2_BORDER = {
    "zero": cv2.BORDER_CONSTANT,
    "reflect": cv2.BORDER_REFLECT_101,
    "replicate": cv2.BORDER_REPLICATE,
}

# ITU-R BT.601 luma, the weights of cv2.COLOR_RGB2GRAY and Pillow's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114])

# Bounds on what a user may type (the CLI and the Filters page): "1e999999999/1" once made Fraction build a
# billion-digit integer (a hang), a 20001-wide Gaussian took 3 GB, and 1e308 weights overflowed the result.
MAX_KERNEL_SIDE = 101
MAX_KERNEL_VALUE = 1e6
MAX_NUMBER_CHARS = 40
MAX_EXPONENT = 300
MAX_KERNEL_TEXT = 20_000


# --------------------------------------------------------------------------------------------- kernels
def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """A ``size`` x ``size`` Gaussian blur kernel with standard deviation ``sigma`` (pixels), summing to 1."""
    size = int(size)
    if size < 1 or size % 2 == 0 or size > MAX_KERNEL_SIDE:
        raise ValueError(f"Gaussian kernel size must be an odd number from 1 to {MAX_KERNEL_SIDE}, got {size}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"Gaussian sigma must be a positive number, got {sigma}")
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def box_kernel(size: int = 3) -> np.ndarray:
    """A ``size`` x ``size`` mean (box blur) kernel, every weight 1/size^2."""
    size = int(size)
    if size < 1 or size % 2 == 0 or size > MAX_KERNEL_SIDE:
        raise ValueError(f"box kernel size must be an odd number from 1 to {MAX_KERNEL_SIDE}, got {size}")
    return np.full((size, size), 1.0 / (size * size))


def _frozen(rows: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    arr = np.array(rows, dtype=np.float64)
    arr.setflags(write=False)  # presets are shared by every session: nobody may edit them in place
    return arr


KERNELS: dict[str, np.ndarray] = {
    "identity": _frozen([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    "sobel_x": _frozen([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel_y": _frozen([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    # The course notes' Sobel y as they print it (+1 +2 +1 on top). Their Sobel x is written for correlation (as
    # cv2.Sobel applies it), this y for true convolution (or for a y axis pointing up): the notes mix the two
    # conventions. Applied by correlation it is exactly −sobel_y, i.e. −cv2.Sobel(gray, CV_64F, 0, 1).
    "sobel_y_notes": _frozen([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
    "scharr_x": _frozen([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]),
    "scharr_y": _frozen([[-3, -10, -3], [0, 0, 0], [3, 10, 3]]),
    "prewitt_x": _frozen([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]),
    "prewitt_y": _frozen([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]),
    "laplacian": _frozen([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "gaussian": _frozen(gaussian_kernel(5, 1.0)),
    "box_blur": _frozen(box_kernel(3)),
    "sharpen": _frozen([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "emboss": _frozen([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    "outline": _frozen([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
}

# Filters that are not one kernel: they combine the two Sobel responses non-linearly.
COMPOSITE_FILTERS: tuple[str, ...] = ("sobel_magnitude", "sobel_direction")
FILTER_NAMES: tuple[str, ...] = tuple(KERNELS) + COMPOSITE_FILTERS

# The course notes' worked example: a 5x5 binary image and a 3x3 "X" kernel, valid convolution -> 3x3.
EXAMPLE_PATCH = _frozen(
    [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
)
EXAMPLE_KERNEL = _frozen([[1, 0, 1], [0, 1, 0], [1, 0, 1]])


def flip_kernel(kernel: np.ndarray) -> np.ndarray:
    """The kernel rotated by 180 degrees (flipped up-down and left-right): what true convolution uses."""
    return np.ascontiguousarray(np.asarray(kernel, dtype=np.float64)[::-1, ::-1])


def normalise_kernel(kernel: np.ndarray) -> np.ndarray:
    """Scale the kernel so its weights sum to 1 (a blur keeps the brightness). Refuses a zero sum."""
    k = as_kernel(kernel)
    total = float(k.sum())
    if abs(total) < 1e-12:
        raise ValueError(
            "the kernel's weights sum to 0 (an edge detector), so it cannot be normalised to sum 1"
        )
    return k / total


# ------------------------------------------------------------------------------------------ validation
def as_kernel(kernel: object) -> np.ndarray:
    """Check and convert a kernel to a 2-D float64 array; raise ``ValueError`` with a clear message."""
    if isinstance(kernel, np.ndarray):
        arr = kernel
    else:
        try:
            arr = np.array(kernel)
        except ValueError as exc:  # numpy refuses ragged nested lists ("inhomogeneous shape")
            raise ValueError("the kernel is ragged: every row must have the same number of values") from exc
    if arr.dtype == object:
        raise ValueError("the kernel is ragged or holds values that are not numbers")
    if arr.size == 0:
        raise ValueError("the kernel is empty: give at least one number")
    if arr.ndim != 2:
        raise ValueError(f"the kernel must be a 2-D grid of numbers, got {arr.ndim} dimension(s)")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError("the kernel holds values that are not numbers")
    if np.iscomplexobj(arr):  # a cast to float would silently keep only the real parts
        raise ValueError("the kernel holds complex numbers: a filter kernel is real")
    if max(arr.shape) > MAX_KERNEL_SIDE:
        raise ValueError(f"the kernel is {arr.shape[0]}x{arr.shape[1]}; at most {MAX_KERNEL_SIDE} per side")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("the kernel holds a value that is not finite (NaN or infinity)")
    if np.abs(arr).max() > MAX_KERNEL_VALUE:
        raise ValueError(f"kernel values must lie between -{MAX_KERNEL_VALUE:g} and {MAX_KERNEL_VALUE:g} "
                         f"(got {arr.flat[np.abs(arr).argmax()]:g}): larger weights overflow the result")
    return arr


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class _FractionExponent(Exception):
    """A fraction's part has an exponent below -MAX_EXPONENT (Fraction would build a huge integer)."""


def _bounded_number(text: str, in_fraction: bool = False) -> bool:
    """A decimal number short enough, with an exponent small enough, to convert without huge integers.

    A large positive exponent is refused as too large. A large negative one is a tiny number, which
    ``float`` parses cheaply ("1e-400" is 0.0); only inside a fraction is it refused, since ``Fraction``
    builds 10**|exponent|."""
    match = _NUMBER.match(text)
    if not match:
        return False
    exponent = int(match.group(3)[1:]) if match.group(3) else 0
    if exponent > MAX_EXPONENT:
        raise OverflowError
    if exponent < -MAX_EXPONENT and in_fraction:
        raise _FractionExponent
    return True


def _parse_number(token: str, row: int, col: int) -> float:
    text = token.strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"{text[:20]!r}… (row {row}, value {col}) is longer than {MAX_NUMBER_CHARS} characters")
    try:
        if "/" in text:  # "1/16" is handy for blur kernels
            num, den = text.split("/", 1)
            if not (_bounded_number(num.strip(), True) and _bounded_number(den.strip(), True)):
                raise ValueError
            value = float(Fraction(num.strip()) / Fraction(den.strip()))
        elif text.lower() in ("nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
            value = float(text)
        elif _bounded_number(text):
            value = float(text)
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} (row {row}, value {col}) is not a number") from None
    except _FractionExponent:
        raise ValueError(f"{text!r} (row {row}, value {col}): an exponent below -{MAX_EXPONENT} is not "
                         "accepted inside a fraction; write the value as a decimal") from None
    except OverflowError:
        raise ValueError(f"{text!r} (row {row}, value {col}) is too large: kernel values must lie between "
                         f"-{MAX_KERNEL_VALUE:g} and {MAX_KERNEL_VALUE:g}") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} (row {row}, value {col}) is not a finite number")
    if abs(value) > MAX_KERNEL_VALUE:
        raise ValueError(f"{text!r} (row {row}, value {col}) is too large: kernel values must lie between "
                         f"-{MAX_KERNEL_VALUE:g} and {MAX_KERNEL_VALUE:g}")
    return value


def parse_kernel(text: str) -> np.ndarray:
    """Parse ``"a,b,c;d,e,f;g,h,i"`` (rows split by ``;`` or new lines, values by ``,`` or spaces).

    Fractions such as ``1/16`` are accepted. Raises ``ValueError`` for empty, ragged, non-numeric or
    non-finite input. The kernel may be any rectangle; ``correlate`` decides whether it needs a centre.
    """
    if text is None or not str(text).strip():
        raise ValueError("the kernel is empty: write rows like '1,0,-1; 2,0,-2; 1,0,-1'")
    if len(str(text)) > MAX_KERNEL_TEXT:
        raise ValueError(f"the kernel text is {len(str(text)):,} characters long; at most {MAX_KERNEL_TEXT:,}")
    lines = [line.strip() for line in re.split(r"[;\n]", str(text))]
    lines = [line for line in lines if line]
    rows: list[list[float]] = []
    for r, line in enumerate(lines, start=1):
        tokens = [tok for tok in re.split(r"[,\s]+", line) if tok]
        if tokens:  # a line of separators only (",,,") holds no row, like a blank line
            rows.append([_parse_number(tok, r, c) for c, tok in enumerate(tokens, start=1)])
    if not rows:
        raise ValueError("the kernel is empty: write rows like '1,0,-1; 2,0,-2; 1,0,-1'")
    widths = {len(row) for row in rows}
    if len(rows) > MAX_KERNEL_SIDE or max(widths) > MAX_KERNEL_SIDE:
        raise ValueError(f"the kernel has {len(rows)} rows of up to {max(widths)} values; at most "
                         f"{MAX_KERNEL_SIDE} per side")
    if len(widths) > 1:
        detail = ", ".join(f"row {i} has {len(row)}" for i, row in enumerate(rows, start=1))
        raise ValueError(f"the kernel is ragged: every row needs the same number of values ({detail})")
    return np.array(rows, dtype=np.float64)


def format_kernel(kernel: np.ndarray) -> str:
    """The inverse of ``parse_kernel``: ``"a,b,c;d,e,f;g,h,i"`` with compact numbers."""
    k = as_kernel(kernel)
    return ";".join(",".join(f"{v:.6g}" for v in row) for row in k)


def as_image(image: object) -> np.ndarray:
    """Check an image array (grey ``(H, W)`` or ``(H, W, C)``) and return it as float64."""
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"the image must be a non-empty (H, W) or (H, W, C) array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError("the image must hold numbers")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError("the image holds values that are not finite (NaN or infinity)")
    return arr


# Channel counts an image array may have: grey, RGB, RGBA (grey ignores the alpha, per-channel keeps it).
IMAGE_CHANNELS: tuple[int, ...] = (1, 3, 4)


def to_array(image: Image.Image | np.ndarray, grayscale: bool = True) -> np.ndarray:
    """A PIL image (or uint8 array) as float64 values 0-255: grey (BT.601 luma, unrounded) or RGB.

    An array must have 1, 3 or 4 channels (``IMAGE_CHANNELS``); others raise ``ValueError``."""
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB"), dtype=np.float64)
    else:
        arr = as_image(image)
    if arr.ndim == 3 and arr.shape[2] not in IMAGE_CHANNELS:
        raise ValueError(f"the image has {arr.shape[2]} channels; use 1 (grey), 3 (RGB) or 4 (RGBA)")
    if grayscale and arr.ndim == 3:
        if arr.shape[2] == 1:
            return arr[..., 0].copy()
        arr = arr[..., :3] @ _LUMA
    return arr


# ------------------------------------------------------------------------------------- output size
def padding_amount(kernel_shape: tuple[int, int], padding: str, pad: int | None = None) -> tuple[int, int]:
    """Rows and columns added on *each* side: ``pad`` if given, 0 for ``"none"``, else (F-1)//2."""
    _check_padding(padding)
    if padding == "none":
        return (0, 0)
    if pad is not None:
        if int(pad) < 0:
            raise ValueError(f"padding size must be 0 or more, got {pad}")
        return (int(pad), int(pad))
    return ((kernel_shape[0] - 1) // 2, (kernel_shape[1] - 1) // 2)


def output_size(n: int, f: int, p: int, s: int) -> int:
    """``floor((N - F + 2P) / S) + 1``: the output length of a convolution along one axis."""
    if s < 1:
        raise ValueError(f"stride must be 1 or more, got {s}")
    if p < 0:
        raise ValueError(f"padding must be 0 or more, got {p}")
    span = n - f + 2 * p
    if span < 0:
        raise ValueError(f"the kernel ({f}) is larger than the padded input ({n} + 2*{p} = {n + 2 * p})")
    return span // s + 1


@dataclass(frozen=True)
class OutputSizeExplained:
    """The numbers of ``(N - F + 2P) / S + 1`` for one axis, and whether the stride divides evenly."""

    n: int
    f: int
    p: int
    s: int
    numerator: int  # N - F + 2P
    exact: float  # (N - F + 2P) / S + 1 before rounding down
    size: int  # what every framework produces: floor(...) + 1
    divides_evenly: bool  # False: the last (N - F + 2P) mod S rows/columns are never covered by a window


def explain_output_size(n: int, f: int, p: int, s: int) -> OutputSizeExplained:
    size = output_size(n, f, p, s)
    numerator = n - f + 2 * p
    return OutputSizeExplained(n, f, p, s, numerator, numerator / s + 1, size, numerator % s == 0)


def output_shape(
    image_shape: tuple[int, ...], kernel_shape: tuple[int, int], padding: str = "zero", stride: int = 1,
    pad: int | None = None,
) -> tuple[int, int]:
    """(rows, columns) of ``correlate``'s result for these inputs."""
    ph, pw = padding_amount(kernel_shape, padding, pad)
    return (
        output_size(image_shape[0], kernel_shape[0], ph, stride),
        output_size(image_shape[1], kernel_shape[1], pw, stride),
    )


def _check_padding(padding: str) -> None:
    if padding not in PADDING_MODES:
        raise ValueError(f"unknown padding {padding!r}: use one of {', '.join(PADDING_MODES)}")


def validate_kernel(
    kernel: object, image_shape: tuple[int, ...] | None = None, padding: str = "zero", pad: int | None = None
) -> np.ndarray:
    """``as_kernel`` plus the checks that depend on how it is used.

    A kernel needs a centre (odd size) when the padding keeps the size ("same" padding: P = (F-1)/2);
    with ``padding="none"`` or an explicit ``pad`` any size works, as in ``torch.nn.functional.conv2d``.
    A kernel larger than the *padded* image is refused (no window fits); a picture smaller than the kernel is
    fine when its padding makes it large enough, as in ``torch.nn.functional.conv2d(padding=...)`` and
    ``cv2.filter2D`` (``correlate`` adds reflect's own limit: P smaller than the image).
    """
    k = as_kernel(kernel)
    _check_padding(padding)
    if padding != "none" and pad is None and (k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0):
        raise ValueError(
            f"the kernel is {k.shape[0]}x{k.shape[1]}: with {padding!r} padding it needs a centre pixel, "
            "so both sides must be odd (3x3, 5x5, 7x7...); use padding 'none' for even sizes"
        )
    if image_shape is not None:
        ph, pw = padding_amount(k.shape, padding, pad)
        rows, cols = image_shape[0] + 2 * ph, image_shape[1] + 2 * pw
        if k.shape[0] > rows or k.shape[1] > cols:
            padded = f" padded by {ph}x{pw} on each side ({rows}x{cols})" if ph or pw else ""
            raise ValueError(
                f"the kernel ({k.shape[0]}x{k.shape[1]}) is larger than the image "
                f"({image_shape[0]}x{image_shape[1]}){padded}: no window fits"
            )
    return k


# ----------------------------------------------------------------------------------------- compute
def _correlate_2d(x: np.ndarray, k: np.ndarray, padding: str, ph: int, pw: int, stride: int) -> np.ndarray:
    if padding != "none" and (ph or pw):
        x = cv2.copyMakeBorder(x, ph, ph, pw, pw, _CV2_BORDER[padding], value=0)
    # filter2D is correlation anchored at the kernel centre (F//2). Output pixel a (a = F//2) is the first
    # window lying fully inside the padded image, so the "valid" part starts there; the border mode
    # filter2D itself would use never reaches the part we keep.
    full = cv2.filter2D(x, cv2.CV_64F, k, anchor=(-1, -1), delta=0, borderType=cv2.BORDER_CONSTANT)
    ah, aw = k.shape[0] // 2, k.shape[1] // 2
    rows, cols = x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1
    valid = full[ah : ah + rows, aw : aw + cols]
    return np.ascontiguousarray(valid[::stride, ::stride])


def correlate(
    image: np.ndarray, kernel: np.ndarray, padding: str = "zero", stride: int = 1, *, pad: int | None = None
) -> np.ndarray:
    """Slide ``kernel`` over ``image`` **without flipping it** (cv2.filter2D, torch conv2d, CNN layers).

    ``padding``: "zero", "reflect" (numpy ``reflect`` = cv2 ``BORDER_REFLECT_101``), "replicate" or "none".
    ``pad`` overrides how many pixels are added on each side (default (F-1)//2, i.e. "same" at stride 1);
    it may be at most ``max(kernel side) - 1`` ("full" padding: the outermost window still overlaps the
    image; more only adds output that sees padding alone, and an unbounded ``pad`` made a 5x5 image
    allocate gigabytes). A ``(H, W, C)`` image is filtered channel by channel with the same kernel.
    Returns float64 of shape ``output_shape(...)`` (plus the channel axis).
    """
    x = as_image(image)
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a whole number of 1 or more, got {stride}")
    stride = int(stride)
    k = validate_kernel(kernel, x.shape[:2], padding, pad)
    ph, pw = padding_amount(k.shape, padding, pad)
    if padding == "reflect" and (ph >= x.shape[0] or pw >= x.shape[1]):
        raise ValueError(f"reflect padding of {max(ph, pw)} needs an image larger than that on each side, "
                         f"got {x.shape[0]}x{x.shape[1]}")
    largest = max(k.shape) - 1
    if padding != "none" and max(ph, pw) > largest:
        raise ValueError(f"padding size {max(ph, pw)} is more than a {k.shape[0]}x{k.shape[1]} kernel can use: "
                         f"at most {largest} (kernel side - 1, 'full' padding)")
    if x.ndim == 2:
        return _correlate_2d(np.ascontiguousarray(x), k, padding, ph, pw, stride)
    channels = [_correlate_2d(np.ascontiguousarray(x[..., c]), k, padding, ph, pw, stride) for c in range(x.shape[2])]
    return np.stack(channels, axis=-1)


def convolve(
    image: np.ndarray, kernel: np.ndarray, padding: str = "zero", stride: int = 1, *, pad: int | None = None
) -> np.ndarray:
    """**True** convolution: the kernel is flipped in both axes, then correlated (see ``correlate``)."""
    return correlate(image, flip_kernel(as_kernel(kernel)), padding, stride, pad=pad)


def apply(
    image: np.ndarray, kernel: np.ndarray, padding: str = "zero", stride: int = 1, operation: str = "correlate",
    *, pad: int | None = None,
) -> np.ndarray:
    """``correlate`` or ``convolve`` picked by name (``operation`` in ``OPERATIONS``)."""
    if operation == "correlate":
        return correlate(image, kernel, padding, stride, pad=pad)
    if operation == "convolve":
        return convolve(image, kernel, padding, stride, pad=pad)
    raise ValueError(f"unknown operation {operation!r}: use 'correlate' or 'convolve'")


def sobel(gray: np.ndarray, padding: str = "reflect", stride: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sobel gradients ``(gx, gy, magnitude)`` of a grey image; magnitude = sqrt(gx^2 + gy^2).

    With the default "reflect" padding (OpenCV's default border) gx and gy equal
    ``cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3)`` and ``(..., 0, 1, ksize=3)``.
    """
    g = as_image(gray)
    if g.ndim != 2:
        raise ValueError(f"sobel needs a grey (H, W) image, got shape {g.shape}")
    gx = correlate(g, KERNELS["sobel_x"], padding, stride)
    gy = correlate(g, KERNELS["sobel_y"], padding, stride)
    return gx, gy, np.hypot(gx, gy)


def gradient_direction(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Edge-gradient direction in degrees, -180..180: 0 = brighter to the right, 90 = brighter downwards,
    for gx, gy computed by correlation with ``sobel_x``, ``sobel_y`` (as cv2.Sobel).

    By true convolution (flipped kernels) gx and gy change sign and every direction turns by 180°:
    0 = brighter to the left, 90 = brighter upwards. Where both gradients are 0 (flat areas) the direction
    is undefined and reported as 0.
    """
    return np.degrees(np.arctan2(gy, gx))


def kernel_for(name: str, *, gaussian_size: int = 5, gaussian_sigma: float = 1.0, box_size: int = 3) -> np.ndarray:
    """The (writable) kernel of a preset; the Gaussian and box sizes can be chosen."""
    if name == "gaussian":
        return gaussian_kernel(gaussian_size, gaussian_sigma)
    if name == "box_blur":
        return box_kernel(box_size)
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}: use one of {', '.join(KERNELS)}")
    return KERNELS[name].copy()


def apply_filter(
    image: np.ndarray, name: str, padding: str = "zero", stride: int = 1, operation: str = "correlate", **kernel_args
) -> np.ndarray:
    """Apply a preset by name, including ``sobel_magnitude`` and ``sobel_direction`` (degrees; with
    ``operation="convolve"`` both Sobel kernels are flipped, so 0° = brighter to the left, see
    ``gradient_direction``).

    Per-channel images are handled channel by channel for every filter.
    """
    if name not in COMPOSITE_FILTERS:
        return apply(image, kernel_for(name, **kernel_args), padding, stride, operation)
    x = as_image(image)
    planes = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
    results = []
    for plane in planes:
        gx = apply(plane, KERNELS["sobel_x"], padding, stride, operation)
        gy = apply(plane, KERNELS["sobel_y"], padding, stride, operation)
        results.append(np.hypot(gx, gy) if name == "sobel_magnitude" else gradient_direction(gx, gy))
    return results[0] if x.ndim == 2 else np.stack(results, axis=-1)


# ------------------------------------------------------------------------------- convolution by hand
@dataclass(frozen=True)
class HandStep:
    """One output position of a small convolution, worked out by hand."""

    padded: np.ndarray  # the input after padding (== the patch for padding "none")
    kernel_used: np.ndarray  # the kernel as multiplied (flipped for true convolution)
    position: tuple[int, int]  # (row, column) in the output grid
    top_left: tuple[int, int]  # where the window starts in ``padded``
    window: np.ndarray  # the input values under the kernel
    products: np.ndarray  # window * kernel_used, element by element
    total: float  # products.sum() == output[position]
    output: np.ndarray  # the whole output grid
    pad: tuple[int, int]


def convolution_by_hand(
    patch: np.ndarray, kernel: np.ndarray, position: tuple[int, int], padding: str = "none", stride: int = 1,
    operation: str = "correlate",
) -> HandStep:
    """Show the arithmetic behind one output value: window, kernel, products and their sum.

    ``position`` is (row, column) in the output grid, row-major; the default "none" padding is the course
    notes' example (a 5x5 input and 3x3 kernel give a 3x3 output).
    """
    x = as_image(patch)
    if x.ndim != 2:
        raise ValueError(f"convolution by hand needs a grey (H, W) patch, got shape {x.shape}")
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}: use 'correlate' or 'convolve'")
    k = validate_kernel(kernel, x.shape, padding)
    used = flip_kernel(k) if operation == "convolve" else k
    output = apply(x, k, padding, stride, operation)
    r, c = int(position[0]), int(position[1])
    if not (0 <= r < output.shape[0] and 0 <= c < output.shape[1]):
        raise ValueError(f"position {(r, c)} is outside the {output.shape[0]}x{output.shape[1]} output")
    ph, pw = padding_amount(k.shape, padding)
    padded = x if padding == "none" else np.pad(
        x, ((ph, ph), (pw, pw)), mode={"zero": "constant", "reflect": "reflect", "replicate": "edge"}[padding]
    )
    top, left = r * stride, c * stride
    window = padded[top : top + k.shape[0], left : left + k.shape[1]].copy()
    products = window * used
    return HandStep(padded, used, (r, c), (top, left), window, products, float(products.sum()), output, (ph, pw))
