"""The command line (twelfth-session review): a run folder takes --input like any model and refuses other weights,
a corrupt cached weights file is fetched again, numbers outside their range are refused, every error is one line.
Run in-process through ``explorer.cli.main`` (what ``python -m explorer`` calls); figures are checked against
the run's own config.json, PIL and numpy."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.cli import main
from explorer.data import load_shapes
from explorer.models import load_model
from explorer.training import TrainConfig, run_training


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    data = load_shapes(channels=1, size=28, seed=3, samples=60)
    run_training(TrainConfig(model="mnist_cnn", epochs=1, batch_size=16, device="cpu", max_steps=2), root / "r",
                 data=data)
    return root / "r"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and "Traceback" not in err, err
    return lines[-1]


def test_a_run_takes_another_input_size_and_keeps_its_normalisation(run_folder, capsys):
    config = json.loads((run_folder / "config.json").read_text())
    loaded = load_model(str(run_folder), weights=None, device="cpu", input_shape=(1, 56, 56))
    assert loaded.input_shape == (1, 56, 56)
    assert loaded.normalization == (tuple(config["mean"]), tuple(config["std"]))
    # the input as training normalised it: (pixel / 255 - mean) / std, computed by hand from the picture
    picture = Image.fromarray(np.full((56, 56), 200, np.uint8))
    x = loaded.preprocess(picture)
    expected = (200 / 255 - config["mean"][0]) / config["std"][0]
    assert torch.allclose(x, torch.full_like(x, expected), atol=1e-5)
    # the command line uses that size too (it used to answer for 28×28 without a word): mnist_cnn's FC layer is
    # sized for 28×28, so the answer is that 56×56 does not fit
    code, out, err = cli(capsys, "summary", str(run_folder), "--input", "1x56x56")
    assert code == 2 and "1×56×56 does not fit" in one_line_error(err)


def test_a_run_refuses_other_weights(run_folder, capsys, tmp_path):
    other = tmp_path / "w.pt"
    other.write_bytes(b"not a checkpoint")
    code, _, err = cli(capsys, "summary", str(run_folder), "--weights", str(other))
    assert code != 0 and "brings its own trained weights" in one_line_error(err)


def test_a_corrupt_cached_weights_file_is_not_reported_ready(tmp_path, monkeypatch):
    from explorer.models import hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    member = hub.default_weights("resnet18")
    path = hub.hub_checkpoint_path(member)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"12345")  # a truncated copy
    fetched = []

    def download(member_, timeout):  # the network is never used in tests: record that a download was attempted
        fetched.append(member_)
        raise ConnectionError("offline")

    monkeypatch.setattr(hub, "download_to_cache", download)
    monkeypatch.setattr(hub, "is_offline_error", lambda exc: True)
    with pytest.raises(ConnectionError):
        hub.fetch_model_weights("resnet18")
    assert fetched and not path.exists()  # the damaged file was dropped and fetched again


@pytest.mark.parametrize("alpha", ["nan", "7", "-1", "inf"])
def test_gradcam_alpha_outside_0_1_is_refused(alpha, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["gradcam", "mnist_cnn", "x.png", "--png", str(tmp_path / "o.png"), "--alpha", alpha])
    assert stop.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err or alpha == "nan"


@pytest.mark.parametrize("text, reason", [("100000x100000", "too large"), ("0", "positive"), ("abc", "not CxHxW")])
def test_input_errors_say_why(text, reason, capsys):
    with pytest.raises(SystemExit):
        main(["summary", "mnist_cnn", "--input", text])
    assert reason in capsys.readouterr().err


def test_input_hxw_keeps_the_models_channels(capsys):
    code, out, err = cli(capsys, "summary", "mnist_cnn", "--input", "28x28", "--csv")
    assert code == 0, err
    assert out.splitlines()[1].split(",")[3] == "1x28x28"  # the first row's input: one channel, as the model's


def test_npy_is_written_at_exactly_the_path_given(capsys, tmp_path):
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(image)
    target = tmp_path / "raw_act"
    code, _, err = cli(capsys, "activations", "mnist_cnn", str(image), "--layer", "conv1", "--png",
                       str(tmp_path / "a.png"), "--npy", str(target))
    assert code == 0, err
    assert target.is_file() and not (tmp_path / "raw_act.npy").exists()
    assert np.load(target).ndim == 3


def test_models_file_that_does_not_exist_is_one_line(capsys, tmp_path):
    code, _, err = cli(capsys, "--models", str(tmp_path / "nonexist.py"), "models")
    assert code == 2 and "no such file" in one_line_error(err)
    (tmp_path / "nets.txt").write_text("x = 1")
    code, _, err = cli(capsys, "--models", str(tmp_path / "nets.txt"), "models")
    assert code == 2 and "not a Python file" in one_line_error(err)


def test_train_samples_zero_is_refused_not_the_default(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(tmp_path))
    code, _, err = cli(capsys, "train", "--model", "mnist_cnn", "--dataset", "shapes", "--samples", "0",
                       "--epochs", "1", "--max-steps", "1", "--device", "cpu", "--out", "r0")
    assert code != 0 and "samples" in one_line_error(err)


def test_folders_are_named_as_folders(capsys, tmp_path):
    code, _, err = cli(capsys, "summary", str(tmp_path))
    assert code != 0 and "not a training run" in one_line_error(err)
    code, _, err = cli(capsys, "summary", "mnist_cnn", "--weights", str(tmp_path))
    assert code != 0 and "is a folder, not a checkpoint" in one_line_error(err)


def test_graph_names_an_unknown_block_to_expand(capsys):
    code, _, err = cli(capsys, "graph", "mnist_cnn", "--depth", "1", "--expand", "nosuch", "--dot")
    assert code == 2 and "no block named 'nosuch'" in one_line_error(err)
