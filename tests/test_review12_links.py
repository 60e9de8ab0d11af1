"""Links and class sessions (twelfth-session review): every layer name the pages offer and every typed network the
app writes into a link opens the same view again; link values are shown as text, never as Markdown; a class that
cannot start or cannot take a view says so and keeps the lecturer's role; a follower's warning belongs to the view
it names."""
from __future__ import annotations

import pytest

from explorer.core import Param, parse_query
from explorer.core.classroom import ClassroomError, ClassroomStore

from test_links import open_link


def test_a_later_call_of_a_module_is_a_valid_layer_name_in_a_link():
    query = {"layer": "layer1.0.relu#2", "search": "relu#2:in"}
    parsed = parse_query(query, [Param("layer", "maps_layer"), Param("search", "arch_search")])
    assert parsed.values == {"maps_layer": "layer1.0.relu#2", "arch_search": "relu#2:in"} and not parsed.problems


def test_feature_maps_link_to_a_second_call_opens_that_layer():
    at = open_link("feature_maps", {"model": "resnet18", "weights": "none", "input": "32x32",
                                    "layer": "layer1.0.relu#2"})
    assert not at.exception
    assert at.session_state["maps_layer"] == "layer1.0.relu#2"
    assert not [w.value for w in at.warning if "link" in w.value]
    assert at.query_params["layer"] == "layer1.0.relu#2"


def _long_spec() -> str:
    from explorer.models.arch import canonical_spec

    spec = canonical_spec("in-3x32x32 " + " ".join(["conv3-16 BN"] * 8 + ["M"] + ["conv3-32 BN"] * 8
                                                   + ["M", "FC-64", "dropout", "FC-10"]))
    assert len(spec) > 200  # longer than a layer name may be
    return spec


def test_a_long_typed_network_travels_in_a_link():
    key = f"arch:{_long_spec()}"
    at = open_link("home", {"model": key, "weights": "none"})
    assert not at.exception
    assert at.session_state["sel_model"] == key
    assert not [w.value for w in at.warning if "link" in w.value]
    assert at.query_params["model"] == key


def test_a_typed_network_only_in_compare_travels_in_its_link():
    key = "arch:in-3x32x32 conv3-8 M FC-10"
    at = open_link("compare", {"model": "mnist_cnn", "weights": "none", "models": f"{key},mnist_cnn"})
    assert not at.exception
    assert at.session_state["cmp_models"] == [key, "mnist_cnn"]
    assert not [w.value for w in at.warning if "link" in w.value]
    assert at.query_params["models"] == f"{key},mnist_cnn"


def test_link_values_in_the_warning_are_text_not_markdown():
    at = open_link("home", {"note": "[Session expired: sign in](https://evil.example/x)", "model": "mnist_cnn"})
    assert not at.exception
    [message] = [w.value for w in at.warning if "link" in w.value]
    start = message.index("`")
    span = message[start:message.index("`", start + 1) + 1]
    # the whole value list is one code span: Markdown inside it is shown as typed, nothing is a link
    assert "](https://evil.example/x)" in span and message.count("`") == 2


def test_a_class_that_cannot_start_says_so(monkeypatch):
    def full(self, state=None):
        raise ClassroomError("too many classes on this server")

    at = open_link("home", {"model": "mnist_cnn", "weights": "none", "lang": "ko"})
    monkeypatch.setattr(ClassroomStore, "start", full)
    at.button(key="class_start").click().run()
    assert not at.exception
    assert "_class_code" not in at.session_state
    assert any("수업을 시작할 수 없습니다" in w.value for w in at.warning)


def test_a_view_too_big_for_the_class_keeps_the_lecturer(monkeypatch):
    from ui.links import class_store

    at = open_link("conv_arithmetic", {"model": "mnist_cnn", "weights": "none"})
    at.button(key="class_start").click().run()
    code, token = at.session_state["_class_code"], at.session_state["_class_token"]

    def too_big(self, code, token, state):
        raise ClassroomError("the view is too big to share")

    monkeypatch.setattr(ClassroomStore, "publish", too_big)
    at.number_input(key="ca_n").set_value(11).run()
    assert not at.exception
    assert at.session_state["_class_code"] == code and class_store().is_owner(code, token)
    assert any("too large to send" in str(toast.value) for toast in at.toast)
    monkeypatch.undo()
    class_store().end(code, token)


def test_a_followers_warning_is_replaced_by_the_next_views():
    from ui.links import CLASS_PARAM, class_store

    code, token = class_store().start({"page": "home", "query": {}})
    at = open_link("home", {CLASS_PARAM: code, "model": "mnist_cnn", "weights": "none"})
    for channel, bad in (("100000", True), ("1", False)):
        class_store().publish(code, token, {"page": "feature_maps",
                                            "query": {"model": "mnist_cnn", "weights": "none", "channel": channel}})
        at.session_state["class_follow_on"] = True  # AppTest drops the toggle after a page switch (FIELD-NOTES)
        at.session_state["_class_seen"] = None
        at.run()
        if at.session_state.get("_links_pending"):
            at.run()
        assert not at.exception
        named = [w.value for w in at.warning if "channel=100000" in w.value]
        assert bool(named) == bad, (channel, named)
    class_store().end(code, token)
