"""Hostile inputs and situations (issue 14): one server, thirty strangers.

Each test names the problem it guards (1-12 of the issue) and expects a clear message, never a crash, a hang
or unbounded memory. Memory-heavy cases run in a subprocess under an address-space limit
(``resource.setrlimit(RLIMIT_AS)``): a regression fails there instead of taking the machine down. Time-heavy
cases run in a subprocess with a generous timeout (no wall-clock assert on how fast they are).
"""
from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# Imports first, then the limit: the address space measured after the imports plus ``budget`` bytes.
_LIMITED = textwrap.dedent('''
    import resource, sys
    sys.path.insert(0, {root!r})
    {imports}
    def _vm_size():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    _limit = _vm_size() + {budget}
    resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))
''')


def run_limited(imports: str, code: str, budget_mb: int, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter allowed ``budget_mb`` MB of address space beyond its imports."""
    source = _LIMITED.format(root=str(ROOT), imports=imports, budget=budget_mb * 2**20) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def run_with_timeout(code: str, timeout: float) -> subprocess.CompletedProcess:
    source = f"import sys; sys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def zip_bytes(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()


def png_bytes(side: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


# --- 1. memory per request on the Grad-CAM page ----------------------------------------------------------------

def test_1_the_shared_pass_is_budgeted_too():
    """Four sessions once peaked at 8.65 GB: each page's shared pass of efficientnet_b7 at 1024² (the sidebar's
    old limit) allocates ~3.5 GB and was never estimated. Now it is refused before anything is reserved or run."""
    from explorer.analysis import ANALYSIS_BUDGET_BYTES, RequestTooLargeError, pass_cost, reserved_pass
    from explorer.core import MemoryGate
    from explorer.models import build_model

    with torch.device("meta"):
        model = build_model("efficientnet_b7")
    shape = (3, 1024, 1024)
    needed = pass_cost(model, shape, "shared")
    assert needed > ANALYSIS_BUDGET_BYTES + 1024 * 2**20
    gate = MemoryGate(10 * needed)
    with pytest.raises(RequestTooLargeError):
        with reserved_pass(model, shape, "shared", budget=1024 * 2**20, gate=gate):
            pass
    assert gate.peak_reserved == 0  # refused before anything was reserved or run


def test_1_gradcam_page_degrades_then_refuses_with_a_clear_message(app_factory, monkeypatch):
    import ui.analysis_cache as analysis_cache
    from explorer.analysis import analyze, cam_candidates, pass_cost
    from explorer.models import build_model

    # A shared pass keeping 1 MB of activations, and a per-request budget that fits it and Grad-CAM of the
    # last layers of resnet18 at 192² only (figures from the estimates themselves, whatever the calibration).
    # The budget is set where the cost steps: one layer more (an earlier start of the graph) no longer fits.
    monkeypatch.setattr(analysis_cache, "ANALYSIS_BUDGET_BYTES", 2**20)
    model, shape = build_model("resnet18"), (3, 192, 192)
    candidates = cam_candidates([vars(c) for c in analyze(model, torch.rand(1, *shape), None, layers=None).calls])
    shared = pass_cost(model, shape, "shared", max_bytes=2**20)
    costs = [pass_cost(model, shape, "cam", candidates[k:]) for k in range(len(candidates))]
    start = max(k for k in range(1, len(candidates)) if costs[k - 1] > max(costs[k], shared) and costs[k] >= shared)
    budget = costs[start]
    assert budget < pass_cost(model, shape, "cam") and start >= 5
    monkeypatch.setenv("EXPLORER_REQUEST_MB", str(budget / 2**20 + 0.01))
    at = app_factory("gradcam", sel_model="resnet18", sel_weights="none", sel_input="192x192", sel_sample="shapes")
    assert not at.exception
    notes = " ".join(i.value for i in at.info)
    assert "last" in notes and "layers only" in notes  # degraded: fewer layers, said so
    layers = at.selectbox(key="cam_layer").options
    assert [label.split(" · ")[0] for label in layers] == candidates[start:]  # every layer that fits, no more
    monkeypatch.setenv("EXPLORER_REQUEST_MB", "0.001")
    at = app_factory("gradcam", sel_model="resnet18", sel_weights="none", sel_input="64x63", sel_sample="shapes")
    assert not at.exception
    assert any("more than the 0 MB one request may use" in e.value for e in at.error)


@pytest.mark.slow
def test_four_sessions_heaviest_view_stay_under_the_memory_budget():
    """Issue 14's target: 4 sessions at once, Grad-CAM of every layer of efficientnet_b7, peak resident memory under
    6 GB, every session a result or a clear message. At 288² here (a few minutes on 2 cores); the sidebar's largest
    input for it (666² by default) takes ~20 minutes a session: `python scripts/load_hostile.py`, figure in
    docs/SECURITY.md. The server-wide gate bounds the reservations whatever the size."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "load_hostile.py"), "--side", "288"],
                          capture_output=True, text=True, timeout=3000, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["peak_rss_mb"] < 6000, report
    assert report["most_reserved_mb"] <= report["server_budget_mb"]
    for outcome in report["sessions"]:
        assert not outcome["exception"], outcome
        assert outcome["layers"] > 0 or outcome["errors"], outcome


# --- 2. a Build-page network whose outputs together are huge ---------------------------------------------------

def test_2_whole_network_activation_budget():
    from explorer.models.arch import MAX_TOTAL_ACTIVATION, ArchSpecError, plan_arch

    spec = "in-3x512x512 conv3-61 " + "ReLU " * 124 + "GAP FC-10"
    with pytest.raises(ArchSpecError, match="outputs together"):
        plan_arch(spec)
    # Each layer alone is within the per-layer limit (61·512² = 16.0 M values): only the sum is refused.
    assert 61 * 512 * 512 * 125 > MAX_TOTAL_ACTIVATION
    plan_arch("in-3x32x32 conv3-64 conv3-64 M conv3-128 M GAP FC-10")  # ordinary networks still build


# --- 3. checkpoints checked before they are inflated -----------------------------------------------------------

def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_3_stride0_head_is_refused_and_never_cached():
    from explorer.models import CheckpointError, build_model, load_model

    state = {k: v.clone() for k, v in build_model("mnist_cnn").state_dict().items()}
    head = [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 2][-1]
    state[head] = torch.zeros(1).expand(1_000_000, state[head].shape[1])  # 4 bytes stored, 1M classes claimed
    data = _saved(state)
    assert len(data) < 200_000
    with pytest.raises(CheckpointError, match="stride of 0"):
        load_model("mnist_cnn", weights=data, device="cpu")


def test_3_compressed_record_is_refused_before_inflating():
    from explorer.models import CheckpointError, read_state_dict

    plain = _saved({"w": torch.zeros(4 * 2**20)})  # 16 MB of zeros
    squeezed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain)) as src, zipfile.ZipFile(squeezed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    assert len(squeezed.getvalue()) < len(plain) / 100
    with pytest.raises(CheckpointError, match="compressed"):
        read_state_dict(squeezed.getvalue())
    # Under a memory limit far below what the record inflates to, the refusal still comes (no MemoryError).
    result = run_limited("import zipfile, io\nfrom explorer.models import CheckpointError, read_state_dict",
                         f"""
        data = {squeezed.getvalue()!r}
        try:
            read_state_dict(data)
        except CheckpointError as exc:
            print("refused:", exc)
        """, budget_mb=8, timeout=120)
    assert result.returncode == 0 and "refused" in result.stdout, result.stderr[-800:]


# --- 4. private by default ---------------------------------------------------------------------------------------

def test_4_typed_folders_are_confined_to_the_operators_roots(tmp_path, monkeypatch):
    from explorer.data import FolderNotAllowedError, confine_data_folder

    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EXPLORER_DATA_ROOTS", raising=False)
    with pytest.raises(FolderNotAllowedError, match="switched off"):
        confine_data_folder("/etc")
    allowed = tmp_path / "course"
    (allowed / "cats").mkdir(parents=True)
    uploads = tmp_path / "data" / "uploads" / "someone"
    uploads.mkdir(parents=True)
    monkeypatch.setenv("EXPLORER_DATA_ROOTS", f"{allowed}:{tmp_path / 'data'}")
    assert confine_data_folder(str(allowed)) == allowed.resolve()
    for outside in ("/etc", "/usr", str(allowed / ".." / ".."), str(uploads)):
        with pytest.raises(FolderNotAllowedError) as info:
            confine_data_folder(outside)
        assert "passwd" not in str(info.value) and str(uploads) not in str(info.value)  # nothing listed
    (allowed / "link").symlink_to("/etc")
    with pytest.raises(FolderNotAllowedError):
        confine_data_folder(str(allowed / "link"))


def test_4_training_page_refuses_folders_without_listing(app_factory, monkeypatch):
    monkeypatch.delenv("EXPLORER_DATA_ROOTS", raising=False)
    at = app_factory("training", trn_dataset="folder")
    assert not at.exception
    assert any("switched off" in i.value for i in at.info)
    assert not [w for w in at.text_input if w.key == "trn_folder"]


def _fake_run(folder: Path) -> None:
    from explorer.models import save_checkpoint

    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model": "mnist_cnn", "categories": ["a", "b"], "input_shape": [1, 28, 28]}')
    save_checkpoint(folder, {"w": torch.zeros(1)})


def test_4_runs_are_private_per_session_until_shared(tmp_path, monkeypatch):
    from explorer.models import share_run, session_runs_dir, visible_runs

    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(tmp_path))
    _fake_run(tmp_path / "operator-run")
    _fake_run(session_runs_dir("alice") / "my-private-photos")
    assert [r.name for r in visible_runs("bob")] == ["operator-run"]
    assert [r.name for r in visible_runs("alice")] == ["operator-run", "my-private-photos"]
    shared = share_run(session_runs_dir("alice") / "my-private-photos")
    assert shared == tmp_path / "my-private-photos"
    assert "my-private-photos" in [r.name for r in visible_runs("bob")]
    assert share_run(session_runs_dir("alice") / "my-private-photos").name == "my-private-photos-2"


def test_4_sidebar_lists_the_operators_runs_and_this_sessions_only(app_factory, tmp_path, monkeypatch):
    from explorer.models import session_runs_dir

    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(tmp_path))
    _fake_run(tmp_path / "operator-run")
    _fake_run(session_runs_dir("someoneelse") / "my-private-photos")
    _fake_run(session_runs_dir("mine") / "my-own-run")
    at = app_factory("home", trn_session="mine")
    assert not at.exception
    options = at.selectbox(key="sel_model").options
    assert any("operator-run" in o for o in options) and any("my-own-run" in o for o in options)
    assert not any("my-private-photos" in o for o in options)


# --- 5. regular expressions that cannot backtrack --------------------------------------------------------------

def test_5_long_tokens_parse_in_bounded_time():
    # Before: 40k digits took 13 s, 60k 62 s (quadratic). Now each is refused by its length at once; the
    # subprocess's generous timeout catches a regression without timing anything precisely.
    result = run_with_timeout("""
        from explorer.models.arch import ArchSpecError, parse_arch
        from explorer.models.arch.grammar import parse_token
        for text in ("dropout-" + "1" * 100_000 + "x", "conv3-" + "9" * 100_000, "in-" + "1x" * 50_000,
                     "conv3-8" + "/s1" * 30_000):
            for parse in (parse_arch, parse_token):
                try:
                    parse(text)
                except ArchSpecError as exc:
                    assert "too long" in str(exc), exc
        print("ok")
    """, timeout=60)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-800:]


def test_5_random_strings_give_spec_errors_only():
    from explorer.models.arch import ArchSpecError, parse_arch

    rng = random.Random(14)
    alphabet = "0123456789.-/xXspgconvdrupmaxavgfcin ,\t"
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 3000)))
        try:
            parse_arch(text)
        except ArchSpecError:
            pass
    for p in ("dropout-0.25", "dropout-.5", "dropout-0", "dropout"):
        assert parse_arch(p)[0].kind == "dropout"


def test_5_summary_cli_with_a_huge_dropout_token_answers():
    result = subprocess.run([sys.executable, "-m", "explorer", "summary", "--arch", "dropout-" + "1" * 60_000 + "x"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode != 0 and "Traceback" not in result.stderr and "too long" in result.stderr


# --- 6. long attributions do not hold the shared model's lock -------------------------------------------------

class _CountingLock:
    """A re-entrant lock that counts its outermost acquisitions (each is a chance for another user)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0
        self.outermost = 0

    def acquire(self, *args, **kwargs):
        got = self.lock.acquire(*args, **kwargs)
        if got:
            self.depth += 1
            self.outermost += self.depth == 1
        return got

    def release(self):
        self.depth -= 1
        self.lock.release()

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_6_long_attributions_release_the_lock_between_chunks(method):
    from explorer.analysis import attribute
    from explorer.core import locks

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    counting = _CountingLock()
    locks._locks[model] = counting
    x = torch.rand(1, 3, 28, 28)
    attribute(model, x, method, target=1)
    # IG: 24 steps; occlusion: 7x7 windows. Before: one hold for the whole attribution (2 with the target pass).
    assert counting.outermost >= 20
    assert counting.depth == 0


def test_6_chunked_integrated_gradients_agree_with_captum():
    from captum.attr import IntegratedGradients

    from explorer.analysis import integrated_gradients

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 2)).eval()
    x = torch.rand(1, 3, 8, 8)
    reference = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=1, n_steps=16)
    expected = reference[0].abs().sum(0).detach().numpy()
    expected = np.clip(expected / np.percentile(expected, 99.5), 0, 1)
    got = integrated_gradients(model, x, target=1, n_steps=16, internal_batch_size=3)
    assert np.allclose(got, expected, atol=1e-4)


# --- 7. random-number cross-talk --------------------------------------------------------------------------------

def test_7_builds_and_seeded_draws_are_unaffected_by_each_other():
    from explorer.imaging import augment, sample_image
    from explorer.models import build_model

    image = sample_image("shapes")
    config = augment.AugmentConfig(hflip_p=0.5, rotation_degrees=30, translate=0.2)
    alone_draws = [d.clone() for d in augment.draws(image, config, 6, seed=5)]
    alone_weights = {k: v.clone() for k, v in build_model("mnist_cnn").state_dict().items()}
    failures: list[str] = []

    def builder() -> None:
        for _ in range(25):
            weights = build_model("mnist_cnn").state_dict()
            if any(not torch.equal(weights[k], v) for k, v in alone_weights.items()):
                failures.append("build")

    def drawer() -> None:
        for _ in range(25):
            if any(not torch.equal(a, b) for a, b in zip(augment.draws(image, config, 6, seed=5), alone_draws)):
                failures.append("draw")

    threads = [threading.Thread(target=builder), threading.Thread(target=drawer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- 8. disk fill through a zip ---------------------------------------------------------------------------------

def test_8_members_of_exactly_one_mebibyte_are_bounded_as_a_whole(tmp_path):
    from explorer.data import extract_zip

    bomb = zip_bytes([(f"cls/{i}.bmp", bytes(2**20)) for i in range(40)])  # 40 MiB from ~40 kB
    assert len(bomb) < 2**20
    with pytest.raises(ValueError, match="as a whole"):
        extract_zip(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())  # nothing left behind


def test_8_total_size_is_bounded_whatever_the_members(tmp_path, monkeypatch):
    from explorer.data import extract_zip

    monkeypatch.setenv("EXPLORER_ZIP_MAX_MB", "1")
    noise = np.random.default_rng(0).bytes(300_000)  # incompressible: no ratio check helps
    with pytest.raises(ValueError, match="expands to more than 1 MB"):
        extract_zip(zip_bytes([(f"c/{i}.bin", noise) for i in range(5)]), tmp_path / "out")
    assert not list(tmp_path.iterdir())


# --- 9. every extraction problem a clear error; concurrent uploads; page crashes ---------------------------------

@pytest.mark.parametrize("members, message", [
    ([("a/x.png", b"1"), ("a/x.png", b"2")], "appears twice"),
    ([("a/b", b"1"), ("a/b/c.png", b"2")], "both a file and a folder"),
    ([("a/" + "n" * 300 + ".png", b"1")], "name longer"),
    ([("/".join(["d" * 150] * 30) + "/x.png", b"1")], "path longer"),
])
def test_9_extraction_problems_are_clear_errors(tmp_path, members, message):
    from explorer.data import extract_zip

    with pytest.raises(ValueError, match=message):
        extract_zip(zip_bytes(members), tmp_path / "out")
    assert not list(tmp_path.iterdir())


def test_9_the_same_zip_extracted_at_once_never_collides(tmp_path):
    from explorer.data import ZipTargetExistsError, extract_zip

    data = zip_bytes([(f"set/{c}/{i}.png", png_bytes()) for c in ("cat", "dog") for i in range(30)])
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def extract() -> None:
        barrier.wait()
        try:
            extract_zip(data, tmp_path / "same")
            outcomes.append("ok")
        except ZipTargetExistsError:
            outcomes.append("exists")
        except Exception as exc:  # anything else is the bug
            outcomes.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=extract) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(outcomes) <= {"ok", "exists"} and "ok" in outcomes, outcomes
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["cat", "dog"]
    assert [p.name for p in tmp_path.iterdir()] == ["same"]  # no staging folder left


@pytest.mark.parametrize("spec, pages", [
    ("in-2x16x16 conv3-8 GAP FC-3", ["home", "receptive_field", "feature_maps"]),
    ("in-5x16x16 conv3-8 GAP FC-3", ["home", "receptive_field"]),
])
def test_9_built_networks_with_unusual_channel_counts_run_on_the_pages(app_factory, spec, pages):
    from explorer.models import ModelRef

    for page in pages:
        at = app_factory(page, custom_archs=[spec], sel_model=ModelRef.arch(spec).key, sel_weights="none")
        assert not at.exception, (page, [e.message for e in at.exception])


def test_9_a_built_network_with_a_small_input_runs_on_the_training_page(app_factory):
    from explorer.models import ModelRef

    spec = "in-1x6x6 conv3-8 GAP FC-3"
    at = app_factory("training", custom_archs=[spec], sel_model=ModelRef.arch(spec).key, sel_weights="none")
    assert not at.exception
    assert [w for w in at.number_input if w.key and w.key.startswith("trn_size_")][0].value == 6


def test_9_an_unreadable_folder_is_a_message(app_factory, tmp_path, monkeypatch):
    import explorer.data as datasets

    monkeypatch.setenv("EXPLORER_DATA_ROOTS", str(tmp_path))

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "private"))

    monkeypatch.setattr(datasets, "split_image_folder", unreadable)
    at = app_factory("training", trn_dataset="folder")
    at.text_input(key="trn_folder").set_value(str(tmp_path)).run()
    assert not at.exception
    assert at.error


# --- 10. 16-bit images without float64 at full size -----------------------------------------------------------

def test_10_sixteen_bit_image_decodes_under_a_memory_limit(tmp_path):
    side = 6300
    ramp = (np.arange(side * side, dtype=np.uint32) % 65536).astype(np.uint16).reshape(side, side)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    # Before: ~1.6 GB of float64 temporaries (a 303 MB allocation failed at once under this limit).
    result = run_limited("from explorer.imaging import load_image", f"""
        img = load_image({str(path)!r})
        print(img.mode, img.size, img.getextrema())
    """, budget_mb=500)
    assert result.returncode == 0, result.stderr[-800:]
    assert "RGB (2048, 2048)" in result.stdout


def test_10_sixteen_bit_scaling_matches_numpy():
    from explorer.imaging import load_image

    values = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="PNG")
    got = np.asarray(load_image(buf.getvalue()))[..., 0]
    expected = np.round((values.astype(np.float64) - 1000) / 4000 * 255)
    assert np.array_equal(got, expected)


# --- 11. the command line ---------------------------------------------------------------------------------------

def _cli(args: list[str], timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr[-1500:]
    return lines[0]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "photo.png"
    path.write_bytes(png_bytes(40))
    return path


@pytest.mark.parametrize("extra, message", [
    (["--kernel-values", "1e999999999/1,0,0"], "too large"),
    (["--kernel-values", "1" + "0" * 400 + "/3,0,0"], "longer than"),
    (["--kernel-values", "1e300/1e-300,0,0"], "too large"),
    (["--kernel-values", "1e308,0,0"], "too large"),
    (["--kernel", "gaussian", "--gaussian-size", "20001"], "from 1 to 101"),
])
def test_11_filter_numbers_are_bounded(photo, tmp_path, extra, message):
    line = _one_line_error(_cli(["filter", str(photo), *extra, "--png", str(tmp_path / "o.png")], timeout=60))
    assert message in line


def test_11_filter_output_that_is_a_folder(photo, tmp_path):
    assert "is a folder" in _one_line_error(_cli(["filter", str(photo), "--kernel", "sobel_x", "--png", str(tmp_path)]))


def test_11_train_out_is_confined_to_the_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    line = _one_line_error(_cli(["train", "--model", "mnist_cnn", "--epochs", "1", "--out", str(runs / ".." / "x")],
                                env={"EXPLORER_RUNS_DIR": str(runs)}))
    assert "inside the runs folder" in line and not (tmp_path / "x").exists()


def test_11_cli_turns_os_errors_into_one_line(tmp_path, capsys):
    from explorer.cli import main

    dup = tmp_path / "dup.zip"
    dup.write_bytes(zip_bytes([("a/x.png", png_bytes()), ("a/x.png", png_bytes())]))
    assert main(["train", "--model", "mnist_cnn", "--dataset", str(dup), "--out", "x"]) != 0
    err = capsys.readouterr().err
    assert "appears twice" in err and len(err.strip().splitlines()) == 1


# --- 12. minor: clear messages -----------------------------------------------------------------------------------

def test_12_sparse_checkpoint_message_is_clear():
    from explorer.models import CheckpointError, read_state_dict

    data = _saved({"w": torch.sparse_coo_tensor([[0]], [1.0], (3,))})
    with pytest.raises(CheckpointError, match="only dense tensors"):
        read_state_dict(data)


def test_12_huge_kernel_values_are_named_as_such():
    from explorer.imaging import filters

    with pytest.raises(ValueError, match="kernel values must lie between"):
        filters.correlate(np.ones((8, 8)), np.full((3, 3), 1e308))


def test_12_only_allowed_image_formats_are_decoded():
    from explorer.imaging import ALLOWED_FORMATS, ImageLoadError, load_image

    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n%%EOF\n"
    with pytest.raises(ImageLoadError):
        load_image(eps)
    for fmt in ("ICO", "PCX", "PPM"):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buf, format=fmt)
        with pytest.raises(ImageLoadError):
            load_image(buf.getvalue())
    for fmt in ALLOWED_FORMATS:
        if fmt == "MPO":
            continue
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (10, 20, 30)).save(buf, format=fmt)
        assert load_image(buf.getvalue()).size == (16, 16)
