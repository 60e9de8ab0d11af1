"""One re-entrant lock per model object.

A model cached with ``st.cache_resource`` is shared by every session and thread. Forward hooks fire on
*any* thread's forward pass and autograd-based attribution can interleave, so every piece of code that
registers hooks on, or back-propagates through, a shared model holds that model's lock meanwhile.
"""
from __future__ import annotations

import threading
import weakref

import torch.nn as nn

_locks: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """Return the lock that guards ``model`` (created on first use, freed with the model)."""
    with _registry_lock:
        lock = _locks.get(model)
        if lock is None:
            lock = threading.RLock()
            _locks[model] = lock
        return lock
