"""Review 12 (imaging and diagram): each test checks a fix against an independent computation (torch.fx,
numpy by hand, torchvision itself, or expectations worked out by hand)."""
from __future__ import annotations

import io
from collections import Counter, defaultdict

import cv2
import numpy as np
import pytest
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F_t
from PIL import Image
from torchvision.transforms import v2

from explorer.diagram import capture_graph
from explorer.imaging import augment as A
from explorer.imaging import filter_display as D
from explorer.imaging import filters as F
from explorer.imaging import viz as V
from explorer.models import build_model
from explorer.models.teaching import ZeroPadShortcut
from explorer.receptive import effective_receptive_field

torch.set_num_threads(1)


# ------------------------------------------------------------------ 1. diagram: modules that hand back their input
class _LeafTracer(torch.fx.Tracer):
    """torch.fx with the option-A shortcut kept as one call (capture_graph draws it as one box)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, ZeroPadShortcut) or super().is_leaf_module(m, qualname)


def _fx_graph(model: nn.Module) -> torch.fx.Graph:
    return _LeafTracer().trace(model)


def _fx_module_ids(graph: torch.fx.Graph) -> dict[torch.fx.Node, str]:
    """fx call_module nodes named as capture_graph names them: the path, ``path#k`` for the k-th call."""
    calls: Counter[str] = Counter()
    ids = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] += 1
            ids[node] = node.target if calls[node.target] == 1 else f"{node.target}#{calls[node.target]}"
    return ids


def _fx_label(node: torch.fx.Node, ids: dict[torch.fx.Node, str]) -> str:
    if node.op == "placeholder":
        return "input"
    if node.op == "call_module":
        return ids[node]
    target = node.target if isinstance(node.target, str) else node.target.__name__
    return "fn:" + target


def fx_direct_inputs(model: nn.Module) -> dict[str, list[str]]:
    """For every module call: what its arguments come from, according to torch.fx."""
    graph = _fx_graph(model)
    ids = _fx_module_ids(graph)
    return {ids[n]: sorted(_fx_label(a, ids) for a in n.all_input_nodes if a.op != "get_attr")
            for n in graph.nodes if n.op == "call_module"}


def fx_module_inputs(model: nn.Module) -> dict[str, set[str]]:
    """For every module call: the nearest module calls (or the input) upstream, through functions (torch.fx)."""
    graph = _fx_graph(model)
    ids = _fx_module_ids(graph)

    def upstream(node: torch.fx.Node) -> set[str]:
        found: set[str] = set()
        for a in node.all_input_nodes:
            if a.op in ("placeholder", "call_module"):
                found.add(_fx_label(a, ids))
            elif a.op in ("call_function", "call_method"):
                found |= upstream(a)
        return found

    return {ids[n]: upstream(n) for n in graph.nodes if n.op == "call_module"}


def capture_direct_inputs(model: nn.Module, shape: tuple[int, ...]) -> dict[str, list[str]]:
    graph = capture_graph(model, shape)
    kind = {n.id: n for n in graph.nodes}
    preds = defaultdict(list)
    for e in graph.edges:
        src = kind[e.src]
        preds[e.dst].append(src.id if src.source in ("module", "input") else "fn:" + src.op)
    return {n.id: sorted(preds[n.id]) for n in graph.nodes if n.source == "module"}


def capture_module_inputs(model: nn.Module, shape: tuple[int, ...]) -> dict[str, set[str]]:
    graph = capture_graph(model, shape)
    kind = {n.id: n for n in graph.nodes}
    incoming = defaultdict(list)
    for e in graph.edges:
        incoming[e.dst].append(e.src)

    def upstream(node_id: str) -> set[str]:
        found: set[str] = set()
        for src in incoming[node_id]:
            found |= {src} if kind[src].source in ("module", "input") else upstream(src)
        return found

    return {n.id: upstream(n.id) for n in graph.nodes if n.source == "module"}


class _IdentityShortcut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.short = nn.Identity()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        identity = self.short(x)  # taken before conv, as OptionABlock does
        return self.conv(x) + identity


class _DropoutBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.d = nn.Dropout()
        self.c = nn.Conv2d(3, 3, 1)
        self.c2 = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.d(x)
        return self.c(x) + self.c2(y)


class _FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 3, 1)
        self.c2 = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = F_t.dropout(x, 0.5, self.training)  # in eval mode torch hands back x itself
        return self.c(x) + self.c2(y)


@pytest.mark.parametrize("model_class", [_IdentityShortcut, _DropoutBranch, _FunctionalDropout])
def test_pass_through_calls_do_not_take_over_their_input_like_torch_fx(model_class):
    model = model_class().eval()
    assert capture_direct_inputs(model, (3, 8, 8)) == fx_direct_inputs(model)
    assert capture_module_inputs(model, (3, 8, 8)) == fx_module_inputs(model)


def test_resnet18_a_blocks_read_the_block_input_like_torch_fx():
    model = build_model("resnet18_a").eval()
    fx_direct, fx_modules = fx_direct_inputs(model), fx_module_inputs(model)
    assert fx_direct["layer1.0.conv1"] == ["maxpool"]  # the independent answer, stated
    assert capture_direct_inputs(model, (3, 32, 32)) == fx_direct
    assert capture_module_inputs(model, (3, 32, 32)) == fx_modules


def test_in_place_writes_still_relabel_even_through_a_pass_through():
    # Worked out by hand (torch.fx does not see in-place writes): r writes x in place, so c2 reads r's value;
    # y is x itself, so y.relu_() writes x too and c3 reads the relu's value.
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.c2, self.c3 = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
            self.r = nn.ReLU(inplace=True)
            self.i = nn.Identity()

        def forward(self, x):
            x = self.c(x)
            self.r(x)
            x = self.c2(x)
            y = self.i(x)
            y.relu_()
            return self.c3(x)

    graph = capture_graph(M().eval(), (3, 6, 6))
    edges = {(e.src, e.dst) for e in graph.edges}
    assert edges == {("input", "c"), ("c", "r"), ("r", "c2"), ("c2", "i"), ("i", "relu"), ("relu", "c3"),
                     ("c3", "output")}


# ------------------------------------------------------------------ 2. direction maps are averaged as angles
def _circular_block_mean(angles: np.ndarray, block: int) -> np.ndarray:
    h, w = angles.shape
    rad = np.radians(angles).reshape(h // block, block, w // block, block)
    return np.degrees(np.arctan2(np.sin(rad).mean(axis=(1, 3)), np.cos(rad).mean(axis=(1, 3))))


def _angle_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


def test_direction_results_are_downscaled_with_a_circular_mean():
    rng = np.random.default_rng(12)
    angles = np.tile([[179.0, -179.0]], (768, 384))  # every edge points (almost) left
    angles[:200] = rng.uniform(-180, 180, size=(200, 768))  # and a part of random directions
    fig, mapping = D.result_figure(angles, "direction")  # max_side 384: exactly 2×2 blocks
    want = _circular_block_mean(angles, 2)
    assert mapping.scalar.shape == want.shape
    assert _angle_gap(mapping.scalar, want).max() < 1e-6
    assert np.all(np.abs(mapping.scalar[100:]) > 179.9)  # left-pointing edges stay left-pointing, not 0°
    assert _angle_gap(np.asarray(fig.data[0].z, np.float64), want).max() < 1e-3  # hover shows the same
    assert (mapping.value_min, mapping.value_max) == (angles.min(), angles.max())  # full-resolution range


# ------------------------------------------------------------------ 3. a blur kernel too large for the picture
def _torchvision_blur_fails(kernel: int, width: int, height: int) -> bool:
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    try:
        v2.GaussianBlur(kernel, (0.1, 2.0))(image)
    except RuntimeError:
        return True
    return False


def test_blur_kernel_larger_than_the_picture_is_a_clear_value_error():
    b = io.BytesIO()
    Image.new("RGB", (64, 4), (200, 10, 10)).save(b, "PNG")
    small = A.prepare_preview(Image.open(b), 384)
    with pytest.raises(ValueError, match=r"kernel of 9.*64×4"):
        A.draws(small, A.AugmentConfig(blur_kernel=9), 1, 0)
    assert A.draws(small, A.AugmentConfig(blur_kernel=7), 1, 0)[0].shape == (3, 4, 64)
    # The refusal matches where torchvision itself fails, picture and crop alike.
    for kernel in (1, 3, 5, 7, 9, 11):
        for width, height in ((64, 4), (3, 30), (5, 5), (2, 2)):
            refused = True
            try:
                A.check_picture_size(A.AugmentConfig(blur_kernel=kernel), (width, height))
                refused = False
            except ValueError:
                pass
            assert refused == _torchvision_blur_fails(kernel, width, height), (kernel, width, height)
    with pytest.raises(ValueError, match="crop"):
        A.draws(Image.new("RGB", (64, 64)), A.AugmentConfig(blur_kernel=9, crop=True, crop_size=4), 1, 0)


# ------------------------------------------------------------------ 4. minor
def test_parse_kernel_separators_only_is_empty_and_tiny_values_are_not_too_large():
    with pytest.raises(ValueError, match="empty"):
        F.parse_kernel(",,,")
    assert F.parse_kernel("1e-400").tolist() == [[float("1e-400")]]  # 0.0, as Python reads it
    assert F.parse_kernel("1e-301, 2").tolist() == [[float("1e-301"), 2.0]]
    with pytest.raises(ValueError) as info:
        F.parse_kernel("1e-400/3")
    assert "too large" not in str(info.value) and "exponent" in str(info.value)


def test_to_array_and_display_refuse_unsupported_channel_counts():
    with pytest.raises(ValueError, match=r"2 channels.*1 \(grey\), 3 \(RGB\) or 4"):
        F.to_array(np.ones((4, 4, 2)))
    with pytest.raises(ValueError, match="5 channels"):
        F.to_array(np.ones((4, 4, 5)))
    rgba = np.random.default_rng(0).uniform(0, 255, (4, 4, 4))
    np.testing.assert_allclose(F.to_array(rgba), rgba[..., :3] @ np.array([0.299, 0.587, 0.114]))
    with pytest.raises(ValueError, match="2 channels"):
        D.to_png(np.ones((4, 4, 2)))
    with pytest.raises(ValueError, match="2 channels"):
        D.display_mapping(np.ones((4, 4, 2)))


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Row i: how much of each input pixel the i-th output pixel covers (area resampling), normalised."""
    edges = np.linspace(0, n_in, n_out + 1)
    weights = np.zeros((n_out, n_in))
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        for j in range(int(np.floor(lo)), int(np.ceil(hi))):
            weights[i, j] = max(0.0, min(hi, j + 1) - max(lo, j))
    return weights / weights.sum(axis=1, keepdims=True)


def test_downscale_for_display_takes_any_number_of_channels():
    values = np.random.default_rng(1).normal(size=(600, 450, 5))
    small, scale = D.downscale_for_display(values, max_side=512)  # 0.853…: not whole blocks
    rows, cols = _area_weights(600, 512), _area_weights(450, 384)
    want = np.stack([rows @ values[..., c] @ cols.T for c in range(5)], axis=-1)
    assert scale == 512 / 600 and small.shape == want.shape
    np.testing.assert_allclose(small, want, atol=1e-5)


def test_correlate_pad_is_bounded_by_full_padding():
    rng = np.random.default_rng(2)
    x, k = rng.normal(size=(5, 5)), rng.normal(size=(3, 3))
    want = F_t.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None], padding=2)[0, 0].numpy()
    np.testing.assert_allclose(F.correlate(x, k, pad=2), want, atol=1e-9)  # "full": every window touches x
    for pad in (3, 10_000):
        with pytest.raises(ValueError, match="at most 2"):
            F.correlate(x, k, pad=pad)


def test_erf_channel_out_of_range_is_a_clear_value_error():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3)).eval()
    x = torch.randn(1, 3, 8, 8)
    for channel in (7, 4, -1):
        with pytest.raises(ValueError, match=f"channel {channel} is outside"):
            effective_receptive_field(model, x, "0", (0, 0), channel=channel)
    # channel 3 works and equals the gradient worked out with autograd directly
    inp = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(inp)[0, 3, 0, 0], inp)
    np.testing.assert_allclose(effective_receptive_field(model, x, "0", (0, 0), channel=3),
                               grad.abs().sum(dim=1)[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("count, side, want", [
    # by hand: cols = rows = sqrt(count); factor 1 gives cols*side + (cols-1) gaps > 1024, factor 2 fits
    (4, 512, 2 * 256 + 1),   # factor 1: 1025
    (64, 128, 8 * 64 + 7),   # factor 1: 1031
    (4, 500, 2 * 500 + 1),   # 1001 fits at factor 1
])
def test_tile_channels_counts_the_gaps_in_max_side(count, side, want):
    tiling = V.tile_channels(np.zeros((count, side, side), np.float32), max_side=1024)
    assert tiling.image.shape == (want, want)
