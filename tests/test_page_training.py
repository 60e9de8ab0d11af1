"""AppTests for pages/training.py: set up, train in the background, follow it, see the results; offline data."""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer.data import torchvision_sets as TV
from explorer.training import worker as TW
from explorer.models import list_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Runs and data go to tmp_path; the network is never tried."""
    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(TV, "network_reachable", lambda urls, timeout=3.0: (False, "offline (test)"))

    return tmp_path


def open_page(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["sel_model"] = "mnist_cnn"
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, at.exception
    return at


def wait_for_worker(at: AppTest, timeout: float = 180) -> TW.TrainingWorker:
    worker = TW.get_worker(at.session_state["trn_session"])
    assert worker is not None
    worker.join(timeout)
    assert not worker.alive
    at.run()  # the poll after the end: results instead of live curves
    assert not at.exception, at.exception
    return worker


def test_page_trains_mnist_cnn_on_shapes_and_shows_results(isolated):
    at = open_page(trn_samples=1000, trn_epochs=2, trn_batch=32, trn_lr=3e-3)
    assert not at.error
    assert at.selectbox(key="trn_model").value == "mnist_cnn"
    trainable = at.dataframe[0].value
    assert trainable.iloc[0, 1] == 2597  # scratch: every parameter of the 5-class mnist_cnn
    at.button(key="trn_start").click().run()
    assert not at.exception, at.exception
    worker = wait_for_worker(at)
    progress = worker.progress()
    assert progress.status == "finished", [r.error for r in progress.runs]
    assert list_runs(None) == []  # private to this session (issue 14) until shared
    own = isolated / "runs" / ".sessions" / at.session_state["trn_session"]
    runs = list_runs(own)
    assert len(runs) == 1 and runs[0].model_name == "mnist_cnn" and runs[0].path.parent == own
    metrics = [m for m in at.metric if "Test accuracy" in m.label]
    assert metrics and metrics[0].value == f"{runs[0].test_accuracy * 100:.1f} %"
    charts = at.get("plotly_chart")
    assert len(charts) >= 2  # curves and confusion matrix (and the runs comparison)
    # starting again is allowed once the run has ended
    assert not at.button(key="trn_start").disabled
    # the new run is offered in the sidebar's model picker (a full rerun)
    at.run()
    assert any(option.endswith(runs[0].name) for option in at.selectbox(key="sel_model").options)
    # shared with the class on request: a copy in the runs folder every session lists
    at.button(key=f"trn_share_{runs[0].name}").click().run()
    assert not at.exception and [r.name for r in list_runs(None)] == [runs[0].name]


def test_stop_button_ends_a_run_and_keeps_a_checkpoint(isolated):
    at = open_page(trn_samples=3000, trn_epochs=50, trn_batch=8)
    at.button(key="trn_start").click().run()
    worker = TW.get_worker(at.session_state["trn_session"])
    deadline = time.monotonic() + 120
    while worker.progress().runs[0].step < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert at.button(key="trn_start").disabled  # one run per user at a time
    at.button(key="trn_stop").click().run()
    worker = wait_for_worker(at)
    assert worker.progress().status == "stopped"
    assert [r.status for r in list_runs(isolated / "runs" / ".sessions" / at.session_state["trn_session"])] == ["stopped"]


def test_offline_torchvision_dataset_is_explained_and_blocks_start(isolated):
    at = open_page(trn_dataset="cifar10")
    warnings = " ".join(w.value for w in at.warning)
    assert "CIFAR-10" in warnings and "shapes" in warnings
    assert at.button(key="trn_start").disabled


def test_zip_upload_shows_the_split_counts_per_class(isolated):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, n in (("dolphin", 10), ("shark", 7)):
            for i in range(n):
                img = io.BytesIO()
                Image.new("RGB", (12, 12), (i * 20, 80, 160)).save(img, format="PNG")
                zf.writestr(f"sea/{name}/{i}.png", img.getvalue())
    at = open_page(trn_dataset="zip")
    uploader = next(w for w in at.get("file_uploader") if w.key == "trn_zip")
    uploader.set_value(("sea.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception, at.exception
    counts = at.dataframe[0].value
    # 10 -> 7/2/1; 7 -> 4.9/1.4/0.7 -> 4/1/0 + train(.9), test(.7) = 5/1/1
    assert counts.loc["dolphin"].tolist()[:3] == [7, 2, 1]
    assert counts.loc["shark"].tolist()[:3] == [5, 1, 1]
    assert not at.button(key="trn_start").disabled


def test_malicious_zip_upload_is_refused_with_a_message(isolated):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.png", b"x")
    at = open_page(trn_dataset="zip")
    uploader = next(w for w in at.get("file_uploader") if w.key == "trn_zip")
    uploader.set_value(("evil.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception
    assert any("refused" in e.value for e in at.error)
    assert not (isolated / "evil.png").exists() and not (isolated.parent / "evil.png").exists()


def test_korean_page_runs_and_keeps_english_terms(isolated):
    at = open_page(lang="ko", trn_samples=1000, trn_epochs=1)
    assert at.title[0].value == "학습 실험실 (training lab)"
    at.button(key="trn_start").click().run()
    wait_for_worker(at)
    assert not at.exception
    assert any("테스트 정확도 (test accuracy)" in m.label for m in at.metric)
