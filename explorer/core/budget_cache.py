"""A least-recently-used cache bounded by bytes, not entries, safe for many threads.

The app keeps one analysis per (model, weights, input, device, image): every layer's output, 5 MB for a
small network and ~110 MB for vgg16 at 224². A class of thirty students with their own photos needs thirty of
them; a fixed entry count either thrashes (each rerun recomputes the network) or lets memory grow without
bound. This cache keeps the most recently used values while their total size fits a budget.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterator

import numpy as np

DEFAULT_MIN_MB = 512
DEFAULT_MAX_MB = 4096
BUDGET_ENV = "EXPLORER_ANALYSIS_CACHE_MB"


def arrays_in(value: Any) -> Iterator[Any]:
    """Every numpy array and torch tensor in ``value`` (through dicts, lists, tuples and dataclasses), each
    object once however often it is reached."""
    seen: set[int] = set()

    def walk(item: Any) -> Iterator[Any]:
        if id(item) in seen:
            return
        if isinstance(item, np.ndarray) or (hasattr(item, "element_size") and hasattr(item, "nelement")):
            seen.add(id(item))  # a torch tensor is recognised without importing torch
            yield item
        elif isinstance(item, dict):
            for v in item.values():
                yield from walk(v)
        elif isinstance(item, (list, tuple)):
            for v in item:
                yield from walk(v)
        elif hasattr(item, "held_arrays"):  # a container that says what it keeps (analysis.HostActivations)
            for v in item.held_arrays():
                yield from walk(v)
        elif hasattr(item, "__dataclass_fields__") and not isinstance(item, type):
            for name in item.__dataclass_fields__:
                yield from walk(getattr(item, name))

    return walk(value)


def nbytes_of(value: Any) -> int:
    """Bytes held by the numpy arrays (and torch tensors) in ``value``; an array reached twice counts once.
    Other objects count as 0 (they are small next to the arrays)."""
    return sum(int(a.nbytes) if isinstance(a, np.ndarray) else int(a.element_size() * a.nelement())
               for a in arrays_in(value))


def default_budget_bytes() -> int:
    """``EXPLORER_ANALYSIS_CACHE_MB`` if set, else a quarter of the machine's memory, between 512 MB and 4 GB."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text:
        try:
            megabytes = float(text)
        except ValueError:
            raise ValueError(f"{BUDGET_ENV} must be a number of megabytes, got {text!r}") from None
        if megabytes <= 0:
            raise ValueError(f"{BUDGET_ENV} must be positive, got {text!r}")
        return int(megabytes * 2**20)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        total = 8 * 2**30
    return int(min(max(total // 4, DEFAULT_MIN_MB * 2**20), DEFAULT_MAX_MB * 2**20))


class BudgetCache:
    """Values by key, least recently used dropped first once their total size exceeds ``budget_bytes``.

    The newest value is always kept, even alone over budget (the page that asked for it needs it).
    ``get_or_compute`` computes a missing key once: concurrent callers of the same key wait for that
    computation instead of repeating it; different keys compute in parallel. A computation that raises
    stores nothing.
    """

    def __init__(self, budget_bytes: int, size_of: Callable[[Any], int] = nbytes_of) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._size_of = size_of
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._total

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        """Caller holds ``self._lock``."""
        item = self._items.get(key)
        if item is None:
            return False, None
        self._items.move_to_end(key)
        return True, item[0]

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            found, value = self._lookup(key)
            if found:
                self.hits += 1
                return value
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found, value = self._lookup(key)  # computed by the thread we waited for
                if found:
                    self.hits += 1
                    return value
            try:
                value = compute()
                size = int(self._size_of(value))
                with self._lock:
                    self.misses += 1
                    self._items[key] = (value, size)
                    self._total += size
                    while self._total > self.budget_bytes and len(self._items) > 1:
                        _, (_, dropped) = self._items.popitem(last=False)
                        self._total -= dropped
                        self.evictions += 1
            finally:
                with self._lock:
                    if self._key_locks.get(key) is key_lock:
                        del self._key_locks[key]
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0
