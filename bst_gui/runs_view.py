"""The Runs view: the open source's runs, and two of them side by side.

The runs are those :func:`bst_core.run_compare.runs_of_source` finds (the runs folder, plus the
session's run and any folder added here), read in the background. Choosing A and B shows
:func:`bst_core.run_compare.compare_runs`: Table 1 of the seed report for both with the change,
the per-class hF and its change, and the clips whose out-of-fold prediction changed (fixed,
broken, other). A double click on a changed clip goes to it in the library; "Show in table" lists
them all there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from bst_core.errors import BadInputError
from bst_core.run_compare import RunComparison, compare_runs, signed_points
from bst_core.runs import CrossValResult
from bst_gui.frame_model import Column, FrameModel, fraction, percent

RUN_COLUMNS: tuple[Column, ...] = (
    Column("name", "Run"), Column("mode", "Mode"), Column("folds", "Folds", number=True),
    Column("hf", "hF %", number=True, tip="mean ± std over the finished folds"),
    Column("status", "Status"),
)
METRIC_VIEW_COLUMNS: tuple[Column, ...] = (
    Column("label", "Metric"), Column("a", "A"), Column("b", "B"),
    Column("delta", "Δ points", number=True, signed=True),
)
CLASS_VIEW_COLUMNS: tuple[Column, ...] = (
    Column("class", "Class", classes=True), Column("n", "n", number=True),
    Column("hf_a", "A hF %", percent, number=True), Column("hf_b", "B hF %", percent, number=True),
    Column("delta", "Δ", lambda v: signed_points(v, 1), number=True, signed=True),
)
CHANGED_VIEW_COLUMNS: tuple[Column, ...] = (
    Column("id", "ID"), Column("change", "Change", tip="fixed: B right, A wrong · broken: A right, B wrong"),
    Column("truth", "Truth", classes=True), Column("prediction_a", "A", classes=True),
    Column("prediction_b", "B", classes=True), Column("score_a", "A score", fraction, number=True),
    Column("score_b", "B score", fraction, number=True),
)


def _table(model: FrameModel) -> QTableView:
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(22)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _pm(mean: float, std: float) -> str:
    return "–" if math.isnan(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def runs_frame(runs: Sequence[CrossValResult]) -> pd.DataFrame:
    """One row per run: name, mode, folds (done/planned), hF mean ± std, status."""
    rows = []
    for run in runs:
        hf = run.summary.get("hF", (float("nan"), float("nan")))
        rows.append({"id": str(run.run_dir), "name": Path(run.run_dir).name, "mode": run.config.mode,
                     "folds": f"{len(run.folds)}/{run.config.folds}", "hf": _pm(*hf), "status": run.status})
    return pd.DataFrame(rows, columns=["id", "name", "mode", "folds", "hf", "status"])


class RunsView(QWidget):
    """Runs list, A/B choice and the comparison. ``clip_chosen(id)``, ``show_clips(ids, caption)``,
    ``add_requested()``, ``refresh_requested()``, ``load_requested(run_dir)``."""

    clip_chosen = Signal(str)
    show_clips = Signal(list, str)
    add_requested = Signal()
    refresh_requested = Signal()
    report_requested = Signal()
    load_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[CrossValResult] = []
        self.comparison: RunComparison | None = None
        self.heading = QLabel("Open a source to see its runs.")
        self.heading.setObjectName("muted")
        self.heading.setWordWrap(True)
        add = QPushButton("Add run folder…")
        add.clicked.connect(self.add_requested)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh_requested)
        self.report_button = QPushButton("Save report…")
        self.report_button.setToolTip("Table 1 and Table 2 of the seed report for the runs listed, "
                                      "as Markdown, CSV or LaTeX (chosen by the file name)")
        self.report_button.clicked.connect(self.report_requested)
        self.run_model = FrameModel(RUN_COLUMNS, self)
        self.run_table = _table(self.run_model)
        self.run_table.doubleClicked.connect(
            lambda index: self.load_requested.emit(self.run_model.id_at(index.row())))
        self.run_table.setToolTip("Double-click a run to show it in the Results dock and the table")
        self.a_box, self.b_box = QComboBox(), QComboBox()
        for box in (self.a_box, self.b_box):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            box.currentIndexChanged.connect(lambda _i: self._compare())
        swap = QPushButton("⇄")
        swap.setToolTip("Swap A and B")
        swap.clicked.connect(self._swap)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.metric_model = FrameModel(METRIC_VIEW_COLUMNS, self)
        self.class_model = FrameModel(CLASS_VIEW_COLUMNS, self)
        self.changed_model = FrameModel(CHANGED_VIEW_COLUMNS, self)
        self.metric_table = _table(self.metric_model)
        self.class_table = _table(self.class_model)
        self.changed_table = _table(self.changed_model)
        self.changed_table.doubleClicked.connect(
            lambda index: self.clip_chosen.emit(self.changed_model.id_at(index.row())))
        self.changed_table.setToolTip("Double-click a clip to go to it in the library")
        self.show_button = QPushButton("Show in table")
        self.show_button.setToolTip("List the clips whose prediction changed in the library table")
        self.show_button.clicked.connect(self._show_changed)

        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(add)
        top.addWidget(refresh)
        top.addWidget(self.report_button)
        choose = QHBoxLayout()
        choose.addWidget(QLabel("A"))
        choose.addWidget(self.a_box)
        choose.addWidget(swap)
        choose.addWidget(QLabel("B"))
        choose.addWidget(self.b_box)
        choose.addStretch(1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.run_table, 2)
        left_layout.addLayout(choose)
        left_layout.addWidget(self.metric_table, 3)
        changed = QWidget()
        changed_layout = QVBoxLayout(changed)
        changed_layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(QLabel("Clips whose prediction changed"), 1)
        head.addWidget(self.show_button)
        changed_layout.addLayout(head)
        changed_layout.addWidget(self.changed_table, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.class_table)
        splitter.addWidget(changed)
        splitter.setSizes([420, 300, 420])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)
        self.set_runs([])

    # --- content ---------------------------------------------------------------------------------

    def set_heading(self, text: str) -> None:
        self.heading.setText(text)

    def set_runs(self, runs: Sequence[CrossValResult]) -> None:
        """The runs to choose from (newest first); A = the second newest, B = the newest."""
        self.runs = list(runs)
        self.run_model.set_frame(runs_frame(self.runs))
        self.report_button.setEnabled(bool(self.runs))
        for box in (self.a_box, self.b_box):
            box.blockSignals(True)
            box.clear()
            for run in self.runs:
                box.addItem(Path(run.run_dir).name, str(run.run_dir))
            box.blockSignals(False)
        if len(self.runs) >= 2:
            self.a_box.setCurrentIndex(1)
            self.b_box.setCurrentIndex(0)
        self._compare()

    def choose(self, a: str | Path, b: str | Path) -> None:
        """Compare the runs in folders ``a`` and ``b`` (two of :attr:`runs`)."""
        for box, folder in ((self.a_box, a), (self.b_box, b)):
            index = box.findData(str(folder))
            if index < 0:
                raise BadInputError(f"{folder} is not one of the runs listed.")
            box.blockSignals(True)
            box.setCurrentIndex(index)
            box.blockSignals(False)
        self._compare()

    def _swap(self) -> None:
        a, b = self.a_box.currentIndex(), self.b_box.currentIndex()
        for box, index in ((self.a_box, b), (self.b_box, a)):
            box.blockSignals(True)
            box.setCurrentIndex(index)
            box.blockSignals(False)
        self._compare()

    def _run(self, box: QComboBox) -> CrossValResult | None:
        folder = box.currentData()
        return next((r for r in self.runs if str(r.run_dir) == folder), None)

    def _compare(self) -> None:
        a, b = self._run(self.a_box), self._run(self.b_box)
        self.comparison = None
        if a is None or b is None or a is b:
            self._show(None, "Two runs of this source are needed for a comparison: cross-validate again with "
                             "other settings, or add a run folder." if len(self.runs) < 2 else
                             "Choose two different runs as A and B.")
            return
        try:
            self.comparison = compare_runs(a, b)
        except BadInputError as exc:
            self._show(None, str(exc))
            return
        self._show(self.comparison, "")

    def _show(self, comparison: RunComparison | None, note: str) -> None:
        self.show_button.setEnabled(comparison is not None and len(comparison.changed) > 0)
        if comparison is None:
            self.summary.setText(note)
            for model, columns in ((self.metric_model, METRIC_VIEW_COLUMNS), (self.class_model, CLASS_VIEW_COLUMNS),
                                   (self.changed_model, CHANGED_VIEW_COLUMNS)):
                model.set_frame(pd.DataFrame({c.key: [] for c in columns}))
            return
        table1 = comparison.report.table1()
        metrics = pd.DataFrame({"id": comparison.metrics["metric"], "label": [r[0] for r in table1],
                                "a": [r[1] for r in table1], "b": [r[2] for r in table1],
                                "delta": [signed_points(d) for d in comparison.metrics["delta"]]})
        self.metric_model.set_frame(metrics)
        self.class_model.set_frame(comparison.per_class.assign(id=comparison.per_class["class"]))
        self.changed_model.set_frame(comparison.changed)
        protocol = "" if comparison.report.same_protocol else "  ⚠ The runs differ in λ or absent-class mode."
        self.summary.setText(f"A = {comparison.a.name} ({comparison.a.mode}), B = {comparison.b.name} "
                             f"({comparison.b.mode}). {comparison.summary_line()}.{protocol}")

    def _show_changed(self) -> None:
        if self.comparison is not None and len(self.comparison.changed):
            ids = self.comparison.changed["id"].astype(str).tolist()
            self.show_clips.emit(ids, f"prediction changed from {self.comparison.a.name} to "
                                      f"{self.comparison.b.name}: {len(ids)} clips")


REPORT_FILTERS = {"Markdown (*.md)": ".md", "CSV (*.csv)": ".csv", "LaTeX (*.tex)": ".tex"}
"""The Save report dialog's file types and the suffix each adds to a name typed without one."""


class RunsPanel:
    """The Runs view of a window: finds the source's runs in the background and links to the table."""

    def __init__(self, window: Any, jobs: Any, view: RunsView) -> None:
        self.window = window
        self.jobs = jobs
        self.view = view
        self.extra: list[Path] = []
        view.refresh_requested.connect(self.refresh)
        view.add_requested.connect(self._ask_add)
        view.clip_chosen.connect(window.select_id)
        view.show_clips.connect(self._show_clips)
        view.load_requested.connect(window.load_run)
        view.report_requested.connect(self._ask_report)

    def refresh(self) -> bool:
        """Find the open source's runs (background); False when no source is open."""
        from bst_core.run_compare import runs_of_source

        corpus = self.window.session.corpus
        if corpus is None:
            self.view.set_heading("Open a source to see its runs.")
            self.view.set_runs([])
            return False
        folders = list(self.extra)
        run = self.window.session.run
        if run is not None and self.window.session.run_is_for_source:
            folders.append(Path(run.run_dir))
        self.view.set_heading(f"Looking for the runs of {corpus.name}…")
        self.jobs.run("runs", "Runs of the source", lambda job: runs_of_source(corpus, folders, job=job),
                      lambda found: self._found(corpus, *found), self._failed)
        return True

    def _found(self, corpus: Any, runs: list[CrossValResult], notes: list[str]) -> None:
        if self.window.session.corpus is not corpus:
            return
        where = corpus.root.name if corpus.root is not None else corpus.name
        text = f"{len(runs)} run(s) of {where}" + (" (double-click one to show it)" if runs else
                                                  ": cross-validate it (Ctrl+T) or add a run folder.")
        if notes:
            text += f"  ·  {len(notes)} could not be read: " + "; ".join(notes[:2])
        self.view.set_heading(text)
        self.view.set_runs(runs)

    def _failed(self, message: str) -> None:
        self.view.set_heading(f"The runs could not be listed: {message}")

    def save_report(self, out: str | Path) -> Path:
        """Write the report of the runs listed (``bst_core.report``: the same tables as ``bst report``)."""
        from bst_core.report import build_report, write_report

        return write_report(build_report(self.view.runs), out)

    def _ask_report(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        start = str(Path(self.window.settings.last_folder("report") or Path.home()) / "report.md")
        path, chosen = QFileDialog.getSaveFileName(self.window, "Save the runs' report", start,
                                                   ";;".join(REPORT_FILTERS))
        if not path:
            return
        if not Path(path).suffix and chosen in REPORT_FILTERS:   # "report" typed under "CSV (*.csv)"
            path += REPORT_FILTERS[chosen]
        try:
            out = self.save_report(path)
        except (BadInputError, OSError) as exc:
            self.window.show_error("Report not written", f"{path}: {exc}")
            return
        self.window.settings.set_last_folder("report", str(Path(out).parent))
        self.window.statusBar().showMessage(f"Report of {len(self.view.runs)} run(s) written: {out}", 10000)

    def _ask_add(self) -> None:
        path = self.window.ask_run_folder()
        if path:
            self.add(path)

    def add(self, folder: str | Path) -> None:
        folder = Path(folder)
        if folder not in self.extra:
            self.extra.append(folder)
        self.refresh()

    def _show_clips(self, ids: list[str], caption: str) -> None:
        from bst_core.library_query import Filters

        self.window._show_filtered(Filters(ordered_ids=tuple(ids)), caption)
