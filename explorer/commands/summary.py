"""``summary MODEL [--input CxHxW] [--csv]``: the layer shape table."""
from __future__ import annotations

from explorer.commands.common import add_model_args, load_from_args, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("summary", help="layer-by-layer shapes, parameters and mult-adds")
    add_model_args(parser)
    parser.add_argument("--csv", action="store_true", help="write CSV to stdout")
    parser.set_defaults(func=run)


def run(args) -> int:
    from explorer.analysis import CSV_COLUMNS, layer_table, model_totals

    loaded = load_from_args(args)
    table = layer_table(loaded.model, loaded.input_shape)
    print_table(table[CSV_COLUMNS], args.csv)
    if not args.csv:
        totals = model_totals(loaded.model, table)
        print(f"\ninput {'x'.join(map(str, loaded.input_shape))} | params {totals.params:,} "
              f"(trainable {totals.trainable_params:,}) | mult-adds {totals.mult_adds:,} | "
              f"activations {totals.activation_bytes / 2**20:.1f} MB | model {totals.model_size_mb:.1f} MB | "
              f"weights: {loaded.weights_status}")
    return 0
