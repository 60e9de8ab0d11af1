"""``weights``: prepare an offline classroom server: fetch torchvision's ImageNet weights ahead of class, list them.

    python -m explorer weights fetch resnet18 vgg16      # into $TORCH_HOME/hub/checkpoints (where there is internet)
    python -m explorer weights list                      # built-in trained weights, and which ImageNet ones are cached
    python -m explorer weights list --cached

Copy the cache folder (``weights list`` prints it) to the server, or set ``TORCH_HOME`` there: a model whose file
is in the cache loads with no network at all.
"""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "weights", help="fetch ImageNet weights into the torch cache ahead of class; list built-in and cached weights",
        description="Prepare an offline server: `weights fetch MODEL...` downloads torchvision's ImageNet weights "
                    "into torch's cache ($TORCH_HOME/hub/checkpoints); `weights list` shows the built-in trained "
                    "weights and which ImageNet weights are cached, with their sizes.")
    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    sub.required = True
    fetch = sub.add_parser("fetch", help="download the ImageNet weights of MODEL... into the torch cache")
    # dest "model_names": clearer beside the top-level "--models" (files of networks, dest "model_files").
    fetch.add_argument("model_names", nargs="+", metavar="MODEL", help="registry names, e.g. resnet18 vgg16")
    fetch.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the server (default 20)")
    fetch.set_defaults(func=run_fetch)
    listing = sub.add_parser("list", help="built-in trained weights, and which ImageNet weights are cached")
    listing.add_argument("--cached", action="store_true", help="only the ImageNet weights already cached")
    listing.set_defaults(func=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    from explorer.models import fetch_model_weights, hub_weights

    failed = 0
    for name in args.model_names:
        try:
            hub_weights(name)  # unknown model or no ImageNet weights: a clear message before any download
            path, downloaded = fetch_model_weights(name, timeout=args.timeout)
        except (ConnectionError, ValueError, KeyError, OSError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            print(f"error: {message}", file=sys.stderr)
            failed += 1
            if isinstance(exc, ConnectionError):
                break  # offline: every other model would fail the same way
            continue
        size = path.stat().st_size / 2**20
        print(f"{name}: {'downloaded' if downloaded else 'already cached'} {path} ({size:.1f} MB)")
    return 1 if failed else 0


def run_list(args: argparse.Namespace) -> int:
    from explorer.models import builtin_weight_names, builtin_weights, hub_checkpoints_dir, hub_weights_table

    if not args.cached:
        print("built-in trained weights (in the repository, no download):")
        for name in builtin_weight_names():
            info = builtin_weights(name)
            print(f"  {name:<12} {info.dataset:<7} test accuracy {100 * info.test_accuracy:5.1f} %  "
                  f"{info.path.stat().st_size / 1024:6.0f} KB  classes: {', '.join(info.classes)}")
    rows = hub_weights_table()
    cached = [row for row in rows if row.cached]
    print(f"ImageNet weights in {hub_checkpoints_dir()}: {len(cached)} of {len(rows)} models cached "
          f"({sum(row.size_bytes for row in cached) / 2**20:.1f} MB)")
    for row in rows:
        if row.cached:
            print(f"  {row.model:<24} cached   {row.size_bytes / 2**20:8.1f} MB  {row.path.name}")
        elif not args.cached:
            print(f"  {row.model:<24} missing             {row.path.name}")
    return 0
