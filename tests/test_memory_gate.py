"""The server-wide memory budget (issue 14): reservations never exceed it, whatever the concurrency."""
from __future__ import annotations

import random
import threading
import time

import pytest

from explorer.core import MemoryGate, ServerMemoryError


def test_threads_never_hold_more_than_the_budget_together():
    budget = 1000
    gate = MemoryGate(budget, wait_s=60)
    # Counted independently of the gate: each thread adds what it holds inside the block, under its own lock.
    lock = threading.Lock()
    held = {"now": 0, "most": 0, "done": 0}
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(25):
                size = rng.randint(1, budget)
                with gate.reserve(size):
                    with lock:
                        held["now"] += size
                        held["most"] = max(held["most"], held["now"])
                    time.sleep(rng.random() * 0.002)
                    with lock:
                        held["now"] -= size
                        held["done"] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert held["done"] == 8 * 25  # every request got its turn
    assert 0 < held["most"] <= budget
    assert gate.reserved == 0 and gate.peak_reserved <= budget


def test_a_request_bigger_than_the_whole_budget_is_refused_at_once():
    gate = MemoryGate(100, wait_s=3600)
    with pytest.raises(ServerMemoryError) as info:
        with gate.reserve(101):
            pass
    assert info.value.never_fits and info.value.needed == 101 and info.value.budget == 100
    assert gate.reserved == 0


def test_a_request_that_waits_too_long_gets_a_clear_error():
    gate = MemoryGate(100)
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with gate.reserve(80):
            entered.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(30)
    try:
        with pytest.raises(ServerMemoryError) as info:
            with gate.reserve(30, timeout=0.2):
                pass
        assert not info.value.never_fits and info.value.waited >= 0.2
        with gate.reserve(20, timeout=0.2):  # what is left still fits
            assert gate.reserved == 100
    finally:
        release.set()
        thread.join()
    assert gate.reserved == 0


def test_waiters_are_served_in_arrival_order():
    gate = MemoryGate(100, wait_s=30)
    order: list[str] = []
    first = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with gate.reserve(100):
            first.set()
            release.wait(30)

    def waiter(name: str, size: int, ready: threading.Event) -> None:
        ready.set()
        with gate.reserve(size):
            order.append(name)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    first.wait(30)
    # The big request arrives first: the small one behind it must not overtake it.
    for name, size in (("big", 90), ("small", 5)):
        ready = threading.Event()
        thread = threading.Thread(target=waiter, args=(name, size, ready))
        thread.start()
        ready.wait(30)
        while len(gate._queue) < len(threads):  # noqa: SLF001 - the test waits until it is queued
            time.sleep(0.001)
        threads.append(thread)
    release.set()
    for thread in threads:
        thread.join()
    assert order == ["big", "small"]


def test_the_server_gate_reads_its_budget_from_the_environment(monkeypatch):
    from explorer.core import server_budget_bytes

    monkeypatch.setenv("EXPLORER_SERVER_MB", "1.5")
    assert server_budget_bytes() == int(1.5 * 2**20)
    monkeypatch.setenv("EXPLORER_SERVER_MB", "-3")
    with pytest.raises(ValueError, match="EXPLORER_SERVER_MB"):
        server_budget_bytes()
