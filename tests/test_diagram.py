"""The architecture diagram: the recorded graph is checked against the models themselves (their structure,
hooks counted independently, hand-written expectations), never against the diagram's own output."""
from __future__ import annotations

import re
from collections import Counter

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.googlenet import Inception
from torchvision.models.resnet import BasicBlock

from explorer.diagram import (DiagramError, LayoutEngineMissing, capture_graph, expandable_blocks, graph_at_depth,
                              layout_engine, max_depth, render, to_dot)
from explorer.models import build_model

SMALL = (3, 64, 64)


def leaf_calls(model: nn.Module, input_shape) -> dict[str, tuple[int, ...]]:
    """Every leaf-module call of one eval forward pass, named ``path`` / ``path#k``, with its output shape,
    counted with plain forward hooks."""
    counts: Counter[str] = Counter()
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def hook(name):
        def record(_module, _args, output):
            counts[name] += 1
            key = name if counts[name] == 1 else f"{name}#{counts[name]}"
            shapes[key] = tuple(output.shape)
        return record

    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def hooks_left(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks]


def in_sources(graph, node_id: str) -> list[str]:
    return [e.src for e in graph.edges if e.dst == node_id]


def dot_check(text: str) -> None:
    """DOT well-formed enough for Graphviz: braces balance outside quoted strings, every edge endpoint is
    declared as a node."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    depth = 0
    for char in unquoted:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    declared = set(re.findall(r'^\s*"((?:[^"\\]|\\.)*)" \[', text, re.MULTILINE))
    edges = re.findall(r'^\s*"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
    assert edges
    for src, dst in edges:
        assert src in declared and dst in declared, (src, dst)


@pytest.fixture(scope="module")
def resnet18():
    model = build_model("resnet18")
    return model, capture_graph(model, SMALL)


@pytest.fixture(scope="module")
def googlenet():
    model = build_model("googlenet")
    return model, capture_graph(model, SMALL)


# --- ResNet: residual adds -----------------------------------------------------------------------------------

def test_resnet18_every_add_joins_the_block_path_and_its_shortcut(resnet18):
    model, graph = resnet18
    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, BasicBlock)]
    assert [n for n, m in blocks if m.downsample is not None] == ["layer2.0", "layer3.0", "layer4.0"]
    adds = [n.id for n in graph.nodes if n.kind == "add"]
    assert adds == [f"{name}.add" for name, _ in blocks]
    block_input = "maxpool"  # what torchvision's ResNet.forward feeds layer1
    for name, block in blocks:
        shortcut = f"{name}.downsample.1" if block.downsample is not None else block_input
        assert sorted(in_sources(graph, f"{name}.add")) == sorted([f"{name}.bn2", shortcut])
        flags = {e.src: e.shortcut for e in graph.edges if e.dst == f"{name}.add"}
        assert flags == {f"{name}.bn2": False, shortcut: True}
        if block.downsample is not None:  # the whole projection path is drawn as the skip
            assert any(e.src == block_input and e.dst == f"{name}.downsample.0" and e.shortcut for e in graph.edges)
            assert in_sources(graph, f"{name}.conv1") == [block_input]
        # the in-place ReLU after `out += identity` reads the add, and is what the next block receives
        assert in_sources(graph, f"{name}.relu#2") == [f"{name}.add"]
        block_input = f"{name}.relu#2"
    assert sum(e.shortcut for e in graph.edges) == 5 + 3 * 3  # 5 identities, 3 projections of 3 edges


def test_resnet18_nodes_are_the_leaf_calls_with_their_shapes_and_geometry(resnet18):
    model, graph = resnet18
    expected = leaf_calls(model, SMALL)
    recorded = {n.id: n.output_shape for n in graph.nodes if n.source == "module"}
    assert recorded == expected
    conv1 = graph.node("conv1")
    assert (conv1.kind, conv1.kernel, conv1.stride, conv1.padding) == ("conv", model.conv1.kernel_size,
                                                                      model.conv1.stride, model.conv1.padding)
    maxpool = graph.node("maxpool")
    assert (maxpool.kind, maxpool.kernel, maxpool.stride, maxpool.padding) == ("pool", (3, 3), (2, 2), (1, 1))
    assert graph.node("fc").detail("features") == (512, 1000)
    functions = [n.id for n in graph.nodes if n.source == "function"]
    assert Counter(n.split(".")[-1] for n in functions) == {"add": 8, "flatten": 1}
    assert graph.node("layer1.0.conv1").block == "layer1.0" and graph.node("layer1.0.add").block == "layer1.0"
    assert graph.node("flatten").block == ""


def test_resnet18_depth_1_is_the_top_level_children_that_ran(resnet18):
    model, graph = resnet18
    ran, outputs = [], {}

    def hook(name):
        def record(_module, _args, output):
            ran.append(name)
            outputs[name] = tuple(output.shape)
        return record

    handles = [child.register_forward_hook(hook(name)) for name, child in model.named_children()]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *SMALL))
    finally:
        for handle in handles:
            handle.remove()
    top = graph_at_depth(graph, 1)
    assert [n.id for n in top.nodes if n.source in ("module", "block")] == ran
    assert [n.id for n in top.nodes if n.source == "function"] == ["flatten"]  # torch.flatten in ResNet.forward
    for node in top.nodes:
        if node.id in outputs:
            assert node.output_shape == outputs[node.id]
    assert top.node("layer1").op == "Sequential" and top.node("layer1").kind == "block"
    assert top.node("layer1").members[0] == "layer1.0.conv1" and top.node("layer1").members[-1] == "layer1.1.relu#2"
    # one chain: input → conv1 → … → fc → output, no self-loops, no duplicates
    assert all(len(in_sources(top, n.id)) <= 1 for n in top.nodes)
    assert len(top.edges) == len(top.nodes) - 1
    assert len({(e.src, e.dst) for e in top.edges}) == len(top.edges)


def test_collapse_levels_and_expanded_blocks(resnet18):
    _, graph = resnet18
    assert max_depth(graph) == 3  # layer2.0.downsample.0 sits three containers deep
    second = graph_at_depth(graph, 2)
    assert [n.id for n in second.nodes if n.source == "block"] == [f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)]
    opened = graph_at_depth(graph, 1, {"layer2"})
    ids = [n.id for n in opened.nodes]
    assert "layer1" in ids and "layer3" in ids and "layer2" not in ids
    assert {("layer1", "layer2.0"), ("layer2.0", "layer2.1"), ("layer2.1", "layer3")} <= {(e.src, e.dst)
                                                                                        for e in opened.edges}
    assert expandable_blocks(graph, 1, {"layer2", "layer2.0"}) == ["layer1", "layer2.0.downsample", "layer2.1",
                                                                   "layer3", "layer4"]
    inside = graph_at_depth(graph, 1, {"layer2", "layer2.0"})
    assert {e.src for e in inside.edges if e.dst == "layer2.0.add"} == {"layer2.0.bn2", "layer2.0.downsample"}
    assert all(e.shortcut for e in inside.edges if e.dst == "layer2.0.downsample")
    for g in (second, opened, inside):
        assert all(e.src != e.dst for e in g.edges)
        assert len({(e.src, e.dst) for e in g.edges}) == len(g.edges)
        assert {e.src for e in g.edges} | {e.dst for e in g.edges} <= {n.id for n in g.nodes}
    assert graph_at_depth(graph, None) is graph
    with pytest.raises(ValueError):
        graph_at_depth(graph, 0)


# --- GoogLeNet: four branches into each cat ------------------------------------------------------------------

def test_googlenet_each_inception_cat_has_its_four_branches(googlenet):
    model, graph = googlenet
    inceptions = [name for name, m in model.named_modules() if isinstance(m, Inception)]
    assert len(inceptions) == 9
    for name in inceptions:
        sources = in_sources(graph, f"{name}.cat")
        assert len(sources) == 4
        # one from each branch, in the order torch.cat received them
        assert [s.split(".")[1] for s in sources] == ["branch1", "branch2", "branch3", "branch4"]
        assert all(s.startswith(f"{name}.branch") for s in sources)
    top = graph_at_depth(graph, 1)
    assert [n.id for n in top.nodes if n.op == "Inception"] == inceptions
    assert top.node("inception3a").output_shape == graph.node("inception3a.cat").output_shape
    assert {n.id: n.output_shape for n in graph.nodes if n.source == "module"} == leaf_calls(model, SMALL)
    # BasicConv2d applies F.relu in its forward: a functional node inside the block, fed by the BN
    assert in_sources(graph, "inception3a.branch1.relu") == ["inception3a.branch1.bn"]


def test_googlenet_auxiliary_heads_do_not_run_and_train_mode_comes_back():
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    model.train()
    bn = model.conv1.bn
    before = bn.running_mean.clone()
    graph = capture_graph(model, SMALL)
    assert not [n.id for n in graph.nodes if n.id.startswith("aux")]
    assert graph.node("output").output_shape == (1, 1000)
    assert all(m.training for m in model.modules())
    assert torch.equal(bn.running_mean, before)  # the pass ran in eval mode: BN statistics untouched
    assert hooks_left(model) == []


# --- VGG: one chain ---------------------------------------------------------------------------------------------

def test_vgg16_is_one_chain_of_its_leaf_calls():
    model = build_model("vgg16")
    shape = (3, 32, 32)
    graph = capture_graph(model, shape)
    assert all(len(in_sources(graph, n.id)) <= 1 for n in graph.nodes)
    assert all(sum(e.src == n.id for e in graph.edges) <= 1 for n in graph.nodes)
    assert len(graph.edges) == len(graph.nodes) - 1
    assert {n.id: n.output_shape for n in graph.nodes if n.source == "module"} == leaf_calls(model, shape)
    assert [n.id for n in graph.nodes if n.source == "function"] == ["flatten"]


# --- hand-written networks --------------------------------------------------------------------------------------

class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        a = F.relu(self.conv_a(x))
        b = self.conv_b(x)
        y = a + b
        z = torch.cat([y, b], dim=1)
        z = F.max_pool2d(z, 2)
        return self.fc(torch.flatten(z, 1))


def test_functional_ops_are_nodes_with_the_right_edges():
    graph = capture_graph(Functional(), (3, 8, 8))
    assert [n.id for n in graph.nodes] == ["input", "conv_a", "relu", "conv_b", "add", "cat", "max_pool2d",
                                           "flatten", "fc", "output"]
    assert {(e.src, e.dst) for e in graph.edges} == {
        ("input", "conv_a"), ("conv_a", "relu"), ("input", "conv_b"), ("relu", "add"), ("conv_b", "add"),
        ("add", "cat"), ("conv_b", "cat"), ("cat", "max_pool2d"), ("max_pool2d", "flatten"), ("flatten", "fc"),
        ("fc", "output")}
    assert [graph.node(i).kind for i in ("relu", "add", "cat", "max_pool2d", "flatten")] == \
        ["act", "add", "cat", "pool", "flatten"]
    pool = graph.node("max_pool2d")
    assert (pool.kernel, pool.stride, pool.output_shape) == ((2, 2), (2, 2), (1, 8, 4, 4))
    assert graph.node("cat").output_shape == (1, 8, 8, 8)
    # conv_b around conv_a → relu is a 1×1 projection shortcut, the way a ResNet draws it
    assert {(e.src, e.dst) for e in graph.edges if e.shortcut} == {("input", "conv_b"), ("conv_b", "add")}


class TwoBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 4, 3, padding=1)
        self.right = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.left(x) + self.right(x)


def test_parallel_branches_of_equal_length_are_not_shortcuts():
    graph = capture_graph(TwoBranches(), (3, 5, 5))
    assert in_sources(graph, "add") == ["left", "right"]
    assert not any(e.shortcut for e in graph.edges)


class InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv_b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.relu(self.conv_a(x))  # the conv's output tensor is overwritten by the ReLU
        z = self.conv_b(y)
        z += y  # in-place add into the conv's output
        return self.relu(z)  # the same ReLU module again, in place


def test_in_place_ops_keep_the_edges_right():
    graph = capture_graph(InPlace(), (3, 6, 6))
    assert [n.id for n in graph.nodes] == ["input", "conv_a", "relu", "conv_b", "add", "relu#2", "output"]
    assert {(e.src, e.dst, e.shortcut) for e in graph.edges} == {
        ("input", "conv_a", False), ("conv_a", "relu", False), ("relu", "conv_b", False), ("conv_b", "add", False),
        ("relu", "add", True), ("add", "relu#2", False), ("relu#2", "output", False)}


class FailsLate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(10, 2)  # wrong width on purpose

    def forward(self, x):
        return self.fc(torch.flatten(self.bn(self.conv(x)), 1))


def test_no_hook_is_left_after_a_call_or_a_failed_call(resnet18):
    model, _ = resnet18
    assert hooks_left(model) == []
    broken = FailsLate().train()
    with pytest.raises(DiagramError) as info:
        capture_graph(broken, (3, 8, 8))
    assert info.value.layer == "fc" and "fc" in str(info.value)
    assert hooks_left(broken) == []
    assert all(m.training for m in broken.modules())
    capture_graph(model, (3, 32, 32))  # and the lock was released: a second call goes through
    assert hooks_left(model) == []


def test_concurrent_calls_on_one_model_each_get_the_whole_graph(resnet18):
    from concurrent.futures import ThreadPoolExecutor

    model, _ = resnet18
    alone = capture_graph(model, (3, 16, 16))
    with ThreadPoolExecutor(max_workers=3) as pool:
        graphs = list(pool.map(lambda _: capture_graph(model, (3, 16, 16)), range(6)))
    assert all(g == alone for g in graphs)
    assert hooks_left(model) == []


def test_bad_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="input_shape"):
        capture_graph(Functional(), (3, 0, 8))


# --- DOT and files -------------------------------------------------------------------------------------------------

def test_dot_text_is_well_formed_and_labelled(resnet18, googlenet):
    _, graph = resnet18
    for g in (graph, graph_at_depth(graph, 1), graph_at_depth(graph, 1, {"layer2", "layer2.0"})):
        for text in (to_dot(g), to_dot(g, legend=True, show_names=True, clusters=False, title='a "quoted" title')):
            dot_check(text)
    full = to_dot(graph)
    assert '"conv1" [label="conv 7×7/2\\n64×32×32"' in full
    assert '"maxpool" -> "layer1.0.add" [style=dashed' in full and "constraint=false" in full
    # a projection path keeps its layout constraints (its boxes would float to the top without them)
    assert re.search(r'"layer1.1.relu#2" -> "layer2.0.downsample.0" \[style=dashed[^\]]*\]', full)
    assert "constraint=false" not in re.search(r'"layer1.1.relu#2" -> "layer2.0.downsample.0" \[[^\]]*\]',
                                               full).group(0)
    assert 'subgraph "cluster:layer1.0"' in full
    _, gnet = googlenet
    block_level = to_dot(graph_at_depth(gnet, 1))
    dot_check(block_level)
    assert '"inception3a" [label="inception3a\\nInception\\n256×8×8"' in block_level


def test_dot_escapes_odd_module_names():
    model = nn.Sequential()
    model.add_module('we"ird\\name', nn.Conv2d(1, 2, 3))
    text = to_dot(capture_graph(model, (1, 5, 5)), show_names=True)
    dot_check(text)
    assert '"we\\"ird\\\\name" [' in text


@pytest.mark.skipif(layout_engine() is None, reason="no Graphviz layout program (graphviz-pure or dot)")
def test_svg_and_png_files(googlenet):
    _, graph = googlenet
    dot = to_dot(graph_at_depth(graph, 1), legend=True)
    svg = render(dot, "svg").decode("utf-8")
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert "inception3a" in svg and "256×8×8" in svg
    assert render(dot, "png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_layout_program_is_a_clear_error(monkeypatch):
    import explorer.diagram.export as export

    monkeypatch.setattr(export, "layout_engine", lambda: None)
    with pytest.raises(LayoutEngineMissing, match="graphviz"):
        export.render("digraph { a -> b }", "svg")
    with pytest.raises(ValueError, match="format"):
        export.render("digraph { a -> b }", "pdf")


def test_cli_graph_writes_dot(capsys):
    from explorer.cli import main

    assert main(["graph", "resnet18", "--input", "3x32x32", "--depth", "1", "--dot"]) == 0
    text = capsys.readouterr().out
    dot_check(text)
    assert '"layer4" [label="layer4\\nSequential\\n512×1×1"' in text
    assert main(["graph", "mnist_cnn", "--input", "1x28x28"]) == 0
    table = capsys.readouterr().out
    assert "conv1" in table and "output" in table
