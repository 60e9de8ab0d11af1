"""Shareable links in the real app (AppTest): every page's view survives URL → session → URL, a widget change
is written back to the URL, and a bad link opens with defaults and one message.

A deep link is simulated the way a browser opens one: query parameters set and the page chosen before the
session's first run.
"""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT

BASE = {"model": "mnist_cnn", "weights": "none", "input": "28x28", "sample": "checkerboard"}
# Per page: a query whose every value is valid for mnist_cnn at 28×28 and differs from the page's default.
LINKS = {
    "home": {"lang": "ko"},
    "architecture": {"leaves": "1", "search": "conv"},
    "receptive_field": {"layer": "conv2", "row": "1", "col": "2", "show": "all"},
    "conv_arithmetic": {"n": "9", "kernel": "3", "pad": "1", "stride": "2", "dilation": "1", "pos": "3",
                        "channels": "32", "layers": "4", "stack_kernel": "5", "side": "28"},
    "feature_maps": {"layer": "conv2", "channel": "3", "kind": "activation", "order": "mean", "scale": "channel",
                     "cmap": "magma", "block": "*", "alpha": "0.7"},
    "gradcam": {"layer": "conv1", "class": "3", "cmap": "viridis", "lang": "ko", "alpha": "0.8"},
    "filters": {"view": "single", "kernel": "custom", "custom": "1,2,1;0,0,0;-1,-2,-1", "operation": "convolve",
                "padding": "reflect", "stride": "2", "color": "rgb", "gsize": "9", "gsigma": "2.5", "bsize": "7"},
    "course_concepts": {"dropout_p": "0.3", "depth": "34", "bn": "1", "steps": "5", "quantity": "grad_norm"},
    "compare": {"models": "mnist_cnn,lenet5", "y": "weight_layers"},
    "augmentation": {"present": "1"},
    "papers": {},
    "build": {},
    "training": {},
}


def open_link(stem: str, query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for name, value in query.items():
        at.query_params[name] = value
    if stem != "home":
        at.switch_page(f"pages/{stem}.py")
    return at.run()


def test_every_page_with_parameters_is_listed():
    from ui.links import PAGE_PARAMS

    assert set(PAGE_PARAMS) <= set(LINKS)
    for stem, params in PAGE_PARAMS.items():  # every parameter of the page is exercised below
        assert {p.name for p in params} <= set(LINKS[stem]), stem


@pytest.mark.parametrize("stem", [s for s in LINKS if (ROOT / "pages" / f"{s}.py").is_file()])
def test_url_round_trip(stem):
    from ui.links import params_of

    query = {**BASE, **LINKS[stem]}
    at = open_link(stem, query)
    assert not at.exception, [e.value for e in at.exception]
    assert not [w.value for w in at.warning if "link" in str(w.value).lower() or "링크" in str(w.value)]
    targets = {p.name: p.target for p in params_of(stem)}
    state = {name: at.session_state[targets[name]] for name in query}
    assert state["model"] == "mnist_cnn" and state["input"] == "28x28"
    url = dict(at.query_params)
    for name, value in query.items():  # the same view is in the address bar after the run
        assert url.get(name) == value, (stem, name, url)


def test_widget_change_is_written_to_the_url():
    at = open_link("gradcam", {**BASE, "layer": "conv1"})
    at.selectbox(key="cam_layer").set_value("conv2").run()
    assert not at.exception
    assert at.query_params["layer"] == "conv2" and at.query_params["model"] == "mnist_cnn"


def test_malformed_link_opens_with_defaults_and_one_message():
    at = open_link("gradcam", {**BASE, "layer": "no_such_layer", "class": "12abc", "input": "huge", "colour": "red"})
    assert not at.exception
    messages = [w.value for w in at.warning if "link" in w.value]
    assert len(messages) == 1, [w.value for w in at.warning]
    for part in ("layer=no_such_layer", "class=12abc", "input=huge", "colour=red"):
        assert part in messages[0]
    assert at.session_state["cam_layer"] != "no_such_layer" and at.session_state["cam_class"] == -1
    assert at.session_state["sel_input"] == "28x28"  # the model's own size
    assert at.query_params["layer"] == at.session_state["cam_layer"]  # the URL now names the view shown


def test_unknown_model_falls_back_with_message():
    at = open_link("home", {"model": "not_a_model", "lang": "ko"})
    assert not at.exception
    assert at.session_state["sel_model"] != "not_a_model"
    assert any("model=not_a_model" in w.value for w in at.warning)


def test_join_link_follows_the_class_and_is_not_a_view_parameter():
    from ui.links import CLASS_PARAM, PAGE_PARAMS, class_store, params_of

    assert all(CLASS_PARAM not in {p.name for p in params_of(stem)} for stem in PAGE_PARAMS)
    code, _token = class_store().start({"page": "home", "query": {}})  # the store AppTest's server process shares
    at = open_link("home", {CLASS_PARAM: code.lower(), "lang": "ko"})
    assert not at.exception
    assert at.session_state["_class_follow"] == code and at.session_state["class_follow_on"]
    assert not [w.value for w in at.warning if "링크" in str(w.value)]  # not named as an unknown parameter
    assert CLASS_PARAM not in dict(at.query_params)  # the address bar names the view, not the join
    at = open_link("home", {CLASS_PARAM: "ZZZZ"})  # no such class
    assert not at.exception and "_class_follow" not in at.session_state
    assert any("No class with this code" in str(w.value) for w in at.warning)


def test_a_follower_gets_a_lost_view_again():
    """A view the poll sent but no page run took (its page switch lost to a rerun of the old page) is resent."""
    from ui.links import CLASS_PARAM, class_store

    code, token = class_store().start({"page": "home", "query": {}})
    at = open_link("home", {CLASS_PARAM: code, "model": "mnist_cnn", "weights": "none"})
    assert not at.exception and at.session_state["_class_follow"] == code
    view = {"page": "feature_maps", "query": {"model": "lenet5", "weights": "none", "layer": "C3"}}
    class_store().publish(code, token, view)
    # the poll has sent this version (seen), but the run that should take it never ran on its page
    at.session_state["_class_seen"] = class_store().version(code)
    at.run()
    assert not at.exception
    assert at.session_state["sel_model"] == "lenet5"
    assert dict(at.query_params).get("layer") == "C3"  # the follower's address bar: the lecturer's layer
    assert at.session_state["_class_delivered"] == class_store().version(code)
    at.run()  # taken: no further resend
    assert at.session_state["_class_resent"] == 1 and dict(at.query_params).get("layer") == "C3"


# --- a page that ends early (ui.common.halt) still finishes the run ---------------------------------------
def test_a_page_that_ends_early_still_writes_its_view_to_the_url_and_the_class():
    """The Filters page's "by hand" view ends the page early: the address bar and a lecturer's class must still get
    the new view (after ``st.stop()`` Streamlit refused every further message of the run, so both kept the old one)."""
    from ui.links import class_store

    at = open_link("filters", BASE)
    at.button(key="class_start").click().run()
    code = at.session_state["_class_code"]
    assert class_store().read(code).state["query"].get("view") == "single"
    at.segmented_control(key="flt_view").set_value("hand").run()
    assert not at.exception
    assert at.query_params["view"] == "hand"
    assert class_store().read(code).state["query"].get("view") == "hand"


def test_an_error_that_ends_the_page_still_updates_the_url():
    at = open_link("architecture", {"model": "alexnet", "weights": "none"})
    at.text_input(key="sel_input").set_value("32x32").run()  # too small for AlexNet: an error, then the page ends
    assert not at.exception
    assert any("does not fit" in e.value for e in at.error)
    assert at.query_params["input"] == "32x32"  # the view on screen, error included


def test_a_bad_link_to_a_page_that_ends_early_is_named_as_the_link_wrote_it():
    at = open_link("compare", {"models": "nosuch,alexnet"})  # fewer than two usable models: the page ends early
    assert not at.exception
    messages = [w.value for w in at.warning if "link" in w.value]
    assert len(messages) == 1 and "models=nosuch,alexnet" in messages[0], messages


def test_a_link_to_a_typed_network_opens_that_network():
    """A network built on the Build page travels in its link (and to a class's followers): the sidebar used to
    fall back to the default model. A spec the grammar cannot read still falls back, named in the message."""
    spec = "in-3x32x32 conv3-8 M conv3-16 M FC-10"
    at = open_link("feature_maps", {"model": f"arch:{spec}", "weights": "none", "input": "32x32", "layer": "conv1"})
    assert not at.exception
    assert at.session_state["sel_model"] == f"arch:{spec}" and at.session_state["maps_layer"] == "conv1"
    assert not [w.value for w in at.warning if "link" in w.value]
    assert at.query_params["model"] == f"arch:{spec}"
    at = open_link("home", {"model": "arch:conv3-8 Q FC-10"})
    assert not at.exception
    assert at.session_state["sel_model"] != "arch:conv3-8 Q FC-10"
    assert any("model=arch:conv3-8 Q FC-10" in w.value for w in at.warning)
