"""Welcome page: the current choice, the image as the model sees it, and a map of the course concepts."""
import streamlit as st

from explorer.core import describe_device
from explorer.imaging import as_pixels, input_picture

from ui.common import image_preview, loaded_model, model_input, run_through_app, selection, show_weights_note, t
from ui.present import wrap_page_links

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

st.title(t("home.title"))
st.write(t("home.intro"))
sel = selection()
loaded = loaded_model()
st.markdown(t("home.current", model=sel.model_name, shape="×".join(map(str, loaded.input_shape)),
              device=describe_device(loaded.device)))  # as the sidebar says it: "CPU (2 threads)"
show_weights_note(loaded)

left, right = st.columns(2)
with left:
    st.caption(t("home.original", w=sel.image.width, h=sel.image.height))
    picture, picture_format = image_preview(sel)
    st.image(picture, width="stretch", output_format=picture_format)
with right:
    tensor = model_input()[0]
    mean, std = loaded.normalization
    st.caption(t("home.input_title"))
    # Normalisation undone with the transform's own mean and std: the colours the network receives, resized and
    # cropped (a per-channel stretch turned an orange star black). A built network may take 2-16 channels: the
    # picture shows the first three, or the first as grey.
    # The tensor's own pixels: PNG, enlarged by whole pixels (a JPEG the browser stretches showed ringing and blur
    # that the network never receives)
    st.image(as_pixels(input_picture(tensor, mean, std), 460), width="stretch", output_format="PNG")
    st.caption(t("home.input_caption", shape="×".join(map(str, tensor.shape)), lo=float(tensor.min()),
                 hi=float(tensor.max()), mean=float(tensor.mean())))
    if mean is not None and std is not None:
        st.caption(t("home.input_normalization", mean=", ".join(f"{v:.3f}" for v in mean),
                     std=", ".join(f"{v:.3f}" for v in std)))

st.subheader(t("home.concepts"))
wrap_page_links()
for stem in ("architecture", "receptive_field", "conv_arithmetic", "feature_maps", "gradcam", "filters",
             "augmentation", "training", "compare", "papers", "build"):
    try:
        st.page_link(f"pages/{stem}.py", label=f"{t('nav.' + stem)} — {t('home.concept.' + stem)}")
    except Exception:  # page not registered in navigation (file absent)
        continue
