"""GUI speed: start to first paint, a 35k-row library (open, search while typing, sort), UI stalls
during jobs and closing during a job.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py --compare-proxy   # + stock proxy model
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py --start-only      # start and close only

Goals (issue): the window shown in under 1.5 s warm and 4 s cold; a 35k-item corpus shows rows in
under 2 s; each keystroke in the search box filters 35k rows in under 100 ms; the event loop never
blocks more than 100 ms while a job runs; closing during a job exits within 2 s after "Yes".

What is measured (wall clock, the real MainWindow offscreen):

- start: from spawning ``python`` (the real ``bst_gui.app.main``, fresh settings) to the first
  paint of the main window, in a child process. Warm: the files are in the page cache (best of 3).
  Cold: the page cache of the interpreter's standard library, PySide6, numpy, pandas, pyqtgraph and
  the project's own files is dropped first (``posix_fadvise(DONTNEED)``, which needs no root; the
  disk under a virtual machine may still cache them, so this is a lower bound of a true cold start).
- close during a job: a child process opens a synthetic dataset, starts a long cross-validation,
  closes the window ("Yes"): seconds from ``close()`` until the process has exited.
- open: from handing an opened 35k-sound corpus to the window until the table has painted its rows
  (library frame, model reset, view, clip panel of the first row). Reading files is the core's part
  (see bench_store.py).
- search: per keystroke of a query typed into the search box: model mask + reset + repaint.
- sort: clicking a column header (numpy argsort over 35k rows + relayout + repaint).
- stalls: a 5 ms QTimer runs while a job works in the background (open a dataset, extract offline
  embeddings, cross-validate); the longest gap between ticks minus 5 ms is the worst UI stall. An
  idle control (no job) shows what the machine's own load costs; the start-up warm-up imports
  (``bst_gui.jobs.warm_up_imports``, done while the person picks a source) are shown apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import itertools
import subprocess

from PySide6.QtCore import QElapsedTimer, QSettings, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtWidgets import QApplication

TICK_MS = 5

_FIRST_PAINT_CHILD = """
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

app = QApplication([sys.argv[0]])

class FirstPaint(QObject):
    seen = False

    def eventFilter(self, obj, event):
        if (not self.seen and event.type() == QEvent.Type.Paint and obj.isWidgetType()
                and obj.window().objectName() == "MainWindow"):
            self.seen = True
            print(f"painted {time.monotonic():.6f}", flush=True)
            QTimer.singleShot(0, app.quit)
        return False

watcher = FirstPaint()
app.installEventFilter(watcher)
from bst_gui.app import main
main([])
"""

_CLOSE_CHILD = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from bst_core.config import TrainConfig
from bst_core.synthetic import write_bsd_dataset
from bst_gui.main_window import MainWindow
from bst_gui.settings import Settings

tmp = Path(sys.argv[1])
tmp.mkdir(parents=True, exist_ok=True)
app = QApplication([sys.argv[0]])
window = MainWindow(Settings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)))
window.confirm_close_during_job = lambda: True
window.show()
window.open_source(write_bsd_dataset(tmp / "BSD10k-close", n_per_class=20))
while window.jobs.busy:
    app.processEvents()
if sys.argv[2] == "cv":
    window.start_cross_validation(TrainConfig(folds=5, epochs=1000, patience=None), tmp / "run")
else:           # one long step that never reaches a safe point (as a CLAP batch on a slow CPU)
    window._start("Long step", lambda job: time.sleep(30) or job.progress("step", 1, 1, epoch=2) or time.sleep(30),
                  kind="step", on_success=print)
closing = []
def close():
    if closing or not window.jobs.busy:
        return
    closing.append(True)
    print(f"closing {time.monotonic():.6f}", flush=True)
    window.close()
timer = QTimer()
timer.setSingleShot(True)
timer.timeout.connect(close)
window.jobs.progress.connect(lambda p: p.data.get("epoch", 0) >= 2 and not timer.isActive() and timer.start(0))
if sys.argv[2] != "cv":
    timer.start(2000)
from bst_gui.app import leave
sys.exit(leave(app.exec()))
"""


def _evict_page_cache(roots: list[Path]) -> int:
    """Drop the page cache of every file under ``roots`` (posix_fadvise DONTNEED); files touched."""
    count = 0
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                try:
                    handle = os.open(os.path.join(folder, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(handle, 0, 0, os.POSIX_FADV_DONTNEED)
                    count += 1
                except OSError:
                    pass
                finally:
                    os.close(handle)
    return count


def _child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp / "config"), QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def _time_to_line(command: list[str], env: dict[str, str], prefix: str, timeout_s: float = 300) -> float | None:
    """Seconds from spawning ``command`` until it prints ``<prefix> <monotonic time>`` (its clock)."""
    start = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    seen: float | None = None
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(prefix):
            seen = float(line.split()[1]) - start
            break
    child.wait(timeout_s)
    return seen


def bench_start(tmp: Path) -> None:
    """Process start → first paint of the main window, warm (best of 3) and cold (page cache dropped)."""
    import sysconfig

    script = tmp / "first_paint.py"
    script.write_text(_FIRST_PAINT_CHILD, encoding="utf-8")
    env = _child_env(tmp)
    command = [sys.executable, str(script)]
    _time_to_line(command, env, "painted")          # fill the caches (and compile the .pyc files)
    warm = [_time_to_line(command, env, "painted") for _ in range(3)]
    print(f"start → first paint, warm (best of 3)                          "
          f"{min(t for t in warm if t is not None) * 1000:8.0f} ms  (all: "
          f"{', '.join(f'{t:.2f}' for t in warm if t is not None)} s)")
    site = Path(sysconfig.get_paths()["purelib"])
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(__file__).resolve().parents[1] / "bst_gui",
             Path(__file__).resolve().parents[1] / "bst_core",
             *(site / name for name in ("PySide6", "shiboken6", "numpy", "numpy.libs", "pandas", "pyqtgraph",
                                        "soundfile.py", "_soundfile_data", "scipy", "scipy.libs"))]
    files = _evict_page_cache([r for r in roots if r.exists()])
    cold = _time_to_line(command, env, "painted")
    print(f"start → first paint, cold ({files:,} files evicted from the page cache) "
          f"{(cold or float('nan')) * 1000:8.0f} ms")


def bench_close(tmp: Path, what: str) -> None:
    """Seconds from closing the window ("Yes") during a job until the process is gone: ``what`` is
    "cv" (a cross-validation, after its second epoch) or "step" (a 30 s step without a safe point)."""
    script = tmp / "close_during_job.py"
    script.write_text(_CLOSE_CHILD, encoding="utf-8")
    start = time.monotonic()
    child = subprocess.Popen([sys.executable, script, str(tmp / what), what], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=_child_env(tmp))
    assert child.stdout is not None
    closing: float | None = None
    for line in child.stdout:
        if line.startswith("closing"):
            closing = float(line.split()[1])
    code = child.wait(300)
    ended = time.monotonic()
    if closing is None:
        print(f"close during a job: the job never reached its second epoch (exit {code})")
        return
    label = "a cross-validation" if what == "cv" else "a 30 s step without safe point"
    print(f"close during {label} → process exited (code {code}) {(ended - closing) * 1000:8.0f} ms  "
          f"(run {ended - start:.1f} s in all)")


def _window(tmp: Path) -> Any:
    from bst_gui.main_window import MainWindow
    from bst_gui.playback import AudioOutput
    from bst_gui.settings import Settings

    class _NoSound:
        def query_devices(self, kind: str | None = None) -> dict:
            raise RuntimeError("benchmark: no device")

    window = MainWindow(Settings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)),
                        AudioOutput(sounddevice=_NoSound()))
    window.show_error = lambda title, message, details="": print(f"  ERROR {title}: {message}")
    window.show_info = lambda title, message: None
    window.resize(1400, 860)
    window.show()
    return window


def _settle(app: QApplication, ms: int = 50) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        app.processEvents()


def bench_library(app: QApplication, tmp: Path, rows: int, compare_proxy: bool) -> None:
    from bst_core.synthetic import make_corpus
    from bst_core.taxonomy import NUM_CLASSES

    corpus = make_corpus(n_per_class=-(-rows // NUM_CLASSES), dim=8)
    corpus = corpus.subset(corpus.table.index < rows)
    window = _window(tmp)
    _settle(app)
    table = window.library_view.table

    start = time.perf_counter()
    window.session.open(corpus)          # the window observes the session: the table fills itself
    table.viewport().repaint()
    opened = time.perf_counter() - start
    print(f"open {len(corpus):,} sounds → rows painted                      {opened * 1000:8.1f} ms")
    window.background.cancel()

    import numpy as np

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(NUM_CLASSES, 0.3), size=len(corpus))
    from bst_core.taxonomy import CLASS_KEYS

    start = time.perf_counter()
    window.library.set_predictions(corpus.ids, [CLASS_KEYS[i] for i in probs.argmax(axis=1)], probs.max(axis=1),
                                   probs)
    table.viewport().repaint()
    print(f"set predictions of {len(corpus):,} sounds (+ probabilities)         "
          f"{(time.perf_counter() - start) * 1000:8.1f} ms")

    query = "drum loop -ambience"
    times = []
    for k in range(1, len(query) + 1):
        start = time.perf_counter()
        window.library_view.search.setText(query[:k])
        table.viewport().repaint()
        times.append(time.perf_counter() - start)
    print(f"search while typing {query!r} ({len(times)} keystrokes, {len(corpus):,} rows): "
          f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms, "
          f"last shows {window.library.rowCount():,} rows")
    for text in ("class:fx-o", "top:ss conf>0.5", "truth:fx-a pred:fx-o", ""):
        start = time.perf_counter()
        window.library_view.search.setText(text)
        table.viewport().repaint()
        print(f"  query {text!r:<28s} {(time.perf_counter() - start) * 1000:8.1f} ms  "
              f"({window.library.rowCount():,} rows)")

    start = time.perf_counter()
    window.library.set_edited({corpus.ids[3]: "fx-o"})
    table.viewport().repaint()
    print(f"an edited label shown in the table (35k rows)                  "
          f"{(time.perf_counter() - start) * 1000:8.1f} ms")

    for column, name in ((1, "title"), (3, "truth")):
        start = time.perf_counter()
        table.sortByColumn(column, Qt.SortOrder.DescendingOrder)
        table.viewport().repaint()
        print(f"sort by {name:<8s} ({len(corpus):,} rows)                           "
              f"{(time.perf_counter() - start) * 1000:8.1f} ms")

    if compare_proxy:
        window.library_view.clear_filters()
        proxy = QSortFilterProxyModel()
        proxy.setSourceModel(window.library)
        proxy.setFilterKeyColumn(-1)
        proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        start = time.perf_counter()
        proxy.setFilterFixedString("dog")
        proxy.rowCount()
        print(f"stock QSortFilterProxyModel, all columns, 'dog'             "
              f"{(time.perf_counter() - start) * 1000:8.1f} ms  ({proxy.rowCount():,} rows)")
    window.close()


def measure_stalls(app: QApplication, label: str, start_job: Callable[[], bool], running: Callable[[], bool],
                   timeout_s: float = 900) -> None:
    """Run a job to its end while a 5 ms timer ticks; print the worst gap beyond 5 ms."""
    ticks: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    timer.start()
    began = time.perf_counter()
    if not start_job():
        print(f"{label}: did not start")
        return
    while running() and time.perf_counter() - began < timeout_s:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    took = time.perf_counter() - began
    pairs = [(b - a - TICK_MS, a) for a, b in itertools.pairwise(ticks)]
    gaps = sorted(g for g, _ in pairs)
    worst, at = max(pairs) if pairs else (0, 0)
    p99 = gaps[int(0.99 * (len(gaps) - 1))] if gaps else 0
    print(f"{label:<44s} job {took:6.1f} s, {len(ticks):6d} ticks, worst stall {worst:4d} ms "
          f"(at {at / 1000:.2f} s), p99 {p99:3d} ms, stalls > 100 ms: {sum(g > 100 for g in gaps)}")


def bench_jobs(app: QApplication, tmp: Path, cv_per_class: int, folds: int, epochs: int) -> None:
    from bst_core.config import TrainConfig
    from bst_core.synthetic import write_bsd_dataset
    from bst_gui.jobs import warm_up_imports
    from bst_gui.run_dialogs import ExtractOptions

    root = write_bsd_dataset(tmp / "BSD10k-bench", n_per_class=cv_per_class)
    window = _window(tmp)
    warm = warm_up_imports()
    measure_stalls(app, "start-up: warm-up imports (no job running)", lambda: True, warm.is_alive)
    idle_until = time.perf_counter() + 5
    measure_stalls(app, "control: idle window, no job (5 s)", lambda: True,
                   lambda: time.perf_counter() < idle_until)
    busy = lambda: window.jobs.busy  # noqa: E731
    measure_stalls(app, f"open a BSD dataset ({cv_per_class * 23} sounds)",
                   lambda: window.open_source(root) or True, busy)
    window.background.wait(60_000)
    measure_stalls(app, "extract offline embeddings",
                   lambda: window.start_extraction(ExtractOptions("offline", None, False)), busy)
    config = TrainConfig(folds=folds, epochs=epochs, patience=None)
    measure_stalls(app, f"cross-validate ({folds} folds × {epochs} epochs)",
                   lambda: window.start_cross_validation(config, tmp / "run"), busy)
    if window.result is None:
        print("  (cross-validation did not finish)")
    window.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=35_000)
    parser.add_argument("--compare-proxy", action="store_true")
    parser.add_argument("--cv-per-class", type=int, default=12)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--skip-jobs", action="store_true")
    parser.add_argument("--start-only", action="store_true", help="only start to first paint and close during a job")
    parser.add_argument("--switch-interval", type=float,
                        help="sys.setswitchinterval in seconds (default: what bst-studio sets)")
    args = parser.parse_args()
    from bst_gui.jobs import UI_SWITCH_INTERVAL_S

    sys.setswitchinterval(args.switch_interval or UI_SWITCH_INTERVAL_S)
    print(f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        os.environ.setdefault("BST_CACHE_DIR", str(tmp / "cache"))
        os.environ.setdefault("BST_DATA_DIR", str(tmp / "data"))
        app = QApplication.instance() or QApplication([])
        from bst_gui import style

        style.apply(app)
        bench_start(tmp)
        bench_close(tmp, "cv")
        bench_close(tmp, "step")
        if args.start_only:
            return
        bench_library(app, tmp, args.rows, args.compare_proxy)
        if not args.skip_jobs:
            bench_jobs(app, tmp, args.cv_per_class, args.folds, args.epochs)


if __name__ == "__main__":
    main()
