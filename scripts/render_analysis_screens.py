"""Render the analysis views of BST Studio (issue 9) to PNG, offscreen, on the offline demo corpus.

    python scripts/render_analysis_screens.py [OUT_DIR]        # default /tmp/shots9

Two short cross-validations of the demo (both and audio mode, 3 folds x 30 epochs; a few minutes on
2 cores) into the runs folder, then: More like this (S), Why this label, Relabel next, the Runs view,
the Map (PCA, then UMAP with a lasso, then coloured by prediction) and a search by words on an
offline store ("needs CLAP"). Caches and data go to a temporary folder (BST_CACHE_DIR/BST_DATA_DIR).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/shots9")
WORK = Path(tempfile.mkdtemp(prefix="bst-analysis-screens-"))
os.environ["BST_CACHE_DIR"] = str(WORK / "cache")
os.environ["BST_DATA_DIR"] = str(WORK / "data")

import numpy as np  # noqa: E402
from PySide6.QtCore import QSettings, QSize, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

app = QApplication.instance() or QApplication(sys.argv[:1])

from bst_core.config import TrainConfig  # noqa: E402
from bst_gui import style  # noqa: E402
from bst_gui.main_window import MainWindow  # noqa: E402
from bst_gui.playback import AudioOutput  # noqa: E402
from bst_gui.settings import Settings  # noqa: E402

SIZE = QSize(1600, 1000)


def pump(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


def wait(pred: object, timeout: float = 900) -> bool:
    start = time.perf_counter()
    while not pred() and time.perf_counter() - start < timeout:
        pump(0.05)
    return pred()


def save(widget: object, name: str) -> None:
    pixmap = widget.grab()
    pixmap.save(str(OUT / name))
    print(f"wrote {OUT / name} ({pixmap.width()}x{pixmap.height()})", flush=True)


class _Silent:
    def query_devices(self, kind: str | None = None) -> dict:
        raise RuntimeError("no device while rendering")


OUT.mkdir(parents=True, exist_ok=True)
style.apply(app)
window = MainWindow(Settings(QSettings(str(WORK / "settings.ini"), QSettings.Format.IniFormat)),
                    AudioOutput(sounddevice=_Silent()))
window.show_error = lambda title, message, details="": print(f"ERROR {title}: {message}", file=sys.stderr)
window.show_info = lambda title, message: None
window.resize(SIZE)
window.show()
pump(0.5)
save(window, "welcome.png")            # the analysis docks stay hidden on the welcome page
analysis = window.analysis
jobs_idle = lambda: not window.jobs.busy  # noqa: E731

window.open_demo()
wait(jobs_idle)
assert window.corpus is not None
print("corpus", len(window.corpus), window.corpus.encoder.name, flush=True)
for config in (TrainConfig(folds=3, epochs=30, patience=None), TrainConfig(mode="audio", folds=3, epochs=30,
                                                                             patience=None, seed=7)):
    window.start_cross_validation(config)
    wait(jobs_idle)
    time.sleep(1.1)
assert window.result is not None
print("runs trained", flush=True)

# 1. Similar
frame = window.library.frame
target = str(frame.loc[frame["truth"] == "fx-v", "id"].iloc[0])
window.select_id(target)
pump(0.5)
analysis.similar.find()
wait(lambda: not analysis.jobs.busy("similar"))
pump(1.0)
save(window, "similar.png")

# 2. Why this label (clip panel)
window.clear_filters()
window.select_id(target)
wait(lambda: len(window.clip_panel.explanation_ids()) > 0, 300)
pump(1.0)
save(window, "explain_window.png")
window.resizeDocks([window.clip_dock], [430], Qt.Orientation.Horizontal)
pump(0.5)
save(window.clip_dock, "explain_panel.png")

# 3. Relabel next
analysis.show_queue()
wait(lambda: analysis.queue.queue is not None, 300)
analysis.show_queue()
window.resizeDocks([window.results_dock], [360], Qt.Orientation.Vertical)
pump(1.0)
save(window, "relabel_next.png")

# 4. Runs side by side
analysis.runs_action.trigger()
wait(lambda: not analysis.jobs.busy("runs") and len(analysis.runs_view.runs) >= 2, 300)
window.resizeDocks([analysis.runs_dock], [420], Qt.Orientation.Vertical)
pump(1.0)
save(window, "runs.png")
save(analysis.runs_dock, "runs_dock.png")

# 5. Map: PCA at once, then UMAP; a lasso lists clips in the table
window.clear_filters()
analysis.map_action.trigger()
window.resizeDocks([analysis.map_dock], [560], Qt.Orientation.Horizontal)
wait(lambda: bool(analysis.map_view.ids), 300)
pump(0.5)
print("map method", analysis.map_view.method, flush=True)
save(window, "map_pca.png")
wait(lambda: analysis.map_view.method == "umap", 900)
pump(0.5)
view = analysis.map_view
print("map method", view.method, flush=True)
centre = np.median(view.xy, axis=0)
span = view.xy.std(axis=0) * 0.6
angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
polygon = np.column_stack([centre[0] + span[0] * np.cos(angles), centre[1] + span[1] * np.sin(angles)])
view.box.polygon_drawn.emit(polygon)
pump(1.0)
save(window, "map_umap_lasso.png")
view.colour_box.setCurrentIndex(1)
window.clear_filters()
window.select_id(target)
pump(1.0)
save(analysis.map_dock, "map_by_prediction.png")

# 6. Search by words on an offline store
analysis.map_dock.hide()
search = window.library_view.search
search.setFocus()
search.setText("~dog barking")
QTest.keyClick(search, Qt.Key.Key_Return)
pump(0.5)
save(window.library_view, "words_needs_clap.png")
analysis.jobs.shutdown(60_000)
window.close()
print("done", flush=True)
