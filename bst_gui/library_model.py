"""The library table model: the corpus rows as pandas/numpy, the visible rows as an index array.

No proxy model: search, filters and sorting are computed with ``bst_core.library_query`` over the
whole frame at once (milliseconds for 35k rows) and the model exposes ``visible_rows`` — frame
positions in view order. ``data()`` only indexes arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor

from bst_core import taxonomy
from bst_core.audio import format_duration
from bst_core.library_query import (
    LIBRARY_COLUMNS,
    Filters,
    Query,
    TextIndex,
    decision_words,
    filter_mask,
    parse_query,
    query_mask,
    set_decisions,
    set_edited,
    set_predictions,
    sort_order,
)
from bst_gui import style

HEADERS: dict[str, str] = {
    "id": "ID", "title": "Title", "duration_s": "Duration", "truth": "Truth",
    "prediction": "Prediction", "score": "Score", "top": "Top", "decision": "Decision", "edited": "Edited",
    "status": "Status", "audio": "Audio",
}
HEADER_TIPS: dict[str, str] = {
    "truth": "The source's own label",
    "prediction": "The model's class (see the caption above the table for which predictions these are)",
    "score": "The prediction's score: the model's top probability (0-1)",
    "top": "Top level of the prediction (of the truth where there is none)",
    "decision": "Hierarchical abstain (View › Abstain threshold): the class, or its top level alone "
                "(\"fx, leaf unsure\") where the class's probability is below the threshold but its top "
                "level's summed probability reaches it",
    "edited": "Your label, saved in the workspace",
    "status": "ok, text only (the audio could not be decoded), no audio (no file), or edited",
    "audio": "What the embeddings were made from: ok, or text only (the audio could not be decoded: why)",
}
CLASS_COLUMNS = frozenset({"truth", "prediction", "edited", "top", "decision"})
NUMBER_COLUMNS = frozenset({"duration_s", "score"})

_Index = QModelIndex | QPersistentModelIndex
_ROW_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


class LibraryModel(QAbstractTableModel):
    """Corpus rows for a ``QTableView``; filters and sorts itself (see module docstring)."""

    visible_changed = Signal(int, int)       # visible rows, total rows
    query_problems = Signal(list)            # search terms that were not understood, in words
    ranked_changed = Signal(bool)            # rows in a ranked list's own order (no column sort applies)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.frame = pd.DataFrame({c: pd.Series(dtype=object) for c in LIBRARY_COLUMNS})
        self.probs: np.ndarray | None = None          # (n, 23) aligned with frame rows, NaN rows unknown
        self.attention: np.ndarray | None = None      # (n, 2) [audio, text]
        self.visible_rows = np.zeros(0, dtype=np.int64)
        self._values: dict[str, np.ndarray] = {}
        self._position_of_id: dict[str, int] = {}
        self._order = np.zeros(0, dtype=np.int64)
        self._mask = np.zeros(0, dtype=bool)
        self._text_index: TextIndex | None = None
        self._query: Query = parse_query("")
        self._filters = Filters()
        self._sort: tuple[str, bool] | None = None
        self._ranked = False       # an ordered_ids filter shows in its own order until a header click
        self._sort_cache: dict[tuple[str, bool], np.ndarray] = {}
        self._tooltips: dict[str, str] = {c.key: c.description for c in taxonomy.classes()}
        self._tooltips.update({c.top: c.top_name for c in taxonomy.classes()})
        self._notice = QColor(style.WARNING)

    # --- content ----------------------------------------------------------------------------------

    def set_frame(self, frame: pd.DataFrame) -> None:
        """Show a new library frame (``bst_core.library_query.library_frame``); keeps query/filters."""
        self.beginResetModel()
        self.frame = frame.reset_index(drop=True)
        self.probs = None
        self.attention = None
        self._position_of_id = {str(i): k for k, i in enumerate(self.frame["id"])}
        self._refresh_values()
        self._text_index = TextIndex(self.frame)
        self._order = self._sorted_positions()
        self._mask = self._compute_mask()
        self.visible_rows = self._order[self._mask[self._order]]
        self.endResetModel()
        self.visible_changed.emit(len(self.visible_rows), len(self.frame))

    def set_predictions(self, ids: Sequence[str], labels: Sequence[str], scores: Sequence[float] | np.ndarray,
                        probs: np.ndarray | None = None, attention: np.ndarray | None = None,
                        audio_status: Sequence[str] | None = None) -> None:
        """Replace the prediction columns (by id); ``probs``/``attention``/``audio_status`` are
        row-aligned to ``ids``."""
        where = set_predictions(self.frame, ids, labels, scores, audio_status)
        has = where >= 0
        self.probs = self._gather(probs, where, has)
        self.attention = self._gather(attention, where, has)
        self._data_changed()

    def clear_predictions(self) -> None:
        self.set_predictions([], [], np.zeros(0))

    @staticmethod
    def _gather(matrix: np.ndarray | None, where: np.ndarray, has: np.ndarray) -> np.ndarray | None:
        if matrix is None:
            return None
        matrix = np.asarray(matrix, dtype=np.float64)
        out = np.full((len(where), matrix.shape[1]), np.nan)
        out[has] = matrix[where[has]]
        return out

    def set_decisions(self, ids: Sequence[str], decisions: Sequence[str]) -> None:
        """Replace the decision column (the hierarchical abstain's, by id; empty: off)."""
        set_decisions(self.frame, ids, decisions)
        self._data_changed()
        self.query_problems.emit(self._problems(self._query))

    @property
    def has_decisions(self) -> bool:
        return bool(len(self.frame)) and bool((self.frame["decision"] != "").any())

    def _problems(self, query: Query) -> list[str]:
        problems = list(query.problems)
        if query.uses("decision") and not self.has_decisions:
            problems.append("decision needs the abstain threshold: View › Abstain threshold…")
        return problems

    def set_edited(self, edited: Mapping[str, str]) -> None:
        """Replace the edited labels (id → class key) from the workspace."""
        set_edited(self.frame, edited)
        self._data_changed()

    def set_durations(self, positions: np.ndarray, seconds: np.ndarray) -> None:
        """Fill in durations (frame positions, seconds) measured in the background."""
        values = self.frame["duration_s"].to_numpy(dtype=np.float64, copy=True)
        values[np.asarray(positions, dtype=np.int64)] = seconds
        self.frame["duration_s"] = values
        self._values["duration_s"] = values
        if self._sort is not None and self._sort[0] == "duration_s":
            self._sort_cache.clear()
        column = LIBRARY_COLUMNS.index("duration_s")
        if len(self.visible_rows):
            self.dataChanged.emit(self.index(0, column), self.index(len(self.visible_rows) - 1, column))

    def _data_changed(self) -> None:
        """Columns changed in place: refresh arrays and order, then the visible set."""
        self._refresh_values()
        self._order = self._sorted_positions()
        self._apply_visibility()

    def _refresh_values(self) -> None:
        self._values = {c: self.frame[c].to_numpy() for c in LIBRARY_COLUMNS}
        self._sort_cache.clear()

    # --- visibility ---------------------------------------------------------------------------------

    @property
    def query(self) -> Query:
        return self._query

    @property
    def filters(self) -> Filters:
        return self._filters

    def set_query(self, text: str) -> None:
        """Search box text (``bst_core.library_query`` syntax)."""
        query = parse_query(text)
        if query == self._query:
            return
        self._query = query
        self.query_problems.emit(self._problems(query))
        self._apply_visibility()

    def set_filters(self, filters: Filters) -> None:
        if filters == self._filters:
            return
        ranked_changed = filters.ordered_ids != self._filters.ordered_ids
        self._filters = filters
        if ranked_changed:
            self._set_ranked(filters.ordered_ids is not None)
            self._order = self._sorted_positions()
        self._apply_visibility()

    def _compute_mask(self) -> np.ndarray:
        if not len(self.frame):
            return np.zeros(0, dtype=bool)
        mask = np.ones(len(self.frame), dtype=bool)
        if not self._query.empty:
            if self._text_index is None and (self._query.words or self._query.excluded):
                self._text_index = TextIndex(self.frame)
            mask &= query_mask(self.frame, self._query, self._text_index)
        if self._filters.active:
            mask &= filter_mask(self.frame, self._filters)
        return mask

    def _apply_visibility(self) -> None:
        """Recompute the visible rows; reset the view only when the set of rows changed."""
        self._mask = self._compute_mask()
        rows = self._order[self._mask[self._order]]
        if np.array_equal(rows, self.visible_rows):
            if len(rows):
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(LIBRARY_COLUMNS) - 1))
        else:
            self.beginResetModel()
            self.visible_rows = rows
            self.endResetModel()
        self.visible_changed.emit(len(self.visible_rows), len(self.frame))

    def _sorted_positions(self) -> np.ndarray:
        if self._ranked and self._filters.ordered_ids is not None and len(self.frame):
            return self._ranked_positions(self._filters.ordered_ids)
        if self._sort is None or not len(self.frame):
            return np.arange(len(self.frame), dtype=np.int64)
        order = self._sort_cache.get(self._sort)
        if order is None:
            order = self._sort_cache[self._sort] = sort_order(self.frame, *self._sort)
        return order

    def _ranked_positions(self, ids: Sequence[str]) -> np.ndarray:
        """Frame positions of ``ids`` in their order (unknown ids skipped), then every other row."""
        head = np.array(list(dict.fromkeys(p for p in map(self._position_of_id.get, ids) if p is not None)),
                        dtype=np.int64)
        rest = np.setdiff1d(np.arange(len(self.frame), dtype=np.int64), head, assume_unique=True)
        return np.concatenate([head, rest])

    @property
    def ranked(self) -> bool:
        """Rows shown in a ranked list's own order (similar, by words, relabel next), not by a column."""
        return self._ranked

    def _set_ranked(self, ranked: bool) -> None:
        if ranked != self._ranked:
            self._ranked = ranked
            self.ranked_changed.emit(ranked)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by a table column (numpy argsort over all rows; keeps the selection)."""
        if not 0 <= column < len(LIBRARY_COLUMNS):
            return
        self._set_ranked(False)
        self._sort = (LIBRARY_COLUMNS[column], order == Qt.SortOrder.DescendingOrder)
        self._order = self._sorted_positions()
        self._relayout(self._order[self._mask[self._order]])

    def _relayout(self, rows: np.ndarray) -> None:
        """Same rows, new order: move persistent indexes (the selection) along."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        positions = [int(self.visible_rows[i.row()]) if 0 <= i.row() < len(self.visible_rows) else -1
                     for i in old]
        self.visible_rows = rows
        inverse = np.full(len(self.frame), -1, dtype=np.int64)
        inverse[rows] = np.arange(len(rows))
        new = [self.index(int(inverse[p]), i.column()) if p >= 0 and inverse[p] >= 0 else QModelIndex()
               for p, i in zip(positions, old, strict=True)]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    # --- lookups ----------------------------------------------------------------------------------

    def id_at(self, row: int) -> str:
        return str(self._values["id"][self.visible_rows[row]])

    def position_at(self, row: int) -> int:
        """Frame position of a visible row."""
        return int(self.visible_rows[row])

    def position_of(self, sound_id: str) -> int | None:
        return self._position_of_id.get(str(sound_id))

    def row_of(self, sound_id: str) -> int | None:
        """Visible row of an id (None when filtered out or unknown)."""
        position = self._position_of_id.get(str(sound_id))
        if position is None or not self._mask[position]:
            return None
        hits = np.flatnonzero(self.visible_rows == position)
        return int(hits[0]) if len(hits) else None

    def visible_ids(self) -> list[str]:
        return self._values["id"][self.visible_rows].astype(str).tolist() if len(self.frame) else []

    def record(self, sound_id: str) -> pd.Series | None:
        """The frame row of an id (all columns, including tags and description)."""
        position = self._position_of_id.get(str(sound_id))
        return None if position is None else self.frame.iloc[position]

    def probabilities(self, sound_id: str) -> np.ndarray | None:
        position = self._position_of_id.get(str(sound_id))
        if position is None or self.probs is None or np.isnan(self.probs[position]).all():
            return None
        return self.probs[position]

    def attention_of(self, sound_id: str) -> np.ndarray | None:
        position = self._position_of_id.get(str(sound_id))
        if position is None or self.attention is None or np.isnan(self.attention[position]).all():
            return None
        return self.attention[position]

    @property
    def total(self) -> int:
        return len(self.frame)

    # --- Qt model interface ------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.visible_rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(LIBRARY_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(LIBRARY_COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[LIBRARY_COLUMNS[section]]
            if role == Qt.ItemDataRole.TextAlignmentRole and LIBRARY_COLUMNS[section] in NUMBER_COLUMNS:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if role == Qt.ItemDataRole.ToolTipRole:
                return HEADER_TIPS.get(LIBRARY_COLUMNS[section])
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row, column = index.row(), index.column()
        if not index.isValid() or row >= len(self.visible_rows):
            return None
        name = LIBRARY_COLUMNS[column]
        value = self._values[name][self.visible_rows[row]]
        if role == Qt.ItemDataRole.DisplayRole:
            if name == "duration_s":
                return "" if value != value else format_duration(float(value))
            if name == "score":
                return "" if value != value else f"{float(value):.2f}"
            if name == "decision":
                return decision_words(value)
            return value
        if name in CLASS_COLUMNS and value:
            if role == Qt.ItemDataRole.BackgroundRole:
                return style.class_colours(value)[0]
            if role == Qt.ItemDataRole.ForegroundRole:
                return style.class_colours(value)[1]
            if role == Qt.ItemDataRole.ToolTipRole:
                return self._tooltips.get(value, value)
        if role == Qt.ItemDataRole.TextAlignmentRole and name in NUMBER_COLUMNS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and name in ("title", "audio"):
            return value
        if role == Qt.ItemDataRole.ForegroundRole and name == "audio" and value and value != "ok":
            return self._notice
        if role == Qt.ItemDataRole.UserRole:
            return str(self._values["id"][self.visible_rows[row]])
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        return _ROW_FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags
