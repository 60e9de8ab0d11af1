"""``gradcam MODEL IMAGE [--layer L] [--target K] [--weights W] --png OUT [--npy OUT]``: where the network looks."""
from __future__ import annotations

import argparse
from pathlib import Path

from explorer.commands.common import add_model_args, load_from_args, save_npy, unit_interval


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gradcam", help="Grad-CAM (or another captum attribution) of one image, overlaid as PNG",
        description="Grad-CAM through captum's LayerGradCam: gradients of the class score averaged over "
                    "space weight the layer's channels; ReLU; upsampled to the input and scaled to [0, 1]. "
                    "The PNG overlays the heatmap on the image as the network saw it (resized/cropped).",
    )
    add_model_args(parser)
    parser.add_argument("image", help="image file (PNG, JPEG, ...)")
    parser.add_argument("--layer", help="layer call name (default: the last conv block)")
    parser.add_argument("--target", type=int, help="class index to explain (default: the top-1 class)")
    parser.add_argument("--method", default="gradcam",
                        choices=["gradcam", "guided_gradcam", "integrated_gradients", "saliency", "occlusion"],
                        help="attribution method (default: gradcam)")
    parser.add_argument("--png", required=True, type=Path, help="output PNG: heatmap over the image")
    parser.add_argument("--npy", type=Path, help="also save the (H, W) float32 map in [0, 1] as .npy")
    parser.add_argument("--alpha", type=unit_interval, default=0.5, help="heatmap opacity 0..1 (default: 0.5)")
    parser.add_argument("--cmap", default="jet", help="colormap (jet, turbo, inferno, viridis...)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from explorer.analysis import predict
    from explorer.analysis import attribute, grad_cam, resolve_target
    from explorer.imaging import load_image
    from explorer.analysis import default_cam_layer
    from explorer.imaging import input_picture, overlay, to_png

    loaded = load_from_args(args)
    x = loaded.preprocess(load_image(args.image))
    layer = args.layer or default_cam_layer(loaded.model, tuple(loaded.input_shape))
    target = resolve_target(loaded.model, x, args.target)
    if args.method == "gradcam":
        heat = grad_cam(loaded.model, x, layer, target)
    else:
        heat = attribute(loaded.model, x, args.method, layer=layer, target=target)
    args.png.write_bytes(to_png(overlay(input_picture(x, *loaded.normalization), heat, args.alpha, args.cmap)))
    if args.npy:
        save_npy(args.npy, heat.astype(np.float32))
    names = loaded.class_names or []
    name = names[target] if target < len(names) else str(target)
    top = predict(loaded.model, x, 1, loaded.categories)
    top_text = f" | top-1 {top[0].label} ({top[0].probability:.1%})" if top else " | random weights: classes are not meaningful"
    of_layer = f" of layer {layer}" if args.method in ("gradcam", "guided_gradcam") else ""  # the others use none
    print(f"{args.method}{of_layer} for class {target} ({name}){top_text} -> {args.png}")
    return 0
