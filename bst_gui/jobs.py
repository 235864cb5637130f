"""Long work off the UI thread: one job at a time in a QThread, with progress, ETA and Cancel.

A job is ``work(job: bst_core.jobs.Job) -> result``, a call into ``bst_core`` that reports through
``job.progress`` and stops at ``job.check()`` after :meth:`JobRunner.cancel`. Progress reports
become the queued Qt signal :attr:`JobRunner.progress` (so slots run on the UI thread); plain
progress is thinned to ~20 Hz, reports carrying data (epochs for the curves) always pass. An
exception becomes :attr:`JobRunner.failed` with a message a person can read.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import shiboken6
from PySide6.QtCore import QEventLoop, QObject, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from bst_core.errors import BstError
from bst_core.jobs import Cancelled, Job, Progress

PROGRESS_INTERVAL_S = 0.05

WARM_UP_MODULES: tuple[str, ...] = (
    "torch._dynamo",              # imported by torch on the first optimizer: seconds, long GIL holds
    "sklearn.model_selection",
    "bst_core.training",
    "bst_core.ensemble",
    "bst_core.extraction",
    "bst_core.encoders.offline",
    "bst_core.sources.folder",
    "bst_core.sources.freesound",
)
"""Modules the jobs would import lazily, mid-job. Importing them holds the GIL for up to several
hundred ms at a time (C extension set-up), which would freeze the UI while a job runs; they are
imported once at start-up instead, in a background thread, while the person picks a source."""

_warm_up: threading.Thread | None = None

_threads: dict[QThread, Any] = {}
"""Every job thread with its worker, kept referenced here until the thread has ended: a QThread
object must not be deleted while its thread runs, whatever happens to its runner (a job abandoned
on quitting, a window deleted while a view's background job still runs)."""


def threads_left_running() -> int:
    """How many job threads are still running (the app exits without waiting for them)."""
    for thread in [t for t in _threads if t.isFinished()]:
        thread.wait()
        del _threads[thread]
    return len(_threads)

UI_SWITCH_INTERVAL_S = 0.001
"""How long a job thread may hold the GIL while the UI thread waits for it (Python's default is
5 ms). Each Python callback of a repaint (``data()``, pyqtgraph items) may wait that long while a
job computes, so a shorter interval keeps repaints during jobs short (benchmarks/bench_gui.py)."""


def tune_interpreter_for_ui() -> None:
    """Process-wide: hand the GIL to the UI thread sooner (see :data:`UI_SWITCH_INTERVAL_S`)."""
    sys.setswitchinterval(UI_SWITCH_INTERVAL_S)


def warm_up_imports(modules: Sequence[str] = WARM_UP_MODULES) -> threading.Thread:
    """Import ``modules`` in a daemon thread, once per process; returns that thread."""
    global _warm_up
    if _warm_up is None:
        def run() -> None:
            for name in modules:
                with contextlib.suppress(Exception):   # a missing optional module is not an error here
                    importlib.import_module(name)
            with contextlib.suppress(Exception):       # torch's first training step: ~0.1 s GIL holds
                from bst_core.training import warm_up

                warm_up()

        _warm_up = threading.Thread(target=run, name="bst-warm-up", daemon=True)
        _warm_up.start()
    return _warm_up


def gui_wording(exc: BaseException) -> str:
    """The app's own words for core errors whose message names command-line flags ("" for others):
    the typed errors carry what happened, the app says what to do in its dialogs."""
    from bst_core.checkpoints import CheckpointNotFound, UnusableDownload
    from bst_core.pipeline import NoEmbeddingsError, PartialRunError, StoreOutOfDate

    if isinstance(exc, CheckpointNotFound):
        if exc.given == "explicit":
            return (f"The CLAP checkpoint {exc.path} does not exist. In the Extract dialog pick the file again "
                    "(Browse…), or leave the field empty to use the one in the usual place.")
        if exc.given == "env":
            return (f"The CLAP checkpoint {exc.path} named by $BST_CLAP_CHECKPOINT does not exist: fix or unset "
                    "that variable, then start BST Studio again.")
        return (f"The CLAP checkpoint was not found (looked for {exc.path}). In the Extract dialog pick the file "
                "(Browse…), or tick “Download the checkpoint from Hugging Face if it is missing”.")
    if isinstance(exc, UnusableDownload):
        return (f"The file downloaded from {exc.url} is not a usable LAION-CLAP checkpoint ({exc.reason}); it was "
                "removed. Try again later, or download it yourself and pick it in the Extract dialog (Browse…).")
    if isinstance(exc, NoEmbeddingsError):
        return (f"{exc.source} has no usable embeddings{exc.detail}. Compute them first: Analysis › Extract "
                "embeddings… (Ctrl+E); choose the CLAP encoder for the challenge's embeddings.")
    if isinstance(exc, StoreOutOfDate):
        return (f"{exc.problem} Extract the embeddings again to bring them up to date: Analysis › Extract "
                "embeddings… (Ctrl+E).")
    if isinstance(exc, PartialRunError):
        return (f"{exc.run_dir} is a partial run: {exc.done} of {exc.folds} folds finished (missing "
                f"{', '.join(map(str, exc.missing))}). Finish it first: Analysis › Cross-validate… with this run "
                "folder (Browse…); its finished folds are reused.")
    return ""


def describe_error(exc: BaseException, details: str = "") -> tuple[str, str]:
    """(message, details) for a person: BST errors as they are (in the app's words where a core
    message names command-line flags: :func:`gui_wording`), others in words + the traceback."""
    wording = gui_wording(exc)
    if wording:
        return wording, ""
    if isinstance(exc, BstError):
        return str(exc), ""
    if isinstance(exc, MemoryError):
        return "Not enough memory for this job. Close other programs or use a smaller source.", details
    if isinstance(exc, PermissionError):
        return f"Permission denied: {exc.filename or exc}. Choose a place you can write to.", details
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"A file could not be read or written{where}: {exc.strerror or exc}.", details
    text = str(exc).strip() or type(exc).__name__
    return f"Something went wrong: {text}", details


def format_eta(seconds: float | None) -> str:
    """``Progress.eta_s`` in words: "about 40 s left", "about 3 min left", "" when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


class _Worker(QObject):
    """Runs ``work(job)`` on the worker thread; results travel back as queued signals."""

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object, str)
    cancelled = Signal()

    def __init__(self, work: Callable[[Job], Any]) -> None:
        super().__init__()
        self.work = work
        self.job = Job(self._report)
        self._last_emit = 0.0
        self._last_stage = ""

    def _report(self, progress: Progress) -> None:
        now = time.monotonic()
        important = (bool(progress.data) or progress.stage != self._last_stage
                     or (progress.total is not None and progress.done >= progress.total))
        if important or now - self._last_emit >= PROGRESS_INTERVAL_S:
            self._last_emit, self._last_stage = now, progress.stage
            self.progress.emit(progress)

    @Slot()
    def run(self) -> None:
        try:
            result = self.work(self.job)
        except Cancelled:
            self.cancelled.emit()
        except BaseException as exc:
            self.failed.emit(exc, traceback.format_exc())
        else:
            if self.job.cancelled:
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)
        finally:
            # The thread ends with its work, whoever is left to hear about it: the queued signals
            # above still reach a live runner, and a runner deleted meanwhile (its window closed)
            # no longer leaves a thread idling in its event loop for ever.
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()


class JobRunner(QObject):
    """Runs one job at a time in a worker QThread (API in docs/GUI.md)."""

    started = Signal(str)
    progress = Signal(object)
    succeeded = Signal(str, object)
    failed = Signal(str, str, str)
    cancelled = Signal(str)
    finished = Signal(str)
    ended = Signal(str)
    """The job is over (``busy`` is False): emitted first, before its result or error is shown, so
    the status bar's job strip and Cancel are gone when a dialog about it appears."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.title = ""
        self.kind = ""
        self._thread: QThread | None = None
        self._worker: _Worker | None = None
        self._on_success: Callable[[Any], None] | None = None
        self._retired: dict[QThread, _Worker | None] = {}
        self._closed = False

    @property
    def busy(self) -> bool:
        return self._worker is not None

    @property
    def cancelling(self) -> bool:
        return self._worker is not None and self._worker.job.cancelled

    def start(self, title: str, work: Callable[[Job], Any], *, kind: str = "",
              on_success: Callable[[Any], None] | None = None) -> bool:
        """Run ``work(job)`` in the background; False (nothing started) while another job runs or
        after :meth:`shutdown` (a timer firing as the window closes starts nothing)."""
        if self.busy or self._closed:
            return False
        self.title, self.kind, self._on_success = title, kind, on_success
        thread = QThread()
        worker = _Worker(work)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progress.connect(self.progress)
        worker.succeeded.connect(self._succeeded)
        worker.failed.connect(self._failed)
        worker.cancelled.connect(self._cancelled)
        self._thread, self._worker = thread, worker
        threads_left_running()                 # forget the threads that have ended
        _threads[thread] = worker
        self.started.emit(title)
        thread.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next safe point."""
        if self._worker is not None:
            self._worker.job.cancel()

    def abandon(self) -> bool:
        """Cancel the running job and stop waiting for it: it is forgotten at once (``cancelled`` and
        ``finished`` are emitted now; whatever it returns later is dropped) and its thread ends on
        its own at its next safe point. For quitting: every writer of the core is atomic, so a job
        left mid-step leaves no half-written file. True when a job was abandoned."""
        worker, thread = self._worker, self._thread
        if worker is None or thread is None:
            return False
        worker.job.cancel()
        for signal in (worker.progress, worker.succeeded, worker.failed, worker.cancelled):
            signal.disconnect()
        self._thread = self._worker = None
        self._on_success = None
        thread.quit()                 # its event loop ends as soon as the work returns
        title = self.title
        self.ended.emit(title)
        self.cancelled.emit(title)
        self.finished.emit(title)
        return True

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Process events until the job has ended (True) or ``timeout_ms`` passed (False)."""
        if not self.busy:
            return True
        thread, deadline = self._thread, time.monotonic() + timeout_ms / 1000
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(10)
        poll.timeout.connect(lambda: (not shiboken6.isValid(self) or not self.busy
                                      or time.monotonic() >= deadline) and loop.quit())
        poll.start()
        loop.exec()
        poll.stop()
        if shiboken6.isValid(self):
            return not self.busy
        # deleted with its owner while waiting: nothing reports the job now, its thread ends with the work
        left_ms = max(0, round((deadline - time.monotonic()) * 1000))
        return thread is None or not shiboken6.isValid(thread) or thread.wait(left_ms)

    def _end(self) -> tuple[str, Callable[[Any], None] | None]:
        """Forget the finished job; its thread winds down on its own (never waited for here).

        The thread and its worker stay referenced until the thread has finished (Python owns
        both; dropping them earlier would delete a running QThread).
        """
        title, on_success = self.title, self._on_success
        thread, worker = self._thread, self._worker
        self._thread = self._worker = None
        self._on_success = None
        if thread is not None:
            self._retired[thread] = worker
            thread.finished.connect(self._release_finished)   # queued: runs on the UI thread
            thread.quit()
        self.ended.emit(title)
        return title, on_success

    @Slot()
    def _release_finished(self) -> None:
        for thread in [t for t in self._retired if t.isFinished()]:
            thread.wait()
            del self._retired[thread]

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Wait for the threads of finished jobs to wind down (before the app quits); no job starts
        after this."""
        self._closed = True
        for thread in list(self._retired):
            thread.wait(timeout_ms)
        self._release_finished()
        self._retired.clear()                 # any still winding down stay in _threads until they end

    def _succeeded(self, result: Any) -> None:
        title, on_success = self._end()
        try:
            if on_success is not None:
                on_success(result)
        except Exception as exc:  # a failure while showing the result is still a readable error
            message, details = describe_error(exc, traceback.format_exc())
            self.failed.emit(title, message, details)
        else:
            self.succeeded.emit(title, result)
        self.finished.emit(title)

    def _failed(self, exc: BaseException, details: str) -> None:
        title, _ = self._end()
        message, details = describe_error(exc, details)
        self.failed.emit(title, message, details)
        self.finished.emit(title)

    def _cancelled(self) -> None:
        title, _ = self._end()
        self.cancelled.emit(title)
        self.finished.emit(title)


class JobStatusWidget(QWidget):
    """Status-bar strip: job title and stage, progress bar, time left, Cancel.

    Every part has a fixed width (long texts are elided, the full text is the tooltip), so a
    progress report repaints the strip without re-laying out the window.
    """

    LABEL_WIDTH = 340
    ETA_WIDTH = 120

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.label = QLabel()
        self.label.setFixedWidth(self.LABEL_WIDTH)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.bar = QProgressBar()
        self.bar.setFixedWidth(160)
        self.bar.setTextVisible(False)
        self.eta = QLabel()
        self.eta.setObjectName("muted")
        self.eta.setFixedWidth(self.ETA_WIDTH)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the job at its next safe point; finished work is kept")
        self.cancel_button.clicked.connect(self._cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 4, 0)
        layout.setSpacing(8)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.eta)
        layout.addWidget(self.cancel_button)
        runner.started.connect(self._started)
        runner.progress.connect(self.show_progress)
        runner.ended.connect(lambda _title: self.hide())
        self.hide()

    def _set_label(self, text: str) -> None:
        metrics = self.label.fontMetrics()
        self.label.setText(metrics.elidedText(text, Qt.TextElideMode.ElideRight, self.LABEL_WIDTH - 4))
        self.label.setToolTip(text)

    def _started(self, title: str) -> None:
        self._set_label(title)
        self.bar.setRange(0, 0)
        self.eta.setText("")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.show()

    def _cancel(self) -> None:
        self.runner.cancel()
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")

    def show_progress(self, progress: Progress) -> None:
        stage = progress.stage + (f" · {progress.message}" if progress.message else "")
        self._set_label(f"{self.runner.title}: {stage}")
        fraction = progress.overall_fraction
        if fraction is None:
            self.bar.setRange(0, 0)
            self.eta.setText("")
            return
        self.bar.setRange(0, 1000)
        self.bar.setValue(round(fraction * 1000))
        self.eta.setText(format_eta(progress.eta_s))
