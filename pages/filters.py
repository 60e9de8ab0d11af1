"""Filters lab: what one hand-made filter does to an image ("one filter gives one edge map")."""
import hashlib

import streamlit as st

from explorer.imaging import filter_display as D
from explorer.imaging import filters as F
from ui import filters_ui as ui
from ui.common import halt, run_through_app, selection, t

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

MAX_COMPARE = 4

st.title(t("filters.title"))
st.write(t("filters.intro"))
sel = selection()

st.session_state.setdefault("flt_view", "single")  # a link may set it: no default beside the key
view = st.segmented_control(t("filters.view"), ["single", "filters", "images", "hand"],
                            required=True, key="flt_view", format_func=ui.labels("filters.view"))

if view == "hand":
    st.caption(t("filters.hand.intro"))
    ui.by_hand_view(sel.image)
    halt()

settings = ui.settings_controls()

if view == "single":
    left, middle, right = st.columns([1, 1, 1.6])
    with left:
        name, spec = ui.kernel_choice()
        kernel = ui.kernel_of(spec)
        if kernel is None:
            # By true convolution both Sobel kernels are flipped: gx, gy change sign, the direction turns by 180°.
            st.caption(t("filters.composite_note_convolve") if settings.operation == "convolve"
                       else t("filters.composite_note"))
        else:
            shown = F.flip_kernel(kernel) if settings.operation == "convolve" else kernel
            st.plotly_chart(D.kernel_figure(shown, t(f"filters.kernel_as.{settings.operation}")), key="flt_kfig")
        if name in ("sobel_y", "sobel_y_notes"):
            st.caption(t("filters.sobel_y_note"))
        ui.size_formula(sel.image, spec, settings)
    with middle:
        st.markdown(f"**{t('filters.original')}**")
        st.image(sel.image, caption=f"{sel.image.width}×{sel.image.height}", width="stretch")
    with right:
        ui.show_result(sel.image, sel.image_hash, spec, settings, t(f"filters.k.{name}"), key="flt_single")

elif view == "filters":
    names = [*F.FILTER_NAMES, "custom"]
    if "flt_cmp" not in st.session_state:
        st.session_state["flt_cmp"] = ["sobel_x", "sobel_y", "sobel_magnitude", "gaussian"]
    chosen = st.multiselect(t("filters.compare_pick"), names, key="flt_cmp", max_selections=MAX_COMPARE,
                            format_func=ui.labels("filters.k"))
    if not chosen:
        st.info(t("filters.compare_none"))
        halt()
    specs = {name: ui.spec_for(name) for name in chosen}  # draws the editor/parameters the choices need
    cols = st.columns(len(chosen))
    for i, (col, name) in enumerate(zip(cols, chosen)):
        with col:
            ui.show_result(sel.image, sel.image_hash, specs[name], settings, t(f"filters.k.{name}"), key=f"flt_cmp{i}")

else:  # the same filter on several images
    name, spec = ui.kernel_choice()
    files = st.file_uploader(t("filters.uploads"), type=["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff", "gif"],
                             accept_multiple_files=True, key="flt_uploads", help=t("filters.uploads_help"))
    images = [(sel.image_name or t("filters.sidebar_image"), sel.image, sel.image_hash)]
    for f in (files or [])[: MAX_COMPARE - 1]:
        data = f.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        try:
            images.append((f.name, ui.decode_upload(data, digest), digest))
        except ValueError as exc:  # ImageLoadError: not an image, truncated, too large...
            st.error(t("filters.upload_error", name=f.name, message=exc))
    if files and len(files) > MAX_COMPARE - 1:
        st.warning(t("filters.too_many", n=MAX_COMPARE - 1))
    cols = st.columns(len(images))
    for i, (col, (label, image, digest)) in enumerate(zip(cols, images)):
        with col:
            st.image(image, caption=f"{label} ({image.width}×{image.height})", width="stretch")
            ui.show_result(image, digest, spec, settings, t(f"filters.k.{name}"), key=f"flt_img{i}")
