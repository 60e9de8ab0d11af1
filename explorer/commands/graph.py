"""``graph MODEL [--dot | --svg PATH | --png PATH] [--depth N] [--expand BLOCK] [--input CxHxW]``: the graph a
model executes, as a node list, DOT text, or an SVG/PNG file."""
from __future__ import annotations

import sys
from pathlib import Path

from explorer.commands.common import add_model_args, load_from_args, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("graph", help="architecture diagram of the executed graph (DOT, SVG, PNG)")
    add_model_args(parser)
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--dot", action="store_true", help="write Graphviz DOT text to stdout")
    out.add_argument("--svg", metavar="PATH", type=Path, help="write an SVG file (needs graphviz-pure or dot)")
    out.add_argument("--png", metavar="PATH", type=Path, help="write a PNG file (needs graphviz-pure or dot)")
    parser.add_argument("--depth", type=int, default=None,
                        help="merge layers into one box per module at this nesting depth (1 = top-level children)")
    parser.add_argument("--expand", action="append", default=[], metavar="BLOCK",
                        help="open this box one level further (repeatable), e.g. --depth 1 --expand layer2")
    parser.add_argument("--names", action="store_true", help="write each layer's name in its box")
    parser.set_defaults(func=run)


def run(args) -> int:
    from explorer.diagram import capture_graph, graph_at_depth, has_cycle, render, shape_text, to_dot, unknown_blocks

    loaded = load_from_args(args)
    full = capture_graph(loaded.model, loaded.input_shape)
    unknown = unknown_blocks(full, args.expand)
    if unknown:  # a typo would draw the same picture without a word
        raise ValueError(f"--expand: no block named {', '.join(map(repr, unknown))} in {loaded.name}")
    graph = graph_at_depth(full, args.depth, args.expand)
    if has_cycle(graph):  # blocks that data leaves and re-enters (a ModuleList stepped from outside): as the page does
        print(f"--depth {args.depth}: these blocks would loop (data leaves them and comes back), so every layer is "
              "shown", file=sys.stderr)
        graph = full
    if args.dot or args.svg or args.png:
        dot = to_dot(graph, show_names=args.names, legend=bool(args.svg or args.png), title=loaded.name)
        if args.dot:
            sys.stdout.write(dot)
            return 0
        path: Path = args.svg or args.png
        path.write_bytes(render(dot, "svg" if args.svg else "png"))
        print(f"wrote {path} ({len(graph.nodes)} boxes, {len(graph.edges)} arrows)", file=sys.stderr)
        return 0

    import pandas as pd

    rows = [{"node": n.id, "kind": n.kind, "op": n.op, "output": shape_text(n.output_shape),
             "inputs": ", ".join(e.src + (" (shortcut)" if e.shortcut else "") for e in graph.in_edges(n.id))}
            for n in graph.nodes]
    print_table(pd.DataFrame(rows), csv=False)
    return 0
