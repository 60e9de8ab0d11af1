"""Class sessions: a lecturer publishes the view they show; students who joined with the class code follow it.

The shared state is small (the URL state of one view: page and query parameters) and lives in this server
process, in a thread-safe store. With several replicas behind a load balancer a student's session may run
on another replica than the lecturer's: when a shared folder is configured (``$EXPLORER_SHARED_DIR``, or
the parent of ``$EXPLORER_RUNS_DIR``) each class is also one small JSON file ``classes/<CODE>.json`` there,
written atomically (temporary file, then ``os.replace``), and every replica reads it.

Only the holder of the class's secret token (kept in the lecturer's session, never shown) can publish or
end the class; the store keeps only the token's SHA-256. A class expires after ``idle_seconds`` without a
publish (three hours by default) or when the lecturer ends it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

SHARED_DIR_ENV = "EXPLORER_SHARED_DIR"
SHARED_SUBDIR = ".shared"  # the default shared folder, inside the runs folder that replicas share
RUNS_DIR_ENV = "EXPLORER_RUNS_DIR"  # explorer.models.runfolder.RUNS_ENV (core cannot import models)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a projector
CODE_LENGTH = 4
CODE_RE = re.compile(r"[A-Z0-9]{4}")
IDLE_SECONDS = 3 * 3600
# The lecturer's tab says it is still there once a minute (ui.links): a class whose lecturer left (a reload, a closed
# tab, a replica gone) ends this long after the last sign, instead of staying frozen for hours under its followers.
LECTURER_HEARTBEAT_SECONDS = 60
LECTURER_GONE_SECONDS = 300
MAX_STATE_BYTES = 4096  # one view's URL state is a few hundred bytes
MAX_CLASSES = 500  # per process: a runaway client cannot fill the memory


class ClassroomError(Exception):
    """An unknown or expired class, a wrong token, or a state too big to share."""


@dataclass(frozen=True)
class ClassView:
    """What followers read: the lecturer's view, a version that grows with every publish, and when."""

    code: str
    state: dict[str, Any]
    version: int
    updated: float


def shared_dir_from_env() -> Path | None:
    """``$EXPLORER_SHARED_DIR``, else ``.shared`` inside ``$EXPLORER_RUNS_DIR``, else None (this process only).

    Inside the runs folder, not beside it: a deployment shares the runs folder between its replicas (a volume at
    ``/data/runs`` in deploy/), not its parent, which is each container's own (class files written there were not
    seen by students whose browsers reached another replica). The run list skips it (no checkpoint in it)."""
    text = os.environ.get(SHARED_DIR_ENV, "").strip()
    if text:
        return Path(text)
    runs = os.environ.get(RUNS_DIR_ENV, "").strip()
    return Path(runs).resolve() / SHARED_SUBDIR if runs else None


def normalise_code(text: str) -> str | None:
    """The class code typed by a student (any case, spaces allowed), or None when it cannot be one."""
    code = "".join(str(text or "").split()).upper()[:16]
    return code if CODE_RE.fullmatch(code) else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ClassroomStore:
    """Classes by code. All methods are thread-safe; ``clock`` is injectable for tests."""

    def __init__(self, shared_dir: Path | None = None, idle_seconds: float = IDLE_SECONDS,
                 clock: Callable[[], float] = time.time, lecturer_gone_seconds: float = LECTURER_GONE_SECONDS) -> None:
        self.folder = Path(shared_dir) / "classes" if shared_dir else None
        self.idle_seconds = idle_seconds
        self.lecturer_gone_seconds = lecturer_gone_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._classes: dict[str, dict[str, Any]] = {}
        # code -> (the file's stat signature, its record): a follower's poll reads the file only after a publish
        self._file_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}

    # ---------------------------------------------------------------------------------- records
    def _path(self, code: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{code}.json"

    def _load(self, code: str) -> dict[str, Any] | None:
        """The record of ``code`` (from the shared file when there is one: another replica may have written it)."""
        if self.folder is None:
            return self._classes.get(code)
        path = self._path(code)
        try:
            info = os.stat(path)
        except OSError:
            self._file_cache.pop(code, None)
            return None
        # os.replace gives every publish a new inode: (inode, mtime, size) changes even on coarse-mtime disks
        signature = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._file_cache.get(code)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not (isinstance(record, dict) and "token_sha256" in record):
            return None
        if len(self._file_cache) >= MAX_CLASSES:
            self._file_cache.clear()
        self._file_cache[code] = (signature, record)
        return record

    def _save(self, code: str, record: dict[str, Any]) -> None:
        self._classes[code] = record
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{code}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(record, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._path(code))  # readers see the old or the new file, never half of one
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _drop(self, code: str) -> None:
        self._classes.pop(code, None)
        self._file_cache.pop(code, None)
        if self.folder is not None:
            with contextlib.suppress(OSError):
                self._path(code).unlink()

    def _expired(self, record: dict[str, Any]) -> bool:
        now = self.clock()
        if now - float(record.get("updated", 0)) > self.idle_seconds:
            return True
        seen = float(record.get("lecturer_seen", record.get("updated", 0)))
        return now - seen > self.lecturer_gone_seconds

    def _live(self, code: str) -> dict[str, Any] | None:
        record = self._load(code)
        if record is not None and self._expired(record):
            self._drop(code)
            return None
        return record

    def _sweep(self) -> None:
        for code in [c for c, r in self._classes.items() if self._expired(r)]:
            self._drop(code)

    # ------------------------------------------------------------------------------------- API
    def start(self, state: dict[str, Any] | None = None) -> tuple[str, str]:
        """A new class: (code shown on the projector, secret token for the lecturer's session)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._sweep()
            if len(self._classes) >= MAX_CLASSES:
                raise ClassroomError("too many classes on this server")
            for _ in range(200):
                code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
                if self._live(code) is None:
                    break
            else:  # pragma: no cover - 32^4 codes
                raise ClassroomError("no free class code")
            now = self.clock()
            self._save(code, {"token_sha256": _token_hash(token), "state": dict(state or {}), "version": 0,
                              "updated": now, "lecturer_seen": now})
        return code, token

    def publish(self, code: str, token: str, state: dict[str, Any]) -> int:
        """Replace the class's view (lecturer only); returns the new version."""
        encoded = json.dumps(state)
        if len(encoded.encode()) > MAX_STATE_BYTES:
            raise ClassroomError("the view is too big to share")
        with self._lock:
            record = self._owned(code, token)
            now = self.clock()
            record = {**record, "state": json.loads(encoded), "version": int(record["version"]) + 1,
                      "updated": now, "lecturer_seen": now}
            self._save(code, record)
            return record["version"]

    def heartbeat(self, code: str, token: str) -> None:
        """The lecturer's tab is still there (lecturer only): keeps a class without changes alive. Raises
        ``ClassroomError`` when the class has ended (elsewhere, or because the lecturer was gone too long)."""
        with self._lock:
            record = self._owned(code, token)
            self._save(code, {**record, "lecturer_seen": self.clock()})

    def read(self, code: str) -> ClassView | None:
        """The class's current view, or None when the class is unknown, ended or expired."""
        code = normalise_code(code) or ""
        if not code:
            return None
        with self._lock:
            record = self._live(code)
        if record is None:
            return None
        return ClassView(code, dict(record.get("state") or {}), int(record.get("version", 0)),
                         float(record.get("updated", 0)))

    def version(self, code: str) -> int | None:
        """The class's current version, or None when it is unknown, ended or expired: what a follower polls.

        Costs a dict lookup (one process) or one ``os.stat`` (a shared folder); the file is parsed only
        after it changed, so 30 students polling an unchanged class cost next to nothing.
        """
        code = normalise_code(code) or ""
        if not code:
            return None
        with self._lock:
            record = self._live(code)
        return None if record is None else int(record.get("version", 0))

    def end(self, code: str, token: str) -> None:
        """End the class (lecturer only): followers find it gone on their next poll."""
        with self._lock:
            self._owned(code, token)
            self._drop(code)

    def is_owner(self, code: str, token: str) -> bool:
        with self._lock:
            try:
                self._owned(code, token)
            except ClassroomError:
                return False
        return True

    def _owned(self, code: str, token: str) -> dict[str, Any]:
        record = self._live(code)
        if record is None:
            raise ClassroomError(f"class {code} has ended")
        if not secrets.compare_digest(record["token_sha256"], _token_hash(str(token))):
            raise ClassroomError("only the lecturer's session can change this class")
        return record
