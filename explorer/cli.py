"""``python -m explorer COMMAND ...``: every module in ``explorer/commands`` adds one sub-command."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import explorer.commands as commands
from explorer.commands.common import check_model_name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer", description="CNN Architecture Explorer command line")
    # dest: sub-commands have arguments named "models" (compare's model names) that must not be read as files.
    parser.add_argument("--models", action="append", default=[], metavar="FILE.py", dest="model_files",
                        help="a trusted Python file whose networks join the registry (repeatable; before COMMAND; "
                             "adds to $EXPLORER_MODELS)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue  # common.py holds the arguments the sub-commands share
        module = importlib.import_module(f"explorer.commands.{info.name}")
        module.register(sub)
    return parser


def _model_file_problem(path: str) -> str:
    """Why ``--models PATH`` cannot be read (empty when it can): the path lists files like ``$EXPLORER_MODELS``."""
    from pathlib import Path

    for part in filter(None, str(path).split(os.pathsep)):
        file = Path(part).expanduser()
        if not file.is_file():
            return f"no such file: {file}" if not file.exists() else f"not a file: {file}"
        if file.suffix != ".py":
            return f"not a Python file (.py): {file}"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model_files:
        for path in args.model_files:  # a file named here must exist: one line, not the loader's traceback
            problem = _model_file_problem(path)
            if problem:
                print(f"error: --models {path}: {problem}", file=sys.stderr)
                return 2
        from explorer.models import add_model_paths  # torch: only when asked for

        add_model_paths(args.model_files)
    try:
        check_model_name(args)  # before a sub-command imports torch
        return int(args.func(args) or 0)
    except (ValueError, KeyError, RuntimeError, ArithmeticError) as exc:
        # Library errors carry readable messages; show them without a traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing file, a directory where a file is expected, a full disk...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: not enough memory for this request (use a smaller image, input or model)", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else: still one line, never a traceback for a user
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 1
