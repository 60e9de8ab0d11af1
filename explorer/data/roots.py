"""Which server folders a student may type in the app (the Training lab's "folder on the server").

A path typed in a browser is a path on the server: without a bound, ``/etc`` listed server files as
classes, and the uploads folder listed every other student's photos. The operator names the folders that
may be read in ``EXPLORER_DATA_ROOTS`` (separated by ``os.pathsep``, ``:`` on Linux); with none, typed
folders are refused. Refusals never say what a folder holds, or whether it exists outside the roots.
"""
from __future__ import annotations

import os
from pathlib import Path

from explorer.data.bundle import data_root

DATA_ROOTS_ENV = "EXPLORER_DATA_ROOTS"


class FolderNotAllowedError(ValueError):
    """A typed folder outside the operator's allowed roots (or typed folders switched off)."""


def allowed_data_roots() -> list[Path]:
    """The resolved folders of ``EXPLORER_DATA_ROOTS`` (empty: typed folders are switched off)."""
    text = os.environ.get(DATA_ROOTS_ENV, "")
    return [Path(part).expanduser().resolve() for part in text.split(os.pathsep) if part.strip()]


def confine_data_folder(text: str, roots: list[Path] | None = None) -> Path:
    """The folder ``text`` names, resolved (links followed), if it lies inside an allowed root.

    Raises :class:`FolderNotAllowedError` when typed folders are off, when the folder is outside every root
    or inside the app's own uploads (other students' photos), and ``ValueError`` when an allowed path is
    not a folder. Nothing is listed in the messages.
    """
    roots = allowed_data_roots() if roots is None else [Path(r).resolve() for r in roots]
    if not roots:
        raise FolderNotAllowedError(f"typed folders are switched off on this server (the operator can allow "
                                    f"some with {DATA_ROOTS_ENV}); upload a zip instead")
    try:
        path = Path(str(text).strip()).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a NUL byte...
        raise FolderNotAllowedError("this path cannot be used") from exc
    uploads = (data_root() / "uploads").resolve()
    inside = any(path == root or path.is_relative_to(root) for root in roots)
    if not inside or path == uploads or path.is_relative_to(uploads):
        raise FolderNotAllowedError("this folder is outside the folders this server allows for training")
    try:
        if not path.is_dir():
            raise ValueError(f"no folder at {text}")
    except OSError as exc:
        raise ValueError(f"the folder {text} cannot be read") from exc
    return path
