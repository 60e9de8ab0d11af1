"""``rf MODEL [--input CxHxW] [--csv]``: the receptive field of every layer."""
from __future__ import annotations

import sys

from explorer.commands.common import add_model_args, load_from_args, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("rf", help="receptive field size, jump and start of every layer")
    add_model_args(parser)
    parser.add_argument("--csv", action="store_true",
                        help="write CSV to stdout (layer,type,output_shape,rf_h,rf_w,jump_h,jump_w,start_h,start_w)")
    parser.set_defaults(func=run)


def _pretty(value) -> str:
    import pandas as pd

    if value is None or pd.isna(value):
        return "?"
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def run(args) -> int:
    from explorer.receptive import CSV_COLUMNS, receptive_field_table, summarize, table_to_csv

    loaded = load_from_args(args)
    table = receptive_field_table(loaded.model, loaded.input_shape)
    if args.csv:
        sys.stdout.write(table_to_csv(table))
        return 0
    view = table[CSV_COLUMNS].copy()
    for column in CSV_COLUMNS[3:]:
        view[column] = [_pretty(v) for v in view[column]]
    view["whole"] = ["yes" if w else "" for w in table["sees_whole_image"]]
    view["note"] = table["note"]
    print_table(view, csv=False)
    summary = summarize(table)
    _, h, w = loaded.input_shape
    print(f"\ninput {'x'.join(map(str, loaded.input_shape))} | weights: {loaded.weights_status}")
    if summary.last_conv:
        rh, rw = summary.last_conv_rf
        print(f"last convolution {summary.last_conv}: field {rh}x{rw} px ({rh / h:.2f}x{rw / w:.2f} of the image), "
              f"jump {_pretty(summary.last_conv_jump[0])} px, map {summary.last_conv_map[0]}x{summary.last_conv_map[1]}")
    if summary.first_whole:
        print(f"first layer whose every unit sees the whole image: {summary.first_whole}")
    unknown = int(table["unknown"].sum())
    if unknown:
        print(f"warning: {unknown} layer(s) with an unknown field (see the note column)", file=sys.stderr)
    return 0
