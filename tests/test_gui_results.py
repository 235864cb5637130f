"""Results widgets offscreen: confusion cells and class bars drive the library, the metric table,
the adapter over a run's metrics.json, live training curves."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QPoint, Qt

from bst_core.config import TrainConfig
from bst_core.corpus import EncoderInfo
from bst_core.jobs import Progress
from bst_core.metrics import confusion_matrix, evaluate
from bst_core.runs import CrossValResult, oof_table, results_from_table
from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS
from bst_gui.class_bars import ClassBars
from bst_gui.confusion_view import ConfusionView
from bst_gui.results_view import ResultsView
from bst_gui.training_curves import TrainingCurves

pytestmark = pytest.mark.gui


def _predictions(n: int = 400, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(CLASS_KEYS), n)
    pred = np.where(rng.random(n) < 0.7, truth, rng.integers(0, len(CLASS_KEYS), n))
    keys = np.array(CLASS_KEYS)
    pred_keys = keys[pred]
    pred_keys[pred_keys == "fx-m"] = "fx-o"  # fx-m is never predicted: dropped in reference mode
    return keys[truth].tolist(), pred_keys.tolist()


def _result(folds: int = 3, *, of: int | None = None, dataset_root: str = "/data/BSD10k",
            synthetic: bool = False) -> CrossValResult:
    """A cross-validation result as ``runs.py`` builds it (``folds`` finished of ``of``)."""
    of = of or folds
    ids, truth, pred, fold_of = [], [], [], []
    for k in range(1, folds + 1):
        t, p = _predictions(seed=k)
        ids += [f"{k}-{i}" for i in range(len(t))]
        truth += t
        pred += p
        fold_of += [k] * len(t)
    probs = np.full((len(pred), len(CLASS_KEYS)), 0.01)
    probs[np.arange(len(pred)), [CLASS_INDEX[p] for p in pred]] = 0.9
    oof = oof_table(ids, truth, probs, np.array(fold_of), ["ok"] * len(ids))
    config = TrainConfig(folds=of)
    best = {k: 3 for k in range(1, folds + 1)}
    reports, pooled, confusion = results_from_table(oof, best, config)
    return CrossValResult(Path("/runs/run-7"), config, EncoderInfo("offline-logmel-ngram", "1", 192, 512), reports,
                          oof, pooled, confusion, folds=sorted(best), best_epochs=list(best.values()),
                          status="complete" if folds == of else "partial", dataset_root=dataset_root,
                          synthetic=synthetic)


def test_clicking_a_confusion_cell_emits_truth_and_prediction(qtbot) -> None:
    view = ConfusionView()
    qtbot.addWidget(view)
    view.resize(900, 820)
    view.show()
    qtbot.waitExposed(view)
    truth, pred = _predictions()
    view.set_matrix(confusion_matrix(truth, pred))
    canvas = view.canvas
    for row, col in ((CLASS_INDEX["fx-v"], CLASS_INDEX["fx-o"]), (0, 0), (22, 5)):
        rect = canvas.cell_rect(row, col)
        with qtbot.waitSignal(view.cell_clicked, timeout=1000) as blocker:
            qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=rect.center())
        assert blocker.args == [CLASS_KEYS[row], CLASS_KEYS[col]]
    # outside the cells (the header area) nothing is emitted
    with qtbot.assertNotEmitted(view.cell_clicked):
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(3, 3))
    # hovering a cell marks it and points; leaving the cells clears it
    inside = canvas.cell_rect(0, 0).center()
    qtbot.mouseMove(canvas, inside)
    qtbot.waitUntil(lambda: canvas._hover == (0, 0), timeout=1000)
    assert canvas.cursor().shape() == Qt.CursorShape.PointingHandCursor
    qtbot.mouseMove(canvas, QPoint(3, 3))
    qtbot.waitUntil(lambda: canvas._hover is None, timeout=1000)
    assert canvas.cursor().shape() == Qt.CursorShape.ArrowCursor


def test_confusion_modes_and_tooltip(qtbot) -> None:
    view = ConfusionView()
    qtbot.addWidget(view)
    counts = np.zeros((23, 23), dtype=int)
    counts[0, 0], counts[0, 1], counts[1, 1] = 3, 1, 5
    view.set_matrix(counts)
    assert view.canvas.display_values()[0, 1] == 1
    view.row_button.click()
    assert view.mode == "row"
    np.testing.assert_allclose(view.canvas.display_values()[0, :2], [0.75, 0.25])
    assert view.canvas.display_values()[5].sum() == 0  # an empty row stays 0, not NaN
    tip = view.canvas.tooltip_text(0, 1)
    assert "m-sp Solo percussion" in tip and "m-si Solo instrument" in tip and "25.0%" in tip
    with pytest.raises(ValueError, match="shape"):
        view.set_matrix(np.zeros((3, 3)))


def test_clicking_a_class_bar_emits_its_key(qtbot) -> None:
    bars = ClassBars()
    qtbot.addWidget(bars)
    bars.resize(600, 760)
    bars.show()
    qtbot.waitExposed(bars)
    bars.set_report(evaluate(*_predictions()))
    assert bars.keys() == CLASS_KEYS  # taxonomy order
    for key in ("m-sp", "fx-m", "ss-s"):
        with qtbot.waitSignal(bars.class_clicked, timeout=1000) as blocker:
            qtbot.mouseClick(bars, Qt.MouseButton.LeftButton, pos=bars.row_rect(key).center())
        assert blocker.args == [key]
    assert "never predicted" in bars.tooltip_text("fx-m")
    qtbot.mouseMove(bars, bars.row_rect("fx-m").center())
    qtbot.waitUntil(lambda: bars._hover == "fx-m", timeout=1000)
    assert bars.cursor().shape() == Qt.CursorShape.PointingHandCursor


def test_results_view_shows_folds_summary_and_mode(qtbot) -> None:
    view = ResultsView()
    qtbot.addWidget(view)
    result = _result(folds=3)
    view.set_result(result)
    assert view.title.text() == "Run run-7 — trained on BSD10k"
    table = view.table_text()
    assert [row[0] for row in table[1:]] == ["fold 1", "fold 2", "fold 3", "mean ± std", "pooled (out-of-fold)"]
    hf_column = table[0].index("hF")
    mean, std = result.summary["hF"]
    assert table[4][hf_column] == f"{100 * mean:.2f} ± {100 * std:.2f}"
    assert table[1][hf_column] == f"{100 * result.fold_reports[0].hF:.2f}"
    assert table[5][hf_column] == f"{100 * result.report.hF:.2f}"
    assert "reference (organizers' behaviour" in view.mode_label.text()
    assert "λ = 0.75" in view.mode_label.text() and "fx-m" in view.mode_label.text()
    assert "3-fold cross-validation" in view.mode_label.text() and "offline-logmel-ngram" in view.mode_label.text()
    assert not view.notice.isVisibleTo(view)
    np.testing.assert_array_equal(view.confusion.canvas.counts(), result.confusion)
    emitted = []
    view.cell_clicked.connect(lambda t, p: emitted.append((t, p)))
    view.class_clicked.connect(lambda k: emitted.append(k))
    view.confusion.canvas.cell_clicked.emit("fx-o", "fx-v")
    view.bars.class_clicked.emit("is-p")
    assert emitted == [("fx-o", "fx-v"), "is-p"]
    view.clear()
    assert view.data is None and view.table.rowCount() == 0


def test_a_run_of_other_data_is_titled_with_that_data(qtbot) -> None:
    view = ResultsView()
    qtbot.addWidget(view)
    view.set_result(_result(folds=2, of=5, dataset_root="/demo/BSD10k-demo", synthetic=True), for_source=False)
    assert view.title.text() == "Run run-7 — trained on BSD10k-demo (synthetic)"
    assert view.notice.isVisibleTo(view) and "Not the open source" in view.notice.text()
    assert "2 of 5 folds" in view.mode_label.text() and "folds 3, 4, 5 not finished" in view.mode_label.text()
    assert [row[0] for row in view.table_text()[1:]] == ["fold 1", "fold 2", "mean ± std", "pooled (out-of-fold)"]
    view.set_result(_result(folds=2))
    assert not view.notice.isVisibleTo(view)


def test_training_curves_follow_progress_and_load_a_run(qtbot) -> None:
    curves = TrainingCurves()
    qtbot.addWidget(curves)
    curves.reset()
    for fold in (1, 2):
        for epoch, hf in enumerate((0.5, 0.7, 0.65), start=1):
            curves.add_progress(Progress(f"fold {fold}/5", epoch, 10, "",
                                         {"fold": fold, "epoch": epoch, "loss": 1.0 / epoch, "val_hf": hf}))
    points = curves.points(2)
    assert list(points["epoch"]) == [1, 2, 3] and list(points["val_hf"]) == pytest.approx([50, 70, 65])
    assert "best val hF 70.00% (epoch 2)" in curves.status.text()
    assert "fold 1 finished: best 70.00%" in curves.status.text()      # fold 2 is still training
    assert "mean" not in curves.status.text()
    curves.add_progress(Progress("fold 3/5", 0, 10, "training", {"fold": 3}))  # not an epoch: no point
    assert curves.folds() == [1, 2] and curves.finished_folds() == [1, 2]
    assert "fold 3 · training started" in curves.status.text()
    assert "mean of the 2 finished folds' best: 70.00%" in curves.status.text()
    curves.add_point(2, 4, None, math.nan)  # gaps are allowed
    assert math.isnan(curves.points(2)["loss"].iloc[-1])

    history = pd.DataFrame({"epoch": [1, 2], "loss": [0.9, 0.4], "val_hf": [0.6, 0.8]})
    run = SimpleNamespace(fold_numbers=lambda: [1, 4], history=lambda k: history)
    curves.load_run(run)
    assert curves.folds() == [1, 4] and list(curves.points(4)["val_hf"]) == pytest.approx([60, 80])
    curves.clear()
    assert curves.folds() == []


def test_widgets_render_to_png(qtbot, tmp_path) -> None:
    """Every widget paints with data and without (no exception; an image of the right size)."""
    view = ResultsView()
    qtbot.addWidget(view)
    view.resize(1200, 900)
    empty = view.grab()
    view.set_result(_result())
    view.confusion.set_mode("row")
    full = view.grab()
    assert not empty.isNull() and full.width() == 1200
    assert full.save(str(tmp_path / "results.png"))
    assert full.toImage() != empty.toImage()


# --- several confusion cells (Ctrl+click, Shift+click) ---------------------------------------------

def _shown_matrix(qtbot) -> ConfusionView:
    view = ConfusionView()
    qtbot.addWidget(view)
    view.resize(900, 820)
    view.show()
    qtbot.waitExposed(view)
    view.set_matrix(confusion_matrix(*_predictions()))
    return view


def _click(qtbot, canvas, cell: tuple[str, str], modifier=Qt.KeyboardModifier.NoModifier) -> None:
    rect = canvas.cell_rect(CLASS_INDEX[cell[0]], CLASS_INDEX[cell[1]])
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, modifier, rect.center())


def test_ctrl_click_selects_several_cells_and_draws_them(qtbot) -> None:
    from PySide6.QtGui import QColor

    from bst_gui.confusion_view import SELECTION_COLOUR

    view = _shown_matrix(qtbot)
    canvas = view.canvas
    ctrl = Qt.KeyboardModifier.ControlModifier
    _click(qtbot, canvas, ("fx-v", "fx-o"))
    assert canvas.selected_cells() == [("fx-v", "fx-o")]
    with qtbot.waitSignal(view.cells_selected, timeout=1000) as blocker:
        _click(qtbot, canvas, ("is-p", "is-s"), ctrl)
    assert blocker.args == [[("fx-v", "fx-o"), ("is-p", "is-s")]]
    with qtbot.assertNotEmitted(view.cell_clicked):       # Ctrl+click is not a plain click
        _click(qtbot, canvas, ("m-sp", "m-sp"), ctrl)
    assert canvas.selected_cells() == [("fx-v", "fx-o"), ("is-p", "is-s"), ("m-sp", "m-sp")]
    assert "3 cells selected" in view.caption.text()
    assert str(canvas.clips_in(canvas.selected_cells())) in view.caption.text().replace(",", "")
    image = canvas.grab().toImage()
    for truth, pred in canvas.selected_cells():
        rect = canvas.cell_rect(CLASS_INDEX[truth], CLASS_INDEX[pred])
        assert image.pixelColor(rect.left() + 2, rect.center().y()) == QColor(SELECTION_COLOUR)
    rect = canvas.cell_rect(CLASS_INDEX["ss-s"], CLASS_INDEX["ss-s"])        # not selected: not outlined
    assert image.pixelColor(rect.left() + 2, rect.center().y()) != QColor(SELECTION_COLOUR)
    with qtbot.waitSignal(view.cells_selected, timeout=1000) as blocker:      # Ctrl+click again removes
        _click(qtbot, canvas, ("is-p", "is-s"), ctrl)
    assert blocker.args == [[("fx-v", "fx-o"), ("m-sp", "m-sp")]]
    _click(qtbot, canvas, ("m-sp", "m-sp"))                                   # the corner of a block
    with qtbot.waitSignal(view.cells_selected, timeout=1000) as blocker:      # Shift+click: the block
        _click(qtbot, canvas, ("m-si", "m-si"), Qt.KeyboardModifier.ShiftModifier)
    assert sorted(blocker.args[0]) == [("m-si", "m-si"), ("m-si", "m-sp"), ("m-sp", "m-si"), ("m-sp", "m-sp")]
    with qtbot.waitSignal(view.cell_clicked, timeout=1000):                   # a plain click: one cell again
        _click(qtbot, canvas, ("ss-n", "ss-u"))
    assert canvas.selected_cells() == [("ss-n", "ss-u")]
    view.set_matrix(confusion_matrix(*_predictions(seed=3)))                 # new data: nothing selected
    assert canvas.selected_cells() == []


def test_results_view_forwards_several_cells(qtbot) -> None:
    view = ResultsView()
    qtbot.addWidget(view)
    view.set_result(_result())
    with qtbot.waitSignal(view.cells_selected, timeout=1000) as blocker:
        view.confusion.canvas.cells_selected.emit([("fx-o", "fx-v"), ("fx-v", "fx-o")])
    assert blocker.args == [[("fx-o", "fx-v"), ("fx-v", "fx-o")]]


def _close_and_settle(window) -> None:
    """Close ``window`` and let every job and import it started end (a thread outliving its window aborts)."""
    from PySide6.QtCore import QTimer

    from bst_gui.jobs import JobRunner, warm_up_imports

    for timer in window.findChildren(QTimer):
        timer.stop()
    window.close()
    for runner in window.findChildren(JobRunner):
        if runner.busy:
            runner.cancel()
        assert runner.wait(60_000), f"job {runner.title!r} did not end"
    warm_up_imports().join(120)      # the window's background imports end inside the test, not in teardown


def test_ctrl_clicked_cells_list_the_union_of_their_clips(qtbot, tmp_path, bsd_root) -> None:
    from PySide6.QtCore import QSettings

    from bst_core.sources import read_bsd_dataset
    from bst_gui.main_window import MainWindow
    from bst_gui.playback import AudioOutput
    from bst_gui.settings import Settings

    class NoDevice:
        def query_devices(self, kind=None):
            raise RuntimeError("no device in tests")

    corpus = read_bsd_dataset(bsd_root)
    truth = corpus.table["label"].astype(str).tolist()
    rng = np.random.default_rng(5)
    keys = np.array(CLASS_KEYS)
    pred = np.where(rng.random(len(truth)) < 0.5, truth, keys[rng.integers(0, len(keys), len(truth))]).tolist()
    probs = np.full((len(pred), len(CLASS_KEYS)), 0.01)
    probs[np.arange(len(pred)), [CLASS_INDEX[p] for p in pred]] = 0.9
    oof = oof_table(list(corpus.ids), truth, probs, np.arange(len(truth)) % 2 + 1, ["ok"] * len(truth))
    config = TrainConfig(folds=2)
    reports, pooled, confusion = results_from_table(oof, {1: 1, 2: 1}, config)
    run = CrossValResult(tmp_path / "no-run", config, EncoderInfo("offline-logmel-ngram", "1", 192, 512), reports,
                         oof, pooled, confusion, folds=[1, 2], best_epochs=[1, 1], dataset_root=str(bsd_root))

    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, AudioOutput(sounddevice=NoDevice()))
    qtbot.addWidget(window)
    window.show_error = lambda *a, **k: pytest.fail(f"error shown: {a}")
    window.open_source(bsd_root)
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=120_000)
    window.session.set_run(run)
    assert window.session.run_is_for_source

    pairs = oof.groupby(["truth", "prediction"]).size().sort_values(ascending=False)
    cells = [pairs.index[0], pairs.index[1], pairs.index[-1]]
    canvas = window.results_view.confusion.canvas
    canvas.set_selected_cells(cells[:1])
    canvas._toggle((CLASS_INDEX[cells[1][0]], CLASS_INDEX[cells[1][1]]))     # what Ctrl+click does
    canvas._toggle((CLASS_INDEX[cells[2][0]], CLASS_INDEX[cells[2][1]]))
    expected = set(oof.loc[[(t, p) in set(cells) for t, p in zip(oof["truth"], oof["prediction"], strict=True)],
                           "id"].astype(str))
    assert len(expected) == sum(int(pairs[c]) for c in cells)
    assert set(window.library.visible_ids()) == expected
    assert window.current_id() in expected                                    # the first one is selected
    assert f"{len(expected)} clips" in window.library_view.pair_button.text()
    assert window.show_confusion_cells([cells[0]]) == int(pairs[cells[0]])    # one cell: the same as a click
    assert window.show_confusion_cells([]) == len(corpus.ids)                 # none: every clip again
    _close_and_settle(window)


def test_dropped_classes_name_their_folds() -> None:
    from bst_gui.results_view import dropped_text

    def report(*dropped: str) -> SimpleNamespace:
        return SimpleNamespace(dropped=list(dropped))

    folds = [report(), report("fx-m"), report(), report("fx-m", "is-k")]
    result = SimpleNamespace(folds=[1, 2, 3, 4], fold_reports=folds,
                             report=report("fx-m"))
    assert dropped_text(result) == "is-k in fold 4; fx-m in folds 2, 4 and pooled"
    assert dropped_text(SimpleNamespace(folds=[1], fold_reports=[report()], report=report())) == ""
    view = ResultsView()
    view.set_result(_result(folds=3))
    assert "dropped: fx-m in folds 1, 2, 3 and pooled" in view.mode_label.text()
    assert "values in %" in view.mode_label.text()


def test_results_lay_out_full_size_and_in_a_small_dock(qtbot) -> None:
    view = ResultsView()
    qtbot.addWidget(view)
    view.set_result(_result(folds=5))
    view.resize(1600, 1000)
    view.show()
    qtbot.waitExposed(view)
    assert view.layout_mode == "full" and view.vertical.isVisible() and not view.tabs.isVisible()
    canvas = view.confusion.canvas
    assert canvas.cell_rect(0, 0).width() >= 24                     # legible: cells of 24 px or more
    assert view.table.height() >= view.table.maximumHeight() - 1     # every row of the table shows
    assert view.bars.height() <= view.bars_scroll.viewport().height()  # the bars need no scrolling
    view.resize(1300, 300)                                            # a short bottom dock
    assert view.layout_mode == "compact" and view.tabs.count() == 3 and view.tabs.isVisible()
    assert [view.tabs.tabText(i) for i in range(3)] == ["Metrics", "Per class", "Confusion"]
    shown = [w for w in (view.table, view.bars_scroll, view.confusion) if w.isVisible()]
    assert shown == [view.tabs.currentWidget()]                       # one page at a time, nothing under it
    assert view.mode_label.text().count("\n") == 1 and "never predicted: fx-m" in view.mode_label.text()
    mean, std = view.data.summary["hF"]
    assert f"hF {100 * mean:.2f} ± {100 * std:.2f} %" in view.mode_label.text()   # the headline stays in sight
    assert view.tabs.currentWidget() is view.confusion                 # first shown: the matrix
    assert "fx-m in folds 1, 2, 3, 4, 5 and pooled" in view.mode_label.toolTip()   # the details stay at hand
    view.tabs.setCurrentIndex(2)
    qtbot.wait(10)
    assert canvas.cell_rect(0, 0).width() >= 16                      # scrolls rather than shrinking
    view.tabs.setCurrentIndex(0)                                      # the other pages are hidden tabs now
    view.resize(1600, 1000)
    qtbot.wait(10)
    assert view.layout_mode == "full"
    assert view.confusion.isVisible() and view.bars_scroll.isVisible() and view.table.isVisible()
    view.resize(1300, 300)                                            # compact again: the keyboard scrolls
    view.tabs.setCurrentIndex(1)
    view.bars.setFocus()
    for _ in range(22):
        qtbot.keyClick(view.bars, Qt.Key.Key_Down)
    assert view.bars_scroll.verticalScrollBar().value() > 0
    view.resize(1600, 1000)
    assert view.confusion.height() > 600 and canvas.cell_rect(0, 0).width() >= 24   # the charts have the room
    minimum = view.layout().minimumSize()                              # every part scrolls: a small minimum
    assert minimum.width() <= 400 and minimum.height() <= 300


def test_training_legend_stays_outside_the_plots_and_the_mean_counts_finished_folds(qtbot) -> None:
    import pyqtgraph as pg

    curves = TrainingCurves()
    qtbot.addWidget(curves)
    curves.resize(700, 300)
    curves.show()
    qtbot.waitExposed(curves)
    curves.reset()
    bests = {1: 0.61, 2: 0.72, 3: 0.55, 4: 0.80, 5: 0.66}
    for fold, best in bests.items():
        for epoch in range(1, 11):
            hf = best if epoch == 6 else best - 0.1
            curves.add_progress(Progress(f"fold {fold}/5", epoch, 10, "",
                                         {"fold": fold, "epoch": epoch, "loss": 1.0 / epoch, "val_hf": hf}))
        if fold == 4:       # fold 5 only half done
            break
    curves.add_progress(Progress("fold 5/5", 3, 10, "", {"fold": 5, "epoch": 3, "loss": 0.3, "val_hf": 0.66}))
    curves.flush()
    qtbot.wait(10)
    assert curves.folds() == [1, 2, 3, 4, 5] and curves.finished_folds() == [1, 2, 3, 4]
    expected = 100 * sum(bests[k] for k in (1, 2, 3, 4)) / 4
    assert f"mean of the 4 finished folds' best: {expected:.2f}%" in curves.status.text()
    # the legend is a widget of its own, above the plots: nothing drawn inside them can cover a curve
    for plot in (curves.loss_plot, curves.hf_plot):
        assert not [i for i in plot.getPlotItem().scene().items() if isinstance(i, pg.LegendItem)]
        assert not curves.legend.geometry().intersects(plot.geometry())
    assert curves.legend.isVisible() and curves.legend.geometry().bottom() < curves.hf_plot.geometry().top()
    assert curves.legend_entries() == [f"fold {k}" for k in range(1, 6)]
    assert all(f"fold&nbsp;{k}" in curves.legend.text() for k in range(1, 6))


def test_the_matrix_works_from_the_keyboard(qtbot) -> None:
    view = _shown_matrix(qtbot)
    canvas = view.canvas
    assert canvas.focusPolicy() & Qt.FocusPolicy.TabFocus
    canvas.setFocus()
    qtbot.waitUntil(canvas.hasFocus, timeout=1000)
    before = canvas.grab().toImage()
    for key in (Qt.Key.Key_Right, Qt.Key.Key_Right, Qt.Key.Key_Down):
        qtbot.keyClick(canvas, key)
    assert canvas.cursor_cell() == (CLASS_KEYS[1], CLASS_KEYS[2])
    assert canvas.grab().toImage() != before                          # the cursor is drawn
    with qtbot.waitSignal(view.cell_clicked, timeout=1000) as blocker:
        qtbot.keyClick(canvas, Qt.Key.Key_Return)
    assert blocker.args == [CLASS_KEYS[1], CLASS_KEYS[2]]
    qtbot.keyClick(canvas, Qt.Key.Key_Down)
    with qtbot.waitSignal(view.cells_selected, timeout=1000) as blocker:
        qtbot.keyClick(canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == [[(CLASS_KEYS[1], CLASS_KEYS[2]), (CLASS_KEYS[2], CLASS_KEYS[2])]]
    for _ in range(30):
        qtbot.keyClick(canvas, Qt.Key.Key_Down)                       # the cursor stays inside the matrix
    assert canvas.cursor_cell()[0] == CLASS_KEYS[-1]


def test_the_class_bars_work_from_the_keyboard(qtbot) -> None:
    bars = ClassBars()
    qtbot.addWidget(bars)
    bars.resize(600, 760)
    bars.show()
    qtbot.waitExposed(bars)
    bars.set_report(evaluate(*_predictions()))
    bars.setFocus()
    qtbot.waitUntil(bars.hasFocus, timeout=1000)
    before = bars.grab().toImage()
    qtbot.keyClick(bars, Qt.Key.Key_Down)
    qtbot.keyClick(bars, Qt.Key.Key_Down)
    assert bars.cursor_key() == CLASS_KEYS[2] and bars.grab().toImage() != before
    with qtbot.waitSignal(bars.class_clicked, timeout=1000) as blocker:
        qtbot.keyClick(bars, Qt.Key.Key_Return)
    assert blocker.args == [CLASS_KEYS[2]]


def test_percent_tick_labels_never_overlap_on_a_narrow_bar_column(qtbot) -> None:
    from PySide6.QtGui import QFontMetrics

    from bst_gui.class_bars import TICK_LABEL_GAP, tick_labels

    metrics = QFontMetrics(ClassBars().font())
    for bar_w in (60, 90, 140, 400):
        labels = tick_labels(10, bar_w, metrics.horizontalAdvance)
        texts = [text for _, text in labels]
        assert texts[-1] == "100%" and (bar_w < 90 or texts[0] == "0%")
        spans = [(left, left + metrics.horizontalAdvance(text)) for left, text in labels]
        for (_, right), (left, _) in itertools.pairwise(spans):
            assert left >= right + TICK_LABEL_GAP, (bar_w, labels)
    assert [text for _, text in tick_labels(10, 400, metrics.horizontalAdvance)] == ["0%", "25", "50", "75", "100%"]
