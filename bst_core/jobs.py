"""The one small protocol for long work: progress reports and cooperative cancel.

Every long function in ``bst_core`` takes ``job: Job | None = None``. It calls
``job.progress(...)`` as it goes and ``job.check()`` at safe points; ``check`` raises
:class:`Cancelled` once :meth:`Job.cancel` was called (from any thread). The CLI renders
progress as a bar, the GUI turns it into signals from a worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Cancelled(Exception):
    """Raised inside a job at a safe point after cancel was requested."""


@dataclass(frozen=True)
class Progress:
    """One progress report.

    ``stage`` names the step ("fold 2/5", "extract audio"), ``done``/``total`` count its units
    (``total`` None when unknown), ``data`` carries structured payload such as per-epoch metrics
    (``{"fold": 1, "epoch": 3, "loss": 0.8, "val_hf": 0.71}``) for live curves.
    """

    stage: str
    done: int
    total: int | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from this stage's rate so far."""
        frac = self.fraction
        if frac is None or frac <= 0 or self.elapsed_s <= 0:
            return None
        return self.elapsed_s * (1 - frac) / frac


ProgressCallback = Callable[[Progress], None]


class Job:
    """Progress sink plus cancel flag, passed to long-running core functions."""

    def __init__(self, on_progress: ProgressCallback | None = None) -> None:
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self._stage_started: dict[str, float] = {}

    def cancel(self) -> None:
        """Ask the job to stop at its next safe point (thread-safe)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancel was requested."""
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")

    def progress(
        self,
        stage: str,
        done: int,
        total: int | None = None,
        message: str = "",
        **data: Any,
    ) -> None:
        """Report progress of ``stage``; elapsed time is measured per stage."""
        now = time.monotonic()
        start = self._stage_started.setdefault(stage, now)
        if self._on_progress is not None:
            self._on_progress(Progress(stage, done, total, message, dict(data), now - start))


def check(job: Job | None) -> None:
    """``job.check()`` when a job is given."""
    if job is not None:
        job.check()


def report(job: Job | None, stage: str, done: int, total: int | None = None,
           message: str = "", **data: Any) -> None:
    """``job.progress(...)`` when a job is given."""
    if job is not None:
        job.progress(stage, done, total, message, **data)
