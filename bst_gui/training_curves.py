"""Live cross-validation curves: training loss and validation hF per fold (pyqtgraph).

Fed point by point from the job's progress (``Progress.data`` carries ``fold``, ``epoch``,
``loss``, ``val_hf``) or all at once from a finished run's ``fold_<k>/history.csv``. The best
epoch of each fold (highest validation hF, the checkpoint training keeps) is marked. The legend is
a line of text above the plots (never over the curves, however many folds); the status line says
the mean of the best validation hF of the folds that have finished, and how many they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from bst_core.errors import BadInputError
from bst_core.jobs import Progress

FOLD_COLOURS: tuple[str, ...] = ("#4c8dff", "#ff8c42", "#3ccf8e", "#e05cc4", "#f2c94c",
                                 "#56ccf2", "#eb5757", "#a78bfa", "#9ca3af", "#84cc16")
"""Line colour of fold k is FOLD_COLOURS[(k - 1) % 10] (distinct from the class colours' role)."""

REDRAW_INTERVAL_MS = 250
"""Live points are drawn at most this often: a pyqtgraph redraw costs tens of ms on 2 cores."""


@dataclass
class _Fold:
    epochs: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_hf: list[float] = field(default_factory=list)
    loss_curve: pg.PlotDataItem | None = None
    hf_curve: pg.PlotDataItem | None = None
    best_marker: pg.ScatterPlotItem | None = None


class TrainingCurves(QWidget):
    """Two plots side by side: training loss and validation hF, one line per fold."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._folds: dict[int, _Fold] = {}
        self._finished: set[int] = set()
        self._dirty: set[int] = set()
        self._redraw_timer = QTimer(self, singleShot=True, interval=REDRAW_INTERVAL_MS)
        self._redraw_timer.timeout.connect(self.flush)
        dark = self.palette().base().color().lightness() < 128
        background = self.palette().base().color()
        foreground = QColor("#b8bcc4" if dark else "#333333")
        self.loss_plot = self._make_plot("Training loss", "loss", background, foreground)
        self.hf_plot = self._make_plot("Validation hF", "hF (%)", background, foreground)
        self.hf_plot.getPlotItem().setLimits(yMin=0, yMax=101)
        self.legend = QLabel("")          # outside the plots: it never covers a curve
        self.legend.setObjectName("curveLegend")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        self.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.legend.hide()
        self.status = QLabel("No training yet: start a cross-validation to watch it learn.")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        plots = QHBoxLayout()
        plots.setContentsMargins(0, 0, 0, 0)
        plots.addWidget(self.loss_plot, 1)
        plots.addWidget(self.hf_plot, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.legend)
        layout.addLayout(plots, 1)
        layout.addWidget(self.status)

    @staticmethod
    def _make_plot(title: str, y_label: str, background: QColor, foreground: QColor) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=background)
        item = plot.getPlotItem()
        item.setTitle(title, color=foreground, size="9pt")
        item.setLabel("bottom", "epoch", color=foreground.name())
        item.setLabel("left", y_label, color=foreground.name())
        # No grid: its translucent lines cost ~45 ms per repaint in software rendering (vs ~3 ms without).
        item.setMenuEnabled(False)
        for axis in ("left", "bottom"):
            item.getAxis(axis).setPen(pg.mkPen(foreground))
            item.getAxis(axis).setTextPen(pg.mkPen(foreground))
        plot.setMinimumSize(200, 140)
        plot.setMouseEnabled(x=False, y=False)
        return plot

    # feeding ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every curve (a new cross-validation starts)."""
        for plot in (self.loss_plot, self.hf_plot):
            plot.getPlotItem().clear()
        self._folds.clear()
        self._finished.clear()
        self._update_legend()
        self._dirty.clear()
        self._redraw_timer.stop()
        self.status.setText("Waiting for the first epoch…")

    clear = reset

    def add_progress(self, progress: Progress) -> None:
        """Take one job progress report; those carrying fold, epoch, loss and val_hf become points."""
        data = progress.data
        if "fold" not in data:
            return
        fold = int(data["fold"])
        # folds train one after the other: a report of fold k means every other fold has finished
        self._finished |= {f for f in self._folds if f != fold}
        if data.get("reused"):
            self._finished.add(fold)
        if not all(k in data for k in ("epoch", "loss", "val_hf")):
            self.status.setText(self._summary(fold))
            return
        self.add_point(fold, int(data["epoch"]), data["loss"], data["val_hf"])
        if progress.total is not None and int(data["epoch"]) >= progress.total:
            self.mark_finished(fold)

    def mark_finished(self, fold: int) -> None:
        """Fold ``fold`` has finished training (its best epoch counts in the mean)."""
        self._finished.add(fold)
        if fold in self._folds:
            self.status.setText(self._summary(fold))

    def add_point(self, fold: int, epoch: int, loss: float | None, val_hf: float | None) -> None:
        """Append one epoch of a fold (``val_hf`` as a fraction; None/NaN leave a gap)."""
        state = self._fold(fold)
        state.epochs.append(float(epoch))
        state.loss.append(_number(loss))
        state.val_hf.append(100 * _number(val_hf))
        self._dirty.add(fold)
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()
        self.status.setText(self._summary(fold))

    def flush(self) -> None:
        """Draw the folds that received points since the last redraw."""
        for fold in sorted(self._dirty):
            if fold in self._folds:
                self._redraw(fold)
        self._dirty.clear()

    def set_history(self, fold: int, history: pd.DataFrame) -> None:
        """Replace a fold's curves with a whole history (columns epoch, loss, val_hf)."""
        state = self._fold(fold)
        state.epochs = [float(x) for x in history["epoch"]]
        state.loss = [_number(x) for x in history["loss"]]
        state.val_hf = [100 * _number(x) for x in history["val_hf"]]
        self._finished.add(fold)             # a history on disk is a finished fold's
        self._redraw(fold)

    def load_run(self, run) -> None:
        """Show the histories of a finished run (``bst_core.runs.RunFolder``); missing ones are skipped."""
        self.reset()
        for fold in run.fold_numbers():
            try:
                self.set_history(fold, run.history(fold))
            except BadInputError:
                continue
        if not self._folds:
            self.status.setText("This run has no training history to show.")

    def folds(self) -> list[int]:
        return sorted(self._folds)

    def finished_folds(self) -> list[int]:
        """Folds with points that have finished training."""
        return sorted(self._finished & set(self._folds))

    def points(self, fold: int) -> pd.DataFrame:
        """The fold's points as drawn (epoch, loss, val_hf in percent)."""
        state = self._folds[fold]
        return pd.DataFrame({"epoch": state.epochs, "loss": state.loss, "val_hf": state.val_hf})

    # drawing ------------------------------------------------------------------------------------

    def _fold(self, fold: int) -> _Fold:
        if fold not in self._folds:
            colour = QColor(FOLD_COLOURS[(fold - 1) % len(FOLD_COLOURS)])
            pen = pg.mkPen(colour, width=2)
            state = _Fold()
            state.loss_curve = self.loss_plot.plot([], [], pen=pen, connect="finite")
            state.hf_curve = self.hf_plot.plot([], [], pen=pen, connect="finite")
            state.best_marker = pg.ScatterPlotItem(size=9, pen=pg.mkPen("#ffffff", width=1), brush=colour,
                                                   symbol="o")
            self.hf_plot.addItem(state.best_marker)
            self._folds[fold] = state
            self._update_legend()
        return self._folds[fold]

    def _update_legend(self) -> None:
        """One entry per fold in its colour, and what the dots mean."""
        entries = [f"<span style='color:{FOLD_COLOURS[(k - 1) % len(FOLD_COLOURS)]}'>━━</span>&nbsp;fold&nbsp;{k}"
                   for k in sorted(self._folds)]
        if entries:
            entries.append("●&nbsp;best epoch (the checkpoint kept)")
        self.legend.setText("&nbsp;&nbsp;&nbsp; ".join(entries))
        self.legend.setVisible(bool(entries))

    def legend_entries(self) -> list[str]:
        """The legend's entries as plain text (tests)."""
        return [f"fold {k}" for k in sorted(self._folds)]

    def _redraw(self, fold: int) -> None:
        state = self._folds[fold]
        assert state.loss_curve is not None and state.hf_curve is not None and state.best_marker is not None
        state.loss_curve.setData(state.epochs, state.loss)
        state.hf_curve.setData(state.epochs, state.val_hf)
        best = _best(state)
        state.best_marker.setData([state.epochs[best]] if best is not None else [],
                                  [state.val_hf[best]] if best is not None else [])
        self.status.setText(self._summary(fold))

    def _summary(self, latest: int) -> str:
        """The latest fold's epoch and best validation hF; the finished folds' mean best, counted."""
        state = self._folds.get(latest)
        if state is None or not state.epochs:
            text = f"fold {latest} · " + ("finished" if latest in self._finished else "training started")
        else:
            best = _best(state)
            text = f"fold {latest} · epoch {int(state.epochs[-1])}"
            if best is not None:
                text += f" · best val hF {state.val_hf[best]:.2f}% (epoch {int(state.epochs[best])})"
        bests = {k: s.val_hf[b] for k, s in self._folds.items()
                 if k in self._finished and (b := _best(s)) is not None}
        if len(bests) == 1:
            (k, value), = bests.items()
            text += f" · fold {k} finished: best {value:.2f}%" if k != latest else " · finished"
        elif bests:
            text += f" · mean of the {len(bests)} finished folds' best: {sum(bests.values()) / len(bests):.2f}%"
        return text


def _best(state: _Fold) -> int | None:
    """Index of the first epoch with the highest validation hF (what training keeps)."""
    finite = [(v, -i) for i, v in enumerate(state.val_hf) if not math.isnan(v)]
    return -max(finite)[1] if finite else None


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


__all__ = ["FOLD_COLOURS", "TrainingCurves"]
