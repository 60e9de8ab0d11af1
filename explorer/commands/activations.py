"""``activations MODEL IMAGE --layer L --png OUT``: every channel of one layer as one tiled picture."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explorer.commands.common import add_model_args, load_from_args, save_npy


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "activations", help="save one layer's channels (feature maps) as a tiled PNG",
        description="Run MODEL on IMAGE and tile every channel of --layer into one PNG. Layer names are "
                    "module names; a module called several times per forward pass is NAME#2, NAME#3 for the "
                    "later calls; NAME:in is a module's input (a ReLU's input is the map before activation). "
                    "--list prints every layer call.",
    )
    add_model_args(parser)
    parser.add_argument("image", help="image file (PNG, JPEG, ...)")
    parser.add_argument("--layer", help="layer call name, e.g. layer1.0.conv1, layer1.0.relu#2, features.1:in")
    parser.add_argument("--list", action="store_true", help="list every layer call (name, type, shape) and exit")
    parser.add_argument("--png", type=Path, help="output PNG of the tiled channels")
    parser.add_argument("--npy", type=Path, help="also save the raw activations (C,H,W float32) as .npy")
    parser.add_argument("--order", default="index", choices=["index", "mean"],
                        help="channel order: by index or by mean activation, strongest first (default: index)")
    parser.add_argument("--scale", default="shared", choices=["shared", "channel"],
                        help="one colour scale for the layer, or each channel stretched (default: shared)")
    parser.add_argument("--cmap", default="viridis", help="colormap (viridis, inferno, magma, turbo, jet, gray...)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from explorer.analysis import callable_layers, capture
    from explorer.imaging import load_image
    from explorer.imaging import colorize, tile_channels, to_png

    loaded = load_from_args(args)
    x = loaded.preprocess(load_image(args.image))
    if args.list:
        for call in callable_layers(loaded.model, x):
            shape = "x".join(map(str, call.shape)) if call.shape else "-"
            print(f"{call.name:<50} {call.module_type:<24} {shape:<16} {call.block}")
        return 0
    if not args.layer or not args.png:
        raise ValueError("give --layer and --png (or --list to see the layer names)")
    maps = capture(loaded.model, x, [args.layer])[args.layer][0].float().numpy()
    if maps.ndim == 1:  # a vector layer (Linear): one row of 1x1 "maps"
        maps = maps[:, None, None]
    if maps.ndim != 3:
        raise ValueError(f"layer {args.layer!r} has output shape {maps.shape}, not channel maps")
    tiling = tile_channels(maps, order=args.order, scale=args.scale)
    args.png.write_bytes(to_png(colorize(tiling.image, args.cmap)))
    if args.npy:
        save_npy(args.npy, maps)
    print(f"{args.layer}: {maps.shape[0]} channels of {maps.shape[1]}x{maps.shape[2]} | min {maps.min():.4g} "
          f"max {maps.max():.4g} mean {maps.mean():.4g} | {tiling.rows}x{tiling.cols} grid -> {args.png}")
    if loaded.categories is None and args.weights == "pretrained":
        print("note: random weights, the maps show an untrained network", file=sys.stderr)
    return 0
