"""Session 14: the notes' MLP-vs-CNN comparison (Lab 4: 25,514 → 2,762 parameters) and the registry's ``get_model``.

Counts are checked against torchinfo and hand formulas, never against the module's own arithmetic."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torchinfo

from explorer.history import NOTES_TOTALS, NotesMLP, mlp_vs_cnn_layers, mlp_vs_cnn_summary, params_by_input_side


def _conv_out(n: int, f: int, s: int) -> int:
    return (n - f) // s + 1  # (N − F + 2P)/S + 1 with P = 0, floored as PyTorch does


def test_the_mlp_has_the_notes_25514_parameters_by_torchinfo_and_by_hand():
    assert torchinfo.summary(NotesMLP(), (1, 1, 28, 28), verbose=0).total_params == 25_514
    assert (784 * 32 + 32) + 2 * 32 + (32 * 10 + 10) == 25_514
    summary = mlp_vs_cnn_summary().set_index("model")
    assert summary.loc["mlp", "params"] == NOTES_TOTALS["mlp"]["params"] == 25_514
    assert summary.loc["cnn", "params"] == NOTES_TOTALS["cnn"]["params"] == 2_762
    # "layer count 2 → 4": weight layers (Linear, Conv2d), not BatchNorm
    assert summary.loc["mlp", "weight layers"] == 2 and summary.loc["cnn", "weight layers"] == 4


def test_multiply_adds_match_a_hand_count_of_each_layer():
    # each weight times one input value, per output position (the Compare page's and the papers' count)
    h1 = _conv_out(28, 5, 2)
    h2 = _conv_out(h1, 5, 2)
    h3 = _conv_out(h2, 3, 1)
    assert (h1, h2, h3) == (12, 4, 2)
    cnn = 1 * 25 * 8 * h1 * h1 + 8 * 25 * 8 * h2 * h2 + 8 * 9 * 8 * h3 * h3 + 32 * 10
    mlp = 784 * 32 + 32 * 10
    summary = mlp_vs_cnn_summary().set_index("model")
    assert summary.loc["cnn", "mult_adds"] == cnn == 57_024
    assert summary.loc["mlp", "mult_adds"] == mlp
    assert summary.loc["cnn", "mult_adds"] > summary.loc["mlp", "mult_adds"]  # fewer weights, each used more
    from explorer.history import compare_models

    compared = compare_models(["mnist_cnn", "lenet5"], receptive=False).set_index("model")
    # the Compare page's figure for the same network (its GFLOPs column is mult-adds in billions)
    assert compared.loc["mnist_cnn", "gflops"] * 1e9 == pytest.approx(cnn)
    layers = mlp_vs_cnn_layers()
    assert layers.groupby("model")["params"].sum().to_dict() == {"mlp": 25_514, "cnn": 2_762}
    assert layers.set_index(["model", "layer"]).loc[("cnn", "conv2"), "output"] == "8x4x4"


@pytest.mark.parametrize("side", [28, 57, 224])
def test_parameters_by_input_side_against_torch_modules_built_by_hand(side):
    row = params_by_input_side([side]).iloc[0]
    assert row["mlp"] == side * side * 32 + 32 + 64 + 330
    h = _conv_out(_conv_out(_conv_out(side, 5, 2), 5, 2), 3, 1)
    convs = nn.Sequential(nn.Conv2d(1, 8, 5, 2), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 5, 2), nn.BatchNorm2d(8),
                          nn.Conv2d(8, 8, 3))
    head = nn.Linear(8 * h * h, 10)
    conv_params = sum(p.numel() for m in convs if isinstance(m, nn.Conv2d) for p in m.parameters())
    assert row["cnn convolutions"] == conv_params == 2_400
    assert row["cnn batchnorm"] == 32
    assert row["cnn head"] == sum(p.numel() for p in head.parameters())
    assert row["cnn"] == row["cnn convolutions"] + row["cnn batchnorm"] + row["cnn head"]


def test_a_side_the_cnn_cannot_take_is_refused_clearly():
    with pytest.raises(ValueError, match="21"):
        params_by_input_side([20])


def test_the_mlp_learns_like_a_network(monkeypatch):
    """The stand-in MLP is a real network: it trains (loss falls) on a separable toy problem."""
    torch.manual_seed(0)
    model = NotesMLP(side=8, hidden=8, num_classes=2)
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def _values(array) -> list:
    from conftest import plotly_array

    return plotly_array(array).tolist()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_course_concepts_tab_shows_the_comparison(app_factory, lang):
    at = app_factory("course_concepts", sel_model="mnist_cnn", sel_weights="none", lang=lang)
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    summary = [f for f in frames if f.isin([25_514]).any().any() and f.isin([2_762]).any().any()]
    assert summary, "the summary table with both totals"
    shown = summary[0]
    names = ("MLP (2층)", "CNN (mnist_cnn)") if lang == "ko" else ("MLP (2 layers)", "CNN (mnist_cnn)")
    assert list(shown.iloc[:, 0]) == list(names)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    mlp_trace = [s for s in specs if s["data"] and s["data"][0].get("name") == "MLP"][-1]["data"][0]
    assert _values(mlp_trace["x"])[-1] == 224 and _values(mlp_trace["y"])[-1] == 224 * 224 * 32 + 32 + 64 + 330
    captions = " ".join(c.value for c in at.caption)
    assert "9.2" in captions and "2.2" in captions  # 25,514 / 2,762 fewer parameters, 57,024 / 25,408 more mult-adds


def test_get_model_builds_what_the_registry_names():
    import explorer

    net = explorer.get_model("mnist_cnn")
    assert sum(p.numel() for p in net.parameters()) == 2_762
    assert not net.training


def _result(final_acc: dict[str, float]) -> dict:
    """A degradation result whose networks end at the given training accuracies (two epochs each)."""
    return {"setting": {"dataset": "digits", "image_size": 32, "epochs": 2, "batch_size": 64, "lr": 0.05},
            "runs": [{"model": m, "epochs": [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "valid_acc": 0.5},
                                             {"epoch": 2, "train_loss": 0.5, "train_acc": acc, "valid_acc": acc}]}
                     for m, acc in final_acc.items()]}


def test_degradation_verdict_reads_the_last_epoch_of_each_network():
    from explorer.training import degradation_result, degradation_verdict

    shipped = json.loads((__import__("pathlib").Path(__file__).resolve().parents[1]
                          / "explorer/training/results/degradation.json").read_text())
    last = {run["model"]: 100 * (1 - run["epochs"][-1]["train_acc"]) for run in shipped["runs"]}
    verdict = degradation_verdict(degradation_result())
    for model, error in last.items():
        assert verdict[model] == pytest.approx(error)
    assert verdict["plain_degrades"] == (last["plain34"] > last["plain18"])
    assert verdict["residual_not_worse"] == (last["resnet34_a"] <= last["resnet18_a"])
    paper_like = degradation_verdict(_result({"plain18": 0.9, "plain34": 0.8, "resnet18_a": 0.9, "resnet34_a": 0.95}))
    assert paper_like["plain_degrades"] and paper_like["residual_not_worse"] and paper_like["shortcuts_help_deep"]
    no_help = degradation_verdict(_result({"plain18": 0.9, "plain34": 0.88, "resnet18_a": 0.9, "resnet34_a": 0.87}))
    assert not no_help["residual_not_worse"] and not no_help["shortcuts_help_deep"]  # 13 % vs 12 %: no "better"
    assert paper_like["resnet34_a"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="resnet34_a"):
        degradation_verdict(_result({"plain18": 0.9, "plain34": 0.8, "resnet18_a": 0.9}))


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_residual_tab_caption_says_what_the_shipped_run_shows(app_factory, lang):
    from explorer.core import translate
    from explorer.training import degradation_result, degradation_verdict

    verdict = degradation_verdict(degradation_result())
    at = app_factory("course_concepts", sel_model="mnist_cnn", sel_weights="none", lang=lang)
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    errors = {k: f"{v:.1f}" for k, v in verdict.items() if not isinstance(v, bool)}
    shipped = verdict["resnet34_a"], verdict["resnet18_a"], verdict["plain34"]
    residual = ("not_worse" if shipped[0] <= shipped[1] else "short_run" if shipped[0] < shipped[2] else "no_help")
    assert translate(f"cc.res.residual_{residual}", lang, **errors) in captions
    for other in {"not_worse", "short_run", "no_help"} - {residual}:
        assert translate(f"cc.res.residual_{other}", lang, **errors) not in captions
    assert f"{verdict['resnet34_a']:.1f} %" in captions and f"{verdict['resnet18_a']:.1f} %" in captions


def test_lenet5_has_the_papers_seven_weight_layers_on_the_compare_page():
    """LeCun et al. (1998): "LeNet-5 comprises seven layers ... all of which contain trainable parameters"; S2 and
    S4 add one multiply per output unit (6·14·14 and 16·5·5) to the conv and FC layers' weight products."""
    from explorer.history import compare_models

    table = compare_models(["lenet5", "lenet5_dense"], receptive=False).set_index("model")
    assert table.loc["lenet5", "weight_layers"] == 7
    assert table.loc["lenet5_dense", "weight_layers"] == 5  # 2 convs + 3 FC, max pools hold no weights
    c3 = 10 * 10 * 25 * (6 * 3 + 6 * 4 + 3 * 4 + 1 * 6)  # C3's 60 connected 5×5 kernels at 10×10
    hand = 28 * 28 * 6 * 25 + 6 * 14 * 14 + c3 + 16 * 5 * 5 + 120 * 400 + 84 * 120 + 10 * 84
    assert table.loc["lenet5", "gflops"] * 1e9 == pytest.approx(hand)


# --- augmentation: the code beside the draws reproduces them from the picture the app offers (review 14) ----------
def _uploads() -> dict[str, tuple[bytes, str, str, tuple[int, int]]]:
    """Uploads the app changes while loading: an EXIF-rotated phone JPEG (shown 240 wide, 300 high once rotated) and
    a transparent PNG (composited on white). Values: (bytes, file name, mime, (width, height) as the app shows it)."""
    import io

    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:240, 0:300]
    rgb = np.stack([xx * 255 // 299, yy * 255 // 239, (xx + yy) % 256], -1).astype(np.uint8)
    exif = Image.fromarray(rgb).getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG", quality=95, exif=exif)
    rgba = np.dstack([rgb, np.tile(np.linspace(0, 255, 300).astype(np.uint8), (240, 1))])
    png = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(png, "PNG")
    return {"exif_jpeg": (jpeg.getvalue(), "p.jpg", "image/jpeg", (240, 300)),
            "transparent_png": (png.getvalue(), "t.png", "image/png", (300, 240))}


@pytest.mark.parametrize("case", ["exif_jpeg", "transparent_png"])
def test_the_augmentation_code_draws_what_the_page_shows_from_the_offered_picture(app_factory, case, tmp_path,
                                                                                   monkeypatch):
    import io

    import numpy as np
    from PIL import Image
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    data, name, mime, shown_size = _uploads()[case]
    stored: dict[str, tuple[str | None, bytes]] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        stored[file_id] = (filename, path_or_data)
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    at = app_factory(None, lang="en")
    at.file_uploader(key="sel_upload").set_value((name, data, mime)).run()
    at.switch_page("pages/augmentation.py").run()
    assert not at.exception, at.exception
    code = next(c.value for c in at.code if "v2.Compose" in c.value)
    button = next(b for b in at.get("download_button") if b.proto.id.endswith("aug_input_png"))
    file_name, picture = stored[button.proto.url.rsplit("/", 1)[-1].split(".")[0]]
    assert file_name == "augment_input.png"
    offered = Image.open(io.BytesIO(picture))
    # the app's orientation and transparency: the offered picture is upright and opaque, and white where the
    # upload was transparent (its left column: alpha 0)
    assert offered.mode == "RGB" and offered.size[0] / offered.size[1] == pytest.approx(
        shown_size[0] / shown_size[1], rel=0.02)
    if case == "transparent_png":
        assert np.asarray(offered)[:, 0].min() >= 250
    (tmp_path / "augment_input.png").write_bytes(picture)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code, namespace)  # the code as shown: imports, the pipeline, and the picture it opens
    seed = int(at.number_input(key="aug_seed").value)
    torch.manual_seed(seed + 0)
    mine = namespace["transform"](namespace["image"])
    page_stats = at.dataframe[0].value  # the page's per-channel numbers of draw 0
    flat = mine.reshape(3, -1).double()
    assert np.allclose(page_stats.iloc[:, 1].to_numpy(float), flat.min(1).values.numpy(), atol=1e-5)
    assert np.allclose(page_stats.iloc[:, 3].to_numpy(float), flat.mean(1).numpy(), atol=1e-5)
    assert any(f"{mine.shape[0]}×{mine.shape[1]}×{mine.shape[2]}" in m.value for m in at.markdown)  # the shape shown


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_erasing_help_follows_the_normalise_toggle(app_factory, lang):
    from explorer.core import translate

    at = app_factory("augmentation", lang=lang)
    assert at.slider(key="aug_erasing").help == translate("aug.erasing_help", lang)
    at.toggle(key="aug_normalize").set_value(False).run()
    at.run()  # the help reads the toggle's value from the run before (the toggle is drawn below the slider)
    assert at.slider(key="aug_erasing").help == translate("aug.erasing_help_plain", lang)
    assert not at.exception, at.exception


# --- class sessions across replicas: the default shared folder is inside the shared runs folder (review 14) ---------
def test_the_default_class_folder_is_inside_the_runs_folder_that_replicas_share(tmp_path, monkeypatch):
    """deploy/ shares /data/runs between replicas, not /data: a class file in the runs folder's parent was each
    container's own. Two processes (two replicas) given only the same runs folder see the same class."""
    import subprocess
    import sys
    from pathlib import Path

    from explorer.core import shared_dir_from_env

    runs = tmp_path / "data" / "runs"
    runs.mkdir(parents=True)
    monkeypatch.delenv("EXPLORER_SHARED_DIR", raising=False)
    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(runs))
    shared = shared_dir_from_env()
    assert shared is not None and runs.resolve() in shared.resolve().parents
    monkeypatch.setenv("EXPLORER_SHARED_DIR", str(tmp_path / "elsewhere"))
    assert shared_dir_from_env() == tmp_path / "elsewhere"  # the explicit setting still wins
    monkeypatch.delenv("EXPLORER_SHARED_DIR")

    root = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "EXPLORER_RUNS_DIR": str(runs), "PYTHONPATH": str(root)}
    env.pop("EXPLORER_SHARED_DIR", None)
    lecturer = subprocess.run(
        [sys.executable, "-c", "from explorer.core import ClassroomStore, shared_dir_from_env\n"
         "store = ClassroomStore(shared_dir_from_env()); code, token = store.start({'page': 'gradcam'})\n"
         "store.publish(code, token, {'page': 'gradcam', 'layer': 'conv1'}); print(code)"],
        capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert lecturer.returncode == 0, lecturer.stderr[-2000:]
    code = lecturer.stdout.strip().splitlines()[-1]
    student = subprocess.run(
        [sys.executable, "-c", "import json, sys\nfrom explorer.core import ClassroomStore, shared_dir_from_env\n"
         f"view = ClassroomStore(shared_dir_from_env()).read({code!r})\n"
         "print(json.dumps(None if view is None else view.state))"],
        capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert student.returncode == 0, student.stderr[-2000:]
    assert json.loads(student.stdout.strip().splitlines()[-1]) == {"page": "gradcam", "layer": "conv1"}
    assert not (tmp_path / "data" / "classes").exists()  # nothing in the replica's own /data
    from explorer.models import list_runs

    assert list_runs(runs) == []  # the shared folder is no run


# --- training: runs whose browser session is gone stop and free their slot (review 14) ---------------------------
def test_a_run_whose_owner_session_is_gone_stops_and_frees_its_slot(tmp_path):
    import time

    from explorer.data import load_dataset
    from explorer.training import TrainConfig, get_worker, start_training

    data = load_dataset("shapes", channels=1, size=28, seed=1, samples=200)
    config = TrainConfig(model="mnist_cnn", epochs=50, batch_size=4, lr=5e-3, device="cpu", log_every=5)
    owner = {"alive": True}
    worker = start_training("review14-owner", [(config, tmp_path / "run")], data=data, max_active=1,
                            owner_alive=lambda: owner["alive"], orphan_grace_s=0.5)  # Streamlit's window: minutes
    deadline = time.monotonic() + 120
    while worker.progress().runs[0].step < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.alive and not worker.orphaned  # owner present: training goes on
    owner["alive"] = False  # the browser reloaded: its session is gone for good
    worker.join(120)
    progress = worker.progress()
    assert not worker.alive and worker.orphaned
    assert progress.status == "stopped" and progress.runs[0].status == "stopped"
    assert progress.runs[0].epoch < 50  # stopped early, with its best checkpoint so far
    assert (tmp_path / "run" / "best.pt").is_file()
    # the slot is free again: another session may start (max_active=1 would refuse while the orphan ran)
    again = start_training("review14-other", [(TrainConfig(model="mnist_cnn", epochs=1, batch_size=32, lr=5e-3,
                                                           device="cpu", max_steps=2), None)],
                           data=data, max_active=1)
    again.join(120)
    assert again.progress().status == "finished" and get_worker("review14-owner") is worker


# --- links carry what the pages' widgets can hold (review 14) -------------------------------------------------------
def _open_link(stem: str, query: dict[str, str]):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for name, value in query.items():
        at.query_params[name] = value
    at.switch_page(f"pages/{stem}.py")
    return at.run()


def _link_warnings(at) -> list[str]:
    return [str(w.value) for w in at.warning if "link" in str(w.value).lower() or "링크" in str(w.value)]


def test_a_feature_maps_link_to_a_middle_step_of_a_block_opens_that_step():
    """resnet18's layer1.0.conv2 offers feature / after bn2 / + shortcut / activation; the page writes kind=step1
    for "after bn2", and that link used to be refused as broken."""
    at = _open_link("feature_maps", {"model": "resnet18", "weights": "none", "input": "64x64",
                                     "layer": "layer1.0.conv2", "kind": "step1"})
    assert not at.exception, at.exception
    assert not _link_warnings(at), _link_warnings(at)
    radio = at.radio(key="maps_kind")
    assert radio.value == "step1"
    assert radio.options[1] == "after layer1.0.bn2 (BatchNorm2d)"  # what the step is, as the page labels it
    assert at.query_params["kind"] == "step1"
    from ui.links import PAGE_PARAMS

    kinds = next(p for p in PAGE_PARAMS["feature_maps"] if p.name == "kind").choices
    assert {"feature", "step1", "step2", "activation"} <= set(kinds)


def test_a_custom_kernel_travels_in_a_link_and_a_bad_one_is_named_not_raised():
    import numpy as np

    kernel = "1,2,1;0,0,0;-1,-2,-1"
    at = _open_link("filters", {"view": "single", "kernel": "custom", "custom": kernel, "lang": "en"})
    assert not at.exception, at.exception
    assert not _link_warnings(at), _link_warnings(at)
    grid = np.array([[at.session_state[f"flt_ed3_{r}_{c}"] for c in range(3)] for r in range(3)])
    assert np.array_equal(grid, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]))
    assert at.query_params["kernel"] == "custom" and at.query_params["custom"] == kernel
    # a 5×5 kernel switches the editor's size
    at = _open_link("filters", {"view": "single", "kernel": "custom", "custom": ";".join(["0,0,1,0,0"] * 5)})
    assert not at.exception and at.session_state["flt_ed_size"] == 5
    # one the editor cannot hold (2×3): the editor keeps its own kernel and says why, in the page's language
    at = _open_link("filters", {"view": "single", "kernel": "custom", "custom": "1,2,3;4,5,6", "lang": "ko"})
    assert not at.exception, at.exception
    assert any("편집기" in str(w.value) for w in at.warning)
    assert at.session_state["flt_ed3_1_1"] == 1.0  # the identity the editor starts with
    # a preset kernel does not carry the editor's text
    at = _open_link("filters", {"view": "single", "kernel": "gaussian", "gsigma": "2.5"})
    assert "custom" not in dict(at.query_params) and at.query_params["gsigma"] == "2.5"
    assert at.slider(key="flt_gsigma").value == 2.5 and not at.exception


def test_a_linked_blur_is_the_blur_on_screen_without_streamlits_default_warning():
    at = _open_link("filters", {"view": "single", "kernel": "gaussian", "gsize": "9", "gsigma": "3"})
    assert not at.exception, at.exception
    assert at.session_state["flt_gsize"] == 9 and at.slider(key="flt_gsigma").value == 3.0
    # Streamlit warns when a widget has a default beside a key that a link set: none may show
    assert not [w.value for w in at.warning if "default value" in str(w.value)]



def test_a_step_past_nine_travels_in_a_link_too():
    from explorer.core import parse_query
    from ui.links import PAGE_PARAMS

    parsed = parse_query({"kind": "step11"}, PAGE_PARAMS["feature_maps"])
    assert parsed.values == {"maps_kind": "step11"} and not parsed.problems


def test_get_model_refuses_a_download_and_an_arch_spec_refuses_a_head_size():
    import explorer

    with pytest.raises(ValueError, match="load_model"):
        explorer.get_model("resnet18", weights="DEFAULT")
    with pytest.raises(ValueError, match="arch"):
        explorer.get_model("arch:in-1x16x16 conv3-4 M FC-10", num_classes=3)
    assert explorer.get_model("arch:in-1x16x16 conv3-4 M FC-10")(torch.zeros(1, 1, 16, 16)).shape == (1, 10)


def test_no_linked_widget_has_a_default_beside_its_key():
    """Streamlit logs a warning (server side) when a widget has both a default and a value set through session state,
    which a link does: every widget whose key a link sets gets its default from st.session_state.setdefault."""
    import ast

    from conftest import ROOT
    from ui.links import GLOBAL_PARAMS, PAGE_PARAMS

    linked = {p.target for p in GLOBAL_PARAMS} | {p.target for params in PAGE_PARAMS.values() for p in params}
    # positional arguments from which a widget's own default is passed (label first)
    default_position = {"slider": 3, "select_slider": 2, "selectbox": 2, "radio": 2, "toggle": 1, "checkbox": 1,
                        "number_input": 3, "text_input": 1, "segmented_control": 2, "pills": 2, "multiselect": 2}
    default_keywords = {"value", "default", "index"}
    offenders = []
    for path in sorted([*(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in default_position):
                continue
            key = next((k.value for k in node.keywords if k.arg == "key"), None)
            if not (isinstance(key, ast.Constant) and key.value in linked):
                continue
            has_default = (len(node.args) > default_position[node.func.attr]
                           or any(k.arg in default_keywords and not (isinstance(k.value, ast.Constant)
                                                                      and k.value.value is None)
                                  for k in node.keywords))
            if has_default:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {key.value}")
    assert not offenders, offenders


# --- the first screen's pictures and image notes (review 14) --------------------------------------------------------
def test_home_shows_the_input_as_its_own_pixels_in_png(app_factory, monkeypatch):
    import io

    import numpy as np
    from PIL import Image
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    from explorer.imaging import sample_image

    stored: list[tuple[str, bytes]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        stored.append((mimetype, path_or_data))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    at = app_factory("home", sel_model="tiny_vgg", sel_weights="none", sel_sample="grace_hopper")
    assert not at.exception, at.exception
    # tiny_vgg takes 3×64×64: the sample resized bilinearly to 64×64 (the transform's own steps, by hand)
    by_hand = np.asarray(sample_image("grace_hopper").convert("RGB").resize((64, 64), Image.Resampling.BILINEAR),
                         dtype=np.int16)
    pictures = [Image.open(io.BytesIO(data)) for mime, data in stored if mime == "image/png"]
    shown = [p for p in pictures if p.size[0] == p.size[1] and p.size[0] % 64 == 0 and p.size[0] >= 448]
    assert shown, [p.size for p in pictures]
    zoom = shown[0].size[0] // 64
    pixels = np.asarray(shown[0].convert("RGB"), dtype=np.int16)
    assert np.abs(pixels[::zoom, ::zoom] - by_hand).max() <= 1  # whole pixels, no JPEG ringing, no smoothing
    assert (pixels[:zoom, :zoom] == pixels[0, 0]).all()
    import torch

    threads = torch.get_num_threads()  # the device as the sidebar names it, not torch's "cpu"
    assert any(f"CPU ({threads} thread" in m.value for m in at.markdown)


def test_a_phone_mpo_photo_gets_no_frames_note_and_a_stretched_16_bit_grey_says_so():
    import io

    import numpy as np
    from PIL import Image

    from explorer.imaging import load_image

    photo = Image.fromarray(np.full((40, 60, 3), 120, np.uint8))
    gain_map = Image.fromarray(np.full((20, 30, 3), 200, np.uint8))
    buf = io.BytesIO()
    photo.save(buf, "MPO", save_all=True, append_images=[gain_map])
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 2
    loaded = load_image(buf.getvalue())
    assert "frames" not in loaded.info.get("explorer_note", "") and loaded.size == (60, 40)
    gif = io.BytesIO()  # a real animation keeps its note
    photo.save(gif, "GIF", save_all=True, append_images=[Image.fromarray(np.zeros((40, 60, 3), np.uint8))])
    assert "first of 2 frames" in load_image(gif.getvalue()).info["explorer_note"]

    dim = io.BytesIO()
    Image.fromarray(np.array([[3000, 3100], [3000, 3100]], np.uint16)).save(dim, "PNG")
    note = load_image(dim.getvalue()).info.get("explorer_note", "")
    assert "3000" in note and "3100" in note and "stretched" in note
    full = io.BytesIO()  # already the whole 16-bit range: nothing to say
    Image.fromarray(np.array([[0, 65535], [3000, 3100]], np.uint16)).save(full, "PNG")
    assert "stretched" not in load_image(full.getvalue()).info.get("explorer_note", "")


# --- the public API refuses what it cannot answer (review 14, light API read) ------------------------------------
def test_the_public_api_refuses_inputs_it_would_answer_wrongly():
    import numpy as np
    import torchinfo

    import explorer

    lenet = explorer.build_model("lenet5")
    with pytest.raises(ValueError, match="C, H, W"):  # (32, 32) ran as one unbatched image, every shape short
        explorer.layer_table(lenet, (32, 32))
    table = explorer.layer_table(lenet, (1, 32, 32))
    reference = torchinfo.summary(lenet, (1, 1, 32, 32), verbose=0)
    assert int(table.loc[table["layer"] == "C1", "params"].item()) == 156
    assert table.loc[table["layer"] == "C1", "output_shape"].item() == "6x28x28"
    assert reference.summary_list[1].output_size == [1, 6, 28, 28]
    assert len(explorer.layer_table(lenet, (np.int64(1), np.int64(32), np.int64(32)))) == len(table)

    net = explorer.build_model("mnist_cnn")
    x = torch.rand(1, 1, 28, 28)
    names = [str(i) for i in range(10)]
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="k"):
            explorer.predict(net, x, k=k, categories=names)
    with pytest.raises(ValueError, match="one image"):
        explorer.predict(net, torch.rand(2, 1, 28, 28), categories=names)
    top = explorer.predict(net, x, k=3, categories=names)
    with torch.no_grad():
        probabilities = torch.softmax(net(x)[0], 0)
    assert [p.index for p in top] == probabilities.argsort(descending=True)[:3].tolist()

    for bad in (0, -3, True, 2.0):
        with pytest.raises(ValueError, match="num_classes"):
            explorer.build_model("mnist_cnn", num_classes=bad)
    with pytest.raises(ValueError, match="complex"):
        explorer.correlate(np.ones((4, 4)), np.array([[1 + 1j, 0], [0, 1]]))


def test_load_model_refuses_an_input_shape_with_no_pixels():
    from explorer.models import load_model

    for bad in ((1, 0, 28), (28, 28), (1, 28, 28, 1)):
        with pytest.raises(ValueError, match="C, H, W"):
            load_model("mnist_cnn", weights=None, device="cpu", input_shape=bad)
    assert load_model("mnist_cnn", weights=None, device="cpu", input_shape=(1, 32, 32)).input_shape == (1, 32, 32)
