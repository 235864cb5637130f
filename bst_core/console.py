"""What the ``bst`` command line writes besides its results: progress, JSON, captured library noise.

Progress (:func:`make_progress`): on a terminal, one tqdm bar per stage; anywhere else (a log file,
a pipe, CI) plain lines, never a ``\\r``: one when a stage starts, one when it ends (with its time
and, for a training fold, the best validation hF), and in between at most one progress line every
:data:`DEFAULT_INTERVAL_S` seconds (``$BST_PROGRESS_INTERVAL`` overrides it; 0 = every report).

Library output (:func:`capture_library_output`): Python warnings and whatever a C library writes
on file descriptor 2 (libmpg123's "dequantization failed", ...) while one file is decoded are
captured, so :func:`bst_core.audio.decode` can fold them into that file's warning or reason
instead of letting them reach the user unattributed. :func:`quiet_library_warnings` hides the
known-harmless deprecation notices of torchaudio / laion_clap / torchlibrosa.

No Qt, no torch; tqdm is imported only when a bar is drawn.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from bst_core.errors import BadInputError
from bst_core.jobs import Progress

PROGRESS_INTERVAL_ENV = "BST_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 5.0
_POSTFIX_KEYS = ("loss", "val_hf", "computed", "failed", "reused")


class ProgressRenderer(Protocol):
    def __call__(self, progress: Progress) -> None: ...
    def close(self) -> None: ...


# --- progress ------------------------------------------------------------------------------------

class NoProgress:
    """``--quiet``: progress is dropped."""

    def __call__(self, progress: Progress) -> None:
        del progress

    def close(self) -> None:
        pass


class ProgressBars:
    """Render :class:`Progress` reports as one tqdm bar per stage (for a terminal)."""

    def __init__(self, enabled: bool = True, stream: IO[str] | None = None) -> None:
        self.enabled = enabled
        self.stream = stream
        self._bars: dict[str, Any] = {}

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self._bars.get(progress.stage)
        if bar is None:
            for other in self._bars.values():  # a new stage starts: close the finished ones
                other.close()
            self._bars.clear()
            bar = tqdm(total=progress.total, desc=progress.stage, unit="it", dynamic_ncols=True,
                       file=self.stream or sys.stderr, leave=True)
            self._bars[progress.stage] = bar
        if progress.total is not None and bar.total != progress.total:
            bar.total = progress.total
        bar.n = progress.done
        postfix = {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in progress.data.items()
                   if k in _POSTFIX_KEYS}
        if progress.message:
            postfix["note"] = progress.message
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def progress_interval() -> float:
    """Seconds between two progress lines off a terminal (``$BST_PROGRESS_INTERVAL``, default 5)."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise BadInputError(f"${PROGRESS_INTERVAL_ENV}={raw!r} is not a number of seconds ≥ 0; set it to e.g. 5 "
                            "or unset it.")
    return value


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


@dataclass
class _Stage:
    name: str
    started: float
    last: Progress
    best_val_hf: float | None = None
    best_epoch: int | None = None
    completed_at: float | None = None   # time of its latest report with done >= total


class LineProgress:
    """Render progress as plain lines for logs: stage start/end lines plus rate-limited updates.

    A stage ends when another stage reports after it has made progress, or at :meth:`close`
    (so its end line has its final counts); its time runs to its last report of ``done >= total``
    (or to its end when it stopped short, e.g. a fold stopped early). A stage left while still at ``done == 0``
    (an outer step such as "read metadata" that runs an inner one) is kept open and resumes when
    it reports again. A stage whose first report is already complete gets only its end line.
    """

    def __init__(self, stream: IO[str] | None = None, interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.interval_s = progress_interval() if interval_s is None else interval_s
        self._clock = clock
        self._stage: _Stage | None = None
        self._suspended: dict[str, _Stage] = {}
        self._last_line = -math.inf

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(line.replace("\r", " ") + "\n")
        stream.flush()

    def __call__(self, progress: Progress) -> None:
        now = self._clock()
        stage = self._stage
        if stage is None or stage.name != progress.stage:
            self._leave(now)
            stage = self._suspended.pop(progress.stage, None)
            if stage is None:
                stage = _Stage(progress.stage, now, progress)
                if not self._is_complete(progress):
                    detail = f" ({progress.message})" if progress.message else ""
                    self._write(f"{progress.stage}: started{detail}")
                    self._track(stage, progress)
                    self._stage = stage
                    return
            self._stage = stage
        stage.last = progress
        self._track(stage, progress)
        if self._is_complete(progress):
            stage.completed_at = now
        elif now - self._last_line >= self.interval_s:
            self._last_line = now
            self._write(self._progress_line(progress))

    @staticmethod
    def _is_complete(progress: Progress) -> bool:
        return progress.total is not None and progress.done >= progress.total

    @staticmethod
    def _track(stage: _Stage, progress: Progress) -> None:
        val_hf = progress.data.get("val_hf")
        if isinstance(val_hf, float) and math.isfinite(val_hf) and (
                stage.best_val_hf is None or val_hf > stage.best_val_hf):
            stage.best_val_hf = val_hf
            stage.best_epoch = progress.data.get("epoch")

    def _progress_line(self, progress: Progress) -> str:
        count = f"{progress.done}/{progress.total}" if progress.total is not None else f"{progress.done}"
        parts = [count]
        if progress.fraction is not None:
            parts[0] += f" ({progress.fraction:.0%})"
        eta = progress.eta_s
        if eta is not None:
            parts.append(f"about {_seconds(eta)} left")
        if progress.message:
            parts.append(progress.message)
        return f"{progress.stage}: " + ", ".join(parts)

    def _finish(self, stage: _Stage, now: float) -> None:
        last = stage.last
        if last.data.get("reused") is True:
            self._write(f"{stage.name}: reused")
            return
        end = now if stage.completed_at is None or last.done < (last.total or 0) else stage.completed_at
        parts = [f"done in {_seconds(end - stage.started)}"]
        if stage.best_val_hf is not None:
            at = f" (epoch {stage.best_epoch})" if stage.best_epoch is not None else ""
            parts.append(f"best val hF {stage.best_val_hf:.2f}{at}")
        counts = [f"{k} {last.data[k]}" for k in ("computed", "failed") if k in last.data]
        parts.extend(counts)
        self._write(f"{stage.name}: " + ", ".join(parts))

    def _leave(self, now: float) -> None:
        stage = self._stage
        if stage is not None:
            if stage.last.done == 0:
                self._suspended[stage.name] = stage
            else:
                self._finish(stage, now)
        self._stage = None

    def close(self) -> None:
        now = self._clock()
        self._leave(now)
        for stage in self._suspended.values():
            self._finish(stage, now)
        self._suspended.clear()


def is_terminal(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False


def make_progress(quiet: bool, stream: IO[str] | None = None) -> ProgressRenderer:
    """The progress renderer for ``stream`` (default stderr): nothing when ``quiet``, tqdm bars on
    a terminal, :class:`LineProgress` otherwise. Call the result with each :class:`Progress`;
    call ``.close()`` when the work ends (also on error)."""
    if quiet:
        return NoProgress()
    stream = stream if stream is not None else sys.stderr
    return ProgressBars(stream=stream) if is_terminal(stream) else LineProgress(stream)


# --- --quiet / --json ------------------------------------------------------------------------------

def add_output_flags(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    """``-q/--quiet`` and ``--json`` as every result-printing ``bst`` command has them."""
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress, notes or warnings: stdout gets the results, stderr only "
                             "errors")
    if json_flag:
        parser.add_argument("--json", action="store_true",
                            help="print one JSON object on stdout and nothing else there (errors: "
                                 "message on stderr, exit 2 or 1)")


@contextlib.contextmanager
def quiet_output(quiet: bool) -> Iterator[None]:
    """``--quiet``: Python warnings are not shown inside the block (restored after; errors still
    are). Progress and notes are dropped by their writers (:func:`make_progress`, the commands)."""
    if not quiet:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as None, paths as str, NumPy scalars/arrays as Python values."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):   # NumPy scalar or array
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(obj: Any, stream: IO[str] | None = None) -> None:
    """One JSON object on one line of stdout (strict JSON: no NaN)."""
    print(json.dumps(json_safe(obj), allow_nan=False, ensure_ascii=False), file=stream or sys.stdout)


# --- library output ---------------------------------------------------------------------------------

_HARMLESS = (
    (r"torch\.meshgrid: in an upcoming release", None),
    (r".*[Aa]rgument 'onesided' has been deprecated", None),
    (r".*torchaudio\._backend", None),
    (r".*this function's implementation will be changed to use torchaudio\.load_with_torchcodec", None),
    (r".*torchaudio\..* has been deprecated", None),
    (r"", r"(torchaudio|torchlibrosa|laion_clap|torchvision)(\..*)?$"),
)
"""(message regex, module regex): deprecation notices from the CLAP stack that a user can do nothing about."""


@contextlib.contextmanager
def quiet_library_warnings() -> Iterator[None]:
    """Hide the known-harmless DeprecationWarning / FutureWarning / UserWarning notices of
    torchaudio, torchlibrosa, torchvision and laion_clap inside the block (restored after).

    Like every use of :mod:`warnings` filters this is process-wide while it lasts."""
    with warnings.catch_warnings():
        for message, module in _HARMLESS:
            for category in (DeprecationWarning, FutureWarning, UserWarning):
                if module is None:
                    warnings.filterwarnings("ignore", message=message, category=category)
                elif category is not UserWarning:   # a module's own UserWarnings may matter
                    warnings.filterwarnings("ignore", category=category, module=module)
        yield


_MAX_CAPTURED_CHARS = 64 * 1024
_MAX_FOLDED_CHARS = 300
_LOCATION = re.compile(r"^\[[^\]]*\]\s*")        # libmpg123: "[src/libmpg123/layer3.c:...:1771] "
_LEVEL = re.compile(r"^(error|warning|note)\s*:\s*", re.IGNORECASE)


@dataclass
class Captured:
    """What :func:`capture_library_output` caught: Python warnings and text written to fd 2."""

    warnings: list[str] = field(default_factory=list)
    stderr: str = ""

    @property
    def notes(self) -> list[str]:
        """Reason/warning texts in :mod:`bst_core.audio`'s "<words> (<detail>)" form:
        ``"decoder said (dequantization failed! (x3))"``, ``"library warning (UserWarning: ...)"``."""
        notes = []
        said = summarize_lines(self.stderr.splitlines())
        if said:
            notes.append(f"decoder said ({said})")
        python = summarize_lines(self.warnings, strip_prefixes=False)
        if python:
            notes.append(f"library warning ({python})")
        return notes

    def fold_into(self, text: str) -> str:
        """``text`` (a reason or a warning; may be "") followed by :attr:`notes`, joined by "; "."""
        return "; ".join([t for t in (text, *self.notes) if t])


def summarize_lines(lines: Sequence[str], *, strip_prefixes: bool = True) -> str:
    """Distinct non-empty lines in first-seen order, repeats counted ("x (x3)"), joined by ", ",
    without "; " (the separator of several warnings) and at most ~300 characters."""
    counts: dict[str, int] = {}
    for raw in lines:
        line = " ".join(raw.split())
        if strip_prefixes:
            line = _LEVEL.sub("", _LOCATION.sub("", line))
        line = line.replace("; ", ", ").strip()
        if line:
            counts[line] = counts.get(line, 0) + 1
    text = ", ".join(f"{line} (x{n})" if n > 1 else line for line, n in counts.items())
    if len(text) > _MAX_FOLDED_CHARS:
        text = text[:_MAX_FOLDED_CHARS - 3].rstrip() + "..."
    return text


_FD_LOCK = threading.Lock()
_local = threading.local()
_sink: tuple[int, IO[bytes]] | None = None   # (pid, temporary file) reused for every capture


def _sink_file() -> IO[bytes]:
    global _sink
    if _sink is None or _sink[0] != os.getpid():   # a forked child gets its own file
        _sink = (os.getpid(), tempfile.TemporaryFile(prefix="bst-stderr-"))  # noqa: SIM115 - kept open
    return _sink[1]


@contextlib.contextmanager
def capture_library_output(fd: int = 2) -> Iterator[Captured]:
    """Capture Python warnings and C-level writes to ``fd`` (stderr) made inside the block.

    One capture at a time per process (a lock; decoding in other threads waits for the block).
    Costs a few system calls (dup/dup2/lseek/ftruncate on one reused temporary file). Nested
    captures in the same thread leave the catching to the outer one. If ``fd`` cannot be
    redirected (no stderr, as under some GUI launchers) only Python warnings are captured.
    Python warnings raised by other threads during the block are caught too (the warnings
    module is process-wide); they are rare while a file is decoded.
    """
    captured = Captured()
    if getattr(_local, "depth", 0):
        yield captured
        return
    with _FD_LOCK:
        _local.depth = 1
        saved = None
        sink: IO[bytes] | None = None
        try:
            with contextlib.suppress(Exception):
                sys.stderr.flush()   # what Python wrote before the block is not ours to capture
            try:
                sink = _sink_file()
                sink.seek(0)
                sink.truncate()
                saved = os.dup(fd)
                os.dup2(sink.fileno(), fd)
            except OSError:
                if saved is not None:
                    os.close(saved)
                saved = None
            with warnings.catch_warnings(record=True) as caught:
                try:
                    yield captured
                finally:
                    captured.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
        finally:
            _local.depth = 0
            if saved is not None and sink is not None:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, fd)
                os.close(saved)
                with contextlib.suppress(OSError):
                    sink.seek(0)
                    captured.stderr = sink.read(_MAX_CAPTURED_CHARS).decode("utf-8", "replace")
