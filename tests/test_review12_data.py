"""Review 12 (data and training): each test fails on the code before its fix and checks the result against an
independent computation (a count by rglob, a hand count, requires_grad sums, the weights' own JSON)."""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from PIL import Image

from explorer.data import (clean_extractions, data_root, load_digits_bundle, load_dataset, load_image_folder,
                           load_shapes, scan_image_folder, split_counts, split_image_folder)
from explorer.models import build_model, find_head
from explorer.training import (TrainConfig, apply_mode, lr_factor, prepare, run_training, set_train_mode,
                               trainable_counts)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _png(path: Path, colour: tuple[int, int, int] = (200, 0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


# --- 1. a split written to dst keeps every file --------------------------------------------------------------


def test_split_to_dst_keeps_files_of_nested_folders_with_the_same_name(tmp_path):
    src = tmp_path / "src"
    for cls in ("cat", "dog"):
        for sub in ("a", "b"):
            for i in range(5):
                _png(src / cls / sub / f"{i}.png", (i * 40, 10 if sub == "a" else 90, 10))
    result = split_image_folder(src, tmp_path / "dst", seed=0)
    dst = tmp_path / "dst"
    written = {p.relative_to(dst) for p in dst.rglob("*.png")}
    assert len(written) == len(list(src.rglob("*.png"))) == 20  # nothing overwritten
    listed = {Path(split) / cls / path.relative_to(src / cls)
              for split, per_class in result.items() for cls, paths in per_class.items() for path in paths}
    assert written == listed  # the result's listing names exactly the written files
    for relative in written:
        split, cls, *rest = relative.parts
        assert (dst / relative).read_bytes() == (src / cls / Path(*rest)).read_bytes()


# --- 2. ratios and an empty training split --------------------------------------------------------------------


@pytest.mark.parametrize("ratios", [(math.inf, 0.2, 0.1), (0.7, math.nan, 0.1), (0.7, 0.2, -math.inf)])
def test_split_counts_refuses_non_finite_shares_with_a_value_error(ratios):
    with pytest.raises(ValueError, match="finite"):
        split_counts(10, ratios)


def test_shapes_and_digits_refuse_an_empty_training_split_and_two_ratios():
    with pytest.raises(ValueError, match="training split is empty"):
        load_shapes(1, 12, samples=20, ratios=(0, 0.5, 0.5))
    with pytest.raises(ValueError, match="training split is empty"):
        load_digits_bundle(1, 8, ratios=(0, 0.5, 0.5))
    with pytest.raises(ValueError, match="three shares"):
        load_shapes(1, 12, samples=20, ratios=(0.7, 0.3))
    with pytest.raises(ValueError, match="three shares"):
        load_digits_bundle(1, 8, ratios=(0.7, 0.3))


@pytest.mark.parametrize("changes, message", [
    ({"ratios": (0, 0.5, 0.5)}, "positive training share"),
    ({"ratios": (0.7, 0.3)}, "three shares"),
    ({"ratios": (0.7, 0.2, 0.1, 0.0)}, "three shares"),
    ({"ratios": (math.inf, 0.2, 0.1)}, "finite"),
    ({"ratios": (0.7, math.nan, 0.1)}, "finite"),
    ({"ratios": (0.7, -0.2, 0.5)}, "non-negative"),
    ({"samples": 0}, "samples"),
    ({"samples": -5}, "samples"),
    # By hand: one image split 0.1/0.9/0 → 0.1, 0.9, 0 → floors 0, 0, 0; the left-over image goes to valid.
    ({"samples": 1, "ratios": (0.1, 0.9, 0.0)}, "no training image"),
])
def test_config_validate_checks_ratios_and_samples(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(dataset="shapes", **changes).validate()


def test_training_on_an_empty_split_is_a_clear_error_before_any_data():
    with pytest.raises(ValueError, match="samples"):
        run_training(TrainConfig(model="mnist_cnn", dataset="shapes", samples=0, epochs=1, device="cpu"))
    TrainConfig(dataset="shapes", samples=20, ratios=(0.7, 0.3, 0.0)).validate()  # a valid split still passes


# --- 3. fixed parameters are not trainable ----------------------------------------------------------------------

# LeNet-5 by hand: C1 6×(25+1), S2 6×2, C3 1,516 (LeCun's connection table), S4 16×2, C5 120×(400+1), F6 84×(120+1).
LENET5_TRAINABLE = 156 + 12 + 1_516 + 32 + 48_120 + 10_164


def test_lenet5_counts_leave_out_its_fixed_rbf_prototypes():
    model = build_model("lenet5")
    counts = trainable_counts(model)
    assert LENET5_TRAINABLE == 60_000
    assert counts.scratch == counts.fine_tune == LENET5_TRAINABLE
    assert counts.total == sum(p.numel() for p in model.parameters()) == 60_000 + 10 * 84
    assert counts.feature_extract == counts.head == 0
    for mode in ("scratch", "fine_tune", "feature_extract"):
        apply_mode(model, mode)
        assert counts.for_mode(mode) == sum(p.numel() for p in model.parameters() if p.requires_grad), mode


def test_feature_extraction_of_a_head_without_trainable_parameters_is_refused_in_prepare():
    data = load_shapes(1, 32, samples=20)
    config = TrainConfig(model="lenet5", dataset="shapes", samples=20, epochs=1, device="cpu", max_steps=1,
                         mode="feature_extract")
    with pytest.raises(ValueError, match="no trainable parameters") as caught:
        prepare(config, data)
    assert "fine-tuning" in str(caught.value) and "scratch" in str(caught.value)


# --- 4. the dropout toggle works in feature extraction ----------------------------------------------------------


def test_dropout_toggle_drops_in_feature_extraction():
    data = load_shapes(3, 32, samples=20)
    config = TrainConfig(model="tiny_vgg", dataset="shapes", samples=20, epochs=1, mode="feature_extract",
                         dropout=0.5, device="cpu", image_size=32)
    prep = prepare(config, data)
    set_train_mode(prep.model, config.mode, prep.heads)
    dropouts = [m for m in prep.model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].training
    torch.manual_seed(0)
    out = dropouts[0](torch.ones(1, 1000))
    values = set(out.unique().tolist())
    assert values == {0.0, 2.0}  # inverted dropout at p = 0.5: 1 / (1 - 0.5)
    # The frozen backbone stays in eval mode: only TinyVGG's head (classifier = Sequential(Dropout, Linear)) trains.
    assert [name for name, m in prep.model.named_modules() if m.training] == \
        ["classifier", "classifier.0", "classifier.1"]


# --- 5. a zip extracted by load_dataset and the clean-up of old uploads agree -----------------------------------


def _animals_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for cls, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0)), ("fox", (0, 0, 200)), ("owl", (90, 90, 0))):
            for i in range(5):
                buffer = io.BytesIO()
                Image.new("RGB", (8, 8), colour).save(buffer, "PNG")
                archive.writestr(f"{cls}/{i}.png", buffer.getvalue())


def _class_counts(bundle) -> dict[str, int]:
    return {cls: sum(per[cls] for per in bundle.counts().values()) for cls in bundle.classes}


def test_a_cleaned_or_damaged_zip_extraction_is_extracted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path / "data"))
    archive = tmp_path / "animals.zip"
    _animals_zip(archive)
    expected = {"cat": 5, "dog": 5, "fox": 5, "owl": 5}  # by construction
    assert _class_counts(load_dataset(archive, 3, 8)) == expected
    uploads = data_root() / "uploads"
    # clean_extractions' layout: uploads/<owner>/<extraction>/ with the class folders inside the extraction.
    class_dirs = [p for p in uploads.rglob("*") if p.is_dir() and p.name in expected]
    assert len(class_dirs) == 4 and all(p.relative_to(uploads).parts[2:] == (p.name,) for p in class_dirs)
    extraction = class_dirs[0].parent
    now = time.time()
    for k, cls in enumerate(expected):  # class folders with ordered times, as they were written
        os.utime(extraction / cls, (now - 100 + k, now - 100 + k))
    deleted = clean_extractions(uploads, max_total_bytes=800)
    assert all(p.parent.parent == uploads for p in deleted)  # whole extractions only, never class folders
    assert _class_counts(load_dataset(archive, 3, 8)) == expected
    # Part of the extraction deleted by anything else: extracted again, not trained on three classes.
    extraction = next(p for p in uploads.rglob("cat") if p.is_dir()).parent
    shutil.rmtree(extraction / "cat")
    assert _class_counts(load_dataset(archive, 3, 8)) == expected
    assert len(list(extraction.rglob("*.png"))) == 20


# --- 6. a pre-split folder: a class without training images ----------------------------------------------------


@pytest.mark.parametrize("empty_train_folder", [False, True])
def test_presplit_class_without_training_images_is_reported(tmp_path, empty_train_folder):
    layout = {"train": {"cat": 4, "dog": 4}, "val": {"cat": 1, "dog": 1, "fox": 2}, "test": {"cat": 1, "dog": 1, "fox": 1}}
    for split, per_class in layout.items():
        for cls, n in per_class.items():
            for i in range(n):
                _png(tmp_path / "ds" / split / cls / f"{i}.png", (i * 50, 0, 0))
    if empty_train_folder:
        (tmp_path / "ds" / "train" / "fox").mkdir()
    bundle = load_image_folder(tmp_path / "ds", 3, 8)
    assert bundle.classes == ["cat", "dog", "fox"]
    assert bundle.empty_classes == ["fox"]  # by hand: fox has 0 training images either way
    assert bundle.counts()["train"]["fox"] == 0


# --- 7. symbolic links to folders are skipped like links to files ----------------------------------------------


def test_symlinked_class_and_sub_folders_are_skipped_with_a_reason(tmp_path):
    outside = tmp_path / "outside_secret"
    _png(outside / "secret.png", (1, 2, 3))
    root = tmp_path / "allowed" / "ds"
    for cls in ("a", "b"):
        _png(root / cls / "x.png")
    os.symlink(outside / "secret.png", root / "a" / "link.png")
    os.symlink(outside, root / "a" / "linked_dir")
    (root / "b" / "deeper").mkdir()
    os.symlink(outside, root / "b" / "deeper" / "linked_deeper")
    os.symlink(outside, root / "c_linked_class")
    scan = scan_image_folder(root)
    assert {cls: [p.relative_to(root).as_posix() for p in files] for cls, files in scan.classes.items()} == \
        {"a": ["a/x.png"], "b": ["b/x.png"]}
    skipped = {Path(s.path).relative_to(root).as_posix(): s.reason for s in scan.skipped}
    assert skipped == {"a/link.png": "symbolic link", "a/linked_dir": "symbolic link",
                       "b/deeper/linked_deeper": "symbolic link", "c_linked_class": "symbolic link"}
    assert not any("secret" in str(p) for files in scan.classes.values() for p in files)


# --- 8. a BatchNorm after the last FC is not the head ------------------------------------------------------------


@pytest.mark.parametrize("spec", ["arch:conv3-8 M FC-5 BN", "arch:conv3-8 M FC-10 BN"])
def test_a_trailing_batchnorm_is_not_the_head_and_the_network_trains(spec):
    model = build_model(spec)
    last_linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    assert find_head(model) == last_linear
    data = load_shapes(3, 32, samples=20)
    config = TrainConfig(model=spec, dataset="shapes", samples=20, epochs=1, device="cpu", max_steps=1)
    prep = prepare(config, data)
    with torch.no_grad():
        assert prep.model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, len(data.classes))
    finished = run_training(config, None, prepared=prep)
    assert finished.best_epoch == 1


# --- 9. the step schedule drops twice --------------------------------------------------------------------------


def test_step_schedule_drops_twice_from_three_epochs():
    assert [lr_factor("step", e * 10, 40, 10, 4) for e in range(4)] == pytest.approx([1, 1, 0.1, 0.01])  # by hand
    for epochs in range(3, 16):
        factors = [lr_factor("step", e * 7 + 3, epochs * 7, 7, epochs) for e in range(epochs)]
        drops = [e for e in range(1, epochs) if factors[e] < factors[e - 1]]
        assert drops == [math.ceil(epochs / 3), math.ceil(2 * epochs / 3)], epochs
        assert factors[-1] == pytest.approx(0.01)
    labels = {lang: json.loads((ROOT / "explorer" / "locales" / lang / "train.json").read_text(encoding="utf-8"))
              for lang in ("en", "ko")}
    assert "×0.1 twice" in labels["en"]["train.sched.step"] and "×0.1 두 번" in labels["ko"]["train.sched.step"]


# --- 10. fine-tuning from built-in weights uses their normalisation ---------------------------------------------


@pytest.mark.parametrize("model, channels, size", [("tiny_vgg", 3, 64), ("mnist_cnn", 1, 28)])
def test_runs_from_builtin_weights_normalise_as_the_weights_were_trained(model, channels, size):
    meta = json.loads((ROOT / "explorer" / "models" / "weights" / f"{model}.json").read_text(encoding="utf-8"))
    data = load_shapes(channels, size, samples=20)
    config = TrainConfig(model=model, dataset="shapes", samples=20, epochs=1, device="cpu", mode="fine_tune")
    prep = prepare(config, data)
    assert prep.pretrained
    assert prep.mean == pytest.approx(tuple(meta["mean"])) and prep.std == pytest.approx(tuple(meta["std"]))
    scratch = prepare(TrainConfig(model=model, dataset="shapes", samples=20, epochs=1, device="cpu"), data)
    assert scratch.mean == pytest.approx(data.mean)  # from scratch: the data's own statistics
