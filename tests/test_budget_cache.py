"""explorer.core.budget_cache: least-recently-used eviction by bytes, one computation per key under threads."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from explorer.core import BUDGET_ENV, BudgetCache, default_budget_bytes, nbytes_of

MB = 2**20


def block(mb: int) -> dict:
    return {"activations": {"a": np.zeros(mb * MB // 4, dtype=np.float32)}, "name": "x"}


def test_size_counts_arrays_once_and_tensors_too():
    shared = np.zeros(1000, dtype=np.float32)

    @dataclass
    class Holder:
        values: np.ndarray

    value = {"a": shared, "b": [shared, (np.ones(10, dtype=np.float64), "text")], "t": torch.zeros(5),
             "h": Holder(np.zeros(3, dtype=np.int8)), "n": None}
    assert nbytes_of(value) == 4000 + 80 + 20 + 3


def test_least_recently_used_goes_first_when_over_budget():
    cache = BudgetCache(10 * MB)
    for key in "abc":
        cache.get_or_compute(key, lambda: block(4))  # 12 MB > 10 MB: "a" goes
    assert "a" not in cache and "b" in cache and "c" in cache and cache.total_bytes == 8 * MB
    cache.get_or_compute("b", lambda: pytest.fail("b is cached"))  # touch b: c is now the oldest
    cache.get_or_compute("d", lambda: block(4))
    assert "c" not in cache and {"b", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.evictions == 2 and cache.hits == 1 and cache.misses == 4


def test_a_value_bigger_than_the_budget_is_kept_alone():
    cache = BudgetCache(1 * MB)
    cache.get_or_compute("small", lambda: block(0))
    big = cache.get_or_compute("big", lambda: block(3))
    assert len(cache) == 1 and "big" in cache and big["activations"]["a"].nbytes == 3 * MB


def test_a_failed_computation_stores_nothing_and_can_be_retried():
    cache = BudgetCache(MB)

    def broken():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", broken)
    assert "k" not in cache and len(cache) == 0
    assert cache.get_or_compute("k", lambda: 42) == 42


def test_concurrent_callers_of_one_key_share_one_computation():
    cache = BudgetCache(100 * MB)
    started = []

    def slow(tag):
        started.append(tag)
        time.sleep(0.2)
        return {"tag": tag, "data": np.zeros(10)}

    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, cache.get_or_compute("same", lambda: slow(i))))
               for i in range(8)]
    others = [threading.Thread(target=lambda i=i: results.__setitem__(f"o{i}", cache.get_or_compute(f"k{i}", lambda: slow(f"o{i}"))))
              for i in range(3)]
    t0 = time.perf_counter()
    for th in threads + others:
        th.start()
    for th in threads + others:
        th.join()
    assert len([s for s in started if not str(s).startswith("o")]) == 1, "one computation for the shared key"
    assert len({id(results[i]) for i in range(8)}) == 1, "every caller got the same object"
    assert time.perf_counter() - t0 < 0.2 * 4, "different keys computed in parallel, not one after another"


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "300")
    assert default_budget_bytes() == 300 * MB
    monkeypatch.setenv(BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match=BUDGET_ENV):
        default_budget_bytes()
    monkeypatch.delenv(BUDGET_ENV)
    assert 512 * MB <= default_budget_bytes() <= 4096 * MB
