"""Widgets, cached computations and drawing helpers for the Filters lab page (pages/filters.py).

Session-state keys (all prefixed ``flt_``): ``flt_view``, ``flt_padding``, ``flt_stride``, ``flt_color``,
``flt_operation``, ``flt_display``, ``flt_preset``, ``flt_gsize``, ``flt_gsigma``, ``flt_bsize``,
``flt_ed_size``, ``flt_ed_from``, ``flt_ed{size}_{row}_{col}`` (editor cells), ``flt_ed_msg``, ``flt_cmp``,
``flt_uploads``, ``flt_hand_src``, ``flt_hand_kernel``, ``flt_hand_size``, ``flt_hand_r``, ``flt_hand_c``,
``flt_hand_pad``, ``flt_hand_stride``, ``flt_hand_op``, ``flt_hand_pos``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from explorer.imaging import filter_display as D
from explorer.imaging import filters as F
from explorer.core import translate
from ui.common import current_lang, error_box, t

EDITOR_SIZES = (3, 5, 7)
Spec = tuple  # ("preset", name, gaussian_size, gaussian_sigma, box_size) or ("custom", rows as tuples)


@dataclass(frozen=True)
class Settings:
    padding: str
    stride: int
    grayscale: bool
    operation: str
    display: str

    def key(self) -> tuple:
        return (self.padding, self.stride, self.grayscale, self.operation, self.display)


# --------------------------------------------------------------------------------------------- widgets
def labels(prefix: str, variants: frozenset[str] = frozenset(), suffix: str = ""):
    """A format_func for options ``v`` -> ``t(f"{prefix}.{v}")`` with the language fixed now; the options in
    ``variants`` read ``t(f"{prefix}.{v}{suffix}")`` instead (a label that depends on another widget).

    Widgets may call format_func outside this script run (AppTest does), where the session's language
    cannot be read; binding it here keeps the labels in the page's language.
    """
    lang = current_lang()
    return lambda value: translate(f"{prefix}.{value}{suffix if value in variants else ''}", lang)


def settings_controls() -> Settings:
    """Grey/per-channel and correlation/convolution in one row; padding, stride and display mode in the next.

    Two rows, not one of five: at 150 % zoom on a 1280-px projector the main column is ~550 CSS px, and five
    columns cut the segmented control and the operation's and display's names.
    """
    top = st.columns(2)
    st.session_state.setdefault("flt_color", "gray")  # defaults here, not beside the keys: a link may set them
    st.session_state.setdefault("flt_stride", 1)
    color = top[0].segmented_control(t("filters.color"), ["gray", "rgb"], required=True,
                                     key="flt_color", format_func=labels("filters.color"))
    operation = top[1].selectbox(t("filters.operation"), F.OPERATIONS, key="flt_operation",
                                 format_func=labels("filters.operation"), help=t("filters.operation_help"))
    c = st.columns([3, 2, 3])
    padding = c[0].selectbox(t("filters.padding"), F.PADDING_MODES, key="flt_padding",
                             format_func=labels("filters.padding"), help=t("filters.padding_help"))
    stride = c[1].slider(t("filters.stride"), 1, 4, key="flt_stride")
    # A colour result is drawn "signed" channel by channel (grey 0, brighter +, darker −), not blue/white/red.
    display_labels = labels("filters.display", frozenset({"diverging"}), "_rgb") if color == "rgb" \
        else labels("filters.display")
    display = c[2].selectbox(t("filters.display"), D.DISPLAY_MODES[:4], key="flt_display",
                             format_func=display_labels, help=t("filters.display_help"))
    return Settings(padding, int(stride), color != "rgb", operation, display)


def _cell_key(size: int, r: int, c: int) -> str:
    return f"flt_ed{size}_{r}_{c}"


def _set_grid(size: int, kernel: np.ndarray) -> None:
    for r in range(size):
        for c in range(size):
            st.session_state[_cell_key(size, r, c)] = float(kernel[r, c])


def _editor_kernel(size: int) -> np.ndarray:
    centre = size // 2
    return np.array([[float(st.session_state.get(_cell_key(size, r, c), 1.0 if r == c == centre else 0.0))
                      for c in range(size)] for r in range(size)])


def _fit(kernel: np.ndarray, size: int) -> np.ndarray:
    """Place a preset in a size x size grid: centred with zeros around, or its centre part if larger."""
    out = np.zeros((size, size))
    kh, kw = kernel.shape
    if kh <= size:
        o = (size - kh) // 2
        out[o:o + kh, o:o + kw] = kernel
    else:
        o = (kh - size) // 2
        out[:] = kernel[o:o + size, o:o + size]
    return out


def _load_preset() -> None:
    size, name = st.session_state["flt_ed_size"], st.session_state["flt_ed_from"]
    kernel = F.kernel_for(name, gaussian_size=size, box_size=size) if name in ("gaussian", "box_blur") \
        else F.KERNELS[name]
    _set_grid(size, _fit(np.asarray(kernel), size))
    st.session_state["flt_ed_msg"] = ""


def _normalise() -> None:
    size = st.session_state["flt_ed_size"]
    try:
        _set_grid(size, F.normalise_kernel(_editor_kernel(size)))
        st.session_state["flt_ed_msg"] = ""
    except ValueError as exc:
        st.session_state["flt_ed_msg"] = str(exc)


def _flip() -> None:
    size = st.session_state["flt_ed_size"]
    _set_grid(size, F.flip_kernel(_editor_kernel(size)))


def _take_linked_kernel() -> None:
    """A kernel that a shared link (or the lecturer's class) put in ``flt_custom`` goes into the grid, once: what the
    editor wrote there itself after its last run is its own grid, and the cells then stay the truth."""
    state = st.session_state
    text = state.get("flt_custom")
    if text is None or text == state.get("_flt_custom_written"):
        return
    state["_flt_custom_written"] = text  # taken (or refused) once
    try:
        kernel = F.parse_kernel(text)
        if kernel.shape[0] != kernel.shape[1] or kernel.shape[0] not in EDITOR_SIZES:
            raise ValueError(f"the editor holds 3×3, 5×5 or 7×7 kernels, not {kernel.shape[0]}×{kernel.shape[1]}")
        if np.abs(kernel).max() > F.MAX_KERNEL_VALUE:
            raise ValueError(f"kernel values are at most {F.MAX_KERNEL_VALUE:g} in size")
    except ValueError as exc:
        state["flt_ed_msg"] = t("filters.editor.bad_link", reason=str(exc))
        return
    state["flt_ed_size"] = int(kernel.shape[0])
    _set_grid(int(kernel.shape[0]), kernel)


def kernel_editor() -> np.ndarray:
    """A 3x3 / 5x5 / 7x7 grid of numbers with load-preset, normalise and flip; returns the kernel. Its kernel is also
    kept as text in ``flt_custom`` (what a shared link carries)."""
    _take_linked_kernel()
    st.session_state.setdefault("flt_ed_size", 3)  # the default here, not beside the key: a link may set it
    c1, c2, c3, c4 = st.columns([2, 3, 2, 2], vertical_alignment="bottom")
    size = c1.segmented_control(t("filters.editor.size"), EDITOR_SIZES, required=True, key="flt_ed_size",
                                format_func=lambda s: f"{s}×{s}")
    c2.selectbox(t("filters.editor.from"), list(F.KERNELS), key="flt_ed_from", format_func=labels("filters.k"))
    c2.button(t("filters.editor.load"), on_click=_load_preset, key="flt_ed_load")
    c3.button(t("filters.editor.normalise"), on_click=_normalise, key="flt_ed_norm", help=t("filters.editor.normalise_help"))
    c4.button(t("filters.editor.flip"), on_click=_flip, key="flt_ed_flip", help=t("filters.editor.flip_help"))
    if st.session_state.get("flt_ed_msg"):
        st.warning(st.session_state["flt_ed_msg"])
    centre = size // 2
    for r in range(size):
        cols = st.columns(size)
        for c in range(size):
            key = _cell_key(size, r, c)
            if key not in st.session_state:
                st.session_state[key] = 1.0 if r == c == centre else 0.0
            # Bounded like the library's kernels (larger weights overflow the result): the box refuses the rest.
            cols[c].number_input(f"k[{r},{c}]", key=key, step=1.0, format="%.4g", label_visibility="collapsed",
                                 min_value=-F.MAX_KERNEL_VALUE, max_value=F.MAX_KERNEL_VALUE)
    kernel = _editor_kernel(size)
    text = F.format_kernel(kernel)
    st.caption(t("filters.editor.sum", total=float(kernel.sum()), text=text))
    st.session_state["flt_custom"] = st.session_state["_flt_custom_written"] = text
    return kernel


def preset_params(name: str) -> tuple[int, float, int]:
    """The Gaussian size/sigma and box size sliders, shown only for the presets that use them."""
    gsize, gsigma, bsize = 5, 1.0, 3
    state = st.session_state  # defaults set here, not beside the keys: a shared link may have set them
    if name == "gaussian":
        c1, c2 = st.columns(2)
        state.setdefault("flt_gsize", 5)
        state.setdefault("flt_gsigma", 1.0)
        gsize = c1.select_slider(t("filters.gsize"), [3, 5, 7, 9, 11, 15], key="flt_gsize")
        gsigma = c2.slider(t("filters.gsigma"), 0.3, 5.0, step=0.1, key="flt_gsigma")
    elif name == "box_blur":
        state.setdefault("flt_bsize", 3)
        bsize = st.select_slider(t("filters.bsize"), [3, 5, 7, 9, 11], key="flt_bsize")
    return int(gsize), float(gsigma), int(bsize)


def kernel_choice(options: list[str] | None = None, key: str = "flt_preset") -> tuple[str, Spec]:
    """Preset select (plus "custom" = the editor); returns (label, spec)."""
    options = options or [*F.FILTER_NAMES, "custom"]
    name = st.selectbox(t("filters.kernel"), options, index=options.index("sobel_x") if "sobel_x" in options else 0,
                        key=key, format_func=labels("filters.k"))
    return name, spec_for(name)


def spec_for(name: str) -> Spec:
    """The spec of a preset or of the editor, drawing the widgets it needs (parameters, editor grid)."""
    if name == "custom":
        with st.container(border=True):
            st.markdown(f"**{t('filters.editor.title')}**")
            kernel = kernel_editor()
        return ("custom", tuple(map(tuple, kernel.tolist())))
    return ("preset", name, *preset_params(name))


@st.cache_data(max_entries=16, show_spinner=False)
def decode_upload(_data: bytes, digest: str):
    """An uploaded file decoded by ``explorer.imaging.images.load_image`` (cached by content hash)."""
    from explorer.imaging import load_image

    return load_image(_data)


def kernel_of(spec: Spec) -> np.ndarray | None:
    """The kernel of a spec; None for the Sobel magnitude/direction (two kernels combined)."""
    if spec[0] == "custom":
        return np.array(spec[1], dtype=np.float64)
    name = spec[1]
    if name in F.COMPOSITE_FILTERS:
        return None
    return F.kernel_for(name, gaussian_size=spec[2], gaussian_sigma=spec[3], box_size=spec[4])


def kernel_shape_of(spec: Spec) -> tuple[int, int]:
    k = kernel_of(spec)
    return (3, 3) if k is None else k.shape


# ------------------------------------------------------------------------------------------ compute
def compute(image, spec: Spec, settings: Settings) -> np.ndarray:
    """The full-resolution result (float64) of one filter on a PIL image."""
    arr = F.to_array(image, grayscale=settings.grayscale)
    if spec[0] == "preset" and spec[1] in F.COMPOSITE_FILTERS:
        return F.apply_filter(arr, spec[1], settings.padding, settings.stride, settings.operation)
    return F.apply(arr, kernel_of(spec), settings.padding, settings.stride, settings.operation)


def display_mode(spec: Spec, settings: Settings) -> str:
    return "direction" if spec[:2] == ("preset", "sobel_direction") else settings.display


@st.cache_data(max_entries=48, show_spinner=False)
def cached_view(image_key: str, spec: Spec, settings_key: tuple, _image):
    """Figure (downscaled for drawing) and the honest numbers, keyed on plain values."""
    settings = Settings(*settings_key)
    result = compute(_image, spec, settings)
    fig, mapping = D.result_figure(result, display_mode(spec, settings))
    info = {"shape": result.shape, "lo": mapping.value_min, "hi": mapping.value_max, "mode": mapping.mode,
            "zmin": mapping.zmin, "zmax": mapping.zmax, "clipped": mapping.clipped_fraction,
            "in_shape": (_image.height, _image.width)}
    return fig, info


def mapping_caption(info: dict) -> str:
    """How the picture shows the values. Colour (per-channel) results have their own "signed" and "direction"
    legends: each channel grey = 0, brighter +, darker − (no blue or red); the channels' angles side by side."""
    mode = info["mode"]
    colour = len(info["shape"]) == 3 and info["shape"][2] > 1
    if colour and mode == "diverging":
        key = "filters.mapping.diverging_rgb"
    elif colour and mode == "direction":
        key = "filters.mapping.direction_rgb"
    else:
        key = f"filters.mapping.{mode}"
    return t(key, zmin=info["zmin"], zmax=info["zmax"], clipped=100 * info["clipped"])


def show_result(image, image_key: str, spec: Spec, settings: Settings, title: str, key: str) -> None:
    """One result: figure, value range and display mapping, and a full-resolution PNG download."""
    try:
        fig, info = cached_view(image_key, spec, settings.key(), _image=image)
    except ValueError as exc:
        error_box(exc)
        return
    st.markdown(f"**{title}**")
    st.plotly_chart(fig, key=f"{key}_fig", config={"displaylogo": False})
    shape = "×".join(map(str, info["shape"]))
    st.caption(t("filters.range", lo=info["lo"], hi=info["hi"], shape=shape))
    st.caption(mapping_caption(info))
    if max(info["shape"][:2]) > 384:
        st.caption(t("filters.downscaled"))

    def png() -> bytes:  # deferred: only computed when the button is clicked
        return D.to_png(compute(image, spec, settings), display_mode(spec, settings))

    stem = spec[1] if spec[0] == "preset" else "custom_kernel"
    st.download_button(t("common.download_png"), png, file_name=f"{stem}_{settings.padding}_s{settings.stride}.png",
                       mime="image/png", key=f"{key}_png", on_click="ignore")


def size_formula(image, spec: Spec, settings: Settings) -> None:
    """The output size by (N - F + 2P) / S + 1 for rows and columns, with the numbers filled in."""
    kh, kw = kernel_shape_of(spec)
    try:
        ph, pw = F.padding_amount((kh, kw), settings.padding)
        rows = F.explain_output_size(image.height, kh, ph, settings.stride)
        cols = F.explain_output_size(image.width, kw, pw, settings.stride)
    except ValueError as exc:
        error_box(exc)
        return
    for axis, e in ((t("filters.rows"), rows), (t("filters.cols"), cols)):
        note = "" if e.divides_evenly else t("filters.floor_note")
        st.markdown(t("filters.formula", axis=axis, n=e.n, f=e.f, p=e.p, s=e.s, exact=f"{e.exact:g}",
                      size=e.size) + note)


# ------------------------------------------------------------------------------------ by hand
def clamped_slider(where, label: str, high: int, default: int, key: str, offset: int = 0) -> int:
    """A 0..high slider (shown as offset..high+offset) whose remembered value is kept inside its range when
    the range shrinks (another image or kernel); returns the 0-based value."""
    if high <= 0:
        return 0
    value = st.session_state.get(key, default + offset)
    st.session_state[key] = int(min(max(value, offset), high + offset))
    return int(where.slider(label, offset, high + offset, key=key)) - offset


def by_hand_view(image) -> None:
    """Convolution by hand: patch, kernel, products, sum and the whole output grid, position by position."""
    c = st.columns([3, 2])
    src = c[0].segmented_control(t("filters.hand.src"), ["example", "image"], default="example", required=True,
                                 key="flt_hand_src", format_func=labels("filters.hand.src"))
    names = ["example_x", *F.KERNELS, "custom"]
    kname = c[1].selectbox(t("filters.kernel"), names, key="flt_hand_kernel", format_func=labels("filters.k"))
    c = st.columns(3)
    padding = c[0].selectbox(t("filters.padding"), F.PADDING_MODES, index=3, key="flt_hand_pad",
                             format_func=labels("filters.padding"))
    stride = c[1].slider(t("filters.stride"), 1, 3, 1, key="flt_hand_stride")
    operation = c[2].selectbox(t("filters.operation"), F.OPERATIONS, key="flt_hand_op",
                               format_func=labels("filters.operation"))
    if src == "example":
        patch = np.asarray(F.EXAMPLE_PATCH)
    else:
        grey = np.rint(F.to_array(image, grayscale=True))
        c1, c2, c3 = st.columns(3)
        size = c1.select_slider(t("filters.hand.size"), [5, 7, 9], value=5, key="flt_hand_size")
        size = min(size, *grey.shape)
        r0 = clamped_slider(c2, t("filters.hand.row"), grey.shape[0] - size, (grey.shape[0] - size) // 2, "flt_hand_r")
        c0 = clamped_slider(c3, t("filters.hand.col"), grey.shape[1] - size, (grey.shape[1] - size) // 2, "flt_hand_c")
        patch = grey[r0:r0 + size, c0:c0 + size]
        st.caption(t("filters.hand.patch_note", size=size, r=r0, c=c0))
    if kname == "example_x":
        kernel = np.asarray(F.EXAMPLE_KERNEL)
    elif kname == "custom":
        kernel = np.array(spec_for("custom")[1])
    else:
        kernel = np.asarray(F.kernel_for(kname, gaussian_size=3, box_size=3))
    try:
        rows, cols = F.output_shape(patch.shape, kernel.shape, padding, stride)
        F.validate_kernel(kernel, patch.shape, padding)
    except ValueError as exc:
        error_box(exc)
        return
    total = rows * cols
    pos = 1 + clamped_slider(st, t("filters.hand.position"), total - 1, 0, "flt_hand_pos", offset=1)
    step = F.convolution_by_hand(patch, kernel, divmod(pos - 1, cols), padding, stride, operation)
    kh, kw = kernel.shape
    g = st.columns(3)
    g[0].plotly_chart(D.grid_figure(step.padded, (*step.top_left, kh, kw), t("filters.hand.input")), key="flt_h_in")
    g[1].plotly_chart(D.kernel_figure(step.kernel_used, t(f"filters.hand.kernel.{operation}")), key="flt_h_k")
    g[2].plotly_chart(D.grid_figure(step.products, None, t("filters.hand.products"), diverging=True), key="flt_h_p")
    terms = " + ".join(f"{a:g}×{b:g}" for a, b in zip(step.window.ravel(), step.kernel_used.ravel()))
    st.markdown(t("filters.hand.sum", r=step.position[0], c=step.position[1], total=f"{step.total:g}"))
    st.code(f"{terms}\n= {step.total:g}", language=None)
    st.plotly_chart(D.grid_figure(step.output, (*step.position, 1, 1), t("filters.hand.output",
                    rows=rows, cols=cols)), key="flt_h_out")
    st.caption(t("filters.hand.output_note", n=patch.shape[0], f=kh, p=step.pad[0], s=stride, size=rows))
    correlation_note(patch)


def correlation_note(patch: np.ndarray) -> None:
    """OpenCV's filter2D (and CNN layers) correlate; true convolution flips the kernel. Shown with Sobel x."""
    st.subheader(t("filters.corr.title"))
    st.markdown(t("filters.corr.body"))
    k = np.asarray(F.KERNELS["sobel_x"])
    corr = F.correlate(patch, k, "none")
    conv = F.convolve(patch, k, "none")
    c = st.columns(4)
    c[0].plotly_chart(D.kernel_figure(k, t("filters.corr.kernel")), key="flt_c_k")
    c[1].plotly_chart(D.grid_figure(corr, None, t("filters.corr.correlate"), diverging=True), key="flt_c_a")
    c[2].plotly_chart(D.kernel_figure(F.flip_kernel(k), t("filters.corr.flipped")), key="flt_c_f")
    c[3].plotly_chart(D.grid_figure(conv, None, t("filters.corr.convolve"), diverging=True), key="flt_c_b")
    st.caption(t("filters.corr.caption"))


# ------------------------------------------------------------------------------- augmentation page
@st.cache_data(max_entries=8, show_spinner=False)
def cached_draws(image_key: str, config_items: tuple, n: int, seed: int, preview_side: int, _image):
    """Seeded augmentation draws of the preview image, as numpy ``[3, H, W]`` float32 tensors."""
    from explorer.imaging import augment as A
    config = A.AugmentConfig.from_dict(dict(config_items))
    preview = A.prepare_preview(_image, preview_side)
    return [d.numpy() for d in A.draws(preview, config, n, seed)]


@st.cache_data(max_entries=8, show_spinner=False)
def preview_png(image_key: str, preview_side: int, _image) -> bytes:
    """The picture the augmentation draws start from, as a lossless PNG (the code beside it opens this file)."""
    from explorer.imaging import augment as A
    from explorer.imaging import image_to_png

    return image_to_png(A.prepare_preview(_image, preview_side))


# Draws are shown on screen at least this many pixels on their long side, enlarged by whole pixels.
DRAW_MIN_SIDE = 160


@st.cache_data(max_entries=8, show_spinner=False)
def draw_pictures(image_key: str, config_items: tuple, n: int, seed: int, preview_side: int, normalize: bool,
                  _draws) -> list[tuple[bytes, float]]:
    """Each draw as PNG bytes (the tensor's own pixels: a JPEG would show other colours at sharp edges), enlarged by
    a whole-pixel factor when tiny, with the share of values clipped for display; encoded once per draw set."""
    import torch

    from explorer.imaging import as_pixels, to_png
    from explorer.imaging import augment as A

    pictures = []
    for draw in _draws:
        picture, clipped = A.to_display(torch.from_numpy(draw), normalize)
        pictures.append((to_png(as_pixels(picture, DRAW_MIN_SIDE)), clipped))
    return pictures
