"""Build-your-own network from a VGG-style configuration string.

The notation is the one of the VGG paper's Table 1 ("conv3-64" = 3×3 convolution with 64 filters),
extended just enough to write the classic networks of the course. Tokens are separated by spaces (or
commas) and are case-insensitive::

    in-3x32x32 conv3-64 BN conv3-64 M conv3-128 M GAP FC-10

Grammar (``K`` kernel, ``N`` filters/features, ``S`` stride, ``P`` padding, ``G`` groups)::

    in-CxHxW        input shape; optional, first token only (default in-3x32x32)
    convK-N         K×K convolution with N filters, stride 1, padding K//2 ("same" for odd K)
      options       /sS stride, /pP padding, /gG groups, e.g. conv7-64/s2/p3, conv3-32/g32
    M               2×2 max pooling, stride 2 (the paper's "maxpool"; "maxpool" is accepted too)
    A               2×2 average pooling, stride 2
    maxK, avgK      K×K max / average pooling, stride K, no padding; options /sS /pP, e.g. max3/s2/p1
    FC-N            fully connected layer with N outputs (flattens a feature map first)
    BN              batch normalisation (2-D after a feature map, 1-D after FC/GAP)
    ReLU            rectified linear unit
    dropout, dropout-P   dropout with probability P (default 0.5, 0 <= P < 1)
    GAP             global average pooling to 1×1, flattened to a vector
    LRN             local response normalisation (size 5, alpha 1e-4, beta 0.75, k 2: AlexNet's)
    flatten         flatten a feature map into a vector (FC does this by itself)

ReLU placement. If the spec contains no ``ReLU`` token, the paper's convention applies: "all hidden
layers are equipped with the rectification non-linearity", i.e. a ReLU follows every convolution and every
FC layer except the network's last weight layer (whose outputs are the class scores), placed after a
``BN`` that directly follows the layer (conv → BN → ReLU). As soon as one ``ReLU`` token is written, no
ReLU is implied anywhere: activations are exactly where you put them.

The network must end with a vector (``FC-N`` or ``GAP``): its entries are the class scores (logits).
:func:`parse_arch` checks the syntax and ranges of each token; :func:`build_arch` (implemented in
``explorer.models.arch.build``) also checks every layer's output shape before building
anything. Both raise :class:`ArchSpecError` (a ``ValueError``) naming the token and its position at the
first problem: an unknown or malformed token, an empty output, a channel count that does not divide into
groups, a layer that needs a feature map but gets a vector, or a network too large for the app.

This module holds the grammar: tokens, :class:`LayerSpec`, parsing, canonical formatting and the
layer-table round trip of the build page. Shape checking, size limits and building are in
``explorer.models.arch.build``.
"""
from __future__ import annotations

import re
from decimal import Decimal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a table is made: the first page builds networks but draws no table
    import pandas as pd

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (3, 32, 32)
DEFAULT_DROPOUT = 0.5

# Guards: a spec typed in a browser must not be able to allocate gigabytes or run for minutes. These bound
# single tokens; the limits on the whole network (parameters, mult-adds, activation size) are in explorer.models.arch.build.
MAX_TOKENS = 128
MAX_INPUT_CHANNELS = 16
MAX_INPUT_SIDE = 512
MAX_KERNEL = 31
MAX_STRIDE = MAX_KERNEL  # a pool's implied stride is its size (max31 is stride 31): the same bound
MAX_WIDTH = 8192
# The longest token and spec read at all: a regular expression over a 60k-digit token once held the
# interpreter lock for a minute (every user waited). Real tokens are under 30 characters.
MAX_TOKEN_CHARS = 48
MAX_SPEC_CHARS = 8192

LAYER_KINDS: tuple[str, ...] = ("conv", "maxpool", "avgpool", "fc", "bn", "relu", "dropout", "gap", "lrn",
                                "flatten")
TABLE_COLUMNS: tuple[str, ...] = ("layer", "out", "kernel", "stride", "padding", "groups", "p")

_SEPARATORS = re.compile(r"[\s,]+")
_INPUT = re.compile(r"in-(\d+)x(\d+)x(\d+)")
_CONV = re.compile(r"conv(\d+)-(\d+)((?:/[a-z]\d+)*)")
_POOL = re.compile(r"(max|avg)(\d+)((?:/[a-z]\d+)*)")
_FC = re.compile(r"fc-(\d+)")


def _plain_decimal(value: float) -> str:
    """``value`` as the grammar reads it back exactly: no exponent (``1e-05`` → ``0.00001``), every digit kept
    (``:g`` rounded 0.1234567 to 0.123457)."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# Unambiguous (each digit can be matched one way only), so a long digit run cannot backtrack.
_DROPOUT = re.compile(r"dropout(?:-(\d+(?:\.\d*)?|\.\d+))?")
_SIMPLE = {"bn": "bn", "relu": "relu", "gap": "gap", "lrn": "lrn", "flatten": "flatten"}

_EXPECTED = ("expected one of: in-CxHxW (first), convK-N[/sS][/pP][/gG], M, A, maxK[/sS][/pP], "
             "avgK[/sS][/pP], FC-N, BN, ReLU, dropout[-P], GAP, LRN, flatten")


class ArchSpecError(ValueError):
    """A spec that cannot be built; ``token`` and ``position`` (1-based) locate the offending token."""

    def __init__(self, reason: str, token: str | None = None, position: int | None = None) -> None:
        self.reason = reason
        self.token = token
        self.position = position
        where = f"token {position} {token!r}: " if token is not None and position is not None else ""
        super().__init__(where + reason)


@dataclass(frozen=True)
class LayerSpec:
    """One token of a spec, with every default resolved (so equal layers compare equal)."""

    kind: str  # "input" or one of LAYER_KINDS
    out: int | None = None  # conv filters / FC features
    kernel: int | None = None
    stride: int | None = None
    padding: int | None = None
    groups: int = 1
    p: float | None = None  # dropout probability
    shape: tuple[int, int, int] | None = None  # the input token's C, H, W
    token: str = field(default="", compare=False)  # as typed

    def format(self) -> str:
        """The canonical token (defaults left out)."""
        k = self.kind
        if k == "input":
            c, h, w = self.shape
            return f"in-{c}x{h}x{w}"
        if k == "conv":
            text = f"conv{self.kernel}-{self.out}"
            if self.stride != 1:
                text += f"/s{self.stride}"
            if self.padding != self.kernel // 2:
                text += f"/p{self.padding}"
            if self.groups != 1:
                text += f"/g{self.groups}"
            return text
        if k in ("maxpool", "avgpool"):
            if (self.kernel, self.stride, self.padding) == (2, 2, 0):
                return "M" if k == "maxpool" else "A"
            text = f"{k[:3]}{self.kernel}"
            if self.stride != self.kernel:
                text += f"/s{self.stride}"
            if self.padding:
                text += f"/p{self.padding}"
            return text
        if k == "fc":
            return f"FC-{self.out}"
        if k == "dropout":
            return "dropout" if self.p == DEFAULT_DROPOUT else f"dropout-{_plain_decimal(self.p)}"
        return {"bn": "BN", "relu": "ReLU", "gap": "GAP", "lrn": "LRN", "flatten": "flatten"}[k]


# --- parsing -------------------------------------------------------------------------------------

def _options(text: str, allowed: str, token: str, position: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in filter(None, text.split("/")):
        key, value = part[0], int(part[1:])
        if key not in allowed:
            raise ArchSpecError(f"unknown option '/{part}' (allowed: {', '.join('/' + a for a in allowed)})",
                                token, position)
        if key in found:
            raise ArchSpecError(f"option '/{key}' given twice", token, position)
        found[key] = value
    return found


def _check_range(value: int, low: int, high: int, what: str, token: str, position: int) -> int:
    if not low <= value <= high:
        raise ArchSpecError(f"{what} must be between {low} and {high}, got {value}", token, position)
    return value


def parse_token(token: str, position: int = 1) -> LayerSpec:
    """One token → :class:`LayerSpec`; raises :class:`ArchSpecError` naming the token."""
    if len(token) > MAX_TOKEN_CHARS:
        raise ArchSpecError(f"token too long ({len(token):,} characters; at most {MAX_TOKEN_CHARS})",
                            token[:MAX_TOKEN_CHARS] + "…", position)
    low = token.lower()
    if low in ("m", "maxpool"):
        return LayerSpec("maxpool", kernel=2, stride=2, padding=0, token=token)
    if low == "a":
        return LayerSpec("avgpool", kernel=2, stride=2, padding=0, token=token)
    if low in _SIMPLE:
        return LayerSpec(_SIMPLE[low], token=token)
    if m := _INPUT.fullmatch(low):
        c, h, w = (int(g) for g in m.groups())
        _check_range(c, 1, MAX_INPUT_CHANNELS, "input channels", token, position)
        _check_range(h, 1, MAX_INPUT_SIDE, "input height", token, position)
        _check_range(w, 1, MAX_INPUT_SIDE, "input width", token, position)
        return LayerSpec("input", shape=(c, h, w), token=token)
    if m := _CONV.fullmatch(low):
        kernel = _check_range(int(m[1]), 1, MAX_KERNEL, "kernel size", token, position)
        out = _check_range(int(m[2]), 1, MAX_WIDTH, "number of filters", token, position)
        opts = _options(m[3], "spg", token, position)
        stride = _check_range(opts.get("s", 1), 1, MAX_STRIDE, "stride", token, position)
        padding = _check_range(opts.get("p", kernel // 2), 0, MAX_KERNEL, "padding", token, position)
        groups = _check_range(opts.get("g", 1), 1, MAX_WIDTH, "groups", token, position)
        return LayerSpec("conv", out=out, kernel=kernel, stride=stride, padding=padding, groups=groups, token=token)
    if m := _POOL.fullmatch(low):
        kernel = _check_range(int(m[2]), 1, MAX_KERNEL, "pooling size", token, position)
        opts = _options(m[3], "sp", token, position)
        stride = _check_range(opts.get("s", kernel), 1, MAX_STRIDE, "stride", token, position)
        padding = opts.get("p", 0)
        if padding > kernel // 2:  # PyTorch's own rule for pooling
            raise ArchSpecError(f"pooling padding must be at most half the window ({kernel // 2}), got {padding}",
                                token, position)
        return LayerSpec("maxpool" if m[1] == "max" else "avgpool", kernel=kernel, stride=stride, padding=padding,
                         token=token)
    if m := _FC.fullmatch(low):
        return LayerSpec("fc", out=_check_range(int(m[1]), 1, MAX_WIDTH, "number of features", token, position),
                         token=token)
    if m := _DROPOUT.fullmatch(low):
        p = float(m[1]) if m[1] is not None else DEFAULT_DROPOUT
        if not 0.0 <= p < 1.0:
            raise ArchSpecError(f"dropout probability must be in [0, 1), got {p:g}", token, position)
        return LayerSpec("dropout", p=p, token=token)
    raise ArchSpecError(f"unknown or malformed token; {_EXPECTED}", token, position)


def _tokens(spec: str) -> list[str]:
    if not isinstance(spec, str):
        raise ArchSpecError(f"a spec is a string of tokens, got {type(spec).__name__}")
    if len(spec) > MAX_SPEC_CHARS:
        raise ArchSpecError(f"the spec is too long ({len(spec):,} characters; at most {MAX_SPEC_CHARS:,})")
    return [t for t in _SEPARATORS.split(spec.strip()) if t]


def token_spans(spec: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each token in ``spec`` (position ``i`` is ``spans[i - 1]``),
    so a UI can underline the token an :class:`ArchSpecError` names."""
    spans, start = [], None
    for i, char in enumerate(spec + " "):
        if _SEPARATORS.fullmatch(char):
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    return spans


def parse_arch(spec: str) -> list[LayerSpec]:
    """Parse a spec into layers (the input token, if present, is the first element).

    Checks the syntax of each token; shapes are checked by :func:`build_arch` / :func:`plan_arch`.
    """
    tokens = _tokens(spec)
    if not tokens:
        raise ArchSpecError("the spec is empty: write layers such as 'conv3-16 M FC-10'")
    if len(tokens) > MAX_TOKENS:
        raise ArchSpecError(f"too many tokens ({len(tokens)}; at most {MAX_TOKENS})", tokens[MAX_TOKENS],
                            MAX_TOKENS + 1)
    layers = []
    for position, token in enumerate(tokens, start=1):
        layer = parse_token(token, position)
        if layer.kind == "input" and position != 1:
            raise ArchSpecError("the input shape must be the first token", token, position)
        layers.append(layer)
    return layers


def format_arch(layers: list[LayerSpec]) -> str:
    """The canonical spec of ``layers``: ``parse_arch(format_arch(layers)) == layers``."""
    return " ".join(layer.format() for layer in layers)


def canonical_spec(spec: str) -> str:
    return format_arch(parse_arch(spec))


def full_spec(spec: str) -> str:
    """The canonical spec with its input token written out (``in-3x32x32`` when the spec had none)."""
    shape, body = split_input(parse_arch(spec))
    return format_arch([LayerSpec("input", shape=tuple(shape)), *body])


def split_input(layers: list[LayerSpec]) -> tuple[tuple[int, int, int], list[LayerSpec]]:
    """(input shape, the layers after the optional input token)."""
    if layers and layers[0].kind == "input":
        return layers[0].shape, layers[1:]
    return DEFAULT_INPUT_SHAPE, list(layers)


# --- layer-table editing (st.data_editor) --------------------------------------------------------

def spec_to_table(spec: str) -> pd.DataFrame:
    """The layers of a spec (without the input token) as an editable table, one row per token."""
    import pandas as pd

    _shape, body = split_input(parse_arch(spec))
    rows = [{"layer": layer.kind, "out": layer.out, "kernel": layer.kernel, "stride": layer.stride,
             "padding": layer.padding, "groups": layer.groups if layer.kind == "conv" else None, "p": layer.p}
            for layer in body]
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for column in ("out", "kernel", "stride", "padding", "groups"):
        table[column] = table[column].astype("Int64")
    table["p"] = table["p"].astype("float64")
    table["layer"] = table["layer"].astype("object")
    return table


def _cell(row: pd.Series, column: str) -> object:
    import pandas as pd

    value = row.get(column)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value


def _int_cell(row: pd.Series, column: str, row_number: int, default: int | None = None) -> int | None:
    value = _cell(row, column)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ArchSpecError(f"row {row_number}: '{column}' must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise ArchSpecError(f"row {row_number}: '{column}' must be a whole number, got {value!r}")
    return int(number)


def table_to_spec(table: pd.DataFrame, input_shape: tuple[int, int, int] | None = None) -> str:
    """An edited layer table back to a canonical spec; rows without a layer type are ignored.

    Raises :class:`ArchSpecError` naming the row (and the token it would make) when a row is incomplete or
    out of range. Shapes are not checked here: :func:`build_arch` does that with the usual messages.
    """
    tokens: list[str] = [f"in-{input_shape[0]}x{input_shape[1]}x{input_shape[2]}"] if input_shape else []
    for row_number, (_index, row) in enumerate(table.iterrows(), start=1):
        kind = _cell(row, "layer")
        if kind is None or str(kind).strip() == "":
            continue
        kind = str(kind).strip().lower()
        if kind not in LAYER_KINDS:
            raise ArchSpecError(f"row {row_number}: unknown layer type {kind!r} (choose one of {', '.join(LAYER_KINDS)})")
        if kind in ("conv", "fc"):
            out = _int_cell(row, "out", row_number)
            if out is None:
                raise ArchSpecError(f"row {row_number}: a {kind} layer needs 'out' (number of "
                                    f"{'filters' if kind == 'conv' else 'features'})")
        if kind == "conv":
            kernel = _int_cell(row, "kernel", row_number, 3)
            layer = LayerSpec("conv", out=out, kernel=kernel, stride=_int_cell(row, "stride", row_number, 1),
                              padding=_int_cell(row, "padding", row_number, kernel // 2),
                              groups=_int_cell(row, "groups", row_number, 1))
        elif kind in ("maxpool", "avgpool"):
            kernel = _int_cell(row, "kernel", row_number, 2)
            layer = LayerSpec(kind, kernel=kernel, stride=_int_cell(row, "stride", row_number, kernel),
                              padding=_int_cell(row, "padding", row_number, 0))
        elif kind == "fc":
            layer = LayerSpec("fc", out=out)
        elif kind == "dropout":
            p = _cell(row, "p")
            layer = LayerSpec("dropout", p=DEFAULT_DROPOUT if p is None else float(p))
        else:
            layer = LayerSpec(kind)
        token = layer.format()
        try:  # re-parse: applies the same range checks as typed tokens
            parse_token(token, len(tokens) + 1)
        except ArchSpecError as exc:
            raise ArchSpecError(f"row {row_number} ({token}): {exc.reason}", token, len(tokens) + 1) from None
        tokens.append(token)
    if len(tokens) == (1 if input_shape else 0):
        raise ArchSpecError("the table has no layers")
    return " ".join(tokens)


def input_shape_of(spec: str) -> tuple[int, int, int]:
    """The input a spec declares (``in-CxHxW``), else the default; the spec is parsed, nothing is built."""
    return split_input(parse_arch(spec))[0]


def spec_with_input(spec: str, input_shape: tuple[int, int, int] | None) -> str:
    """``spec`` with ``input_shape`` as its input token when it has none (a spec that declares its input keeps
    it): a network typed without an input takes the input it is given, channels and size."""
    if input_shape is None:
        return spec
    layers = parse_arch(spec)
    if layers and layers[0].kind == "input":
        return spec
    c, h, w = (int(v) for v in input_shape)
    if not (1 <= c <= MAX_INPUT_CHANNELS and 1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
        # the limits of a typed in- token, said about the input given (the user typed no token)
        raise ArchSpecError(f"a typed network takes inputs of 1–{MAX_INPUT_CHANNELS} channels and sides of 1–"
                            f"{MAX_INPUT_SIDE} pixels; it was given {c}×{h}×{w}")
    return format_arch([LayerSpec("input", shape=(c, h, w)), *layers])


def declares_input(spec: str) -> bool:
    """Whether ``spec`` starts with an ``in-CxHxW`` token (else it takes the input it is given:
    :func:`spec_with_input`)."""
    layers = parse_arch(spec)
    return bool(layers) and layers[0].kind == "input"
