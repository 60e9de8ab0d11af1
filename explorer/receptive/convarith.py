"""Convolution arithmetic: output sizes, where the kernel lands, and "3×3 stacks vs one big kernel".

The course notes write the output size as ``(N − F + 2P)/S + 1`` and say a configuration whose
``N − F + 2P`` is not divisible by ``S`` does not tile the input; PyTorch takes the floor instead (the last
``(N − F + 2P) mod S`` rows/columns are never visited). With dilation ``D`` the kernel covers
``D(F − 1) + 1`` pixels, which gives PyTorch's formula ``⌊(N + 2P − D(F − 1) − 1)/S⌋ + 1``.
"""
from __future__ import annotations

import math
from fractions import Fraction

from dataclasses import dataclass


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (hasattr(value, "__index__")):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _num(x: float | Fraction) -> str:
    """``x`` in full when it is whole; else cut (never rounded) to three decimals, with "…" when cut short, so the
    number's floor is the floor the formula takes: 1001.5 stays 1001.5 (":.4g" printed 1002), 1/3 reads 0.333….
    Exact (a ``Fraction``): 323/5 reads 64.6, where float arithmetic gave 64.599…"""
    exact = Fraction(x)
    if exact.denominator == 1:
        return str(exact.numerator)
    thousandths = math.floor(exact * 1000)
    sign = "-" if thousandths < 0 else ""
    whole, rest = divmod(abs(thousandths), 1000)
    text = f"{sign}{whole}.{rest:03d}".rstrip("0").rstrip(".")
    return text if Fraction(thousandths, 1000) == exact else text + "…"


@dataclass(frozen=True)
class ConvArithmetic:
    """One axis of a convolution (or pooling window): input N, kernel F, padding P, stride S, dilation D."""

    n: int
    f: int
    p: int
    s: int
    d: int
    effective_kernel: int  # D(F − 1) + 1: pixels the (dilated) kernel spans
    padded: int  # N + 2P
    span: int  # N + 2P − D(F − 1) − 1 = N − F_eff + 2P: room the kernel moves through
    output: int  # ⌊span / S⌋ + 1
    exact_fit: bool  # span divisible by S: the windows tile the padded input exactly
    leftover: int  # span mod S: padded rows/columns after the last window, never visited
    formula: str  # the formula in symbols
    span_formula: str  # what ``span`` is, in symbols: "N − F + 2P", or "N + 2P − D(F − 1) − 1" when dilated
    span_numbers: str  # the same with this configuration's numbers
    formula_numbers: str  # the same with this configuration's numbers
    same_padding: float  # D(F − 1)/2: the padding that keeps the size at stride 1
    positions: tuple[int, ...]  # first padded coordinate of each window

    @property
    def quotient(self) -> float:
        return self.span / self.s

    @property
    def same_padding_is_whole(self) -> bool:
        """(F − 1)/2 is a whole number only for odd kernels (or even dilation)."""
        return float(self.same_padding).is_integer()

    @property
    def keeps_size(self) -> bool:
        return self.output == self.n

    @property
    def leftover_padding(self) -> int:
        """How many of the ``leftover`` never-visited last rows/columns are padding (the last P are)."""
        return min(self.leftover, self.p)

    @property
    def leftover_input(self) -> int:
        """How many of the ``leftover`` never-visited last rows/columns are input pixels the kernel never reads."""
        return self.leftover - self.leftover_padding

    @property
    def never_read(self) -> tuple[int, ...]:
        """Padded coordinates that no window's taps touch: the trailing ``leftover`` ones, and with dilation the gaps
        between taps that no other window fills (N = 8, F = 3, P = 1, S = 2, D = 2 never reads input rows 0, 2, 4, 6)."""
        read = {start + k * self.d for start in self.positions for k in range(self.f)}
        return tuple(c for c in range(self.padded) if c not in read)

    @property
    def never_read_input(self) -> tuple[int, ...]:
        """Input rows/columns (0-based, unpadded) that no window reads."""
        return tuple(c - self.p for c in self.never_read if not self.is_padding(c))

    def taps(self, index: int) -> tuple[int, ...]:
        """Padded coordinates the kernel touches at window ``index`` (spaced by D)."""
        if not 0 <= index < self.output:
            raise ValueError(f"window {index} does not exist: there are {self.output}")
        start = self.positions[index]
        return tuple(start + k * self.d for k in range(self.f))

    def is_padding(self, coordinate: int) -> bool:
        """True for padded coordinates that are padding (zeros), not input."""
        return coordinate < self.p or coordinate >= self.p + self.n


def conv_arithmetic(n: int, f: int, p: int = 0, s: int = 1, d: int = 1) -> ConvArithmetic:
    """Output size and window positions of a convolution along one axis; ValueError for impossible ones."""
    n = _check_int("input size N", n, 1)
    f = _check_int("kernel size F", f, 1)
    p = _check_int("padding P", p, 0)
    s = _check_int("stride S", s, 1)
    d = _check_int("dilation D", d, 1)
    effective = d * (f - 1) + 1
    padded = n + 2 * p
    if effective > padded:
        what = f"the kernel spans {effective} pixels" + (f" (D(F − 1) + 1 = {d}×({f} − 1) + 1)" if d > 1 else "")
        raise ValueError(f"{what}, more than the padded input N + 2P = {n} + 2×{p} = {padded}: "
                         "there is no position where it fits, so there is no output")
    span = padded - effective
    output = span // s + 1
    leftover = span % s
    if d == 1:
        formula = "(N − F + 2P) / S + 1" if leftover == 0 else "⌊(N − F + 2P) / S⌋ + 1"
        inner = f"({n} − {f} + 2×{p}) / {s}"
    else:
        formula = "(N + 2P − D(F − 1) − 1) / S + 1" if leftover == 0 else "⌊(N + 2P − D(F − 1) − 1) / S⌋ + 1"
        inner = f"({n} + 2×{p} − {d}×({f} − 1) − 1) / {s}"
    # With dilation, N − F + 2P is not the room the kernel moves through: the kernel spans D(F − 1) + 1 pixels.
    span_formula = "N − F + 2P" if d == 1 else "N + 2P − D(F − 1) − 1"
    span_numbers = f"{n} − {f} + 2×{p}" if d == 1 else f"{n} + 2×{p} − {d}×({f} − 1) − 1"
    if leftover == 0:
        numbers = f"{inner} + 1 = {span}/{s} + 1 = {output}"
    else:
        numbers = f"⌊{inner}⌋ + 1 = ⌊{_num(Fraction(span, s))}⌋ + 1 = {output}"
    return ConvArithmetic(n=n, f=f, p=p, s=s, d=d, effective_kernel=effective, padded=padded, span=span,
                          output=output, exact_fit=leftover == 0, leftover=leftover, formula=formula,
                          span_formula=span_formula, span_numbers=span_numbers,
                          formula_numbers=numbers, same_padding=d * (f - 1) / 2,
                          positions=tuple(i * s for i in range(output)))


def output_size(n: int, f: int, p: int = 0, s: int = 1, d: int = 1) -> int:
    return conv_arithmetic(n, f, p, s, d).output


def same_padding(f: int, d: int = 1) -> float:
    """The padding that keeps the size at stride 1: (F − 1)/2, or D(F − 1)/2 when dilated."""
    return _check_int("dilation D", d, 1) * (_check_int("kernel size F", f, 1) - 1) / 2


# --- 3×3 stacks vs one big kernel --------------------------------------------------------------------------

def stack_field(layers: int, kernel: int = 3) -> int:
    """Field of one unit after ``layers`` stacked K×K stride-1 convolutions: 1 + L(K − 1)."""
    return 1 + _check_int("layers L", layers, 0) * (_check_int("kernel K", kernel, 1) - 1)


@dataclass(frozen=True)
class StackComparison:
    """L stacked K×K convolutions (C → C channels, stride 1, same padding) vs one K'×K' with the same field.

    Weights count without biases, as the notes do (3·(3²C²) = 27C² vs 7²C² = 49C²); mult-adds are for
    an H×W = ``spatial``² map.
    """

    channels: int
    layers: int
    kernel: int
    big_kernel: int
    spatial: int
    stack_field: int
    big_field: int
    stack_weights: int
    big_weights: int
    stack_nonlinearities: int
    big_nonlinearities: int
    stack_mult_adds: int
    big_mult_adds: int

    @property
    def weight_ratio(self) -> float:
        """stack / big (27/49 ≈ 0.55 for three 3×3 vs one 7×7)."""
        return self.stack_weights / self.big_weights

    @property
    def weight_saving(self) -> float:
        """Fraction of the big kernel's weights saved by the stack (≈ 45 % for 3×3×3 vs 7×7)."""
        return 1 - self.weight_ratio

    @property
    def big_over_stack(self) -> float:
        """big / stack: how many times more weights the single big kernel needs (49/27 ≈ 1.81)."""
        return self.big_weights / self.stack_weights

    @property
    def stack_weights_per_c2(self) -> int:
        return self.layers * self.kernel ** 2

    @property
    def big_weights_per_c2(self) -> int:
        return self.big_kernel ** 2


def compare_stack(channels: int, layers: int = 3, kernel: int = 3, spatial: int = 56,
                  big_kernel: int | None = None) -> StackComparison:
    channels = _check_int("channels C", channels, 1)
    layers = _check_int("layers L", layers, 1)
    kernel = _check_int("kernel K", kernel, 1)
    spatial = _check_int("map size", spatial, 1)
    field = stack_field(layers, kernel)
    big = field if big_kernel is None else _check_int("big kernel", big_kernel, 1)
    stack_w = layers * kernel * kernel * channels * channels
    big_w = big * big * channels * channels
    positions = spatial * spatial
    return StackComparison(channels=channels, layers=layers, kernel=kernel, big_kernel=big, spatial=spatial,
                           stack_field=field, big_field=big, stack_weights=stack_w, big_weights=big_w,
                           stack_nonlinearities=layers, big_nonlinearities=1,
                           stack_mult_adds=stack_w * positions, big_mult_adds=big_w * positions)
