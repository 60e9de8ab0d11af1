"""The background worker the page polls: training runs in a daemon thread, one worker per user session.

:func:`start_training` starts a :class:`TrainingWorker` for a session (one at a time per session,
``MAX_ACTIVE_WORKERS`` per process) and keeps it in a registry outside the Streamlit script run, so reruns
and clicks find it again with :func:`get_worker`; :meth:`TrainingWorker.progress` gives a consistent copy of
its :class:`Progress` for the page to draw.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from explorer.models import runfolder as runs_io
from explorer.data import DataBundle
from explorer.training.evaluation import Evaluation
from explorer.training.config import TrainConfig
from explorer.training.events import Epoch, Finished, Started, Step
from explorer.training.loop import input_shape_for, load_data, train


@dataclass
class RunProgress:
    name: str
    run_dir: Path | None
    model: str
    status: str = "queued"  # queued | preparing | running | finished | stopped | failed
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    history: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)  # {"step", "loss", "accuracy", "images_per_s"}
    started: Started | None = None
    test_accuracy: float | None = None
    evaluation: Evaluation | None = None
    error: str | None = None

    @property
    def fraction(self) -> float:
        if self.status in ("finished", "stopped"):
            return 1.0
        return self.step / self.total_steps if self.total_steps else 0.0


@dataclass
class Progress:
    status: str  # running | finished | stopped | failed
    runs: list[RunProgress]
    current: int

    @property
    def fraction(self) -> float:
        return sum(r.fraction for r in self.runs) / max(len(self.runs), 1)

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "failed")


MAX_STEP_POINTS = 1500
# A session whose browser reloaded or closed is gone for good after Streamlit's own grace for reconnecting (its
# disconnectedSessionTTL, 120 s by default): runs nobody can see or stop end this long after it is gone.
ORPHAN_GRACE_S = 150.0
OWNER_CHECK_EVERY_S = 1.0


class TrainingWorker:
    """Runs one or more training runs one after another in a daemon thread.

    The page starts it, keeps it across reruns (see :func:`start_training`), reads :meth:`progress`
    from a polling fragment, and calls :meth:`stop`. Runs that share a dataset (the degradation
    experiment) load it once.
    """

    def __init__(self, jobs: Sequence[tuple[TrainConfig, str | Path | None]], data: DataBundle | None = None,
                 owner_alive: Callable[[], bool] | None = None, orphan_grace_s: float = ORPHAN_GRACE_S) -> None:
        """``owner_alive``: whether the browser session that started the runs is still there. A reload or a closed
        tab ends that session, and nobody can see or stop its runs any more: once the owner has been gone for
        ``orphan_grace_s`` seconds (a network blip reconnects within it) the runs stop as if stopped by hand, so they
        do not hold one of the server's few training slots (each keeps its best checkpoint so far)."""
        if not jobs:
            raise ValueError("nothing to train")
        self.jobs = [(cfg, Path(d) if d is not None else None) for cfg, d in jobs]
        self._data = data
        self._owner_alive = owner_alive
        self._orphan_grace_s = float(orphan_grace_s)
        self._owner_last_seen = time.monotonic()
        self._owner_checked = 0.0
        self.orphaned = False  # stopped because the owner's session was gone
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._runs = [RunProgress(d.name if d else cfg.model, d, cfg.model) for cfg, d in self.jobs]
        self._current = 0
        self._status = "running"
        self._thread = threading.Thread(target=self._work, daemon=True, name="explorer-training")

    def start(self) -> "TrainingWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the runs to end at the next step (the current run keeps its best checkpoint; queued runs are skipped)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def progress(self) -> Progress:
        """A consistent copy of the progress, safe to read from another thread."""
        with self._lock:
            runs = [replace(r, history=list(r.history), steps=list(r.steps)) for r in self._runs]
            return Progress(self._status, runs, self._current)

    def _update(self, index: int, **changes: Any) -> None:
        with self._lock:
            run = self._runs[index]
            for key, value in changes.items():
                setattr(run, key, value)

    def _work(self) -> None:
        data_cache: dict[tuple, DataBundle] = {}
        for index, (config, run_dir) in enumerate(self.jobs):
            with self._lock:
                self._current = index
            if self._stop.is_set():
                self._update(index, status="stopped")
                continue
            self._update(index, status="preparing")
            try:
                key = (config.dataset, input_shape_for(config), config.seed, config.samples, tuple(config.ratios),
                       config.max_train_samples)
                data = self._data if self._data is not None else data_cache.get(key)
                if data is None:
                    data = data_cache[key] = load_data(config)
                for event in train(config, run_dir, stop=self._stop, data=data):
                    self._record(index, event)
            except Exception as exc:  # shown on the page; the thread must not die silently
                from explorer.core import is_out_of_memory

                message = f"{type(exc).__name__}: {exc}"
                if is_out_of_memory(exc):
                    message = "the GPU ran out of memory: choose a smaller batch or image size"
                self._update(index, status="failed", error=message)
                if run_dir is not None and (run_dir / runs_io.CONFIG_FILE).is_file():
                    metrics = runs_io.read_metrics(run_dir)
                    runs_io.write_json_atomic(run_dir / runs_io.METRICS_FILE,
                                              {**metrics, "status": "failed", "error": message})
        with self._lock:
            statuses = [r.status for r in self._runs]
            self._status = ("failed" if "failed" in statuses else "stopped" if "stopped" in statuses else "finished")

    def _check_owner(self) -> None:
        """Stop the runs once their owner's session has been gone for the grace period (checked once a second)."""
        if self._owner_alive is None or self._stop.is_set():
            return
        now = time.monotonic()
        if now - self._owner_checked < OWNER_CHECK_EVERY_S:
            return
        self._owner_checked = now
        try:
            alive = bool(self._owner_alive())
        except Exception:  # the server's session registry could not answer: keep training
            alive = True
        if alive:
            self._owner_last_seen = now
        elif now - self._owner_last_seen >= self._orphan_grace_s:
            self.orphaned = True
            self._stop.set()

    def _record(self, index: int, event: Started | Step | Epoch | Finished) -> None:
        self._check_owner()
        with self._lock:
            run = self._runs[index]
            if isinstance(event, Started):
                run.status, run.started, run.total_steps = "running", event, event.total_steps
            elif isinstance(event, Step):
                run.epoch, run.step = event.epoch, event.step
                run.steps.append({"step": event.step, "loss": event.loss, "accuracy": event.accuracy,
                                  "images_per_s": event.images_per_s})
                if len(run.steps) > MAX_STEP_POINTS:  # keep the chart light: drop every other old point
                    run.steps = run.steps[:-MAX_STEP_POINTS // 2:2] + run.steps[-MAX_STEP_POINTS // 2:]
            elif isinstance(event, Epoch):
                run.history.append(event.record())
            elif isinstance(event, Finished):
                run.status = "stopped" if event.stopped else "finished"
                run.test_accuracy, run.evaluation = event.test_accuracy, event.evaluation


class RunInProgressError(RuntimeError):
    """This user already has a training run going."""


class TrainingBusyError(RuntimeError):
    """Too many runs on this server right now."""


MAX_ACTIVE_WORKERS = 2  # 2 CPU cores: more runs at once would only slow every one down
_workers: dict[str, TrainingWorker] = {}
_workers_lock = threading.Lock()


def start_training(session_id: str, jobs: Sequence[tuple[TrainConfig, str | Path | None]],
                   data: DataBundle | None = None, max_active: int | None = None,
                   owner_alive: Callable[[], bool] | None = None,
                   orphan_grace_s: float = ORPHAN_GRACE_S) -> TrainingWorker:
    """Start a worker for ``session_id``; one at a time per session, ``MAX_ACTIVE_WORKERS`` per process.
    ``owner_alive``: see :class:`TrainingWorker` (the runs stop once their session is gone)."""
    limit = MAX_ACTIVE_WORKERS if max_active is None else max_active
    with _workers_lock:
        current = _workers.get(session_id)
        if current is not None and current.alive:
            raise RunInProgressError("a training run is already going for you: stop it or wait for it to end")
        active = sum(1 for w in _workers.values() if w.alive)
        if active >= limit:
            raise TrainingBusyError(f"{active} training runs are going on this server; try again when one ends")
        worker = TrainingWorker(jobs, data, owner_alive=owner_alive, orphan_grace_s=orphan_grace_s)
        _workers[session_id] = worker
        worker.start()
        return worker


def get_worker(session_id: str) -> TrainingWorker | None:
    with _workers_lock:
        return _workers.get(session_id)


def stop_training(session_id: str) -> bool:
    worker = get_worker(session_id)
    if worker is None or not worker.alive:
        return False
    worker.stop()
    return True
