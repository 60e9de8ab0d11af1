"""How fast the app's computations are, each measured against the cheapest way to get the same numbers.

Every figure is a median over repeated calls on one image at 224×224 (batch 1, random but deterministic
weights: speed does not depend on the weights' values). A ratio compares a figure with its *floor*:

- ``forward``: a bare forward pass under ``torch.inference_mode`` (the floor of capture and tables);
- ``fwd_bwd_layer``: a forward pass plus ``torch.autograd.grad`` of the target logit with respect to the
  chosen layer's output only (no parameter gradients): the floor of Grad-CAM and of the full analysis.

Targets (issues 8 and 19), printed beside each figure, "MISSED" where a figure misses its target: Grad-CAM
≤ 1.3× its floor; the full analysis of a new image (predictions, every activation as the pages need them,
default-layer Grad-CAM) ≤ 1.4× a bare forward pass on the CPU, ≤ 1.5× on CUDA; a cached interaction (another
layer, channel or opacity, drawn from numpy already computed) ≤ 50 ms, a whole page rerun ≤ 50 ms of server
time; ``streamlit run`` → first page complete ≤ 2 s, a new session's first page on a warm server ≤ 1 s; the
CLI's ``models``, ``--help`` and an unknown model name ≤ 1 s; our Grad-CAM ≤ 0.5× pytorch-grad-cam's (when that
package is importable; it is not a requirement).

The app server and browser it times start in explorer.devtools.appserver (shared with the load test and the browser
test); page reruns are timed by explorer.devtools.bench_pages. None of them imports Streamlit itself.
"""
from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from explorer.devtools.appserver import AppStart

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS = ("resnet18", "vgg16", "googlenet")
SIZE = 224
TARGETS = {"gradcam": 1.3, "analysis": 1.4, "analysis_cuda": 1.5, "interaction_ms": 50.0, "vs_pytorch_grad_cam": 0.5,
           "first_page_s": 2.0, "warm_session_s": 1.0, "cli_s": 1.0}
# Chromium flags that work offline with Debian's build (see shared FIELD-NOTES).


# ----------------------------------------------------------------------------------------- timing
@dataclass
class Timing:
    """Median time of one operation (wall or CPU clock, see ``use_clock``), with the minor page faults
    it caused per call (first touches of freshly mapped memory: a hidden cost on these VMs)."""

    name: str
    median_ms: float
    runs_ms: list[float] = field(default_factory=list)
    faults_per_call: float = 0.0


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


# Which clock ``measure`` reads: wall time (what a student waits), or this process's CPU time (robust when
# other programs share the cores; exact with ``torch.set_num_threads(1)``, where all work is on one thread).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = CLOCKS["wall"]


def use_clock(name: str) -> None:
    global _clock
    _clock = CLOCKS[name]


def measure(name: str, fn: Callable[[], Any], repeats: int, warmup: int = 1, device: Any = "cpu") -> Timing:
    """Median over ``repeats`` calls after ``warmup`` calls (GPU work is synchronised before each clock read)."""
    return measure_rounds({name: fn}, repeats, warmup, device)[0][name]


def measure_rounds(ops: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                   device: Any = "cpu") -> tuple[dict[str, Timing], list[dict[str, float]]]:
    """Every op once per round, ``repeats`` rounds: medians per op, and each round's times.

    Interleaving makes ratios robust on a shared machine: a floor and the operation compared with it run
    seconds apart under the same load, and the ratio is the median of the per-round ratios.
    """
    clock = _clock
    for _ in range(warmup):
        for fn in ops.values():
            fn()
    _sync(device)
    rounds: list[dict[str, float]] = []
    faults = {name: 0 for name in ops}
    for _ in range(repeats):
        this: dict[str, float] = {}
        for name, fn in ops.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = clock()
            fn()
            _sync(device)
            this[name] = (clock() - start) * 1000.0
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        rounds.append(this)
    timings = {name: Timing(name, statistics.median(r[name] for r in rounds), [r[name] for r in rounds],
                            faults[name] / max(repeats, 1)) for name in ops}
    return timings, rounds


# ------------------------------------------------------------------------------------------ floors
def bare_forward(model: Any, x: Any) -> Any:
    """The floor of everything that only reads activations: one forward pass, no autograd bookkeeping."""
    import torch

    with torch.inference_mode():
        return model(x)


def forward_backward_to_layer(model: Any, x: Any, layer: str, target: int | None = None) -> Any:
    """The floor of Grad-CAM: a forward pass that keeps ``layer``'s output, then the gradient of the target
    logit with respect to that output alone (``torch.autograd.grad``; no parameter gets a ``.grad``).

    The hook only keeps a reference; it is removed in ``finally``. Used on the benchmark's private model.
    """
    import torch

    from explorer.analysis import logits_of
    from explorer.core import hooked

    module = dict(model.named_modules())[layer]
    kept: list[torch.Tensor] = []

    def keep(_module: Any, _inputs: Any, output: Any) -> None:
        if not kept:
            kept.append(output if isinstance(output, torch.Tensor) else output[0])

    with hooked(model) as add:
        add(module.register_forward_hook(keep))
        with torch.enable_grad():
            scores = logits_of(model(x))
            index = int(scores[0].argmax()) if target is None else int(target)
            (grad,) = torch.autograd.grad(scores[0, index], kept[0])
    return grad


# --------------------------------------------------------------------------------------- the results
@dataclass
class ModelReport:
    model: str
    device: str
    cam_layer: str
    timings: dict[str, Timing] = field(default_factory=dict)
    analysis_source: str = ""
    interaction_detail: dict[str, float] = field(default_factory=dict)
    pgc_correlation: float | None = None
    notes: list[str] = field(default_factory=list)
    rounds: list[dict[str, float]] = field(default_factory=list)

    def ms(self, key: str) -> float | None:
        timing = self.timings.get(key)
        return None if timing is None else timing.median_ms

    def ratio(self, key: str, floor: str) -> float | None:
        """Median of the per-round ratios when both ran in the same rounds, else the ratio of medians."""
        paired = [r[key] / r[floor] for r in self.rounds if key in r and r.get(floor)]
        if paired:
            return statistics.median(paired)
        a, b = self.ms(key), self.ms(floor)
        return None if a is None or not b else a / b


def _analysis_callable(loaded: Any, image: Any, cam_layer: str) -> tuple[Callable[[], dict[str, Any]], str]:
    """The full analysis of a *new* image as the Feature-map and Grad-CAM pages run it:
    :func:`explorer.analysis.page_analysis`, the uncached body of the pages' shared pass."""
    from explorer.analysis import page_analysis

    return (lambda: page_analysis(loaded, image)), "explorer.analysis.page_analysis (what the pages run)"


def st_image_bytes(rgb: np.ndarray) -> bytes:
    """What ``st.image`` does with a uint8 RGB array on the server: PIL, then JPEG at quality 100."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


def _tile_and_encode(maps: np.ndarray) -> None:
    """A layer not drawn before, as the Feature-map page draws it: tiled at most DISPLAY_TILE_SIDE px,
    coloured and encoded once as the JPEG its figure embeds."""
    from explorer.imaging import viz
    tiling = viz.tile_channels(maps, order="index", scale="shared", max_side=viz.DISPLAY_TILE_SIDE)
    viz.to_jpeg(viz.colorize(tiling.image, "viridis"))


def _interaction(image: Any, data: dict[str, Any], repeats: int, size: int = SIZE) -> tuple[Timing, dict[str, Any]]:
    """Re-drawing from cached numpy: another layer's channel tile, one channel enlarged, another opacity.

    Each is timed as the page does it plus the server-side image encoding of ``st.image``. The figure is
    the worst median; the tile is timed on the layer with the largest output (the slowest layer a student
    can pick) and on a typical mid-network layer.
    """
    from explorer.imaging import viz
    from explorer.analysis import upsample_cam

    acts = {name: a for name, a in data["activations"].items()
            if not name.endswith(":in") and getattr(a, "ndim", 0) == 3}
    if not acts:
        raise ValueError("the analysis recorded no spatial activations")
    names = list(acts)
    largest = max(names, key=lambda n: acts[n].size)
    middle = names[len(names) // 2]
    raw = data["cams"].get(data.get("default_layer")) if data.get("cams") else None
    cam = upsample_cam(raw if raw is not None else next(iter(data["cams"].values())), (size, size))
    rgb = viz.to_rgb_uint8(image.resize((size, size)))
    opacities = iter(np.linspace(0.2, 0.8, 10_000))
    detail: dict[str, Any] = {
        "tile_largest": measure("tile_largest", lambda: _tile_and_encode(acts[largest]), repeats).median_ms,
        "tile_middle": measure("tile_middle", lambda: _tile_and_encode(acts[middle]), repeats).median_ms,
        "channel": measure("channel", lambda: st_image_bytes(viz.upscale(viz.colorize(viz.normalize(acts[middle][0])), 4)),
                           repeats).median_ms,
        "overlay": measure("overlay", lambda: st_image_bytes(viz.overlay(rgb, cam, alpha=float(next(opacities)))),
                           repeats).median_ms,
    }
    worst = max(v for v in detail.values())
    detail.update(largest_layer=largest, largest_shape=tuple(acts[largest].shape), middle_layer=middle)
    return Timing("interaction", worst, [worst]), detail


def _pytorch_grad_cam(model: Any, x: Any, layer: str, target: int) -> Callable[[], np.ndarray] | None:
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except Exception:
        return None
    module = dict(model.named_modules())[layer]

    def run() -> np.ndarray:
        with GradCAM(model=model, target_layers=[module]) as cam:
            heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
        for p in model.parameters():  # it back-propagates into every parameter: do not keep 100s of MB
            p.grad = None
        return heat[0]

    return run


# --------------------------------------------------------------------------------------- per model
def bench_model(name: str, device: Any, repeats: int, size: int = SIZE, with_pgc: bool = True,
                log: Callable[[str], None] = lambda s: None) -> ModelReport:
    """Every measurement for one model (random weights) on the Grace Hopper sample at ``size``×``size``.

    The model is this benchmark's own copy; the CAM layer is ``explorer.models.loading.default_cam_layer``'s choice
    and the target the top-1 class, so every method explains the same thing.
    """
    from explorer.analysis import attribution
    from explorer.analysis import callable_layers, capture, logits_of
    from explorer.imaging import sample_image
    from explorer.analysis import default_cam_layer
    from explorer.models import load_model
    from explorer.receptive import receptive_field_table
    from explorer.analysis import layer_table

    loaded = load_model(name, weights=None, device=device, input_shape=(3, size, size))
    model = loaded.model
    image = sample_image("grace_hopper")
    x = loaded.preprocess(image).to(device)
    shape = (3, size, size)
    cam_layer = default_cam_layer(model, shape)
    report = ModelReport(name, str(device), cam_layer)
    target = int(logits_of(bare_forward(model, x))[0].argmax())

    calls = [c.name for c in callable_layers(model, x)]
    full, report.analysis_source = _analysis_callable(loaded, image, cam_layer)
    ops: dict[str, Callable[[], Any]] = {
        "forward": lambda: bare_forward(model, x),
        "fwd_bwd_layer": lambda: forward_backward_to_layer(model, x, cam_layer, target),
        "layer_table": lambda: layer_table(model, shape),
        "rf_table": lambda: receptive_field_table(model, shape),
        "capture_all": lambda: capture(model, x, calls),
        "gradcam": lambda: attribution.grad_cam(model, x, cam_layer, target),
        "analysis": full,
    }
    pgc = _pytorch_grad_cam(model, x, cam_layer, target) if with_pgc else None
    if pgc is not None:
        ops["pytorch_grad_cam"] = pgc
    log(f"  {name}: {len(ops)} measurements × {repeats} rounds (CAM layer {cam_layer})…")
    report.timings, report.rounds = measure_rounds(ops, repeats, device=device)
    if pgc is not None:
        ours = attribution.grad_cam(model, x, cam_layer, target)
        report.pgc_correlation = float(np.corrcoef(ours.reshape(-1), np.asarray(pgc()).reshape(-1))[0, 1])
    log(f"  {name}: cached interaction…")
    report.timings["interaction"], report.interaction_detail = _interaction(image, full(), repeats, size)
    if model.training:  # the benchmark must not change the model either
        report.notes.append("model was left in train mode")
    return report


# ------------------------------------------------------------------------------------------ the app
def _fmt(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return ""
    return "ok" if value <= limit else "MISSED"


ROWS: list[tuple[str, str, str | None, float | None]] = [
    # key, label, floor key, target ratio
    ("forward", "bare forward (inference mode)", None, None),
    ("fwd_bwd_layer", "forward + grad to CAM layer (floor)", "forward", None),
    ("layer_table", "layer table (explorer.analysis.shapes.layer_table)", "forward", None),
    ("rf_table", "receptive-field table (explorer.receptive)", "forward", None),
    ("capture_all", "capture every layer call (explorer.analysis.activations.capture)", "forward", None),
    ("gradcam", "Grad-CAM (explorer.analysis.attribution.grad_cam)", "fwd_bwd_layer", TARGETS["gradcam"]),
    ("analysis", "full analysis of a new image", "forward", TARGETS["analysis"]),
    ("pytorch_grad_cam", "pytorch-grad-cam GradCAM (reference)", "fwd_bwd_layer", None),
]


def markdown_table(reports: Sequence[ModelReport]) -> str:
    header = "| measurement | " + " | ".join(f"{r.model} ms | ratio" for r in reports) + " | target |"
    lines = [header, "|---|" + "---:|---:|" * len(reports) + "---|"]
    for key, label, floor, target in ROWS:
        if not any(key in r.timings for r in reports):
            continue
        cells = []
        on_cuda = any(r.device.startswith("cuda") for r in reports)
        if key == "analysis" and on_cuda:
            target = TARGETS["analysis_cuda"]
        for r in reports:
            ratio = r.ratio(key, floor) if floor else None
            mark = f" ({verdict(ratio, target)})" if target and ratio is not None else ""
            cells.append(f"{_fmt(r.ms(key))} | {_ratio(ratio) if floor else ''}{mark}")
        target_text = f"≤ {target}× {'floor' if floor == 'fwd_bwd_layer' else 'bare forward'}" if target else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target_text} |")
    cells = []
    for r in reports:
        ms = r.ms("interaction")
        cells.append(f"{_fmt(ms)} | ({verdict(ms, TARGETS['interaction_ms'])})")
    lines.append("| cached interaction, worst of tile/channel/overlay | " + " | ".join(cells) + " | ≤ 50 ms |")
    if any("pytorch_grad_cam" in r.timings for r in reports):
        cells = []
        for r in reports:
            ratio = r.ratio("gradcam", "pytorch_grad_cam")
            cells.append(f" | {_ratio(ratio)} ({verdict(ratio, TARGETS['vs_pytorch_grad_cam'])}), r = "
                         f"{_fmt(r.pgc_correlation) if r.pgc_correlation is None else f'{r.pgc_correlation:.4f}'}")
        lines.append("| our Grad-CAM ÷ pytorch-grad-cam (heatmap correlation) | " + " | ".join(cells) + " | ≤ 0.5× |")
    return "\n".join(lines)


def details_text(reports: Sequence[ModelReport]) -> str:
    lines = []
    for r in reports:
        d = r.interaction_detail
        lines.append(
            f"- {r.model} (CAM layer `{r.cam_layer}`): interaction medians — tile of the largest layer "
            f"`{d.get('largest_layer')}` {d.get('tile_largest', 0):.1f} ms, tile of `{d.get('middle_layer')}` "
            f"{d.get('tile_middle', 0):.1f} ms, one channel {d.get('channel', 0):.1f} ms, overlay at a new opacity "
            f"{d.get('overlay', 0):.1f} ms (each including its JPEG encoding). Minor page faults per call: "
            + ", ".join(f"{k} {t.faults_per_call:.0f}" for k, t in r.timings.items() if k != "interaction")
            + ". Analysis = " + r.analysis_source + "." + (" " + "; ".join(r.notes) if r.notes else ""))
    return "\n".join(lines)


def app_start_text(start: AppStart, floor: AppStart | None = None) -> str:
    """The app's start beside its targets and, when measured, beside its floor: the same measurement of a bare
    Streamlit page that imports torch (``appserver.FLOOR_SCRIPT``), which no page of the app can beat."""
    def judged(value: float | None, target: float, floor_value: float | None) -> str:
        against = (f"; floor {_fmt(floor_value, ' s')}, {value / floor_value:.2f}× it"
                   if value is not None and floor_value else "")
        return f"{_fmt(value, ' s')} (target ≤ {target:g} s: {verdict(value, target) or 'not measured'}{against})"

    parts = [f"health {_fmt(start.health_s, ' s')}", f"first page title {_fmt(start.title_s, ' s')}",
             f"first page complete {judged(start.complete_s, TARGETS['first_page_s'], floor and floor.complete_s)}",
             "a new session's first page on the warm server "
             + judged(start.warm_session_s, TARGETS['warm_session_s'], floor and floor.warm_session_s)]
    where = " in a new home folder: nothing on disk from earlier runs" if start.restart_s is not None else ""
    text = f"App start (`streamlit run` →{where}): " + ", ".join(parts) + (f" — {start.error}" if start.error else "")
    if start.restart_s is not None:
        text += ("\nA restart (the same home folder: Streamlit's disk cache keeps the memory cap of the first start): "
                 f"first page complete {judged(start.restart_s, TARGETS['first_page_s'], floor and floor.complete_s)}")
    if start.warmed_first_s is not None:
        text += (f"\nA visitor after the server's warm-up (ui.warmup; a second start, its log says it is done at "
                 f"{_fmt(start.warm_up_s, ' s')}): first page complete {_fmt(start.warmed_first_s, ' s')}")
    if floor is not None:
        text += ("\nFloor (the same, for a bare Streamlit page that imports torch): "
                 f"health {_fmt(floor.health_s, ' s')}, first page complete {_fmt(floor.complete_s, ' s')}, "
                 f"a new session's first page {_fmt(floor.warm_session_s, ' s')}"
                 + (f" — {floor.error}" if floor.error else ""))
    return text


def fresh_process_seconds(python_args: Sequence[str], repeats: int = 3) -> float:
    """Wall seconds (median over ``repeats``) of ``python *python_args`` in a fresh process, from the repository."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *python_args], cwd=REPO_ROOT, capture_output=True, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


IMPORT_CASES = (("streamlit", "import streamlit"), ("torch", "import torch"),
                ("torch + torchvision", "import torch, torchvision"),
                # A meta-device pass (the memory estimate behind the sidebar's largest input) imports this.
                ("torch + torch._dynamo", "import torch, torch._dynamo"))


def measure_imports(repeats: int = 3) -> dict[str, float]:
    """Wall seconds (median) of a fresh ``python -c "import ..."`` for each of :data:`IMPORT_CASES`: what the
    first page's imports cost (it needs streamlit, torch and torch._dynamo; torchvision only other models)."""
    return {label: fresh_process_seconds(["-c", code], repeats) for label, code in IMPORT_CASES}


def imports_text(times: dict[str, float]) -> str:
    return ("Imports alone (a fresh `python -c` each, median): "
            + ", ".join(f"`{label}` {value:.2f} s" for label, value in times.items()))


CLI_CASES = (("models", ["models"]), ("--help", ["--help"]), ("unknown model", ["summary", "no_such_model"]))


def measure_cli(repeats: int = 3) -> dict[str, float]:
    """Wall seconds (median) of ``python -m explorer`` answering each of :data:`CLI_CASES`, a fresh process each."""
    return {label: fresh_process_seconds(["-m", "explorer", *argv], repeats) for label, argv in CLI_CASES}


def cli_text(times: dict[str, float]) -> str:
    cells = [f"`{label}` {value:.2f} s ({verdict(value, TARGETS['cli_s'])})" for label, value in times.items()]
    return f"CLI answers (a fresh `python -m explorer` each, median; target ≤ {TARGETS['cli_s']:g} s): " + ", ".join(cells)


# Runs in a child process (this module never imports Streamlit): the real pages through AppTest, timing
# script reruns after one widget change, the analysis already cached. Prints one JSON object.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"


def compare_malloc(args: Any, names: Sequence[str], log: Callable[[str], None] = lambda s: None) -> str:
    """The same measurements in two child processes: glibc's default malloc, then ``MALLOC_TUNABLES``.

    Large activations are ``mmap``-ed and unmapped on every call with the defaults, so each call touches
    fresh pages (minor page faults); raised thresholds keep them on the heap. Returns a Markdown table.
    """
    import json
    import tempfile

    results: dict[str, dict] = {}
    for label, extra in (("default", {}), ("tunables", {"GLIBC_TUNABLES": MALLOC_TUNABLES})):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bench.json"
            cmd = [sys.executable, "-m", "explorer", "bench", "--models", ",".join(names), "--no-app-start", "--no-cli",
                   "--no-pytorch-grad-cam", "--no-page-reruns", "--repeats", str(args.repeats or (5 if args.quick else 15)),
                   "--device", args.device, "--clock", args.clock, "--json", str(out)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            log(f"malloc comparison: {label}…")
            env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
            env.update(extra)
            subprocess.run(cmd, cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
            results[label] = json.loads(out.read_text())
    lines = ["| model | measurement | default ms (faults/call) | tunables ms (faults/call) | ratio |", "|---|---|---:|---:|---:|"]
    for i, name in enumerate(names):
        a = results["default"]["models"][i]["timings"]
        b = results["tunables"]["models"][i]["timings"]
        for key in ("forward", "fwd_bwd_layer", "capture_all", "gradcam", "analysis"):
            if key in a and key in b:
                ratio = b[key]["median_ms"] / a[key]["median_ms"] if a[key]["median_ms"] else float("nan")
                lines.append(f"| {name} | {key} | {a[key]['median_ms']:.1f} ({a[key]['faults_per_call']:.0f}) | "
                             f"{b[key]['median_ms']:.1f} ({b[key]['faults_per_call']:.0f}) | {ratio:.2f}× |")
    return f"malloc comparison (GLIBC_TUNABLES={MALLOC_TUNABLES}):\n\n" + "\n".join(lines)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
