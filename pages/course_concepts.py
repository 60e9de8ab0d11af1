"""Course concepts computed live: batch normalisation, dropout, vanishing gradients, 1×1 reductions, pooling,
plain vs residual networks (the degradation experiment), LeNet-5's and AlexNet's counts as the papers give them,
and the notes' MLP (25,514 parameters) against their MNIST CNN (2,762)."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer.analysis import POOLINGS, gap_vs_flatten, last_spatial_map, pool_image, pool_output_size
from explorer.imaging import colorize, normalize, to_png, upscale
from explorer.training import degradation_curves, degradation_result, degradation_verdict, paper_table2
from ui import concepts_cache as C
from ui.analysis_cache import cache_key, heatmap_figure, layer_maps, overview
from ui.common import (error_box, formatter, input_too_small, loaded_model, model_cache_key, run_through_app, selection,
                       show_weights_note, t)

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("cc.title"))
st.caption(t("cc.intro"))
loaded = loaded_model()
sel = selection()
key = cache_key(loaded, sel.image_hash)
show_weights_note(loaded)
# The BatchNorm and Dropout tabs run the network on the image: an input it cannot take is said there, once each;
# the other tabs do not depend on it.
too_small = input_too_small(*model_cache_key(loaded), _loaded=loaded)


def download(frame: pd.DataFrame, name: str, widget_key: str) -> None:
    st.download_button(t("common.download_csv"), frame.to_csv(index=False).encode(), file_name=name,
                       mime="text/csv", key=widget_key, on_click="ignore")


# The library's column names -> their translation keys (cc.col.*); downloads keep the library's names.
COLUMN_KEYS = {
    "layer": "layer", "type": "type", "output": "output", "params": "params", "trainable": "trainable", "fixed": "fixed",
    "connections": "connections", "params (paper)": "params_paper", "connections (paper)": "connections_paper",
    "paper: geometry": "paper_geometry", "paper: output": "paper_output", "paper: params": "paper_params",
    "torchvision: geometry": "tv_geometry", "torchvision: output": "tv_output", "torchvision: params": "tv_params",
    "layers": "layers", "plain": "plain", "residual, option A (resnetN_a)": "residual_a",
    "torchvision, projections (resnetN)": "tv_projections", "ResNet": "resnet", "branch": "branch", "model": "model",
    "train_loss": "train_loss", "train_error": "train_error", "valid_error": "valid_error",
    "mult_adds": "mult_adds", "weight layers": "weight_layers", "mult_adds per param": "mult_adds_per_param",
    "params (notes)": "params_notes", "weight layers (notes)": "weight_layers_notes",
    "accuracy % (notes)": "accuracy_notes",
}


def header(column: str) -> str:
    key = COLUMN_KEYS.get(column)
    return t(f"cc.col.{key}") if key else column


def headed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its column (and index) names in the page's language."""
    shown = frame.rename(columns=header)
    if shown.index.name:
        shown = shown.rename_axis(header(shown.index.name))
    return shown


def picture(values: np.ndarray, cmap: str = "viridis", side: int = 192) -> bytes:
    """A 2-D map as a PNG, stretched to its own range and enlarged with square pixels."""
    zoom = max(1, side // max(values.shape))
    return to_png(upscale(colorize(normalize(values), cmap), zoom))


def spatial_layers() -> list[str]:
    info = overview(key, loaded, sel.image)
    return [c["name"] for c in info["calls"] if c["shape"] and len(c["shape"]) == 3]


tabs = st.tabs([t(f"cc.tab.{name}") for name in
                ("bn", "dropout", "gradients", "reductions", "pooling", "residual", "lenet", "alexnet", "mlp")])

# --- batch normalisation ----------------------------------------------------------------------------------
with tabs[0]:
    st.subheader(t("cc.bn.title"))
    st.markdown(t("cc.bn.body"))
    names = C.batchnorm_names(key[:4], loaded)
    if too_small:
        st.error(t("arch.too_small", message=too_small))
    elif not names:
        st.info(t("cc.bn.none", model=loaded.name))
    else:
        if st.session_state.get("cc_bn_layer") not in names:
            st.session_state["cc_bn_layer"] = names[0]
        c1, c2 = st.columns([2, 1])
        layer = c1.selectbox(t("cc.bn.layer"), names, key="cc_bn_layer")
        channels = int(loaded.model.get_submodule(layer).num_features)
        if st.session_state.get("cc_bn_channel", 0) >= channels:
            st.session_state["cc_bn_channel"] = 0
        channel = int(c2.number_input(t("cc.bn.channel"), 0, channels - 1, key="cc_bn_channel"))
        try:
            demo = C.batchnorm(key, layer, channel, loaded, sel.image)
        except Exception as exc:  # shown in this tab; the other tabs still draw
            error_box(exc)
            demo = None
        if demo is not None:
            k = channel
            cols = st.columns(4)
            cols[0].metric("m", f"{demo.m:,}", help=t("cc.bn.m_help"))
            cols[1].metric("μ", f"{demo.batch_mean[k]:.4g}")
            cols[2].metric("σ²", f"{demo.batch_var[k]:.4g}")
            cols[3].metric("σ² · m/(m − 1)", f"{demo.unbiased_var[k]:.4g}")
            cols = st.columns(4)
            cols[0].metric("γ", f"{demo.gamma[k]:.4g}")
            cols[1].metric("β", f"{demo.beta[k]:.4g}")
            cols[2].metric(t("cc.bn.running_mean"), f"{demo.running_mean[k]:.4g}",
                           delta=f"{demo.running_mean_after[k] - demo.running_mean[k]:+.3g}")
            cols[3].metric(t("cc.bn.running_var"), f"{demo.running_var[k]:.4g}",
                           delta=f"{demo.running_var_after[k] - demo.running_var[k]:+.3g}")
            # momentum=None: PyTorch's cumulative average, 1/(batches seen + 1) for this batch
            st.markdown(t("cc.bn.formulas", mom=f"{demo.update_factor:.4g}", eps=f"{demo.eps:g}", m=demo.m))
            st.caption(t("cc.bn.init_note"))
            maps = st.columns(3)
            for col, values, title in zip(maps, (demo.input_map, demo.train_map, demo.eval_map),
                                          (t("cc.bn.map_in"), t("cc.bn.map_train"), t("cc.bn.map_eval"))):
                col.plotly_chart(heatmap_figure(values, "viridis", 260, title=title, axes=False), width="stretch",
                                 key=f"cc_bn_{title}")
            frame = pd.DataFrame({"channel": np.arange(len(demo.batch_mean)), "mu": demo.batch_mean,
                                  "var_biased": demo.batch_var, "var_unbiased": demo.unbiased_var, "gamma": demo.gamma,
                                  "beta": demo.beta, "running_mean": demo.running_mean, "running_var": demo.running_var,
                                  "running_mean_after": demo.running_mean_after, "running_var_after": demo.running_var_after})
            download(frame, f"batchnorm_{layer}.csv", "cc_bn_csv")

# --- dropout ----------------------------------------------------------------------------------------------
with tabs[1]:
    st.subheader(t("cc.do.title"))
    st.markdown(t("cc.do.body"))
    layers: list[str] = []
    if too_small:
        st.error(t("arch.too_small", message=too_small))
    else:
        try:
            layers = spatial_layers()
        except Exception as exc:  # e.g. a built network without any spatial map: said here, the other tabs draw
            error_box(exc)
    if st.session_state.get("cc_do_layer") not in layers:
        st.session_state["cc_do_layer"] = layers[0] if layers else None
    c1, c2, c3 = st.columns([2, 1, 1])
    layer = c1.selectbox(t("cc.do.layer"), layers, key="cc_do_layer")
    st.session_state.setdefault("cc_do_p", 0.5)  # a link may set it: no default beside the key
    p = c2.slider(t("cc.do.p"), 0.0, 0.9, step=0.1, key="cc_do_p")
    if layer is not None:
        activation = layer_maps(key, layer, loaded, sel.image)
        channels = activation.shape[0]
        if st.session_state.get("cc_do_channel", 0) >= channels:
            st.session_state["cc_do_channel"] = 0
        channel = int(c3.number_input(t("cc.do.channel"), 0, channels - 1, key="cc_do_channel"))
        demo = C.dropout((*key, layer), float(p), activation, layer)
        cols = st.columns(4)
        cols[0].metric(t("cc.do.kept"), f"{demo.kept_fraction:.1%}", help=t("cc.do.kept_help", keep=f"{1 - p:.0%}"))
        cols[1].metric(t("cc.do.scale"), f"{demo.scale:.3g}")
        cols[2].metric(t("cc.do.mean_in"), f"{demo.input.mean():.4g}")
        cols[3].metric(t("cc.do.mean_train"), f"{demo.train_output.mean():.4g}")
        maps = st.columns(3)
        for col, values, title in zip(maps, (demo.input[channel], demo.train_output[channel], demo.eval_output[channel]),
                                      (t("cc.do.map_in"), t("cc.do.map_train"), t("cc.do.map_eval"))):
            col.image(picture(values), caption=title, width="stretch", output_format="PNG")
        st.caption(t("cc.do.caption"))

# --- vanishing gradients -------------------------------------------------------------------------------------
with tabs[2]:
    st.subheader(t("cc.gr.title"))
    st.markdown(t("cc.gr.body"))
    c1, c2, c3 = st.columns(3)
    depth = c1.radio(t("cc.gr.depth"), [18, 34], horizontal=True, key="cc_gr_depth")
    # Off first: the plain network's vanishing gradient is what the notes describe; BatchNorm is one remedy.
    st.session_state.setdefault("cc_gr_bn", False)  # defaults here, not beside the keys: a link may set them
    st.session_state.setdefault("cc_gr_steps", 0)
    batch_norm = c2.toggle(t("cc.gr.bn"), key="cc_gr_bn")
    steps = c3.select_slider(t("cc.gr.steps"), [0, 5, 20], key="cc_gr_steps")
    quantity = st.radio(t("cc.gr.quantity"), ["output_grad_norm", "grad_norm"], horizontal=True, key="cc_gr_quantity",
                        format_func=formatter("cc.gr.q."))
    if st.button(t("cc.gr.run"), key="cc_gr_run") or st.session_state.get("_cc_gr_done"):
        st.session_state["_cc_gr_done"] = True
        try:
            with st.spinner(t("common.computing")):
                frame = C.gradients(int(depth), bool(batch_norm), int(steps))
        except Exception as exc:
            error_box(exc)
        else:
            figure = go.Figure([go.Scatter(x=g["depth"], y=g[quantity], mode="lines+markers", name=name,
                                           text=g["layer"])
                                for name, g in frame.groupby("network", sort=False)])
            figure.update_layout(yaxis_type="log", xaxis_title=t("cc.gr.x"), yaxis_title=t(f"cc.gr.y.{quantity}"),
                                 height=380, margin=dict(l=10, r=10, t=30, b=10))
            figure.update_yaxes(exponentformat="power")  # 10⁻⁶, not plotly's "1µ"
            st.plotly_chart(figure, width="stretch", key="cc_gr_chart")
            ends = frame.groupby("network", sort=False)[quantity].agg(["first", "last"])
            ends["ratio"] = ends["first"] / ends["last"]
            shown = ends.map(lambda v: f"{v:.3g}")  # 2.08e-06: three significant digits at any scale
            st.dataframe(shown.rename_axis(t("cc.gr.network")).rename(columns={
                "first": t("cc.gr.first"), "last": t("cc.gr.last"), "ratio": t("cc.gr.ratio")}), width="content")
            download(frame, f"gradients_{depth}_bn{int(batch_norm)}_steps{steps}.csv", "cc_gr_csv")
    st.caption(t("cc.gr.caption"))
    st.code("python -m explorer gradients resnet18 --input 3x64x64 --csv", language="bash")

# --- 1×1 reductions ------------------------------------------------------------------------------------------
with tabs[3]:
    st.subheader(t("cc.red.title"))
    st.markdown(t("cc.red.body"))
    naive, reduced = C.reductions()
    frame = pd.DataFrame({
        "": [t("cc.red.weights"), t("cc.red.biases"), t("cc.red.madds"), t("cc.red.out")],
        t("cc.red.naive"): [f"{naive.weights:,}", f"{naive.biases:,}", f"{naive.mult_adds / 1e6:.1f} M",
                              f"{naive.out_channels:,}"],  # text like the rest of the column (Arrow)
        t("cc.red.reduced"): [f"{reduced.weights:,}", f"{reduced.biases:,}", f"{reduced.mult_adds / 1e6:.1f} M",
                              f"{reduced.out_channels:,}"],
    })
    st.dataframe(frame, hide_index=True, width="stretch")
    branches = pd.DataFrame({header("branch"): list(reduced.branches), t("cc.red.naive"): [naive.branches.get(b, 0) for b in reduced.branches],
                             t("cc.red.reduced"): list(reduced.branches.values())})
    st.dataframe(branches, hide_index=True, width="content")
    st.success(t("cc.red.summary", weights=f"{100 * (1 - reduced.weights / naive.weights):.0f}",
                 madds=f"{100 * (1 - reduced.mult_adds / naive.mult_adds):.0f}"))

# --- pooling -------------------------------------------------------------------------------------------------
with tabs[4]:
    st.subheader(t("cc.pool.title"))
    st.markdown(t("cc.pool.body"))
    side = 64
    grey = np.asarray(sel.image.convert("L").resize((side, side)), dtype=np.float32) / 255.0
    cols = st.columns(len(POOLINGS) + 1)
    cols[0].image(picture(grey, "gray"), caption=f"{side}×{side}", width="stretch", output_format="PNG")
    for col, kind in zip(cols[1:], POOLINGS):
        out = pool_image(grey, kind)
        col.image(picture(out, "gray"), caption=f"{t(f'cc.pool.{kind}')} → {out.shape[0]}×{out.shape[1]}",
                  width="stretch", output_format="PNG")
    st.caption(t("cc.pool.sizes", n=side, a=pool_output_size(side, 2, 2), b=pool_output_size(side, 3, 2)))
    st.markdown(f"**{t('cc.pool.gap_title')}**")
    from ui.common import cached_layer_table, model_cache_key

    try:
        table, _totals = cached_layer_table(*model_cache_key(loaded), _loaded=loaded)
        found = last_spatial_map(table)  # the map before any pooling to 1×1 (ResNet's layer4, not its avgpool)
    except Exception:
        found = None
    where, (c, h, w) = found or ("VGG-16 pool5", (512, 7, 7))
    classes = len(loaded.class_names) or 1000
    heads = gap_vs_flatten(c, h, w, classes)
    st.markdown(t("cc.pool.gap_body", layer=where, c=c, h=h, w=w, k=classes, flat=f"{heads.flatten_params:,}",
                  gap=f"{heads.gap_params:,}", saved=f"{heads.saved:,}", ratio=f"{heads.ratio:.1f}"))

# --- plain vs residual -----------------------------------------------------------------------------------------
with tabs[5]:
    st.subheader(t("cc.res.title"))
    st.markdown(t("cc.res.body"))
    pairs = C.parameter_pairs()
    st.dataframe(headed(pairs), hide_index=True, width="content", column_config={
        header(c): st.column_config.NumberColumn(format="localized") for c in pairs.columns if c != "layers"})
    st.caption(t("cc.res.params_caption"))
    st.markdown(f"**{t('cc.res.table2')}**")
    st.dataframe(headed(paper_table2()), hide_index=True, width="content")
    result = degradation_result()
    st.markdown(f"**{t('cc.res.experiment')}**")
    if result is None:
        st.info(t("cc.res.no_result"))
    else:
        curves = degradation_curves(result)
        figure = go.Figure([go.Scatter(x=g["epoch"], y=g["train_error"], mode="lines+markers", name=name,
                                       line=dict(dash="dash" if name.startswith("plain") else "solid"))
                            for name, g in curves.groupby("model", sort=False)])
        figure.update_layout(xaxis_title=t("cc.res.epoch"), yaxis_title=t("cc.res.train_error"), height=360,
                             margin=dict(l=10, r=10, t=30, b=10))
        st.plotly_chart(figure, width="stretch", key="cc_res_chart")
        final = curves.groupby("model", sort=False).last()[["train_loss", "train_error", "valid_error"]]
        st.dataframe(headed(final.round(2)), width="content")
        setting = result["setting"]
        st.caption(t("cc.res.setting", **{k: setting[k] for k in ("dataset", "image_size", "epochs", "batch_size", "lr")}))
        # What this run shows, in its own numbers (a short run need not reproduce all of the paper's conclusion)
        verdict = degradation_verdict(result)
        errors = {k: f"{v:.1f}" for k, v in verdict.items() if not isinstance(v, bool)}
        residual = ("not_worse" if verdict["residual_not_worse"] else
                    "short_run" if verdict["shortcuts_help_deep"] else "no_help")
        parts = [t("cc.res.plain_" + ("degrades" if verdict["plain_degrades"] else "no_degradation"), **errors),
                 t(f"cc.res.residual_{residual}", **errors)]
        st.caption(" ".join(parts))
        download(curves, "degradation.csv", "cc_res_csv")
    st.code("python scripts/degradation.py            # the shipped setting, 2 CPU cores\n"
            "python scripts/degradation.py --dataset cifar10 --epochs 60 --batch-size 128 --lr 0.1 --device cuda "
            "--out runs/degradation_cifar10.json", language="bash")

# --- LeNet-5 ---------------------------------------------------------------------------------------------------
with tabs[6]:
    st.subheader(t("cc.lenet.title"))
    st.markdown(t("cc.lenet.body"))
    st.markdown(t("cc.lenet.notes"))
    table = C.lenet_table()
    st.dataframe(headed(table), hide_index=True, width="stretch")
    st.caption(t("cc.lenet.caption", trainable=f"{int(table['trainable'].sum()):,}", total=f"{int(table['params'].sum()):,}",
                 fixed=f"{int(table['fixed'].sum()):,}"))
    download(table, "lenet5_layers.csv", "cc_lenet_csv")

# --- AlexNet ---------------------------------------------------------------------------------------------------
with tabs[7]:
    st.subheader(t("cc.alex.title"))
    st.markdown(t("cc.alex.body"))
    st.markdown(f"**{t('cc.alex.notes_title')}**\n\n" + t("cc.alex.notes"))
    with st.spinner(t("common.computing")):
        table = C.alexnet_table()
    st.dataframe(headed(table), hide_index=True, width="stretch", column_config={
        header("paper: params"): st.column_config.NumberColumn(format="localized"),
        header("torchvision: params"): st.column_config.NumberColumn(format="localized")})
    download(table, "alexnet_paper_vs_torchvision.csv", "cc_alex_csv")

# --- MLP vs CNN (the notes' Lab 4: 25,514 → 2,762 parameters) -------------------------------------------------------
with tabs[8]:
    st.subheader(t("cc.mlp.title"))
    st.markdown(t("cc.mlp.body"))
    summary, layers, by_side = C.mlp_vs_cnn()

    def named(frame: pd.DataFrame) -> pd.DataFrame:
        """The model column's keys ("mlp", "cnn") as the page's names for the two networks."""
        return frame.assign(model=frame["model"].map(lambda key: t(f"cc.mlp.name.{key}")))

    st.dataframe(headed(named(summary)), hide_index=True, width="stretch", column_config={
        header(c): st.column_config.NumberColumn(format="localized")
        for c in ("params", "mult_adds", "params (notes)")})
    mlp_row, cnn_row = (summary.set_index("model").loc[k] for k in ("mlp", "cnn"))
    st.caption(t("cc.mlp.caption", fewer=f"{mlp_row['params'] / cnn_row['params']:.1f}",
                 more=f"{cnn_row['mult_adds'] / mlp_row['mult_adds']:.1f}"))
    download(summary, "mlp_vs_cnn.csv", "cc_mlp_csv")
    st.markdown(f"**{t('cc.mlp.layers')}**")
    st.dataframe(headed(named(layers)), hide_index=True, width="stretch", column_config={
        header(c): st.column_config.NumberColumn(format="localized") for c in ("params", "mult_adds")})
    download(layers, "mlp_vs_cnn_layers.csv", "cc_mlp_layers_csv")
    st.markdown(f"**{t('cc.mlp.scaling')}**")
    series = (("mlp", "solid"), ("cnn", "solid"), ("cnn convolutions", "dash"))
    figure = go.Figure([go.Scatter(x=by_side["side"], y=by_side[column], mode="lines+markers", line=dict(dash=dash),
                                   name=t(f"cc.mlp.series.{column.replace(' ', '_')}"))
                        for column, dash in series])
    figure.update_layout(yaxis_type="log", xaxis_title=t("cc.mlp.x"), yaxis_title=t("cc.mlp.y"), height=380,
                         margin=dict(l=10, r=10, t=30, b=10))
    figure.update_yaxes(exponentformat="power")
    st.plotly_chart(figure, width="stretch", key="cc_mlp_chart")
    st.caption(t("cc.mlp.scaling_caption"))
    download(by_side, "mlp_vs_cnn_by_input_side.csv", "cc_mlp_side_csv")
