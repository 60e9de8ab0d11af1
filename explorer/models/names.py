"""The registry's names without building the registry: what the CLI needs to answer in well under a second.

Filling the registry imports torchvision (about 2 s and 400 MB before anything is computed). The names of the
project's own networks and of torchvision's CNNs only change with the code and with torchvision's version, so
``model_names.json`` beside this module keeps them, with the torchvision version they were read from.
:func:`quick_model_names` gives that list only when it is exactly what :func:`explorer.models.list_models`
would give: the same torchvision version, no ``$EXPLORER_MODELS`` files, no timm, no packages with
``explorer.models`` entry points. Otherwise it returns ``None`` and the caller builds the registry.
``python scripts/model_index.py`` rewrites the file; ``tests/test_cli.py`` checks it against the live registry.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

INDEX_FILE = Path(__file__).with_name("model_names.json")
# Kept equal to the names in explorer.models.user_models / timm_models (imported there: this module stays light).
_USER_MODELS_ENV = "EXPLORER_MODELS"
_ENTRY_POINT_GROUP = "explorer.models"


def torchvision_version() -> str | None:
    try:
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _has_model_entry_points() -> bool:
    """Installed packages' ``explorer.models`` entry points (scanning every package's metadata costs ~2 ms, and
    the installed packages do not change under a running process)."""
    try:
        return bool(list(importlib.metadata.entry_points(group=_ENTRY_POINT_GROUP)))
    except Exception:  # unreadable metadata: let the registry itself report it
        return True


def registry_is_indexed() -> bool:
    """Whether the registry holds only the indexed networks: no ``$EXPLORER_MODELS`` files, no timm, no packages
    with ``explorer.models`` entry points (the torchvision version is :func:`quick_model_names`'s other check)."""
    if os.environ.get(_USER_MODELS_ENV, "").strip():
        return False
    if importlib.util.find_spec("timm") is not None:
        return False
    return not _has_model_entry_points()


def unknown_model(name: str) -> KeyError:
    """The one error for a name the registry does not hold (raised by the registry and by the CLI's quick check)."""
    return KeyError(f"unknown model {name!r}; `python -m explorer models` lists them")


def read_index(path: Path = INDEX_FILE) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("names"), list) else None


def quick_model_names(path: Path = INDEX_FILE) -> list[str] | None:
    """Every registered name, in :func:`list_models`'s order, or None when only the registry can say."""
    index = read_index(path)
    if index is None or index.get("torchvision") != torchvision_version() or not registry_is_indexed():
        return None
    return [str(name) for name in index["names"]]


def write_index(names: list[str], path: Path = INDEX_FILE) -> dict:
    """Record ``names`` (the live registry's, from :func:`list_models`) with the installed torchvision version."""
    data = {"torchvision": torchvision_version(), "names": list(names)}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data
