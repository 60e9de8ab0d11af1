"""The sidebar, the shared cached loaders and the translation helper for every page.

Session-state keys: ``lang``, ``sel_model``, ``sel_weights``, ``sel_input``, ``sel_sample``, ``sel_device``,
``sel_upload`` (file uploader), ``sel_camera_on``, ``sel_camera``, ``sel_checkpoint``, ``custom_archs``.
Models live in ``st.cache_resource`` and are shared by every session: never mutate them.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, NoReturn

import streamlit as st

from explorer.core import DEFAULT_LANGUAGE, LANGUAGES, translate
from ui.entry import inside_app, leave_legacy_pages_mode, run_through_app  # noqa: F401 - the pages' first line


# --- language ----------------------------------------------------------------------------------

def current_lang() -> str:
    lang = st.session_state.get("lang")
    if lang not in LANGUAGES:
        lang = st.query_params.get("lang", DEFAULT_LANGUAGE)
        lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        st.session_state["lang"] = lang
    return lang


def t(key: str, **fmt: Any) -> str:
    """The message ``key`` in the current language."""
    return translate(key, current_lang(), **fmt)


def formatter(prefix: str):
    """A ``format_func`` that translates ``prefix + option`` in the language of *this* run.

    Bind the language now: Streamlit (and AppTest) may call format functions outside the script run,
    where session state is unavailable and ``t`` would fall back to English.
    """
    lang = current_lang()
    return lambda option: translate(f"{prefix}{option}", lang)


def _on_lang_change() -> None:
    st.query_params["lang"] = st.session_state["lang"]


@contextmanager
def spinner_once(token: Any, text: str) -> Iterator[None]:
    """``st.spinner`` the first time this session computes ``token``; nothing on later reruns, where the
    value is cached (a spinner starts a timer thread: ~2 ms of a rerun, more on a busy server)."""
    seen = st.session_state.setdefault("_spinners_seen", [])
    if token in seen:
        yield
        return
    with st.spinner(text):
        yield
    seen.append(token)
    del seen[:-64]


# --- entry ---------------------------------------------------------------------------------------

class PageHalt(BaseException):
    """Raised by :func:`halt`; ``app.py`` catches it around the page (a BaseException, like Streamlit's own
    StopException, so that no page's ``except Exception`` swallows it)."""


def halt() -> NoReturn:
    """End the page here, the way ``st.stop()`` would, but let ``app.py`` finish the run: after ``st.stop()``
    Streamlit refuses every further message of the run, so the address bar kept the previous view, a bad link's
    warning was lost and a lecturer's class was not told about the new view."""
    raise PageHalt



# --- cached loaders ------------------------------------------------------------------------------

# Random weights in place of trained ones that could not be loaded (no internet, a refused or wrong download, a cache
# folder that cannot be written, a damaged file): shown with a banner and its details.
WEIGHTS_PROBLEM_KINDS = frozenset({"offline", "fallback", "refused", "bad_download", "cache_unwritable",
                                   "builtin_damaged"})
# Such a result is shared by every session only this long: the first page run after it loads again, so a weights
# file copied into the cache, or a network that came back, is used without a restart, and an offline server does
# not wait for the download's timeout on every rerun.
FALLBACK_RETRY_S = 60.0
_clock = time.monotonic  # a module attribute, so tests can move time on
_fallback_lock = threading.Lock()
_fallback_loaded_at: dict[tuple, float] = {}


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_model(name: str, weights_key: str, device: str, _weights_bytes: bytes | None = None,
                 version: float = 0.0):
    """``version``: a run folder's checkpoint time, so a run that improved is reloaded, not served stale.
    Pages call :func:`fresh_model`, which retries a fallback after :data:`FALLBACK_RETRY_S`."""
    from explorer.models import load_model

    weights: Any = {"pretrained": "pretrained", "none": None}.get(weights_key, _weights_bytes)
    stamp = _weights_file_stamp(name)  # before loading: a file that arrives meanwhile counts as new
    loaded = load_model(name, weights=weights, device=device)
    with _fallback_lock:
        if loaded.weights_kind in WEIGHTS_PROBLEM_KINDS:
            _fallback_loaded_at[(name, weights_key, device, version)] = (_clock(), stamp)
        else:
            _fallback_loaded_at.pop((name, weights_key, device, version), None)
    return loaded


def _weights_file_stamp(name: str) -> tuple[int, int] | None:
    """(size, mtime) of the file a registry model's trained weights come from (built-in, else the hub cache's),
    None when it is absent or the model has none: one ``stat``, so a page run can see that a file was copied in."""
    from explorer.models import ModelRef, builtin_weights, hub_weights

    try:
        ref = ModelRef.parse(name)
        if ref.kind != "registry":
            return None
        builtin = builtin_weights(ref.value)
        stat = (builtin.path if builtin is not None else hub_weights(ref.value).path).stat()
    except Exception:  # no such file, no ImageNet weights, an unreadable description: nothing to watch
        return None
    return stat.st_size, stat.st_mtime_ns


def fresh_model(name: str, weights_key: str, device: str, weights_bytes: bytes | None = None,
                version: float = 0.0):
    """:func:`cached_model`, except that random weights standing in for trained ones that failed to load are
    loaded again once :data:`FALLBACK_RETRY_S` has passed, or at once when the weights file has changed (appeared,
    been replaced): by one page run, while the others keep the cached result."""
    loaded = cached_model(name, weights_key, device, weights_bytes, version=version)
    if getattr(loaded, "weights_kind", "") not in WEIGHTS_PROBLEM_KINDS:
        return loaded
    key = (name, weights_key, device, version)
    stamp = _weights_file_stamp(name)  # a weights file copied in (or replaced) is used at once
    with _fallback_lock:
        since, stamp_then = _fallback_loaded_at.get(key, (None, None))
        if since is not None and _clock() - since < FALLBACK_RETRY_S and stamp == stamp_then:
            return loaded
        _fallback_loaded_at[key] = (_clock(), stamp)  # this run retries; runs meanwhile keep the fallback
    cached_model.clear(name, weights_key, device, weights_bytes, version=version)
    return cached_model(name, weights_key, device, weights_bytes, version=version)


# Images are cached as shared objects (cache_resource), not copies: cache_data unpickled the whole picture on every
# rerun (~3 % of a Feature-map rerun). Every page and library function only reads ``sel.image`` (PIL operations
# return new images); never mutate it.
@st.cache_resource(max_entries=32, show_spinner=False)
def _decode_image(_data: bytes, digest: str):
    from explorer.imaging import load_image

    return load_image(_data)


@st.cache_data(max_entries=32, show_spinner=False)
def _preview(image_hash: str, _image) -> tuple[bytes, str]:
    from explorer.imaging import preview_picture

    return preview_picture(_image, PREVIEW_SIDE)


PREVIEW_SIDE = 1024  # half a projected page at 150 % zoom


def image_preview(sel: "Selection") -> tuple[bytes, str]:
    """(bytes, "JPEG"|"PNG") of the chosen image for ``st.image``, encoded once per image
    (``explorer.imaging.preview_picture``): the sidebar and the Home page show the same bytes, so a browser
    fetches them once, and no rerun encodes the picture again."""
    return _preview(sel.image_hash, sel.image)


@st.cache_resource(max_entries=8, show_spinner=False)  # shared, read-only: see _decode_image
def _sample(name: str):
    from explorer.imaging import sample_image

    return sample_image(name)


@st.cache_data(show_spinner=False, ttl=30)
def _model_names(models_env: str = "") -> list[str]:
    """``models_env``: ``$EXPLORER_MODELS``, so a changed list of the operator's files is read again."""
    from explorer.models import list_models

    return list_models()


def _use_models_from_argv() -> None:
    """``streamlit run app.py -- --models nets.py``: the operator's files join ``$EXPLORER_MODELS`` (read by
    the registry in this process and by every process it starts)."""
    import sys

    from explorer.models import add_model_paths, models_from_argv

    paths = models_from_argv(sys.argv[1:])
    if paths:
        add_model_paths(paths)


def _user_model_problems() -> list:
    from explorer.models import user_model_problems

    try:
        return user_model_problems()
    except Exception:  # reporting a problem must never be one
        return []


def _run_names() -> list[str]:
    try:
        from explorer.models import list_runs
    except ModuleNotFoundError:
        return []
    try:
        from explorer.models import visible_runs
        from ui.session import session_id

        # The operator's runs and this session's own (private until shared), never another student's.
        return [str(run.path) for run in visible_runs(session_id())]
    except Exception:  # a half-written run folder must not take the sidebar down
        return []


@st.cache_data(max_entries=64, show_spinner=False)
def _natural_shape(name: str) -> tuple[int, int, int]:
    from explorer.models import natural_input_shape

    return natural_input_shape(name)


# --- the selection ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    model_name: str  # the model's text form (ModelRef.key): what session state and caches keep
    weights: str  # "pretrained", "none" or "upload:<sha>"
    input_shape: tuple[int, int, int]
    image: Any  # PIL.Image.Image, RGB
    image_hash: str
    image_name: str
    image_note: str
    device: Any  # torch.device
    model_ref: Any = None  # explorer.models.ModelRef, parsed once from model_name by the sidebar


def _parse_hw(text: str) -> tuple[int, int] | None:
    """What the sidebar's input box says: ``224x224``, ``224`` or ``3x224x224`` → (H, W), as a link reads it. Any
    side up to ``MAX_TYPED_SIDE``: one larger than the model may use is scaled down by cap_input, which says so."""
    from explorer.core import MAX_TYPED_SIDE, parse_shape

    return parse_shape(text, MAX_TYPED_SIDE)


def _on_model_change() -> None:
    name = st.session_state.get("sel_model")
    try:
        _, h, w = _natural_shape(name)
        st.session_state["sel_input"] = f"{h}x{w}"
    except Exception:
        st.session_state.pop("sel_input", None)
    from explorer.models import ModelRef

    run = bool(name) and ModelRef.parse(name).kind == "run"
    st.session_state["sel_weights"] = "run" if run else "pretrained"  # the sidebar turns it into what exists
    if name and not run:  # a built-in sample the new network was trained to name (patterns and uploads stay)
        from explorer.imaging import fitting_sample

        current = st.session_state.get("sel_sample", DEFAULT_SAMPLE)
        st.session_state["sel_sample"] = fitting_sample(_trained_dataset(name), current)


# A fresh session opens on a trained teaching network and a sample it classifies correctly (issue 13): every
# page that shows what a network does teaches something from the first click, with or without internet.
DEFAULT_MODEL = "tiny_vgg"
DEFAULT_SAMPLE = "shape_star"


@st.cache_data(max_entries=256, show_spinner=False)
def _weights_choices(name: str) -> tuple[str, ...]:
    from explorer.models import weights_choices

    try:
        return weights_choices(name)
    except Exception:  # an unknown name is reported where the model loads
        return ()


@st.cache_data(max_entries=256, show_spinner=False)
def _trained_dataset(name: str) -> str:
    from explorer.models import trained_dataset

    try:
        return trained_dataset(name)
    except Exception:
        return ""


def weight_options_of(choices: tuple[str, ...], is_run: bool = False) -> list[str]:
    """The sidebar's weights options for a model with trained-weight ``choices``; the first is the default."""
    return ["run"] if is_run else [*choices, "none", "upload"]


def weights_key_of(chosen: str, choices: tuple[str, ...], is_run: bool = False) -> str:
    """The model cache's weights key for the sidebar's choice. "none" on a model with no trained weights loads as
    "pretrained", which says so honestly (no_pretrained)."""
    if chosen in ("pretrained", "builtin", "run") or (chosen == "none" and not choices and not is_run):
        return "pretrained"
    return "none"


def warm_default_selection(started: float | None = None) -> list[tuple[str, float]]:
    """What a new session's first page reads, for the default selection, put into the shared caches now (the
    server's warm-up, ``ui.warmup``): the model as the sidebar loads it, its sample image and its largest input
    side. The same keys as :func:`render_sidebar` derives, so the first visitor finds them. Returns the seconds
    since ``started`` (a ``time.perf_counter()`` value; default: now) at the end of each step."""
    import time

    started = time.perf_counter() if started is None else started
    steps: list[tuple[str, float]] = []

    def done(step: str) -> None:
        steps.append((step, round(time.perf_counter() - started, 3)))

    from explorer.core import pick_device
    from explorer.imaging import fitting_sample
    from ui.memory_budget import model_largest_side

    done("imports")
    choices = _weights_choices(DEFAULT_MODEL)
    weights_key = weights_key_of(weight_options_of(choices)[0], choices)
    cached_model(DEFAULT_MODEL, weights_key, str(pick_device("auto")), None, version=0.0)
    done("model")
    _sample(fitting_sample(_trained_dataset(DEFAULT_MODEL), DEFAULT_SAMPLE))
    done("image")
    model_largest_side(DEFAULT_MODEL)  # the meta-device estimate: its first call imports torch._dynamo (~1 s)
    done("memory cap")
    return steps


def _adopt_linked_architecture() -> None:
    """A typed network that came with a shared link or the lecturer's class (``model=arch:conv3-8 M FC-10``) joins
    this session's own built networks, so the sidebar keeps it instead of falling back to the default model. Only
    a spec the grammar reads; the network's size limits apply when it loads, as for one built on the Build page."""
    from explorer.models import ModelRef
    from explorer.models.arch import ArchSpecError, full_spec

    compared = st.session_state.get("cmp_models")  # Compare's list travels in links too
    for chosen in [st.session_state.get("sel_model"), *(compared if isinstance(compared, list) else [])]:
        try:
            ref = ModelRef.parse(chosen) if isinstance(chosen, str) and chosen else None
        except ValueError:
            continue
        if ref is None or ref.kind != "arch":
            continue
        customs = st.session_state.setdefault("custom_archs", [])
        if ref.value in customs:
            continue
        try:
            full_spec(ref.value)
        except ArchSpecError:
            continue  # malformed: the sidebar (or Compare) falls back and the link's message names it
        customs.append(ref.value)


def render_sidebar() -> Selection:
    """Draw the shared sidebar and remember the selection for the pages of this run."""
    import torch

    from explorer.core import describe_device, pick_device
    from explorer.imaging import SAMPLES, ImageLoadError
    from explorer.models import ModelRef

    _use_models_from_argv()
    sb = st.sidebar
    current_lang()  # sets "lang" in session state when nothing has (a link's or the default): no index beside the key
    sb.selectbox(t("sidebar.language"), list(LANGUAGES), format_func=LANGUAGES.get, key="lang",
                 on_change=_on_lang_change)

    _adopt_linked_architecture()
    customs = [ModelRef.arch(spec).key for spec in st.session_state.get("custom_archs", [])]
    runs = _run_names()
    import os

    options = customs + runs + _model_names(os.environ.get("EXPLORER_MODELS", ""))
    if st.session_state.get("sel_model") not in options:
        st.session_state["sel_model"] = DEFAULT_MODEL if DEFAULT_MODEL in options else options[0]
        chosen_sample = st.session_state.get("sel_sample")  # set before the model (a link, a test): kept
        _on_model_change()
        if chosen_sample is not None:
            st.session_state["sel_sample"] = chosen_sample

    custom_label, run_label = t("sidebar.group.custom"), t("sidebar.group.run")

    registry_names = set(options[len(customs) + len(runs):])

    def label(name: str) -> str:
        if name in registry_names:  # ~100 of them per rerun: no run-folder probe on the disk for each
            return name
        if name in runs:
            return f"{run_label}: {Path(name).name}"
        return ModelRef.parse(name).label(custom_label)

    sb.selectbox(t("sidebar.model"), options, key="sel_model", format_func=label, on_change=_on_model_change,
                 help=t("sidebar.model_help"))
    for problem in _user_model_problems():  # an operator's file that failed: one line each, the rest works
        sb.error(t("usermodels.load_error", message=problem.message))
    name = st.session_state["sel_model"]
    model_ref = ModelRef.parse(name)
    is_run = name in runs
    # Only what exists for this model: "builtin" (teaching networks) or "pretrained" (ImageNet) when it has them.
    choices = () if is_run else _weights_choices(name)
    weight_options = weight_options_of(choices, is_run)
    if st.session_state.get("sel_weights") not in weight_options:
        st.session_state["sel_weights"] = weight_options[0]
    sb.selectbox(t("sidebar.weights"), weight_options, key="sel_weights",
                 format_func=formatter("sidebar.weights."))
    weights_key = weights_key_of(st.session_state["sel_weights"], choices, is_run)
    weights_bytes = None
    if st.session_state["sel_weights"] == "upload":
        ckpt = sb.file_uploader(t("sidebar.checkpoint"), type=["pt", "pth", "bin"], key="sel_checkpoint",
                                help=t("sidebar.checkpoint_help"))
        if ckpt is not None:
            weights_bytes = ckpt.getvalue()
            weights_key = "upload:" + hashlib.sha256(weights_bytes).hexdigest()[:16]
    st.session_state["_weights_bytes"] = weights_bytes

    try:
        natural = _natural_shape(name)
    except Exception as exc:
        sb.error(t("common.model_error", message=exc))
        natural = (3, 224, 224)
    if "sel_input" not in st.session_state:
        st.session_state["sel_input"] = f"{natural[1]}x{natural[2]}"
    text = sb.text_input(t("sidebar.input"), key="sel_input", help=t("sidebar.input_help", channels=natural[0]))
    hw = _parse_hw(text)
    if hw is None:
        sb.warning(t("sidebar.input_bad", text=text, natural=f"{natural[1]}x{natural[2]}"))
        hw = natural[1:]
    from ui.memory_budget import cap_input

    hw = cap_input(sb, name, hw, text)  # the largest side that fits this model's memory budget (issue 14)
    input_shape = (natural[0], hw[0], hw[1])

    sb.markdown(f"**{t('sidebar.image')}**")
    if st.session_state.get("sel_sample") not in SAMPLES:
        from explorer.imaging import fitting_sample

        st.session_state["sel_sample"] = fitting_sample(_trained_dataset(name), DEFAULT_SAMPLE)
    sb.selectbox(t("sidebar.sample"), list(SAMPLES), key="sel_sample", format_func=formatter("sidebar.sample."))
    upload = sb.file_uploader(t("sidebar.upload"), type=["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff", "gif"],
                              key="sel_upload", help=t("sidebar.upload_help"))
    camera = None
    if sb.toggle(t("sidebar.camera"), key="sel_camera_on"):
        camera = sb.camera_input(t("sidebar.camera_input"), key="sel_camera")
    image, image_hash, image_name, note = None, "", "", ""
    chosen = camera if camera is not None else upload
    if chosen is not None:
        data = chosen.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        try:
            image = _decode_image(data, digest)
            image_hash, image_name = digest, "camera" if chosen is camera else "upload"
            note = image.info.get("explorer_note", "")
        except ImageLoadError as exc:
            sb.error(t("sidebar.image_error", message=exc))
    if image is None:
        sample = st.session_state["sel_sample"]
        image, image_hash, image_name = _sample(sample), f"sample:{sample}", sample
    if note:
        sb.caption(t("sidebar.image_note", note=note))
    picture, picture_format = _preview(image_hash, image)
    sb.image(picture, width="stretch", output_format=picture_format)

    sb.markdown(f"**{t('sidebar.device')}**")
    choices = ["auto", "cpu"]
    if st.session_state.get("sel_device") not in choices:
        st.session_state["sel_device"] = "auto"
    if torch.cuda.is_available() or (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        sb.radio(t("sidebar.device"), choices, key="sel_device", label_visibility="collapsed",
                 format_func=formatter("sidebar.device_"))
    device = pick_device(st.session_state["sel_device"])
    sb.caption(t("sidebar.device_running", device=describe_device(device)))

    selection = Selection(model_name=name, weights=weights_key, input_shape=input_shape, image=image,
                          image_hash=image_hash, image_name=image_name, image_note=note, device=device,
                          model_ref=model_ref)
    st.session_state["_selection"] = selection
    return selection


def selection() -> Selection:
    """The selection the sidebar drew in this script run."""
    sel = st.session_state.get("_selection")
    if sel is None:
        sel = render_sidebar()
    return sel


def _run_version(name: str) -> float:
    """The newest file time in a run folder (0 for registry models)."""
    from explorer.models import ModelRef

    if ModelRef.parse(name).kind != "run":
        return 0.0
    folder = Path(name)
    return max((p.stat().st_mtime for p in folder.iterdir() if p.is_file()), default=0.0)


def loaded_model():
    """The cached model for the current selection, viewed at the selected input shape.

    Shows an error and stops the page when it cannot be loaded.
    """
    from explorer.models import ModelRef, with_input_shape
    from explorer.models.arch import spec_with_input

    sel = selection()
    name = sel.model_name
    try:
        ref = ModelRef.parse(name)
        if ref.kind == "arch" and sel.input_shape is not None:
            # A network typed without an in- token (a link's "conv3-8 M FC-10") is built for the sidebar's input,
            # as the library and the CLI build it: the token written in, so each input size is its own network.
            name = ModelRef.arch(spec_with_input(ref.value, tuple(sel.input_shape))).key
        with spinner_once(("model", name, sel.weights, str(sel.device)), t("common.computing")):
            loaded = fresh_model(name, sel.weights, str(sel.device), st.session_state.get("_weights_bytes"),
                                 version=_run_version(name))
    except Exception as exc:
        error_box(exc, prefix="common.model_error")
        halt()
    return with_input_shape(loaded, sel.input_shape)


def model_input():
    """The current image preprocessed for the current model: ``[1, C, H, W]`` on CPU."""
    return loaded_model().preprocess(selection().image)


def weights_text(loaded) -> str:
    """The weights status in the current language (the library's English text when the kind is unknown)."""
    kind = getattr(loaded, "weights_kind", "")
    if kind:
        return t(f"weights.{kind}", detail=loaded.weights_detail)
    return loaded.weights_status


def show_weights_note(loaded=None) -> None:
    loaded = loaded or loaded_model()
    kind = getattr(loaded, "weights_kind", "")
    if kind in WEIGHTS_PROBLEM_KINDS:  # one short sentence; the technical detail only behind the expander
        st.info(weights_text(loaded))
        with st.expander(t("weights.details")):
            st.caption(t(f"weights.{kind}_help", model=loaded.name, detail=loaded.weights_detail))
    elif loaded.categories is None:
        st.info(t("common.weights_random", status=weights_text(loaded)))
    else:
        st.caption(t("common.weights_ok", status=weights_text(loaded)))


def error_box(exc: BaseException, prefix: str = "common.error") -> None:
    """A readable error (never a traceback) for library errors."""
    from explorer.core import is_out_of_memory

    if is_out_of_memory(exc):
        st.error(t("common.oom"))
        return
    from explorer.analysis import RequestTooLargeError
    from explorer.core import ServerMemoryError

    if isinstance(exc, ServerMemoryError):  # the server-wide memory budget (explorer.core.memory_gate)
        st.error(t("security.server_too_large" if exc.never_fits else "security.server_busy",
                   needed=exc.needed // 2**20, budget=exc.budget // 2**20, waited=round(exc.waited)))
        return
    if isinstance(exc, RequestTooLargeError):  # the per-request budget (explorer.analysis.budget)
        st.error(t("security.request_too_large", needed=exc.needed // 2**20, budget=exc.budget // 2**20))
        return
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    st.error(t(prefix, message=message))


def model_cache_key(loaded=None) -> tuple[str, str, tuple[int, int, int], str]:
    """Plain values identifying (model, weights, input shape, device) for ``st.cache_data`` keys."""
    loaded = loaded or loaded_model()
    return loaded.name, loaded.weights_key, tuple(loaded.input_shape), str(loaded.device)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_layer_table(name: str, weights_key: str, input_shape: tuple[int, int, int], device: str, _loaded):
    from explorer.analysis import layer_table, model_totals

    table = layer_table(_loaded.model, input_shape)
    return table, model_totals(_loaded.model, table)


@st.cache_data(max_entries=64, show_spinner=False)
def input_too_small(name: str, weights_key: str, input_shape: tuple[int, int, int], device: str, _loaded) -> str | None:
    """The ``InputTooSmallError`` message naming the first empty layer, or None when the input fits (or the
    table fails for another reason, which the caller's own computation reports). A string, cheap to read
    back on every rerun, unlike the whole table."""
    from explorer.analysis import InputTooSmallError

    try:
        cached_layer_table(name, weights_key, input_shape, device, _loaded=_loaded)
    except InputTooSmallError as exc:
        return str(exc)
    except Exception:
        return None
    return None
