"""Runs that belong to one browser session, and sharing one with the class.

Runs trained in the app are private by default: they are written under ``<runs root>/.sessions/<session>/``
and only that session lists them (a run named "my-private-photos" showed its misclassified photos in
every student's sidebar). The operator's runs, straight in the runs root (the CLI's, a configured folder),
are visible to everyone, and :func:`share_run` copies a session's run there when its owner chooses to.
The ``.sessions`` folder has no ``config.json``, so :func:`~explorer.models.runfolder.list_runs` of the root
never lists it.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from explorer.models.runfolder import RunInfo, check_run_name, list_runs, runs_root

SESSIONS_DIR = ".sessions"
_SESSION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def session_runs_dir(session: str, root: str | Path | None = None) -> Path:
    """Where one session's runs are written (created on first use by the training worker)."""
    if not _SESSION_RE.fullmatch(str(session)):
        raise ValueError(f"not a session id: {session!r}")
    return (runs_root() if root is None else Path(root)) / SESSIONS_DIR / session


def visible_runs(session: str | None, root: str | Path | None = None) -> list[RunInfo]:
    """The operator's runs (shared with everyone), then this session's own runs."""
    shared = list_runs(runs_root() if root is None else root)
    own = list_runs(session_runs_dir(session, root)) if session else []
    return shared + own


def is_session_run(run_dir: str | Path, session: str, root: str | Path | None = None) -> bool:
    """True when ``run_dir`` is one of this session's private runs."""
    mine = session_runs_dir(session, root).resolve()
    return Path(run_dir).resolve().parent == mine


def share_run(run_dir: str | Path, root: str | Path | None = None) -> Path:
    """Copy a session's run into the shared runs root (a fresh name if taken) and return the copy's path.

    Copied into a temporary folder beside the target, then renamed: other sessions never list half a run.
    """
    source = Path(run_dir)
    check_run_name(source.name)
    target_root = runs_root() if root is None else Path(root)
    target_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".share-{source.name}-", dir=target_root))
    try:
        copy = staging / source.name
        shutil.copytree(source, copy)
        name, k = source.name, 2
        while True:
            target = target_root / name
            try:
                copy.rename(target)  # fails if the name is taken (a non-empty folder)
                return target
            except OSError:
                if not target.exists():
                    raise
                name, k = f"{source.name}-{k}", k + 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)
