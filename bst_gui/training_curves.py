"""Live cross-validation curves: training loss and validation hF per fold (pyqtgraph).

Fed point by point from the job's progress (``Progress.data`` carries ``fold``, ``epoch``,
``loss``, ``val_hf``) or all at once from a finished run's ``fold_<k>/history.csv``. The best
epoch of each fold (highest validation hF, the checkpoint training keeps) is marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

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
        self._dirty: set[int] = set()
        self._redraw_timer = QTimer(self, singleShot=True, interval=REDRAW_INTERVAL_MS)
        self._redraw_timer.timeout.connect(self.flush)
        dark = self.palette().base().color().lightness() < 128
        background = self.palette().base().color()
        foreground = QColor("#b8bcc4" if dark else "#333333")
        self.loss_plot = self._make_plot("Training loss", "loss", background, foreground)
        self.hf_plot = self._make_plot("Validation hF", "hF (%)", background, foreground)
        self.hf_plot.getPlotItem().setLimits(yMin=0, yMax=101)
        self.legend = self.hf_plot.getPlotItem().addLegend(offset=(-10, -10), labelTextColor=foreground,
                                                           labelTextSize="8pt")
        self.legend.setBrush(pg.mkBrush(background.red(), background.green(), background.blue(), 200))
        self.status = QLabel("No training yet: start a cross-validation to watch it learn.")
        self.status.setObjectName("muted")
        plots = QHBoxLayout()
        plots.setContentsMargins(0, 0, 0, 0)
        plots.addWidget(self.loss_plot, 1)
        plots.addWidget(self.hf_plot, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
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
        plot.setMinimumSize(240, 180)
        plot.setMouseEnabled(x=False, y=False)
        return plot

    # feeding ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every curve (a new cross-validation starts)."""
        for plot in (self.loss_plot, self.hf_plot):
            plot.getPlotItem().clear()
        self.legend.clear()
        self._folds.clear()
        self._dirty.clear()
        self._redraw_timer.stop()
        self.status.setText("Waiting for the first epoch…")

    clear = reset

    def add_progress(self, progress: Progress) -> None:
        """Take one job progress report; those carrying fold, epoch, loss and val_hf become points."""
        data = progress.data
        if not all(k in data for k in ("fold", "epoch", "loss", "val_hf")):
            return
        self.add_point(int(data["fold"]), int(data["epoch"]), data["loss"], data["val_hf"])

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
            state.hf_curve = self.hf_plot.plot([], [], pen=pen, connect="finite", name=f"fold {fold}")
            state.best_marker = pg.ScatterPlotItem(size=9, pen=pg.mkPen("#ffffff", width=1), brush=colour,
                                                   symbol="o")
            self.hf_plot.addItem(state.best_marker)
            self._folds[fold] = state
        return self._folds[fold]

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
        state = self._folds[latest]
        best = _best(state)
        text = f"fold {latest} · epoch {int(state.epochs[-1])}"
        if best is not None:
            text += f" · best val hF {state.val_hf[best]:.2f}% (epoch {int(state.epochs[best])})"
        bests = [s.val_hf[b] for s in self._folds.values() if (b := _best(s)) is not None]
        if len(bests) > 1:
            text += f" · mean of the folds' best: {sum(bests) / len(bests):.2f}%"
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
