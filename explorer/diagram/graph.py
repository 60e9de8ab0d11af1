"""The data a diagram is drawn from: boxes (nodes) and data-flow arrows (edges) of an executed forward pass.

Plain frozen dataclasses with no torch objects in them, so a graph can be cached, pickled and compared.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Node:
    """One box.

    ``id``: the module path for a leaf-module call (``layer1.0.conv1``; ``name#k`` for the k-th call of a module
    called several times), ``<caller>.<op>`` for a functional op (``layer1.0.add``, ``inception3a.cat``,
    ``flatten``), ``input``/``output``, or the module path of a collapsed block.
    ``source``: ``"module"`` (a leaf-module call), ``"function"`` (a torch function or tensor method called in a
    container's ``forward``), ``"input"``, ``"output"`` or ``"block"`` (several nodes collapsed into one box).
    ``module``: the leaf module's path, or the path of the module whose ``forward`` called the op ("" = the model).
    ``block``: the module-nesting path the box sits in (parent of a leaf module, the caller of an op).
    ``output_shape``: the shape of the (first) tensor it produced, batch dimension included.
    ``scope``: call ids (path, ``#k`` when called again) of the containers that were running, outermost first.
    ``members``: for a block box, the ids of the nodes inside it in execution order.
    """

    id: str
    kind: str
    label: str
    op: str
    source: str
    module: str
    block: str
    output_shape: tuple[int, ...]
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | str | None = None
    details: tuple[tuple[str, Any], ...] = ()
    scope: tuple[str, ...] = ()
    members: tuple[str, ...] = ()

    def detail(self, key: str, default: Any = None) -> Any:
        """An extra number the box carries (``groups``, ``features``, ``p``, ``output_size``, ``dilation``)."""
        return dict(self.details).get(key, default)


@dataclass(frozen=True)
class Edge:
    """A tensor flowing from ``src`` to ``dst``; ``shortcut`` marks the identity/projection path of a residual add."""

    src: str
    dst: str
    shortcut: bool = False


@dataclass(frozen=True)
class Graph:
    """Nodes in execution order and edges without duplicates. ``module_types``: (path, class name) of every
    module that ran, containers included, so collapsed blocks can say what they are."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    input_shape: tuple[int, ...]
    module_types: tuple[tuple[str, str], ...] = ()
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        self._index.update({n.id: i for i, n in enumerate(self.nodes)})

    def node(self, node_id: str) -> Node:
        try:
            return self.nodes[self._index[node_id]]
        except KeyError:
            raise KeyError(f"no node {node_id!r} in the graph") from None

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def position(self, node_id: str) -> int:
        """Execution order of a node (0 = the input)."""
        return self._index[node_id]

    def in_edges(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == node_id]

    def out_edges(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.src == node_id]

    def predecessors(self, node_id: str) -> list[str]:
        return [e.src for e in self.in_edges(node_id)]

    def successors(self, node_id: str) -> list[str]:
        return [e.dst for e in self.out_edges(node_id)]

    def module_type(self, path: str) -> str | None:
        """Class name of the module at ``path`` if it ran, else None."""
        return dict(self.module_types).get(path)
