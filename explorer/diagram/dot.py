"""Graphviz DOT text for a diagram: boxes coloured by kind, labelled with what they do and their output shape,
shortcuts drawn as dashed skips. ``st.graphviz_chart`` lays DOT out in the browser (Graphviz compiled to
WebAssembly), so showing it needs no program on the server."""
from __future__ import annotations

from explorer.diagram.graph import Edge, Graph, Node

FILL = {
    "input": "#e0e0e0", "output": "#e0e0e0", "conv": "#9ecae1", "pool": "#fdae6b", "norm": "#c7e9c0",
    "act": "#fcbba1", "linear": "#bcbddc", "matmul": "#bcbddc", "add": "#fff59d", "mul": "#fff59d",
    "cat": "#ffe082", "split": "#ffe082", "flatten": "#eeeeee", "reshape": "#eeeeee", "index": "#eeeeee",
    "reduce": "#fdd0a2", "resize": "#d9f0d3", "dropout": "#f5f5f5", "identity": "#ffffff", "op": "#ffffff",
    "module": "#ffffff", "block": "#deebf7",
}
SHORTCUT_COLOR = "#c0392b"
_TIMES = "×"


def _quote(text: str) -> str:
    """A DOT double-quoted string (newlines become DOT's centred line breaks)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def shape_text(shape: tuple[int, ...]) -> str:
    """``(1, 64, 112, 112)`` → ``64×112×112`` (the batch dimension dropped)."""
    dims = shape[1:] if len(shape) > 1 else shape
    return _TIMES.join(str(d) for d in dims)


def _dims(values: tuple[int, ...] | None) -> str:
    return _TIMES.join(str(v) for v in values) if values else ""


def _same(values: tuple[int, ...] | None) -> str:
    """``(2, 2)`` → ``2``; ``(2, 1)`` → ``2×1``."""
    if not values:
        return ""
    return str(values[0]) if len(set(values)) == 1 else _dims(values)


def _output_size(output_size: tuple[int, ...], output_shape: tuple[int, ...]) -> tuple[int, ...]:
    """An adaptive pool's ``output_size`` as it came out: a None entry (stored as 0) keeps the input's size
    along that axis (``(None, 1)`` on 14×14 gives 14×1), so it is read from the box's real output shape."""
    spatial = output_shape[len(output_shape) - len(output_size):] if len(output_shape) >= len(output_size) else ()
    return tuple(spatial[i] if v in (None, 0) and spatial else v for i, v in enumerate(output_size))


def _op_word(node: Node) -> str:
    """A short name for what a box does: ``conv``, ``maxpool``, ``adaptive avgpool``, ``batchnorm``, ``relu``."""
    op = node.op
    if node.source == "module":
        word = op.lower()
        for suffix in ("1d", "2d", "3d"):
            word = word.removesuffix(suffix)
        if node.kind == "conv":
            return "deconv" if "transpose" in word else "conv"
        return word.replace("adaptive", "adaptive ")
    if node.kind == "pool":  # max_pool2d, adaptive_avg_pool2d
        word = op.removesuffix("_with_indices")[:-2].replace("_pool", "pool").replace("_", " ")
        return word
    if node.kind == "conv":
        return "deconv" if "transpose" in op else "conv"
    return op.replace("property:", "")


def _head(node: Node) -> str:
    """First line of a box: the op with its kernel/stride and other numbers."""
    word = _op_word(node)
    if node.kernel:
        word += f" {_dims(node.kernel)}"
        if node.stride and set(node.stride) != {1}:
            word += f"/{_same(node.stride)}"
    output_size = node.detail("output_size")
    if output_size and node.kind == "pool":
        word += f" → {_dims(_output_size(output_size, node.output_shape))}"
    if node.detail("dilation"):
        word += f" dil {_same(node.detail('dilation'))}"
    if node.detail("groups"):
        word += f" g{node.detail('groups')}"
    if node.detail("features"):
        n_in, n_out = node.detail("features")
        word += f" {n_in}→{n_out}"
    if node.detail("p") is not None:
        word += f" {node.detail('p'):g}"
    return word


def node_label(node: Node, show_names: bool = False) -> str:
    """The text of a box, e.g. ``conv 3×3/2\\n64×112×112``; blocks show their path and class."""
    shape = shape_text(node.output_shape)
    if node.source == "block":
        return f"{node.id}\n{node.op}\n{shape}"
    if node.source in ("input", "output"):
        # the output box lists every tensor the model returns (a dict or tuple output: features · logits)
        shapes = node.detail("shapes") or (node.output_shape,)
        return f"{node.label}\n{' · '.join(shape_text(s) for s in shapes)}"
    head = _head(node)
    return f"{node.id}\n{head}\n{shape}" if show_names else f"{head}\n{shape}"


def _unconstrained(edge: Edge, graph: Graph) -> bool:
    """A skip whose both ends are held in place by other edges need not pull the layout (the identity arrow
    of a residual block curves beside the main path); a projection path keeps its constraints or its boxes
    would float to the top."""
    if not edge.shortcut:
        return False
    src_held = any(not e.shortcut for e in graph.out_edges(edge.src))
    dst_held = any(not e.shortcut for e in graph.in_edges(edge.dst))
    return src_held and dst_held


def _node_statement(node: Node, show_names: bool) -> str:
    attrs = [f"label={_quote(node_label(node, show_names))}",
             f"fillcolor=\"{FILL.get(node.kind, '#ffffff')}\"",
             f"tooltip={_quote(f'{node.id} ({node.op})')}",
             f"id={_quote('node:' + node.id)}"]
    if node.source == "block":
        attrs.append("style=\"filled,bold\"")  # a closed block: square corners, heavier border
    elif node.source in ("input", "output"):
        attrs.append("shape=oval")
    return f"{_quote(node.id)} [{', '.join(attrs)}];"


def _clustered(graph: Graph, statements: dict[str, str]) -> list[str]:
    """Node statements nested in one dashed frame per open container (``layer1`` ⊃ ``layer1.0``), so a reader
    sees which boxes make up a block; boxes outside every container stay at the top level."""
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    members: dict[tuple[str, ...], list[str]] = {(): []}
    for node in graph.nodes:
        scope = node.scope
        members.setdefault(scope, []).append(node.id)
        for i in range(len(scope), 0, -1):  # register every enclosing frame, outermost last
            parent, child = scope[:i - 1], scope[:i]
            if child not in children.setdefault(parent, []):
                children[parent].append(child)
            members.setdefault(child, [])

    def emit(scope: tuple[str, ...], indent: str) -> list[str]:
        out = [indent + statements[node_id] for node_id in members.get(scope, [])]
        for child in children.get(scope, []):
            call = child[-1]
            kind = graph.module_type(call.rsplit("#", 1)[0]) or ""
            label = f"{call} · {kind}" if kind else call
            out.append(f"{indent}subgraph {_quote('cluster:' + call)} {{")
            out.append(f"{indent}  graph [label={_quote(label)}, style=\"rounded,dashed\", color=\"#9a9a9a\", "
                       f"fontcolor=\"#555555\", fontsize=11, labeljust=l, margin=8];")
            out += emit(child, indent + "  ")
            out.append(f"{indent}}}")
        return out

    return emit((), "  ")


def to_dot(graph: Graph, *, show_names: bool = False, legend: bool = False, clusters: bool = True,
           rankdir: str = "TB", title: str | None = None, legend_labels: dict[str, str] | None = None,
           shortcut_label: str = "shortcut") -> str:
    """DOT text for ``graph`` (any depth), for ``st.graphviz_chart`` or a Graphviz layout engine.

    Node names are the graph's node ids (so a box maps to a layer name); every box has a ``tooltip`` with its
    id and class. ``show_names`` also writes the id in each layer box; ``legend`` adds a row with one box per
    kind present, named by ``legend_labels`` (kind → text, e.g. the page's translations; the kind's code where
    missing) and ``shortcut_label`` for the dashed arrow; ``clusters`` frames the boxes of each open container (``layer1.0`` · BasicBlock).
    """
    lines = [
        "digraph model {",
        f"  graph [rankdir={rankdir}, nodesep=0.3, ranksep=0.32, bgcolor=\"white\", pad=0.25, "
        f"fontname=\"Helvetica\", fontsize=14{', labelloc=t, label=' + _quote(title) if title else ''}];",
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=12, color=\"#555555\", "
        "fontcolor=\"#111111\", margin=\"0.14,0.05\", height=0.36];",
        "  edge [color=\"#666666\", arrowsize=0.7, penwidth=1.1];",
    ]
    statements = {node.id: _node_statement(node, show_names) for node in graph.nodes}
    if clusters:
        lines += _clustered(graph, statements)
    else:
        lines += ["  " + statements[node.id] for node in graph.nodes]
    for edge in graph.edges:
        attrs = []
        if edge.shortcut:
            attrs += ["style=dashed", f"color=\"{SHORTCUT_COLOR}\"", "penwidth=1.5"]
            if _unconstrained(edge, graph):
                attrs.append("constraint=false")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_quote(edge.src)} -> {_quote(edge.dst)}{suffix};")
    if legend:
        kinds = list(dict.fromkeys(n.kind for n in graph.nodes if n.kind not in ("input", "output")))
        lines.append("  subgraph cluster_legend {")
        lines.append("    graph [label=\"\", style=invis];")
        lines.append("    node [fontsize=10, height=0.25, margin=\"0.08,0.02\"];")
        names = [_quote(f"legend:{kind}") for kind in kinds]
        for kind, name in zip(kinds, names):
            text = (legend_labels or {}).get(kind, kind)
            lines.append(f"    {name} [label={_quote(text)}, fillcolor=\"{FILL.get(kind, '#ffffff')}\"];")
        if any(e.shortcut for e in graph.edges):
            lines.append("    \"legend:shortcut_a\" [label=\"\", shape=point, width=0.05];")
            lines.append(f"    \"legend:shortcut_b\" [label={_quote(shortcut_label)}, shape=plaintext, style=\"\"];")
            lines.append(f"    \"legend:shortcut_a\" -> \"legend:shortcut_b\" [style=dashed, "
                         f"color=\"{SHORTCUT_COLOR}\", penwidth=1.5];")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
