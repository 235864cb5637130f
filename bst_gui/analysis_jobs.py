"""Quiet background work of the analysis views (similar, why-this-label, map, queue, runs, words).

One :class:`~bst_gui.jobs.JobRunner` (one worker thread) per kind of work, so a map being computed
never holds up "why this label". Within a kind the latest request wins: asking again while one
runs cancels it (at its next safe point) and starts the new one when it has ended. Results and
errors arrive on the UI thread; an error goes to the request's ``on_error`` (a readable message),
never into a dialog: these jobs run as the person moves, so they report where they show.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QEventLoop, QObject

from bst_core.jobs import Job
from bst_gui.jobs import JobRunner


@dataclass
class _Request:
    title: str
    work: Callable[[Job], Any]
    on_success: Callable[[Any], None]
    on_error: Callable[[str], None] | None


class AnalysisJobs(QObject):
    """Background runners by kind; :meth:`run` starts (or queues, latest wins) one request."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runners: dict[str, JobRunner] = {}
        self._pending: dict[str, _Request] = {}
        self._errors: dict[str, Callable[[str], None] | None] = {}

    def runner(self, kind: str) -> JobRunner:
        runner = self.runners.get(kind)
        if runner is None:
            runner = self.runners[kind] = JobRunner(self)
            runner.failed.connect(lambda _title, message, _details, k=kind: self._failed(k, message))
            runner.finished.connect(lambda _title, k=kind: self._next(k))
        return runner

    def run(self, kind: str, title: str, work: Callable[[Job], Any], on_success: Callable[[Any], None],
            on_error: Callable[[str], None] | None = None) -> None:
        """Run ``work(job)`` in the ``kind`` runner; a running one of that kind is cancelled first."""
        request = _Request(title, work, on_success, on_error)
        runner = self.runner(kind)
        if runner.busy:
            self._pending[kind] = request
            runner.cancel()
            return
        self._start(kind, request)

    def _start(self, kind: str, request: _Request) -> None:
        self._errors[kind] = request.on_error
        self.runner(kind).start(request.title, request.work, kind=kind, on_success=request.on_success)

    def _failed(self, kind: str, message: str) -> None:
        handler = self._errors.get(kind)
        if handler is not None:
            handler(message)

    def _next(self, kind: str) -> None:
        request = self._pending.pop(kind, None)
        if request is not None:
            self._start(kind, request)

    def _live(self) -> dict[str, JobRunner]:
        return {k: r for k, r in self.runners.items() if shiboken6.isValid(r)}

    def busy(self, kind: str | None = None) -> bool:
        live = self._live()
        if kind is not None:
            return kind in live and live[kind].busy
        return any(r.busy for r in live.values())

    def cancel(self, kind: str | None = None) -> None:
        """Cancel the running job of ``kind`` (every kind when None) and forget what was queued."""
        for name, runner in self._live().items():
            if kind is None or name == kind:
                self._pending.pop(name, None)
                runner.cancel()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Process events until no analysis job runs (True) or the time is up."""
        deadline = time.monotonic() + timeout_ms / 1000
        while self.busy() and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.005)
        return not self.busy()

    def abandon(self) -> None:
        """Stop at once (quitting): cancel everything; a job that cannot stop yet (a UMAP in numba, a
        model loading) is given up and its thread ends on its own (nothing it computes is kept)."""
        self._pending.clear()
        for runner in self._live().values():
            if runner.busy and hasattr(runner, "abandon"):
                runner.abandon()
            else:
                runner.cancel()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel everything and wait up to ``timeout_ms`` for the jobs to end (then give them up)."""
        self.cancel()
        self.wait(timeout_ms)
        self.abandon()
        for runner in self._live().values():
            runner.shutdown(timeout_ms)
