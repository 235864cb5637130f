"""Results of a run: metric table (per fold, mean ± std, pooled), per-class bars, confusion matrix.

:class:`ResultsView` shows a :class:`bst_core.runs.CrossValResult` (what ``pipeline.cross_validate``
and ``pipeline.load_run`` return; ``runs.py`` owns the format), titled with the run and the data it
was trained on. Clicking a bar emits ``class_clicked(key)``, clicking a confusion cell
``cell_clicked(truth_key, predicted_key)``, Ctrl/Shift+clicking cells ``cells_selected(list of
(truth_key, predicted_key))``.

Given room (a full-size page or a maximised dock, e.g. 1600×1000) the table sits above the bars
and the matrix side by side; in a short or narrow dock the three are tabs ("compact"), each
scrolling rather than shrinking below a readable size, so the view never forces a large window.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
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


COMPACT_BELOW = QSize(900, 700)
"""Narrower or shorter than this, the table, bars and matrix become tabs (with a little hysteresis): below
it the matrix would have to scroll beside the table."""
_HYSTERESIS = 40


def dropped_text(result: CrossValResult) -> str:
    """Which classes were never predicted, and where: ``"fx-m in folds 2, 4 and pooled"`` ("" when none).

    In the reference mode such a class drops out of hP/hR/hF of that fold (or of the pooled table).
    """
    pooled = set(result.report.dropped)
    parts = []
    for key in CLASS_KEYS:
        folds = [f for f, r in zip(result.folds, result.fold_reports, strict=True) if key in r.dropped]
        where = []
        if folds:
            where.append(("fold " if len(folds) == 1 else "folds ") + ", ".join(map(str, folds)))
        if key in pooled:
            where.append("pooled")
        if where:
            parts.append(f"{key} in {' and '.join(where)}")
    return "; ".join(parts)


def _pct(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.2f}"


class ResultsView(QWidget):
    """Metric table + per-class bars + confusion matrix.

    Signals: ``cell_clicked(truth_key, predicted_key)``, ``cells_selected(list[tuple[str, str]])``
    (Ctrl/Shift+click on the matrix), ``class_clicked(key)``.
    """

    cell_clicked = Signal(str, str)
    cells_selected = Signal(list)
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
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setMinimumSectionSize(72)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setAlternatingRowColors(True)
        self.table.setMinimumWidth(120)
        self.bars = ClassBars()
        self.bars.class_clicked.connect(self.class_clicked)
        self.bars_scroll = QScrollArea()
        self.bars_scroll.setWidget(self.bars)
        self.bars_scroll.setWidgetResizable(True)
        self.bars_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.bars_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.bars_scroll.setMinimumSize(120, 80)
        self.confusion = ConfusionView()
        self.confusion.cell_clicked.connect(self.cell_clicked)
        self.confusion.cells_selected.connect(self.cells_selected)
        # full layout: table above, bars | matrix below
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.vertical = QSplitter(Qt.Orientation.Vertical)
        self.vertical.setChildrenCollapsible(False)
        # compact layout: one tab each
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setMinimumSize(120, 80)
        self.layout_mode = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.mode_label)
        layout.addWidget(self.notice)
        layout.addWidget(self.vertical, 1)
        layout.addWidget(self.tabs, 1)
        self.set_layout_mode("full")
        self.clear()

    # layout -------------------------------------------------------------------------------------

    def set_layout_mode(self, mode: str) -> None:
        """``"full"`` (table over bars | matrix) or ``"compact"`` (three tabs)."""
        if mode not in ("full", "compact"):
            raise ValueError(f"unknown results layout {mode!r}; use 'full' or 'compact'")
        if mode == self.layout_mode:
            return
        self.layout_mode = mode
        if mode == "full":
            current = self.tabs.currentIndex()
            while self.tabs.count():
                self.tabs.removeTab(0)
            self.vertical.addWidget(self.table)
            self.splitter.addWidget(self.bars_scroll)
            self.splitter.addWidget(self.confusion)
            self.splitter.setStretchFactor(0, 4)
            self.splitter.setStretchFactor(1, 5)
            self.vertical.addWidget(self.splitter)
            self.vertical.setStretchFactor(0, 0)
            self.vertical.setStretchFactor(1, 1)
            for widget in (self.table, self.bars_scroll, self.confusion):
                widget.show()       # a tab page left hidden would stay hidden in the splitters
            self.tabs.hide()
            self.vertical.show()
            if current >= 0:            # coming back from the tabs: remember the one shown
                self._tab_index = current
        else:
            pages = ((self.table, "Metrics", "hP, hR, hF and accuracies per fold, mean ± std, pooled"),
                     (self.bars_scroll, "Per class", "hP, hR, hF of each class"),
                     (self.confusion, "Confusion", "Truth × prediction; click a cell to list its clips"))
            for widget, name, tip in pages:
                index = self.tabs.addTab(widget, name)        # the tab widget shows the current page only
                self.tabs.setTabToolTip(index, tip)
            # first time: the matrix (the drill-down into the clips); then the tab last shown
            self.tabs.setCurrentIndex(max(0, getattr(self, "_tab_index", 2)))
            self.vertical.hide()
            self.tabs.show()
        self._fit_table_height()
        self._show_mode_text()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Switch between the full and the compact layout as the space allows."""
        size = event.size()
        margin = _HYSTERESIS if self.layout_mode == "compact" else 0
        compact = (size.width() < COMPACT_BELOW.width() + margin
                   or size.height() < COMPACT_BELOW.height() + margin)
        self.set_layout_mode("compact" if compact else "full")
        super().resizeEvent(event)

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
        words = ABSENT_WORDS.get(report.absent, report.absent)
        first = " · ".join([what, *[e for e in extras if e]])
        text = first + f"\nλ = {report.lam:g} · absent classes: {words} · values in %"
        hf = result.summary.get("hF") if len(result.folds) > 1 else None
        headline = (f"hF {_mean_std(hf)} %" if hf is not None and not math.isnan(hf[0])
                    else f"hF {_pct(report.hF)} %")
        brief = first + f"\n{headline} · λ = {report.lam:g} · {report.absent} mode · values in %"
        if dropped := dropped_text(result):
            text += f"\nnever predicted, so dropped: {dropped}"
            keys = [k for k in CLASS_KEYS if f"{k} in " in dropped]
            brief += f" · never predicted: {', '.join(keys)} (hover for where)"
        self._mode_texts = (text, brief)
        self._show_mode_text()
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
        empty = ("Run a cross-validation (or open a run folder) to see hP, hR, hF per fold, per class, "
                 "and the confusion matrix.")
        self._mode_texts = (empty, empty)
        self._show_mode_text()

    def _show_mode_text(self) -> None:
        """The run's details: in full under the title; two lines in the compact layout (all in the tooltip)."""
        text, brief = getattr(self, "_mode_texts", ("", ""))
        self.mode_label.setText(brief if self.layout_mode == "compact" else text)
        self.mode_label.setToolTip(text)

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
        """Full layout: room for every row, at least the header and one row. Compact: the tab's height."""
        header = self.table.horizontalHeader().sizeHint().height()
        row = self.table.verticalHeader().defaultSectionSize()
        full = header + row * self.table.rowCount() + 2 * self.table.frameWidth()
        if self.layout_mode == "compact":
            self.table.setMinimumHeight(0)
            self.table.setMaximumHeight(16777215)
            self.table.setVisible(self.tabs.currentWidget() is self.table)   # a tab page: shown when current
            return
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


__all__ = ["ABSENT_WORDS", "COLUMN_TIPS", "COLUMN_TITLES", "COMPACT_BELOW", "ResultsView", "dropped_text"]
