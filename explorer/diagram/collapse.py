"""Collapsing a graph by module nesting: every node under a module-path prefix of depth N becomes one box,
and chosen boxes can be opened one level further while the others stay closed."""
from __future__ import annotations

from collections.abc import Iterable

from explorer.diagram.graph import Edge, Graph, Node


def _base(call_id: str) -> str:
    """``layer1#2`` (the second call of ``layer1``) → ``layer1``."""
    return call_id.rsplit("#", 1)[0] if "#" in call_id else call_id


def _nesting(node: Node) -> list[str]:
    """The module path whose prefixes can hold the node: a leaf module's own path (it is only grouped by a
    proper prefix) or, for a functional op, the path of the module that called it (grouped with it)."""
    path = node.module if node.source == "module" else node.block
    return path.split(".") if path else []


def _prefix(node: Node, depth: int) -> str | None:
    parts = _nesting(node)
    deep_enough = len(parts) > depth if node.source == "module" else len(parts) >= depth
    if node.source not in ("module", "function") or not deep_enough:
        return None
    prefix = ".".join(parts[:depth])
    # A container called more than once gets one box per call (else the boxes would form a cycle).
    return next((call for call in node.scope if _base(call) == prefix), prefix)


def box_of(node: Node, depth: int, expand: frozenset[str] = frozenset()) -> str:
    """The id of the box ``node`` falls in at ``depth``, opening the boxes named in ``expand``."""
    level = depth
    while True:
        key = _prefix(node, level)
        if key is None:
            return node.id
        if key in expand or _base(key) in expand:
            level += 1
            continue
        return key


def max_depth(graph: Graph) -> int:
    """The deepest level at which collapsing still merges something (0 for a flat network)."""
    deepest = 0
    for node in graph.nodes:
        parts = _nesting(node)
        if node.source == "module":
            deepest = max(deepest, len(parts) - 1)
        elif node.source == "function":
            deepest = max(deepest, len(parts))
    return deepest


def graph_at_depth(graph: Graph, depth: int | None = None, expand: Iterable[str] = ()) -> Graph:
    """Merge every node under a module-path prefix of ``depth`` parts into one box (``depth=1`` on resnet18:
    conv1, bn1, relu, maxpool, layer1 … layer4, avgpool, flatten, fc). ``expand`` names boxes to open one level
    further (repeat a name's children to go deeper). ``depth=None`` returns the graph with every layer.

    A box (``source="block"``, ``kind="block"``) lists its nodes in ``members``; its output shape is its last
    node's. Edges between boxes are kept once, without self-loops; one stays a shortcut only when every edge
    it stands for is one.
    """
    if depth is None:
        return graph
    if depth < 1:
        raise ValueError(f"depth must be 1 or more, got {depth} (give no depth for every layer)")
    opened = frozenset(expand)
    groups: dict[str, list[Node]] = {}
    key_of: dict[str, str] = {}
    for node in graph.nodes:
        key = box_of(node, depth, opened)
        key_of[node.id] = key
        groups.setdefault(key, []).append(node)

    nodes = []
    for key, members in groups.items():
        if len(members) == 1 and members[0].id == key:
            nodes.append(members[0])
            continue
        path = _base(key)
        first = members[0]
        depth_of_key = next(i for i, call in enumerate(first.scope + (key,)) if call == key or _base(call) == path)
        nodes.append(Node(id=key, kind="block", label=key, op=graph.module_type(path) or "block", source="block",
                          module=path, block=path.rpartition(".")[0], output_shape=members[-1].output_shape,
                          scope=first.scope[:depth_of_key], members=tuple(m.id for m in members)))

    merged: dict[tuple[str, str], bool] = {}
    for edge in graph.edges:
        src, dst = key_of[edge.src], key_of[edge.dst]
        if src == dst:
            continue
        merged[(src, dst)] = merged.get((src, dst), True) and edge.shortcut
    edges = tuple(Edge(src, dst, shortcut) for (src, dst), shortcut in merged.items())
    return Graph(nodes=tuple(nodes), edges=edges, input_shape=graph.input_shape, module_types=graph.module_types)


def has_cycle(graph: Graph) -> bool:
    """True when the arrows of ``graph`` go round in a loop. A collapsed view can (review 14, finding 1: members
    of a ModuleList called one by one from the parent's forward, or one module registered in two blocks, fall in
    one box that data leaves and re-enters); the executed graph itself never does."""
    indegree = {node.id: 0 for node in graph.nodes}
    for edge in graph.edges:
        indegree[edge.dst] += 1
    ready = [node_id for node_id, n in indegree.items() if n == 0]
    seen = 0
    outgoing: dict[str, list[str]] = {}
    for edge in graph.edges:
        outgoing.setdefault(edge.src, []).append(edge.dst)
    while ready:
        node_id = ready.pop()
        seen += 1
        for dst in outgoing.get(node_id, ()):
            indegree[dst] -= 1
            if indegree[dst] == 0:
                ready.append(dst)
    return seen < len(indegree)


def unknown_blocks(graph: Graph, names: Iterable[str]) -> list[str]:
    """The names in ``names`` that are no module or call of ``graph`` (``graph_at_depth`` would ignore them: a typo
    draws the same picture, so the command line names them)."""
    known = set(graph.module_types) | {call for node in graph.nodes for call in (*node.scope, node.id)}
    return sorted(name for name in set(names) if name not in known and _base(name) not in known)


def expandable_blocks(graph: Graph, depth: int, expand: Iterable[str] = ()) -> list[str]:
    """Ids of the closed boxes at ``depth`` (with ``expand`` opened): what a user can open next."""
    return [n.id for n in graph_at_depth(graph, depth, expand).nodes if n.source == "block"]
