"""Review 14 of the architecture diagram (findings 2-5): every check is against an independent fact (the real
forward output, a forward hook, the locale files, the Grad-CAM page's own layer picker), never the diagram's own
output alone."""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import torch.nn as nn

from explorer.diagram import capture_graph, node_label, shape_text, to_dot

LOCALES = Path(__file__).resolve().parents[1] / "explorer" / "locales"


def _output_line(graph) -> str:
    return node_label(graph.node("output")).split("\n")[1]


class TwoHeads(nn.Module):
    """Features and logits, returned as a dict with a constant beside them, or as a tuple with the input's ReLU."""

    def __init__(self, as_dict: bool) -> None:
        super().__init__()
        self.as_dict = as_dict
        self.body = nn.Conv2d(3, 4, 3)
        self.cls = nn.Linear(4, 5)

    def forward(self, x):
        f = self.body(x)
        if self.as_dict:
            return {"temperature": torch.ones(1), "features": f, "logits": self.cls(f.mean((2, 3)))}
        return f, self.cls(f.mean((2, 3))), torch.relu(x)


def test_output_box_lists_every_computed_tensor_not_a_constant():  # finding 4
    x = torch.randn(1, 3, 32, 32)
    model = TwoHeads(as_dict=True).eval()
    with torch.no_grad():
        real = model(x)
    line = _output_line(capture_graph(model, (3, 32, 32)))
    assert line.split(" · ") == [shape_text(tuple(real["features"].shape)), shape_text(tuple(real["logits"].shape))]
    model = TwoHeads(as_dict=False).eval()
    with torch.no_grad():
        real = model(x)
    assert _output_line(capture_graph(model, (3, 32, 32))).split(" · ") == [shape_text(tuple(t.shape)) for t in real]


def test_adaptive_pool_with_none_is_labelled_with_the_real_output_size():  # finding 5
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d((None, 1)), nn.AdaptiveMaxPool2d((2, None)))
    seen = {}
    handles = [model[i].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, tuple(o.shape[2:])))
               for i in (1, 2)]
    with torch.no_grad():
        model(torch.randn(1, 3, 14, 14))
    for h in handles:
        h.remove()
    graph = capture_graph(model, (3, 14, 14))
    for i in (1, 2):
        head = node_label(graph.node(str(i))).split("\n")[0]
        assert head.endswith("→ " + "×".join(map(str, seen[i]))), (head, seen[i])


def test_legend_uses_the_translated_kind_names():  # finding 3, library side
    graph = capture_graph(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 8, 8))
    dot = to_dot(graph, legend=True, legend_labels={"conv": "합성곱", "act": "활성화"}, shortcut_label="지름길")
    assert 'label="합성곱"' in dot and 'label="활성화"' in dot and 'label="act"' not in dot


def _legend_labels(dot: str) -> list[str]:
    return re.findall(r'"legend:[a-z_]+" \[label="([^"]*)"', dot)


def test_architecture_page_legend_in_both_languages(app_factory):  # finding 3, the page
    for lang in ("en", "ko"):
        words = json.loads((LOCALES / lang / "diagram.json").read_text(encoding="utf-8"))
        at = app_factory("architecture", sel_model="resnet18", sel_input="64x64", lang=lang, sel_weights="none",
                         diagram_legend=True)
        assert not at.exception, at.exception
        labels = [label for label in _legend_labels(at.get("graphviz_chart")[0].proto.spec) if label]
        expected = {words[f"diagram.kind.{kind}"] for kind in ("conv", "norm", "act", "pool", "add", "linear")}
        assert expected <= set(labels), (lang, labels)
        assert words["diagram.kind.shortcut"] in labels
        assert not {"act", "norm"} & set(labels)  # the internal codes
        if lang == "ko":
            assert "shortcut" not in labels


def offered_on(page: str, app_factory) -> list[str]:
    at = app_factory(page, sel_model="resnet18", sel_input="64x64", sel_weights="none")
    return [option.split(" · ")[0] for option in at.selectbox(key="cam_layer").options]


def test_handoff_opens_only_a_layer_the_page_offers(app_factory):  # finding 2
    at = app_factory("architecture", sel_model="resnet18", sel_input="64x64", sel_weights="none")
    at.selectbox(key="diagram_depth").set_value(0).run()
    box = "layer1.0.relu#2"  # a block's output ReLU: the Grad-CAM page lists convs and blocks only
    at.selectbox(key="diagram_box").set_value(box).run()
    at.button(key="diagram_open_cam_layer").click().run()
    assert not at.exception, at.exception
    pickers = [w for w in at.selectbox if w.key == "cam_layer"]
    if pickers:  # the page opened at once: it must show the box itself
        assert pickers[0].value == box
        return
    assert box not in offered_on("gradcam", app_factory)
    notes = [n.value for n in at.info if box in n.value]
    assert notes, "the page was not opened and nothing said why"
    named = re.findall(r"\*\*([^*]+)\*\*", notes[0])
    assert named[0] == box
    at.button(key="diagram_handoff_open").click().run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="cam_layer")
    offered = [option.split(" · ")[0] for option in picker.options]
    assert picker.value == named[-1] and named[-1] in offered  # the layer promised is the one shown
    assert named[-1] == "layer1.0"  # the block whose output that ReLU is


class ListNet(nn.Module):
    """A ModuleList of convs called one by one from forward (finding 1): not a block that ever runs."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)])
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        for conv in self.blocks:
            x = torch.nn.functional.max_pool2d(torch.relu(conv(x)), 2)
        return self.fc(x.mean((2, 3)))


def test_a_collapsed_view_that_loops_is_detected():  # finding 1: the page falls back to every layer then
    from explorer.diagram import graph_at_depth, has_cycle

    graph = capture_graph(ListNet(), (3, 16, 16))
    view = graph_at_depth(graph, 1)
    edges = {(e.src, e.dst) for e in view.edges}
    # data leaves the "blocks" box and comes back into it: a loop, by the edges alone
    assert any(dst == "blocks" and src != "input" for src, dst in edges) and ("blocks", "relu") in edges
    assert has_cycle(view) and not has_cycle(graph)


def test_the_cli_shows_every_layer_where_a_collapsed_view_would_loop(tmp_path):
    """`python -m explorer graph FILE --depth 1` on a ModuleList stepped from outside: no loop in what it prints."""
    import subprocess
    import sys

    from conftest import ROOT

    source = tmp_path / "stepped.py"
    source.write_text(
        "import torch.nn as nn\nimport torch.nn.functional as F\n\n"
        "class Stepped(nn.Module):\n"
        "    input_shape = (1, 16, 16)\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.blocks = nn.ModuleList([nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)])\n"
        "        self.fc = nn.Linear(4 * 4 * 4, 3)\n"
        "    def forward(self, x):\n"
        "        for conv in self.blocks:\n"
        "            x = F.max_pool2d(F.relu(conv(x)), 2)\n"
        "        return self.fc(x.flatten(1))\n")
    done = subprocess.run([sys.executable, "-m", "explorer", "--models", str(source), "graph", "Stepped", "--depth", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "would loop" in done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    nodes = {parts[0] for parts in lines[1:] if parts}
    assert {"blocks.0", "blocks.1"} <= nodes  # the two convs, each its own box
