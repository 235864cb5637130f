"""Results of a run: metric table (per fold, mean ± std, pooled), per-class bars, confusion matrix.

:class:`ResultsView` shows a :class:`bst_core.runs.CrossValResult` (what ``pipeline.cross_validate``
and ``pipeline.load_run`` return; ``runs.py`` owns the format), titled with the run and the data it
was trained on. Clicking a bar emits ``class_clicked(key)``, clicking a confusion cell
``cell_clicked(truth_key, predicted_key)``.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bst_core.metrics import METRIC_NAMES
from bst_core.runs import CrossValResult
from bst_core.taxonomy import CLASS_KEYS
from bst_gui.class_bars import ClassBars
from bst_gui.confusion_view import ConfusionView

COLUMN_TITLES: dict[str, str] = {
    "hP": "hP", "hR": "hR", "hF": "hF", "leaf_accuracy": "Leaf acc.", "top_accuracy": "Top-level acc.",
    "macro_accuracy": "Macro acc.", "hierarchical_accuracy": "Hier. acc.",
}
COLUMN_TIPS: dict[str, str] = {
    "hP": "Hierarchical precision: macro mean over classes of the credit of the clips predicted as the class",
    "hR": "Hierarchical recall: macro mean over classes of the credit of the clips of the class",
    "hF": "Hierarchical F-score (the challenge's ranking metric): macro mean of per-class 2·hP·hR/(hP+hR)",
    "leaf_accuracy": "Share of clips whose second-level class is right (micro)",
    "top_accuracy": "Share of clips whose top level is right (micro)",
    "macro_accuracy": "Mean over classes of the share of the class's clips that are right",
    "hierarchical_accuracy": "Macro mean of 1 for a hit, 0.5 for a same-top miss, 0 otherwise",
}
ABSENT_WORDS: dict[str, str] = {
    "reference": "reference (organizers' behaviour: classes never predicted drop out of hP/hR/hF)",
    "strict": "strict (a class never predicted counts as 0)",
}


def _pct(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.2f}"


class ResultsView(QWidget):
    """Metric table + per-class bars + confusion matrix.

    Signals: ``cell_clicked(truth_key, predicted_key)``, ``class_clicked(key)``.
    """

    cell_clicked = Signal(str, str)
    class_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data: CrossValResult | None = None
        self.for_source = True
        self.title = QLabel("No results yet")
        self.title.setObjectName("heading")
        heading = QFont(self.title.font())
        heading.setBold(True)
        self.title.setFont(heading)
        self.mode_label = QLabel("")
        self.mode_label.setObjectName("muted")
        self.mode_label.setWordWrap(True)
        self.mode_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice = QLabel("")
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.table = QTableWidget(0, len(METRIC_NAMES))
        self.table.setHorizontalHeaderLabels([COLUMN_TITLES[n] for n in METRIC_NAMES])
        for column, name in enumerate(METRIC_NAMES):
            self.table.horizontalHeaderItem(column).setToolTip(COLUMN_TIPS[name])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setMinimumSectionSize(72)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setAlternatingRowColors(True)
        self.bars = ClassBars()
        self.bars.class_clicked.connect(self.class_clicked)
        bars_scroll = QScrollArea()
        bars_scroll.setWidget(self.bars)
        bars_scroll.setWidgetResizable(True)
        bars_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        bars_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.confusion = ConfusionView()
        self.confusion.cell_clicked.connect(self.cell_clicked)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(bars_scroll)
        self.splitter.addWidget(self.confusion)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setMinimumHeight(420)
        charts = QScrollArea()  # a short dock scrolls the charts instead of growing the window
        charts.setWidget(self.splitter)
        charts.setWidgetResizable(True)
        charts.setFrameShape(QScrollArea.Shape.NoFrame)
        self.vertical = QSplitter(Qt.Orientation.Vertical)
        self.vertical.addWidget(self.table)
        self.vertical.addWidget(charts)
        self.vertical.setStretchFactor(1, 1)
        self.vertical.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.mode_label)
        layout.addWidget(self.notice)
        layout.addWidget(self.vertical, 1)
        self.clear()

    # public API ---------------------------------------------------------------------------------

    def set_result(self, result: CrossValResult, *, for_source: bool = True) -> None:
        """Show a run's cross-validation results, titled "Run <name> — trained on <data>".

        ``for_source=False`` (a run trained on other data than the open source) says so under the
        title: these results, and the clips behind them, are that data's, not the table's.
        """
        self.data, self.for_source = result, for_source
        self._fill_table(result)
        self.bars.set_report(result.report)
        self.confusion.set_matrix(result.confusion)
        self.title.setText(f"Run {result.run_dir.name} — trained on {result.dataset_label}")
        folds = len(result.folds)
        what = (f"{result.config.folds}-fold cross-validation" if folds == result.config.folds
                else f"{folds} of {result.config.folds} folds")
        extras = [f"{len(result.oof):,} clips", f"input: {result.config.mode}",
                  f"encoder {result.encoder.label}",
                  f"{result.status} run: folds {', '.join(map(str, result.missing_folds))} not finished"
                  if result.missing_folds else ""]
        report = result.report
        dropped = sorted({k for r in result.fold_reports for k in r.dropped} | set(report.dropped))
        words = ABSENT_WORDS.get(report.absent, report.absent)
        text = " · ".join([what, *[e for e in extras if e]])
        text += f"\nλ = {report.lam:g} · absent classes: {words} · values in percent"
        if dropped:
            text += f" · dropped here: {', '.join(k for k in CLASS_KEYS if k in dropped)}"
        self.mode_label.setText(text)
        self.notice.setText("" if for_source else
                            f"Not the open source: this run was trained on {result.dataset_label}. These are "
                            "its own cross-validation results; its out-of-fold predictions stay out of the "
                            "table. Predict (Ctrl+P) classifies the open source with this run.")
        self.notice.setVisible(not for_source)

    def clear(self) -> None:
        self.data, self.for_source = None, True
        self.notice.hide()
        self.table.setRowCount(0)
        self._fit_table_height()
        self.bars.set_report(None)
        self.confusion.set_matrix(None)
        self.title.setText("No results yet")
        self.mode_label.setText("Run a cross-validation (or open a run folder) to see hP, hR, hF per fold, "
                                "per class, and the confusion matrix.")

    # table --------------------------------------------------------------------------------------

    def _fill_table(self, result: CrossValResult) -> None:
        rows: list[tuple[str, list[str], str]] = []
        for fold, report in zip(result.folds, result.fold_reports, strict=True):
            rows.append((f"fold {fold}", [_pct(getattr(report, n)) for n in METRIC_NAMES], ""))
        summary = result.summary
        if len(result.folds) > 1 and summary:
            rows.append(("mean ± std", [_mean_std(summary.get(n)) for n in METRIC_NAMES], "bold"))
        rows.append(("pooled (out-of-fold)", [_pct(getattr(result.report, n)) for n in METRIC_NAMES], "pooled"))
        self.table.setRowCount(len(rows))
        self.table.setVerticalHeaderLabels([r[0] for r in rows])
        bold = QFont(self.font())
        bold.setBold(True)
        for r, (name, values, style) in enumerate(rows):
            header = self.table.verticalHeaderItem(r)
            if style == "bold":
                header.setFont(bold)
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if style == "bold":
                    item.setFont(bold)
                item.setToolTip(f"{name} · {COLUMN_TIPS[METRIC_NAMES[c]]}")
                self.table.setItem(r, c, item)
        self._fit_table_height()

    def _fit_table_height(self) -> None:
        """Room for every row when there is space; at least the header and one row."""
        header = self.table.horizontalHeader().sizeHint().height()
        row = self.table.verticalHeader().defaultSectionSize()
        full = header + row * self.table.rowCount() + 2 * self.table.frameWidth()
        self.table.setMinimumHeight(header + row + 2 * self.table.frameWidth())
        self.table.setMaximumHeight(full)
        self.table.setVisible(self.table.rowCount() > 0)
        self.vertical.setSizes([full, max(1, self.vertical.height() - full)])

    def table_text(self) -> list[list[str]]:
        """The metric table as text, header row first (tests and copy/paste)."""
        out = [["", *(COLUMN_TITLES[n] for n in METRIC_NAMES)]]
        for r in range(self.table.rowCount()):
            out.append([self.table.verticalHeaderItem(r).text(),
                        *(self.table.item(r, c).text() for c in range(self.table.columnCount()))])
        return out


def _mean_std(value: tuple[float, float] | None) -> str:
    if value is None or math.isnan(value[0]):
        return "–"
    return f"{100 * value[0]:.2f} ± {100 * value[1]:.2f}"


__all__ = ["ABSENT_WORDS", "COLUMN_TIPS", "COLUMN_TITLES", "ResultsView"]
