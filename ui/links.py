"""Shareable links, class sessions and presentation mode: the Streamlit glue around ``explorer.core.viewstate``
and ``explorer.core.classroom``.

``app.py`` calls :func:`begin` right after ``st.navigation`` (before the sidebar creates any widget),
:func:`sidebar_tools` after the sidebar, and :func:`finish` after the page (also when the page stopped).

- A link: the URL path names the page, query parameters name the rest (``GLOBAL_PARAMS`` and the page's own
  ``PAGE_PARAMS``). The query is read once, when the session starts, into the widgets' session-state keys;
  anything unknown or malformed keeps its default and one translated message names it. A value the page
  itself rejects (a layer this model lacks) is found at the end of the run and named the same way.
  Nothing in a link is heavier than the page: no parameter starts a training or the captum methods.
- After every run the URL is rewritten to the view now shown, so the address bar is always a link to it.
- A class: the lecturer's session publishes that same URL state to a ``ClassroomStore`` under a short code;
  a follower's session polls it (a fragment, every ``POLL_SECONDS``) and, when it changed, applies it the way
  a link is applied and switches page. Language and presentation mode are each student's own.

Session-state keys: ``present_mode`` (toggle), ``class_join`` (code box), ``class_follow_on`` (toggle);
private ``_links_*`` and ``_class_*`` keys.
"""
from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from explorer.core import (LANGUAGES, MAX_SPEC_VALUE_CHARS, MAX_TYPED_SIDE, ClassroomError, ClassroomStore, Param, describe_problems, encode_query,
                           encode_value, normalise_code, parse_query, shared_dir_from_env, LECTURER_HEARTBEAT_SECONDS)
from ui.common import t
from ui.format import inline_code

# explorer.history.MAX_MODELS, the Compare page's limit (not imported: this module loads with the first page, and
# explorer.history brings pandas; tests/test_review13.py checks the two agree)
COMPARE_MAX_MODELS = 8

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PAGE = "home"  # the page at "/" (st.Page(..., default=True) has an empty url_path)
# A follower's poll interval (``$EXPLORER_CLASS_POLL_S``, 0.2-10). The lag is half an interval on average plus
# the follower's own page run; a poll of an unchanged class costs ~3 ms of server CPU, ~2.4 ms of it Streamlit's
# own fragment-run overhead (scripts/follow_load.py): 30 students cost ~0.09 of a core at 1 s, ~0.18 at 0.5 s.
POLL_SECONDS = min(10.0, max(0.2, float(os.environ.get("EXPLORER_CLASS_POLL_S", "") or 1.0)))
# How many times a follower's poll resends one lecturer's view that no page run has taken (see ``_follow``).
RESEND_LIMIT = 5
PRESENT_KEY = "present_mode"
SHARE_OPEN_KEY = "share_open"  # the share popover is open (its QR code is drawn only then)
CLASS_PARAM = "join"  # ?join=CODE joins that class (the link under the lecturer's class code; "class" is Grad-CAM's)
SHAREABLE_WEIGHTS = ("pretrained", "builtin", "none", "run")  # the sidebar's choices less "upload"

# The sidebar's choices: every page's view starts from them.
GLOBAL_PARAMS: tuple[Param, ...] = (
    # The sidebar checks it against its own list (and the link check below); a typed network travels whole.
    Param("model", "sel_model", "name", max_chars=MAX_SPEC_VALUE_CHARS),
    Param("weights", "sel_weights", "choice", SHAREABLE_WEIGHTS),  # an upload cannot travel in a link
    Param("input", "sel_input", "shape", high=MAX_TYPED_SIDE),  # as the sidebar reads it (and caps it)
    Param("sample", "sel_sample", "choice", ("grace_hopper", "checkerboard", "shapes", "gradient")),
    Param("lang", "lang", "choice", tuple(LANGUAGES)),
    Param("present", PRESENT_KEY, "bool"),
)
# What a class follower does not take from the lecturer: these stay each student's own.
PERSONAL = ("lang", "present")

# Each page's own choices (keys documented in the pages and ui/*_cache.py). Only widgets whose page
# validates the value (or whose range is fixed here) are listed: a bad value must fall back, never raise.
PAGE_PARAMS: dict[str, tuple[Param, ...]] = {
    "architecture": (Param("leaves", "arch_leaves", "bool"), Param("search", "arch_search", "name")),
    "receptive_field": (Param("layer", "rf_layer"), Param("row", "rf_row", "int", low=0, high=100_000),
                        Param("col", "rf_col", "int", low=0, high=100_000),
                        Param("show", "rf_show", "choice", ("spatial", "all"))),
    # pages/conv_arithmetic.py's LIMITS; pos: up to (512 + 2·16)² kernel positions (N = 512, P = 16, F = 1, S = 1)
    "conv_arithmetic": (Param("n", "ca_n", "int", low=1, high=512), Param("kernel", "ca_f", "int", low=1, high=15),
                        Param("pad", "ca_p", "int", low=0, high=16), Param("stride", "ca_s", "int", low=1, high=8),
                        Param("dilation", "ca_d", "int", low=1, high=6),
                        Param("pos", "ca_pos", "int", low=1, high=544 * 544),
                        # the stack section (3×3 stacks vs one big kernel): its page's within() bounds
                        Param("channels", "ca_c", "int", low=1, high=2048), Param("layers", "ca_l", "int", low=2, high=8),
                        Param("stack_kernel", "ca_k", "choice", (3, 5)), Param("side", "ca_hw", "int", low=7, high=224)),
    "feature_maps": (Param("layer", "maps_layer"), Param("channel", "maps_channel", "int", low=0, high=100_000),
                     # the in-between steps of a block (after its BatchNorm, + shortcut): the page falls back to
                     # "feature" when the layer has fewer
                     Param("kind", "maps_kind", "choice", ("feature", "activation", *(f"step{i}" for i in range(1, 100)))),
                     Param("block", "maps_block", "name"),  # the page falls back to every block ("*")
                     Param("alpha", "maps_alpha", "float", low=0.0, high=1.0),
                     Param("order", "maps_order", "choice", ("index", "mean")),
                     Param("scale", "maps_scale", "choice", ("shared", "channel")),
                     Param("cmap", "maps_cmap", "choice", ("viridis", "magma", "gray", "jet", "RdBu"))),
    "gradcam": (Param("layer", "cam_layer"), Param("class", "cam_class", "int", low=-1, high=100_000),
                Param("alpha", "cam_alpha", "float", low=0.0, high=1.0),
                Param("cmap", "cam_cmap", "choice", ("viridis", "magma", "gray", "jet", "RdBu"))),
    "filters": (Param("view", "flt_view", "choice", ("single", "filters", "images", "hand")),
                Param("kernel", "flt_preset", "name"),
                Param("operation", "flt_operation", "choice", ("correlate", "convolve")),
                Param("padding", "flt_padding", "name"),
                Param("stride", "flt_stride", "int", low=1, high=4),
                Param("color", "flt_color", "choice", ("gray", "rgb")),
                # the Gaussian's and the box blur's own sliders, and the editor's kernel (its rows, as the page's
                # kernel text: the editor reads it and falls back with a message when it does not fit)
                Param("gsize", "flt_gsize", "choice", (3, 5, 7, 9, 11, 15)),
                Param("gsigma", "flt_gsigma", "float", low=0.3, high=5.0),
                Param("bsize", "flt_bsize", "choice", (3, 5, 7, 9, 11)),
                Param("custom", "flt_custom", "numbers", max_chars=1000)),
    "course_concepts": (Param("dropout_p", "cc_do_p", "float", low=0.0, high=0.9),
                        Param("depth", "cc_gr_depth", "choice", (18, 34)), Param("bn", "cc_gr_bn", "bool"),
                        Param("steps", "cc_gr_steps", "choice", (0, 5, 20)),
                        Param("quantity", "cc_gr_quantity", "choice", ("output_grad_norm", "grad_norm"))),
    "compare": (Param("models", "cmp_models", "list", max_items=COMPARE_MAX_MODELS, max_chars=MAX_SPEC_VALUE_CHARS),
                Param("y", "cmp_y", "choice", ("top1", "top5", "weight_layers"))),
}


def _fill_choices() -> None:
    """Replace the hand-written choices above by the library's own lists where they exist (same names)."""
    try:
        from explorer.imaging import COLORMAPS, SAMPLES
        from explorer.imaging import filters as F
    except ImportError:  # pragma: no cover
        return
    cmaps = tuple(COLORMAPS)
    PAGE_PARAMS["feature_maps"] = tuple(Param(p.name, p.target, p.kind, cmaps) if p.name == "cmap" else p
                                        for p in PAGE_PARAMS["feature_maps"])
    PAGE_PARAMS["gradcam"] = tuple(Param(p.name, p.target, p.kind, cmaps) if p.name == "cmap" else p
                                   for p in PAGE_PARAMS["gradcam"])
    swaps = {"kernel": (*F.FILTER_NAMES, "custom"), "operation": tuple(F.OPERATIONS),  # custom: the editor's kernel
             "padding": tuple(F.PADDING_MODES)}
    PAGE_PARAMS["filters"] = tuple(Param(p.name, p.target, "choice", swaps[p.name]) if p.name in swaps else p
                                   for p in PAGE_PARAMS["filters"])
    global GLOBAL_PARAMS
    GLOBAL_PARAMS = tuple(Param(p.name, p.target, p.kind, tuple(SAMPLES)) if p.name == "sample" else p
                          for p in GLOBAL_PARAMS)


_fill_choices()


def params_of(stem: str) -> tuple[Param, ...]:
    return GLOBAL_PARAMS + PAGE_PARAMS.get(stem, ())


def page_stem(page: Any) -> str:
    """The URL path of an ``st.navigation`` page (the page file's stem; ``home`` for the root)."""
    return getattr(page, "url_path", "") or DEFAULT_PAGE


def is_page(stem: str) -> bool:
    return stem.replace("_", "").isalnum() and (ROOT / "pages" / f"{stem}.py").is_file()


@st.cache_resource(show_spinner=False)
def class_store() -> ClassroomStore:
    """One store per server process (and the shared folder's files when replicas share one)."""
    return ClassroomStore(shared_dir_from_env())


# ------------------------------------------------------------------------------------------ the view
def current_query(stem: str, personal: bool = True) -> dict[str, str]:
    """The URL query of the view this session shows now (``personal``: with language and presentation mode)."""
    state = st.session_state
    values = {p.target: state[p.target] for p in params_of(stem) if p.target in state}
    if not values.get(PRESENT_KEY):
        values.pop(PRESENT_KEY, None)
    if values.get("sel_weights") not in SHAREABLE_WEIGHTS:
        values.pop("sel_weights", None)
    if values.get("flt_preset") != "custom":  # the editor's kernel travels only when it is the one shown
        values.pop("flt_custom", None)
    query = encode_query(values, params_of(stem))
    if not personal:
        for name in PERSONAL:
            query.pop(name, None)
    return query


def view_url(stem: str, query: dict[str, str], here: str | None = None) -> str:
    """The absolute link to ``stem`` with ``query`` (the browser's own address, on page ``here``, as the base)."""
    from urllib.parse import urlencode

    base = (st.context.url or "").split("?", 1)[0].rstrip("/")
    for suffix in {stem, here or stem, page_stem(None)}:
        if base.endswith("/" + suffix):
            base = base[: -len(suffix) - 1]
    path = "" if stem == DEFAULT_PAGE else stem
    return f"{base}/{path}" + (f"?{urlencode(query)}" if query else "")


def _apply(stem: str, query: dict[str, Any], personal: bool) -> list[tuple[str, str]]:
    """Put a link's (or the lecturer's) values into session state; returns the problems."""
    parsed = parse_query(query, params_of(stem), ignore=() if personal else PERSONAL)
    values = parsed.values
    if not personal:
        for name in PERSONAL:
            values.pop(next(p.target for p in GLOBAL_PARAMS if p.name == name), None)
    if "sel_model" in values and values["sel_model"] != st.session_state.get("sel_model") and "sel_input" not in values:
        st.session_state.pop("sel_input", None)  # the sidebar then takes the new model's natural size
    for target, value in values.items():
        st.session_state[target] = value
    # page_start (ui.analysis_cache) clears per-model choices when the model changes: keep these ones
    st.session_state["_links_pinned"] = tuple(values)
    st.session_state["_links_applied"] = (stem, dict(values))
    return parsed.problems


def _set_message(stem: str, problems: list[tuple[str, str]]) -> None:
    if problems:
        st.session_state["_links_message"] = (stem, problems)


@dataclass
class View:
    """This run's page and the empty slot at the top of the main column where a bad link is named."""

    stem: str
    box: Any = None


def begin(page: Any) -> View:
    """Before any widget: apply the link (first run of a session) or a class update."""
    stem = page_stem(page)
    state = st.session_state
    if not state.get("_links_started"):
        state["_links_started"] = True
        query = {name: st.query_params.get_all(name) for name in st.query_params.keys()}
        join = query.pop(CLASS_PARAM, None)  # a class's join link (the lecturer's QR code): not part of a view
        if query:
            _set_message(stem, _apply(stem, query, personal=True))
        if join:
            _join_code(join[-1])
    pending = state.pop("_links_pending", None)
    if pending and pending.get("page") == stem:
        # The lecturer's new view replaces whatever an earlier one could not use (no stale warning stays)
        state.pop("_links_message", None)
        _set_message(stem, _apply(stem, pending.get("query") or {}, personal=False))
        state["_class_delivered"] = pending.get("version")  # the poll resends a view no page run has taken
    return View(stem, st.empty())  # st.empty: nothing shows unless finish() fills it


def finish(view: View) -> None:
    """After the page (also when it ended early with ``ui.common.halt``): name rejected link values, rewrite the URL,
    publish to the class."""
    stem, state = view.stem, st.session_state
    applied = state.pop("_links_applied", None)
    state.pop("_links_pinned", None)
    if applied and applied[0] == stem:
        names = {p.target: p for p in params_of(stem)}
        rejected = [(names[target].name, encode_value(names[target], value) or "")  # as the link wrote it
                    for target, value in applied[1].items()
                    if target in names and target in state and state[target] != value]
        if rejected:
            _, old = state.get("_links_message") or (stem, [])
            state["_links_message"] = (stem, old + [r for r in rejected if r not in old])
    message = state.get("_links_message")
    if message and message[0] != stem:
        state.pop("_links_message", None)
        message = None
    if message and view.box is not None:
        # The values come from the URL: shown as text, never as Markdown (a link's "[sign in](https://…)" or image)
        view.box.warning(t("links.bad_link", values=inline_code(describe_problems(message[1]))))
    query = current_query(stem)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    _publish(stem)


# ---------------------------------------------------------------------------------------- the class
def _publish(stem: str) -> None:
    code, token = st.session_state.get("_class_code"), st.session_state.get("_class_token")
    if not code or not token:
        return
    view = {"page": stem, "query": current_query(stem, personal=False)}
    if st.session_state.get("_class_published") == view:
        return
    if not class_store().is_owner(code, token):  # ended elsewhere or expired: no longer the lecturer
        for key in ("_class_code", "_class_token", "_class_published"):
            st.session_state.pop(key, None)
        return
    try:
        class_store().publish(code, token, view)
    except ClassroomError:  # still the lecturer, but this view cannot be shared (too big): say so once, keep the class
        st.toast(t("links.class_view_too_big"))
    st.session_state["_class_published"] = view


def _start_class(stem: str) -> None:
    try:
        code, token = class_store().start({"page": stem, "query": current_query(stem, personal=False)})
    except ClassroomError:  # the server's class limit (or no free code): a message, not a traceback
        st.session_state["_class_note"] = "links.class_start_failed"
        return
    st.session_state.update({"_class_code": code, "_class_token": token})
    st.session_state.pop("_class_published", None)


def _end_class() -> None:
    code, token = st.session_state.pop("_class_code", None), st.session_state.pop("_class_token", None)
    st.session_state.pop("_class_published", None)
    if code and token:
        try:
            class_store().end(code, token)
        except ClassroomError:
            pass


def _join_code(text: str) -> None:
    code = normalise_code(text)
    if code is None or class_store().version(code) is None:
        st.session_state["_class_note"] = "links.class_unknown"
        return
    if code == st.session_state.get("_class_code"):
        return  # the lecturer's own class
    st.session_state.update({"_class_follow": code, "class_follow_on": True, "_class_seen": None,
                             "_class_delivered": None})
    st.session_state.pop("_class_note", None)


def _join() -> None:
    _join_code(st.session_state.get("class_join", ""))


def _leave() -> None:
    for key in ("_class_follow", "_class_seen", "_class_delivered", "_class_resent"):
        st.session_state.pop(key, None)
    st.session_state["class_follow_on"] = False


def _on_follow_toggle() -> None:
    if st.session_state.get("class_follow_on"):
        st.session_state["_class_seen"] = None  # stepping back in: take the lecturer's view now


@st.fragment(run_every=LECTURER_HEARTBEAT_SECONDS)
def _lecturer_heartbeat() -> None:
    """The lecturer's tab says, once a minute, that it is still there: a class whose lecturer reloaded or closed
    the tab ends a few minutes later (its followers are told) instead of staying frozen under them for hours."""
    code, token = st.session_state.get("_class_code"), st.session_state.get("_class_token")
    if not code or not token:
        return
    try:
        class_store().heartbeat(code, token)
    except ClassroomError:  # ended elsewhere, or gone too long (a laptop asleep): no longer the lecturer
        for key in ("_class_code", "_class_token", "_class_published"):
            st.session_state.pop(key, None)
        st.session_state["_class_note"] = "links.class_ended"
        st.rerun(scope="app")


@st.fragment(run_every=POLL_SECONDS)
def _follow(stem: str) -> None:
    """A follower's poll: when the lecturer's view changed, take it over (page switch or full rerun).

    Runs every ``POLL_SECONDS`` for every following student, so while nothing changes it only compares a
    version number (``ClassroomStore.version``: a dict lookup, or one ``os.stat`` with a shared folder) and
    draws nothing (no message to the browser beyond the run's own start and end).

    A view sent is resent (up to ``RESEND_LIMIT`` times) until a page run has taken it. The run that should take
    it can be one of another page: Streamlit folds a rerun request that arrives while ``st.switch_page``'s is
    pending into one run of the *newer* request's page, and ``st.rerun`` in a fragment-only run reruns the page
    the browser named in that request. That page's ``begin`` drops a view meant for another page (a follower
    once stayed behind in CI).
    """
    state = st.session_state
    code = state.get("_class_follow")
    if not code or not state.get("class_follow_on"):
        return
    version = class_store().version(code)
    if version is not None and version == state.get("_class_seen"):
        if state.get("_class_delivered") == version or state.get("_class_resent", 0) >= RESEND_LIMIT:
            return
        state["_class_resent"] = state.get("_class_resent", 0) + 1
    else:
        state["_class_resent"] = 0
    view = class_store().read(code) if version is not None else None
    if view is None:
        _leave()
        state["_class_note"] = "links.class_ended"
        st.rerun(scope="app")
    state["_class_seen"] = view.version
    target = str(view.state.get("page") or DEFAULT_PAGE)
    if not is_page(target):
        state["_class_delivered"] = view.version  # nothing to show: not resent
        return
    state["_links_pending"] = {"page": target, "query": dict(view.state.get("query") or {}),
                               "version": view.version}
    if target != stem:
        st.switch_page(f"pages/{target}.py")
    st.rerun(scope="app")


# ---------------------------------------------------------------------------------------- the sidebar
@functools.lru_cache(maxsize=512)
def qr_png(url: str, scale: int = 6) -> bytes:
    """A QR code of ``url`` as PNG (segno: pure Python, no network). Memoised: encoding takes ~25 ms and the
    sidebar draws it on every rerun, while the link changes only when the view does."""
    import segno

    buf = io.BytesIO()
    # mask=0: any of the eight masks is a valid code; choosing the "best" one evaluates all eight (60 % of the time).
    segno.make(url, error="m", mask=0).save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()


def sidebar_tools(view: View) -> None:
    """Presentation mode, the share link with its QR code, and the class session, at the sidebar's foot."""
    sb, stem = st.sidebar, view.stem
    present = sb.toggle(t("links.present"), key=PRESENT_KEY, help=t("links.present_help"))
    if present:
        from ui.present import inject_presentation_css

        inject_presentation_css()
    url = view_url(stem, current_query(stem))
    # A popover that tracks whether it is open: the QR code (a few ms for each new link, and the link changes with
    # every widget) is drawn only while someone looks at it, not on every rerun of every page.
    share = sb.popover(t("links.share"), width="stretch", key=SHARE_OPEN_KEY, on_change="rerun")
    with share:
        st.caption(t("links.share_help"))
        st.code(url, language=None, wrap_lines=True)
        if share.open:
            try:
                st.image(qr_png(url), caption=t("links.qr_caption"), width=220)
            except Exception:  # segno missing: the link alone still works
                pass
    with sb.expander(t("links.class_title"), expanded=bool(st.session_state.get("_class_code")
                                                           or st.session_state.get("_class_follow")
                                                           or st.session_state.get("_class_note"))):
        note = st.session_state.pop("_class_note", None)
        if note:
            st.warning(t(note))
        code = st.session_state.get("_class_code")
        if code:
            st.markdown(t("links.class_code", code=code))
            st.caption(t("links.class_lecturer_help"))
            join_url = view_url(DEFAULT_PAGE, {CLASS_PARAM: code}, here=stem)
            st.caption(t("links.class_join_link"))
            st.code(join_url, language=None, wrap_lines=True)
            try:
                st.image(qr_png(join_url, scale=5), width=180)
            except Exception:  # segno missing: the code and the link still work
                pass
            st.button(t("links.class_end"), on_click=_end_class, key="class_end", width="stretch")
            _lecturer_heartbeat()
        elif st.session_state.get("_class_follow"):
            following = st.toggle(t("links.class_follow"), key="class_follow_on", on_change=_on_follow_toggle,
                                  help=t("links.class_follow_help"))
            code = st.session_state["_class_follow"]
            st.caption(t("links.class_following" if following else "links.class_stepped_out", code=code))
            st.button(t("links.class_leave"), on_click=_leave, key="class_leave", width="stretch")
            if following:  # stepped out: no poll at all
                _follow(stem)
        else:
            st.button(t("links.class_start"), on_click=_start_class, args=(stem,), key="class_start",
                      help=t("links.class_start_help"), width="stretch")
            st.text_input(t("links.class_join"), key="class_join", max_chars=8, placeholder="AB12",
                          help=t("links.class_join_help"))
            st.button(t("links.class_join_button"), on_click=_join, key="class_join_go", width="stretch")
