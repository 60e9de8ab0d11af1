"""Grad-CAM: where the network looks for a class, at any layer, and other captum attributions beside it."""
import streamlit as st

from explorer.analysis import LAYER_METHODS, METHODS, RequestTooLargeError
from explorer.imaging import COLORMAPS, DOWNLOAD_MIN_SIDE, as_pixels, colorize, overlay, to_png
from ui.analysis_cache import (cam_heat, cam_layers, cam_max_side, cam_plan, cams_for_class, heat_figure, other_method, page_start, show_predictions,
                               spinner_once)
from ui.common import error_box, formatter, halt, run_through_app, t

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

loaded, sel, key, info, safe_name = page_start("cam", ("cam_layer", "cam_class", "cam_compare"))
show_predictions(info["probabilities"], loaded, t, key)

# --- layer and class --------------------------------------------------------------------------------------
shapes = {c["name"]: c["shape"] for c in info["calls"]}
try:
    with spinner_once(("cams", key, info["top1"]), t("cam.computing")):
        top_cams = cams_for_class(key, info["top1"], loaded, sel.image)
except RequestTooLargeError as exc:  # refused before any work: the estimate exceeds the per-request budget
    st.error(t("security.cam_too_large", needed=exc.needed // 2**20, budget=exc.budget // 2**20,
               side=cam_max_side(key, loaded, sel.image)))
    halt()
except Exception as exc:
    error_box(exc)
    halt()
if not cam_plan(key, loaded, sel.image)[1]:  # degraded: the earliest layers were left out to fit the budget
    st.info(t("security.cam_degraded", n=len(top_cams), side=cam_max_side(key, loaded, sel.image)))
layers = cam_layers(info, top_cams)
if not layers:
    st.warning(t("cam.no_layers"))
    halt()
if st.session_state.get("cam_layer") not in layers:
    st.session_state["cam_layer"] = info["default_layer"] if info["default_layer"] in layers else layers[-1]
names = list(loaded.class_names or [])
classes = len(info["probabilities"])
top1 = info["top1"]


def class_label(index: int) -> str:
    return f"{index}: {names[index]}" if index < len(names) else str(index)


if st.session_state.get("cam_class", -1) not in range(-1, classes):
    st.session_state["cam_class"] = -1
c1, c2 = st.columns(2)
layer = c1.selectbox(t("cam.layer"), layers, key="cam_layer", help=t("cam.layer_help", default=info["default_layer"]),
                     format_func=lambda n: f"{n} · {'×'.join(map(str, shapes.get(n) or ()))}")
choice = c2.selectbox(t("cam.class"), [-1, *range(classes)], key="cam_class", help=t("cam.class_help"),
                      format_func=lambda i, top=t("cam.top1", label=class_label(top1)): top if i == -1 else class_label(i))
target = top1 if choice == -1 else int(choice)
c3, c4 = st.columns(2)
st.session_state.setdefault("cam_alpha", 0.5)  # a link may set it: no default beside the key
alpha = c3.slider(t("cam.alpha"), 0.0, 1.0, step=0.05, key="cam_alpha")
cmaps = list(COLORMAPS)
if st.session_state.get("cam_cmap") not in cmaps:
    st.session_state["cam_cmap"] = "jet"
cmap = c4.selectbox(t("cam.cmap"), cmaps, key="cam_cmap")

try:
    with spinner_once(("cams", key, target), t("cam.computing_class", label=class_label(target))):
        cams = top_cams if target == top1 else cams_for_class(key, target, loaded, sel.image)
except Exception as exc:
    error_box(exc)
    halt()
picture = info["picture"]
size = picture.shape[:2]

# --- the heatmap over the image ---------------------------------------------------------------------------
heat = cam_heat(key, layer, target, size, cams)
blend = overlay(picture, heat, alpha, cmap)
left, right = st.columns(2)
left.image(blend, width="stretch", caption=t("cam.overlay_caption", layer=layer, label=class_label(target)))
right.plotly_chart(heat_figure(key, layer, target, cmap, heat), width="stretch", key="cam_heat")
right.caption(t("cam.heat_caption", h=cams[layer].shape[0], w=cams[layer].shape[1]))
if float(heat.max()) == 0.0:
    st.info(t("cam.all_zero"))
d1, d2 = st.columns(2)
# Downloads enlarged by whole pixels to a usable size (a 64×64 input would be a thumbnail on a slide).
d1.download_button(t("cam.download_overlay"), lambda: to_png(as_pixels(blend, DOWNLOAD_MIN_SIDE)), file_name=f"{safe_name}_{layer}_c{target}_gradcam.png",
                   mime="image/png", key="cam_dl_overlay", on_click="ignore")
# the heatmap as shown: its values in the chosen colormap (the same table as the figure's colour scale)
d2.download_button(t("cam.download_heat"), lambda: to_png(as_pixels(colorize(heat, cmap), DOWNLOAD_MIN_SIDE)), file_name=f"{safe_name}_{layer}_c{target}_heat.png",
                   mime="image/png", key="cam_dl_heat", on_click="ignore")
st.caption(t("cam.formula"))

# --- the same class at early, middle and late layers -----------------------------------------------------
st.subheader(t("cam.layers_title"))
convs = [c["name"] for c in info["calls"] if c["is_conv"] and c["name"] in cams]
suggested = list(dict.fromkeys([convs[len(convs) // 4], convs[len(convs) // 2], info["default_layer"]])) if convs else []
suggested = [n for n in suggested if n in cams]
if "cam_compare" not in st.session_state or not set(st.session_state["cam_compare"]) <= set(layers):
    st.session_state["cam_compare"] = suggested
compare = st.multiselect(t("cam.layers_pick"), layers, key="cam_compare", max_selections=4)
if compare:
    for col, name in zip(st.columns(len(compare)), compare):
        col.image(overlay(picture, cam_heat(key, name, target, size, cams), alpha, cmap), width="stretch",
                  caption=f"{name} ({'×'.join(map(str, cams[name].shape))})")
    st.caption(t("cam.layers_caption"))

# --- other captum methods on the same image ---------------------------------------------------------------
st.subheader(t("cam.methods_title"))
st.caption(t("cam.methods_caption"))
if "cam_methods" not in st.session_state:
    st.session_state["cam_methods"] = ["guided_gradcam", "integrated_gradients", "saliency"]
methods = st.multiselect(t("cam.methods_pick"), list(METHODS), key="cam_methods",
                         format_func=formatter("cam.method."))
if methods and st.toggle(t("cam.methods_run"), key="cam_methods_on", help=t("cam.methods_run_help")):
    maps = {}
    with st.status(t("cam.methods_running"), expanded=False) as status:
        progress = st.progress(0.0)
        for i, method in enumerate(methods):
            status.update(label=t("cam.methods_step", method=t(f"cam.method.{method}")))
            try:
                maps[method] = other_method(key, method, layer if method in LAYER_METHODS else "", target,
                                            loaded, sel.image)
            except RequestTooLargeError as exc:
                st.error(t("security.cam_too_large", needed=exc.needed // 2**20, budget=exc.budget // 2**20,
                           side=cam_max_side(key, loaded, sel.image)))
            except Exception as exc:
                error_box(exc)
            progress.progress((i + 1) / len(methods))
        status.update(label=t("cam.methods_done"), state="complete")
    for col, (method, values) in zip(st.columns(max(1, len(maps))), maps.items()):
        shown = overlay(picture, values, alpha, cmap)
        col.image(shown, width="stretch", caption=t(f"cam.method.{method}"))
        col.caption(t(f"cam.method_help.{method}"))
        col.download_button(t("common.download_png"), lambda shown=shown: to_png(shown), file_name=f"{safe_name}_c{target}_{method}.png",
                            mime="image/png", key=f"cam_dl_{method}", on_click="ignore")
