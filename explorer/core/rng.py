"""One process-wide lock around every use of torch's global random generator.

torch has one global CPU generator per process. Model builders (torchvision's, ``nn.init``) and torchvision's
random transforms draw from it and take no ``generator`` argument. Seeding it in one thread while another
draws from it mixes both streams: a "deterministic" build got other weights (then cached for every session)
and a seeded augmentation draw differed from what its seed gives alone. Every seeded use therefore runs
inside :func:`seeded_global`, which holds this lock, forks the generator (the state is restored afterwards)
and seeds it.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

# Re-entrant: building a run's network may build a registry model inside (both seeded).
GLOBAL_RNG_LOCK = threading.RLock()


@contextmanager
def seeded_global(seed: int | None) -> Iterator[None]:
    """Run the block alone with torch's global CPU generator seeded to ``seed`` (``None``: not reseeded, but
    still forked and locked), then restore the generator's state."""
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield
