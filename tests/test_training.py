"""explorer.training.loop: the loop learns, stops cleanly, reloads identically, repeats by seed; the worker; the CLI."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from explorer.training import evaluation as EV
from explorer.training import build as TB
from explorer.training import figures as TF
from explorer.training import parts as TP
from explorer.training import worker as TW
from explorer import training as TR
from explorer.data import DataBundle, ImageTensors, load_shapes
from explorer.models import load_model
from explorer.models import load_run, read_metrics


@pytest.fixture(scope="module")
def shapes28() -> DataBundle:
    return load_shapes(channels=1, size=28, seed=0, samples=3000)


@pytest.fixture(scope="module")
def tiny28() -> DataBundle:
    return load_shapes(channels=1, size=28, seed=1, samples=300)


def _config(**changes) -> TR.TrainConfig:
    base = dict(model="mnist_cnn", epochs=1, batch_size=32, lr=5e-3, device="cpu", log_every=5)
    return TR.TrainConfig(**{**base, **changes})


def test_short_training_lowers_the_loss_and_beats_chance_widely(shapes28, tmp_path):
    finished = TR.run_training(_config(epochs=8), tmp_path / "run", data=shapes28)
    losses = [h["train_loss"] for h in finished.history]
    assert losses[0] > losses[-1] * 1.5
    assert losses[0] < math.log(5) * 1.05  # starts near chance: -ln(1/5)
    chance = 1 / 5
    assert finished.test_accuracy >= 2.5 * chance
    assert finished.evaluation.confusion.sum() == len(shapes28.test)
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "finished" and metrics["test_accuracy"] == finished.test_accuracy
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, 9))
    assert {"train_loss", "train_acc", "valid_loss", "valid_acc"} <= set(metrics["epochs"][0])


def test_events_come_in_order_with_consistent_counts(tiny28):
    events = list(TR.train(_config(epochs=2, log_every=3), None, data=tiny28))
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    started = events[0]
    steps_per_epoch = math.ceil(len(tiny28.train) / 32)
    assert started.steps_per_epoch == steps_per_epoch and started.total_steps == 2 * steps_per_epoch
    steps = [e.step for e in events if e.kind == "step"]
    assert steps == sorted(steps) and steps[-1] == 2 * steps_per_epoch
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2]
    assert started.trainable == started.total_params == sum(
        p.numel() for p in TR.prepare(_config(), tiny28).model.parameters())


def test_stopping_mid_epoch_leaves_a_loadable_checkpoint(tiny28, tmp_path):
    stop = threading.Event()
    run_dir = tmp_path / "stopped"
    events = []
    for event in TR.train(_config(epochs=3, batch_size=8, log_every=2), run_dir, stop=stop, data=tiny28):
        events.append(event)
        if event.kind == "step" and event.step >= 4:
            stop.set()  # the first epoch has 27 steps: this is mid-epoch, before any checkpoint
    finished = events[-1]
    assert finished.kind == "finished" and finished.stopped
    assert max(e.step for e in events if e.kind == "step") == 4
    assert finished.history[-1]["partial"] is True
    loaded = load_run(run_dir, device="cpu")
    assert loaded.categories == tiny28.classes
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "stopped" and metrics["test_accuracy"] is not None
    assert not list(run_dir.glob("*.tmp"))


def test_stop_after_an_epoch_keeps_the_best_checkpoint(tiny28, tmp_path):
    stop = threading.Event()
    run_dir = tmp_path / "kept"
    for event in TR.train(_config(epochs=5, batch_size=8), run_dir, stop=stop, data=tiny28):
        if event.kind == "epoch":
            best_after_one = (run_dir / "best.pt").read_bytes()
        if event.kind == "step" and event.epoch == 2:
            stop.set()
    assert (run_dir / "best.pt").read_bytes() == best_after_one  # the stopped epoch was not saved
    assert len(read_metrics(run_dir)["epochs"]) == 1


def test_saved_run_reloads_with_identical_outputs(tiny28, tmp_path):
    config = _config(epochs=2, batch_size=16)
    prep = TR.prepare(config, tiny28)
    run_dir = tmp_path / "reload"
    finished = TR.run_training(config, run_dir, prepared=prep)
    trained = prep.model.eval()
    x = torch.randn(5, 1, 28, 28)
    via_run = load_run(run_dir, device="cpu")
    via_models = load_model(str(run_dir), device="cpu")
    with torch.no_grad():
        expected = trained(x)
        assert torch.equal(via_run.model(x), expected)
        assert torch.equal(via_models.model(x), expected)
    assert via_models.categories == tiny28.classes and via_models.input_shape == (1, 28, 28)
    # The transform normalises exactly as training did: (pixel/255 - mean) / std, after resizing.
    img = Image.fromarray(np.uint8(np.random.default_rng(0).integers(0, 256, (40, 40, 3))), "RGB")
    grey = np.asarray(img.convert("L").resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    by_hand = (grey - tiny28.mean[0]) / tiny28.std[0]
    np.testing.assert_allclose(via_run.preprocess(img)[0, 0].numpy(), by_hand, atol=1e-6)
    # The test accuracy is that of the best checkpoint, recomputed independently here.
    with torch.no_grad():
        logits = via_run.model((tiny28.test.images.float() / 255 - tiny28.mean[0]) / tiny28.std[0])
    assert finished.test_accuracy == pytest.approx((logits.argmax(1) == tiny28.test.labels).float().mean().item())


def _final_state(config, data) -> dict[str, torch.Tensor]:
    prep = TR.prepare(config, data)
    finished = TR.run_training(config, None, prepared=prep)
    return {**{k: v.clone() for k, v in prep.model.state_dict().items()}, "acc": torch.tensor(finished.test_accuracy)}


def test_runs_repeat_by_seed_even_while_other_users_train(tiny28):
    config = _config(epochs=2, batch_size=16, dropout=0.3, augment=True, seed=7)
    first = _final_state(config, tiny28)
    # Another user's runs (other seeds, dropout and augmentation too) train in the background meanwhile,
    # starting one after the other so that their model building overlaps ours.
    others = [TW.TrainingWorker([(_config(epochs=3, batch_size=8, dropout=0.5, augment=True, seed=s), None)],
                                data=tiny28) for s in range(3)]
    for worker in others:
        worker.start()
    second = _final_state(config, tiny28)
    for worker in others:
        worker.join(120)
        assert worker.progress().status == "finished"
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = _final_state(TR.TrainConfig(**{**config.to_json(), "seed": 8, "ratios": (0.7, 0.2, 0.1)}), tiny28)
    assert not torch.equal(first["fc.weight"], other["fc.weight"])


def test_seeded_build_notices_a_reseed_by_other_code():
    calls = []

    def make():
        calls.append(1)
        if len(calls) == 1:  # other code (e.g. a page) reseeds the global generator mid-build, once
            torch.manual_seed(123)
        return nn.Linear(4, 3)

    with TB.seeded(5):
        reference = nn.Linear(4, 3).state_dict()
    model, reproducible = TB.build_seeded(5, make)
    assert reproducible and len(calls) == 4  # first pair disagreed, second pair agreed
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


def test_teaching_toggles_reach_the_builder(tiny28):
    no_bn = TR.prepare(_config(batch_norm=False), tiny28).model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_bn.modules())
    with_dropout = TR.prepare(_config(dropout=0.5), tiny28).model
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in with_dropout.modules())
    assert isinstance(with_dropout.fc, nn.Linear)  # mnist_cnn's own switch: its layout is unchanged
    assert TB.model_options("mnist_cnn") == {"batch_norm", "dropout"}
    assert TB.model_options("lenet5_dense") == {"dropout"} and TB.model_options("plain18") == {"batch_norm", "dropout"}
    with pytest.raises(ValueError, match="BatchNorm"):
        TR.prepare(_config(model="lenet5_dense", batch_norm=False), tiny28)


@pytest.mark.parametrize("model, changes", [
    ("plain18", dict(batch_norm=False)),
    ("tiny_vgg", dict(dropout=0.5)),
])
def test_toggles_on_other_teaching_models_train_and_reload_identically(model, changes, tmp_path):
    data = load_shapes(channels=3, size=64 if model == "tiny_vgg" else 32, seed=0, samples=60)
    config = _config(model=model, image_size=None if model == "tiny_vgg" else 32, batch_size=8, max_steps=3,
                     **changes)
    prep = TR.prepare(config, data)
    if "batch_norm" in changes:
        assert not any(isinstance(m, nn.BatchNorm2d) for m in prep.model.modules())
    else:  # a dropout layer in front of the classifier, which is still resized to the 5 shapes
        assert isinstance(prep.model.classifier[0], nn.Dropout) and prep.model.classifier[1].out_features == 5
    TR.run_training(config, tmp_path / model, prepared=prep)
    x = torch.randn(2, *data.input_shape)
    with torch.no_grad():
        assert torch.equal(load_run(tmp_path / model, device="cpu").model(x), prep.model.eval()(x))


def test_evaluate_matches_a_hand_computed_confusion_matrix():
    # Each image's pixels encode the class the "model" will predict: value 10*p.
    true = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    pred = torch.tensor([0, 1, 1, 1, 2, 2, 0, 0])
    images = (pred * 10).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()

    class Decoder(nn.Module):
        def forward(self, x):
            p = (x.mean((1, 2, 3)) * 255 / 10).round().long()
            return nn.functional.one_hot(p, 3).float() * 5

    ev = EV.evaluate(Decoder(), ImageTensors(images, true), mean=(0.0,), std=(1.0,), classes=["a", "b", "c"])
    by_hand = np.zeros((3, 3), dtype=int)
    for t_, p_ in zip(true.tolist(), pred.tolist()):
        by_hand[t_, p_] += 1
    assert (ev.confusion == by_hand).all()
    assert ev.accuracy == pytest.approx(5 / 8)
    assert sorted(m["index"] for m in ev.misclassified) == [1, 4, 6]
    assert ev.per_class_accuracy()["b"] == pytest.approx(2 / 3)


def test_learning_rate_schedules():
    assert TP.lr_factor("none", 50, 100, 10, 10) == 1.0
    assert TP.lr_factor("cosine", 0, 100, 10, 10) == 1.0
    assert TP.lr_factor("cosine", 50, 100, 10, 10) == pytest.approx(0.5)
    assert TP.lr_factor("cosine", 100, 100, 10, 10) == pytest.approx(0.0)
    # step: ×0.1 after each third of 9 epochs (every 3 epochs of 10 steps)
    assert [TP.lr_factor("step", s, 90, 10, 9) for s in (0, 29, 30, 60)] == pytest.approx([1, 1, 0.1, 0.01])


def test_augmentation_keeps_shapes_and_is_seeded():
    x = torch.rand(4, 3, 16, 16)
    a = TP.augment_batch(x, torch.Generator().manual_seed(0), flip=True)
    b = TP.augment_batch(x, torch.Generator().manual_seed(0), flip=True)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_worker_runs_in_the_background_and_stops_cleanly(tiny28, tmp_path):
    run_dir = tmp_path / "worker"
    worker = TW.start_training("session-a", [(_config(epochs=50, batch_size=4), run_dir)], data=tiny28)
    with pytest.raises(TW.RunInProgressError):
        TW.start_training("session-a", [(_config(), tmp_path / "second")], data=tiny28)
    deadline = time.monotonic() + 120
    while worker.progress().runs[0].step < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert TW.stop_training("session-a")
    worker.join(120)
    progress = worker.progress()
    assert not worker.alive and progress.status == "stopped" and progress.done
    assert progress.runs[0].status == "stopped" and progress.runs[0].test_accuracy is not None
    assert load_run(run_dir, device="cpu").categories == tiny28.classes
    assert TW.get_worker("session-a") is worker
    # finished: the same session may start again
    again = TW.start_training("session-a", [(_config(max_steps=2), tmp_path / "again")], data=tiny28)
    again.join(120)
    assert again.progress().status == "finished"


def test_worker_reports_failures_instead_of_dying(tiny28):
    bad = _config(model="resnet18")  # 3-channel 224×224 network, 1×28×28 data
    worker = TW.TrainingWorker([(bad, None)], data=tiny28).start()
    worker.join(120)
    progress = worker.progress()
    assert progress.status == "failed" and "needs" in progress.runs[0].error


def test_degradation_experiment_trains_plain_and_residual_on_the_same_data(tmp_path):
    base = TR.TrainConfig(dataset="shapes", samples=60, image_size=32, epochs=1, batch_size=8, max_steps=2,
                          device="cpu", seed=3)
    configs = TR.degradation_configs(base, 18)
    assert [c.model for c in configs] == ["plain18", "resnet18_a"]
    assert [c.model for c in TR.degradation_configs(base)] == ["plain18", "plain34", "resnet18_a", "resnet34_a"]
    assert all(c.seed == 3 and c.image_size == 32 and c.mode == "scratch" for c in configs)
    worker = TW.TrainingWorker([(c, tmp_path / c.model) for c in configs]).start()
    worker.join(300)
    progress = worker.progress()
    assert progress.status == "finished", [r.error for r in progress.runs]
    assert [r.status for r in progress.runs] == ["finished", "finished"]
    assert progress.runs[0].started.counts == progress.runs[1].started.counts
    fig = TF.curves_figure({r.model: r.history for r in progress.runs})
    assert len(fig.data) == 8  # 2 runs × (train, valid) × (loss, accuracy)
    with pytest.raises(ValueError):
        TR.degradation_configs(base, 50)


def test_config_validation():
    with pytest.raises(ValueError):
        TR.TrainConfig(optimizer="rmsprop").validate()
    with pytest.raises(ValueError):
        TR.TrainConfig(lr=0).validate()
    with pytest.raises(ValueError):
        TR.TrainConfig(mode="freeze").validate()
    assert TR.TrainConfig.from_json(TR.TrainConfig(seed=4).to_json()) == TR.TrainConfig(seed=4)


def test_cli_trains_and_prints_per_epoch_metrics(tmp_path, capsys, monkeypatch):
    from explorer.cli import main

    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(tmp_path))  # --out must lie inside the runs folder
    out = tmp_path / "cli-run"
    code = main(["train", "--model", "mnist_cnn", "--dataset", "shapes", "--samples", "100", "--epochs", "2",
                 "--batch", "16", "--lr", "0.005", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert sum(line.startswith("epoch ") for line in printed.splitlines()) == 2 and "test accuracy" in printed
    assert load_run(out, device="cpu").input_shape == (1, 28, 28)
    assert main(["train", "--model", "mnist_cnn", "--out", str(out)]) == 2  # not empty: refused


def test_cli_reports_an_offline_dataset_cleanly(tmp_path, capsys, monkeypatch):
    from explorer.data import torchvision_sets as torchvision_data
    from explorer.cli import main

    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(torchvision_data, "network_reachable", lambda urls, timeout=3.0: (False, "offline (test)"))
    code = main(["train", "--model", "mnist_cnn", "--dataset", "mnist", "--out", str(tmp_path / "x")])
    assert code == 2 and "MNIST" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
