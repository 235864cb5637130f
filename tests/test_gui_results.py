"""Results widgets offscreen: confusion cells and class bars drive the library, the metric table,
the adapter over a run's metrics.json, live training curves."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QPoint, Qt

from bst_core.errors import BadInputError
from bst_core.jobs import Progress
from bst_core.metrics import confusion_matrix, evaluate, summarize
from bst_core.runs import json_ready
from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS
from bst_gui.class_bars import ClassBars
from bst_gui.confusion_view import ConfusionView
from bst_gui.results_view import ResultsView, results_from_metrics
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


def _metrics_json(folds: int = 3) -> dict:
    """A run's metrics.json as bst_core.training writes it."""
    reports, truth_all, pred_all = [], [], []
    for k in range(folds):
        truth, pred = _predictions(seed=k)
        reports.append(evaluate(truth, pred))
        truth_all += truth
        pred_all += pred
    summary = summarize(reports)
    return json_ready({
        "lam": 0.75, "absent": "reference", "mode": "both", "n_items": len(truth_all),
        "folds_done": list(range(1, folds + 1)), "status": "complete",
        "folds": [{"fold": k, "best_epoch": 3, **r.to_dict()} for k, r in enumerate(reports, start=1)],
        "summary": {name: {"mean": m, "std": s} for name, (m, s) in summary.items()},
        "pooled": evaluate(truth_all, pred_all).to_dict(), "class_keys": list(CLASS_KEYS),
        "confusion": confusion_matrix(truth_all, pred_all),
    })


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


def test_results_view_shows_folds_summary_and_mode(qtbot) -> None:
    view = ResultsView()
    qtbot.addWidget(view)
    metrics = _metrics_json(folds=3)
    view.set_result(metrics)
    table = view.table_text()
    assert [row[0] for row in table[1:]] == ["fold 1", "fold 2", "fold 3", "mean ± std", "pooled (out-of-fold)"]
    hf_column = table[0].index("hF")
    mean, std = metrics["summary"]["hF"]["mean"], metrics["summary"]["hF"]["std"]
    assert table[4][hf_column] == f"{100 * mean:.2f} ± {100 * std:.2f}"
    assert table[1][hf_column] == f"{100 * metrics['folds'][0]['hF']:.2f}"
    assert "reference (organizers' behaviour" in view.mode_label.text()
    assert "λ = 0.75" in view.mode_label.text() and "fx-m" in view.mode_label.text()
    np.testing.assert_array_equal(view.confusion.canvas.counts(), np.asarray(metrics["confusion"]))
    emitted = []
    view.cell_clicked.connect(lambda t, p: emitted.append((t, p)))
    view.class_clicked.connect(lambda k: emitted.append(k))
    view.confusion.canvas.cell_clicked.emit("fx-o", "fx-v")
    view.bars.class_clicked.emit("is-p")
    assert emitted == [("fx-o", "fx-v"), "is-p"]
    view.clear()
    assert view.data is None and view.table.rowCount() == 0


def test_adapter_reads_a_single_report_and_a_cross_val_result() -> None:
    truth, pred = _predictions()
    report = evaluate(truth, pred, absent="strict")
    data = results_from_metrics({**report.to_dict(), "confusion": confusion_matrix(truth, pred).tolist()})
    assert data.folds == [] and data.absent == "strict" and data.pooled.hF == pytest.approx(report.hF)
    result = SimpleNamespace(fold_reports=[report, report], folds=[1, 2], report=report,
                             summary=summarize([report, report]), confusion=confusion_matrix(truth, pred),
                             status="complete")
    data = results_from_metrics(result)
    assert [k for k, _ in data.folds] == [1, 2] and data.summary["hF"][1] == 0
    with pytest.raises(BadInputError, match=r"metrics\.json"):
        results_from_metrics({"something": 1})
    with pytest.raises(BadInputError, match="taxonomy order"):
        results_from_metrics({**report.to_dict(), "confusion": [[1, 2], [3, 4]]})


def test_training_curves_follow_progress_and_load_a_run(qtbot) -> None:
    curves = TrainingCurves()
    qtbot.addWidget(curves)
    curves.reset()
    for fold in (1, 2):
        for epoch, hf in enumerate((0.5, 0.7, 0.65), start=1):
            curves.add_progress(Progress(f"fold {fold}/5", epoch, 10, "",
                                         {"fold": fold, "epoch": epoch, "loss": 1.0 / epoch, "val_hf": hf}))
    curves.add_progress(Progress("fold 3/5", 0, 10, "training", {"fold": 3}))  # not an epoch: ignored
    assert curves.folds() == [1, 2]
    points = curves.points(2)
    assert list(points["epoch"]) == [1, 2, 3] and list(points["val_hf"]) == pytest.approx([50, 70, 65])
    assert "best val hF 70.00% (epoch 2)" in curves.status.text()
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
    view.set_result(_metrics_json())
    view.confusion.set_mode("row")
    full = view.grab()
    assert not empty.isNull() and full.width() == 1200
    assert full.save(str(tmp_path / "results.png"))
    assert full.toImage() != empty.toImage()
