"""Widgets, cached helpers and result views for the Training lab page (pages/training.py).

Session-state keys (all prefixed ``trn_``): ``trn_session`` (this browser session's id for the worker
registry), ``trn_dataset``, ``trn_samples``, ``trn_zip``, ``trn_folder``, ``trn_model``,
``trn_size``, ``trn_mode``, ``trn_bn``, ``trn_dropout``, ``trn_epochs``, ``trn_batch``, ``trn_optimizer``,
``trn_lr``, ``trn_schedule``, ``trn_wd``, ``trn_augment``, ``trn_seed``, ``trn_device``, ``trn_deg_depth``,
``trn_deg_size``, ``trn_polling`` (a run was going at the last full rerun), ``trn_compare``,
``trn_compare_metric``, ``trn_detail``.
The worker itself lives in ``explorer.training.worker``'s registry, outside the script run: reruns and clicks
neither stop it nor start a second one.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import explorer.data as datasets
import explorer.models as models
import explorer.training as training

from ui.common import error_box, formatter, t
from ui.session import session_runs_dir, session_uploads_dir

DATASET_OPTIONS = ["shapes", "digits", "mnist", "fashion_mnist", "cifar10", "zip", "folder"]
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1]
MAX_MISCLASSIFIED_SHOWN = 24


def session_id() -> str:
    from ui.session import session_id as this_session

    return this_session()


def chart_labels() -> dict[str, str]:
    keys = ("epoch", "loss", "accuracy", "train", "valid", "step", "true", "pred", "valid_acc", "valid_loss",
            "train_acc", "train_loss")
    return {k: t(f"train.chart.{k}") for k in keys}


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataChoice:
    dataset: str  # what TrainConfig.dataset gets: a name or a folder path
    samples: int
    num_classes: int | None  # None: not known yet (no folder chosen)
    ready: bool


@st.cache_data(show_spinner=False, max_entries=16)
def _extract_upload(_data: bytes, digest: str, name: str, uploads: str) -> str:
    """Extract once per archive content (keyed by its hash, not by hashing the bytes on every rerun) into
    this session's own uploads folder ``uploads`` (part of the key: no session reads another's folder)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem)[:40] or "upload"
    folder = Path(uploads) / f"{stem}-{digest}"
    if not folder.is_dir():
        try:
            datasets.extract_zip(_data, folder)
        except datasets.ZipTargetExistsError:
            pass  # the same archive (same digest) uploaded twice at once: the other extraction is complete
        datasets.clean_extractions(Path(uploads).parent, keep=[folder])  # every session's old extractions
    return str(folder)


@st.cache_data(show_spinner=False, max_entries=16, ttl=60)
def _split_preview(folder: str, seed: int) -> tuple[dict, list[str], list[tuple[str, str]]]:
    split = datasets.split_image_folder(folder, seed=seed)
    return split.counts(), split.empty_classes, [(s.path, s.reason) for s in split.skipped]


@st.cache_data(show_spinner=False, ttl=60)
def _torchvision_status(name: str) -> str:
    return datasets.torchvision_status(name)


def data_section() -> DataChoice:
    choice = st.selectbox(t("train.dataset"), DATASET_OPTIONS, key="trn_dataset", format_func=formatter("train.ds."))
    if choice == "shapes":
        samples = st.slider(t("train.samples"), 1000, 40000, training.DEMO_SHAPES_SAMPLES, 1000, key="trn_samples",
                            help=t("train.samples_help"))
        st.caption(t("train.shapes_caption", classes=", ".join(datasets.SHAPE_CLASSES)))
        return DataChoice("shapes", samples, len(datasets.SHAPE_CLASSES), True)
    if choice == "digits":  # scikit-learn's real handwritten digits: offline, like the shapes
        st.caption(t("train.digits_caption"))
        return DataChoice("digits", 0, len(datasets.DIGIT_CLASSES), True)
    if choice in datasets.TORCHVISION_DATASETS:
        with st.spinner(t("train.checking_dataset")):
            reason = _torchvision_status(choice)
        if reason:
            st.warning(t("train.offline", dataset=t(f"train.ds.{choice}"), root=str(datasets.data_root()), reason=reason))
            return DataChoice(choice, 0, 10, False)
        st.caption(t("train.torchvision_caption"))
        return DataChoice(choice, 0, 10, True)
    folder = None
    if choice == "zip":
        upload = st.file_uploader(t("train.zip"), type=["zip"], key="trn_zip", help=t("train.zip_help"))
        if upload is not None:
            data = upload.getvalue()
            try:
                digest = hashlib.sha256(data).hexdigest()[:12]
                folder = _extract_upload(data, digest, upload.name, str(session_uploads_dir()))
                if not Path(folder).is_dir():  # deleted by the clean-up of old extractions: extract again
                    _extract_upload.clear()
                    folder = _extract_upload(data, digest, upload.name, str(session_uploads_dir()))
                Path(folder).touch()  # in use: the clean-up counts its age from now
            except ValueError as exc:
                error_box(exc, prefix="train.zip_refused")
    else:
        if not datasets.allowed_data_roots():  # the operator allowed no server folder: say so, list nothing
            st.info(t("security.folders_off", env=datasets.DATA_ROOTS_ENV))
            return DataChoice("", 0, None, False)
        text = st.text_input(t("train.folder"), key="trn_folder", help=t("train.folder_help")).strip()
        if text:
            try:
                folder = str(datasets.confine_data_folder(text))
            except datasets.FolderNotAllowedError:
                st.warning(t("security.folder_outside"))
            except ValueError:
                st.warning(t("train.folder_missing", path=text))
    if folder is None:
        return DataChoice("", 0, None, False)
    return DataChoice(folder, 0, _folder_preview(folder), True)


def _folder_preview(folder: str) -> int | None:
    """The 7:2:1 split counts per class (the course homework), warnings, and the optional write-out."""
    # The run's own seed (its widget is under the training settings): the run splits the folder with it, so the
    # preview, the written split and the files the run trains on are the same (a separate split seed once differed).
    seed = int(st.session_state.get("trn_seed") or 0)
    st.caption(t("train.split_seed_note", seed=seed))
    try:
        counts, empty, skipped = _split_preview(folder, seed)
    except (ValueError, OSError) as exc:  # OSError: a folder with unreadable parts ("/" once crashed here)
        error_box(exc)
        return None
    table = pd.DataFrame(counts).fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    table.columns = [t(f"train.split.{c}") for c in table.columns]
    st.markdown(t("train.split_title"))
    st.dataframe(table, width="content")
    st.caption(t("train.split_rule"))
    # The homework's int(n × 0.7) etc. beside the app's counts: both shown, the left-over files named.
    homework = pd.DataFrame(datasets.split_comparison({str(c): int(n) for c, n in table.iloc[:, -1].items()}))
    if len(homework) and homework["left_out"].any():
        homework = homework.set_index("class")
        homework.columns = [t(f"train.hw.{c}") for c in homework.columns]
        st.dataframe(homework, width="content")
        st.caption(t("train.hw_caption"))
    if empty:
        st.warning(t("train.empty_classes", classes=", ".join(empty)))
    if skipped:
        with st.expander(t("train.skipped", n=len(skipped))):
            st.dataframe(pd.DataFrame(skipped, columns=[t("train.skipped_file"), t("train.skipped_reason")]),
                         hide_index=True)
    if st.button(t("train.write_split"), key="trn_write_split"):
        dst = datasets.data_root() / "splits" / f"{Path(folder).name}-seed{seed}"
        try:
            datasets.split_image_folder(folder, dst, seed=seed)
            st.success(t("train.written", path=str(dst)))
        except ValueError as exc:
            error_box(exc)
    return len(table) if len(table) >= 2 else None


# --- model -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    name: str
    image_size: int
    mode: str
    batch_norm: bool | None
    dropout: float | None


@st.cache_data(show_spinner=False, max_entries=32)
def trainable_table(name: str, num_classes: int) -> dict[str, int]:
    from explorer.models import build_model
    from explorer.models import replace_head
    from explorer.training import trainable_counts

    model = build_model(name)
    replace_head(model, num_classes)
    counts = trainable_counts(model)
    return {mode: counts.for_mode(mode) for mode in ("scratch", "feature_extract", "fine_tune")}


@st.cache_data(show_spinner=False, max_entries=64)
def _suggested_size(name: str) -> int:
    return training.suggested_image_size(name)


def _is_torchvision(name: str) -> bool:
    from explorer.models import get_entry

    return get_entry(name).source == "torchvision"


def _has_pretrained(name: str) -> bool:
    from explorer.models import ModelRef, get_entry

    ref = ModelRef.parse(name)
    return ref.kind == "registry" and get_entry(ref.value).weights_enum is not None


def model_section(default: str, num_classes: int | None) -> ModelChoice:
    from explorer.models import ModelRef, list_models

    customs = [ModelRef.arch(spec).key for spec in st.session_state.get("custom_archs", [])]
    options = list(dict.fromkeys(customs + list_models()))
    if st.session_state.get("trn_model") not in options:
        st.session_state["trn_model"] = default if default in options else "mnist_cnn"
    st.caption(t("train.model_caption"))
    custom = t("sidebar.group.custom")
    name = st.selectbox(t("train.model"), options, key="trn_model", help=t("train.model_help"),
                        format_func=lambda n: ModelRef.parse(n).label(custom))
    channels, natural, _ = training.natural_shape(name)
    suggested = _suggested_size(name)  # a built network may declare a side under 8: the box must admit it
    size = int(st.number_input(t("train.image_size"), min(8, suggested), 512, suggested, key=f"trn_size_{name}",
                               help=t("train.image_size_help", natural=natural)))
    st.caption(t("train.input_caption", c=channels, s=size))
    modes = ["scratch", "feature_extract", "fine_tune"] if _has_pretrained(name) else ["scratch"]
    mode = st.radio(t("train.mode"), modes, key="trn_mode" if len(modes) > 1 else "trn_mode_scratch",
                    format_func=formatter("train.mode."), horizontal=True, help=t("train.mode_help"))
    if num_classes:
        try:
            counts = trainable_table(name, num_classes)
            st.dataframe(pd.DataFrame([{t("train.mode_col"): t(f"train.mode.{m}"), t("train.trainable"): n}
                                       for m, n in counts.items() if m in modes]), hide_index=True, width="content")
        except Exception as exc:  # a custom network whose head cannot be resized
            error_box(exc)
    # The toggles are for the teaching networks (the project's own and the ones built here).
    custom_network = ModelRef.parse(name).kind == "arch"
    options_set = training.model_options(name) if custom_network or not _is_torchvision(name) else set()
    batch_norm = dropout = None
    if options_set:
        cols = st.columns(2)
        if "batch_norm" in options_set:
            batch_norm = cols[0].toggle(t("train.bn"), True, key="trn_bn", help=t("train.bn_help"))
        if "dropout" in options_set:
            dropout = cols[1].slider(t("train.dropout"), 0.0, 0.8, 0.0, 0.1, key="trn_dropout")
    return ModelChoice(name, size, mode, batch_norm, dropout)


# --- hyper-parameters --------------------------------------------------------------------------------------


def hyper_section() -> dict:
    import torch

    c = st.columns(3)
    epochs = c[0].slider(t("train.epochs"), 1, 50, training.DEMO_EPOCHS, key="trn_epochs")
    batch = c[0].select_slider(t("train.batch"), [8, 16, 32, 64, 128, 256], 64, key="trn_batch")
    optimizer = c[1].radio(t("train.optimizer"), list(training.OPTIMIZERS), index=1, key="trn_optimizer",
                           format_func=formatter("train.opt."), horizontal=True)
    lr = c[1].select_slider(t("train.lr"), LEARNING_RATES, training.DEMO_LR, key="trn_lr", format_func=lambda v: f"{v:g}")
    schedule = c[1].radio(t("train.schedule"), list(training.SCHEDULES), key="trn_schedule",
                          index=list(training.SCHEDULES).index(training.DEMO_SCHEDULE),
                          format_func=formatter("train.sched."), horizontal=True)
    wd = c[2].select_slider(t("train.weight_decay"), [0.0, 1e-5, 1e-4, 5e-4, 1e-3], 0.0, key="trn_wd",
                            format_func=lambda v: f"{v:g}")
    augment = c[2].toggle(t("train.augment"), False, key="trn_augment", help=t("train.augment_help"))
    seed = int(c[2].number_input(t("train.seed"), 0, 2**31 - 1, 0, key="trn_seed"))
    devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    device = c[2].radio(t("train.device"), devices, key="trn_device", format_func=formatter("train.device."),
                        horizontal=True)
    return dict(epochs=epochs, batch_size=batch, optimizer=optimizer, lr=lr, schedule=schedule, weight_decay=wd,
                augment=augment, seed=seed, device=device)


# --- starting and following a run ----------------------------------------------------------------------------


def _this_session_alive():
    """A check the training thread can call: is this browser session still connected to the server? A reload or a
    closed tab ends it, and the worker then stops the runs nobody can see or stop (explorer.training.TrainingWorker).
    None where there is no server (AppTest)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return None
    runtime, streamlit_session = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(streamlit_session)


def start(jobs: list[training.TrainConfig]) -> None:
    root = session_runs_dir()  # private to this session until shared (see run_results)
    planned = []
    for config in jobs:
        name = models.suggest_run_name(config.model, config.dataset, root)
        while any(name == p.name for _, p in planned):
            name += "-b"
        planned.append((config, root / name))
    try:
        training.start_training(session_id(), planned, owner_alive=_this_session_alive())
    except (training.RunInProgressError, training.TrainingBusyError) as exc:
        st.warning(t("train.busy", message=str(exc)))
        return
    st.session_state["trn_polling"] = True
    st.rerun()


def progress_view(worker: training.TrainingWorker) -> None:
    progress = worker.progress()
    labels = chart_labels()
    run = progress.runs[progress.current]
    text = t("train.progress", run=run.name, epoch=run.epoch, step=run.step, total=run.total_steps)
    st.progress(min(progress.fraction, 1.0), text=text if not progress.done else t(f"train.status.{progress.status}"))
    if run.started is not None and not progress.done:
        s = run.started
        st.caption(t("train.started", device=s.device, trainable=f"{s.trainable:,}", total=f"{s.total_params:,}",
                     train=sum(s.counts["train"].values()), valid=sum(s.counts["valid"].values()),
                     test=sum(s.counts["test"].values())))
        for note in s.notes:
            st.caption(note)
    if run.steps and not progress.done:
        st.plotly_chart(training.steps_figure(run.steps, labels), key="trn_steps_fig", config={"displaylogo": False})
    histories = {r.name: r.history for r in progress.runs if r.history}
    if histories:
        st.plotly_chart(training.curves_figure(histories, labels), key="trn_curves_fig", config={"displaylogo": False})
    for r in progress.runs:
        if r.error:
            st.error(t("train.failed", run=r.name, message=r.error))


def run_results(run_dir: Path, key: str) -> None:
    """Test accuracy, confusion matrix and misclassified test images of a saved run (read from disk)."""
    metrics = models.read_metrics(run_dir)
    acc = metrics.get("test_accuracy")
    if acc is None:
        st.info(t("train.no_test"))
        return
    st.metric(t("train.test_accuracy", run=run_dir.name), f"{acc * 100:.1f} %")
    share_button(run_dir, key)
    evaluation = training.read_evaluation(run_dir)
    if evaluation is not None:
        st.plotly_chart(training.confusion_figure(evaluation.confusion, evaluation.classes, chart_labels()),
                        key=f"trn_conf_{key}", config={"displaylogo": False})
        st.caption(t("train.confusion_caption"))
    wrong = models.read_misclassified(run_dir)
    if not wrong or not len(wrong.get("images", [])):
        st.caption(t("train.no_mistakes"))
        return
    classes = evaluation.classes if evaluation else [str(i) for i in range(int(wrong["pred"].max()) + 1)]
    total = evaluation.wrong if evaluation else len(wrong["images"])  # all of them, not the 500 listed
    st.markdown(t("train.misclassified", n=total))
    cols = st.columns(8)
    for i in range(min(len(wrong["images"]), MAX_MISCLASSIFIED_SHOWN)):
        img = wrong["images"][i]
        picture = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        cols[i % 8].image(picture, width="stretch", clamp=True, caption=t(
            "train.mistake", true=classes[int(wrong["true"][i])], pred=classes[int(wrong["pred"][i])],
            conf=float(wrong["confidence"][i]) * 100))


def share_button(run_dir: Path, key: str) -> None:
    """Runs are private to their session; this copies one into the shared runs folder for the whole class."""
    if not models.is_session_run(run_dir, session_id()):
        return
    if st.button(t("security.share"), key=f"trn_share_{key}", help=t("security.share_help")):
        try:
            shared = models.share_run(run_dir)
            st.success(t("security.shared", name=shared.name))
        except (OSError, ValueError) as exc:
            error_box(exc)


def compare_section() -> None:
    infos = models.visible_runs(session_id())  # the operator's runs and this session's, never another's
    if not infos:
        st.caption(t("train.no_runs"))
        return
    names = [i.name for i in infos]
    if any(n not in names for n in st.session_state.get("trn_compare", [])):
        st.session_state["trn_compare"] = [n for n in st.session_state["trn_compare"] if n in names]
    chosen = st.multiselect(t("train.compare_pick"), names, default=names[-3:], key="trn_compare")
    metric = st.radio(t("train.compare_metric"), ["valid_acc", "valid_loss", "train_acc", "train_loss"],
                      key="trn_compare_metric", horizontal=True, format_func=formatter("train.chart."))
    by_name = {i.name: i for i in infos}
    if chosen:
        st.plotly_chart(training.compare_runs_figure([by_name[n].path for n in chosen], metric, chart_labels()),
                        key="trn_compare_fig", config={"displaylogo": False})
    st.dataframe(pd.DataFrame([{
        t("train.col.run"): i.name, t("train.col.model"): i.model_name, t("train.col.dataset"): Path(i.dataset).name,
        t("train.col.mode"): t(f"train.mode.{i.mode}"), t("train.col.epochs"): i.epochs,
        t("train.col.status"): t(f"train.status.{i.status}"),
        t("train.col.test_acc"): None if i.test_accuracy is None else round(i.test_accuracy * 100, 1)}
        for i in infos]), hide_index=True, width="stretch")
    detail = st.selectbox(t("train.detail"), [""] + names, key="trn_detail",
                          format_func=lambda n, none=t("train.detail_none"): n or none)
    if detail:
        run_results(by_name[detail].path, "detail")
