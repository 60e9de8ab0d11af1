"""Training lab: train, fine-tune and compare networks; runs then appear in every page's model picker."""
from dataclasses import replace

import streamlit as st

import explorer.data as datasets
import explorer.training as training

from ui.common import run_through_app, selection, t
from ui import training_ui as U

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("train.title"))
st.write(t("train.intro"))
worker = training.get_worker(U.session_id())
running = worker is not None and worker.alive

with st.expander(t("train.setup"), expanded=not running):
    st.subheader(t("train.data_title"))
    data = U.data_section()
    st.subheader(t("train.model_title"))
    sidebar_model = selection().model_name  # a network built on the Build page is offered first
    model = U.model_section(sidebar_model if selection().model_ref.kind == "arch" else "mnist_cnn", data.num_classes)
    st.subheader(t("train.hyper_title"))
    hyper = U.hyper_section()

config = training.TrainConfig(model=model.name, dataset=data.dataset, samples=data.samples or datasets.DEFAULT_SHAPES_SAMPLES,
                        image_size=model.image_size, mode=model.mode, batch_norm=model.batch_norm,
                        dropout=model.dropout, **hyper)
left, middle, right = st.columns(3)
if left.button(t("train.start"), type="primary", disabled=running or not data.ready, key="trn_start",
               width="stretch"):
    U.start([config])
if middle.button(t("train.stop"), disabled=not running, key="trn_stop", width="stretch"):
    training.stop_training(U.session_id())
    st.toast(t("train.stopping"))
with right.popover(t("train.degradation"), width="stretch", disabled=running or not data.ready):
    st.caption(t("train.degradation_help"))
    # 0: all four (plain18, plain34, resnet18_a, resnet34_a): the degradation itself is plain34 vs plain18.
    deg_labels = {0: t("train.deg_all"), **{d: f"plain{d} / resnet{d}_a" for d in training.DEGRADATION_DEPTHS}}
    depth = st.radio(t("train.deg_depth"), list(deg_labels), index=0, key="trn_deg_depth", horizontal=True,
                     format_func=deg_labels.get)
    deg_size = int(st.number_input(t("train.image_size"), 16, 224, 32, key="trn_deg_size"))
    if st.button(t("train.deg_start"), key="trn_deg_start"):
        U.start(training.degradation_configs(replace(config, image_size=deg_size), depth or None))
if not data.ready:
    st.caption(t("train.need_data"))
with st.expander(t("train.cli_title")):
    st.caption(t("train.cli_caption"))
    cli = config.cli_command()  # the same run from a terminal, alone or on several GPUs/processes with torchrun
    st.code(f"python -m explorer {cli}\ntorchrun --nproc_per_node=2 -m explorer {cli}", language="bash")

st.divider()
if worker is not None:
    st.subheader(t("train.live_title"))

    # Polls the worker without rerunning the whole page; once the run ends, one full rerun turns polling
    # off, shows the results and lets the sidebar's model picker list the new run.
    @st.fragment(run_every=1.0 if running else None)
    def live() -> None:
        U.progress_view(worker)
        if not worker.alive and st.session_state.get("trn_polling"):
            st.session_state["trn_polling"] = False
            st.rerun(scope="app")

    live()
    if not running:
        for run in worker.progress().runs:
            if run.run_dir is not None and run.status in ("finished", "stopped"):
                with st.container(border=True):
                    U.run_results(run.run_dir, key=run.name)

st.subheader(t("train.compare_title"))
st.caption(t("train.compare_caption"))
U.compare_section()
