"""``compare MODEL MODEL ... [--arch SPEC] [--csv]``: parameters, mult-adds, depth, receptive field, accuracy."""
from __future__ import annotations

from explorer.commands.common import print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare 2-8 models: parameters, mult-adds, depth, receptive field, size, accuracy")
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help='model names (see `models`), or "arch:<spec>" for a build-your-own network')
    parser.add_argument("--arch", action="append", default=[], metavar="SPEC",
                        help='a build-your-own network, e.g. "conv3-64 M conv3-128 M FC-10" (repeatable)')
    parser.add_argument("--no-rf", action="store_true", help="skip the receptive-field column (faster)")
    parser.add_argument("--csv", action="store_true", help="write CSV to stdout")
    parser.set_defaults(func=run)


def run(args) -> int:
    from explorer.history import compare_models
    from explorer.models import ModelRef

    names = list(args.models) + [ModelRef.arch(spec).key for spec in args.arch]
    table = compare_models(names, receptive=not args.no_rf)
    if args.csv:
        print_table(table, csv=True)
        return 0
    shown = table.rename(columns={"params_m": "params (M)", "gflops": "G mult-adds", "weight_layers": "weight layers",
                                  "receptive_field": "receptive field (px)", "size_mb": "size (MB)",
                                  "top1": "top-1 (%)", "top5": "top-5 (%)"})
    for column in shown.columns:
        if shown[column].dtype.kind == "f":  # 4 significant digits: 0.0004 M params stays readable
            shown[column] = shown[column].map(lambda v: "" if v != v else f"{v:.4g}")
    print_table(shown, csv=False)
    print("\nmult-adds at each model's input shape (conv + FC layers); parameters used at inference; "
          "accuracy: torchvision's ImageNet-1K metadata for its pretrained weights (empty: none).")
    return 0
