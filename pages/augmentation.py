"""Augmentation preview: torchvision transforms.v2 on the current image, N seeded draws and the code."""
import numpy as np
import streamlit as st
import torch

from explorer.imaging import augment as A
from ui.common import error_box, halt, run_through_app, selection, t
from ui.filters_ui import cached_draws, draw_pictures, preview_png

run_through_app()  # app.py's sidebar and navigation around this page, also on a cold deep link

PREVIEW_SIDE = 320
PER_ROW = 4
INPUT_FILE = "augment_input.png"

st.title(t("aug.title"))
st.write(t("aug.intro"))
sel = selection()

with st.expander(t("aug.pipeline"), expanded=True):
    geo, col, ten = st.columns(3)
    with geo:
        st.markdown(f"**{t('aug.group.geometry')}**")
        hflip = geo.slider(t("aug.hflip"), 0.0, 1.0, 0.5, 0.05, key="aug_hflip")
        vflip = geo.slider(t("aug.vflip"), 0.0, 1.0, 0.0, 0.05, key="aug_vflip")
        rotation = geo.slider(t("aug.rotation"), 0, 180, 15, key="aug_rotation")
        translate = geo.slider(t("aug.translate"), 0.0, 0.5, 0.1, 0.05, key="aug_translate")
        crop = geo.toggle(t("aug.crop"), False, key="aug_crop", help=t("aug.crop_help"))
        crop_size, crop_scale = 224, (0.08, 1.0)
        if crop:
            crop_size = geo.select_slider(t("aug.crop_size"), [32, 64, 96, 128, 160, 224, 256], 224, key="aug_crop_size")
            crop_scale = geo.slider(t("aug.crop_scale"), 0.05, 1.0, (0.08, 1.0), 0.01, key="aug_crop_scale")
    with col:
        st.markdown(f"**{t('aug.group.colour')}**")
        brightness = col.slider(t("aug.brightness"), 0.0, 1.0, 0.2, 0.05, key="aug_brightness")
        contrast = col.slider(t("aug.contrast"), 0.0, 1.0, 0.2, 0.05, key="aug_contrast")
        saturation = col.slider(t("aug.saturation"), 0.0, 1.0, 0.2, 0.05, key="aug_saturation")
        hue = col.slider(t("aug.hue"), 0.0, 0.5, 0.05, 0.01, key="aug_hue")
        grayscale = col.slider(t("aug.grayscale"), 0.0, 1.0, 0.1, 0.05, key="aug_grayscale")
        blur = col.select_slider(t("aug.blur"), [0, 3, 5, 7, 9], 0, key="aug_blur",
                                 format_func=lambda k, off=t("aug.off"): off if k == 0 else f"{k}×{k}")
        sigma = col.slider(t("aug.blur_sigma"), 0.1, 5.0, (0.1, 2.0), 0.1, key="aug_sigma") if blur else (0.1, 2.0)
    with ten:
        st.markdown(f"**{t('aug.group.tensor')}**")
        # The erased rectangle is 0 after the steps before it: the mean colour when normalised, black otherwise (the
        # toggle is drawn below the slider: its value from the last run, the default on the first).
        erasing_help = t("aug.erasing_help" if st.session_state.get("aug_normalize", True) else "aug.erasing_help_plain")
        erasing = ten.slider(t("aug.erasing"), 0.0, 1.0, 0.0, 0.05, key="aug_erasing", help=erasing_help)
        normalize = ten.toggle(t("aug.normalize"), True, key="aug_normalize", help=t("aug.normalize_help"))
        seed = int(ten.number_input(t("aug.seed"), 0, 2**31 - 1, 0, 1, key="aug_seed"))
        n = ten.slider(t("aug.n"), 1, 16, 8, key="aug_n")

try:
    config = A.AugmentConfig(hflip_p=hflip, vflip_p=vflip, rotation_degrees=float(rotation), translate=translate,
                             crop=crop, crop_size=int(crop_size), crop_scale=tuple(crop_scale), brightness=brightness,
                             contrast=contrast, saturation=saturation, hue=hue, grayscale_p=grayscale,
                             blur_kernel=int(blur), blur_sigma=tuple(sigma), erasing_p=erasing, normalize=normalize)
    with st.spinner(t("common.computing")):
        draws = cached_draws(sel.image_hash, tuple(config.to_dict().items()), n, seed, PREVIEW_SIDE, _image=sel.image)
except ValueError as exc:
    error_box(exc)
    halt()

st.subheader(t("aug.draws_title", n=n, seed=seed))
st.caption(t("aug.draws_caption", w=sel.image.width, h=sel.image.height, side=PREVIEW_SIDE, seed=seed))
left, right = st.columns([1, 4])
preview = A.prepare_preview(sel.image, PREVIEW_SIDE)
left.image(preview, caption=t("aug.original"), width="stretch")
pictures = draw_pictures(sel.image_hash, tuple(config.to_dict().items()), n, seed, PREVIEW_SIDE, normalize,
                         _draws=draws)
with right:
    for start in range(0, n, PER_ROW):
        cols = st.columns(PER_ROW)
        for i in range(start, min(start + PER_ROW, n)):
            shape = "×".join(map(str, draws[i].shape))
            cols[i - start].image(pictures[i][0], caption=t("aug.draw_caption", i=i, seed=seed + i, shape=shape),
                                  width="stretch", output_format="PNG")
if normalize:
    clipped = max(p[1] for p in pictures)
    st.caption(t("aug.display_normalized", clipped=100 * clipped))

st.subheader(t("aug.code_title"))
# The draws start from the app's copy of the picture (loaded: EXIF rotation, transparency on white, size caps; then at
# most PREVIEW_SIDE px): the code opens that very picture, offered beside it, so it draws what the app drew.
st.code(A.pipeline_code(config, seed, input_file=INPUT_FILE), language="python")
code_left, code_right = st.columns(2)
code_left.download_button(t("aug.download_input"), preview_png(sel.image_hash, PREVIEW_SIDE, _image=sel.image),
                          file_name=INPUT_FILE, mime="image/png", key="aug_input_png", on_click="ignore")
code_right.caption(t("aug.download_input_caption", w=preview.width, h=preview.height))

st.subheader(t("aug.tensor_title"))
pick = st.slider(t("aug.tensor_pick"), 0, n - 1, 0, key="aug_pick") if n > 1 else 0
tensor = torch.from_numpy(draws[pick])
lo, hi = float(tensor.min()), float(tensor.max())
st.markdown(t("aug.tensor_range", shape="×".join(map(str, tensor.shape)), dtype=str(tensor.dtype), lo=lo, hi=hi))
st.caption(t("aug.tensor_formula") if normalize else t("aug.tensor_plain"))
stats = A.channel_stats(tensor)
st.dataframe(stats.rename(columns={c: t(f"aug.stats.{c}") for c in stats.columns}), hide_index=True, width="content")
if normalize:
    mean = np.array(A.IMAGENET_MEAN)
    std = np.array(A.IMAGENET_STD)
    st.caption(t("aug.tensor_bounds", lo=float(np.min(-mean / std)), hi=float(np.max((1 - mean) / std))))
st.plotly_chart(A.tensor_figure(tensor), key="aug_tensor_fig", config={"displaylogo": False})
st.caption(t("aug.tensor_fig_caption"))
