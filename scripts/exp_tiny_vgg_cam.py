"""Experiment (issue 13): which Tiny-VGG-style network makes the shapes network's Grad-CAM dense on the shape?

    OMP_NUM_THREADS=1 nice -n 19 python scripts/exp_tiny_vgg_cam.py pad3_gap           # one candidate
    OMP_NUM_THREADS=1 nice -n 19 python scripts/exp_tiny_vgg_cam.py current pad3_gap   # several, one at a time
    OMP_NUM_THREADS=1 nice -n 19 python scripts/exp_tiny_vgg_cam.py --list

Each candidate (an architecture + a recipe) is trained by the project's own loop (``explorer.training``), as
``scripts/train_teaching.py`` does, in memory / a temporary folder (the repository's weights are never
touched), then measured:

- ``test``: accuracy on the held-out test split of the built-in shapes;
- ``drawnT`` / ``camT``: accuracy on tests/test_teaching_weights.py's drawn shapes (its ``VARIANTS``) and the
  Grad-CAM inside/outside ratios computed exactly as its xfail test does (median, share > 1.2);
- ``drawnO`` / ``camO``: the same on a second set drawn here (other sides, colours, noisy/textured/gradient
  backgrounds, offsets, angles, sizes), so nothing is tuned to the test's own drawings;
- ``samples``: how many of the five built-in ``shape_<name>`` sample images are classified correctly.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

torch.set_num_threads(1)

from explorer.analysis import default_cam_layer, grad_cam  # noqa: E402
from explorer.imaging import SHAPE_NAMES, sample_image  # noqa: E402
from explorer.imaging.images import basic_transform  # noqa: E402
from explorer.models import write_builtin_weights  # noqa: E402
from explorer.models.registry import register_model  # noqa: E402
from explorer.models.teaching import TINY_VGG_CLASSES, TinyVGG  # noqa: E402  (the adopted one: "tiny_vgg")
from explorer.training import TrainConfig, prepare, run_training  # noqa: E402
from test_teaching_weights import VARIANTS, _draw  # noqa: E402  (the test's own drawings)


# --- candidate architectures -----------------------------------------------------------------------------------

class OldTinyVGG(nn.Module):
    """The network tiny_vgg was before issue 13: CNN Explainer's Tiny VGG, two unpadded blocks of (conv3-10, ReLU)
    ×2 + max pool 2, then flatten and a linear layer over 10×13×13."""

    def __init__(self, num_classes: int = 10, channels: int = 10) -> None:
        super().__init__()

        def block(cin: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, channels, 3), nn.ReLU(inplace=True),
                                 nn.Conv2d(channels, channels, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.block1 = block(3)
        self.block2 = block(channels)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels * 13 * 13, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.block2(self.block1(x))))


class VGGGap(nn.Module):
    """Tiny-VGG-style: ``blocks`` blocks of (conv3-c, ReLU)×2 [+ max pool 2], then global average pool + linear.

    ``pad``: 1 (padded, sizes halve) or 0 (CNN Explainer's unpadded convs). ``pool_last``: pool after the last
    block too (the CAM layer is then the last conv, as in Tiny VGG) or not (GAP straight on the last conv).
    ``unpadded_blocks``: the first that many blocks unpadded (CNN Explainer's layout), the rest padded.
    """

    def __init__(self, num_classes: int = 10, channels: int | tuple[int, ...] = 10, blocks: int = 3,
                 pad: int = 1, pool_last: bool = True, unpadded_blocks: int = 0, kaiming: bool = True) -> None:
        super().__init__()
        widths = channels if isinstance(channels, tuple) else (channels,) * blocks
        cin = 3
        for b in range(blocks):
            p = 0 if b < unpadded_blocks else pad
            layers = [nn.Conv2d(cin, widths[b], 3, padding=p), nn.ReLU(inplace=True),
                      nn.Conv2d(widths[b], widths[b], 3, padding=p), nn.ReLU(inplace=True)]
            if b < blocks - 1 or pool_last:
                layers.append(nn.MaxPool2d(2))
            setattr(self, f"block{b + 1}", nn.Sequential(*layers))
            cin = widths[b]
        self.blocks = blocks
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(cin, num_classes)
        if kaiming:  # He initialisation: torch's default leaves a 6+-conv ReLU stack with a vanishing signal
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in range(self.blocks):
            x = getattr(self, f"block{b + 1}")(x)
        return self.classifier(self.flatten(self.pool(x)))


ARCHS = {
    "current": lambda n: OldTinyVGG(n),  # the old tiny_vgg (baseline)
    "adopted": lambda n: TinyVGG(n),  # explorer.models.teaching.TinyVGG now (= pad3_nopool_w8_16_32)
    "pad3_gap": lambda n: VGGGap(n, 10, 3, pad=1, pool_last=True),
    "pad3_gap_nopool": lambda n: VGGGap(n, 10, 3, pad=1, pool_last=False),
    "pad3_gap16": lambda n: VGGGap(n, 16, 3, pad=1, pool_last=True),
    "pad4_gap": lambda n: VGGGap(n, 10, 4, pad=1, pool_last=True),
    "pad4_gap_nopool": lambda n: VGGGap(n, 10, 4, pad=1, pool_last=False),
    "unpad3_gap": lambda n: VGGGap(n, 10, 3, pad=0, pool_last=True),
    "unpad3_gap_nopool": lambda n: VGGGap(n, 10, 3, pad=0, pool_last=False),
    "mix3_gap": lambda n: VGGGap(n, 10, 3, pad=1, pool_last=True, unpadded_blocks=2),
    "pad3_nopool_w20": lambda n: VGGGap(n, (10, 10, 20), 3, pad=1, pool_last=False),
    "pad3_nopool_w8_16_32": lambda n: VGGGap(n, (8, 16, 32), 3, pad=1, pool_last=False),
    "pad4_nopool_w20": lambda n: VGGGap(n, (10, 10, 10, 20), 4, pad=1, pool_last=False),
    "pad3_gap_torchinit": lambda n: VGGGap(n, 10, 3, pad=1, pool_last=True, kaiming=False),
}
BASE = TrainConfig(model="tiny_vgg", dataset="shapes", samples=12000, epochs=10, batch_size=64, lr=2e-3,
                   schedule="cosine", augment=True, seed=0)
# candidate name -> (architecture, recipe overrides)
CANDIDATES: dict[str, tuple[str, dict]] = {name: (name, {}) for name in ARCHS}
CANDIDATES.update({
    "pad3_gap_20k": ("pad3_gap", {"samples": 20000}),
    "pad3_gap_nopool_20k_e6": ("pad3_gap_nopool", {"samples": 20000, "epochs": 6}),
    "w8_16_32_20k_e7": ("pad3_nopool_w8_16_32", {"samples": 20000, "epochs": 7}),
    "w8_16_32_seed1": ("pad3_nopool_w8_16_32", {"seed": 1}),
    "w8_16_32_wd": ("pad3_nopool_w8_16_32", {"weight_decay": 1e-4}),
    "pad3_gap_nopool_lr4": ("pad3_gap_nopool", {"lr": 4e-3}),
    "pad3_gap_e15": ("pad3_gap", {"epochs": 15}),
    "pad3_gap_lr3": ("pad3_gap", {"lr": 3e-3}),
    "pad3_gap_nopool_20k": ("pad3_gap_nopool", {"samples": 20000}),
    "pad4_gap_20k": ("pad4_gap", {"samples": 20000}),
    "pad3_gap16_20k": ("pad3_gap16", {"samples": 20000}),
    "unpad3_gap_20k": ("unpad3_gap", {"samples": 20000}),
    "mix3_gap_20k": ("mix3_gap", {"samples": 20000}),
})

_registered: set[str] = set()


def _register(arch: str) -> str:
    name = f"exp13_{arch}"
    if name not in _registered:
        builder = ARCHS[arch]
        register_model(name, input_shape=(3, 64, 64), family="Experiment", num_classes=10,
                       categories=TINY_VGG_CLASSES)(lambda num_classes=None, _b=builder: _b(num_classes or 10))
        _registered.add(name)
    return name


# --- a second set of drawings, made here -----------------------------------------------------------------------

def _poly(name: str, cx: float, cy: float, r: float, angle: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Outlines with their own proportions (star depth, cross arm width vary), not the library's nor the test's."""
    if name == "square":
        half = r * rng.uniform(0.62, 0.72)  # half the side
        pts = [(-half, -half), (half, -half), (half, half), (-half, half)]
    elif name == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
    elif name == "star":
        inner = rng.uniform(0.38, 0.5)
        pts = [((r if k % 2 == 0 else inner * r) * math.cos(-math.pi / 2 + k * math.pi / 5),
                (r if k % 2 == 0 else inner * r) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    elif name == "cross":
        a = r * rng.uniform(0.28, 0.38)
        pts = [(-a, -r), (a, -r), (a, -a), (r, -a), (r, a), (a, a), (a, r), (-a, r), (-a, a), (-r, a), (-r, -a), (-a, -a)]
    else:
        raise ValueError(name)
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _background(kind: str, side: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    base = rng.uniform(30, 225, 3)
    if kind == "flat":
        bg = np.broadcast_to(base, (side, side, 3)).copy()
    elif kind == "noise":
        bg = base + rng.normal(0, 25, (side, side, 3))
    elif kind == "blotchy":  # smooth random texture: upsampled noise
        small = rng.normal(0, 40, (6, 6, 3)).astype(np.float32)
        bg = base + cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    elif kind == "stripes":
        period = rng.uniform(0.06, 0.15)
        theta = rng.uniform(0, math.pi)
        wave = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
        bg = base + 22 * wave[..., None]
    elif kind == "checker":
        cells = int(rng.integers(6, 12))
        chk = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2) * 2 - 1
        bg = base + 18 * chk[..., None]
    elif kind == "linear":
        theta = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(theta) + yy * math.sin(theta)
        t = (t - t.min()) / (t.max() - t.min())
        other = rng.uniform(30, 225, 3)
        bg = base * (1 - t[..., None]) + other * t[..., None]
    elif kind == "radial":
        d = np.sqrt((xx - rng.uniform(0.2, 0.8)) ** 2 + (yy - rng.uniform(0.2, 0.8)) ** 2)
        d = d / d.max()
        other = rng.uniform(30, 225, 3)
        bg = base * (1 - d[..., None]) + other * d[..., None]
    else:
        raise ValueError(kind)
    return np.clip(bg, 0, 255).astype(np.float32)


OWN_BACKGROUNDS = ("flat", "noise", "blotchy", "stripes", "checker", "linear", "radial", "noise", "linear", "flat")


def own_drawings(per_shape: int = 10, seed: int = 1313) -> list[tuple[str, Image.Image, np.ndarray]]:
    """``per_shape`` drawings of each shape: side 64–256, radius 0.22–0.40 of the side, offset up to ±0.12,
    any angle, a colour clearly brighter or darker than the background, backgrounds of several kinds; drawn with
    PIL at 4× and downsampled (soft edges), mask from the same outline."""
    rng = np.random.default_rng(seed)
    out = []
    for name in SHAPE_NAMES:
        for k in range(per_shape):
            side = int(rng.choice([64, 80, 112, 150, 200, 256]))
            kind = OWN_BACKGROUNDS[k % len(OWN_BACKGROUNDS)]
            bg = _background(kind, side, rng)
            mean_bg = bg.reshape(-1, 3).mean(0)
            while True:
                colour = rng.uniform(0, 255, 3)
                if abs(_luma(colour) - _luma(mean_bg)) >= 60:
                    break
            radius = rng.uniform(0.22, 0.40) * side
            margin = radius / side
            ox, oy = (float(np.clip(rng.uniform(-0.12, 0.12), margin - 0.5, 0.5 - margin)) for _ in range(2))
            cx, cy = side * (0.5 + ox), side * (0.5 + oy)
            angle = rng.uniform(0, 2 * math.pi)
            big = 4
            mask_img = Image.new("L", (side * big, side * big), 0)
            draw = ImageDraw.Draw(mask_img)
            if name == "circle":
                r = radius * rng.uniform(0.8, 0.9) * big
                draw.ellipse([cx * big - r, cy * big - r, cx * big + r, cy * big + r], fill=255)
            else:
                draw.polygon([(x * big, y * big) for x, y in _poly(name, cx, cy, radius, angle, rng)], fill=255)
            alpha = np.asarray(mask_img.resize((side, side), Image.Resampling.BOX), np.float32) / 255
            picture = bg * (1 - alpha[..., None]) + colour * alpha[..., None]
            if k % 3 == 1:  # some with sensor-like noise over everything
                picture = picture + rng.normal(0, 10, picture.shape)
            img = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
            if k % 5 == 4:
                img = img.filter(ImageFilter.GaussianBlur(side / 200))
            out.append((name, img, alpha > 0.5))
    return out


# --- measuring ---------------------------------------------------------------------------------------------------

def measure(model: nn.Module, classes: list[str], mean, std, drawings) -> tuple[float, list[float]]:
    """(accuracy, Grad-CAM inside/outside ratios) exactly as tests/test_teaching_weights.py computes them."""
    transform = basic_transform((3, 64, 64), tuple(mean), tuple(std))
    model.eval()
    layer = default_cam_layer(model, (3, 64, 64))
    correct, ratios, wrong, hits = 0, [], [], []
    for i, (name, img, mask) in enumerate(drawings):
        x = transform(img).unsqueeze(0)
        with torch.no_grad():
            said = classes[int(model(x).argmax(1))]
        correct += said == name
        hits.append(said == name)
        if said != name:
            wrong.append(f"{i}:{name}->{said}")
        cam = grad_cam(model, x, layer, target=classes.index(name))
        small = cv2.resize(mask.astype(np.uint8), (cam.shape[1], cam.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        inside, outside = float(cam[small].mean()), float(cam[~small].mean())
        ratios.append(inside / max(outside, 1e-6))
    if wrong:
        print("   wrong:", " ".join(wrong), flush=True)
    return correct / len(drawings), ratios, hits


TEXTURED = ("blotchy", "stripes", "checker")


def run_candidate(cand: str, out: Path, save: bool) -> str:
    arch, overrides = CANDIDATES[cand]
    config = replace(BASE, model=_register(arch), **overrides)
    config.device, config.cpu_threads, config.log_every = "cpu", 1, 1000
    started = time.perf_counter()
    prep = prepare(config)
    finished = run_training(config, prepared=prep)
    seconds = time.perf_counter() - started
    model = prep.model.eval()
    classes = list(prep.data.classes)
    params = sum(p.numel() for p in model.parameters())
    if save:
        write_builtin_weights(cand, model.state_dict(), {"classes": classes, "mean": list(prep.mean),
                                                        "std": list(prep.std), "arch": arch,
                                                        "recipe": config.to_json()}, out)
    test_drawn = [(name, *_draw(name, *variant)) for name in SHAPE_NAMES for variant in VARIANTS]
    acc_t, rat_t, _ = measure(model, classes, prep.mean, prep.std, test_drawn)
    acc_o, rat_o, hits_o = measure(model, classes, prep.mean, prep.std, own_drawings())
    textured = [OWN_BACKGROUNDS[i % 10] in TEXTURED for i in range(len(hits_o))]  # 10 per shape, in order
    acc_tex = np.mean([h for h, t in zip(hits_o, textured) if t])
    acc_plain = np.mean([h for h, t in zip(hits_o, textured) if not t])
    transform = basic_transform((3, 64, 64), tuple(prep.mean), tuple(prep.std))
    with torch.no_grad():
        preds = model(torch.cat([transform(sample_image(f"shape_{s}")).unsqueeze(0) for s in SHAPE_NAMES])).argmax(1)
    samples_ok = sum(classes[int(p)] == s for p, s in zip(preds, SHAPE_NAMES))
    layer = default_cam_layer(model, (3, 64, 64))
    line = (f"{cand:22s} params {params:6d} cam@{layer:9s} test {finished.test_accuracy:.4f} | "
            f"drawnT {acc_t:.2f} camT med {np.median(rat_t):.2f} >1.2 {np.mean(np.array(rat_t) > 1.2):.2f} | "
            f"drawnO {acc_o:.2f} (plain {acc_plain:.2f} textured {acc_tex:.2f}) camO med {np.median(rat_o):.2f} >1.2 {np.mean(np.array(rat_o) > 1.2):.2f} | "
            f"samples {samples_ok}/5 | best ep {finished.best_epoch}/{config.epochs} | train {seconds:.0f} s")
    print(line, flush=True)
    print("   camT ratios", [round(r, 2) for r in rat_t], flush=True)
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidates", nargs="*", default=["pad3_gap"])
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="keep each candidate's weights here")
    parser.add_argument("--save-drawings", type=Path, default=None, help="write the second set as PNGs here")
    args = parser.parse_args(argv)
    if args.list:
        for name, (arch, over) in CANDIDATES.items():
            print(name, arch, over)
        return 0
    if args.save_drawings:
        args.save_drawings.mkdir(parents=True, exist_ok=True)
        for i, (name, img, mask) in enumerate(own_drawings()):
            img.save(args.save_drawings / f"{i:02d}_{name}.png")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for cand in args.candidates:
            lines.append(run_candidate(cand, out, save=True))
    print("\nSUMMARY")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
