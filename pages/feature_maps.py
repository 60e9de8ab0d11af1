"""Feature maps: every channel of any layer, before and after the activation, and the first-layer filters."""
import math

import streamlit as st

from explorer.imaging import COLORMAPS, colorize, normalize, overlay, to_png, upscale
from explorer.imaging import DOWNLOAD_MIN_SIDE, as_pixels, channel_stats, pixel_zoom
from ui.analysis_cache import (channel_figure, feature_activation_chain, first_layer_pictures, full_tile_png,
                               layer_maps, map_calls, page_start, show_predictions, tile)
from ui.common import formatter, halt, run_through_app, t

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

loaded, sel, key, info, safe_name = page_start("maps", ("maps_block", "maps_layer", "maps_channel"))

st.subheader(t("maps.predictions"))
show_predictions(info["probabilities"], loaded, t, key)

# --- layer picker: grouped by block, searchable by typing in the select box ---------------------------
calls = map_calls(info)
if not calls:
    st.warning(t("maps.no_spatial"))
    halt()
by_name = {c["name"]: c for c in calls}
blocks = list(dict.fromkeys(c["block"] for c in calls))
if st.session_state.get("maps_block") not in ["*", *blocks]:
    st.session_state["maps_block"] = "*"
col_block, col_layer = st.columns([1, 2])
block = col_block.selectbox(t("maps.block"), ["*", *blocks], key="maps_block",
                            format_func=lambda b, every=t("maps.all_blocks"), top=t("maps.top_level"): every if b == "*" else (b or top))
options = [c["name"] for c in calls if block == "*" or c["block"] == block]
if st.session_state.get("maps_layer") not in options:
    st.session_state["maps_layer"] = info["first_conv"] if info["first_conv"] in options else options[0]


def layer_label(name: str) -> str:
    c = by_name[name]
    return f"{name} · {c['module_type']} · {'×'.join(map(str, c['shape']))}"


layer = col_layer.selectbox(t("maps.layer"), options, key="maps_layer", format_func=layer_label,
                            help=t("maps.layer_help"))

# --- feature map (before the activation) vs activation map (after it), and every step in between ---------
# The chain as the network computes it: a ResNet block's conv2 goes conv2 -> bn2 -> + shortcut -> relu#2,
# so its activation map is ReLU(BN(conv2) + shortcut), not ReLU(BN(conv2)); each step is offered by name.
chain = feature_activation_chain(key, layer, loaded, sel.image)
has_activation = chain[-1].role == "activation"
middle = chain[1:-1] if has_activation else chain[1:]
step_names = {"feature": chain[0].name, "activation": chain[-1].name if has_activation else chain[0].name}
labels = {"feature": t("maps.kind.feature")}
for i, step in enumerate(middle, 1):
    step_names[f"step{i}"] = step.name
    labels[f"step{i}"] = t(f"maps.step.{step.role if step.role in ('add', 'input') else 'after'}",
                           name=step.name.removesuffix(":in"), type=step.module_type)
# named after the network's own activation (LeNet-5's scaled tanh, EfficientNet's SiLU), not always ReLU
activation_type = chain[-1].module_type if has_activation else "ReLU"
labels["activation"] = t("maps.kind.activation", type=activation_type)
options = ["feature", *[f"step{i}" for i in range(1, len(middle) + 1)], "activation"]
if st.session_state.get("maps_kind") not in options:
    st.session_state["maps_kind"] = "feature"
kind = st.radio(t("maps.kind"), options, key="maps_kind", horizontal=True, format_func=labels.get)
if not has_activation:
    st.caption(t("maps.no_activation", layer=layer))
arrows = " → ".join(
    t("maps.chain.add", name=s.name, shortcut=s.shortcut) if s.role == "add" else f"{s.name} ({s.module_type})"
    for s in chain)
st.caption(t("maps.chain_caption", chain=arrows, feature=chain[0].name,
             activation=chain[-1].name if has_activation else "—")
           + (" " + t("maps.relu_note") if has_activation and activation_type.lower().startswith("relu") else ""))
st.caption(t("maps.wording_note"))
added = next((s for s in chain if s.role == "add"), None)
if added is not None:
    st.info(t("maps.chain_residual", activation=chain[-1].name, shortcut=added.shortcut, layer=layer))
shown = step_names[kind]
maps = layer_maps(key, shown, loaded, sel.image)
channels = maps.shape[0]

c1, c2, c3 = st.columns(3)
order = c1.radio(t("maps.order"), ["index", "mean"], key="maps_order", horizontal=True,
                 format_func=formatter("maps.order."))
scale = c2.radio(t("maps.scale"), ["shared", "channel"], key="maps_scale", horizontal=True,
                 format_func=formatter("maps.scale."))
cmap = c3.selectbox(t("maps.cmap"), list(COLORMAPS), key="maps_cmap")

tiled = tile(key, shown, order, scale, cmap, loaded, sel.image)
st.plotly_chart(tiled["figure"], width="stretch", key="maps_tile")
# By mean whatever the grid's order (in index order the grid's first five are just 0…4)
strongest = ", ".join(map(str, tiled["strongest"]))
st.caption(t("maps.tile_caption", channels=channels, rows=tiled["rows"], cols=tiled["cols"], shape="×".join(
    map(str, maps.shape[1:])), strongest=strongest) + (t("maps.shrunk", factor=tiled["shrink"]) if tiled["shrink"] > 1 else ""))
st.download_button(t("common.download_png"),
                   lambda: full_tile_png(key, shown, order, scale, cmap, loaded, sel.image), file_name=f"{safe_name}_{shown}_channels.png",
                   mime="image/png", key="maps_dl_tile", on_click="ignore")

# --- one channel, large, with its statistics and over the image ----------------------------------------
st.subheader(t("maps.channel_title"))
if st.session_state.get("maps_channel", 0) >= channels:
    st.session_state["maps_channel"] = 0
cc1, cc2 = st.columns([1, 2])
channel = int(cc1.number_input(t("maps.channel"), min_value=0, max_value=channels - 1, step=1, key="maps_channel",
                               help=t("maps.channel_help")))
st.session_state.setdefault("maps_alpha", 0.5)  # a link may set it: no default beside the key
alpha = cc2.slider(t("maps.alpha"), 0.0, 1.0, step=0.05, key="maps_alpha")
one = maps[channel]
stats = channel_stats(one)
cols = st.columns(5)
for col, name in zip(cols, ["min", "max", "mean", "std"]):
    col.metric(t(f"maps.stat.{name}"), f"{stats[name]:.4g}")
cols[4].metric(t("maps.stat.positive"), f"{stats['positive']:.0%}")
left, right = st.columns(2)
left.plotly_chart(channel_figure(key, shown, channel, cmap, t("maps.channel_map", channel=channel, layer=shown), one),
                  width="stretch", key="maps_channel_fig")
blend = overlay(info["picture"], normalize(one), alpha, cmap)
# A small input (28×28) is drawn as pixels: enlarged by whole pixels here, not smoothed by the browser
tiny = pixel_zoom(blend.shape, 450) >= 4
right.image(as_pixels(blend, 450) if tiny else blend, caption=t("maps.overlay_caption"), width="stretch",
            output_format="PNG" if tiny else "auto")
zoom = pixel_zoom(one.shape, DOWNLOAD_MIN_SIDE)
d1, d2 = st.columns(2)
d1.download_button(t("maps.download_channel"), lambda: to_png(upscale(colorize(normalize(one), cmap), zoom)),
                   file_name=f"{safe_name}_{shown}_ch{channel}.png", mime="image/png", key="maps_dl_channel", on_click="ignore")
d2.download_button(t("maps.download_overlay"), lambda: to_png(as_pixels(blend, DOWNLOAD_MIN_SIDE)), file_name=f"{safe_name}_{shown}_ch{channel}_overlay.png",
                   mime="image/png", key="maps_dl_overlay", on_click="ignore")

# --- first-layer filters beside the maps they produce ----------------------------------------------------
if info["filters"] is not None:
    st.subheader(t("maps.filters_title"))
    st.caption(t("maps.filters_caption", layer=info["first_conv"], count=info["filters"].shape[0],
                 size="×".join(map(str, info["filters"].shape[2:]))))
    grid_is_first = (shown, order, scale) == (info["first_conv"], "index", "shared")
    pictures = first_layer_pictures(key, max(1, math.ceil(math.sqrt(info["filters"].shape[0]))), cmap,
                                    loaded, sel.image, same_as_grid=grid_is_first)
    f1, f2 = st.columns(2)
    f1.image(pictures["png"], caption=t("maps.filters_kernels"), width="stretch", output_format="PNG")
    f2.image(pictures["maps"], caption=t("maps.filters_maps"), width="stretch",
             output_format=pictures["maps_format"].upper())
    f1.download_button(t("maps.download_filters"), pictures["png"], file_name=f"{safe_name}_filters.png",
                       mime="image/png", key="maps_dl_filters", on_click="ignore")
