"""Compare models: parameters, operations, depth, receptive field, size and accuracy; bubble chart;
Grad-CAM and predictions of the current image side by side for two of them."""
import streamlit as st

from explorer.history import COLUMNS, MAX_MODELS, MIN_MODELS, bubble_chart
from explorer.models import ModelRef, list_models
from ui.common import error_box, formatter, halt, run_through_app, selection, show_weights_note, t
from ui.compare_cache import cam_and_predictions, compare_model, compare_table
from ui.teaching import is_weights_problem, prediction_note, weights_badge

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

DEFAULT_PEERS = ("alexnet", "vgg16", "googlenet", "resnet50")

st.title(t("cmp.title"))
st.write(t("cmp.intro"))
sel = selection()

customs = [ModelRef.arch(spec).key for spec in st.session_state.get("custom_archs", [])]
options = list(dict.fromkeys(customs + [sel.model_name] + list_models()))  # the sidebar's run folder too
if "cmp_models" not in st.session_state:
    start = [sel.model_name] if sel.model_name in options else []
    st.session_state["cmp_models"] = list(dict.fromkeys(start + [m for m in DEFAULT_PEERS if m in options]))[:MAX_MODELS]
else:  # a custom network removed from the list must not break the widget
    st.session_state["cmp_models"] = [m for m in st.session_state["cmp_models"] if m in options]


def short(name: str) -> str:
    return ModelRef.parse(name).label(t("sidebar.group.custom"))


names = st.multiselect(t("cmp.pick"), options, key="cmp_models", max_selections=MAX_MODELS, format_func=short,
                       help=t("cmp.pick_help"))
if len(names) < MIN_MODELS:
    st.info(t("cmp.need_two"))
    halt()

try:
    with st.spinner(t("common.computing")):
        table, failed = compare_table(tuple(names))
except Exception as exc:
    error_box(exc)
    halt()
for name, message in failed:  # one per model; the others are still compared
    st.warning(t("cmp.failed", model=short(name), message=message))
if table.empty:
    halt()

st.subheader(t("cmp.table_title"))
labels = {column: t(f"cmp.col.{column}") for column in COLUMNS}
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "model": st.column_config.TextColumn(labels["model"], width="medium"),  # whole names ("mobilenet_v3_large")
    "family": st.column_config.TextColumn(labels["family"]),
    "input": st.column_config.TextColumn(labels["input"]),
    "params_m": st.column_config.NumberColumn(labels["params_m"], format="%.3g"),  # mnist_cnn: 0.00276, not 0.00
    "gflops": st.column_config.NumberColumn(labels["gflops"], format="%.3g"),
    "weight_layers": st.column_config.NumberColumn(labels["weight_layers"], format="%d"),
    "receptive_field": st.column_config.NumberColumn(labels["receptive_field"], format="%d"),
    "size_mb": st.column_config.NumberColumn(labels["size_mb"], format="%.1f"),
    "top1": st.column_config.NumberColumn(labels["top1"], format="%.2f"),
    "top5": st.column_config.NumberColumn(labels["top5"], format="%.2f"),
})
st.caption(t("cmp.table_caption"))
st.download_button(t("common.download_csv"), table.to_csv(index=False).encode(), file_name="compare_models.csv",
                   mime="text/csv", key="cmp_csv", on_click="ignore")

st.subheader(t("cmp.chart_title"))
y_options = ["top1", "top5", "weight_layers"]
if st.session_state.get("cmp_y") not in y_options:
    st.session_state["cmp_y"] = "top1" if table["top1"].notna().any() else "weight_layers"
y = st.radio(t("cmp.y"), y_options, key="cmp_y", horizontal=True, format_func=formatter("cmp.y."))
missing = table.loc[table[y].isna(), "model"].tolist()
if missing:
    st.info(t("cmp.no_accuracy", models=", ".join(short(m) for m in missing)))
figure = bubble_chart(table, y=y, labels={"gflops": labels["gflops"], "params_m": labels["params_m"], y: t(f"cmp.y.{y}")},
                      names={name: short(name) for name in table["model"]})
st.plotly_chart(figure, width="stretch", key="cmp_chart")
st.caption(t("cmp.chart_caption"))

st.subheader(t("cmp.cam_title"))
if not st.toggle(t("cmp.cam_on"), value=True, key="cmp_cam_on"):
    halt()
weights_key = "pretrained" if sel.weights == "pretrained" else "none"
st.caption(t("cmp.weights_note", weights=t("weights.any_trained" if weights_key == "pretrained" else "sidebar.weights.none")))
for key, index in (("cmp_cam_a", 0), ("cmp_cam_b", 1)):
    if st.session_state.get(key) not in names:
        st.session_state[key] = names[min(index, len(names) - 1)]
columns = st.columns(2)
problems = []  # models whose ImageNet weights could not be loaded: said once below the two columns
for column, key in zip(columns, ("cmp_cam_a", "cmp_cam_b")):
    with column:
        name = st.selectbox(t(f"cmp.{key[4:]}"), names, key=key, format_func=short)
        try:
            with st.spinner(t("common.computing")):
                loaded = compare_model(name, weights_key, str(sel.device))
                result = cam_and_predictions(name, loaded.weights_key, str(sel.device), sel.image_hash,
                                             tuple(loaded.input_shape), _loaded=loaded, _image=sel.image)
        except Exception as exc:
            error_box(exc)
            continue
        st.caption(weights_badge(loaded))
        if is_weights_problem(loaded):
            problems.append(loaded)
        st.image(result["overlay"], width="stretch",
                 caption=t("cmp.cam_caption", layer=result["layer"], shape="×".join(map(str, loaded.input_shape))))
        if result["predictions"]:
            st.markdown(f"**{t('cmp.pred_title')}**")
            note = prediction_note(loaded, sel.image_name)
            if note:
                st.caption(note)
            with st.expander(t("pred.scores_anyway")) if note else st.container():
                st.dataframe([{t("cmp.pred_label"): label, t("cmp.pred_prob"): round(100 * prob, 2)}
                              for label, prob in result["predictions"]], hide_index=True, width="stretch")
if problems:
    show_weights_note(problems[0])
