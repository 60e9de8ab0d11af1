"""Welcome page: the current choice, the image as the model sees it, and a map of the course concepts."""
import numpy as np
import streamlit as st

from ui.common import loaded_model, model_input, run_through_app, selection, show_weights_note, t

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("home.title"))
st.write(t("home.intro"))
sel = selection()
loaded = loaded_model()
st.markdown(t("home.current", model=sel.model_name, shape="×".join(map(str, loaded.input_shape)), device=sel.device))
show_weights_note(loaded)

left, right = st.columns(2)
with left:
    st.caption(t("home.original", w=sel.image.width, h=sel.image.height))
    st.image(sel.image, width="stretch")
with right:
    tensor = model_input()[0].numpy()
    lo, hi = float(tensor.min()), float(tensor.max())
    # Per channel: Normalize is an affine map per channel, so stretching each channel undoes it (a grey
    # photo stays grey); one range for the whole tensor tinted it.
    c_lo, c_hi = tensor.min(axis=(1, 2), keepdims=True), tensor.max(axis=(1, 2), keepdims=True)
    view = (tensor - c_lo) / np.where(c_hi > c_lo, c_hi - c_lo, 1)
    view = (view.transpose(1, 2, 0) * 255).astype(np.uint8)
    st.caption(t("home.input_title"))
    # A built network may take 2-16 channels: show the first three (or the first, as grey), as st.image needs.
    st.image(view[..., :3] if view.shape[2] >= 3 else view[..., 0], width="stretch", clamp=True)
    st.caption(t("home.input_caption", shape="×".join(map(str, tensor.shape)), lo=lo, hi=hi, mean=float(tensor.mean())))

st.subheader(t("home.concepts"))
for stem in ("architecture", "receptive_field", "conv_arithmetic", "feature_maps", "gradcam", "filters",
             "augmentation", "training", "compare", "papers", "build"):
    try:
        st.page_link(f"pages/{stem}.py", label=f"{t('nav.' + stem)} — {t('home.concept.' + stem)}")
    except Exception:  # page not registered in navigation (file absent)
        continue
