"""Which inputs of a residual ``add`` are the shortcut (identity or projection), so the diagram can draw them
as a skip rather than as part of the main path."""
from __future__ import annotations

from collections import defaultdict

from explorer.diagram.graph import Edge, Node


def mark_shortcuts(nodes: tuple[Node, ...] | list[Node], edges: list[Edge]) -> list[Edge]:
    """Return ``edges`` with ``shortcut=True`` on the shortcut path of every two-input ``add``.

    Each input of an add is followed back through nodes with one input until it reaches something the other
    input also comes from (where the two paths split) or a merge. Two inputs that split at the same node: the
    shorter path is the shortcut (the identity has no box, a projection is a 1×1 conv + BN, the residual branch
    is longer); paths of equal length (two parallel branches) are neither. Paths stopped at different nodes:
    the one whose start lies upstream of the other's start goes around it, so it is the shortcut.
    """
    incoming: dict[str, list[Edge]] = defaultdict(list)
    for edge in edges:
        incoming[edge.dst].append(edge)

    def upstream_or_self(node: str) -> set[str]:
        seen, stack = {node}, [node]
        while stack:
            for edge in incoming[stack.pop()]:
                if edge.src not in seen:
                    seen.add(edge.src)
                    stack.append(edge.src)
        return seen

    def path_back(edge: Edge, stop: set[str]) -> tuple[str, list[Edge]]:
        path = [edge]
        current = edge.src
        while current not in stop and len(incoming[current]) == 1:
            path.append(incoming[current][0])
            current = path[-1].src
        return current, path

    marked: set[tuple[str, str]] = set()
    for node in nodes:
        if node.kind != "add" or len(incoming[node.id]) != 2:
            continue
        edge_a, edge_b = incoming[node.id]
        above_a, above_b = upstream_or_self(edge_a.src), upstream_or_self(edge_b.src)
        start_a, path_a = path_back(edge_a, above_b)
        start_b, path_b = path_back(edge_b, above_a)
        if start_a == start_b:
            if len(path_a) != len(path_b):
                marked.update((e.src, e.dst) for e in min(path_a, path_b, key=len))
        elif start_a in upstream_or_self(start_b):
            marked.update((e.src, e.dst) for e in path_a)
        elif start_b in upstream_or_self(start_a):
            marked.update((e.src, e.dst) for e in path_b)
    return [Edge(e.src, e.dst, shortcut=(e.src, e.dst) in marked) for e in edges]
