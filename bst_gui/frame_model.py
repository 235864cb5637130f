"""A read-only Qt table model over a pandas frame, for the analysis views (queue, runs, changed clips).

Cells are formatted per column once per :meth:`FrameModel.set_frame` (lists of str), so ``data()``
only indexes lists: a 35k-row queue scrolls like the library table. Class-key columns carry the
BST colours; a boolean ``muted`` column greys its rows (e.g. clips already relabelled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from bst_core import taxonomy
from bst_gui import style

_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column:
    """One shown column: frame column ``key``, header text, formatter, and whether it holds class keys."""

    key: str
    header: str
    format: Callable[[Any], str] = str
    classes: bool = False
    number: bool = False
    tip: str = ""
    signed: bool = False          # "+1.2" green, "-0.4" red (a change between two runs)


def fraction(value: Any, digits: int = 2) -> str:
    """A 0-1 value as ``0.87`` ("" when missing)."""
    return "" if value is None or value != value else f"{float(value):.{digits}f}"


def percent(value: Any, digits: int = 1) -> str:
    return "" if value is None or value != value else f"{100 * float(value):.{digits}f}"


class FrameModel(QAbstractTableModel):
    """``columns`` of a frame; ``id_at(row)`` reads its ``id`` column."""

    def __init__(self, columns: Sequence[Column], parent: Any = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.frame = pd.DataFrame({c.key: pd.Series(dtype=object) for c in self.columns})
        self._cells: list[list[str]] = [[] for _ in self.columns]
        self._ids: list[str] = []
        self._muted = np.zeros(0, dtype=bool)
        self._row_of: dict[str, int] = {}
        self._muted_colour = QColor(style.MUTED)
        self._better, self._worse = QColor("#6fd08c"), QColor(style.ERROR)

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.beginResetModel()
        self.frame = frame.reset_index(drop=True)
        self._cells = [[c.format(v) for v in self.frame[c.key].tolist()] for c in self.columns]
        self._ids = self.frame["id"].astype(str).tolist() if "id" in self.frame.columns else []
        self._row_of = {item: row for row, item in enumerate(self._ids)}
        self._muted = (self.frame["muted"].to_numpy(dtype=bool, copy=True) if "muted" in self.frame.columns
                       else np.zeros(len(self.frame), dtype=bool))
        self.endResetModel()

    def set_muted(self, ids: Sequence[str], muted: bool = True) -> None:
        """Grey (or un-grey) the rows of ``ids``."""
        rows = [self._row_of[i] for i in ids if i in self._row_of]
        for row in rows:
            self._muted[row] = muted
        if rows:
            self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), len(self.columns) - 1))

    def set_text(self, item_id: str, key: str, text: str) -> None:
        """Show ``text`` in column ``key`` of the row of ``item_id`` (e.g. a label edited meanwhile)."""
        row = self._row_of.get(str(item_id))
        columns = [k for k, c in enumerate(self.columns) if c.key == key]
        if row is None or not columns:
            return
        self._cells[columns[0]][row] = text
        self.dataChanged.emit(self.index(row, columns[0]), self.index(row, columns[0]))

    def id_at(self, row: int) -> str:
        return self._ids[row]

    def row_of(self, item_id: str) -> int | None:
        return self._row_of.get(str(item_id))

    def ids(self) -> list[str]:
        return list(self._ids)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.frame)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        column = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.header
        if role == Qt.ItemDataRole.ToolTipRole and column.tip:
            return column.tip
        if role == Qt.ItemDataRole.TextAlignmentRole and column.number:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.frame):
            return None
        column = self.columns[index.column()]
        text = self._cells[index.column()][index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        if column.classes and text in taxonomy.BY_KEY:
            if role == Qt.ItemDataRole.BackgroundRole:
                return style.class_colours(text)[0]
            if role == Qt.ItemDataRole.ForegroundRole:
                return style.class_colours(text)[1]
            if role == Qt.ItemDataRole.ToolTipRole:
                return style.class_label(text)
        if role == Qt.ItemDataRole.ForegroundRole and self._muted[index.row()]:
            return self._muted_colour
        if role == Qt.ItemDataRole.ForegroundRole and column.signed and text[:1] in "+-" and text.strip("+-0.") != "":
            return self._better if text.startswith("+") else self._worse
        if role == Qt.ItemDataRole.TextAlignmentRole and column.number:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column.key in ("title", "reason"):
            return text
        return None
