"""One memory budget for the whole server: heavy passes reserve their estimate and wait their turn.

A budget per request alone lets concurrency multiply it (four students' 1 GB Grad-CAMs at once are 4 GB).
:class:`MemoryGate` is a byte semaphore: a pass reserves its estimated bytes before it starts and gives them
back when it ends; while the reservations of others leave too little, it waits in arrival order (a big request
is not overtaken forever by small ones), up to a bounded time, then gives a clear error. A request bigger than
the whole budget is refused at once. :func:`server_gate` is the process-wide gate, sized by
``EXPLORER_SERVER_MB`` (default :data:`DEFAULT_SERVER_MB`) and waiting at most ``EXPLORER_MEMORY_WAIT_S``.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

SERVER_BUDGET_ENV = "EXPLORER_SERVER_MB"
# Heavy passes of all sessions together. With the default per-request budget (1 GB) three run at once; with
# the process itself (~0.8 GB of libraries), efficientnet_b7 (0.26 GB) and four cached shared passes that
# keeps four heavy sessions under 6 GB (docs/SECURITY.md, scripts/load_hostile.py).
DEFAULT_SERVER_MB = 3072
WAIT_ENV = "EXPLORER_MEMORY_WAIT_S"
DEFAULT_WAIT_S = 300.0


class ServerMemoryError(RuntimeError):
    """A pass the server's memory budget cannot take: ``needed`` and ``budget`` in bytes; ``waited`` seconds
    (0 when it can never fit: bigger than the whole budget)."""

    def __init__(self, message: str, needed: int, budget: int, waited: float = 0.0) -> None:
        super().__init__(message)
        self.needed = needed
        self.budget = budget
        self.waited = waited

    @property
    def never_fits(self) -> bool:
        return self.needed > self.budget


def env_positive_number(name: str, default: float) -> float:
    """The environment variable ``name`` as a positive number, ``default`` when unset; a clear error otherwise."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {text!r}")
    return value


class MemoryGate:
    """Reservations of bytes whose total never exceeds ``budget_bytes``; waiters are served first come first."""

    def __init__(self, budget_bytes: int, wait_s: float = DEFAULT_WAIT_S) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self.wait_s = float(wait_s)
        self.reserved = 0
        self.peak_reserved = 0
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._queue: list[int] = []  # tickets of waiting reservations, in arrival order
        self._held: dict[int, int] = {}  # thread id -> bytes it holds (a nested reservation never waits)

    @contextmanager
    def reserve(self, nbytes: int, timeout: float | None = None) -> Iterator[int]:
        """Hold ``nbytes`` of the budget for the ``with`` block (yields the bytes held).

        Raises :class:`ServerMemoryError` at once when ``nbytes`` exceeds the whole budget, or after waiting
        ``timeout`` seconds (default ``wait_s``) for others to give enough back. A thread that already holds a
        reservation does not wait for a nested one (it would wait for itself).
        """
        nbytes = max(int(nbytes), 0)
        if nbytes > self.budget_bytes:
            raise ServerMemoryError("this request needs more memory than the whole server may use",
                                    nbytes, self.budget_bytes)
        me = threading.get_ident()
        limit = self.wait_s if timeout is None else float(timeout)
        started = time.monotonic()
        with self._cond:
            if self._held.get(me):
                self._take(me, nbytes)
            else:
                ticket = next(self._tickets)
                self._queue.append(ticket)
                try:
                    while not (self._queue[0] == ticket and self.reserved + nbytes <= self.budget_bytes):
                        left = limit - (time.monotonic() - started)
                        if left <= 0:
                            raise ServerMemoryError("the server is busy with other heavy requests",
                                                    nbytes, self.budget_bytes, time.monotonic() - started)
                        self._cond.wait(left)
                    self._take(me, nbytes)
                finally:
                    self._queue.remove(ticket)
                    self._cond.notify_all()  # the next in line may fit now
        try:
            yield nbytes
        finally:
            with self._cond:
                self.reserved -= nbytes
                held = self._held.get(me, 0) - nbytes
                if held > 0:
                    self._held[me] = held
                else:
                    self._held.pop(me, None)
                self._cond.notify_all()

    def _take(self, me: int, nbytes: int) -> None:
        self.reserved += nbytes
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self._held[me] = self._held.get(me, 0) + nbytes


_server_gate: MemoryGate | None = None
_server_lock = threading.Lock()


def server_budget_bytes() -> int:
    """``EXPLORER_SERVER_MB`` (megabytes) if set, else :data:`DEFAULT_SERVER_MB`."""
    return int(env_positive_number(SERVER_BUDGET_ENV, DEFAULT_SERVER_MB) * 2**20)


def server_gate() -> MemoryGate:
    """The process-wide gate (created on first use from ``EXPLORER_SERVER_MB`` and ``EXPLORER_MEMORY_WAIT_S``;
    an operator who changes them restarts the server)."""
    global _server_gate
    with _server_lock:
        if _server_gate is None:
            _server_gate = MemoryGate(server_budget_bytes(), env_positive_number(WAIT_ENV, DEFAULT_WAIT_S))
        return _server_gate
