"""The one small protocol for long work: progress reports and cooperative cancel.

Every long function in ``bst_core`` takes ``job: Job | None = None``. It calls
``job.progress(...)`` as it goes and ``job.check()`` at safe points; ``check`` raises
:class:`Cancelled` once :meth:`Job.cancel` was called (from any thread). The CLI renders
progress as a bar, the GUI turns it into signals from a worker thread.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Cancelled(Exception):
    """Raised inside a job at a safe point after cancel was requested."""


_STEP = re.compile(r"(\d+)\s*/\s*(\d+)")
"""``k/K`` in a stage name: step k of K of one series of stages ("fold 2/5")."""
ETA_MIN_FRACTION = 0.01
"""Below this share of the work done, time left is not estimated (it would be noise)."""


def series_of(stage: str) -> str:
    """The series a stage belongs to: ``"fold 2/5"`` → ``"fold */5"``; other stages are their own."""
    return _STEP.sub(lambda m: f"*/{m.group(2)}", stage, count=1)


@dataclass(frozen=True)
class Progress:
    """One progress report.

    ``stage`` names the step ("fold 2/5", "extract audio"), ``done``/``total`` count its units
    (``total`` None when unknown), ``data`` carries structured payload such as per-epoch metrics
    (``{"fold": 1, "epoch": 3, "loss": 0.8, "val_hf": 0.71}``) for live curves. ``elapsed_s`` is
    the time since this stage's first report, ``series_elapsed_s`` since the first report of its
    series (``"fold 1/5"`` … ``"fold 5/5"`` are one series; see :func:`series_of`).
    """

    stage: str
    done: int
    total: int | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    series_elapsed_s: float | None = None

    @property
    def fraction(self) -> float | None:
        """Share of this stage done (None when its total is unknown)."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def overall_fraction(self) -> float | None:
        """Share of the whole series done: stage "fold 2/5" at epoch 3 of 10 is 1.3 / 5."""
        fraction = self.fraction
        step = _STEP.search(self.stage)
        if step and int(step.group(2)) > 0:
            k, total = int(step.group(1)), int(step.group(2))
            return min(1.0, max(0.0, (k - 1 + (fraction or 0.0)) / total))
        return fraction

    @property
    def eta_s(self) -> float | None:
        """Seconds left in the series, extrapolated from its rate so far (None: too early to say)."""
        frac = self.overall_fraction
        elapsed = self.elapsed_s if self.series_elapsed_s is None else self.series_elapsed_s
        if frac is None or frac < ETA_MIN_FRACTION or elapsed <= 0:
            return None
        return elapsed * (1 - frac) / frac


ProgressCallback = Callable[[Progress], None]


class Job:
    """Progress sink plus cancel flag, passed to long-running core functions."""

    def __init__(self, on_progress: ProgressCallback | None = None) -> None:
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self._stage_started: dict[str, float] = {}
        self._series_started: dict[str, float] = {}

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
        """Report progress of ``stage``; elapsed time is measured per stage and per series."""
        now = time.monotonic()
        start = self._stage_started.setdefault(stage, now)
        series_start = self._series_started.setdefault(series_of(stage), now)
        if self._on_progress is not None:
            self._on_progress(Progress(stage, done, total, message, dict(data), now - start, now - series_start))


def check(job: Job | None) -> None:
    """``job.check()`` when a job is given."""
    if job is not None:
        job.check()


def report(job: Job | None, stage: str, done: int, total: int | None = None,
           message: str = "", **data: Any) -> None:
    """``job.progress(...)`` when a job is given."""
    if job is not None:
        job.progress(stage, done, total, message, **data)
