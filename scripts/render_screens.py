"""Render the main screens of BST Studio to PNG (offscreen), for the docs and for review.

    python scripts/render_screens.py                   # → docs/screens/*.png
    python scripts/render_screens.py --out /tmp/shots --work /tmp/bst-demo

Uses the offline demo corpus (synthesized sounds, offline embeddings: no download), a short
cross-validation and an ensemble prediction, then grabs: the welcome page, the library with a
selected clip, the results with the confusion matrix (after a cell click), the results page (the
results full size), the window on a 1366×768 screen, a running job, the demo evaluation folder
predicted by that run (trained on other data; one undecodable file), and a librarian's sorted
folder (``sounds/fx-o/*.wav``, ``sounds/Vehicles/*.wav`` … copied from the demo's sounds) opened
with truth from its class-named subfolders, cross-validated, showing truth ≠ prediction.
Also writes the app icon PNGs (packaging/ and bst_gui/icons/) from the SVG (not with --skip-icons).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
SIZE = QSize(1600, 1000)
SMALL = QSize(1366, 768)
LIBRARIAN_FOLDERS: dict[str, str] = {
    "fx-o": "fx-o", "fx-v": "Vehicles", "fx-a": "fx-a animals", "fx-h": "fx-h", "ss-u": "Urban", "ss-n": "ss-n",
    "m-sp": "m-sp", "is-k": "204", "sp-s": "Solo speech", "fx-n": "fx-n",
}
"""Class → the folder name a librarian gave it (keys, a code, names: every form the reader takes)."""


def make_librarian_folder(corpus: object, target: Path, per_class: int = 8) -> Path:
    """A sorted folder of sounds: up to ``per_class`` demo sounds of each class in a class-named
    subfolder (and a few in an unsorted one), copied from the demo corpus."""
    import shutil

    table = corpus.table  # type: ignore[attr-defined]
    for key, folder in LIBRARIAN_FOLDERS.items():
        rows = table[(table["label"] == key) & (table["audio_path"] != "")].head(per_class)
        for k, (_, row) in enumerate(rows.iterrows()):
            source = Path(row["audio_path"])
            destination = target / folder / f"{key.split('-')[0]} take {k + 1}{source.suffix}"
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    for k, (_, row) in enumerate(table[table["audio_path"] != ""].tail(3).iterrows()):
        (target / "to sort").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(row["audio_path"], target / "to sort" / f"new {k + 1}{Path(row['audio_path']).suffix}")
    return target
ICON_SIZES = (48, 128, 256)


def pump(app: QApplication, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


def wait_job(app: QApplication, window: object, timeout: float = 1800) -> None:
    start = time.perf_counter()
    while window.jobs.busy and time.perf_counter() - start < timeout:  # type: ignore[attr-defined]
        pump(app, 0.05)


def save(window: object, path: Path) -> None:
    pixmap = window.grab()  # type: ignore[attr-defined]
    pixmap.save(str(path))
    print(f"wrote {path} ({pixmap.width()}×{pixmap.height()})")


def render_icons() -> None:
    svg = ROOT / "packaging" / "bst-studio.svg"
    renderer = QSvgRenderer(str(svg))
    for size in ICON_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        target = ROOT / "packaging" / f"bst-studio-{size}.png"
        image.save(str(target))
        print(f"wrote {target}")
    (ROOT / "bst_gui" / "icons").mkdir(exist_ok=True)
    (ROOT / "bst_gui" / "icons" / "bst-studio.svg").write_text(svg.read_text(encoding="utf-8"), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens")
    parser.add_argument("--work", type=Path, help="folder for the demo data (default: a temporary one)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--skip-icons", action="store_true", help="do not write the icon PNGs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="bst-screens-"))
    os.environ.setdefault("BST_CACHE_DIR", str(work / "cache"))
    os.environ.setdefault("BST_DATA_DIR", str(work / "data"))

    QGuiApplication.setDesktopFileName("bst-studio")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from bst_core.config import TrainConfig
    from bst_gui import style
    from bst_gui.main_window import MainWindow
    from bst_gui.playback import AudioOutput
    from bst_gui.run_dialogs import ExtractOptions
    from bst_gui.settings import Settings

    style.apply(app)
    if not args.skip_icons:
        render_icons()

    class _Silent:       # screenshots need no sound device
        def query_devices(self, kind: str | None = None) -> dict:
            raise RuntimeError("no device while rendering")

    settings = Settings(QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, AudioOutput(sounddevice=_Silent()))
    window.show_error = lambda title, message, details="": print(f"ERROR {title}: {message}", file=sys.stderr)
    window.show_info = lambda title, message: None
    window.resize(SIZE)
    window.show()
    pump(app, 0.5)
    save(window, args.out / "welcome.png")

    # the demo corpus (offline embeddings) and a short cross-validation
    window.open_demo()
    wait_job(app, window)
    assert window.corpus is not None, "the demo corpus did not open"
    demo = window.corpus
    config = TrainConfig(folds=args.folds, epochs=args.epochs, patience=None)
    window.start_cross_validation(config, work / "demo-3-folds")
    wait_job(app, window)
    assert window.result is not None, "cross-validation did not finish"

    # results: the confusion matrix, after a click on an off-diagonal cell (table: out-of-fold)
    oof = window.result.oof
    errors = oof[oof["truth"] != oof["prediction"]]
    if len(errors):
        pair = errors.groupby(["truth", "prediction"]).size().idxmax()
        window.show_confusion_cell(*pair)
    window.results_dock.raise_()
    window.resize(SIZE.width(), 1250)
    window.resizeDocks([window.results_dock], [760], Qt.Orientation.Vertical)
    pump(app, 1.0)
    tabs = window.results_view.tabs           # in the dock (compact layout): the matrix tab
    for i in range(tabs.count()):
        if tabs.tabText(i) == "Confusion":
            tabs.setCurrentIndex(i)
    pump(app, 1.0)
    save(window, args.out / "results.png")

    # the results page: the same results full size in the window (View › Results page)
    window.resize(SIZE)
    window.show_results_page(True)       # large enough: table, bars and matrix side by side
    pump(app, 1.5)
    save(window, args.out / "results-page.png")
    window.show_results_page(False)

    # library with a selected clip, after predicting with the run's ensemble (attention weights)
    window.resize(SIZE)
    window.resizeDocks([window.results_dock], [330], Qt.Orientation.Vertical)
    window.start_prediction()
    wait_job(app, window)
    window.clear_filters()
    frame = window.library.frame
    window.library_view.table.sortByColumn(5, Qt.SortOrder.DescendingOrder)
    pick = frame.index[(frame["truth"] == "fx-v")]
    target = str(frame.loc[pick[0], "id"]) if len(pick) else str(frame["id"].iloc[0])
    window.select_id(target)
    window.training_dock.raise_()
    pump(app, 1.5)
    window.library_view.table.setFocus()
    save(window, args.out / "library.png")

    # the same window on a 1366×768 screen
    window.resize(SMALL)
    pump(app, 1.0)
    save(window, args.out / "small-screen.png")
    window.resize(SIZE)

    # a running job: cross-validation with live curves and the progress bar
    window.start_cross_validation(TrainConfig(folds=5, epochs=60, patience=None, seed=7), work / "run-live")
    window.training_dock.raise_()
    start = time.perf_counter()
    while window.jobs.busy and time.perf_counter() - start < 120:
        pump(app, 0.2)
        curves = window.training_curves
        if curves is not None and curves.folds() and len(curves.points(curves.folds()[-1])) >= 12:
            break
    pump(app, 0.5)
    save(window, args.out / "job.png")
    window.jobs.cancel()
    wait_job(app, window)

    # the demo evaluation folder, predicted by the demo run (trained on other data): its results are
    # titled with that data, its out-of-fold predictions stay out; one 0-byte file is text only
    evaluation = window.corpus.root.parent / "BSD2k-demo"
    run_dir = window.result.run_dir
    window.open_source(evaluation)
    wait_job(app, window)
    window.start_extraction(ExtractOptions("offline", None, False))
    wait_job(app, window)
    window.load_run(run_dir)
    wait_job(app, window)
    window.start_prediction()
    wait_job(app, window)
    frame = window.library.frame
    text_only = frame.index[frame["audio"].str.startswith("text only")]
    window.select_id(str(frame.loc[text_only[0], "id"]) if len(text_only) else str(frame["id"].iloc[0]))
    window.results_dock.raise_()
    pump(app, 1.5)
    window.library_view.table.setFocus()
    save(window, args.out / "evaluation.png")

    # a librarian's sorted folder: truth from its class-named subfolders, cross-validated
    librarian = make_librarian_folder(demo, work / "sounds")
    window.open_source(librarian, truth_from_subfolders=True)
    wait_job(app, window)
    assert window.corpus is not None and window.corpus.labelled, "truth from subfolders gave no labels"
    window.start_extraction(ExtractOptions("offline", None, False))
    wait_job(app, window)
    window.start_cross_validation(TrainConfig(folds=3, epochs=4 * args.epochs, patience=None), work / "run-librarian")
    wait_job(app, window)
    window.library_view.disagree.setChecked(True)          # truth ≠ prediction
    if window.library.rowCount():
        window.library_view.select_row(0)
    window.results_dock.raise_()
    pump(app, 1.5)
    window.library_view.table.setFocus()
    save(window, args.out / "librarian.png")
    window.close()
    from bst_gui.jobs import threads_left_running

    while threads_left_running():        # jobs given up on at closing end on their own
        pump(app, 0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
