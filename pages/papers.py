"""The papers' tables (VGG, GoogLeNet, ResNet) regenerated from models built in code, with the printed
numbers beside them and why they differ."""
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer.history import GOOGLENET_DIFF_TEXT, googlenet_receptive_fields
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
        st.table(unbroken(config).rename(columns={"row": ""}).set_index(""))
        download(config, "vgg_configurations.csv", "papers_vgg_csv")
        st.markdown(f"**{t('papers.vgg.summary')}**")
        st.dataframe(summary, hide_index=True, width="stretch", column_config={
            "params": st.column_config.NumberColumn(format="localized"),
            "torchvision_params": st.column_config.NumberColumn(format="localized")})
        download(summary, "vgg_parameters.csv", "papers_vgg_params_csv")
        notes("vgg_params", "vgg_fc")
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
        st.dataframe(shown.drop(columns=["key"]), hide_index=True, width="stretch", height=720, column_config={
            "params": st.column_config.NumberColumn(format="localized"),
            "ops": st.column_config.NumberColumn(format="localized"),
            "params (torchvision)": st.column_config.NumberColumn(format="localized"),
            "ops (torchvision)": st.column_config.NumberColumn(format="localized")})
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
        st.table(unbroken(layout).set_index(layout.columns[0]))  # all five depths on screen, 152 included
        download(layout, "resnet_table1.csv", "papers_resnet_csv")
        st.markdown(f"**{t('papers.resnet.flops')}**")
        st.dataframe(flops, hide_index=True, width="stretch")
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
