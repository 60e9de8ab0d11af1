"""SVG and PNG files of a diagram, laid out by a Graphviz program on this machine.

The page needs none of this (the browser lays DOT out); a file download does. Two programs work:
``graphviz-pure`` (pip package of the same name: one static binary, same output everywhere) and Graphviz's
own ``dot`` (``apt-get install graphviz``). Without either, :func:`render` raises :class:`LayoutEngineMissing`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ENGINES = ("graphviz-pure", "dot")
FORMATS = ("svg", "png")
MAX_PNG_SIDE_PX = 16000  # a deep network's full graph is very tall; scale it down past this
RENDER_TIMEOUT_S = 60.0


class LayoutEngineMissing(RuntimeError):
    """Neither ``graphviz-pure`` nor Graphviz's ``dot`` was found."""


def layout_engine() -> str | None:
    """Path of the first layout program found (on PATH, or beside this Python, as in an unactivated venv)."""
    here = Path(sys.executable).parent
    for name in ENGINES:
        found = shutil.which(name)
        if found:
            return found
        beside = here / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
    return None


def render(dot: str, fmt: str = "svg", *, dpi: int = 96, engine: str | None = None,
           timeout: float = RENDER_TIMEOUT_S) -> bytes:
    """Lay ``dot`` out and return the SVG or PNG bytes; PNGs larger than ``MAX_PNG_SIDE_PX`` are scaled down."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    program = engine or layout_engine()
    if program is None:
        raise LayoutEngineMissing(
            "SVG/PNG export needs a Graphviz layout program: `pip install graphviz-pure` (no system package "
            "needed) or `apt-get install graphviz`. The diagram itself shows without one.")
    command = [program, f"-T{fmt}"]
    if fmt == "png":
        side_in = MAX_PNG_SIDE_PX / dpi
        command += [f"-Gdpi={dpi}", f"-Gsize={side_in:g},{side_in:g}"]
    try:
        done = subprocess.run(command, input=dot.encode("utf-8"), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{Path(program).name} took more than {timeout:g} s to lay the diagram out") from None
    if done.returncode != 0 or not done.stdout:
        # Graphviz prints warnings (font metrics) on success too: only a failure shows stderr.
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{Path(program).name} failed: {message[0]}")
    return done.stdout
