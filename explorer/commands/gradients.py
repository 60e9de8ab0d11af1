"""``gradients MODEL [--input CxHxW] [--batch N] [--seed S] [--csv]``: per-layer gradient norms (vanishing
gradients), one row per weight layer with columns ``layer,type,depth,output_grad_norm,grad_norm,weight_norm,params``
(``output_grad_norm``: ‖∂L/∂a‖ at the layer's output, what backpropagation brings it; ``grad_norm``: ‖∂L/∂W‖)."""
from __future__ import annotations

from explorer.commands.common import add_model_args, load_from_args, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gradients", help="gradient norm of every weight layer for one random batch (vanishing gradients)")
    add_model_args(parser)
    parser.add_argument("--batch", type=int, default=4, help="images in the random batch (default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batch (default: 0)")
    parser.add_argument("--csv", action="store_true", help="write CSV to stdout")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from explorer.analysis import logits_of
    from explorer.training.gradients import layer_gradient_norms, random_batch

    if args.batch < 2:
        raise ValueError("--batch must be at least 2 (BatchNorm needs more than one value per channel)")
    loaded = load_from_args(args)
    with torch.no_grad():
        classes = int(logits_of(loaded.model(torch.zeros(1, *loaded.input_shape, device=loaded.device))).shape[1])
    x, y = random_batch(loaded.input_shape, classes, batch=args.batch, seed=args.seed)
    table = layer_gradient_norms(loaded.model, x, y)
    print_table(table, args.csv)
    if not args.csv:
        ends = []
        for column, label in (("output_grad_norm", "‖∂L/∂a‖"), ("grad_norm", "‖∂L/∂W‖")):
            first, last = table[column].iloc[0], table[column].iloc[-1]
            ends.append(f"{label} first layer {first:.3g}, last layer {last:.3g} "
                        f"(ratio {first / last if last else float('inf'):.3g})")
        print(f"\n{len(table)} weight layers | input {'x'.join(map(str, loaded.input_shape))} | batch {args.batch} | "
              + " | ".join(ends))
    return 0
