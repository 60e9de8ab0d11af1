"""Your own network on every page (issue 18): a Python file named by the operator, an installed package's entry
point, timm, and functional code (``F.relu``, ``torch.cat``, ``x + y``) seen as layers.

Expected values are computed independently: layer outputs and Grad-CAM by hand with the nets' own modules and
``torch.nn.functional``, receptive fields by back-propagating from one output unit to the input (random positive
weights; the bounding box of the non-zero gradient), shapes by the output-size formula.
"""
from __future__ import annotations

import io
import os
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from explorer.core import hook_count, translate

NETS = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer import register_model


class TinyRes(nn.Module):
    """A small residual network written functionally: no ReLU or pooling modules."""
    input_shape = (3, 32, 32)
    class_names = ("cat", "dog", "bird")

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 2)
        y = self.conv2(F.relu(self.conv1(x)))
        x = F.relu(x + y)
        return self.fc(torch.flatten(F.max_pool2d(x, 2), 1))


class TwoBranch(nn.Module):
    """Inception-like: three branches side by side, concatenated."""
    input_shape = (3, 28, 28)

    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(3, 4, 1)
        self.b3 = nn.Conv2d(3, 4, 3, padding=1)
        self.b5 = nn.Conv2d(3, 4, 5, padding=2)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = torch.cat([F.relu(self.b1(x)), F.relu(self.b3(x)), F.relu(self.b5(x))], 1)
        x = F.avg_pool2d(x, 2)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Needs(nn.Module):
    """A helper that needs arguments: not a model of its own."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)


class _Private(nn.Module):
    def forward(self, x):
        return x


@register_model("course_net", input_shape=(1, 24, 24), family="Course")
def course_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 11 * 11, 10))
'''
MODELS = ("TinyRes", "TwoBranch", "course_net")
PAGES = ("home", "architecture", "receptive_field", "conv_arithmetic", "feature_maps", "gradcam", "filters",
         "augmentation", "training", "compare", "papers", "build")


@pytest.fixture(scope="module")
def nets_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("course") / "nets.py"
    path.write_text(NETS)
    return path


@pytest.fixture
def user_models(nets_file, monkeypatch) -> Path:
    """The nets file in ``$EXPLORER_MODELS`` for this test (the registry forgets it afterwards)."""
    monkeypatch.setenv("EXPLORER_MODELS", str(nets_file))
    return nets_file


def _image_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(path)
    return path


# --- the file and the registry ---------------------------------------------------------------------------------

def test_file_registers_no_argument_classes_and_decorated_builders(user_models):
    from explorer.models import build_model, get_entry, list_models, user_model_names, user_model_problems

    assert set(MODELS) <= set(list_models())
    assert set(user_model_names()) == set(MODELS)  # not Needs (arguments), not _Private, not imported nn classes
    assert not user_model_problems()
    tiny = get_entry("TinyRes")
    assert tiny.input_shape == (3, 32, 32) and tiny.categories == ("cat", "dog", "bird") and tiny.source == "user"
    assert get_entry("TwoBranch").input_shape == (3, 28, 28)
    assert get_entry("course_net").input_shape == (1, 24, 24) and get_entry("course_net").family == "Course"
    # The training lab and re-headed checkpoints ask builders for another head size.
    assert build_model("TinyRes", num_classes=7).fc.out_features == 7
    assert build_model("course_net", num_classes=4)[-1].out_features == 4
    assert build_model("TinyRes").fc.out_features == 3


def test_models_leave_the_registry_with_their_file(user_models, monkeypatch):
    from explorer.models import list_models

    assert "TinyRes" in list_models()
    monkeypatch.setenv("EXPLORER_MODELS", "")
    assert not set(MODELS) & set(list_models())


def test_a_broken_file_is_reported_and_the_others_work(nets_file, tmp_path, monkeypatch, capsys):
    from explorer.models import build_model, list_models, user_model_problems

    broken = tmp_path / "broken_nets.py"
    broken.write_text("import torch\n\nraise RuntimeError('my homework does not import')\n")
    monkeypatch.setenv("EXPLORER_MODELS", os.pathsep.join([str(broken), str(nets_file)]))
    names = list_models()
    assert "TinyRes" in names and "resnet18" in names
    problems = user_model_problems()
    assert len(problems) == 1 and "broken_nets.py" in problems[0].message
    assert "my homework does not import" in problems[0].message and "\n" not in problems[0].message
    err = capsys.readouterr().err
    assert "Traceback" in err and f'File "{broken}", line 3' in err  # the file's own traceback
    build_model("TinyRes")


def test_models_option_parsing(tmp_path, monkeypatch):
    from explorer.models import add_model_paths, models_from_argv

    a, b = tmp_path / "a.py", tmp_path / "b.py"
    assert models_from_argv(["--models", str(a), "--other", "--models=" + os.pathsep.join([str(b), str(a)])]) == [
        str(a), str(b), str(a)]
    monkeypatch.setenv("EXPLORER_MODELS", str(a))
    assert add_model_paths([b, a]) == os.pathsep.join([str(a), str(b.resolve())])
    assert os.environ["EXPLORER_MODELS"] == os.pathsep.join([str(a), str(b.resolve())])


# --- functional code, seen ------------------------------------------------------------------------------------

def _tinyres_by_hand(m, x):
    stem = m.stem(x)
    pooled = F.max_pool2d(F.relu(stem), 2)
    c1 = m.conv1(pooled)
    c2 = m.conv2(F.relu(c1))
    added = pooled + c2
    pooled2 = F.max_pool2d(F.relu(added), 2)
    return {"stem": stem, "relu": F.relu(stem), "max_pool2d": pooled, "conv1": c1, "relu#2": F.relu(c1), "conv2": c2,
            "add": added, "relu#3": F.relu(added), "max_pool2d#2": pooled2, "flatten": torch.flatten(pooled2, 1)}


def _twobranch_by_hand(m, x):
    b1, b3, b5 = m.b1(x), m.b3(x), m.b5(x)
    cat = torch.cat([F.relu(b1), F.relu(b3), F.relu(b5)], 1)
    return {"b1": b1, "relu": F.relu(b1), "b3": b3, "relu#2": F.relu(b3), "b5": b5, "relu#3": F.relu(b5), "cat": cat,
            "avg_pool2d": F.avg_pool2d(cat, 2)}


def _course_by_hand(m, x):
    return {"0": m[0](x), "1": m[1](m[0](x)), "2": m[2](m[1](m[0](x)))}


BY_HAND = {"TinyRes": _tinyres_by_hand, "TwoBranch": _twobranch_by_hand, "course_net": _course_by_hand}


def test_layer_table_lists_functional_calls(user_models):
    from explorer.analysis import layer_table
    from explorer.models import build_model

    table = layer_table(build_model("TinyRes"), (3, 32, 32)).set_index("layer")
    assert list(table.index) == ["stem", "relu", "max_pool2d", "conv1", "relu#2", "conv2", "add", "relu#3",
                                 "max_pool2d#2", "flatten", "fc"]
    assert list(table["type"]) == ["Conv2d", "relu", "max_pool2d", "Conv2d", "relu", "Conv2d", "add", "relu",
                                   "max_pool2d", "flatten", "Linear"]
    assert table.loc["add", "input_shape"] == "8x16x16 | 8x16x16"
    assert table.loc["max_pool2d", "output_shape"] == "8x16x16" and table.loc["max_pool2d", "kernel"] == "2x2"
    assert table.loc["max_pool2d", "formula"].endswith("= 16")  # (32 − 2 + 2·0)/2 + 1
    assert table.loc["flatten", "output_shape"] == "512"
    assert table.loc[["relu", "add", "flatten"], "params"].sum() == 0
    two = layer_table(build_model("TwoBranch"), (3, 28, 28)).set_index("layer")
    assert two.loc["cat", "output_shape"] == "12x28x28" and two.loc["avg_pool2d", "output_shape"] == "12x14x14"
    # Module rows exactly as before, with the functional rows left out on request.
    assert list(layer_table(build_model("TinyRes"), (3, 32, 32), functional=False)["layer"]) == [
        "stem", "conv1", "conv2", "fc"]


@pytest.mark.parametrize("name", MODELS)
def test_every_layer_output_equals_the_hand_computation(user_models, name):
    from explorer.analysis import analyze, callable_layers, capture
    from explorer.models import build_model, get_entry

    model = build_model(name)
    x = torch.rand(1, *get_entry(name).input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = BY_HAND[name](model, x)
    result = analyze(model, x, None)
    names = [c.name for c in result.calls]
    for layer, value in expected.items():
        assert layer in names, layer
        torch.testing.assert_close(result.activations[layer], value, msg=layer)
    got = capture(model, x, list(expected))
    for layer, value in expected.items():
        torch.testing.assert_close(got[layer], value, msg=layer)
    assert [c.name for c in callable_layers(model, x)] == names
    assert hook_count(model) == 0


def test_functional_relu_input_is_the_feature_map(user_models):
    from explorer.analysis import activation_pair, analyze
    from explorer.models import build_model

    model = build_model("TinyRes")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    result = analyze(model, x, None)
    assert activation_pair(result.calls, "conv1", result.activations) == ("conv1", "relu#2")
    assert activation_pair(result.calls, "relu#3") == ("relu#3:in", "relu#3")
    with torch.no_grad():
        added = _tinyres_by_hand(model, x)["add"]
    torch.testing.assert_close(result.activations["relu#3:in"], added)


@pytest.mark.parametrize("layer", ["add", "relu#3", "max_pool2d"])
def test_grad_cam_of_a_functional_output_equals_the_hand_formula(user_models, layer):
    from explorer.analysis import analyze, grad_cam
    from explorer.models import build_model

    model = build_model("TinyRes")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        parts = _tinyres_by_hand(model, x)
    # The rest of the network by hand, from the chosen tensor on.
    act = parts[layer].clone().requires_grad_(True)
    if layer == "max_pool2d":
        after = F.max_pool2d(F.relu(act + model.conv2(F.relu(model.conv1(act)))), 2)
    elif layer == "add":
        after = F.max_pool2d(F.relu(act), 2)
    else:
        after = F.max_pool2d(act, 2)
    logits = model.fc(torch.flatten(after, 1))
    target = int(logits[0].argmax())
    grad, = torch.autograd.grad(logits[0, target], act)
    cam = torch.relu((grad.mean((2, 3))[0][:, None, None] * act.detach()[0]).sum(0))
    result = analyze(model, x, layer, target=target)
    np.testing.assert_allclose(result.cam_raw[layer], cam.numpy(), rtol=1e-4, atol=1e-6)
    # The same layer through captum (the CLI's gradcam), upsampled: its peak is where the hand CAM's is.
    captum_map = grad_cam(model, x, layer, target=target)
    assert captum_map.shape == (32, 32) and float(captum_map.max()) == pytest.approx(1.0)
    assert hook_count(model) == 0


def test_a_network_without_conv_modules_gets_a_grad_cam_layer(tmp_path, monkeypatch):
    from explorer.analysis import analyze, default_cam_layer, layer_table
    from explorer.models import build_model

    path = tmp_path / "allfn.py"
    path.write_text(textwrap.dedent('''
        import torch, torch.nn as nn, torch.nn.functional as F

        class AllFunctional(nn.Module):
            input_shape = (3, 16, 16)

            def __init__(self):
                super().__init__()
                self.w1 = nn.Parameter(torch.randn(4, 3, 3, 3))
                self.w2 = nn.Parameter(torch.randn(4, 4, 3, 3))
                self.fc = nn.Parameter(torch.randn(2, 4))

            def forward(self, x):
                x = F.max_pool2d(F.relu(F.conv2d(x, self.w1, padding=1)), 2)
                x = F.relu(F.conv2d(x, self.w2, padding=1))
                return F.linear(F.adaptive_avg_pool2d(x, 1).flatten(1), self.fc)
    '''))
    monkeypatch.setenv("EXPLORER_MODELS", str(path))
    model = build_model("AllFunctional")
    table = layer_table(model, (3, 16, 16)).set_index("layer")
    assert table.loc["conv2d", "kernel"] == "3x3" and table.loc["conv2d", "mult_adds"] == 4 * 3 * 9 * 16 * 16
    assert default_cam_layer(model, (3, 16, 16)) == "conv2d#2"
    result = analyze(model, torch.rand(1, 3, 16, 16), "conv2d#2")
    assert result.cam_raw["conv2d#2"].shape == (8, 8)


# --- receptive fields against a gradient measurement --------------------------------------------------------

def _positive_copy(model):
    import copy

    positive = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in positive.parameters():
            p.copy_(torch.rand(p.shape, generator=generator) * 0.9 + 0.1)
    return positive


@pytest.mark.parametrize("name", MODELS)
def test_receptive_fields_equal_a_gradient_measurement(user_models, name):
    """For the centre unit of every spatial layer: the rows of input pixels whose gradient is non-zero span exactly
    the field the table gives (size and position, clipped to the image). Random positive weights and inputs keep
    every ReLU open; max pooling routes the gradient to one pixel per window, so the box is the union over
    several random inputs."""
    from explorer import receptive_field_table
    from explorer.models import build_model, get_entry

    shape = get_entry(name).input_shape
    model = _positive_copy(build_model(name))
    table = receptive_field_table(model, shape).set_index("layer")
    generator = torch.Generator().manual_seed(4)
    checked = 0
    for layer, row in table.iterrows():
        if row["out_h"] <= 1 or layer not in BY_HAND[name](model, torch.zeros(1, *shape)):
            continue
        i, j = int(row["out_h"]) // 2, int(row["out_w"]) // 2
        rows_hit, cols_hit = np.zeros(shape[1], bool), np.zeros(shape[2], bool)
        for _ in range(12):
            x = torch.rand(1, *shape, generator=generator).requires_grad_(True)
            out = BY_HAND[name](model, x)[layer]
            grad, = torch.autograd.grad(out[0, :, i, j].sum(), x)
            hit = grad[0].abs().sum(0) > 0
            rows_hit |= hit.any(1).numpy()
            cols_hit |= hit.any(0).numpy()
        for axis, hits, index, size in (("h", rows_hit, i, shape[1]), ("w", cols_hit, j, shape[2])):
            centre = row[f"start_{axis}"] + index * row[f"jump_{axis}"]
            half = (row[f"rf_{axis}"] - 1) / 2
            low, high = max(0, int(np.ceil(centre - half))), min(size - 1, int(np.floor(centre + half)))
            found = np.flatnonzero(hits)
            assert (found.min(), found.max()) == (low, high), f"{name} {layer} {axis}: {found.min()}..{found.max()}"
            assert len(found) == high - low + 1
        checked += 1
    assert checked >= 3


# --- every CLI command ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_every_cli_command(user_models, name, tmp_path, monkeypatch, capsys):
    from explorer.cli import main

    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(tmp_path / "runs"))
    image = _image_file(tmp_path)
    layer = {"TinyRes": "add", "TwoBranch": "cat", "course_net": "2"}[name]
    commands = [
        ["summary", name], ["rf", name], ["activations", name, str(image), "--list"],
        ["activations", name, str(image), "--layer", layer, "--png", str(tmp_path / "maps.png")],
        ["gradcam", name, str(image), "--layer", layer, "--png", str(tmp_path / "cam.png")],
        ["compare", name, "mnist_cnn"],
        ["train", "--model", name, "--dataset", "shapes", "--epochs", "1", "--max-steps", "2", "--samples", "120",
         "--batch", "16", "--device", "cpu", "--out", str(tmp_path / "runs" / "mine")],
        ["summary", str(tmp_path / "runs" / "mine")],  # the run, rebuilt from its config
    ]
    for argv in commands:
        assert main(argv) == 0, argv
        out = capsys.readouterr().out
        assert out.strip(), argv
        if argv[0] == "activations" and "--list" in argv:
            assert layer in out.split()
    assert (tmp_path / "maps.png").stat().st_size > 0 and (tmp_path / "cam.png").stat().st_size > 0


def test_models_option_of_the_cli(nets_file, monkeypatch, capsys):
    from explorer.cli import main

    monkeypatch.setenv("EXPLORER_MODELS", "")  # restored afterwards: --models writes the variable
    assert main(["--models", str(nets_file), "summary", "TinyRes", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("layer,") and any(line.startswith("add,add,") for line in lines)


# --- installed packages ----------------------------------------------------------------------------------------

def test_an_installed_package_registers_through_its_entry_point(tmp_path, monkeypatch):
    """A real (tiny) distribution on sys.path: importlib.metadata finds its entry points as pip would leave them."""
    from explorer.models import ENTRY_POINT_GROUP, build_model, get_entry, list_models, user_model_problems
    from explorer.models.registry import registered
    from explorer.models.user_models import load_entry_points

    package = tmp_path / "site" / "course_nets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent('''
        import torch.nn as nn

        class EntryNet(nn.Module):
            input_shape = (1, 20, 20)

            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 2, 3)
                self.fc = nn.Linear(2 * 18 * 18, 3)

            def forward(self, x):
                return self.fc(self.conv(x).flatten(1))

        class Other(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3 * 224 * 224, 2)

            def forward(self, x):
                return self.fc(x.flatten(1))

        def more():
            return [Other]
    '''))
    dist = tmp_path / "site" / "course_nets-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: course-nets\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ncourse = course_nets.models\n"
                                           "extra = course_nets.models:more\nbroken = course_nets.missing\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    try:
        names = load_entry_points()
        assert {"EntryNet", "Other"} <= set(names)
        assert "EntryNet" in list_models() and get_entry("EntryNet").input_shape == (1, 20, 20)
        assert build_model("EntryNet")(torch.zeros(1, 1, 20, 20)).shape == (1, 3)
        problems = [p for p in user_model_problems() if p.source == "entry point broken"]
        assert len(problems) == 1 and "course_nets.missing" in problems[0].message
    finally:
        monkeypatch.undo()
        load_entry_points()  # none installed now: the problem is forgotten
        for name in ("EntryNet", "Other"):
            registered().pop(name, None)


def test_entry_points_faked_with_importlib_metadata(monkeypatch):
    import importlib.metadata as metadata
    import types

    import torch.nn as nn

    from explorer.models.registry import registered
    from explorer.models.user_models import load_entry_points

    class FakedNet(nn.Module):
        input_shape = (3, 8, 8)

        def forward(self, x):
            return x.mean((2, 3))

    point = types.SimpleNamespace(name="faked", value="faked:FakedNet", load=lambda: FakedNet)
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [point] if group == "explorer.models" else [])
    try:
        assert load_entry_points() == ["FakedNet"]
        assert registered()["FakedNet"].input_shape == (3, 8, 8)
    finally:
        registered().pop("FakedNet", None)


# --- pages ---------------------------------------------------------------------------------------------------

def test_feature_map_and_grad_cam_pages_offer_functional_layers(user_models, app_factory):
    at = app_factory("feature_maps", sel_model="TinyRes", sel_weights="none")
    assert not at.exception
    options = at.selectbox(key="maps_layer").options
    assert any(o.startswith("add ·") for o in options) and any(o.startswith("relu#3 ·") for o in options)
    at.selectbox(key="maps_layer").set_value("add").run()
    assert not at.exception and not at.error
    at.switch_page("pages/gradcam.py").run()
    assert not at.exception and not at.error
    at.selectbox(key="cam_layer").set_value("add").run()
    assert not at.exception and not at.error


def test_a_broken_file_is_one_line_in_the_sidebar(nets_file, tmp_path, monkeypatch, app_factory):
    broken = tmp_path / "homework.py"
    broken.write_text("def homework(:\n    pass\n")
    monkeypatch.setenv("EXPLORER_MODELS", os.pathsep.join([str(broken), str(nets_file)]))
    at = app_factory("architecture", sel_model="TinyRes", sel_weights="none")
    assert not at.exception
    lines = [e.value for e in at.sidebar.error]
    prefix = translate("usermodels.load_error", "en", message="\x00").split("\x00")[0]
    assert len(lines) == 1 and lines[0].startswith(prefix) and "homework.py" in lines[0] and "SyntaxError" in lines[0]
    assert not at.main.error  # the chosen model of that same list works


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_every_page_on_each_user_network(user_models, app_factory, name):
    at = app_factory(None, sel_model=name, sel_weights="none")
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, f"{name} on {page}: {at.exception}"
        assert not at.error, f"{name} on {page}: {[e.value for e in at.error]}"
        assert at.session_state["sel_model"] == name


# --- malicious files ----------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this creates the marker file: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _evil_pt2(tmp_path: Path, marker: Path) -> bytes:
    """A real ``torch.export`` archive whose first weight is flagged ``use_pickle`` and holds the payload."""
    import json
    import zipfile

    import torch.nn as nn

    program = torch.export.export(nn.Sequential(nn.Conv2d(3, 2, 3)).eval(), (torch.zeros(1, 3, 8, 8),))
    good = tmp_path / "good.pt2"
    torch.export.save(program, str(good))
    out = io.BytesIO()
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"].values()))
                first["use_pickle"] = True
                data = json.dumps(config).encode()
                weight_file = first["path_name"]
            zout.writestr(info, data)
    # Second pass: the payload in the weight file the config points at.
    final = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zin, zipfile.ZipFile(final, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(f"/data/weights/{weight_file}"):
                buffer = io.BytesIO()
                torch.save(_Payload(marker), buffer)
                data = buffer.getvalue()
            zout.writestr(info, data)
    return final.getvalue()


@pytest.mark.filterwarnings("ignore")
def test_torch_export_load_runs_code_from_a_crafted_pt2(tmp_path):
    """Why ``.pt2`` uploads are left out (README): torch 2.14's ``torch.export.load`` unpickles with
    ``weights_only=False`` what the archive marks ``use_pickle``."""
    marker = tmp_path / "pt2_ran"
    path = tmp_path / "evil.pt2"
    path.write_bytes(_evil_pt2(tmp_path, marker))
    try:
        torch.export.load(str(path))
    except Exception:
        pass  # the payload ran before the program was checked
    assert marker.exists(), "torch.export.load no longer runs pickled code: .pt2 uploads may be reconsidered"


@pytest.mark.filterwarnings("ignore")
def test_uploaded_files_never_run_code(user_models, tmp_path, app_factory):
    """A nets.py, a pickle payload and a crafted .pt2 given to the sidebar's checkpoint uploader: refused, and
    the marker each would write never appears (the weights uploader never imports and reads weights_only)."""
    marker = tmp_path / "pwned"
    python_upload = f"open({str(marker)!r}, 'w').write('ran')\n" + NETS
    payload = io.BytesIO()
    torch.save({"state_dict": _Payload(marker)}, payload)
    # The uploader accepts .pt/.pth/.bin names only (Streamlit refuses others, AppTest too): a hostile client
    # renames its file, so each payload comes with an accepted name.
    cases = {
        "nets.pt": (python_upload.encode(), "application/octet-stream"),
        "weights.pt": (payload.getvalue(), "application/octet-stream"),
        "raw.pth": (pickle.dumps(_Payload(marker)), "application/octet-stream"),
        "program.pt2.pt": (_evil_pt2(tmp_path, marker), "application/octet-stream"),
    }
    assert not marker.exists()
    prefix = translate("common.model_error", "en", message="\x00").split("\x00")[0]
    at = app_factory("architecture", sel_model="TinyRes", sel_weights="upload")
    assert not at.exception
    for name, (data, mime) in cases.items():
        at.file_uploader(key="sel_checkpoint").set_value((name, data, mime)).run()
        assert not at.exception, f"{name}: {at.exception}"
        assert any(e.value.startswith(prefix) for e in at.error), f"{name}: not refused"
        assert not marker.exists(), f"{name}: code from the upload ran"
