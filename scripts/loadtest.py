"""A classroom at once: N students (default 30) on one app server, each with their own image and model.

Loopback only and bounded: starts ``streamlit run app.py`` on 127.0.0.1 at a free port, opens N sessions as
pages of one headless Chromium (Debian's, through Playwright; one browser context per student, so each
is its own Streamlit session sharing the server's ``st.cache_resource`` models), and stops by itself
after ``--max-seconds``.

Each student: opens the Feature-map page, picks a model in the sidebar, uploads their own generated PNG
through the real file input, reads the channel statistics the page shows, goes to the Grad-CAM page
through the sidebar link, reads the top-1 class the page explains, then moves the opacity slider (a cached
interaction). Correctness is checked against an independent computation in this process (a fresh model:
the first convolution's output statistics and the plain forward pass's arg-max for that student's image),
so cross-talk between students, or a shared model flipped to train mode / with changed BatchNorm
statistics, shows up as a mismatch. A probe student runs alone before and after the crowd with the same
image and must get the same, correct, numbers both times.

Reports: per-step page times (p50/p95/max), errors (exceptions shown, time-outs, mismatches), the server's
peak resident memory.

    python scripts/loadtest.py                      # 30 students
    python scripts/loadtest.py --users 8 --json artifacts/loadtest.json
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import re
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer.devtools.appserver import AppServer, CHROMIUM_ARGS, CHROMIUM_PATH, chromium_available, hwm_mb, rss_mb  # noqa: E402
from explorer.core import translate  # noqa: E402

DEFAULT_MODELS = "resnet18,tiny_vgg,mnist_cnn,lenet5_dense"
STAT_NAMES = ("min", "max", "mean", "std")
IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning'
        && document.querySelector('[data-testid="stMain"] h1') !== null
        && document.querySelectorAll('[data-stale="true"]').length === 0;
}"""


# ------------------------------------------------------------------------------------ expectations
@dataclass
class Student:
    index: int
    model: str
    png: bytes
    expected_layer: str = ""
    expected_shape: str = ""  # "C×H×W" of the first conv's output, as the layer picker labels it
    expected_stats: dict[str, float] = field(default_factory=dict)
    expected_top1: int = -1


def student_image(seed: int) -> bytes:
    """A PNG unlike any other student's: noise, a disc and a bar at seed-dependent places and colours."""
    rng = np.random.default_rng(1000 + seed)
    w, h = int(rng.integers(90, 200)), int(rng.integers(90, 200))
    img = Image.fromarray((rng.random((h, w, 3)) * rng.integers(40, 200) + rng.integers(0, 50)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(10, 50))
    draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    bx = int(rng.integers(0, w - 10))
    draw.rectangle([bx, 0, bx + int(rng.integers(5, 30)), h], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def expect(student: Student, models: dict) -> None:
    """What the pages must show for this student, computed without the app's analysis code.

    The model is loaded as the app loads it (same weights choice: pretrained when available, else the
    deterministic random initialisation) but it is this process's own copy; the first convolution is
    applied to the preprocessed image directly and the top-1 class is a plain forward pass's arg-max.
    """
    import torch
    import torch.nn as nn

    from explorer.models import load_model

    if student.model not in models:
        models[student.model] = load_model(student.model, weights="pretrained", device="cpu")
    loaded = models[student.model]
    image = Image.open(io.BytesIO(student.png)).convert("RGB")
    x = loaded.preprocess(image)
    name, first = next((n, m) for n, m in loaded.model.named_modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        fmap = first(x)[0, 0].double().numpy()
        scores = loaded.model(x)
    student.expected_layer = name
    student.expected_shape = "×".join(str(d) for d in first(x).shape[1:])
    student.expected_stats = {"min": float(fmap.min()), "max": float(fmap.max()), "mean": float(fmap.mean()),
                              "std": float(fmap.std())}
    student.expected_top1 = int(scores[0].argmax())


# ----------------------------------------------------------------------------------------- results
@dataclass
class StepTime:
    student: int
    step: str
    seconds: float


@dataclass
class Outcome:
    times: list[StepTime] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # wrong-looking UI that does not change the results
    checked: int = 0  # students whose numbers were compared
    correct: int = 0


def _number(text: str) -> float:
    text = text.strip().replace("−", "-").replace(",", "")
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


# ------------------------------------------------------------------------------------------ browser
async def _idle(page, timeout_ms: int) -> None:
    await page.wait_for_function(IDLE_JS, timeout=timeout_ms, polling=200)
    await asyncio.sleep(0.3)  # a rerun queued by the last message starts within milliseconds: check again
    await page.wait_for_function(IDLE_JS, timeout=timeout_ms, polling=200)


async def _exceptions(page) -> list[str]:
    return [t[:200] for t in await page.locator('[data-testid="stException"]').all_inner_texts()]


def _combobox(page, area: str, label: str):
    """The text input of the select box labelled ``label`` (its value is the option shown)."""
    return page.locator(f'[data-testid="{area}"] [data-testid="stSelectbox"]').filter(has_text=label).locator(
        'input[role="combobox"]')


async def _select_model(page, model: str, timeout_ms: int) -> None:
    """Type the model's name into the sidebar's select box and pick it; retried when a rerun redrew the box
    under the cursor (the list closes and the click lands nowhere)."""
    box = _combobox(page, "stSidebar", translate("sidebar.model", "en"))
    for _ in range(5):
        await box.click()
        await box.fill(model)
        option = page.locator('[role="option"]').filter(has_text=re.compile(rf"^{re.escape(model)}$")).first
        try:
            await option.click(timeout=min(timeout_ms, 20_000))
        except Exception:
            await page.keyboard.press("Escape")
            continue
        for _ in range(30):
            if await box.input_value() == model:
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"could not pick {model} in the sidebar")


async def _dismiss_page_not_found(page) -> bool:
    """Streamlit's "Page not found" dialog (seen on a cold server's first deep link); closes it."""
    dialog = page.get_by_text("Page not found")
    if await dialog.count() and await dialog.first.is_visible():
        await page.keyboard.press("Escape")
        return True
    return False


async def _image_sources(page, area: str) -> list[str]:
    return await page.locator(f'[data-testid="{area}"] [data-testid="stImage"] img').evaluate_all(
        "imgs => imgs.map(i => i.getAttribute('src'))")


async def _until_images_change(page, area: str, before: list[str], timeout_ms: int) -> None:
    """The server redrew an image in ``area`` (its media URL changed): the run the action caused has sent
    its output. (DOM run-state flags alone cannot tell: a quick run under load never shows as "running".)"""
    deadline = time.perf_counter() + timeout_ms / 1000
    while time.perf_counter() < deadline:
        now = await _image_sources(page, area)
        if now and now != before:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no image in {area} changed within {timeout_ms / 1000:.0f} s")


async def run_student(browser, base_url: str, student: Student, outcome: Outcome, tmp: Path, timeout_ms: int,
                      jitter: float = 0.0) -> None:
    """One student's visit; every failure is recorded in ``outcome.errors`` (never raised)."""
    await asyncio.sleep(jitter)
    context = await browser.new_context(viewport={"width": 1100, "height": 1600})
    context.set_default_timeout(timeout_ms)
    page = await context.new_page()
    step = "open"
    who = f"student {student.index} ({student.model})"

    async def timed(name: str, action, ready) -> None:
        """``action``, then ``ready`` (a content condition proving the new run's output arrived), then idle."""
        nonlocal step
        step = name
        started = time.perf_counter()
        await action()
        await ready()
        await _idle(page, timeout_ms)
        outcome.times.append(StepTime(student.index, name, time.perf_counter() - started))
        if await _dismiss_page_not_found(page):
            outcome.errors.append(f"{who}: Streamlit showed 'Page not found' after {name} (page drawn behind it)")
        shown = await _exceptions(page)
        if shown:
            outcome.errors.append(f"{who}: exception shown after {name}: {shown[0]}")

    main_title = page.locator('[data-testid="stMain"] h1')
    layer_box = _combobox(page, "stMain", translate("maps.layer", "en"))
    async def maps_page_drawn() -> None:  # title, the channel statistics and the overlay image all there
        await main_title.filter(has_text=translate("maps.title", "en")).wait_for()
        await page.locator('[data-testid="stMetric"]').nth(3).wait_for()
        await page.locator('[data-testid="stMain"] [data-testid="stImage"] img').first.wait_for()

    try:
        await timed("open feature maps",
                    lambda: page.goto(f"{base_url}/feature_maps", wait_until="domcontentloaded"), maps_page_drawn)
        model_box = _combobox(page, "stSidebar", translate("sidebar.model", "en"))
        if await model_box.input_value() != student.model:

            images_before = await _image_sources(page, "stMain")

            async def new_model_drawn() -> None:  # this model's maps replaced the previous model's
                await _until_images_change(page, "stMain", images_before, timeout_ms)
                await maps_page_drawn()

            await timed("pick model", lambda: _select_model(page, student.model, timeout_ms), new_model_drawn)
        path = tmp / f"student{student.index}.png"
        path.write_bytes(student.png)
        uploader = page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]').first
        sidebar_before = await _image_sources(page, "stSidebar")
        main_before = await _image_sources(page, "stMain")

        async def upload_drawn() -> None:  # the sidebar shows the new image and the page redrew its maps
            await _until_images_change(page, "stSidebar", sidebar_before, timeout_ms)
            await _until_images_change(page, "stMain", main_before, timeout_ms)

        await timed("upload + feature maps", lambda: uploader.set_input_files(str(path)), upload_drawn)
        await page.locator('[data-testid="stMetric"]').nth(3).wait_for()
        layer_text = await layer_box.input_value()
        metrics = await page.locator('[data-testid="stMetric"]').all_inner_texts()
        shown = {}
        for text in metrics:
            lines = [line for line in text.splitlines() if line.strip()]
            if len(lines) >= 2 and lines[0].strip() in STAT_NAMES:
                shown[lines[0].strip()] = _number(lines[-1])
        await timed("to Grad-CAM",
                    lambda: page.locator('[data-testid="stSidebarNavLink"]').filter(
                        has_text=translate("nav.gradcam", "en")).first.click(),
                    lambda: main_title.filter(has_text=translate("cam.title", "en")).wait_for())
        class_text = await _combobox(page, "stMain", translate("cam.class", "en")).input_value()
        match = re.search(r"(\d+)", class_text.split(":", 1)[-1])  # "top-1: 238: Greater Swiss Mountain dog"
        top1 = int(match.group(1)) if match else -1
        slider = page.locator('[data-testid="stMain"] [data-testid="stSlider"]').filter(
            has_text=translate("cam.alpha", "en")).locator('input[type="range"]')
        overlay_before = await _image_sources(page, "stMain")

        async def nudge() -> None:
            await slider.focus()
            await slider.press("ArrowRight")

        await timed("opacity (cached)", nudge,
                    lambda: _until_images_change(page, "stMain", overlay_before, timeout_ms))

        outcome.checked += 1
        problems = []
        if not layer_text.startswith(f"{student.expected_layer} · "):
            problems.append(f"layer shown {layer_text!r}, expected {student.expected_layer}")
        elif not layer_text.endswith(f" · {student.expected_shape}"):
            # The right layer, drawn right, but its label is left over from the previous model.
            outcome.warnings.append(f"{who}: the layer picker reads {layer_text!r}; this model's {student.expected_layer} "
                                    f"is {student.expected_shape} (stale label after the model change)")
        for name in STAT_NAMES:
            want, got = student.expected_stats[name], shown.get(name)
            # The page prints 4 significant digits.
            if got is None or not np.isclose(got, want, rtol=2e-3, atol=2e-4 * max(1.0, abs(want))):
                problems.append(f"{name} shown {got}, expected {want:.5g}")
        if top1 != student.expected_top1:
            problems.append(f"top-1 shown {top1} ({class_text!r}), expected {student.expected_top1}")
        if problems:
            outcome.errors.append(f"{who}: WRONG RESULT: " + "; ".join(problems))
        else:
            outcome.correct += 1
        print(f"  {who} done: {'ok' if not problems else 'WRONG'}", file=sys.stderr, flush=True)
    except Exception as exc:  # a time-out or a broken page: record it and let the others go on
        outcome.errors.append(f"{who}: {type(exc).__name__} during '{step}': {str(exc).splitlines()[0][:200]}")
    finally:
        await context.close()


# ------------------------------------------------------------------------------------------- memory
class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while not self._halt.is_set():
            self.samples.append((time.perf_counter() - start, rss_mb(self.pid)))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    @property
    def peak(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)


# --------------------------------------------------------------------------------------------- main
def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (from /proc; 0 when it is gone)."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _main_async(args: argparse.Namespace, server: AppServer, students: list[Student], probe: Student,
                      tmp: Path, report: dict) -> None:
    from playwright.async_api import async_playwright

    timeout_ms = int(args.step_timeout * 1000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS)
        try:
            # The lecturer opens the app first (a cold server's first deep link shows Streamlit's
            # "Page not found" dialog; see the report).
            warm = await browser.new_page()
            await warm.goto(server.url)
            await warm.locator('[data-testid="stMain"] h1').first.wait_for(timeout=timeout_ms)
            await warm.wait_for_function(IDLE_JS, timeout=timeout_ms)
            await warm.close()
            before = Outcome()
            await run_student(browser, server.url, probe, before, tmp, timeout_ms)
            report["probe_before"] = asdict(before)
            report["rss_after_probe_mb"] = round(rss_mb(server.pid), 1)

            crowd = Outcome()
            rng = random.Random(7)
            started = time.perf_counter()
            cpu_before = cpu_seconds(server.pid)
            tasks = [run_student(browser, server.url, s, crowd, tmp, timeout_ms, jitter=rng.uniform(0, args.jitter))
                     for s in students]
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.max_seconds)
            except asyncio.TimeoutError:
                crowd.errors.append(f"the crowd did not finish within --max-seconds {args.max_seconds:.0f}")
            report["crowd_seconds"] = round(time.perf_counter() - started, 1)
            report["server_cpu_seconds"] = round(cpu_seconds(server.pid) - cpu_before, 1)
            report["crowd"] = asdict(crowd)

            after = Outcome()
            await run_student(browser, server.url, probe, after, tmp, timeout_ms)
            report["probe_after"] = asdict(after)
        finally:
            await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # 10 browsers by default: 30 headless Chromiums on 2 cores measured the browsers more than the server;
    # scripts/ws_load.py measures the server with many more simulated students.
    parser.add_argument("--users", type=int, default=10, help="concurrent students (default 10, at most 60)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"models handed out in turn (default {DEFAULT_MODELS})")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop the crowd after this long (default 900)")
    parser.add_argument("--step-timeout", type=float, default=300, help="seconds one step may take (default 300)")
    parser.add_argument("--jitter", type=float, default=10.0,
                        help="students arrive within this many seconds (default 10)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--server-log", metavar="PATH", default=str(ROOT / "artifacts" / "loadtest-server.log"))
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 60:
        parser.error("--users must be between 1 and 60")
    reason = chromium_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    print(f"computing the expected numbers for {args.users} students…", file=sys.stderr, flush=True)
    cache: dict = {}
    students = [Student(i, models[i % len(models)], student_image(i)) for i in range(args.users)]
    probe = Student(-1, "resnet18" if "resnet18" in models else models[0], student_image(9999))
    for s in [probe, *students]:
        expect(s, cache)
    del cache

    import tempfile

    Path(args.server_log).parent.mkdir(parents=True, exist_ok=True)
    report: dict = {"users": args.users, "models": models}
    with tempfile.TemporaryDirectory() as tmp, AppServer(log_path=Path(args.server_log)) as server:
        report["health_s"] = round(server.wait_healthy(120), 2)
        sampler = RssSampler(server.pid)
        sampler.start()
        try:
            print(f"server on {server.url} (pid {server.pid}); probe, then {args.users} students…",
                  file=sys.stderr, flush=True)
            asyncio.run(_main_async(args, server, students, probe, Path(tmp), report))
        finally:
            sampler.stop()
            report["rss_peak_sampled_mb"] = round(sampler.peak, 1)
            report["rss_hwm_mb"] = round(hwm_mb(server.pid), 1)
            report["rss_end_mb"] = round(rss_mb(server.pid), 1)
    log = Path(args.server_log).read_text(errors="replace") if Path(args.server_log).exists() else ""
    report["server_tracebacks"] = log.count("Traceback")

    crowd = report.get("crowd", {"times": [], "errors": ["no crowd result"], "checked": 0, "correct": 0})
    by_step: dict[str, list[float]] = {}
    for t in crowd["times"]:
        by_step.setdefault(t["step"], []).append(t["seconds"])
    report["steps"] = {step: {"n": len(v), "p50_s": round(_percentile(v, 50), 2), "p95_s": round(_percentile(v, 95), 2),
                              "max_s": round(max(v), 2)} for step, v in by_step.items()}
    analysis = [t["seconds"] for t in crowd["times"] if t["step"] in ("upload + feature maps", "to Grad-CAM")]
    report["page_p50_s"] = round(_percentile(analysis, 50), 2)
    report["page_p95_s"] = round(_percentile(analysis, 95), 2)
    probe_ok = all(report.get(k, {}).get("correct") == 1 for k in ("probe_before", "probe_after"))
    errors = crowd["errors"] + [f"probe {k}: {e}" for k in ("probe_before", "probe_after")
                                for e in report.get(k, {}).get("errors", [])]

    print(f"\nload test: {args.users} students, models {', '.join(models)}; crowd took {report.get('crowd_seconds')} s "
          f"(server CPU {report.get('server_cpu_seconds')} s of it)")
    for step, s in report["steps"].items():
        print(f"  {step:24s} n={s['n']:3d}  p50 {s['p50_s']:6.2f} s  p95 {s['p95_s']:6.2f} s  max {s['max_s']:6.2f} s")
    print(f"  analysis pages (upload+feature maps, Grad-CAM): p50 {report['page_p50_s']} s, p95 {report['page_p95_s']} s")
    print(f"  correct results: {crowd['correct']}/{args.users} students (checked {crowd['checked']}); "
          f"probe alone before/after the crowd correct: {probe_ok}")
    print(f"  server memory: peak RSS {report['rss_hwm_mb']} MB (sampled peak {report['rss_peak_sampled_mb']} MB, "
          f"after probe {report.get('rss_after_probe_mb')} MB, end {report['rss_end_mb']} MB)")
    print(f"  errors: {len(errors)}; tracebacks in the server log: {report['server_tracebacks']}")
    for e in errors[:20]:
        print(f"   - {e}")
    warnings = crowd.get("warnings", [])
    if warnings:
        print(f"  UI warnings: {len(warnings)}, e.g. {warnings[0]}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    ok = not errors and crowd["correct"] == args.users and probe_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
