"""Receptive fields: the per-layer table, field growth across models, and one unit's field on the image
beside its effective receptive field (theory and practice side by side)."""
import json

import streamlit as st

from explorer.receptive import CSV_COLUMNS, erf_extent, field_box, growth_by_depth, summarize, table_to_csv, teaching_layer
from explorer.receptive import erf_figure, growth_figure, image_box_figure
from explorer.analysis import InputTooSmallError
from ui.common import (error_box, formatter, halt, loaded_model, model_cache_key, model_input, run_through_app, selection,
                       show_weights_note, t)
from ui.receptive_cache import DEFAULT_OVERLAY, erf_map, growth_curve, overlay_options, picture, rf_spatial_rows, rf_table

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("rf.title"))
st.caption(t("rf.intro"))
loaded = loaded_model()
sel = selection()
show_weights_note(loaded)
key = model_cache_key(loaded)
_, H, W = loaded.input_shape
try:
    with st.spinner(t("rf.computing")):
        table = rf_table(loaded)
except InputTooSmallError as exc:
    st.error(t("rf.too_small", message=exc))
    halt()
except Exception as exc:
    error_box(exc)
    halt()
if table.attrs.get("error"):
    st.error(t("rf.partial", message=table.attrs["error"]))


def num(value) -> str:
    if value is None or value != value:
        return "?"
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.4g}"


def note(codes: str) -> str:
    return "; ".join(t(f"rf.note.{code}", **params) for code, params in json.loads(codes or "[]"))


# --- what the last convolution sees ------------------------------------------------------------------------
summary = summarize(table, (H, W))
if summary.last_conv:
    rh, rw = summary.last_conv_rf
    jh, jw = summary.last_conv_jump
    # per axis when they differ: a non-square input or unequal strides
    ratio = (t("rf.ratio_square", ratio=f"{rh / H:.2f}", size=f"{H}×{W}") if f"{rh / H:.2f}" == f"{rw / W:.2f}"
             else t("rf.ratio_sides", rh=f"{rh / H:.2f}", rw=f"{rw / W:.2f}", size=f"{H}×{W}"))
    jump = t("rf.jump_square", jump=num(jh)) if jh == jw else t("rf.jump_sides", jh=num(jh), jw=num(jw))
    lines = [t("rf.last_conv", layer=summary.last_conv, rf=f"{rh}×{rw}", ratio=ratio, jump=jump,
               map=f"{summary.last_conv_map[0]}×{summary.last_conv_map[1]}")]
    lines.append(t("rf.last_conv_bigger") if max(rh / H, rw / W) > 1 else t("rf.last_conv_smaller",
                                                                               pct=f"{100 * rh * rw / (H * W):.0f}"))
    if summary.final_map and summary.final_map_rf != summary.last_conv_rf:
        lines.append(t("rf.final_map", layer=summary.final_map, rf=f"{summary.final_map_rf[0]}×{summary.final_map_rf[1]}"))
    if summary.first_whole:
        lines.append(t("rf.first_whole", layer=summary.first_whole))
    if table["global_context"].any():
        lines.append(t("rf.context_explain"))
    st.info("\n\n".join(lines))
else:
    st.warning(t("rf.no_conv"))
unknown = int(table["unknown"].sum())
if unknown:
    st.warning(t("rf.unknown_rows", n=unknown))
with st.expander(t("rf.how_title")):
    st.markdown(t("rf.how_body"))

# --- the table -----------------------------------------------------------------------------------------------
st.subheader(t("rf.table_title"))
show = st.radio(t("rf.show"), ["spatial", "all"], key="rf_show", horizontal=True,
                format_func=formatter("rf.show_"))
shown = table if show == "all" else table[table["kind"].isin(["conv", "pool", "global_pool", "merge"]) | table["unknown"]]
view = shown[CSV_COLUMNS + ["depth"]].copy()
for column in CSV_COLUMNS[3:]:
    view[column] = [num(v) for v in view[column]]
view["whole"] = ["✓" if w else "" for w in shown["sees_whole_image"]]
view["note"] = [note(c) for c in shown["note_codes"]]
labels = {c: t(f"rf.col.{c}") for c in list(view.columns)}
st.dataframe(view, hide_index=True, width="stretch", height=400, column_config=labels)
safe_name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in loaded.name)[:40]
st.download_button(t("common.download_csv"), table_to_csv(table).encode(), file_name=f"{safe_name}_receptive_field.csv",
                   mime="text/csv", key="rf_csv", on_click="ignore")

# --- growth with depth, several models -------------------------------------------------------------------------
st.subheader(t("rf.chart_title"))
options = overlay_options()
if "rf_models" not in st.session_state:
    st.session_state["rf_models"] = [m for m in DEFAULT_OVERLAY if m in options]
chosen = st.multiselect(t("rf.chart_models"), options, key="rf_models", max_selections=8, help=t("rf.chart_help"))
curves = {t("rf.chart_current", name=loaded.name[:40], size=f"{H}×{W}"): growth_by_depth(table)}
for name in chosen:
    try:
        curve, shape = growth_curve(name)
    except Exception as exc:
        st.warning(t("rf.chart_failed", name=name, message=exc))
        continue
    curves[f"{name} ({shape[1]}×{shape[2]})"] = curve
st.plotly_chart(growth_figure(curves, (H, W), x_title=t("rf.chart_x"), y_title=t("rf.chart_y"), image_label=t("rf.chart_image")),
                width="stretch", key="rf_growth")
st.caption(t("rf.chart_caption"))

# --- one unit: theoretical box vs effective field ---------------------------------------------------------------
st.subheader(t("rf.unit_title"))
st.caption(t("rf.unit_caption"))
spatial = rf_spatial_rows(table)
if not len(spatial):
    st.warning(t("rf.no_spatial"))
    halt()
layers = list(spatial["layer"])
if st.session_state.get("rf_layer") not in layers:
    opening = teaching_layer(spatial, (H, W))  # not a field covering the whole image: that teaches nothing
    st.session_state["rf_layer"] = opening if opening in layers else layers[-1]
rows = dict(zip(spatial["layer"], spatial.to_dict("records")))
layer = st.selectbox(t("rf.layer"), layers, key="rf_layer",
                     format_func=lambda n: f"{n} · {rows[n]['output_shape']} · RF {num(rows[n]['rf_h'])}×{num(rows[n]['rf_w'])}")
row = rows[layer]
out_h, out_w = int(row["out_h"]), int(row["out_w"])
unit_of = st.session_state.get("_rf_unit_of")  # (layer, h, w) the sliders were set on
if unit_of and unit_of[0] != layer and "rf_row" not in st.session_state.get("_links_pinned", ()):
    # another layer: keep the unit over the same part of the image instead of jumping to the corner
    for slider_key, old, new in (("rf_row", unit_of[1], out_h), ("rf_col", unit_of[2], out_w)):
        if slider_key in st.session_state and old:
            st.session_state[slider_key] = min(new - 1, int((st.session_state[slider_key] + 0.5) * new / old))
st.session_state["_rf_unit_of"] = (layer, out_h, out_w)
position = []
cols = st.columns(2)
for col, (slider_key, size, label) in zip(cols, (("rf_row", out_h, "rf.pos_row"), ("rf_col", out_w, "rf.pos_col"))):
    if st.session_state.get(slider_key, -1) not in range(size):
        st.session_state[slider_key] = size // 2
    if size > 1:
        position.append(col.slider(t(label, n=size - 1), 0, size - 1, key=slider_key))
    else:
        col.caption(t("rf.single_unit"))
        position.append(0)
r, c = position
box = field_box(table, layer, (r, c), (H, W))
x = model_input()
try:
    with st.spinner(t("rf.erf_computing")):
        erf = erf_map(*key, sel.image_hash, layer, (r, c), _loaded=loaded, _x=x)
except Exception as exc:
    error_box(exc)
    halt()
left, right = st.columns(2)
left.plotly_chart(image_box_figure(picture(*key, sel.image_hash, _x=x), box, title=t("rf.box_title")),
                  width="stretch", key="rf_box")
top, lft, bottom, rgt = box.clipped
left.caption(t("rf.box_caption", layer=layer, r=r, c=c, rf=f"{num(row['rf_h'])}×{num(row['rf_w'])}",
               rows=f"{num(top)}–{num(bottom)}", cols=f"{num(lft)}–{num(rgt)}")
             + (" " + t("rf.box_clipped") if box.is_clipped else ""))
right.plotly_chart(erf_figure(erf, box, title=t("rf.erf_title"), colorbar_title=t("rf.erf_colorbar")),
                   width="stretch", key="rf_erf")
extent = erf_extent(erf, ((box.top + box.bottom) / 2, (box.left + box.right) / 2))
right.caption(t("rf.erf_caption", extent=extent, rf=num(max(float(row["rf_h"]), float(row["rf_w"])))))
