"""AppTests of the Build-your-own page: validation messages, the layer table, and "use this network"."""


def test_default_network_builds(app_factory):
    at = app_factory("build", sel_weights="none")
    assert not at.exception
    assert at.success and not at.error
    table = at.dataframe[0].value
    assert table["Layer"].tolist()[0] == "conv1"  # headers from the catalogue, key columns first
    assert list(table.columns[:4]) == ["Layer", "Type", "Output shape", "Params"]
    assert "None" not in table.to_numpy().astype(str)
    assert at.metric[0].value == "3×32×32"


def test_bad_token_is_named_and_marked(app_factory):
    at = app_factory("build", sel_weights="none")
    at.text_area(key="build_text").set_value("conv3-64 conv3 FC-10").run()
    assert not at.exception
    assert any("token 2 'conv3'" in e.value for e in at.error)
    assert any(c.value.endswith("         ^^^^^") for c in at.code)
    at.text_area(key="build_text").set_value("conv3-8 M M M M M M FC-10").run()
    assert any("token 7 'M'" in e.value and "empty" in e.value for e in at.error)


def test_use_this_network_everywhere(app_factory):
    at = app_factory("build", sel_weights="none")
    at.text_area(key="build_text").set_value("in-1x28x28 conv5-6 M conv5-16/p0 M FC-10").run()
    at.button(key="build_use").click().run()
    assert not at.exception
    spec = "in-1x28x28 conv5-6 M conv5-16/p0 M FC-10"
    assert at.session_state["custom_archs"] == [spec]
    assert at.session_state["sel_model"] == "arch:" + spec
    assert any(spec in i.value for i in at.info)
    at.switch_page("pages/architecture.py").run()
    assert not at.exception
    # 28 → conv5 (same) 28 → M 14 → conv5/p0 10 → M 5: FC-10 sees 16·5·5.
    expected = (1 * 25 * 6 + 6) + (6 * 25 * 16 + 16) + (16 * 5 * 5 * 10 + 10)
    assert at.metric[0].value == f"{expected:,}"


def test_table_mode_and_examples(app_factory):
    at = app_factory("build", sel_weights="none")
    at.selectbox(key="build_example").set_value("lenet")
    at.button(key="build_load").click().run()
    assert at.text_area(key="build_text").value.startswith("in-1x32x32 conv5-6/p0")
    at.radio(key="build_mode").set_value("table").run()
    assert not at.exception
    assert any(c.value.startswith("in-1x32x32 conv5-6/p0 ReLU A") for c in at.code)
    at.text_input(key="build_in").set_value("1x36x36").run()
    assert not at.exception
    assert any(c.value.startswith("in-1x36x36 conv5-6/p0") for c in at.code)
    assert at.metric[0].value == "1×36×36"
    at.radio(key="build_mode").set_value("text").run()
    assert at.text_area(key="build_text").value.startswith("in-1x36x36")
