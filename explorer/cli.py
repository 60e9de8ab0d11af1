"""``python -m explorer COMMAND ...``: every module in ``explorer/commands`` adds one sub-command."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import explorer.commands as commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer", description="CNN Architecture Explorer command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue  # common.py holds the arguments the sub-commands share
        module = importlib.import_module(f"explorer.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        # Library errors carry readable messages; show them without a traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2
