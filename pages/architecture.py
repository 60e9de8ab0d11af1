"""Layer shapes: totals, the architecture diagram, the layer table with output-size formulas, the size/channel chart."""
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from explorer.analysis import CSV_COLUMNS, InputTooSmallError
from ui.diagram_ui import architecture_diagram
from ui.common import (cached_layer_table, error_box, loaded_model, model_cache_key, run_through_app, show_weights_note,
                       t)

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("arch.title"))
loaded = loaded_model()
show_weights_note(loaded)
try:
    table, totals = cached_layer_table(*model_cache_key(loaded), _loaded=loaded)
except InputTooSmallError as exc:
    st.error(t("arch.too_small", message=exc))
    st.stop()
except Exception as exc:
    error_box(exc)
    st.stop()

cols = st.columns(5)
cols[0].metric(t("arch.params"), f"{totals.params:,}")
cols[1].metric(t("arch.trainable"), f"{totals.trainable_params:,}")
cols[2].metric(t("arch.mult_adds"), f"{totals.mult_adds / 1e9:.3f} G" if totals.mult_adds > 1e7 else f"{totals.mult_adds:,}")
cols[3].metric(t("arch.activations"), f"{totals.activation_bytes / 2**20:.1f} MB")
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
st.dataframe(view, hide_index=True, width="stretch", height=420)
st.download_button(t("common.download_csv"), table[columns].to_csv(index=False).encode(),
                   file_name=f"{safe_name}_layers.csv", mime="text/csv", on_click="ignore")

with st.expander(t("arch.formula_title"), expanded=False):
    st.caption(t("arch.formula_caption"))
    st.dataframe(table[table["formula"] != ""][["layer", "type", "input_shape", "output_shape", "formula"]],
                 hide_index=True, width="stretch")

st.subheader(t("arch.chart_title"))
spatial = table[table["is_leaf"] & table["output_shape"].str.count("x").eq(2)]
if len(spatial):
    dims = spatial["output_shape"].str.split("x", expand=True).astype(int)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=list(range(len(spatial))), y=dims[1], name=t("arch.chart_size"),
                             text=spatial["layer"], mode="lines+markers", line_shape="hv"), secondary_y=False)
    fig.add_trace(go.Scatter(x=list(range(len(spatial))), y=dims[0], name=t("arch.chart_channels"),
                             text=spatial["layer"], mode="lines+markers", line_shape="hv"), secondary_y=True)
    fig.update_xaxes(title_text=t("arch.chart_x"))
    fig.update_yaxes(title_text=t("arch.chart_size"), secondary_y=False)
    fig.update_yaxes(title_text=t("arch.chart_channels"), secondary_y=True)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), hovermode="x unified")
    st.plotly_chart(fig, width="stretch")
