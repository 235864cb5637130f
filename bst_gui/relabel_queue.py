"""Relabel next: the clips in the order a correction most likely matters, driven by the relabel keys.

The order is :func:`bst_core.label_issues.relabel_next` (cleanlab's suspected label errors first,
then the least confident predictions), computed in the background from the out-of-fold predictions
of the source's own run (or the predictions shown, for a source the run did not train on) and the
current labels (the workspace's edits over the source's). "Start" shows the queue in the library
table as an ordered-id filter, so the existing relabel keys (:class:`bst_gui.relabel.RelabelController`)
label the current clip and move to the next queue item. The dock lists the queue with why each clip
is in it, follows the table's current clip, and greys the clips already relabelled. The order stays
fixed while one works through it; Refresh recomputes it with the edits so far.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from PySide6.QtCore import QItemSelectionModel, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.library_query import Filters
from bst_core.predictions import Predictions
from bst_gui.analysis_jobs import AnalysisJobs
from bst_gui.frame_model import Column, FrameModel, fraction

QUEUE_VIEW_COLUMNS: tuple[Column, ...] = (
    Column("order", "#", number=True),
    Column("id", "ID"),
    Column("reason", "Why", tip="suspected label error (cleanlab), or low score (least confident prediction)"),
    Column("given", "Label", classes=True, tip="the label now (your edit, else the source's)"),
    Column("suggested", "Suggested", classes=True, tip="the most probable other class, or the prediction"),
    Column("label_quality", "Quality", fraction, number=True, tip="the probability the model gives the label"),
    Column("score", "Score", fraction, number=True, tip="the prediction's top probability"),
    Column("edited", "Edited", classes=True, tip="your label, once you gave one"),
)


def queue_inputs(window: Any) -> tuple[Predictions, dict[str, str]] | None:
    """The predictions the queue ranks and the current labels by id; None when there are none.

    Out-of-fold predictions of the source's own run when there is one (the ensemble's on its own
    training data would hide the errors it memorised), else the predictions the table shows.
    """
    session = window.session
    if session.corpus is None:
        return None
    predictions = session.run.predictions() if session.run is not None and session.run_is_for_source \
        else session.predictions
    if predictions is None:
        return None
    table = session.corpus.table
    labels = dict(zip(table["id"].astype(str), table["label"].fillna("").astype(str), strict=True)) \
        if "label" in table.columns else {}
    if session.workspace is not None:
        labels.update({k: v for k, v in session.workspace.edited_labels().items() if v})
    return predictions, labels


def compute_queue(predictions: Predictions, labels: dict[str, str], job: Job | None = None) -> pd.DataFrame:
    """Job body: :func:`relabel_next` of ``predictions`` under ``labels``."""
    from bst_core.label_issues import relabel_next

    if job is not None:
        job.progress("relabel queue", 0, 1, f"{len(predictions):,} clips")
    return relabel_next(predictions, labels)


class RelabelQueueView(QWidget):
    """The queue dock: a line of counts, Start/Refresh, and the queue table (one row per clip)."""

    start_requested = Signal()
    refresh_requested = Signal()
    clip_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = FrameModel(QUEUE_VIEW_COLUMNS, self)
        self.summary = QLabel("Train or load a run of this source (or predict it) to rank what to relabel next.")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)
        self.start_button = QPushButton("Start relabelling")
        self.start_button.setToolTip("Show the queue in the table, in this order; relabel keys label the clip "
                                     "and move to the next one")
        self.start_button.clicked.connect(self.start_requested)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Rank again, with the labels edited so far")
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self._following = False          # the table's current row is being set to follow the library
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        self.set_ready(False)

    def set_ready(self, ready: bool) -> None:
        self.start_button.setEnabled(ready)

    def _row_changed(self, current: Any, _previous: Any) -> None:
        """A click or Up/Down in the queue: that clip becomes the library's current one."""
        if not self._following and current.isValid() and current.row() < self.model.rowCount():
            self.clip_chosen.emit(self.model.id_at(current.row()))

    def show_current(self, item_id: str) -> None:
        row = self.model.row_of(item_id) if item_id else None
        if row is None:
            self.table.clearSelection()
            return
        index = self.model.index(row, 0)
        self._following = True
        try:
            self.table.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        finally:
            self._following = False
        self.table.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)


class RelabelQueue:
    """The queue of a window: computes it, shows it in the dock and drives the table through it."""

    def __init__(self, window: Any, jobs: AnalysisJobs, view: RelabelQueueView) -> None:
        self.window = window
        self.jobs = jobs
        self.view = view
        self.queue: pd.DataFrame | None = None
        view.start_requested.connect(self.start)
        view.refresh_requested.connect(self.refresh)
        view.clip_chosen.connect(self._chosen)
        window.library_view.current_changed.connect(view.show_current)
        window.relabel.labels_changed.connect(self._relabelled)

    @property
    def ids(self) -> list[str]:
        return [] if self.queue is None else self.queue["id"].astype(str).tolist()

    @property
    def active(self) -> bool:
        """The table shows the queue (its ordered-id filter is the queue's order)."""
        ordered = self.window.library.filters.ordered_ids
        return self.queue is not None and ordered is not None and list(ordered) == self.ids

    def clear(self, note: str = "") -> None:
        self.queue = None
        self.view.model.set_frame(pd.DataFrame({c.key: [] for c in QUEUE_VIEW_COLUMNS}))
        self.view.set_ready(False)
        self.view.summary.setText(note or "Train or load a run of this source (or predict it) to rank what to "
                                          "relabel next.")

    def refresh(self) -> bool:
        """Rank the clips again in the background; False when there is nothing to rank."""
        try:
            inputs = queue_inputs(self.window)
        except BadInputError as exc:         # the workspace's edits could not be read: say so, rank nothing
            self.clear(f"The queue could not be ranked: {exc}")
            return False
        if inputs is None:
            self.clear()
            return False
        predictions, labels = inputs
        corpus = self.window.session.corpus
        self.view.summary.setText(f"Ranking {len(predictions):,} clips…")
        self.jobs.run("queue", "Relabel queue", lambda job: compute_queue(predictions, labels, job),
                      lambda queue: self._ranked(corpus, predictions, queue), self._failed)
        return True

    def _ranked(self, corpus: Any, predictions: Predictions, queue: pd.DataFrame) -> None:
        if self.window.session.corpus is not corpus:
            return
        edited = self.window.library.frame.set_index("id")["edited"] if len(self.window.library.frame) else None
        frame = queue.copy()
        frame["edited"] = edited.reindex(frame["id"].astype(str)).fillna("").to_numpy() if edited is not None else ""
        frame["muted"] = frame["edited"].astype(str) != ""
        self.queue = frame
        self.view.model.set_frame(frame)
        self.view.set_ready(len(frame) > 0)
        suspected = int((frame["reason"] == "suspected label error").sum())
        origin = "out-of-fold" if predictions.origin == "out-of-fold" else "ensemble"
        self.view.summary.setText(f"{len(frame):,} clips: {suspected:,} suspected label errors first, then the "
                                  f"least confident ({origin} predictions). Start, then use the relabel keys.")
        self.view.show_current(self.window.current_id() or "")

    def _failed(self, message: str) -> None:
        self.view.summary.setText(f"The queue could not be ranked: {message}")

    def start(self) -> int:
        """Show the queue in the table, first clip selected; returns the number of clips."""
        if self.queue is None:
            return 0
        count = self.window._show_filtered(Filters(ordered_ids=tuple(self.ids)),
                                           f"relabel next: {len(self.ids):,} clips, suspected errors first")
        self.window.statusBar().showMessage("Relabel next: the relabel keys label the clip and move on; "
                                            "Space plays.", 8000)
        return count

    def _chosen(self, item_id: str) -> None:
        if item_id == self.window.current_id():
            return
        if not self.active:
            self.start()
        self.window.select_id(item_id)

    def _relabelled(self, ids: list[str]) -> None:
        if self.queue is None:
            return
        edited = self.window.library.frame.set_index("id")["edited"]
        now = edited.reindex([str(i) for i in ids]).fillna("").astype(str)
        for item, label in now.items():
            self.view.model.set_text(str(item), "edited", label)
            self.view.model.set_muted([str(item)], bool(label))
