"""Layer shapes: totals, the architecture diagram, the layer table with output-size formulas, the size/channel chart."""
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from explorer.analysis import CSV_COLUMNS, InputTooSmallError, main_path
from explorer.core import human_bytes
from ui.diagram_ui import architecture_diagram
from ui.format import metric_count, people_table
from ui.common import (cached_layer_table, error_box, halt, loaded_model, model_cache_key, run_through_app, show_weights_note,
                       t)

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("arch.title"))
loaded = loaded_model()
show_weights_note(loaded)
try:
    table, totals = cached_layer_table(*model_cache_key(loaded), _loaded=loaded)
except InputTooSmallError as exc:
    st.error(t("arch.too_small", message=exc))
    halt()
except Exception as exc:
    error_box(exc)
    halt()

cols = st.columns(5)
# 11.7 M fits a fifth of a projector's width where "11,689,512" was cut; the exact count is in the help
metric_count(cols[0], t("arch.params"), totals.params)
metric_count(cols[1], t("arch.trainable"), totals.trainable_params)
metric_count(cols[2], t("arch.mult_adds"), totals.mult_adds)
cols[3].metric(t("arch.activations"), human_bytes(totals.activation_bytes))
cols[4].metric(t("arch.model_size"), f"{totals.model_size_mb:.1f} MB")
if loaded.name == "mnist_cnn":
    st.caption(t("arch.mnist_note"))

safe_name = loaded.name.replace('/', '_').replace(':', '_')[:60]
architecture_diagram(loaded, model_cache_key(loaded), safe_name)

st.caption(t("arch.caption"))
max_depth = int(table["depth"].max()) if len(table) else 1
c1, c2, c3 = st.columns([2, 2, 3])
depth = c1.slider(t("arch.depth"), 1, max(max_depth, 2), min(2, max_depth), key="arch_depth") if max_depth > 1 else 1
leaves_only = c2.toggle(t("arch.leaves_only"), key="arch_leaves")
query = c3.text_input(t("arch.search"), key="arch_search")
shown = table[table["is_leaf"]] if leaves_only else table[table["depth"] <= depth]
if query:
    mask = shown["layer"].str.contains(query, case=False, regex=False) | shown["type"].str.contains(query, case=False, regex=False)
    shown = shown[mask]
# params split into weights and biases (1,792 = 1,728 weights + 64 biases for a 64·3·3·3 conv)
columns = CSV_COLUMNS[:CSV_COLUMNS.index("params") + 1] + ["weights", "biases"] + CSV_COLUMNS[CSV_COLUMNS.index("params") + 1:]
view = shown[columns + ["formula"]].copy()
view["layer"] = ["\u2003" * (d - 1) + name for d, name in zip(shown["depth"], shown["layer"])]
view, view_config = people_table(view, "table.col.", first=("layer", "type", "output_shape", "params", "formula"),
                                 counts=("params", "weights", "biases", "trainable_params", "mult_adds"),
                                 wide=("formula",))
st.dataframe(view, hide_index=True, width="stretch", height=420, column_config=view_config)
# Every layer at every depth, whatever the filters above show (the button says so), formulas included.
st.download_button(t("arch.download_all"), table[columns + ["formula"]].to_csv(index=False).encode(),
                   file_name=f"{safe_name}_layers.csv", mime="text/csv", on_click="ignore")

with st.expander(t("arch.formula_title"), expanded=False):
    st.caption(t("arch.formula_caption"))
    formulas, formulas_config = people_table(
        table[table["formula"] != ""][["layer", "type", "input_shape", "output_shape", "formula"]], "table.col.",
        wide=("formula",))
    st.dataframe(formulas, hide_index=True, width="stretch", column_config=formulas_config)

st.subheader(t("arch.chart_title"))
# The main path (a merged inception/residual block is one step), named on a categorical axis: googlenet's
# 17 steps read as a staircase where its 150 leaf layers were spikes at odd tick numbers.
path = main_path(table)
if len(path):
    names = path["layer"].tolist()
    hover = [f"{name} ({kind})<br>{shape}" for name, kind, shape in zip(names, path["type"], path["output_shape"])]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=names, y=path["height"].tolist(), name=t("arch.chart_size"), customdata=hover,
                             hovertemplate="%{customdata}<extra></extra>", mode="lines+markers", line_shape="hv"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=names, y=path["channels"].tolist(), name=t("arch.chart_channels"), customdata=hover,
                             hovertemplate="%{customdata}<extra></extra>", mode="lines+markers", line_shape="hv"),
                  secondary_y=True)
    fig.update_xaxes(title_text=t("arch.chart_x"), type="category", tickangle=-45, automargin=True)
    fig.update_yaxes(title_text=t("arch.chart_size"), secondary_y=False, rangemode="tozero")
    # its own round ticks (0, 200, 400…), not ticks synced to the size axis (183, 366…)
    fig.update_yaxes(title_text=t("arch.chart_channels"), secondary_y=True, rangemode="tozero", tickmode="auto",
                     showgrid=False)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), hovermode="closest",
                      legend=dict(orientation="h", y=1.08))
    st.plotly_chart(fig, width="stretch")
