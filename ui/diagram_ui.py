"""The architecture diagram on the Architecture page: cached graph, detail controls, downloads, and a box's
layer handed to the Feature-map, Grad-CAM and Receptive-field pages.

Session-state keys: ``diagram_depth``, ``diagram_open``, ``diagram_names``, ``diagram_legend``, ``diagram_box``,
``diagram_handoff`` (a box the chosen page does not list: (box, page's layer key, the nearest layer it offers)).
"""
from __future__ import annotations

import functools
from typing import Any

import streamlit as st

from explorer.diagram import (KINDS, DiagramError, Graph, Node, capture_graph, expandable_blocks, graph_at_depth, has_cycle, layout_engine,
                              max_depth, render, to_dot, unknown_blocks)
from ui.analysis_cache import shared
from ui.common import formatter, t

LARGE_GRAPH_NODES = 120  # beyond this the browser's layout of every layer is slow and unreadable: blocks first
# Pages that show one layer, with the session-state key of their layer choice and their page file.
LAYER_PAGES = (("maps_layer", "pages/feature_maps.py"), ("cam_layer", "pages/gradcam.py"),
               ("rf_layer", "pages/receptive_field.py"))


@shared(max_entries=32)
def model_graph(model_key: str, weights_key: str, input_shape: tuple[int, ...], device: str, _model: Any) -> Graph:
    """One recorded pass per (model, input shape): the graph depends on the architecture, not on the image."""
    return capture_graph(_model, input_shape)


@st.cache_data(max_entries=16, show_spinner=False)
def diagram_file(dot: str, fmt: str) -> bytes:
    return render(dot, fmt)


EVERY_LAYER = 0  # the detail level that opens every block (None would not survive a selectbox round trip)


def _chart(dot: str) -> None:
    """The diagram at its natural size (up to the column width: stretching enlarges short chains absurdly).

    In a container keyed by the DOT text: the browser's renderer animates from the previous graph and reuses
    boxes by name, so a box named like one of another network's (``conv1``) lost its outline; a new key draws a
    new chart.
    """
    import hashlib

    with st.container(key="diagram_" + hashlib.sha1(dot.encode()).hexdigest()[:12]):
        st.graphviz_chart(dot)


def _depth_label(depth: int) -> str:
    return t("diagram.detail_all") if depth == EVERY_LAYER else t("diagram.detail_depth", n=depth)


def architecture_diagram(loaded: Any, model_key: tuple, file_stem: str) -> None:
    """Draw the diagram of ``loaded`` (a LoadedModel) at ``model_key`` = ui.common.model_cache_key(loaded)."""
    st.subheader(t("diagram.title"))
    try:
        with st.spinner(t("diagram.computing")):
            graph = model_graph(*model_key, _model=loaded.model)
    except DiagramError as exc:
        st.error(t("diagram.failed", message=exc))
        return
    levels = [*range(1, max_depth(graph) + 1), EVERY_LAYER]
    big = len(graph.nodes) > LARGE_GRAPH_NODES
    if st.session_state.get("diagram_depth", "unset") not in levels:
        st.session_state["diagram_depth"] = levels[0] if big else EVERY_LAYER
    c1, c2 = st.columns([1, 2])
    labels = {d: _depth_label(d) for d in levels}  # a dict, not a lambda over t: format functions run outside the run
    depth = c1.selectbox(t("diagram.detail"), levels, key="diagram_depth", format_func=labels.get)
    opened: list[str] = []
    if depth != EVERY_LAYER:
        # blocks opened for another model are dropped (they would stay listed as options)
        chosen = [b for b in st.session_state.get("diagram_open", []) if not unknown_blocks(graph, [b])]
        options = sorted(set(chosen) | set(expandable_blocks(graph, depth, chosen)))
        st.session_state["diagram_open"] = [b for b in chosen if b in options]
        opened = c2.multiselect(t("diagram.expand"), options, key="diagram_open", help=t("diagram.expand_help"))
    elif big:
        st.caption(t("diagram.too_many", n=len(graph.nodes)))
    view = graph_at_depth(graph, None if depth == EVERY_LAYER else depth, opened)
    if has_cycle(view):  # blocks that data leaves and re-enters (a ModuleList called from outside): every layer
        st.info(t("diagram.collapse_fallback"))
        view = graph
    c3, c4 = st.columns(2)
    dot = to_dot(view, show_names=c3.toggle(t("diagram.names"), key="diagram_names"),
                 legend=c4.toggle(t("diagram.legend"), key="diagram_legend"), **_legend_words())
    shape = "×".join(str(d) for d in loaded.input_shape)
    st.caption(t("diagram.caption", shape=shape) + " " + t("diagram.counts", boxes=len(view.nodes), arrows=len(view.edges)))
    if any(edge.shortcut for edge in view.edges):
        st.caption(t("diagram.shortcut_note"))
    _chart(dot)
    _box_to_pages(graph, view, loaded)
    d1, d2, d3 = st.columns(3)
    d1.download_button(t("diagram.download_dot"), dot.encode(), f"{file_stem}_diagram.gv", "text/vnd.graphviz",
                       on_click="ignore", key="diagram_dl_dot")
    if layout_engine() is None:
        st.caption(t("diagram.no_engine"))
        return
    # Deferred: laid out only when clicked.
    d2.download_button(t("diagram.download_svg"), functools.partial(diagram_file, dot, "svg"),
                       f"{file_stem}_diagram.svg", "image/svg+xml", on_click="ignore", key="diagram_dl_svg")
    d3.download_button(t("diagram.download_png"), functools.partial(diagram_file, dot, "png"),
                       f"{file_stem}_diagram.png", "image/png", on_click="ignore", key="diagram_dl_png")


def _legend_words() -> dict[str, Any]:
    """The legend's words in the reader's language (``diagram.kind.*``), for ``to_dot``."""
    return {"legend_labels": {kind: t(f"diagram.kind.{kind}") for kind in KINDS},
            "shortcut_label": t("diagram.kind.shortcut")}


def offered_layers(state_key: str, loaded: Any) -> list[str]:
    """The layers the page behind ``state_key`` lists in its layer picker, in its order, computed as that page
    computes them and with the same caches (the page reads them back when it opens: no extra work)."""
    from ui.common import selection

    if state_key == "rf_layer":
        from ui.receptive_cache import rf_spatial_rows, rf_table

        return list(rf_spatial_rows(rf_table(loaded))["layer"])
    from ui.analysis_cache import cache_key, cam_layers, cams_for_class, map_calls, overview

    sel = selection()
    key = cache_key(loaded, sel.image_hash)
    info = overview(key, loaded, sel.image)
    if state_key == "maps_layer":
        return [c["name"] for c in map_calls(info)]
    return cam_layers(info, cams_for_class(key, info["top1"], loaded, sel.image))


def nearest_offered(graph: Graph, box: Node, offered: list[str]) -> str | None:
    """``box``'s id when the page offers it; else the offered layer whose output comes last at or before the
    box's output (a block's output is its last member's; a container call's output is its last node's), an
    innermost call ending there first (``layer1.0.relu#2`` → ``layer1.0``, the same tensor); None if none."""
    if box.id in offered:
        return box.id
    end = graph.position(box.members[-1] if box.members else box.id)
    last_of: dict[str, int] = {}
    depth_of: dict[str, int] = {}
    for node in graph.nodes:
        for level, call in enumerate(node.scope):
            last_of[call] = graph.position(node.id)
            depth_of[call] = level
        last_of.setdefault(node.id, graph.position(node.id))
    placed = [(last_of[name], depth_of.get(name, -1), i, name) for i, name in enumerate(offered)
              if name in last_of and last_of[name] <= end]
    return max(placed)[3] if placed else None


def _box_to_pages(graph: Graph, view: Graph, loaded: Any) -> None:
    """st.graphviz_chart reports no clicks: a box is chosen from a list, and its layer opens on another page.

    A page that does not list the box is not opened on another layer without a word: the nearest layer it
    offers is named here (``diagram_handoff``), and opened only when asked."""
    boxes = [node.id for node in view.nodes if node.source not in ("input", "output")]
    if not boxes:
        return
    if st.session_state.get("diagram_box") not in boxes:
        st.session_state["diagram_box"] = boxes[0]
    box_id = st.selectbox(t("diagram.inspect"), boxes, key="diagram_box")
    box = view.node(box_id)
    layers = [m for m in box.members if graph.node(m).source == "module"] or [box_id]
    st.caption(t("diagram.inspect_members", block=box.id, type=box.op, n=len(layers),
                 layers=", ".join(layers[:12]) + (", …" if len(layers) > 12 else "")))
    show = formatter("diagram.open_in.")
    from ui.analysis_cache import preselect_layer

    for column, (state_key, page) in zip(st.columns(len(LAYER_PAGES)), LAYER_PAGES):
        if column.button(show(state_key), key=f"diagram_open_{state_key}", width="stretch"):
            try:
                target = nearest_offered(graph, box, offered_layers(state_key, loaded))
            except Exception:  # the page cannot list its layers (input too small...): it shows why itself
                target = box_id
            if target == box_id:
                st.session_state.pop("diagram_handoff", None)
                preselect_layer(state_key, box_id)
                st.switch_page(page)
            st.session_state["diagram_handoff"] = (box_id, state_key, target)
    handoff = st.session_state.get("diagram_handoff")
    if not handoff or handoff[0] != box_id:
        return
    _box, state_key, target = handoff
    page_name = t(f"diagram.page.{state_key}")
    if target is None:
        st.info(t("diagram.handoff_none", page=page_name, box=box_id))
        return
    st.info(t("diagram.handoff_other", page=page_name, box=box_id, layer=target))
    if st.button(t("diagram.handoff_open", layer=target), key="diagram_handoff_open"):
        st.session_state.pop("diagram_handoff", None)
        preselect_layer(state_key, target)
        st.switch_page(dict(LAYER_PAGES)[state_key])


@shared(max_entries=32)
def registry_graph(name: str) -> Graph:
    """The graph of a registered network at its natural input, traced on the meta device: shapes without memory
    (vgg16's 138 M weights would otherwise cost half a gigabyte on the first visit of the paper tables)."""
    import torch

    from explorer.models import build_model, get_entry

    with torch.device("meta"):
        model = build_model(name)
    return capture_graph(model, get_entry(name).input_shape)


def paper_diagram(names: list[str], key: str) -> None:
    """A registered network of a paper drawn at block level (beside the paper's table), blocks openable."""
    with st.expander(t("diagram.paper_title"), expanded=False):
        c1, c2 = st.columns([1, 2])
        name = c1.selectbox(t("diagram.paper_model"), names, key=f"{key}_model")
        try:
            graph = registry_graph(name)
        except DiagramError as exc:
            st.error(t("diagram.failed", message=exc))
            return
        chosen = [b for b in st.session_state.get(f"{key}_open", []) if b in expandable_blocks(graph, 1, [])]
        st.session_state[f"{key}_open"] = chosen
        opened = c2.multiselect(t("diagram.expand"), expandable_blocks(graph, 1, []), key=f"{key}_open",
                                help=t("diagram.expand_help"))
        view = graph_at_depth(graph, 1, opened)
        if has_cycle(view):
            st.info(t("diagram.collapse_fallback"))
            view = graph
        dot = to_dot(view, **_legend_words())
        _chart(dot)
        st.download_button(t("diagram.download_dot"), dot.encode(), f"{name}_diagram.gv", "text/vnd.graphviz",
                           on_click="ignore", key=f"{key}_dot")
