"""``models``: one registered model name per line."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list every registered model")
    parser.set_defaults(func=run)


def run(args) -> int:
    from explorer.models import list_models

    print("\n".join(list_models()))
    return 0
