"""Your own networks in the registry: Python files named by the operator, and installed packages.

Whoever starts the server (or the CLI) names Python files in ``EXPLORER_MODELS`` (``path1.py:path2.py``; the app's
``--models`` and the CLI's ``--models`` options extend it). Those files are *imported*: they run with the
server's rights, so this is the operator's switch; nothing a browser sends is ever imported. In such a file:

- every ``nn.Module`` subclass defined there whose constructor needs no arguments is registered under its
  class name as written (``TinyRes``); a class attribute ``input_shape = (C, H, W)`` gives its input
  (default 3×224×224) and ``class_names`` its labels; names starting with ``_`` are left alone;
- builders decorated with ``explorer.register_model(name, input_shape=..., family=...)`` are registered under
  their names.

Installed packages register networks through the ``explorer.models`` entry-point group (``pyproject.toml``:
``[project.entry-points."explorer.models"] course = "course_nets.models"``): the entry point names a module
(read like a file above) or a callable (called; the ``nn.Module`` classes it returns are registered).

A file or entry point that fails is reported with its own traceback on stderr and as one
:class:`UserModelProblem` (the app shows its ``message``); every other model keeps working.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import torch.nn as nn

from explorer.models.heads import head_out_features, replace_head
from explorer.models.registry import ModelEntry, register_model, registered

USER_MODELS_ENV = "EXPLORER_MODELS"
ENTRY_POINT_GROUP = "explorer.models"
DEFAULT_INPUT_SHAPE = (3, 224, 224)
USER_FAMILY = "Your models"
_MODULE_PREFIX = "explorer_user_models"


@dataclass(frozen=True)
class UserModelProblem:
    """A file or entry point that could not be read: ``message`` is one line, ``details`` the traceback."""

    source: str  # the file's path, or "entry point NAME"
    message: str
    details: str = ""


_lock = threading.RLock()
_file_names: dict[str, list[str]] = {}  # resolved path -> the model names it registered
_problems: dict[str, UserModelProblem] = {}
_last_env: str | None = None
_entry_points_read = False


def model_paths(value: str | None = None) -> list[Path]:
    """The files named in ``value`` (default: ``$EXPLORER_MODELS``), split on ``os.pathsep``, in order."""
    text = os.environ.get(USER_MODELS_ENV, "") if value is None else value
    return [Path(part).expanduser() for part in text.split(os.pathsep) if part.strip()]


def add_model_paths(paths: Iterable[str | os.PathLike]) -> str:
    """Append ``paths`` to ``$EXPLORER_MODELS`` (what ``--models`` does), so every process started from
    here (training workers, the app's reruns) reads the same files. Returns the new value."""
    current = [str(p) for p in model_paths()]
    for path in paths:
        text = str(Path(path).expanduser().resolve())
        if text not in current and str(path) not in current:
            current.append(text)
    value = os.pathsep.join(current)
    os.environ[USER_MODELS_ENV] = value
    return value


def models_from_argv(argv: list[str]) -> list[str]:
    """The values of every ``--models PATH`` / ``--models=PATH`` in ``argv`` (``streamlit run app.py --
    --models nets.py``); each value may itself list several files separated by ``os.pathsep``."""
    found: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--models" and i + 1 < len(argv):
            found.extend(str(p) for p in model_paths(argv[i + 1]))
        elif arg.startswith("--models="):
            found.extend(str(p) for p in model_paths(arg.split("=", 1)[1]))
    return found


def load_user_models() -> None:
    """Bring the registry in line with ``$EXPLORER_MODELS`` and the installed entry points.

    Cheap when nothing changed (one string comparison): the catalog calls it on every look-up, so a
    process that sets the variable late (a test, ``--models``) still sees its files. Files no longer
    named are unregistered; entry points are read once per process.
    """
    global _last_env, _entry_points_read
    env = os.environ.get(USER_MODELS_ENV, "")
    if env == _last_env and _entry_points_read:
        return
    with _lock:
        if env != _last_env:
            wanted = [str(p.resolve()) for p in model_paths(env)]
            for path in [p for p in _file_names if p not in wanted]:
                _forget(path)
            for path in [p for p in list(_problems) if p not in wanted and not p.startswith("entry point ")]:
                _problems.pop(path, None)
            for path in wanted:
                if path not in _file_names and path not in _problems:
                    load_model_file(path)
            _last_env = env
        if not _entry_points_read:
            _entry_points_read = True
            load_entry_points()


def user_model_problems() -> list[UserModelProblem]:
    """Files and entry points that failed, in the order they were read."""
    load_user_models()
    return list(_problems.values())


def user_model_names() -> list[str]:
    """Names registered from files and entry points."""
    load_user_models()
    return sorted(name for name, entry in registered().items() if entry.source == "user")


# --- files ---------------------------------------------------------------------------------------------------

def load_model_file(path: str | os.PathLike) -> list[str]:
    """Import one operator-named Python file and register its networks; returns their names.

    Failures are printed with their traceback on stderr and kept as a :class:`UserModelProblem`.
    """
    resolved = str(Path(path).expanduser().resolve())
    with _lock:
        _forget(resolved)
        _problems.pop(resolved, None)
        before = set(registered())
        module_name = f"{_MODULE_PREFIX}.{Path(resolved).stem}_{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
        try:
            if Path(resolved).is_dir():
                raise IsADirectoryError(f"{resolved} is a folder: name the Python file (.py) that defines the models")
            if not Path(resolved).is_file():
                raise FileNotFoundError(f"no such file: {resolved}")
            spec = importlib.util.spec_from_file_location(module_name, resolved)
            if spec is None or spec.loader is None:
                raise ImportError(f"{resolved} is not a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # dataclasses and pickling look classes up here
            spec.loader.exec_module(module)
            names = _adopt(module, before, origin=resolved)
        except BaseException as exc:  # noqa: BLE001 - a user's file may raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            for name in set(registered()) - before:
                registered().pop(name, None)
            sys.modules.pop(module_name, None)
            _report(resolved, f"{Path(resolved).name}: {type(exc).__name__}: {_first_line(exc)}", exc)
            return []
        _file_names[resolved] = names
        return names


def _forget(path: str) -> None:
    for name in _file_names.pop(path, []):
        entry = registered().get(name)
        if entry is not None and entry.extra.get("origin") == path:
            registered().pop(name, None)


# --- entry points --------------------------------------------------------------------------------------------

def load_entry_points() -> list[str]:
    """Load every ``explorer.models`` entry point of the installed packages; returns the names registered.

    Earlier entry-point problems are forgotten first (each call reports what fails now)."""
    with _lock:
        for source in [s for s in _problems if s.startswith("entry point")]:
            _problems.pop(source)
    try:
        points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # a broken installation's metadata must not take the registry down
        _report("entry points", f"reading the {ENTRY_POINT_GROUP!r} entry points failed: {_first_line(exc)}", exc)
        return []
    names: list[str] = []
    for point in points:
        source = f"entry point {point.name}"
        with _lock:
            before = set(registered())
            try:
                obj = point.load()
                if isinstance(obj, ModuleType):
                    found = _adopt(obj, before, origin=source)
                else:
                    found = _adopt_callable(obj, before, origin=source)
            except BaseException as exc:  # noqa: BLE001 - as for files
                if isinstance(exc, KeyboardInterrupt):
                    raise
                for name in set(registered()) - before:
                    registered().pop(name, None)
                _report(source, f"{source} ({point.value}): {type(exc).__name__}: {_first_line(exc)}", exc)
                continue
        names.extend(found)
    return names


def _adopt_callable(obj: Any, before: set[str], origin: str) -> list[str]:
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        classes: list[Any] = [obj]
    elif callable(obj):
        returned = obj()
        if returned is None:
            classes = []
        elif isinstance(returned, type):
            classes = [returned]
        else:
            classes = list(returned)
    else:
        raise TypeError(f"{obj!r} is neither a module, an nn.Module class nor a callable")
    names = _mark_decorated(before, origin)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"{cls!r} is not an nn.Module class")
        names.append(register_module_class(cls, origin=origin))
    return names


# --- registering ---------------------------------------------------------------------------------------------

def _adopt(module: ModuleType, before: set[str], origin: str) -> list[str]:
    """Names registered while ``module`` ran (decorators), then its no-argument ``nn.Module`` classes."""
    names = _mark_decorated(before, origin)
    for attr, value in list(vars(module).items()):
        if (isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == module.__name__
                and not attr.startswith("_") and not inspect.isabstract(value) and needs_no_arguments(value)
                and value.__name__ not in names):
            names.append(register_module_class(value, origin=origin))
    return names


def _mark_decorated(before: set[str], origin: str) -> list[str]:
    """Entries that ``register_model`` added since ``before``: marked as the user's, builders made to accept
    ``num_classes`` (the training lab and checkpoints of another head size ask for it)."""
    names = [name for name in registered() if name not in before]
    for name in names:
        entry = registered()[name]
        registered()[name] = dataclasses.replace(
            entry, source="user", family=entry.family or USER_FAMILY, builder=_accepting_num_classes(entry.builder),
            extra={**entry.extra, "origin": origin})
    return names


def needs_no_arguments(cls: type) -> bool:
    """True when ``cls()`` can be called: every constructor parameter has a default."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    return all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in signature.parameters.values())


def register_module_class(cls: type[nn.Module], origin: str = "") -> str:
    """Register ``cls`` under its class name (its ``input_shape`` and ``class_names`` attributes, if any)."""
    name = cls.__name__
    if name in registered():
        raise ValueError(f"a model named {name!r} is already registered: rename the class")
    shape = tuple(int(d) for d in getattr(cls, "input_shape", DEFAULT_INPUT_SHAPE))
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name}.input_shape must be (C, H, W), got {shape}")
    class_names = getattr(cls, "class_names", None)
    categories = tuple(str(c) for c in class_names) if class_names else None
    doc = (inspect.getdoc(cls) or "").strip().splitlines()
    register_model(name, input_shape=shape, family=USER_FAMILY, description=doc[0] if doc else f"{name} ({origin})",
                   num_classes=len(categories) if categories else None, categories=categories,
                   source="user")(_accepting_num_classes(cls))
    entry = registered()[name]
    registered()[name] = dataclasses.replace(entry, extra={**entry.extra, "origin": origin})
    return name


def _accepting_num_classes(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """``builder`` called as ``builder(num_classes=N)``: passed on when it takes it, else the head is resized."""
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return builder
    takes = "num_classes" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())

    def build(num_classes: int | None = None, **kwargs: Any) -> nn.Module:
        if takes:
            return builder(**kwargs) if num_classes is None else builder(num_classes=num_classes, **kwargs)
        model = builder(**kwargs)
        if num_classes is not None and head_out_features(model) != num_classes:
            replace_head(model, num_classes)
        return model

    build.__name__ = getattr(builder, "__name__", "build")
    build.__doc__ = getattr(builder, "__doc__", None)
    return build


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _report(source: str, message: str, exc: BaseException) -> None:
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    _problems[source] = UserModelProblem(source, message, details)
    print(f"explorer: could not load models from {source}\n{details}", file=sys.stderr, flush=True)


def registered_from(origin: str) -> list[ModelEntry]:
    """The entries a file (its resolved path) or an entry point (``entry point NAME``) registered."""
    return [e for e in registered().values() if e.extra.get("origin") == origin]
