"""Conv arithmetic against torch.nn.Conv2d, and the 3×3-stack panel against the course notes' figures."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn

from explorer.receptive import compare_stack, conv_arithmetic, output_size, same_padding, stack_field
from explorer.receptive import GAP, PADDING, TAP, UNVISITED, growth_figure, kernel_grid, kernel_positions_figure, stack_diagram_figure


def _torch_output(n: int, f: int, p: int, s: int, d: int) -> int | None:
    conv = nn.Conv2d(1, 1, f, stride=s, padding=p, dilation=d, bias=False)
    try:
        with torch.no_grad():
            return int(conv(torch.zeros(1, 1, n, n)).shape[-1])
    except RuntimeError:
        return None


def test_output_size_matches_torch_over_a_grid() -> None:
    checked = invalid = 0
    for n, f, p, s, d in itertools.product([1, 2, 5, 7, 8, 11], [1, 2, 3, 5], [0, 1, 2], [1, 2, 3], [1, 2, 3]):
        expected = _torch_output(n, f, p, s, d)
        if expected is None:
            invalid += 1
            with pytest.raises(ValueError, match="no output"):
                conv_arithmetic(n, f, p, s, d)
        else:
            checked += 1
            assert output_size(n, f, p, s, d) == expected, (n, f, p, s, d)
    assert checked > 300 and invalid > 20


def test_the_notes_example_and_the_formula_with_numbers() -> None:
    a = conv_arithmetic(9, 3, 1, 2)  # the notes: (9 − 3 + 2)/2 + 1 = 5
    assert a.output == 5 and a.exact_fit and a.leftover == 0
    assert a.formula == "(N − F + 2P) / S + 1"
    assert a.formula_numbers == "(9 − 3 + 2×1) / 2 + 1 = 8/2 + 1 = 5"
    b = conv_arithmetic(32, 3, 0, 2)
    assert not b.exact_fit and b.leftover == 1 and b.output == 15  # PyTorch floors 14.5
    assert b.formula_numbers == "⌊(32 − 3 + 2×0) / 2⌋ + 1 = ⌊14.5⌋ + 1 = 15"
    c = conv_arithmetic(9, 3, 1, 1, 2)
    assert "D(F − 1)" in c.formula and c.formula_numbers.endswith("= 7") and c.effective_kernel == 5


def test_same_padding_keeps_the_size_for_odd_kernels() -> None:
    for f, d in [(1, 1), (3, 1), (5, 1), (7, 1), (3, 2), (3, 4), (5, 3)]:
        p = same_padding(f, d)
        assert p == d * (f - 1) / 2 and p.is_integer()
        assert conv_arithmetic(20, f, int(p), 1, d).keeps_size
        assert _torch_output(20, f, int(p), 1, d) == 20
    assert not conv_arithmetic(10, 4).same_padding_is_whole  # even kernel: (4 − 1)/2 = 1.5


@pytest.mark.parametrize("bad", [dict(n=0, f=3), dict(n=5, f=0), dict(n=5, f=3, s=0), dict(n=5, f=3, p=-1),
                                 dict(n=5, f=3, d=0), dict(n=5, f=3.5), dict(n=3, f=5), dict(n=5, f=3, d=3)])
def test_invalid_configurations_raise_clear_errors(bad: dict) -> None:
    with pytest.raises(ValueError) as info:
        conv_arithmetic(**bad)
    message = str(info.value)
    assert any(word in message for word in ("must be", "no output"))


def test_kernel_positions_and_taps() -> None:
    a = conv_arithmetic(7, 3, 1, 2, 2)  # effective kernel 5 over a padded 9
    assert a.positions == (0, 2, 4) and a.taps(1) == (2, 4, 6)
    with pytest.raises(ValueError):
        a.taps(3)
    grid, (row, col) = kernel_grid(a, 5)  # raster order: row 1, col 2
    assert (row, col) == (1, 2)
    assert {(r, c) for r, c in zip(*np.nonzero(grid == TAP))} == {(r, c) for r in (2, 4, 6) for c in (4, 6, 8)}
    assert grid[3, 5] == GAP  # inside the dilated window, skipped
    assert grid[0, 0] == PADDING
    b = conv_arithmetic(8, 3, 0, 2)  # the last column/row is never visited (8 − 3 = 5 is odd)
    grid_b, _ = kernel_grid(b, 0)
    assert (grid_b[:, 7] == UNVISITED).all() and (grid_b[7, :] == UNVISITED).all()
    fig = kernel_positions_figure(a, 5)
    assert len(fig.data) >= 2


@pytest.mark.parametrize("layers,kernel", [(1, 3), (2, 3), (3, 3), (4, 5), (10, 3)])
def test_stack_field_is_one_plus_l_times_k_minus_one(layers: int, kernel: int) -> None:
    # Independent check: push a single unit back through L stride-1 K×K windows.
    lo = hi = 0
    for _ in range(layers):
        lo, hi = lo - (kernel - 1) // 2, hi + kernel // 2
    assert stack_field(layers, kernel) == hi - lo + 1 == 1 + layers * (kernel - 1)


def test_three_3x3_vs_one_7x7_weights() -> None:
    for channels in (1, 3, 64, 256):
        cmp = compare_stack(channels, layers=3, kernel=3, spatial=56)
        assert cmp.big_kernel == 7 and cmp.stack_field == cmp.big_field == 7
        assert cmp.stack_weights == 27 * channels ** 2  # 3·(3²C²)
        assert cmp.big_weights == 49 * channels ** 2  # 7²C²
        stack_layers = [nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(3)]
        assert cmp.stack_weights == sum(m.weight.numel() for m in stack_layers)
        assert cmp.big_weights == nn.Conv2d(channels, channels, 7, bias=False).weight.numel()
        assert cmp.stack_mult_adds == 27 * channels ** 2 * 56 * 56
        assert (cmp.stack_nonlinearities, cmp.big_nonlinearities) == (3, 1)
    assert round(cmp.weight_saving, 3) == round(1 - 27 / 49, 3)
    assert round(cmp.big_over_stack, 2) == 1.81
    two = compare_stack(8, layers=2)
    assert two.big_kernel == 5 and two.stack_weights == 18 * 64 and two.big_weights == 25 * 64


def test_figures_build() -> None:
    import pandas as pd

    fig = stack_diagram_figure(compare_stack(4, layers=3))
    assert fig.data[0].z.shape == (4, 7) and fig.data[0].z.sum() == 7 + 5 + 3 + 1
    curves = {"a": pd.DataFrame({"depth": [0, 1, 2], "rf": [1, 3, 5], "layer": ["input", "c1", "c2"]})}
    growth = growth_figure(curves, 224)
    assert growth.data[0].name == "a" and any(s.y0 == 224 for s in growth.layout.shapes)
