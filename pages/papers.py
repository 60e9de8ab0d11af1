"""The papers' tables (VGG, GoogLeNet, ResNet) regenerated from models built in code, with the printed
numbers beside them and why they differ."""
import re

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer.history import GOOGLENET_DIFF_TEXT, fully_connected_share, googlenet_receptive_fields
from ui.common import error_box, run_through_app, t
from ui.compare_cache import googlenet_table, resnet_tables, vgg_tables
from ui.diagram_ui import paper_diagram

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("papers.title"))
st.write(t("papers.intro"))


def notes(*codes: str) -> None:
    st.markdown(f"**{t('papers.why_title')}**")
    st.markdown("\n".join(f"- {t(f'papers.note.{code}')}" for code in codes))


def unbroken(frame):
    """A copy for the screen whose text cells wrap only between layers: "conv3-256" keeps its hyphen (a
    non-breaking one, U+2011) so a narrow column never splits it. The download keeps the plain text."""
    return frame.apply(lambda column: column.str.replace("-", "\u2011", regex=False)
                       if pd.api.types.is_string_dtype(column) else column)


# The papers' own words as headers and row labels, shown in the page's language (Korean keeps the English term);
# the downloads keep the original text.
HEADER_KEYS = {
    "weight layers": "weight_layers", "weight_layers": "weight_layers", "input": "input", "soft-max": "softmax",
    "parameters (M, computed)": "params_m_computed", "parameters (M, paper printed)": "params_m_printed",
    "config": "config", "model": "model", "conv_layers": "conv_layers", "params": "params", "params_m": "params_m",
    "paper_printed_m": "paper_printed_m", "torchvision_twin": "torchvision_twin",
    "torchvision_params": "torchvision_params", "type": "type", "patch size/stride": "patch",
    "output size": "output_size", "depth": "depth", "#3×3 reduce": "reduce3", "#5×5 reduce": "reduce5",
    "pool proj": "pool_proj", "ops": "ops", "weights (K = 1024)": "weights_k1024", "params (paper printed)": "params_printed",
    "ops (paper printed)": "ops_printed", "params (torchvision)": "params_tv", "ops (torchvision)": "ops_tv",
    "torchvision differences": "tv_diff", "layer name": "layer_name", "blocks": "blocks",
    "FLOPs (computed, torchvision v1.5)": "flops_v15", "FLOPs (computed, v1 strides)": "flops_v1",
    "FLOPs (paper printed)": "flops_printed", "gflops_v15": "gflops_v15", "gflops_v1": "gflops_v1",
    "gflops_paper_printed": "gflops_printed",
}


def header(text: str) -> str:
    """A header or row label of the papers' tables in the page's language."""
    numbered = re.fullmatch(r"(conv stage|maxpool) (\d+)", str(text))
    if numbered:
        return t(f"papers.h.{numbered.group(1).replace(' ', '_')}", n=numbered.group(2))
    depth = re.fullmatch(r"(\d+)-layer", str(text))
    if depth:
        return t("papers.h.depth_layers", n=depth.group(1))
    key = HEADER_KEYS.get(str(text))
    return t(f"papers.h.{key}") if key else text


def number_columns(*names: str) -> dict:
    return {header(name): st.column_config.NumberColumn(format="localized") for name in names}


def download(frame, file_name: str, key: str) -> None:
    st.download_button(t("common.download_csv"), frame.to_csv(index=False).encode(), file_name=file_name,
                       mime="text/csv", key=key, on_click="ignore")


tab_vgg, tab_googlenet, tab_resnet = st.tabs([t("papers.tab.vgg"), t("papers.tab.googlenet"), t("papers.tab.resnet")])

with tab_vgg:
    st.subheader(t("papers.vgg.title"))
    try:
        config, summary = vgg_tables()
    except Exception as exc:
        error_box(exc)
    else:
        st.caption(t("papers.vgg.caption"))
        # every configuration A–E on screen at once (a scrolling grid hid E at 1280×720): a static table whose
        # cells wrap
        shown = unbroken(config).assign(row=config["row"].map(header))
        st.table(shown.rename(columns={"row": ""}).set_index(""))
        download(config, "vgg_configurations.csv", "papers_vgg_csv")
        st.markdown(f"**{t('papers.vgg.summary')}**")
        st.dataframe(summary.rename(columns=header), hide_index=True, width="stretch",
                     column_config=number_columns("params", "torchvision_params"))
        download(summary, "vgg_parameters.csv", "papers_vgg_params_csv")
        notes("vgg_params", "vgg_fc")
        share = fully_connected_share("vgg_d")  # lru-cached in the library
        st.markdown("- " + t("papers.note.vgg_fc_share", params=f"{share['params']:.1f}", madds=f"{share['mult_adds']:.1f}"))
    paper_diagram(["vgg_a", "vgg_b", "vgg_c", "vgg_d", "vgg_e", "vgg16"], "papers_vgg_diagram")

with tab_googlenet:
    st.subheader(t("papers.googlenet.title"))
    try:
        table = googlenet_table()
    except Exception as exc:
        error_box(exc)
    else:
        st.caption(t("papers.googlenet.caption"))
        shown = table.copy()
        shown["torchvision differences"] = [
            "; ".join(t(f"papers.diff.{code.strip()}") for code in codes.split(";") if code.strip())
            for codes in table["torchvision differences"]]
        st.dataframe(shown.drop(columns=["key"]).rename(columns=header), hide_index=True, width="stretch", height=720,
                     column_config=number_columns("params", "ops", "params (torchvision)", "ops (torchvision)"))
        download(table, "googlenet_table1.csv", "papers_googlenet_csv")
        st.markdown(f"**{t('papers.googlenet.diff_title')}**")
        st.markdown("\n".join(f"- `{code}`: {t(f'papers.diff.{code}')}" for code in GOOGLENET_DIFF_TEXT))
        notes("googlenet_stem", "googlenet_params", "googlenet_aux")
        fields = googlenet_receptive_fields()  # lru-cached in the library: one computation per process
        st.markdown("- " + t("papers.note.googlenet_rf", **{k: f"{v:.0f}" for k, v in fields.items()}))
    paper_diagram(["googlenet_paper", "googlenet"], "papers_googlenet_diagram")

with tab_resnet:
    st.subheader(t("papers.resnet.title"))
    try:
        with st.spinner(t("common.computing")):
            layout, flops = resnet_tables()
    except Exception as exc:
        error_box(exc)
    else:
        st.caption(t("papers.resnet.caption"))
        first = layout.columns[0]
        shown = unbroken(layout).assign(**{first: layout[first].map(header)}).rename(columns=header)
        st.table(shown.set_index(header(first)))  # all five depths on screen, 152 included
        download(layout, "resnet_table1.csv", "papers_resnet_csv")
        st.markdown(f"**{t('papers.resnet.flops')}**")
        st.dataframe(flops.rename(columns=header), hide_index=True, width="stretch")
        download(flops, "resnet_flops.csv", "papers_resnet_flops_csv")
        figure = go.Figure([
            go.Bar(name=t("papers.resnet.v15"), x=flops["model"], y=flops["gflops_v15"]),
            go.Bar(name=t("papers.resnet.v1"), x=flops["model"], y=flops["gflops_v1"]),
            go.Bar(name=t("papers.resnet.printed"), x=flops["model"], y=flops["gflops_paper_printed"]),
        ])
        figure.update_layout(barmode="group", yaxis_title=t("papers.resnet.gflops"), height=360,
                             margin=dict(l=10, r=10, t=30, b=10))
        st.plotly_chart(figure, width="stretch", key="papers_resnet_chart")
        notes("resnet_v15", "resnet_depth")
    paper_diagram(["resnet18", "resnet34", "resnet50", "plain18", "plain34"], "papers_resnet_diagram")
