"""explorer.models.runfolder: run folders, atomic checkpoints, listing and safe loading."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from explorer import models as R
from explorer.models import CheckpointError
from explorer.data import load_shapes
from explorer.training import TrainConfig, run_training


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    data = load_shapes(channels=1, size=28, seed=2, samples=100)
    config = TrainConfig(model="mnist_cnn", epochs=2, batch_size=16, lr=5e-3, device="cpu")
    run_training(config, root / "mnist-shapes", data=data)
    return root / "mnist-shapes"


def test_run_folder_holds_config_metrics_and_checkpoint(trained_run):
    assert {p.name for p in trained_run.iterdir()} >= {"config.json", "metrics.json", "best.pt"}
    config = json.loads((trained_run / "config.json").read_text())
    assert config["model"] == "mnist_cnn" and config["categories"] == ["circle", "square", "triangle", "cross", "star"]
    assert config["input_shape"] == [1, 28, 28] and len(config["mean"]) == 1
    metrics = R.read_metrics(trained_run)
    assert len(metrics["epochs"]) == 2 and 0 <= metrics["test_accuracy"] <= 1
    # a plain weights_only load works: no pickled code needed to read our own checkpoints
    checkpoint = torch.load(trained_run / "best.pt", weights_only=True)
    assert set(checkpoint) >= {"state_dict", "epoch"} and "fc.weight" in checkpoint["state_dict"]


def test_list_runs_finds_loadable_runs_only(trained_run, tmp_path):
    root = trained_run.parent
    (root / "not-a-run").mkdir(exist_ok=True)
    (root / "first-epoch").mkdir(exist_ok=True)
    (root / "first-epoch" / "config.json").write_text(json.dumps({"model": "x"}))  # no checkpoint yet
    infos = R.list_runs(root)
    assert [i.name for i in infos] == ["mnist-shapes"]
    info = infos[0]
    assert info.path == trained_run and info.model_name == "mnist_cnn" and info.input_shape == (1, 28, 28)
    assert info.categories[0] == "circle" and info.status == "finished" and info.epochs == 2
    assert info.test_accuracy == R.read_metrics(trained_run)["test_accuracy"]
    assert R.list_runs(tmp_path / "missing") == []


def test_runs_root_follows_the_environment(trained_run, monkeypatch):
    monkeypatch.setenv(R.RUNS_ENV, str(trained_run.parent))
    assert R.runs_root() == trained_run.parent
    assert [i.name for i in R.list_runs(None)] == ["mnist-shapes"]
    monkeypatch.delenv(R.RUNS_ENV)
    assert R.runs_root() == Path("runs")


def test_load_run_gives_a_loaded_model_with_class_names(trained_run):
    loaded = R.load_run(trained_run, device="cpu")
    assert loaded.categories == loaded.class_names == ["circle", "square", "triangle", "cross", "star"]
    assert loaded.input_shape == (1, 28, 28) and not loaded.model.training
    assert "mnist-shapes" in loaded.weights_status and loaded.weights_key.startswith("run:")
    assert loaded.weights_kind == "run" and loaded.weights_detail.startswith("mnist-shapes · test acc")
    with torch.no_grad():
        assert loaded.model(torch.zeros(2, 1, 28, 28)).shape == (2, 5)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    state = {"w": torch.ones(3)}
    R.save_checkpoint(tmp_path, state, epoch=1)
    good = (tmp_path / "best.pt").read_bytes()

    def crash(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        R.save_checkpoint(tmp_path, {"w": torch.zeros(3)}, epoch=2)
    assert (tmp_path / "best.pt").read_bytes() == good  # the previous best survives
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left behind


def test_damaged_or_missing_checkpoints_are_refused_clearly(trained_run, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((trained_run / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        R.load_run(broken, device="cpu")
    (broken / "best.pt").write_bytes((trained_run / "best.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError):
        R.load_run(broken, device="cpu")

    class Payload:  # pickled code must never run
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": {"fc.weight": torch.zeros(1)}, "x": Payload()}, broken / "best.pt")
    with pytest.raises(CheckpointError):
        R.load_run(broken, device="cpu")
    with pytest.raises(FileNotFoundError):
        R.load_run(tmp_path / "nothing-here", device="cpu")


@pytest.mark.parametrize("name", ["", "../up", "a/b", "..", ".hidden", "x" * 81, "has space"])
def test_run_names_are_single_safe_folder_names(name):
    with pytest.raises(ValueError):
        R.check_run_name(name)


def test_suggested_names_are_unique_and_valid(tmp_path):
    first = R.suggest_run_name("arch:conv3-8 FC-2", "/data/my photos.zip", tmp_path)
    assert R.check_run_name(first) and first.startswith("arch-my_photos-")
    (tmp_path / first).mkdir()
    second = R.suggest_run_name("arch:conv3-8 FC-2", "/data/my photos.zip", tmp_path)
    assert second != first and R.check_run_name(second)
