"""Architecture diagrams of the graph a model really executes.

:func:`capture_graph` runs one forward pass and records a box per leaf-module call and per functional op
(``add``, ``cat``, ``F.relu``, ``flatten``...) with the data flow between them; :func:`graph_at_depth` merges
boxes by module nesting (one box per ``layer1`` or ``inception3a``, some opened); :func:`to_dot` writes DOT
for ``st.graphviz_chart``; :func:`render` makes SVG/PNG files where a layout program is installed.
"""
from explorer.diagram.capture import DiagramError, capture_graph
from explorer.diagram.collapse import box_of, expandable_blocks, graph_at_depth, has_cycle, max_depth, unknown_blocks
from explorer.diagram.dot import FILL, node_label, shape_text, to_dot
from explorer.diagram.graph import Edge, Graph, Node
from explorer.diagram.ops import KINDS
from explorer.diagram.export import FORMATS, LayoutEngineMissing, layout_engine, render

__all__ = [
    "FILL", "FORMATS", "KINDS", "DiagramError", "Edge", "Graph", "LayoutEngineMissing", "Node", "box_of",
    "capture_graph", "expandable_blocks", "graph_at_depth", "has_cycle", "layout_engine", "max_depth", "node_label", "render",
    "shape_text", "to_dot", "unknown_blocks",
]
