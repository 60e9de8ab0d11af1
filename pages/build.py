"""Build your own network: type a VGG-style configuration or edit a layer table, check it layer by layer,
see its shape table, and use it on every page."""
import hashlib

import streamlit as st

from explorer.models.arch import LAYER_KINDS, ArchSpecError, full_spec, parse_arch, spec_to_table, split_input, table_to_spec, token_spans
from explorer.analysis import CSV_COLUMNS
from explorer.models import ModelRef
from ui.common import error_box, formatter, halt, run_through_app, t
from ui.compare_cache import built_tables
from ui.format import metric_count, people_table

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

EXAMPLES = {
    "vgg_cifar": "in-3x32x32 conv3-32 BN conv3-32 BN M conv3-64 BN conv3-64 BN M GAP FC-10",
    "vgg_paper": "in-3x32x32 conv3-64 conv3-64 M conv3-128 M FC-256 FC-10",
    "lenet": "in-1x32x32 conv5-6/p0 ReLU A conv5-16/p0 ReLU A FC-120 ReLU FC-84 ReLU FC-10",
    "tiny_vgg": "in-3x64x64 conv3-10/p0 conv3-10/p0 M conv3-10/p0 conv3-10/p0 M FC-10",
    "nin_gap": "in-3x32x32 conv5-96 conv1-96 M dropout conv3-192 conv1-192 M conv3-192 conv1-10 GAP",
    "alexnet": "in-3x224x224 conv11-64/s4/p2 LRN max3/s2 conv5-192 LRN max3/s2 conv3-384 conv3-256 conv3-256 "
               "max3/s2 dropout FC-4096 dropout FC-4096 FC-1000",
}

st.title(t("build.title"))
st.write(t("build.intro"))
with st.expander(t("build.grammar_title")):
    st.markdown(t("build.grammar"))

st.session_state.setdefault("build_current", EXAMPLES["vgg_cifar"])


def load_example() -> None:
    st.session_state["build_current"] = EXAMPLES[st.session_state["build_example"]]
    st.session_state.pop("build_text", None)  # re-seed the text box from the example


left, right = st.columns([3, 1])
left.selectbox(t("build.example"), list(EXAMPLES), key="build_example", format_func=formatter("build.example."))
right.button(t("build.load_example"), key="build_load", on_click=load_example, width="stretch")

mode = st.radio(t("build.mode"), ["text", "table"], key="build_mode", horizontal=True,
                format_func=formatter("build.mode."))
spec = st.session_state["build_current"]
if mode == "text":
    if "build_text" not in st.session_state:
        st.session_state["build_text"] = spec
    spec = st.text_area(t("build.spec"), key="build_text", help=t("build.spec_help"), height=90)
    st.session_state["build_current"] = spec
else:
    try:
        seed_shape, _body = split_input(parse_arch(spec))
        seed = spec_to_table(spec)
    except ArchSpecError as exc:  # keep the user's text: the table needs a spec that parses
        st.error(t("build.table_blocked", message=exc))
        halt()
    shape_text = st.text_input(t("build.input"), value="x".join(map(str, seed_shape)), key="build_in")
    try:
        shape = tuple(int(v) for v in shape_text.lower().replace("×", "x").split("x"))
        assert len(shape) == 3
    except (ValueError, AssertionError):
        st.error(t("build.input_bad", text=shape_text))
        halt()
    st.caption(t("build.table_help"))
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]  # a new editor whenever the spec was rewritten
    edited = st.data_editor(seed, key=f"build_table_{digest}", num_rows="dynamic", hide_index=True, width="stretch",
                            column_config={
                                "layer": st.column_config.SelectboxColumn(t("build.col.layer"), options=list(LAYER_KINDS)),
                                "out": st.column_config.NumberColumn(t("build.col.out"), min_value=1, step=1),
                                "kernel": st.column_config.NumberColumn(t("build.col.kernel"), min_value=1, step=1),
                                "stride": st.column_config.NumberColumn(t("build.col.stride"), min_value=1, step=1),
                                "padding": st.column_config.NumberColumn(t("build.col.padding"), min_value=0, step=1),
                                "groups": st.column_config.NumberColumn(t("build.col.groups"), min_value=1, step=1),
                                "p": st.column_config.NumberColumn(t("build.col.p"), min_value=0.0, max_value=0.99),
                            })
    try:
        new_spec = table_to_spec(edited, shape)
    except ArchSpecError as exc:
        st.error(t("build.error", message=exc))
        halt()
    if new_spec != spec:
        st.session_state["build_current"] = new_spec
        st.session_state.pop("build_text", None)
        st.rerun()  # redraw the editor from the new spec so the next edit lands on it
    spec = new_spec
    st.code(spec, language=None)

try:
    table, plan, shape = built_tables(spec)
except ArchSpecError as exc:
    st.error(t("build.error", message=exc))
    spans = token_spans(spec)
    if exc.position is not None and 0 < exc.position <= len(spans):
        start, end = spans[exc.position - 1]
        line_start = spec.rfind("\n", 0, start) + 1
        line_end = spec.find("\n", start)
        line = spec[line_start:line_end if line_end >= 0 else None]
        st.caption(t("build.error_at", position=exc.position, token=exc.token))
        st.code(line + "\n" + " " * (start - line_start) + "^" * (end - start), language=None)
    halt()
except Exception as exc:
    error_box(exc)
    halt()

canonical = full_spec(spec)
outputs = int(plan["output"].iloc[-1])
cols = st.columns(4)
cols[0].metric(t("build.input_shape"), "×".join(map(str, shape)))
metric_count(cols[1], t("build.params"), int(plan["params"].sum()))  # "24.5 M", the exact count in the help
# The Layer-shapes page's and torchinfo's convention (weights and biases × output positions), as in the table below;
# the plan counts weights only (the papers' convention) and says so in its header.
metric_count(cols[2], t("build.mult_adds"), int(table.loc[table["is_leaf"], "mult_adds"].sum()))
cols[3].metric(t("build.output"), t("build.output_value", n=outputs))
st.success(t("build.ok", modules=len(plan), n=outputs))
st.caption(t("build.relu_explicit" if any(layer.kind == "relu" for layer in parse_arch(spec)) else "build.relu_note"))


def use_model() -> None:
    customs = st.session_state.setdefault("custom_archs", [])
    if canonical not in customs:
        customs.append(canonical)
    st.session_state["sel_model"] = ModelRef.arch(canonical).key
    st.session_state["sel_input"] = f"{shape[1]}x{shape[2]}"
    st.session_state["build_used"] = canonical


st.button(t("build.use"), key="build_use", type="primary", on_click=use_model)
if st.session_state.get("build_used") == canonical:
    st.info(t("build.used", name=canonical))

st.subheader(t("build.table_title"))
shown, shown_config = people_table(table[CSV_COLUMNS], "table.col.", first=("layer", "type", "output_shape", "params"),
                                   counts=("params", "trainable_params", "mult_adds"))
st.dataframe(shown, hide_index=True, width="stretch", column_config=shown_config)
st.download_button(t("common.download_csv"), table[CSV_COLUMNS].to_csv(index=False).encode(),
                   file_name="my_network_layers.csv", mime="text/csv", key="build_csv", on_click="ignore")
with st.expander(t("build.plan_title")):
    plan_shown, plan_config = people_table(plan.rename(columns={"mult_adds": "mult_adds_weights"}), "table.col.",
                                           first=("name", "token", "output", "params"),
                                           counts=("params", "mult_adds_weights"))
    st.dataframe(plan_shown, hide_index=True, width="stretch", column_config=plan_config)
