"""``models``: one registered model name per line."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list every registered model")
    parser.set_defaults(func=run)


def run(args) -> int:
    from explorer.models.names import quick_model_names

    names = quick_model_names()  # the light index when it is exactly the registry's (no torch import)
    if names is None:
        from explorer.models import list_models

        names = list_models()
    print("\n".join(names))
    return 0
