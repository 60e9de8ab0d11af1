"""explorer.core.viewstate: a view's URL query parsed into validated values, and written back."""
from explorer.core import Param, describe_problems, encode_query, parse_query, parse_shape

PARAMS = (
    Param("model", "sel_model", "name"),
    Param("input", "sel_input", "shape"),
    Param("lang", "lang", "choice", ("en", "ko")),
    Param("present", "present_mode", "bool"),
    Param("class", "cam_class", "int", low=-1, high=999),
    Param("alpha", "cam_alpha", "float", low=0, high=1),
    Param("models", "cmp_models", "list", ("alexnet", "vgg16", "resnet18"), max_items=2),
    Param("layer", "cam_layer", "name"),
)


def test_valid_query_parses_to_targets():
    parsed = parse_query({"model": "vgg16", "input": "224x160", "lang": "ko", "present": "1", "class": "281",
                          "alpha": "0.25", "models": "vgg16,alexnet", "layer": "features.28"}, PARAMS)
    assert parsed.problems == []
    assert parsed.values == {"sel_model": "vgg16", "sel_input": "224x160", "lang": "ko", "present_mode": True,
                             "cam_class": 281, "cam_alpha": 0.25, "cmp_models": ["vgg16", "alexnet"],
                             "cam_layer": "features.28"}


def test_each_malformed_value_is_dropped_and_named():
    bad = {"input": "224xabc", "lang": "fr", "present": "maybe", "class": "1000", "alpha": "1e9",
           "models": "vgg16,alexnet,resnet18", "layer": "<script>", "bogus": "1"}
    parsed = parse_query(bad, PARAMS)
    assert parsed.values == {}
    assert sorted(name for name, _ in parsed.problems) == sorted(bad)


def test_unknown_choice_and_ignored_names():
    parsed = parse_query({"models": "vgg16,nonsense", "lang": "ko", "utm": "x"}, PARAMS, ignore=("utm",))
    assert parsed.values == {"lang": "ko"}
    assert parsed.problems == [("models", "vgg16,nonsense")]


def test_runtime_choices_override():
    parsed = parse_query({"layer": "conv9"}, PARAMS, choices={"layer": ["conv1", "conv2"]})
    assert parsed.values == {} and parsed.problems == [("layer", "conv9")]


def test_last_of_repeated_values_counts():
    assert parse_query({"lang": ["en", "ko"]}, PARAMS).values == {"lang": "ko"}


def test_shape_forms():
    assert parse_shape("224") == (224, 224)
    assert parse_shape("3x32x48") == (32, 48)
    assert parse_shape("32×48") == (32, 48)
    assert parse_shape("0x5") is None
    assert parse_shape("2000x2000") is None
    assert parse_shape("9" * 50) is None  # bounded digit runs: no huge ints, no backtracking


def test_round_trip_through_text():
    values = {"sel_model": "timm/resnet18", "sel_input": "64x64", "present_mode": False, "cam_class": -1,
              "cam_alpha": 0.5, "cmp_models": ["alexnet", "resnet18"], "cam_layer": "layer4.1.conv2"}
    query = encode_query(values, PARAMS)
    assert query["present"] == "0" and query["models"] == "alexnet,resnet18" and query["class"] == "-1"
    assert parse_query(query, PARAMS).values == values


def test_problems_line_is_short():
    line = describe_problems([(f"p{i}", "x") for i in range(6)], limit=3)
    assert line == "p0=x, p1=x, p2=x, …"
