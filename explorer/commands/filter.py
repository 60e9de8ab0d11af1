"""``filter IMAGE --kernel NAME|--kernel-values "a,b,c;d,e,f;g,h,i" --png OUT``: apply one filter."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "filter", help="apply a convolution filter (Sobel, blur, your own kernel...) to an image",
        description="Apply a kernel by correlation (like cv2.filter2D and CNN layers; --convolve flips it "
                    "first for true convolution) and save the result as PNG (display mapping) and .npy (values).",
    )
    parser.add_argument("image", help="image file (PNG, JPEG, ...)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--kernel", help="preset name: " + ", ".join(_filter_names()))
    which.add_argument("--kernel-values", help='your own kernel, rows split by ";": "1,0,-1;2,0,-2;1,0,-1"')
    parser.add_argument("--padding", default="zero", choices=["zero", "reflect", "replicate", "none"],
                        help="border handling (reflect = mirror without repeating the edge, "
                             "cv2 BORDER_REFLECT_101); none = no padding (default: zero)")
    parser.add_argument("--stride", type=int, default=1, help="step between windows (default: 1)")
    parser.add_argument("--convolve", action="store_true", help="true convolution (flip the kernel first)")
    parser.add_argument("--per-channel", action="store_true", help="filter R, G, B separately (default: grey)")
    parser.add_argument("--display", default="auto", choices=["auto", "diverging", "abs", "clip", "direction"],
                        help="how values become PNG colours, as on the Filters page (default: auto; "
                             "sobel_direction: angles on the page's cyclic colour scale, Twilight)")
    parser.add_argument("--gaussian-size", type=int, default=5, help="size of the 'gaussian' preset (odd)")
    parser.add_argument("--gaussian-sigma", type=float, default=1.0, help="sigma of the 'gaussian' preset")
    parser.add_argument("--png", required=True, type=Path, help="output PNG (the display mapping)")
    parser.add_argument("--npy", type=Path, help="also save the raw float64 result as .npy")
    parser.set_defaults(func=run)


def _filter_names() -> list[str]:
    # Listed without importing cv2 at parser build time (every command's parser is built on each call).
    return ["identity", "sobel_x", "sobel_y", "sobel_y_notes", "scharr_x", "scharr_y", "prewitt_x", "prewitt_y", "laplacian",
            "gaussian", "box_blur", "sharpen", "emboss", "outline", "sobel_magnitude", "sobel_direction"]


def run(args: argparse.Namespace) -> int:
    from explorer.imaging import filter_display
    from explorer.imaging import filters
    from explorer.imaging import load_image

    for target in (args.png, args.npy):  # checked before the work, not after it
        if target is not None and target.is_dir():
            raise ValueError(f"{target} is a folder: give a file name for the output, e.g. {target / 'out.png'}")
    image = filters.to_array(load_image(args.image), grayscale=not args.per_channel)
    operation = "convolve" if args.convolve else "correlate"
    if args.kernel is not None:
        if args.kernel not in filters.FILTER_NAMES:
            raise ValueError(f"unknown kernel {args.kernel!r}: use one of {', '.join(filters.FILTER_NAMES)}")
        result = filters.apply_filter(image, args.kernel, args.padding, args.stride, operation,
                                      **({"gaussian_size": args.gaussian_size, "gaussian_sigma": args.gaussian_sigma}
                                         if args.kernel == "gaussian" else {}))
        kernel_shape = (3, 3) if args.kernel in filters.COMPOSITE_FILTERS else \
            filters.kernel_for(args.kernel, gaussian_size=args.gaussian_size, gaussian_sigma=args.gaussian_sigma).shape
        label = args.kernel
    else:
        kernel = filters.parse_kernel(args.kernel_values)
        result = filters.apply(image, kernel, args.padding, args.stride, operation)
        kernel_shape, label = kernel.shape, filters.format_kernel(kernel)
    mode = "direction" if args.kernel == "sobel_direction" and args.display == "auto" else args.display
    if mode == "auto":
        mode = filter_display.choose_display_mode(result)
    png = filter_display.to_png(result, mode)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    args.png.write_bytes(png)
    if args.npy is not None:
        args.npy.parent.mkdir(parents=True, exist_ok=True)
        args.npy.write_bytes(filter_display.to_npy(result))
    ph, _ = filters.padding_amount(tuple(kernel_shape), args.padding)
    size = filters.explain_output_size(image.shape[0], kernel_shape[0], ph, args.stride)
    low, high = filter_display.value_range(result)
    print(f"{operation} {label} | padding {args.padding} (P={ph}) stride {args.stride} | "
          f"input {image.shape[0]}x{image.shape[1]} -> output {result.shape[0]}x{result.shape[1]} "
          f"(rows: ({size.n} - {size.f} + 2*{size.p}) / {size.s} + 1 = {size.exact:g} -> {size.size}) | "
          f"values {low:.4g} .. {high:.4g} | PNG display: {mode}")
    return 0
