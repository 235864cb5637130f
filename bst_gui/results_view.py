"""Results of a run: metric table (per fold, mean ± std, pooled), per-class bars, confusion matrix.

:func:`results_from_metrics` adapts a run folder's ``metrics.json`` (``RunFolder.metrics()``, written
by ``bst_core.training``), a single ``MetricReport.to_dict()`` (``bst evaluate --json``) or a
``CrossValResult`` into :class:`ResultsData`; :class:`ResultsView` shows it. Clicking a bar emits
``class_clicked(key)``, clicking a confusion cell ``cell_clicked(truth_key, predicted_key)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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

from bst_core.errors import BadInputError
from bst_core.metrics import METRIC_NAMES, MetricReport, summarize
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


@dataclass
class ResultsData:
    """What the results view shows, whatever it was read from."""

    folds: list[tuple[int, MetricReport]] = field(default_factory=list)
    summary: dict[str, tuple[float, float]] = field(default_factory=dict)   # metric → (mean, std)
    pooled: MetricReport | None = None                                        # out-of-fold report
    confusion: np.ndarray | None = None                                       # (23, 23) rows truth
    lam: float = 0.75
    absent: str = "reference"
    mode: str = ""            # "both" | "audio" | "text" (training input), "" when unknown
    n_items: int = 0
    status: str = ""          # "complete" | "partial" | ...


def results_from_metrics(data: Mapping[str, Any] | Any) -> ResultsData:
    """Adapt a run's ``metrics.json`` dict, a ``MetricReport.to_dict()`` or a ``CrossValResult``.

    Raises :class:`BadInputError` when the dict is neither shape.
    """
    if hasattr(data, "fold_reports") and hasattr(data, "report"):  # CrossValResult
        reports = list(data.fold_reports)
        folds = list(getattr(data, "folds", range(1, len(reports) + 1)))
        pooled: MetricReport = data.report
        return ResultsData(folds=list(zip(folds, reports, strict=True)),
                           summary=dict(data.summary) if data.summary else _summary(reports),
                           pooled=pooled, confusion=np.asarray(data.confusion), lam=pooled.lam,
                           absent=pooled.absent, n_items=pooled.n, status=str(getattr(data, "status", "")))
    if not isinstance(data, Mapping):
        raise BadInputError(f"Cannot show results of type {type(data).__name__}: expected a run's "
                            "metrics.json or a cross-validation result.")
    if "folds" in data or "pooled" in data:
        folds = [(int(f.get("fold", k)), MetricReport.from_dict(f))
                 for k, f in enumerate(data.get("folds", []), start=1)]
        pooled = MetricReport.from_dict(data["pooled"]) if data.get("pooled") else None
        summary = {name: (_float(v.get("mean")), _float(v.get("std")))
                   for name, v in dict(data.get("summary", {})).items() if isinstance(v, Mapping)}
        if not summary and folds:
            summary = _summary([r for _, r in folds])
        reference = pooled or (folds[0][1] if folds else None)
        return ResultsData(
            folds=folds, summary=summary, pooled=pooled, confusion=_confusion(data),
            lam=float(data.get("lam", reference.lam if reference else 0.75)),
            absent=str(data.get("absent", reference.absent if reference else "reference")),
            mode=str(data.get("mode", "")), n_items=int(data.get("n_items", reference.n if reference else 0)),
            status=str(data.get("status", "")))
    if "hF" in data and "per_class" in data:
        report = MetricReport.from_dict(data)
        return ResultsData(pooled=report, confusion=_confusion(data), lam=report.lam, absent=report.absent,
                           n_items=report.n)
    raise BadInputError("These results cannot be shown: expected a run's metrics.json (folds, summary, "
                        "pooled, confusion) or the output of `bst evaluate --json`.")


def _confusion(data: Mapping[str, Any]) -> np.ndarray | None:
    matrix = data.get("confusion")
    if matrix is None:
        return None
    array = np.asarray(matrix, dtype=np.int64)
    keys = list(data.get("class_keys", CLASS_KEYS))
    if array.shape != (len(CLASS_KEYS), len(CLASS_KEYS)) or keys != list(CLASS_KEYS):
        raise BadInputError("The confusion matrix in these results does not use the 23 BST classes in "
                            "taxonomy order; rerun the evaluation with this version of BST Studio.")
    return array


def _summary(reports: list[MetricReport]) -> dict[str, tuple[float, float]]:
    return summarize(reports) if reports else {}


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


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
        self.data: ResultsData | None = None
        self.title = QLabel("No results yet")
        self.title.setObjectName("heading")
        heading = QFont(self.title.font())
        heading.setBold(True)
        self.title.setFont(heading)
        self.mode_label = QLabel("")
        self.mode_label.setObjectName("muted")
        self.mode_label.setWordWrap(True)
        self.mode_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
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
        layout.addWidget(self.vertical, 1)
        self.clear()

    # public API ---------------------------------------------------------------------------------

    def set_result(self, result: Mapping[str, Any] | Any) -> None:
        """Show a ``CrossValResult``, a run's ``metrics.json`` dict or a ``MetricReport.to_dict()``."""
        self.show_data(results_from_metrics(result))

    set_metrics = set_result

    def show_data(self, data: ResultsData) -> None:
        self.data = data
        self._fill_table(data)
        report = data.pooled or (data.folds[-1][1] if data.folds else None)
        self.bars.set_report(report)
        self.confusion.set_matrix(data.confusion)
        folds = len(data.folds)
        what = f"{folds}-fold cross-validation" if folds > 1 else ("1 fold" if folds == 1 else "Evaluation")
        extras = [f"{data.n_items:,} clips" if data.n_items else "", f"input: {data.mode}" if data.mode else "",
                  "partial run: not every fold finished" if data.status == "partial" else ""]
        self.title.setText(" · ".join([what, *[e for e in extras if e]]))
        dropped = sorted({k for _, r in data.folds for k in r.dropped} | set(report.dropped if report else []))
        words = ABSENT_WORDS.get(data.absent, data.absent)
        text = f"λ = {data.lam:g} · absent classes: {words} · values in percent"
        if dropped:
            text += f" · dropped here: {', '.join(k for k in CLASS_KEYS if k in dropped)}"
        self.mode_label.setText(text)

    def clear(self) -> None:
        self.data = None
        self.table.setRowCount(0)
        self._fit_table_height()
        self.bars.set_report(None)
        self.confusion.set_matrix(None)
        self.title.setText("No results yet")
        self.mode_label.setText("Run a cross-validation (or open a run folder) to see hP, hR, hF per fold, "
                                "per class, and the confusion matrix.")

    # table --------------------------------------------------------------------------------------

    def _fill_table(self, data: ResultsData) -> None:
        rows: list[tuple[str, list[str], str]] = []
        for fold, report in data.folds:
            rows.append((f"fold {fold}", [_pct(getattr(report, n)) for n in METRIC_NAMES], ""))
        if len(data.folds) > 1 and data.summary:
            rows.append(("mean ± std", [_mean_std(data.summary.get(n)) for n in METRIC_NAMES], "bold"))
        if data.pooled is not None:
            label = "pooled (out-of-fold)" if data.folds else "value"
            rows.append((label, [_pct(getattr(data.pooled, n)) for n in METRIC_NAMES], "pooled"))
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


__all__ = ["ABSENT_WORDS", "ResultsData", "ResultsView", "results_from_metrics"]
